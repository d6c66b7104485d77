//! Invitations: a user invites an email; accepting the code creates the invitee once, with
//! the inviter as its trust-graph parent. The invitation mail goes to the outbox.
//!
//! Invitations are how the trust graph grows, so they are what a censor holding an account
//! would abuse to reach more proxies: each inviter has a quota per period (the inviter's
//! `Ledger`), a code expires unused after `ttl`, and it dies when its inviter or an admin
//! revokes it or the inviter's account is disabled.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::model::{
    Email, Invitation, InvitationState, InvitationV4, InvitationV5, Revocation, RevokedBy, User,
    UserId, UserStatus,
};
use super::pending;
use super::users::{new_token, Created};
use super::Fleet;
use crate::error::{Error, Result};
use crate::queue::Queue;
use crate::store::{abort, Store, TreeId, Tx, TxResult};

/// The most an admin may set one user's quota to, per period: the inviter's ledger holds a
/// timestamp per invitation of the period, so its size stays bounded.
pub const MAX_QUOTA: u32 = 1_000;
/// The expiry given to invitations made before they expired: `invitation_ttl_secs`' default
/// (the migration runs before the configuration is at hand).
const MIGRATED_TTL_MS: u64 = 14 * 86_400 * 1000;
/// Invitations listed per page at most.
pub const MAX_PAGE: usize = 200;

/// How invitations are bounded (`invitation_*` settings).
#[derive(Debug, Clone, Copy)]
pub struct InvitationRules {
    /// An unused code expires this long after it was made.
    pub ttl_ms: u64,
    /// The window the quota counts in.
    pub period_ms: u64,
    /// Invitations per period for a user without Pro, and with Pro.
    pub per_period: u32,
    pub pro_per_period: u32,
}

/// Per inviter: the admin's override of the quota, when the invitations of the current period
/// were made, and the codes still open (revoked with the account when it is disabled). One
/// record, read and written in each invitation's transaction, so two invitations at once
/// cannot both take the last slot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub quota_override: Option<u32>,
    /// Creation times within the last period, oldest first.
    pub recent_ms: Vec<u64>,
    /// Codes neither accepted nor revoked, with when they expire: pruned at every write, so
    /// the list holds at most the codes of one expiry's time.
    pub open: Vec<OpenCode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenCode {
    pub code: String,
    pub expires_ms: u64,
}

/// An inviter's quota as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quota {
    pub per_period: u32,
    pub period_secs: u64,
    pub used: u32,
    /// When the next invitation is allowed, if none is now (unix seconds).
    pub next_allowed_at: Option<u64>,
    /// Set by an admin for this user (else the default, or the Pro default).
    pub overridden: bool,
}

/// One page of invitations, newest first, with the cursor of the next.
#[derive(Debug, Clone)]
pub struct InvitationPage {
    pub invitations: Vec<Invitation>,
    /// Pass as `before` for the next page (`None`: this was the last).
    pub next_before: Option<String>,
}

fn new_code() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// `UserInvitations` key: (inviter, created_ms, code), so one inviter's are a prefix, newest
/// last.
fn index_key(invitation: &Invitation) -> Vec<u8> {
    index_key_of(invitation.inviter, invitation.created_ms, &invitation.code)
}

fn index_key_of(inviter: UserId, created_ms: u64, code: &str) -> Vec<u8> {
    let mut key = crate::store::codec::pair_key(inviter.0, created_ms).to_vec();
    key.extend_from_slice(code.as_bytes());
    key
}

impl Ledger {
    pub fn read(tx: &Tx, inviter: UserId) -> TxResult<Ledger> {
        Ok(tx
            .get(TreeId::InvitationLedgers, inviter.key())?
            .unwrap_or_default())
    }

    /// Stores the ledger, without the codes expired by `now_ms` (nothing can use them).
    fn write(&mut self, tx: &Tx, inviter: UserId, now_ms: u64) -> TxResult<()> {
        self.open.retain(|open| open.expires_ms > now_ms);
        tx.put(TreeId::InvitationLedgers, inviter.key(), &*self)
    }

