//! A client for varnishd's admin CLI (the protocol `varnishadm` speaks, see varnish-cli(7)):
//! enough to authenticate, load a VCL inline, switch to it and discard old ones.
//! Talking the protocol directly means the varnish admin port can be on another host and no
//! varnishadm binary is needed.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 4 * 1024 * 1024;

pub struct VarnishCli {
    stream: BufReader<TcpStream>,
}

impl VarnishCli {
    /// Connects and, if varnishd asks for it, authenticates with the `-S` secret file's bytes.
    pub async fn connect(addr: &str, secret: &[u8]) -> Result<VarnishCli, String> {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("varnish admin {addr}: connect timed out"))?
            .map_err(|e| format!("varnish admin {addr}: {e}"))?;
        let mut cli = VarnishCli {
            stream: BufReader::new(stream),
        };
        let (status, body) = cli.read_response().await?;
        match status {
            200 => Ok(cli),
            107 => {
                let challenge = body.lines().next().unwrap_or_default().to_string();
                let answer = auth_response(&challenge, secret);
                cli.command(&format!("auth {answer}")).await?;
                Ok(cli)
            }
            other => Err(format!("varnish admin greeting: status {other}: {body}")),
        }
    }

    /// Sends a command; Ok(body) on status 200.
    pub async fn command(&mut self, command: &str) -> Result<String, String> {
        let mut line = command.as_bytes().to_vec();
        line.push(b'\n');
        tokio::time::timeout(TIMEOUT, self.stream.get_mut().write_all(&line))
            .await
            .map_err(|_| "varnish admin: write timed out".to_string())?
            .map_err(|e| format!("varnish admin: {e}"))?;
        let (status, body) = self.read_response().await?;
        let verb = command.split_whitespace().next().unwrap_or_default();
        if status == 200 {
            Ok(body)
        } else {
            Err(format!(
                "varnish `{verb}` failed with status {status}: {}",
                body.trim()
            ))
        }
    }

    async fn read_response(&mut self) -> Result<(u16, String), String> {
        tokio::time::timeout(TIMEOUT, self.read_response_inner())
            .await
            .map_err(|_| "varnish admin: no answer".to_string())?
    }

    async fn read_response_inner(&mut self) -> Result<(u16, String), String> {
        // Header: "<status> <length>\n", then <length> bytes of body, then "\n".
        let mut header = String::new();
        self.stream
            .read_line(&mut header)
            .await
            .map_err(|e| format!("varnish admin: {e}"))?;
        let mut parts = header.split_whitespace();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("varnish admin: bad header {header:?}"))?;
        let length: usize = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|n| *n <= MAX_BODY)
            .ok_or_else(|| format!("varnish admin: bad header {header:?}"))?;
        let mut body = vec![0u8; length + 1];
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("varnish admin: {e}"))?;
        body.truncate(length);
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Loads `vcl` under `name`, makes it active, and discards older proxyfleet VCLs.
    pub async fn load_and_use(&mut self, name: &str, vcl: &str) -> Result<(), String> {
        let marker = "PROXYFLEET_VCL_END";
        self.command(&format!("vcl.inline {name} << {marker}\n{vcl}\n{marker}"))
            .await?;
        self.command(&format!("vcl.use {name}")).await?;
        let list = self.command("vcl.list").await?;
        for old in discardable(&list, name) {
            // A VCL still in use by a request is discarded later by varnish itself; not an error.
            let _ = self.command(&format!("vcl.discard {old}")).await;
        }
        Ok(())
    }
}

/// SHA256(challenge + "\n" + secret + challenge + "\n"), in hex (varnish-cli(7)).
fn auth_response(challenge: &str, secret: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(challenge.as_bytes());
    hasher.update(b"\n");
    hasher.update(secret);
    hasher.update(challenge.as_bytes());
    hasher.update(b"\n");
    hex::encode(hasher.finalize())
}

/// Names of inactive proxyfleet VCLs in a `vcl.list` answer.
fn discardable<'a>(list: &'a str, keep: &str) -> Vec<&'a str> {
    list.lines()
        .filter(|line| line.split_whitespace().next() == Some("available"))
        .filter_map(|line| line.split_whitespace().last())
        .filter(|name| name.starts_with("pf") && *name != keep)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_only_inactive_proxyfleet_vcls() {
        let list = "active      auto    warm         0    pf3t1\navailable   auto    warm         0    pf2t1\navailable   auto    warm         0    boot\n";
        assert_eq!(discardable(list, "pf3t1"), vec!["pf2t1"]);
    }

    #[test]
    fn auth_is_sha256_of_challenge_secret_challenge() {
        let expected = hex::encode(Sha256::digest(b"abc\nsecret\nabc\n"));
        assert_eq!(auth_response("abc", b"secret\n"), expected);
    }
}
