//! Rendezvous (highest-random-weight) hashing: each (key, proxy) pair gets a keyed score and a
//! key sees the k proxies with the highest scores. Adding or removing one proxy changes at most
//! one entry of any key's subset, and different keys see different subsets. The server secret
//! keys the hash, so nobody outside can predict which account sees which proxies.

use std::hash::Hasher;

use rand::Rng;
use siphasher::sip::SipHasher13;

/// The server's rendezvous secret.
#[derive(Clone)]
pub struct Secret(pub [u8; 16]);

fn score(secret: &Secret, key: &str, proxy: &str) -> u64 {
    let mut hasher = SipHasher13::new_with_key(&secret.0);
    hasher.write(key.as_bytes());
    hasher.write_u8(0);
    hasher.write(proxy.as_bytes());
    hasher.finish()
}

/// The `k` proxies with the highest scores for `key`, best first.
pub fn pick<'a, S: AsRef<str> + Ord>(
    secret: &Secret,
    key: &str,
    proxies: &'a [S],
    k: usize,
) -> Vec<&'a S> {
    let mut scored: Vec<(u64, &S)> = proxies
        .iter()
        .map(|p| (score(secret, key, p.as_ref()), p))
        .collect();
    let k = k.min(scored.len());
    if k == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(k - 1, |a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.truncate(k);
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().map(|(_, p)| p).collect()
}

/// How many random accounts it takes, on average over `trials`, to learn `share` (0..1) of
/// the proxies when each sees `k`. Capped at `max_accounts` per trial.
pub fn accounts_to_learn(
    proxies: &[String],
    k: usize,
    share: f64,
    trials: usize,
    max_accounts: usize,
    rng: &mut impl Rng,
) -> f64 {
    if proxies.is_empty() || k == 0 {
        return 0.0;
    }
    let wanted = ((proxies.len() as f64) * share).ceil() as usize;
    let mut total = 0usize;
    for _ in 0..trials.max(1) {
        // A fresh secret per trial: accounts are random, so their keys are too.
        let secret = Secret(rng.gen());
        let mut seen = std::collections::HashSet::new();
        let mut accounts = 0;
        while seen.len() < wanted && accounts < max_accounts {
            accounts += 1;
            let key = format!("acct{accounts}");
            seen.extend(pick(&secret, &key, proxies, k).into_iter().cloned());
        }
        total += accounts;
    }
    total as f64 / trials.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn fleet(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("free{i}")).collect()
    }

    const SECRET: Secret = Secret([7; 16]);

    #[test]
    fn deterministic_distinct_and_stable_when_a_proxy_leaves() {
        let proxies = fleet(50);
        let a = pick(&SECRET, "user1", &proxies, 3);
        assert_eq!(a, pick(&SECRET, "user1", &proxies, 3));
        assert_eq!(a.len(), 3);
        let distinct: std::collections::HashSet<Vec<&String>> = (0..20)
            .map(|u| pick(&SECRET, &format!("user{u}"), &proxies, 3))
            .collect();
        assert!(distinct.len() >= 18, "subsets should differ across users");
        for removed in 0..proxies.len() {
            let mut fewer = proxies.clone();
            fewer.remove(removed);
            for user in 0..30 {
                let key = format!("user{user}");
                let before: Vec<String> = pick(&SECRET, &key, &proxies, 3)
                    .into_iter()
                    .cloned()
                    .collect();
                let after: Vec<String> = pick(&SECRET, &key, &fewer, 3)
                    .into_iter()
                    .cloned()
                    .collect();
                let changed = before.iter().filter(|p| !after.contains(p)).count();
                assert!(changed <= 1, "removing one proxy changed {changed} entries");
            }
        }
    }

    #[test]
    fn more_accounts_are_needed_for_more_of_the_fleet() {
        let proxies = fleet(100);
        let mut rng = StdRng::seed_from_u64(3);
        let half = accounts_to_learn(&proxies, 3, 0.5, 10, 100_000, &mut rng);
        let most = accounts_to_learn(&proxies, 3, 0.9, 10, 100_000, &mut rng);
        assert!(half >= 17.0, "at least 50/3 accounts: {half}");
        assert!(most > half);
    }
}