    fn close(&mut self, code: &str) {
        self.open.retain(|open| open.code != code);
    }

    fn quota(&self, inviter: &User, rules: &InvitationRules, now_ms: u64) -> Quota {
        let per_period = self.quota_override.unwrap_or(if inviter.is_pro(now_ms) {
            rules.pro_per_period
        } else {
            rules.per_period
        });
        let since = now_ms.saturating_sub(rules.period_ms);
        let recent: Vec<u64> = self
            .recent_ms
            .iter()
            .copied()
            .filter(|at| *at > since)
            .collect();
        let used = u32::try_from(recent.len()).unwrap_or(u32::MAX);
        let next_allowed_at = (used >= per_period).then(|| {
            // The slot the oldest counted invitation holds frees when it leaves the window
            // (with no quota at all, at the end of a period from now).
            let frees_at = recent
                .len()
                .checked_sub(per_period as usize)
                .and_then(|i| recent.get(i))
                .map_or(now_ms + rules.period_ms, |at| at + rules.period_ms);
            frees_at.div_ceil(1000)
        });
        Quota {
            per_period,
            period_secs: rules.period_ms / 1000,
            used,
            next_allowed_at,
            overridden: self.quota_override.is_some(),
        }
    }
}

/// An invitation as made: the invitation, the invitee's pending account, the account's token
/// and the bundle the caller made for it (which the invitation mail carries).
pub struct Invited {
    pub invitation: Invitation,
    pub invitee: User,
    pub token: String,
    pub bundle: Value,
}

/// Makes what the invitation carries for the invitee's client from the pending account, the
/// invitation and the account's token. The caller's (the config server signs it), run inside
/// the invitation's transaction, so it must only compute.
pub type BundleMaker<'a> = &'a (dyn Fn(&User, &Invitation, &str) -> Value + Sync);

impl Fleet {
    /// Invites `email`: within the inviter's quota, makes the invitation and the invitee's
    /// pending account with its fallback proxies (chosen as for a sign-up under this
    /// inviter), schedules its expiry, and queues the mail carrying `bundle`'s result. One
    /// transaction.
    pub async fn invite(
        &self,
        inviter: &User,
        email: &Email,
        now_ms: u64,
        bundle: BundleMaker<'_>,
    ) -> Result<Invited> {
        let code = new_code();
        let token = self.invitee_token(&code);
        let rules = self.settings.invitations;
        let level = self.starting_level(None, Some(inviter.id), now_ms)?;
        // Held until the commit, so concurrent invitations and sign-ups see the slots taken.
        let (proxies, _placed) = self.initial_proxies(Some(inviter.id), level, now_ms)?;
        let invited = self.store.transaction(|tx| {
            let Some(inviter) = tx.get::<User>(TreeId::Users, inviter.id.key())? else {
                return abort(Error::NotFound(format!("user {}", inviter.id)));
            };
            inviter.check_enabled().or_else(abort)?;
            super::suspicion::refuse_quarantined(tx, inviter.id)?;
            super::trust::refuse_inviting(tx, &inviter, &self.settings.trust, now_ms)?;
            let mut ledger = Ledger::read(tx, inviter.id)?;
            let quota = ledger.quota(&inviter, &rules, now_ms);
            if let Some(next) = quota.next_allowed_at {
                return abort(Error::QuotaExceeded {
                    code: "invitation_quota",
                    message: format!(
                        "{} invitations per {} days are allowed and {} were sent; the next is \
                         allowed at {}",
                        quota.per_period,
                        quota.period_secs / 86_400,
                        quota.used,
                        crate::mail::format_time(next * 1000)
                    ),
                    retry_after_secs: next.saturating_sub(now_ms / 1000).max(1),
                });
            }
            if tx.contains(TreeId::UserEmails, email.as_str())? {
                return abort(Error::conflict(
                    "email_taken",
                    format!("{} already has an account", email.as_str()),
                ));
            }
            let invitee = self
                .new_users
                .create_pending_in(tx, email, inviter.id, level, &proxies, &token, now_ms)?;
            let invitation = Invitation {
                code: code.clone(),
                inviter: inviter.id,
                email: email.clone(),
                created_ms: now_ms,
                accepted_user: None,
                expires_ms: now_ms + rules.ttl_ms,
                revoked: None,
                invitee: Some(invitee.id),
            };
            tx.put(TreeId::Invitations, &code, &invitation)?;
            tx.put_marker(TreeId::UserInvitations, index_key(&invitation))?;
            pending::queue_expiry(tx, &self.queue, &invitation, now_ms)?;
            let since = now_ms.saturating_sub(rules.period_ms);
            ledger.recent_ms.retain(|at| *at > since);
            ledger.recent_ms.push(now_ms);
            ledger.open.push(OpenCode {
                code: code.clone(),
                expires_ms: invitation.expires_ms,
            });
            ledger.write(tx, inviter.id, now_ms)?;
            let bundle = bundle(&invitee, &invitation, &token);
            let data = json!({
                "code": code,
                "inviter_email": inviter.email.as_str(),
                "expires_at": crate::mail::format_time(invitation.expires_ms),
                "bundle": bundle,
            });
            crate::mail::queue_in(
                tx,
                &self.queue,
                email.as_str(),
                "invitation",
                &data,
                &format!("invitation:{code}"),
                now_ms,
            )?;
            Ok(Invited {
                invitation,
                invitee,
                token: token.clone(),
                bundle,
            })
        })?;
        self.store.durable().await?;
        self.queue.wake();
        Ok(invited)
    }

