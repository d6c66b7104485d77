//! Choosing fallback proxies (pure). The trust policy is the proposal's: an invitee gets the
//! inviter's newest fallback proxy, else the closest ancestor's, else the least loaded one.
//! Either policy chooses only proxies with room: a proxy at its limit is passed over (an
//! invitation tree spreads once its proxy is full), and with no room anywhere the user waits
//! for one (`placement.rs`) rather than overloading a proxy.

use crate::config::AssignmentPolicy;
use crate::fleet::model::ProxyName;

/// A proxy that can take users, with what it carries now.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: ProxyName,
    pub limit: u32,
    /// max(reported clients, linked users): whichever says it is busier.
    pub load: u64,
}

impl Candidate {
    pub fn headroom(&self) -> i64 {
        i64::from(self.limit) - self.load as i64
    }
}

/// The candidate with the most headroom (> 0) that is not in `exclude` (ties: by name, so the
/// choice is stable).
pub fn least_loaded<'a>(
    candidates: &'a [Candidate],
    exclude: &[ProxyName],
) -> Option<&'a Candidate> {
    candidates
        .iter()
        .filter(|c| !exclude.contains(&c.name) && c.headroom() > 0)
        .max_by(|a, b| {
            a.headroom()
                .cmp(&b.headroom())
                .then_with(|| b.name.cmp(&a.name))
        })
}

/// Picks `count` fallback proxies. `ancestry` is the proxy lists (newest last) of the inviter,
/// then the inviter's inviter, and so on up the trust graph.
pub fn choose(
    policy: AssignmentPolicy,
    count: usize,
    ancestry: &[Vec<ProxyName>],
    candidates: &[Candidate],
) -> Vec<ProxyName> {
    let mut chosen: Vec<ProxyName> = Vec::with_capacity(count);
    if policy == AssignmentPolicy::Trust {
        let live = |name: &ProxyName| {
            candidates
                .iter()
                .any(|c| &c.name == name && c.headroom() > 0)
        };
        if let Some(inherited) = ancestry
            .iter()
            .find_map(|proxies| proxies.iter().rev().find(|p| live(p)))
        {
            chosen.push(inherited.clone());
        }
    }
    while chosen.len() < count {
        match least_loaded(candidates, &chosen) {
            Some(candidate) => chosen.push(candidate.name.clone()),
            None => break,
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, limit: u32, load: u64) -> Candidate {
        Candidate {
            name: ProxyName::parse(name).unwrap(),
            limit,
            load,
        }
    }

    fn names(list: &[&str]) -> Vec<ProxyName> {
        list.iter().map(|s| ProxyName::parse(s).unwrap()).collect()
    }

    #[test]
    fn trust_takes_the_closest_ancestors_newest_live_proxy() {
        let candidates = [c("a", 10, 9), c("b", 10, 0), c("c", 10, 5)];
        let ancestry = [
            names(&[]),
            names(&["gone"]),
            names(&["a", "c"]),
            names(&["b"]),
        ];
        assert_eq!(
            choose(AssignmentPolicy::Trust, 1, &ancestry, &candidates),
            names(&["c"])
        );
        assert_eq!(
            choose(AssignmentPolicy::Trust, 2, &ancestry, &candidates),
            names(&["c", "b"])
        );
    }

    #[test]
    fn without_ancestry_or_by_policy_the_least_loaded_wins() {
        let candidates = [c("a", 10, 9), c("b", 100, 50), c("c", 10, 5)];
        let ancestry = [names(&["a"])];
        assert_eq!(
            choose(AssignmentPolicy::Trust, 1, &[], &candidates),
            names(&["b"])
        );
        assert_eq!(
            choose(AssignmentPolicy::LeastLoaded, 1, &ancestry, &candidates),
            names(&["b"])
        );
        assert_eq!(
            choose(AssignmentPolicy::LeastLoaded, 5, &ancestry, &candidates),
            names(&["b", "c", "a"])
        );
        assert!(choose(AssignmentPolicy::LeastLoaded, 1, &ancestry, &[]).is_empty());
    }

    #[test]
    fn a_full_proxy_is_passed_over_even_when_inherited() {
        let candidates = [c("full", 10, 10), c("over", 10, 14), c("room", 10, 3)];
        let ancestry = [names(&["room", "full"])];
        // The inviter's newest proxy is full: the older one it also holds, then the rest.
        assert_eq!(
            choose(AssignmentPolicy::Trust, 1, &ancestry, &candidates),
            names(&["room"])
        );
        assert_eq!(
            choose(AssignmentPolicy::Trust, 3, &ancestry, &candidates),
            names(&["room"])
        );
        assert!(choose(AssignmentPolicy::LeastLoaded, 1, &[], &candidates[..2]).is_empty());
    }
}
