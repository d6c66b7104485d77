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
    /// 409 `user_disabled` for what a disabled account may not get: Pro days, proxy moves,
    /// devices. (Its tokens already stop authenticating.)
    pub fn check_enabled(&self) -> crate::error::Result<()> {
        match self.status {
            UserStatus::Active => Ok(()),
            UserStatus::Disabled => Err(crate::error::Error::conflict(
                "user_disabled",
                format!("user {} is disabled: enable it first", self.id),
            )),
        }
    }

    /// Token hashes to publish where tokens are checked (the mirror, pro proxies): none while
    /// the account is disabled.
    pub fn published_token_hashes(&self) -> impl Iterator<Item = &crate::http::TokenHash> {
        let active = self.status == UserStatus::Active;
        self.token_hashes().filter(move |_| active)
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

/// An invitation, stored under its code. Fields after `accepted_user` came with data format
/// 5 (`fleet::migrate`).
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
