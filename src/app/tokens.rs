//! The admin and registry tokens. A token set in the configuration wins; otherwise one is
//! generated on first start, only its hash is stored, and the token itself is handed back once
//! so that `serve` can print it. Lose it and you set a new one in the configuration.

use rand::RngCore;

use crate::api::Tokens;
use crate::config::{Config, Secret};
use crate::error::Result;
use crate::http::TokenHash;
use crate::store::{Store, TreeId};

/// Tokens the server generated that no admin has acknowledged yet: (label, token), shown at
/// every start until `proxyfleet tokens --ack` (a start that printed them where nobody looked,
/// or failed right after, would otherwise leave a fleet nobody can administer).
pub type NewTokens = Vec<(String, String)>;

/// The file in the data directory holding the generated tokens until they are acknowledged
/// (one `label token` a line, readable by the server's user only).
pub const UNACKNOWLEDGED: &str = "generated-tokens";

pub async fn load_or_create(store: &Store, config: &Config) -> Result<(Tokens, NewTokens)> {
    let mut generated = NewTokens::new();
    let admin = resolve(store, "admin", config.admin_token.as_ref(), &mut generated)?;
    let registry = resolve(
        store,
        "registry",
        config.registry_token.as_ref(),
        &mut generated,
    )?;
    let path = config.data_dir.join(UNACKNOWLEDGED);
    if !generated.is_empty() {
        // On disk before the hashes are durable: a hash never outlives its only copy.
        let mut pending = read_unacknowledged(&path)?;
        pending.extend(generated);
        write_unacknowledged(&path, &pending)?;
        store.durable().await?;
    }
    let generated = read_unacknowledged(&path)?;
    let control = write_control_cookie(&config.data_dir)?;
    Ok((
        Tokens {
            admin,
            registry,
            control,
        },
        generated,
    ))
}

/// Beside the cookie: the URL of the plain-HTTP listener as bound (the CLI's way in).
pub fn write_control_url(data_dir: &std::path::Path, address: std::net::SocketAddr) -> Result<()> {
    let mut address = address;
    if address.ip().is_unspecified() {
        address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let path = data_dir.join(crate::config::CONTROL_URL);
    std::fs::write(&path, format!("http://{address}"))
        .map_err(|e| crate::error::Error::caused_by(path.display().to_string(), e))
}

/// The file `proxyfleet backup` and `proxyfleet admin ...` read to ask the running server
/// (as Tor's control cookie): whoever can read the data directory may take a backup or manage
/// admin accounts, without the admin token, as they could with the server stopped. A new one
/// each start; readable by the server's user only.
fn write_control_cookie(data_dir: &std::path::Path) -> Result<TokenHash> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let cookie = hex::encode(bytes);
    let path = data_dir.join(crate::config::CONTROL_COOKIE);
    let io = |e: std::io::Error| crate::error::Error::caused_by(path.display().to_string(), e);
    let _ = std::fs::remove_file(&path);
    // The name before format 3.
    let _ = std::fs::remove_file(data_dir.join("backup.cookie"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    file.write_all(cookie.as_bytes()).map_err(io)?;
    Ok(TokenHash::of(&cookie))
}

fn read_unacknowledged(path: &std::path::Path) -> Result<NewTokens> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(label, token)| (label.to_string(), token.to_string()))
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(NewTokens::new()),
        Err(e) => Err(crate::error::Error::caused_by(
            path.display().to_string(),
            e,
        )),
    }
}

fn write_unacknowledged(path: &std::path::Path, tokens: &NewTokens) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| crate::error::Error::caused_by(path.display().to_string(), e);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    for (label, token) in tokens {
        writeln!(file, "{label} {token}").map_err(io)?;
    }
    file.sync_all().map_err(io)
}

/// `proxyfleet tokens --ack`: the operator has the generated tokens; they are no longer
/// printed. Returns whether there were any.
pub fn acknowledge_tokens(data_dir: &std::path::Path) -> Result<bool> {
    let path = data_dir.join(UNACKNOWLEDGED);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(crate::error::Error::caused_by(
            path.display().to_string(),
            e,
        )),
    }
}

fn resolve(
    store: &Store,
    label: &'static str,
    configured: Option<&Secret>,
    generated: &mut NewTokens,
) -> Result<TokenHash> {
    if let Some(token) = configured.filter(|t| !t.expose().is_empty()) {
        return Ok(TokenHash::of(token.expose()));
    }
    let key = format!("token.{label}.sha256");
    if let Some(hash) = store.get::<TokenHash>(TreeId::Meta, &key)? {
        return Ok(hash);
    }
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = format!("pf{}_{}", &label[..1], hex::encode(bytes));
    let hash = TokenHash::of(&token);
    store.put(TreeId::Meta, &key, &hash)?;
    generated.push((label.to_string(), token));
    Ok(hash)
}