    /// Accepts an invitation: the first call activates the invitee's pending account (or, for
    /// an invitation made before they existed, creates the account) and shows its token;
    /// later calls return the same user (no token). One transaction decides, so concurrent
    /// accepts agree. An expired or revoked code, or one whose inviter is disabled, gets a
    /// 410.
    pub async fn accept(&self, code: &str, now_ms: u64) -> Result<Created> {
        let Some(invitation) = self.store.get::<Invitation>(TreeId::Invitations, code)? else {
            return Err(Error::NotFound("invitation".into()));
        };
        let unused = invitation.accepted_user.is_none();
        // Refused before a proxy is chosen for nobody; decided again in the transaction.
        if unused {
            let inviter = self
                .store
                .get::<User>(TreeId::Users, invitation.inviter.key())?;
            refuse_unusable(&invitation, inviter.as_ref(), now_ms)?;
        }
        let made_before_pending = invitation.invitee.is_none();
        let level = self.starting_level(None, Some(invitation.inviter), now_ms)?;
        let placed = if unused && made_before_pending {
            Some(self.initial_proxies(Some(invitation.inviter), level, now_ms)?)
        } else {
            None
        };
        let proxies = placed.as_ref().map_or(&[][..], |(p, _)| p.as_slice());
        let token = if made_before_pending {
            new_token()
        } else {
            self.invitee_token(code)
        };
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
            let inviter = tx.get::<User>(TreeId::Users, invitation.inviter.key())?;
            refuse_unusable(&invitation, inviter.as_ref(), now_ms).or_else(abort)?;
            let user = match invitation.invitee {
                Some(id) => {
                    let mut user = match tx.get::<User>(TreeId::Users, id.key())? {
                        Some(user) if user.status == UserStatus::Pending => user,
                        _ => return abort(withdrawn()),
                    };
                    self.new_users.activate_in(tx, &mut user, now_ms)?;
                    user
                }
                None => self.new_users.create_in(
                    tx,
                    &invitation.email,
                    Some(invitation.inviter),
                    level,
                    proxies,
                    &token,
                    now_ms,
                )?,
            };
            invitation.accepted_user = Some(user.id);
            tx.put(TreeId::Invitations, code, &invitation)?;
            let mut ledger = Ledger::read(tx, invitation.inviter)?;
            ledger.close(code);
            ledger.write(tx, invitation.inviter, now_ms)?;
            Ok((user, true))
        })?;
        self.store.durable().await?;
        if fresh {
            // The welcome mail.
            self.queue.wake();
        }
        Ok(Created {
            user,
            token: fresh.then_some(token),
        })
    }

    /// Withdraws an unused invitation. `as_inviter`: only that user's own code (another's is
    /// reported as not found, so codes cannot be probed). Revoking twice is harmless; an
    /// accepted invitation cannot be (409 `invitation_accepted`: disable the account).
    pub async fn revoke_invitation(
        &self,
        code: &str,
        as_inviter: Option<UserId>,
        now_ms: u64,
    ) -> Result<Invitation> {
        let by = match as_inviter {
            Some(_) => RevokedBy::Inviter,
            None => RevokedBy::Admin,
        };
        let invitation = self.store.transaction(|tx| {
            let found = tx.get::<Invitation>(TreeId::Invitations, code)?;
            let Some(mut invitation) =
                found.filter(|i| as_inviter.is_none_or(|id| id == i.inviter))
            else {
                return abort(Error::NotFound("invitation".into()));
            };
            if invitation.accepted_user.is_some() {
                return abort(Error::conflict(
                    "invitation_accepted",
                    "this invitation was accepted: disable the account it made instead",
                ));
            }
            if invitation.revoked.is_none() {
                invitation.revoked = Some(Revocation { at_ms: now_ms, by });
                tx.put(TreeId::Invitations, code, &invitation)?;
                let mut ledger = Ledger::read(tx, invitation.inviter)?;
                ledger.close(code);
                ledger.write(tx, invitation.inviter, now_ms)?;
                pending::release(tx, &self.queue, &invitation, "invitation revoked", now_ms)?;
            }
            Ok(invitation)
        })?;
        self.store.durable().await?;
        Ok(invitation)
    }

    /// An inviter's invitations, newest first, `limit` at most, from before the code `before`
    /// (the previous page's cursor).
    pub fn invitations_of(
        &self,
        inviter: UserId,
        limit: usize,
        before: Option<&str>,
    ) -> Result<InvitationPage> {
        let prefix = inviter.key();
        let upper: Vec<u8> = match before {
            Some(code) => match self.store.get::<Invitation>(TreeId::Invitations, code)? {
                Some(cursor) if cursor.inviter == inviter => index_key(&cursor),
                _ => return Err(Error::invalid("invalid_cursor", "no such invitation")),
            },
            None => crate::store::codec::u64_key(inviter.0 + 1).to_vec(),
        };
        let limit = limit.clamp(1, MAX_PAGE);
        let mut invitations = Vec::with_capacity(limit);
        let mut more = false;
        for item in self
            .store
            .scan_rev::<()>(TreeId::UserInvitations, Some(&upper))
        {
            let (key, ()) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            if invitations.len() == limit {
                more = true;
                break;
            }
            let code = String::from_utf8_lossy(&key[16..]).into_owned();
            if let Some(invitation) = self.store.get(TreeId::Invitations, &code)? {
                invitations.push(invitation);
            }
        }
        let next_before = more
            .then(|| invitations.last().map(|i: &Invitation| i.code.clone()))
            .flatten();
        Ok(InvitationPage {
            invitations,
            next_before,
        })
    }

    /// Every invitation, oldest code first from `after`, with the count of each state over
    /// all of them (the admin's view). Bounded by the quota: at most `per_period` per user
    /// per period are ever made.
    pub fn all_invitations(
        &self,
        state: Option<InvitationState>,
        limit: usize,
        after: Option<&str>,
        now_ms: u64,
    ) -> Result<(Vec<Invitation>, InvitationCounts)> {
        let mut counts = InvitationCounts::default();
        let mut page = Vec::new();
        let limit = limit.clamp(1, MAX_PAGE);
        for invitation in self.store.values::<Invitation>(TreeId::Invitations) {
            let invitation = invitation?;
            let current = invitation.state(now_ms);
            counts.add(current);
            let wanted = state.is_none_or(|s| s == current)
                && after.is_none_or(|a| invitation.code.as_str() > a);
            if wanted && page.len() < limit {
                page.push(invitation);
            }
        }
        Ok((page, counts))
    }

    /// The inviter's quota now.
    pub fn invitation_quota(&self, inviter: &User, now_ms: u64) -> Result<Quota> {
        let ledger: Ledger = self
            .store
            .get(TreeId::InvitationLedgers, inviter.id.key())?
            .unwrap_or_default();
        Ok(ledger.quota(inviter, &self.settings.invitations, now_ms))
    }

    /// Sets (or, with `None`, clears) an admin's override of one user's quota per period.
    pub async fn set_invitation_quota(
        &self,
        id: UserId,
        per_period: Option<u32>,
        now_ms: u64,
    ) -> Result<Quota> {
        if per_period.is_some_and(|n| n > MAX_QUOTA) {
            return Err(Error::invalid(
                "invalid_quota",
                format!("per_period must be at most {MAX_QUOTA}"),
            ));
        }
        let rules = self.settings.invitations;
        let quota = self.store.transaction(|tx| {
            let Some(user) = tx.get::<User>(TreeId::Users, id.key())? else {
                return abort(Error::NotFound(format!("user {id}")));
            };
            let mut ledger = Ledger::read(tx, id)?;
            ledger.quota_override = per_period;
            ledger.write(tx, id, now_ms)?;
            Ok(ledger.quota(&user, &rules, now_ms))
        })?;
        self.store.durable().await?;
        Ok(quota)
    }
}

