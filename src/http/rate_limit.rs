//! Rate limits on the public endpoints, per client address and per credential (governor's
//! GCRA, in memory). A censor or a scraper enumerating the fleet through `/json`, invitation
//! codes or referral codes gets a 429 with `Retry-After` long before it learns much.

use std::net::IpAddr;
use std::num::NonZeroU32;

pub use crate::config::{Limit, RateLimitSettings};
use governor::clock::{Clock, DefaultClock, QuantaInstant};
use governor::{DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};
use sha2::{Digest, Sha256};

/// The endpoints with a limit.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint {
    Register,
    Unregister,
    Json,
    InvitationAccept,
    InvitationCreate,
    ReferralRedeem,
    Report,
}

/// The limiters of one endpoint.
struct Limiters {
    by_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    by_token: Option<DefaultKeyedRateLimiter<[u8; 16]>>,
}

impl Limiters {
    fn new(limit: Limit) -> Limiters {
        let quota = |per_minute: u32, burst: u32| {
            let per_minute = NonZeroU32::new(per_minute)?;
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            Some(Quota::per_minute(per_minute).allow_burst(burst))
        };
        Limiters {
            by_ip: quota(limit.per_ip_per_minute, limit.ip_burst).map(RateLimiter::keyed),
            by_token: quota(limit.per_token_per_minute, limit.token_burst).map(RateLimiter::keyed),
        }
    }

    /// Ok, or the seconds to wait.
    fn check(&self, ip: Option<IpAddr>, credential: Option<&str>) -> Result<(), u64> {
        if let (Some(limiter), Some(ip)) = (&self.by_ip, ip) {
            seconds_to_wait(limiter.check_key(&ip))?;
        }
        if let (Some(limiter), Some(credential)) = (&self.by_token, credential) {
            seconds_to_wait(limiter.check_key(&credential_key(credential)))?;
        }
        Ok(())
    }

    fn shrink(&self) {
        if let Some(limiter) = &self.by_ip {
            limiter.retain_recent();
        }
        if let Some(limiter) = &self.by_token {
            limiter.retain_recent();
        }
    }
}

/// A limiter's answer as Ok, or the whole seconds to wait (rounded up, for `Retry-After`).
pub fn seconds_to_wait(outcome: Result<(), NotUntil<QuantaInstant>>) -> Result<(), u64> {
    outcome.map_err(|not_until| {
        not_until
            .wait_time_from(DefaultClock::default().now())
            .as_secs()
            .saturating_add(1)
    })
}

/// Credentials are kept as a short hash, never as themselves.
fn credential_key(credential: &str) -> [u8; 16] {
    let digest = Sha256::digest(credential.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

pub struct RateLimits {
    enabled: bool,
    register: Limiters,
    unregister: Limiters,
    json: Limiters,
    invitation_accept: Limiters,
    invitation_create: Limiters,
    referral_redeem: Limiters,
    report: Limiters,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings) -> RateLimits {
        RateLimits {
            enabled: settings.enabled,
            register: Limiters::new(settings.register),
            unregister: Limiters::new(settings.unregister),
            json: Limiters::new(settings.json),
            invitation_accept: Limiters::new(settings.invitation_accept),
            invitation_create: Limiters::new(settings.invitation_create),
            referral_redeem: Limiters::new(settings.referral_redeem),
            report: Limiters::new(settings.report),
        }
    }

    fn limiters(&self, endpoint: Endpoint) -> &Limiters {
        match endpoint {
            Endpoint::Register => &self.register,
            Endpoint::Unregister => &self.unregister,
            Endpoint::Json => &self.json,
            Endpoint::InvitationAccept => &self.invitation_accept,
            Endpoint::InvitationCreate => &self.invitation_create,
            Endpoint::ReferralRedeem => &self.referral_redeem,
            Endpoint::Report => &self.report,
        }
    }

    /// Ok, or the seconds to wait before trying again.
    pub fn check(
        &self,
        endpoint: Endpoint,
        ip: Option<IpAddr>,
        credential: Option<&str>,
    ) -> Result<(), u64> {
        if !self.enabled {
            return Ok(());
        }
        self.limiters(endpoint).check(ip, credential)
    }

    /// Drops the state of keys idle long enough to be full again (called by upkeep).
    pub fn shrink(&self) {
        for endpoint in [
            Endpoint::Register,
            Endpoint::Unregister,
            Endpoint::Json,
            Endpoint::InvitationAccept,
            Endpoint::InvitationCreate,
            Endpoint::ReferralRedeem,
            Endpoint::Report,
        ] {
            self.limiters(endpoint).shrink();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn the_address_and_the_token_each_have_their_allowance() {
        let limits = RateLimits::new(&RateLimitSettings {
            referral_redeem: Limit::new((60, 2), (60, 2)),
            ..RateLimitSettings::default()
        });
        let redeem = Endpoint::ReferralRedeem;
        assert!(limits.check(redeem, ip(1), Some("Bearer a")).is_ok());
        assert!(limits.check(redeem, ip(1), Some("Bearer b")).is_ok());
        let wait = limits.check(redeem, ip(1), Some("Bearer c")).unwrap_err();
        assert!((1..=61).contains(&wait));
        // The same token from another address is still counted against the token.
        assert!(limits.check(redeem, ip(2), Some("Bearer a")).is_ok());
        assert!(limits.check(redeem, ip(3), Some("Bearer a")).is_err());
        // Other endpoints are not affected.
        assert!(limits.check(Endpoint::Json, ip(1), None).is_ok());
    }

    #[test]
    fn zero_and_disabled_mean_no_limit() {
        let limits = RateLimits::new(&RateLimitSettings {
            json: Limit::new((0, 1), (0, 1)),
            ..RateLimitSettings::default()
        });
        for _ in 0..1000 {
            assert!(limits.check(Endpoint::Json, ip(1), None).is_ok());
        }
        let off = RateLimits::new(&RateLimitSettings {
            enabled: false,
            ..RateLimitSettings::default()
        });
        for _ in 0..1000 {
            assert!(off.check(Endpoint::Register, ip(1), None).is_ok());
        }
    }
}
