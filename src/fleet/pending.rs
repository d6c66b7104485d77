//! Pending accounts: the invitee an invitation makes when it is sent, so the invitation itself
//! can carry a working config (a user behind a censor may never reach the primary to accept).
//! The account holds its fallback proxies from the start (they count as assigned), its token
//! reads its config and nothing else; accepting activates it, and an invitation that expires
//! or is revoked unused lets it lapse, releasing its proxies.
//!
//! The invitee's token is derived from the code with a secret of the fleet's, not stored: the
//! first accept and the bundle can both show it, and neither the outbox's task key, nor the
//! Redis mirror, nor a log ever holds more than its hash.

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::json;
use sha2::Sha256;

use super::links::set_proxies;
use super::model::{Invitation, InvitationState, User, UserStatus};
use super::users::save_user;
use super::Fleet;
use crate::error::{Error, Result};
use crate::http::TokenHash;
use crate::queue::{NewTask, TaskKind};
use crate::store::{Store, TreeId, Tx, TxResult};

/// Task: an invitation's expiry came; its pending account lapses if it was not accepted.
pub const INVITATION_EXPIRE: TaskKind = TaskKind::InvitationExpire;

const SECRET_KEY: &str = "fleet.invitation_secret";

/// The key invitees' tokens are derived with, generated on first start and kept in the store
/// (and its backups) with the config-signing key.
#[derive(Clone)]
pub struct InviteeSecret([u8; 32]);

impl InviteeSecret {
    /// Reads the secret, or makes one. A new secret is flushed with the first invitation's
    /// transaction, before any token derived from it is shown.
    pub fn load_or_create(store: &Store) -> Result<InviteeSecret> {
        if let Some(secret) = store.get::<[u8; 32]>(TreeId::Meta, SECRET_KEY)? {
            return Ok(InviteeSecret(secret));
        }
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        store.put(TreeId::Meta, SECRET_KEY, &secret)?;
        Ok(InviteeSecret(secret))
    }

    /// The token of the account the invitation `code` makes: `pfu_` and 64 hex digits, like
    /// any user token.
    pub fn token(&self, code: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(b"proxyfleet invitee token\0");
        mac.update(code.as_bytes());
        format!("pfu_{}", hex::encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for InviteeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteeSecret(***)")
    }
}

/// The task that lets the invitation's pending account lapse at its expiry (the queue runs it
/// once, at `expires_ms`).
pub fn queue_expiry(
    tx: &Tx,
    queue: &crate::queue::Queue,
    invitation: &Invitation,
    now_ms: u64,
) -> TxResult<()> {
    let task = NewTask {
        kind: INVITATION_EXPIRE,
        key: format!("{INVITATION_EXPIRE}:{}", invitation.code),
        payload: json!({ "code": invitation.code }),
        due_ms: invitation.expires_ms,
    };
    queue.enqueue_in(tx, &task, now_ms).map(|_| ())
}

/// Lets the invitation's pending account lapse: its proxies are released (the history says
/// why), its email and token freed. Nothing for an invitation without one, or whose account
/// is no longer pending.
pub fn release(
    tx: &Tx,
    queue: &crate::queue::Queue,
    invitation: &Invitation,
    why: &str,
    now_ms: u64,
) -> TxResult<bool> {
    let Some(id) = invitation.invitee else {
        return Ok(false);
    };
    let Some(mut user) = tx.get::<User>(TreeId::Users, id.key())? else {
        return Ok(false);
    };
    if user.status != UserStatus::Pending {
        return Ok(false);
    }
    user.status = UserStatus::Lapsed;
    if tx.get::<super::model::UserId>(TreeId::UserEmails, user.email.as_str())? == Some(id) {
        tx.remove(TreeId::UserEmails, user.email.as_str())?;
    }
    tx.remove(TreeId::UserTokens, user.token_hash.as_bytes())?;
    super::token_prefixes::forget(tx, &user.token_hash)?;
    let released = !user.proxies.is_empty();
    if !set_proxies(tx, &mut user, Vec::new(), why, now_ms)? {
        save_user(tx, &user, now_ms)?;
    }
    if released {
        super::placement::queue_placement(queue, tx, now_ms)?;
    }
    Ok(true)
}

impl Fleet {
    /// The token of the account the invitation `code` makes (shown to the inviter with the
    /// bundle, and to the first accept).
    pub fn invitee_token(&self, code: &str) -> String {
        self.invitee_secret.token(code)
    }

    /// The user a token belongs to, if that token may read a config: active accounts and
    /// pending ones (an invitee whose client holds the invitation's bundle).
    pub fn config_reader_by_token(&self, token: &str) -> Result<Option<User>> {
        let hash = TokenHash::of(token);
        let Some(id) = self
            .store
            .get::<super::model::UserId>(TreeId::UserTokens, hash.as_bytes())?
        else {
            return Ok(None);
        };
        Ok(self
            .user(id)?
            .filter(|u| u.reads_config() && u.token_hashes().any(|h| *h == hash)))
    }

    /// The `fleet.invitation_expire` task: the invitation's pending account lapses if the code
    /// expired unused. Running it again, or for a code accepted or revoked meanwhile, changes
    /// nothing.
    pub async fn expire_invitation_task(
        &self,
        payload: &str,
        now_ms: u64,
    ) -> std::result::Result<(), String> {
        let code = serde_json::from_str::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .ok_or_else(|| format!("bad payload {payload}"))?;
        let lapsed = self
            .store
            .transaction(|tx| {
                let Some(invitation) = tx.get::<Invitation>(TreeId::Invitations, &code)? else {
                    return Ok(None);
                };
                if invitation.state(now_ms) != InvitationState::Expired {
                    return Ok(None);
                }
                let released = release(
                    tx,
                    &self.queue,
                    &invitation,
                    "invitation expired unused",
                    now_ms,
                )?;
                Ok(released.then_some(invitation.invitee).flatten())
            })
            .map_err(|e: Error| e.to_string())?;
        if let Some(id) = lapsed {
            self.store.durable().await.map_err(|e| e.to_string())?;
            self.queue.wake();
            self.notifier.notify(&[id]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitee_tokens_are_per_code_and_per_secret() {
        let secret = InviteeSecret([7; 32]);
        let token = secret.token("abc");
        assert!(
            token.starts_with("pfu_") && token.len() == 4 + 64,
            "{token}"
        );
        assert_eq!(secret.token("abc"), token, "derived, so the same each time");
        assert_ne!(secret.token("abd"), token);
        assert_ne!(InviteeSecret([8; 32]).token("abc"), token);
        assert_eq!(format!("{secret:?}"), "InviteeSecret(***)");
    }
}
