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
    /// The lowest trust level of a user it was ever given to; None while nobody has had it
    /// (a fresh proxy, unknown to everyone).
    pub floor: Option<u8>,
}

impl Candidate {
    pub fn headroom(&self) -> i64 {
        i64::from(self.limit) - self.load as i64
    }
}

/// Which proxies suit a user of a trust level (`trust.rs`): those users of its own level
/// already know first, so a level's users share what they know and a newcomer gives away
/// only what newcomers had. Then, for the levels from `fresh_level` up, proxies nobody has had
/// yet; for the lower levels, proxies lower levels know (the closest first), and only then a
/// fresh one. Last, proxies known only to higher levels: giving one to a lower level exposes
/// the users trusted most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub level: u8,
    pub fresh_level: u8,
}

impl Fit {
    /// How `policy` ranks proxies for a user of `level`: by fit under the trust policy, not
    /// at all under `least_loaded` (it ignores levels). The one place that decides it.
    pub fn under(policy: AssignmentPolicy, level: u8, fresh_level: u8) -> Option<Fit> {
        (policy == AssignmentPolicy::Trust).then_some(Fit { level, fresh_level })
    }

    /// Lower is better.
    pub fn rank(&self, floor: Option<u8>) -> u8 {
        let level = self.level;
        match floor {
            Some(f) if f == level => 0,
            None if level >= self.fresh_level => 1,
            Some(f) if f < level => 2 + (level - f),
            None => 7,
            Some(f) => 8 + (f - level),
        }
    }
}

/// The best candidate with headroom (> 0) that is not in `exclude`: by `fit` when given, then
/// the most headroom (ties: by name, so the choice is stable).
pub fn best_for<'a>(
    candidates: &'a [Candidate],
    exclude: &[ProxyName],
    fit: Option<Fit>,
) -> Option<&'a Candidate> {
    let rank = |c: &Candidate| fit.map_or(0, |f| f.rank(c.floor));
    candidates
        .iter()
        .filter(|c| !exclude.contains(&c.name) && c.headroom() > 0)
        .min_by(|a, b| {
            rank(a)
                .cmp(&rank(b))
                .then_with(|| b.headroom().cmp(&a.headroom()))
                .then_with(|| a.name.cmp(&b.name))
        })
}

/// The candidate with the most headroom (> 0) that is not in `exclude`, whatever the levels.
pub fn least_loaded<'a>(
    candidates: &'a [Candidate],
    exclude: &[ProxyName],
) -> Option<&'a Candidate> {
    best_for(candidates, exclude, None)
}

/// Picks `count` fallback proxies. `ancestry` is the proxy lists (newest last) of the inviter,
/// then the inviter's inviter, and so on up the trust graph. The rest are chosen by `fit` (the
/// user's level, from `Fit::under`), then by headroom.
pub fn choose(
    policy: AssignmentPolicy,
    count: usize,
    ancestry: &[Vec<ProxyName>],
    candidates: &[Candidate],
    fit: Option<Fit>,
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
        match best_for(candidates, &chosen, fit) {
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
            floor: None,
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
            choose(AssignmentPolicy::Trust, 1, &ancestry, &candidates, None),
            names(&["c"])
        );
        assert_eq!(
            choose(AssignmentPolicy::Trust, 2, &ancestry, &candidates, None),
            names(&["c", "b"])
        );
    }

    #[test]
    fn without_ancestry_or_by_policy_the_least_loaded_wins() {
        let candidates = [c("a", 10, 9), c("b", 100, 50), c("c", 10, 5)];
        let ancestry = [names(&["a"])];
        assert_eq!(
            choose(AssignmentPolicy::Trust, 1, &[], &candidates, None),
            names(&["b"])
        );
        assert_eq!(
            choose(
                AssignmentPolicy::LeastLoaded,
                1,
                &ancestry,
                &candidates,
                None
            ),
            names(&["b"])
        );
        assert_eq!(
            choose(
                AssignmentPolicy::LeastLoaded,
                5,
                &ancestry,
                &candidates,
                None
            ),
            names(&["b", "c", "a"])
        );
        assert!(choose(AssignmentPolicy::LeastLoaded, 1, &ancestry, &[], None).is_empty());
    }

    #[test]
    fn a_full_proxy_is_passed_over_even_when_inherited() {
        let candidates = [c("full", 10, 10), c("over", 10, 14), c("room", 10, 3)];
        let ancestry = [names(&["room", "full"])];
        // The inviter's newest proxy is full: the older one it also holds, then the rest.
        assert_eq!(
            choose(AssignmentPolicy::Trust, 1, &ancestry, &candidates, None),
            names(&["room"])
        );
        assert_eq!(
            choose(AssignmentPolicy::Trust, 3, &ancestry, &candidates, None),
            names(&["room"])
        );
        assert!(choose(
            AssignmentPolicy::LeastLoaded,
            1,
            &[],
            &candidates[..2],
            None
        )
        .is_empty());
    }

    #[test]
    fn a_level_gets_what_its_own_level_knows_and_fresh_proxies_go_up() {
        let with_floor = |name: &str, load: u64, floor: Option<u8>| Candidate {
            floor,
            ..c(name, 10, load)
        };
        let candidates = [
            with_floor("fresh", 0, None),
            with_floor("newcomers", 8, Some(0)),
            with_floor("trusted", 5, Some(4)),
            with_floor("middle", 2, Some(2)),
        ];
        let fit = |level| Fit::under(AssignmentPolicy::Trust, level, 3);
        let pick =
            |level, count| choose(AssignmentPolicy::Trust, count, &[], &candidates, fit(level));
        assert_eq!(
            pick(0, 1),
            names(&["newcomers"]),
            "busier, but its own level's"
        );
        assert_eq!(pick(1, 2), names(&["newcomers", "fresh"]));
        assert_eq!(pick(2, 3), names(&["middle", "newcomers", "fresh"]));
        assert_eq!(
            pick(3, 2),
            names(&["fresh", "middle"]),
            "fresh proxies go up"
        );
        assert_eq!(pick(4, 2), names(&["trusted", "fresh"]));
        assert_eq!(
            choose(
                AssignmentPolicy::LeastLoaded,
                1,
                &[],
                &candidates,
                Fit::under(AssignmentPolicy::LeastLoaded, 0, 3)
            ),
            names(&["fresh"]),
            "least_loaded ignores levels"
        );
    }
}
