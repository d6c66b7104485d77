//! Login throttling: each client address and each username gets a small burst of attempts,
//! then one more per interval (governor's GCRA, in memory: a restart forgives, which is fine
//! for slowing guessing down).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::http::rate_limit::seconds_to_wait;

pub struct LoginThrottle {
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    by_user: DefaultKeyedRateLimiter<String>,
}

impl LoginThrottle {
    /// `burst` attempts at once, then one per `every`.
    pub fn new(burst: u32, every: Duration) -> LoginThrottle {
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(every.max(Duration::from_millis(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        LoginThrottle {
            by_ip: RateLimiter::keyed(quota),
            by_user: RateLimiter::keyed(quota),
        }
    }

    /// Ok, or how many seconds to wait.
    pub fn check(&self, ip: Option<IpAddr>, username: &str) -> Result<(), u64> {
        if let Some(ip) = ip {
            seconds_to_wait(self.by_ip.check_key(&ip))?;
        }
        seconds_to_wait(self.by_user.check_key(&username.to_string()))
    }

    /// Drops the state of keys idle long enough to be full again.
    pub fn shrink(&self) {
        self.by_ip.retain_recent();
        self.by_user.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_waits() {
        let throttle = LoginThrottle::new(3, Duration::from_secs(60));
        let ip = Some("192.0.2.1".parse().unwrap());
        for _ in 0..3 {
            assert!(throttle.check(ip, "ops").is_ok());
        }
        let wait = throttle.check(ip, "ops").unwrap_err();
        assert!((1..=61).contains(&wait));
        // Another address guessing the same account is held back by the username's limit.
        assert!(throttle
            .check(Some("192.0.2.2".parse().unwrap()), "ops")
            .is_err());
        assert!(throttle
            .check(Some("192.0.2.3".parse().unwrap()), "other")
            .is_ok());
    }
}
