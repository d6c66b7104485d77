//! Login throttling. Only failures count, per client address and per account: after `burst`
//! failures, each further one doubles the wait before the next attempt is even checked. A
//! success clears both. The account's wait is capped low (a minute) so a stranger guessing
//! an owner's password slows the owner down but cannot lock them out; the address's wait grows
//! to a quarter of an hour. In memory: a restart forgives, which is fine for slowing guessing.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

/// The first wait after the burst; each further failure doubles it.
const FIRST_WAIT_MS: u64 = 1_000;
const MAX_ADDRESS_WAIT_MS: u64 = 15 * 60_000;
const MAX_ACCOUNT_WAIT_MS: u64 = 60_000;
/// Failures older than this are forgotten.
const FORGET_AFTER_MS: u64 = 3_600_000;
/// Keys kept at most per map; past it the oldest half is forgotten (a flood of made-up
/// usernames or addresses must not grow memory without bound).
const MAX_KEYS: usize = 100_000;

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last_ms: u64,
    next_allowed_ms: u64,
}

struct Tally<K> {
    keys: Mutex<HashMap<K, Failures>>,
    max_wait_ms: u64,
}

impl<K: Hash + Eq + Clone> Tally<K> {
    fn new(max_wait_ms: u64) -> Self {
        Tally {
            keys: Mutex::new(HashMap::new()),
            max_wait_ms,
        }
    }

    fn wait_ms(&self, key: &K, now_ms: u64) -> u64 {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.get(key)
            .map_or(0, |f| f.next_allowed_ms.saturating_sub(now_ms))
    }

    fn fail(&self, key: K, burst: u32, now_ms: u64) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_KEYS && !keys.contains_key(&key) {
            let mut ages: Vec<u64> = keys.values().map(|f| f.last_ms).collect();
            let (_, median, _) = ages.select_nth_unstable(keys.len() / 2);
            let median = *median;
            keys.retain(|_, f| f.last_ms > median);
        }
        let entry = keys.entry(key).or_insert(Failures {
            count: 0,
            last_ms: now_ms,
            next_allowed_ms: 0,
        });
        entry.count = entry.count.saturating_add(1);
        entry.last_ms = now_ms;
        if entry.count > burst {
            let doublings = (entry.count - burst - 1).min(30);
            let wait = FIRST_WAIT_MS
                .saturating_mul(1 << doublings)
                .min(self.max_wait_ms);
            entry.next_allowed_ms = now_ms + wait;
        }
    }

    fn clear(&self, key: &K) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    fn shrink(&self, now_ms: u64) {
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, f| now_ms.saturating_sub(f.last_ms) < FORGET_AFTER_MS);
    }
}

pub struct LoginThrottle {
    burst: u32,
    by_ip: Tally<IpAddr>,
    by_user: Tally<String>,
}

impl LoginThrottle {
    /// `burst` failures are free; the waits start after them.
    pub fn new(burst: u32) -> LoginThrottle {
        LoginThrottle {
            burst: burst.max(1),
            by_ip: Tally::new(MAX_ADDRESS_WAIT_MS),
            by_user: Tally::new(MAX_ACCOUNT_WAIT_MS),
        }
    }

    /// Ok, or how many seconds to wait before the next attempt is checked.
    pub fn check(&self, ip: Option<IpAddr>, username: &str, now_ms: u64) -> Result<(), u64> {
        let by_ip = ip.map_or(0, |ip| self.by_ip.wait_ms(&ip, now_ms));
        let wait = by_ip.max(self.by_user.wait_ms(&username.to_string(), now_ms));
        if wait == 0 {
            Ok(())
        } else {
            Err(wait.div_ceil(1000))
        }
    }

    /// A wrong password or code.
    pub fn failed(&self, ip: Option<IpAddr>, username: &str, now_ms: u64) {
        if let Some(ip) = ip {
            self.by_ip.fail(ip, self.burst, now_ms);
        }
        self.by_user.fail(username.to_string(), self.burst, now_ms);
    }

    /// A successful sign-in clears the account's and the address's failures.
    pub fn succeeded(&self, ip: Option<IpAddr>, username: &str) {
        if let Some(ip) = ip {
            self.by_ip.clear(&ip);
        }
        self.by_user.clear(&username.to_string());
    }

    /// Forgets failures old enough not to matter (periodic upkeep).
    pub fn shrink(&self, now_ms: u64) {
        self.by_ip.shrink(now_ms);
        self.by_user.shrink(now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_start_after_the_burst_and_double() {
        let throttle = LoginThrottle::new(3);
        let ip = Some("192.0.2.1".parse().unwrap());
        for _ in 0..3 {
            assert!(throttle.check(ip, "ops", 0).is_ok());
            throttle.failed(ip, "ops", 0);
        }
        assert!(throttle.check(ip, "ops", 0).is_ok(), "the burst is free");
        throttle.failed(ip, "ops", 0);
        assert_eq!(throttle.check(ip, "ops", 0), Err(1));
        throttle.failed(ip, "ops", 1_000);
        assert_eq!(throttle.check(ip, "ops", 1_000), Err(2));
        // Another address guessing the same account waits too, but never past a minute.
        let other = Some("192.0.2.2".parse().unwrap());
        for i in 0..40 {
            throttle.failed(other, "ops", 2_000 + i);
        }
        assert_eq!(
            throttle.check(Some("192.0.2.3".parse().unwrap()), "ops", 2_040),
            Err(60)
        );
        assert!(throttle.check(other, "ops", 2_040).unwrap_err() > 60);
        assert!(throttle
            .check(Some("192.0.2.3".parse().unwrap()), "other", 0)
            .is_ok());
    }

    #[test]
    fn a_success_clears_and_successes_never_count() {
        let throttle = LoginThrottle::new(1);
        let ip = Some("192.0.2.1".parse().unwrap());
        throttle.failed(ip, "ops", 0);
        throttle.failed(ip, "ops", 0);
        assert!(throttle.check(ip, "ops", 0).is_err());
        throttle.succeeded(ip, "ops");
        assert!(throttle.check(ip, "ops", 0).is_ok());
    }

    #[test]
    fn made_up_keys_stay_bounded() {
        let throttle = LoginThrottle::new(1);
        for i in 0..(MAX_KEYS as u64 + 10) {
            throttle.failed(None, &format!("u{i}"), i);
        }
        assert!(throttle.by_user.keys.lock().unwrap().len() <= MAX_KEYS);
    }
}