/// Counts of invitations by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct InvitationCounts {
    pub open: u64,
    pub accepted: u64,
    pub expired: u64,
    pub revoked: u64,
}

impl InvitationCounts {
    fn add(&mut self, state: InvitationState) {
        match state {
            InvitationState::Open => self.open += 1,
            InvitationState::Accepted => self.accepted += 1,
            InvitationState::Expired => self.expired += 1,
            InvitationState::Revoked => self.revoked += 1,
        }
    }
}

/// 410 for a code that can no longer make an account: revoked (also when its inviter is
/// disabled or gone), or expired.
fn refuse_unusable(invitation: &Invitation, inviter: Option<&User>, now_ms: u64) -> Result<()> {
    let inviter_disabled = inviter.is_none_or(|u| u.status != UserStatus::Active);
    if invitation.revoked.is_some() || inviter_disabled {
        return Err(withdrawn());
    }
    if now_ms >= invitation.expires_ms {
        return Err(Error::gone(
            "invitation_expired",
            format!(
                "this invitation expired at {}",
                crate::mail::format_time(invitation.expires_ms)
            ),
        ));
    }
    Ok(())
}

fn withdrawn() -> Error {
    Error::gone("invitation_revoked", "this invitation was withdrawn")
}

/// Revokes the inviter's open invitations (their pending accounts lapse), in the transaction
/// that disables the account.
pub fn revoke_all_open(tx: &Tx, queue: &Queue, inviter: UserId, now_ms: u64) -> TxResult<usize> {
    let mut ledger = Ledger::read(tx, inviter)?;
    let mut revoked = 0;
    for OpenCode { code, .. } in std::mem::take(&mut ledger.open) {
        let Some(mut invitation) = tx.get::<Invitation>(TreeId::Invitations, &code)? else {
            continue;
        };
        if invitation.state(now_ms) != InvitationState::Open {
            continue;
        }
        invitation.revoked = Some(Revocation {
            at_ms: now_ms,
            by: RevokedBy::InviterDisabled,
        });
        tx.put(TreeId::Invitations, &code, &invitation)?;
        pending::release(tx, queue, &invitation, "inviter disabled", now_ms)?;
        revoked += 1;
    }
    ledger.write(tx, inviter, now_ms)?;
    Ok(revoked)
}

