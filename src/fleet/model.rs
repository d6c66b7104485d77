//! Users, invitations and the assignment history.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::http::TokenHash;
pub use crate::registry::model::ProxyName;

/// A user's id: handed out in order by the store's counter, the key of the user's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub u64);

impl UserId {
    /// The store key of the user's record (`u64_key`: big-endian, so keys sort by id).
    pub fn key(self) -> [u8; 8] {
        crate::store::codec::u64_key(self.0)
    }
}

/// A user id in a path (`/users/{id}`): the decimal number.
impl std::str::FromStr for UserId {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        text.parse().map(UserId)
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A validated, lower-cased email address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email> {
        let lowered = raw.trim().to_lowercase();
        let valid = lowered.len() <= 254
            && email_address::EmailAddress::parse_with_options(
                &lowered,
                email_address::Options::default()
                    .with_required_tld()
                    .without_display_text(),
            )
            .is_ok();
        if valid {
            Ok(Email(lowered))
        } else {
            Err(Error::invalid(
                "invalid_email",
                "email must be a valid address such as ana@example.org",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Disabled,
    /// Made with an invitation, before it is accepted: holds its proxies and a signed config
    /// (sent inside the invitation), which its token can fetch and nothing else.
    Pending,
    /// A pending account whose invitation expired or was revoked unused: its proxies were
    /// released and its email and token freed. Kept, so the assignment history and the
    /// proxies' exposure still name who had been given what.
    Lapsed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    /// The trust-graph edge: who invited this user.
    pub invited_by: Option<UserId>,
    pub created_ms: u64,
    pub token_hash: TokenHash,
    pub status: UserStatus,
    /// Pro until this time (the Pro tier sets it).
    pub pro_until_ms: Option<u64>,
    /// The user's fallback proxies, newest last. `ProxyUsers` is the reverse index, changed
    /// in the same transaction (`links::set_proxies`).
    pub proxies: Vec<ProxyName>,
    /// Bumped whenever the user's proxy set changes: the config's `version`.
    pub config_version: u64,
    /// When the rebalancer last moved this user (its cooldown).
    pub last_moved_ms: Option<u64>,
    /// Next history sequence number.
    pub history_len: u64,
    /// Pro proxies assigned while Pro lasts (`billing::pro`); `ProLinks` is the reverse index.
    pub pro_proxies: Vec<ProxyName>,
    /// Linked devices, each with its own token (`billing::devices`).
    pub devices: Vec<Device>,
    /// This user's referral code, made on first ask (`billing::referrals`).
    pub referral_code: Option<String>,
    /// Whose referral code this user redeemed (once per user).
    pub referred_by: Option<UserId>,
    /// The user's Stripe Customer, made on the first purchase.
    pub stripe_customer: Option<String>,
}

/// A linked device: its token authenticates the client API like the account's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: u64,
    pub name: String,
    pub token_hash: TokenHash,
    pub created_ms: u64,
}

impl User {
    /// Pro is on now: paid (or given) time that has not run out.
    pub fn is_pro(&self, now_ms: u64) -> bool {
        self.pro_until_ms.is_some_and(|until| until > now_ms)
    }

    /// 409 `user_disabled` for what a disabled account may not get: Pro days, proxy moves,
    /// devices. (Its tokens already stop authenticating.)
    pub fn check_enabled(&self) -> crate::error::Result<()> {
        let (code, why) = match self.status {
            UserStatus::Active => return Ok(()),
            UserStatus::Disabled => ("user_disabled", "is disabled: enable it first"),
            UserStatus::Pending => (
                "user_pending",
                "is pending: its invitation must be accepted first",
            ),
            UserStatus::Lapsed => (
                "user_lapsed",
                "lapsed: its invitation expired or was revoked unused",
            ),
        };
        Err(crate::error::Error::conflict(
            code,
            format!("user {} {why}", self.id),
        ))
    }

    /// True when the account's token may fetch its config: active, or pending (the invitee's
    /// client uses the config it was sent before accepting).
    pub fn reads_config(&self) -> bool {
        matches!(self.status, UserStatus::Active | UserStatus::Pending)
    }

    /// Token hashes to publish where tokens are checked (the mirror, pro proxies): none while
    /// the account cannot read its config.
    pub fn published_token_hashes(&self) -> impl Iterator<Item = &crate::http::TokenHash> {
        let published = self.reads_config();
        self.token_hashes().filter(move |_| published)
    }

    /// A new active user without proxies or Pro.
    pub fn new(
        id: UserId,
        email: Email,
        token_hash: TokenHash,
        invited_by: Option<UserId>,
        now_ms: u64,
    ) -> User {
        User {
            id,
            email,
            invited_by,
            created_ms: now_ms,
            token_hash,
            status: UserStatus::Active,
            pro_until_ms: None,
            proxies: Vec::new(),
            config_version: 0,
            last_moved_ms: None,
            history_len: 0,
            pro_proxies: Vec::new(),
            devices: Vec::new(),
            referral_code: None,
            referred_by: None,
            stripe_customer: None,
        }
    }

    /// The account's token and every linked device's.
    pub fn token_hashes(&self) -> impl Iterator<Item = &TokenHash> {
        std::iter::once(&self.token_hash).chain(self.devices.iter().map(|d| &d.token_hash))
    }
}

/// One entry of the assignment history: the proxy set the user was given, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub at_ms: u64,
    pub proxies: Vec<ProxyName>,
    pub reason: String,
}

/// An invitation, stored under its code. `expires_ms` and `revoked` came with data format 5,
/// `invitee` with format 6 (`fleet::invitations::to_format_*`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invitation {
    pub code: String,
    pub inviter: UserId,
    pub email: Email,
    pub created_ms: u64,
    /// Set by the first accept; later accepts return this user.
    pub accepted_user: Option<UserId>,
    /// Unused past this time, the code is refused (410 `invitation_expired`).
    pub expires_ms: u64,
    /// Set when the code was withdrawn before it was used (410 `invitation_revoked`).
    pub revoked: Option<Revocation>,
    /// The pending account made with the invitation (accepting activates it); `None` for
    /// invitations made before format 6, whose accept creates the account.
    pub invitee: Option<UserId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub at_ms: u64,
    pub by: RevokedBy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokedBy {
    Inviter,
    Admin,
    /// The inviter's account was disabled: what it vouched for is withdrawn with it.
    InviterDisabled,
}

/// Where an invitation stands, as its inviter and the admin see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationState {
    Open,
    Accepted,
    Expired,
    Revoked,
}

impl Invitation {
    /// Accepted wins (an accepted code stays so after its expiry); then revoked, then expired.
    pub fn state(&self, now_ms: u64) -> InvitationState {
        if self.accepted_user.is_some() {
            InvitationState::Accepted
        } else if self.revoked.is_some() {
            InvitationState::Revoked
        } else if now_ms >= self.expires_ms {
            InvitationState::Expired
        } else {
            InvitationState::Open
        }
    }
}

/// An invitation as format 5 stored it (written by the migration to format 5, read by the
/// one to format 6).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvitationV5 {
    pub code: String,
    pub inviter: UserId,
    pub email: Email,
    pub created_ms: u64,
    pub accepted_user: Option<UserId>,
    pub expires_ms: u64,
    pub revoked: Option<Revocation>,
}

/// An invitation as format 4 stored it (read by the migration to format 5 only).
#[derive(Debug, Clone, Deserialize)]
pub struct InvitationV4 {
    pub code: String,
    pub inviter: UserId,
    pub email: Email,
    pub created_ms: u64,
    pub accepted_user: Option<UserId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_validated_and_lower_cased() {
        assert_eq!(
            Email::parse(" Ana@Example.ORG ").unwrap().as_str(),
            "ana@example.org"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.org",
            "ana@example",
            "Ana <ana@example.org>",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
