//! `proxyfleet admin list | disable | enable | remove | reset-password | reset-totp`. With the
//! server stopped the store is opened here; while it runs (sled allows one process) the
//! command asks the server, with the control cookie it left in its data directory. Either way
//! it says which data directory it used, and refuses one that holds no store.

use std::path::PathBuf;

use super::accounts::{self, AccountAction, AccountView};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;

/// What the command does.
pub enum Request {
    List,
    Act {
        username: String,
        action: AccountAction,
    },
}

/// Runs the request; returns the lines to print.
pub async fn run(config: &Config, request: Request) -> Result<Vec<String>> {
    let dir = existing_store(config)?;
    let mut lines = vec![format!("data directory: {}", dir.display())];
    match Store::open(&config.data_dir) {
        Ok(store) => {
            lines.extend(offline(&store, &request)?);
            store.flush_now()?;
        }
        Err(_) => lines.extend(online(config, &request).await?),
    }
    Ok(lines)
}

/// The absolute data directory, if it holds a store.
pub fn existing_store(config: &Config) -> Result<PathBuf> {
    let dir = std::fs::canonicalize(&config.data_dir).unwrap_or(config.data_dir.clone());
    if !Store::exists(&dir) {
        return Err(Error::internal(format!(
            "{} holds no proxyfleet store: point --config or PROXYFLEET_DATA_DIR at the server's \
             data directory",
            dir.display()
        )));
    }
    Ok(dir)
}

fn offline(store: &Store, request: &Request) -> Result<Vec<String>> {
    match request {
        Request::List => Ok(accounts::list(store)?
            .iter()
            .map(|a| describe(&AccountView::from(a)))
            .collect()),
        Request::Act { username, action } => {
            let password = accounts::apply(store, username, *action, false)?;
            Ok(done(username, *action, password))
        }
    }
}

fn describe(account: &AccountView) -> String {
    format!(
        "{}\t{}\t{}",
        account.username,
        if account.disabled {
            "disabled"
        } else {
            "enabled"
        },
        if account.totp_enabled {
            format!(
                "totp on ({} recovery codes left)",
                account.recovery_codes_left
            )
        } else {
            "totp off".to_string()
        }
    )
}

fn done(username: &str, action: AccountAction, password: Option<String>) -> Vec<String> {
    let mut lines = vec![format!(
        "{username}: {action:?} done; its sessions have ended"
    )];
    if action == AccountAction::Enable {
        lines[0] = format!("{username}: enabled");
    }
    if action == AccountAction::Remove {
        lines[0] = format!("{username}: removed; its sessions have ended");
    }
    if let Some(password) = password {
        lines.push(format!(
            "new password (shown once, only its argon2 hash is stored): {password}"
        ));
    }
    lines
}

async fn online(config: &Config, request: &Request) -> Result<Vec<String>> {
    let cookie = crate::backup::command::control_cookie(config)?;
    let base = crate::backup::command::local_url(config);
    let client = reqwest::Client::new();
    let call = match request {
        Request::List => client.get(format!("{base}/admin/api/accounts")),
        Request::Act { username, action } => client.post(format!(
            "{base}/admin/api/accounts/{username}/{}",
            action.name()
        )),
    };
    let response = call
        .bearer_auth(cookie)
        .send()
        .await
        .map_err(|e| Error::caused_by(format!("asking the running server at {base}"), e))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no details");
        return Err(Error::internal(format!(
            "the running server answered {status}: {message}"
        )));
    }
    match request {
        Request::List => {
            let listed: Vec<AccountView> =
                serde_json::from_value(body["accounts"].clone()).map_err(Error::internal)?;
            Ok(listed.iter().map(describe).collect())
        }
        Request::Act { username, action } => {
            let password = body["password"].as_str().map(str::to_string);
            Ok(done(username, *action, password))
        }
    }
}