/// Data format 5: invitations gain an expiry (made with the default: 14 days from when they
/// were made) and a revocation, and each inviter's invitations an index and a ledger.
pub fn to_format_5(store: &Store) -> Result<()> {
    let invitations =
        crate::store::format::rewrite::<InvitationV4, InvitationV5>(store, TreeId::Invitations)?;
    let now_ms = crate::clock::now_ms();
    for chunk in invitations.chunks(1_000) {
        store.transaction(|tx| {
            for invitation in chunk {
                tx.put_marker(
                    TreeId::UserInvitations,
                    index_key_of(invitation.inviter, invitation.created_ms, &invitation.code),
                )?;
                let mut ledger = Ledger::read(tx, invitation.inviter)?;
                // The quota starts counting with the invitations made after the upgrade.
                let open = invitation.accepted_user.is_none()
                    && invitation.revoked.is_none()
                    && invitation.expires_ms > now_ms;
                if open && !ledger.open.iter().any(|o| o.code == invitation.code) {
                    ledger.open.push(OpenCode {
                        code: invitation.code.clone(),
                        expires_ms: invitation.expires_ms,
                    });
                }
                ledger.write(tx, invitation.inviter, now_ms)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Data format 6: invitations name the pending account made with them (none for those made
/// before, whose accept creates the account as it did).
pub fn to_format_6(store: &Store) -> Result<()> {
    crate::store::format::rewrite::<InvitationV5, Invitation>(store, TreeId::Invitations)
        .map(|_| ())
}

impl From<InvitationV4> for InvitationV5 {
    fn from(old: InvitationV4) -> InvitationV5 {
        InvitationV5 {
            expires_ms: old.created_ms + MIGRATED_TTL_MS,
            code: old.code,
            inviter: old.inviter,
            email: old.email,
            created_ms: old.created_ms,
            accepted_user: old.accepted_user,
            revoked: None,
        }
    }
}

impl From<InvitationV5> for Invitation {
    fn from(old: InvitationV5) -> Invitation {
        Invitation {
            code: old.code,
            inviter: old.inviter,
            email: old.email,
            created_ms: old.created_ms,
            accepted_user: old.accepted_user,
            expires_ms: old.expires_ms,
            revoked: old.revoked,
            invitee: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::encode;

    /// A format-4 record: the old fields only, as bincode wrote them.
    fn old_record(code: &str, inviter: u64, created_ms: u64, accepted: Option<u64>) -> Vec<u8> {
        #[derive(Serialize)]
        struct Old<'a> {
            code: &'a str,
            inviter: UserId,
            email: Email,
            created_ms: u64,
            accepted_user: Option<UserId>,
        }
        encode(&Old {
            code,
            inviter: UserId(inviter),
            email: Email::parse(&format!("{code}@example.org")).unwrap(),
            created_ms,
            accepted_user: accepted.map(UserId),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn formats_5_and_6_give_old_invitations_an_expiry_an_index_and_a_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = crate::clock::now_ms();
        store
            .transaction(|tx| {
                tx.put_raw(
                    TreeId::Invitations,
                    "fresh",
                    old_record("fresh", 1, now, None),
                )?;
                tx.put_raw(
                    TreeId::Invitations,
                    "used",
                    old_record("used", 1, now, Some(9)),
                )?;
                let old = now - 20 * 86_400 * 1000;
                tx.put_raw(
                    TreeId::Invitations,
                    "stale",
                    old_record("stale", 2, old, None),
                )
            })
            .unwrap();
        // The old layout does not read as the new one: the migration can tell them apart.
        let (_, raw) = store
            .raw_entries(TreeId::Invitations)
            .map(Result::unwrap)
            .find(|(key, _)| key.as_ref() == b"fresh")
            .unwrap();
        assert!(crate::store::codec::decode::<Invitation>(&raw).is_err());
        assert!(crate::store::codec::decode::<InvitationV4>(&raw).is_ok());

        to_format_5(&store).unwrap();
        to_format_5(&store).unwrap(); // interrupted and run again: the same outcome
        to_format_6(&store).unwrap();
        to_format_6(&store).unwrap();
        let get = |code: &str| {
            store
                .get::<Invitation>(TreeId::Invitations, code)
                .unwrap()
                .unwrap()
        };
        assert_eq!(get("fresh").expires_ms, now + MIGRATED_TTL_MS);
        assert_eq!(get("fresh").state(now), InvitationState::Open);
        assert_eq!(get("used").state(now), InvitationState::Accepted);
        assert_eq!(get("stale").state(now), InvitationState::Expired);
        assert_eq!(
            get("fresh").invitee,
            None,
            "accepting it creates the account"
        );
        let ledger = |id: u64| {
            store
                .get::<Ledger>(TreeId::InvitationLedgers, UserId(id).key())
                .unwrap()
                .unwrap()
        };
        assert_eq!(
            ledger(1).open,
            vec![OpenCode {
                code: "fresh".into(),
                expires_ms: now + MIGRATED_TTL_MS
            }]
        );
        assert!(ledger(2).open.is_empty());
        assert!(
            ledger(1).recent_ms.is_empty(),
            "counted from the upgrade on"
        );
        assert_eq!(store.len(TreeId::UserInvitations), 3);
    }

    /// The open codes are bounded by what can still be used: a user whose invitations are
    /// never accepted does not grow its ledger.
    #[tokio::test]
    async fn a_ledger_forgets_the_codes_that_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let open = |code: &str, expires_ms| OpenCode {
            code: code.into(),
            expires_ms,
        };
        let mut ledger = Ledger {
            quota_override: None,
            recent_ms: Vec::new(),
            open: vec![open("old", 1_000), open("edge", 2_000), open("live", 3_000)],
        };
        store
            .transaction(|tx| ledger.clone().write(tx, UserId(1), 2_000))
            .unwrap();
        ledger = store
            .get(TreeId::InvitationLedgers, UserId(1).key())
            .unwrap()
            .unwrap();
        assert_eq!(ledger.open, vec![open("live", 3_000)]);
    }

    #[test]
    fn the_quota_frees_the_slot_of_the_oldest_invitation_in_the_window() {
        let rules = InvitationRules {
            ttl_ms: 1_000,
            period_ms: 10_000,
            per_period: 2,
            pro_per_period: 4,
        };
        let inviter = User::new(
            UserId(1),
            Email::parse("ana@example.org").unwrap(),
            crate::http::TokenHash::of("t"),
            None,
            0,
        );
        let ledger = Ledger {
            quota_override: None,
            recent_ms: vec![1_000, 4_000, 6_000],
            open: Vec::new(),
        };
        // At 9,000 all three count; the second-newest (4,000) frees the slot at 14,000.
        let quota = ledger.quota(&inviter, &rules, 9_000);
        assert_eq!((quota.used, quota.next_allowed_at), (3, Some(14)));
        // At 12,000 the first left the window: two count, still full until 14,000.
        let quota = ledger.quota(&inviter, &rules, 12_000);
        assert_eq!((quota.used, quota.next_allowed_at), (2, Some(14)));
        let quota = ledger.quota(&inviter, &rules, 14_001);
        assert_eq!((quota.used, quota.next_allowed_at), (1, None));
        let mut pro = inviter.clone();
        pro.pro_until_ms = Some(20_000);
        assert_eq!(ledger.quota(&pro, &rules, 9_000).per_period, 4);
        let none = Ledger {
            quota_override: Some(0),
            ..Ledger::default()
        };
        assert_eq!(
            none.quota(&inviter, &rules, 9_000).next_allowed_at,
            Some(19)
        );
    }
}
