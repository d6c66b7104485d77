//! Invitations: a user invites an email; accepting the code creates the invitee once, with
//! the inviter as its trust-graph parent. The invitation mail goes to the outbox.

use rand::RngCore;
use serde_json::json;

use super::model::{Email, Invitation, User};
use super::users::{new_token, Created};
use super::Fleet;
use crate::error::{Error, Result};
use crate::store::{abort, TreeId};

fn new_code() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Fleet {
    pub async fn invite(&self, inviter: &User, email: &Email, now_ms: u64) -> Result<Invitation> {
        let code = new_code();
        let invitation = self.store.transaction(|tx| {
            if tx.contains(TreeId::UserEmails, email.as_str())? {
                return abort(Error::conflict(
                    "email_taken",
                    format!("{} already has an account", email.as_str()),
                ));
            }
            let invitation = Invitation {
                code: code.clone(),
                inviter: inviter.id,
                email: email.clone(),
                created_ms: now_ms,
                accepted_user: None,
            };
            tx.put(TreeId::Invitations, &code, &invitation)?;
            let data = json!({ "code": code, "inviter_email": inviter.email.as_str() });
            crate::mail::queue_in(
                tx,
                &self.queue,
                email.as_str(),
                "invitation",
                &data,
                &format!("invitation:{code}"),
                now_ms,
            )?;
            Ok(invitation)
        })?;
        self.store.durable().await?;
        self.queue.wake();
        Ok(invitation)
    }

    /// Accepts an invitation: the first call creates the invitee (token shown), later calls
    /// return the same user (no token). One transaction decides, so concurrent accepts agree.
    pub async fn accept(&self, code: &str, now_ms: u64) -> Result<Created> {
        let Some(invitation) = self.store.get::<Invitation>(TreeId::Invitations, code)? else {
            return Err(Error::NotFound("invitation".into()));
        };
        let (proxies, _pending) = self.initial_proxies(Some(invitation.inviter), now_ms)?;
        let token = new_token();
        let (user, fresh) = self.store.transaction(|tx| {
            let Some(mut invitation) = tx.get::<Invitation>(TreeId::Invitations, code)? else {
                return abort(Error::NotFound("invitation".into()));
            };
            if let Some(existing) = invitation.accepted_user {
                let Some(user) = tx.get::<User>(TreeId::Users, existing.key())? else {
                    return abort(Error::internal("accepted invitation points to no user"));
                };
                return Ok((user, false));
            }
            let user = self.new_users.create_in(
                tx,
                &invitation.email,
                Some(invitation.inviter),
                &proxies,
                &token,
                now_ms,
            )?;
            invitation.accepted_user = Some(user.id);
            tx.put(TreeId::Invitations, code, &invitation)?;
            Ok((user, true))
        })?;
        self.store.durable().await?;
        Ok(Created {
            user,
            token: fresh.then_some(token),
        })
    }
}
