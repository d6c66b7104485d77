//! Linked devices: each gets its own token, which authenticates the client API like the
//! account's and is accepted by the user's pro proxies. A Pro account links up to
//! `devices_per_pro_user`, a free one `devices_per_free_user`; past Pro, devices already
//! linked stay, but no new one can be added beyond the free limit.

use super::pro;
use super::Billing;
use crate::error::{Error, Result};
use crate::fleet::model::{Device, User, UserId};
use crate::fleet::users::{new_token_with_prefix, save_user};
use crate::http::TokenHash;
use crate::store::{abort, TreeId};

const NEXT_DEVICE_ID: &str = "devices.next_id";
const NAME_MAX_CHARS: usize = 64;

/// A device name: 1 to 64 printable characters, trimmed.
pub fn parse_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    let count = name.chars().count();
    let hidden = crate::http::body::is_invisible;
    if count == 0 || count > NAME_MAX_CHARS || name.chars().any(hidden) {
        return Err(Error::invalid(
            "invalid_device_name",
            "name must be 1 to 64 printable characters",
        ));
    }
    Ok(name.to_string())
}

impl Billing {
    pub fn device_limit(&self, user: &User, now_ms: u64) -> usize {
        if user.is_pro(now_ms) {
            self.settings.devices_per_pro_user
        } else {
            self.settings.devices_per_free_user
        }
    }

    /// Links a device; returns it with its token (shown once).
    pub async fn add_device(
        &self,
        user_id: UserId,
        name: &str,
        now_ms: u64,
    ) -> Result<(Device, String)> {
        let name = parse_name(name)?;
        let token = new_token_with_prefix("pfd");
        let token_hash = TokenHash::of(&token);
        let device = self.store.transaction(|tx| {
            let Some(mut user) = tx.get::<User>(TreeId::Users, user_id.key())? else {
                return abort(Error::NotFound(format!("user {user_id}")));
            };
            if let Err(disabled) = user.check_enabled() {
                return abort(disabled);
            }
            let limit = self.device_limit(&user, now_ms);
            if user.devices.len() >= limit {
                let kind = if user.is_pro(now_ms) {
                    "a Pro"
                } else {
                    "a free"
                };
                return abort(Error::conflict(
                    "device_limit",
                    format!("{kind} account links at most {limit} device(s); remove one first"),
                ));
            }
            let device = Device {
                id: tx.next(NEXT_DEVICE_ID)?,
                name: name.clone(),
                token_hash,
                created_ms: now_ms,
            };
            tx.put(TreeId::UserTokens, token_hash.as_bytes(), &user_id)?;
            crate::fleet::token_prefixes::record(tx, &token, &token_hash)?;
            pro::accept_token(tx, &user, &token_hash)?;
            user.devices.push(device.clone());
            save_user(tx, &user, now_ms)?;
            let data = serde_json::json!({ "device_name": device.name, "added_at": crate::mail::format_time(now_ms) });
            self.mail_in(tx, &user, "device_added", &format!("device_added:{}", device.id), data, now_ms)?;
            Ok(device)
        })?;
        self.store.durable().await?;
        self.queue.wake();
        Ok((device, token))
    }

    /// Unlinks a device: its token stops working everywhere at once.
    pub async fn remove_device(&self, user_id: UserId, device_id: u64, now_ms: u64) -> Result<()> {
        self.store.transaction(|tx| {
            let Some(mut user) = tx.get::<User>(TreeId::Users, user_id.key())? else {
                return abort(Error::NotFound(format!("user {user_id}")));
            };
            let Some(at) = user.devices.iter().position(|d| d.id == device_id) else {
                return abort(Error::NotFound(format!("device {device_id}")));
            };
            let device = user.devices.remove(at);
            tx.remove(TreeId::UserTokens, device.token_hash.as_bytes())?;
            crate::fleet::token_prefixes::forget(tx, &device.token_hash)?;
            pro::refuse_token(tx, &user, &device.token_hash)?;
            save_user(tx, &user, now_ms)
        })?;
        self.store.durable().await
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn names_with_bidirectional_controls_are_refused() {
        assert!(parse_name("laptop").is_ok());
        assert!(parse_name("exe.\u{202e}fdp").is_err());
        assert!(parse_name("a\u{2066}b").is_err());
    }
    use super::parse_name;

    #[test]
    fn device_names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Ana's phone ").unwrap(), "Ana's phone");
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(65)).is_err());
        assert!(parse_name("tab\there").is_err());
        assert_eq!(parse_name("téléphone").unwrap(), "téléphone");
    }
}
