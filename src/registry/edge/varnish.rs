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

    /// Loads `vcl` under `name` (compiled by varnishd; not yet used).
    pub async fn load(&mut self, name: &str, vcl: &str) -> Result<(), String> {
        let marker = "PROXYFLEET_VCL_END";
        self.command(&format!("vcl.inline {name} << {marker}\n{vcl}\n{marker}"))
            .await
            .map(|_| ())
    }

    /// Points `label` at the loaded VCL `name` (a top VCL's `return (vcl(label))` follows).
    pub async fn label(&mut self, label: &str, name: &str) -> Result<(), String> {
        self.command(&format!("vcl.label {label} {name}"))
            .await
            .map(|_| ())
    }

    /// The `vcl.list` answer.
    pub async fn list(&mut self) -> Result<VclList, String> {
        self.command("vcl.list").await.map(VclList)
    }

    /// Makes the loaded VCL `name` active, then discards every other proxyfleet VCL nothing
    /// routes to and every label not in `keep` (varnishd refuses to discard what is still in
    /// use, say by a request in flight; not an error: the next sync tries again).
    pub async fn use_and_discard_others(
        &mut self,
        name: &str,
        keep: &[String],
    ) -> Result<(), String> {
        self.command(&format!("vcl.use {name}")).await?;
        // Old top VCLs first, then the labels only they returned to, then the group VCLs
        // those labels held.
        self.discard_unused_vcls(name).await?;
        let list = self.list().await?;
        for (is_label, old) in list.ours_available() {
            if is_label && !keep.iter().any(|k| k == old) {
                let _ = self.command(&format!("vcl.discard {old}")).await;
            }
        }
        self.discard_unused_vcls(name).await
    }

    async fn discard_unused_vcls(&mut self, active: &str) -> Result<(), String> {
        let list = self.list().await?;
        for (is_label, old) in list.ours_available() {
            if !is_label && old != active {
                let _ = self.command(&format!("vcl.discard {old}")).await;
            }
        }
        Ok(())
    }
}

/// A `vcl.list` answer: `state temperature-mode temperature busy name [-> target | <- (n label)]`.
pub struct VclList(String);

impl VclList {
    /// Inactive proxyfleet VCLs and labels: (is a label, name). A VCL a label points at
    /// (`<-`) is in use and left out.
    fn ours_available(&self) -> Vec<(bool, &str)> {
        self.0
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (state, mode, name) = (fields.first()?, fields.get(1)?, fields.get(4)?);
                let labelled = fields.get(5) == Some(&"<-");
                (*state == "available" && name.starts_with("pf") && !labelled)
                    .then_some((*mode == "label", *name))
            })
            .collect()
    }

    /// Whether the label `label` exists (a restarted varnishd has none of ours).
    pub fn has_label(&self, label: &str) -> bool {
        self.0.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&"label") && fields.get(4) == Some(&label)
        })
    }

    /// The active VCL's name.
    pub fn active(&self) -> Option<&str> {
        self.0.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.first() == Some(&"active")).then(|| fields.get(4).copied())?
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vcls_and_labels_from_a_vcl_list() {
        // As varnishd 7.1 answers, a label and its VCL included.
        let list = VclList(
            "available   auto     warm         0    boot\n\
             available   auto     warm         0    pfg2_0v1t1\n\
             available   label    warm         0    pfg2_0    ->    pfg2_0v2t2 (1 return(vcl))\n\
             active      auto     warm         0    pf2t2\n\
             available   auto     warm         0    pfg2_0v2t2        <-    (1 label)\n"
                .to_string(),
        );
        assert_eq!(
            list.ours_available(),
            vec![(false, "pfg2_0v1t1"), (true, "pfg2_0")],
            "the VCL the label points at is in use"
        );
        assert!(list.has_label("pfg2_0") && !list.has_label("pfg2_1"));
        assert_eq!(list.active(), Some("pf2t2"));
    }

    #[test]
    fn auth_is_sha256_of_challenge_secret_challenge() {
        let expected = hex::encode(Sha256::digest(b"abc\nsecret\nabc\n"));
        assert_eq!(auth_response("abc", b"secret\n"), expected);
    }
}
