//! The fallback proxies a new user can be given, kept in memory: creating a user read every
//! proxy and its link count (10,000 reads per sign-up with 10,000 proxies). A request rebuilds
//! it only when the set of live proxies changed (an enrolment, a departure) or a role was set
//! (`invalidate`); the loads, which move with heartbeats, are read again every second by the
//! periodic view refresh, off the request path (a request rebuilds them only if that refresh
//! has not run for `MAX_AGE`). Between rebuilds each placement counts itself
//! in (`count_in`), so a burst of sign-ups spreads as the store would say. A placement is a
//! choice, not an invariant: the rebalancer corrects what a stale load got wrong.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::policy::{Candidate, Fit};
use super::trust;
use crate::error::Result;
use crate::registry::model::ProxyName;

/// Loads older than this are read again by the request that finds them (the periodic refresh
/// renews them every second; this is for when it cannot).
pub const MAX_AGE: Duration = Duration::from_secs(5);

/// Reads a stale index's rebuild makes before it installs one that placements overlapped.
const READS: u32 = 3;

#[derive(Default)]
pub struct CandidateIndex {
    state: Mutex<State>,
    /// Bumped when a role changes outside the registry's own changes.
    epoch: AtomicU64,
}

#[derive(Default)]
struct State {
    built: Option<Built>,
    /// Placements chosen whose sign-up has not committed yet. The periodic refresh reads the
    /// store, which does not hold them yet: it waits for a moment with none (a refresh between
    /// a choice and its commit had forgotten it, and the next sign-up went past the proxy's
    /// limit).
    in_flight: usize,
    /// Placements counted in so far. A read of the store that saw this move while it ran may
    /// lack one of them (it committed after the read passed its proxy): installing that read
    /// would forget it, and the next sign-up would go past the proxy's limit (seen in a full
    /// run of the suite: the periodic refresh read, a sign-up placed and committed, the
    /// refresh installed its older loads).
    placements: u64,
}

/// A placement not committed yet (see `State::in_flight`); drop it once the sign-up
/// committed or failed.
pub struct Pending {
    index: std::sync::Arc<CandidateIndex>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut state = self.index.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
    }
}

struct Built {
    /// (registry generation, epoch) the index was built at.
    key: (u64, u64),
    at: Instant,
    candidates: Candidates,
}

/// The candidates by name and by headroom, so a placement looks at a few of them, not all:
/// scanning 10,000 for each of a user's proxies (and copying them when two requests held the
/// list at once) was most of a sign-up's time with 10,000 proxies. Kept apart by floor (the
/// lowest level a proxy was given to), so a placement by level looks at each floor's best.
struct Candidates {
    by_name: HashMap<ProxyName, Candidate>,
    /// Per floor (index 0: fresh, 1 + n: floor n): (headroom, name), most headroom last; ties
    /// by name, smallest last, as `policy::best_for` breaks them.
    by_headroom: [BTreeSet<(i64, std::cmp::Reverse<ProxyName>)>; FLOORS],
}

/// Fresh, and each level.
const FLOORS: usize = 1 + trust::TOP as usize + 1;

fn bucket(floor: Option<u8>) -> usize {
    floor.map_or(0, |f| 1 + usize::from(f.min(trust::TOP)))
}

impl Candidates {
    fn new(list: Vec<Candidate>) -> Candidates {
        let mut by_headroom: [BTreeSet<_>; FLOORS] = Default::default();
        for candidate in &list {
            by_headroom[bucket(candidate.floor)].insert(Candidates::order_key(candidate));
        }
        let by_name = list.into_iter().map(|c| (c.name.clone(), c)).collect();
        Candidates {
            by_name,
            by_headroom,
        }
    }

    fn order_key(candidate: &Candidate) -> (i64, std::cmp::Reverse<ProxyName>) {
        (
            candidate.headroom(),
            std::cmp::Reverse(candidate.name.clone()),
        )
    }

    /// Enough candidates for `policy::choose` to pick `count` proxies with `named` (the
    /// ancestry's proxies) in view: the ones named, and the `2 * count` best (at most
    /// `count - 1` chosen ones are passed over before each pick). Without a fit, the most
    /// headroom of every floor; with one, floor after floor in the fit's order, those with room.
    fn shortlist(&self, named: &[&ProxyName], count: usize, fit: Option<Fit>) -> Vec<Candidate> {
        let wanted = 2 * count;
        let mut keys: Vec<&(i64, std::cmp::Reverse<ProxyName>)> = Vec::new();
        match fit {
            None => {
                for floor in &self.by_headroom {
                    keys.extend(floor.iter().rev().take(wanted));
                }
                keys.sort_by(|a, b| b.cmp(a));
                keys.truncate(wanted);
            }
            Some(fit) => {
                let mut floors: Vec<usize> = (0..FLOORS).collect();
                floors.sort_by_key(|&i| fit.rank(i.checked_sub(1).map(|f| f as u8)));
                for i in floors {
                    let room = self.by_headroom[i].iter().rev().take_while(|k| k.0 > 0);
                    keys.extend(room.take(wanted - keys.len()));
                    if keys.len() >= wanted {
                        break;
                    }
                }
            }
        }
        let mut list: Vec<Candidate> = keys
            .into_iter()
            .filter_map(|(_, name)| self.by_name.get(&name.0).cloned())
            .collect();
        for name in named {
            if let Some(candidate) = self.by_name.get(*name) {
                if !list.iter().any(|c| &c.name == *name) {
                    list.push(candidate.clone());
                }
            }
        }
        list
    }

    /// A placement gave `name` to a user of `level` (None: levels not in play).
    fn count_in(&mut self, name: &ProxyName, level: Option<u8>) {
        if let Some(candidate) = self.by_name.get_mut(name) {
            self.by_headroom[bucket(candidate.floor)].remove(&Candidates::order_key(candidate));
            candidate.load += 1;
            if let Some(level) = level {
                candidate.floor = Some(candidate.floor.map_or(level, |f| f.min(level)));
            }
            self.by_headroom[bucket(candidate.floor)].insert(Candidates::order_key(candidate));
        }
    }
}

impl CandidateIndex {
    /// Chooses proxies for one new user and counts them in, in one step (two sign-ups at
    /// once do not both take a proxy's last slot). `choose` gets the shortlist for
    /// `count` proxies with `named` in view, best by `fit` (the user's level). The index is rebuilt with `read` first if the
    /// live set or a role changed (`generation` is the registry's) or it is older than
    /// `MAX_AGE`.
    pub fn place(
        self: &std::sync::Arc<Self>,
        generation: u64,
        read: impl Fn() -> Result<Vec<Candidate>>,
        named: &[&ProxyName],
        count: usize,
        fit: Option<Fit>,
        choose: impl FnOnce(&[Candidate]) -> Vec<ProxyName>,
    ) -> Result<(Vec<ProxyName>, Pending)> {
        let key = (generation, self.epoch.load(Ordering::Acquire));
        let fresh = self
            .lock()
            .built
            .as_ref()
            .is_some_and(|built| built.key == key && built.at.elapsed() < MAX_AGE);
        if !fresh {
            self.rebuild(generation, read)?;
        }
        let mut state = self.lock();
        let chosen = match state.built.as_mut() {
            Some(built) => {
                let chosen = choose(&built.candidates.shortlist(named, count, fit));
                for name in &chosen {
                    built.candidates.count_in(name, fit.map(|f| f.level));
                }
                chosen
            }
            None => Vec::new(),
        };
        state.in_flight += 1;
        state.placements += 1;
        let pending = Pending {
            index: self.clone(),
        };
        Ok((chosen, pending))
    }

    /// Reads the candidates again now (`place` when stale). The read runs without the lock:
    /// placements go on meanwhile, with the loads they had. A read that a placement overlapped
    /// is read again, up to `READS` times; the last one is installed anyway (a placement is a
    /// choice, and the rebalancer corrects a stale load).
    pub fn rebuild(
        &self,
        generation: u64,
        read: impl Fn() -> Result<Vec<Candidate>>,
    ) -> Result<()> {
        for attempt in 1..=READS {
            if self.read_and_install(generation, &read, attempt == READS)? {
                break;
            }
        }
        Ok(())
    }

    /// The periodic refresh: reads and installs, unless a placement is on its way to the
    /// store or runs during the read (the loads counted in stay until the next refresh, or
    /// `MAX_AGE`).
    pub fn refresh(
        &self,
        generation: u64,
        read: impl FnOnce() -> Result<Vec<Candidate>>,
    ) -> Result<()> {
        self.read_and_install(generation, read, false).map(|_| ())
    }

    /// Reads and installs the candidates if no placement was uncommitted when the read began
    /// or counted in while it ran, or if `anyway`. True if installed.
    fn read_and_install(
        &self,
        generation: u64,
        read: impl FnOnce() -> Result<Vec<Candidate>>,
        anyway: bool,
    ) -> Result<bool> {
        let key = (generation, self.epoch.load(Ordering::Acquire));
        let before = {
            let state = self.lock();
            (state.in_flight == 0).then_some(state.placements)
        };
        if before.is_none() && !anyway {
            return Ok(false);
        }
        let candidates = Candidates::new(read()?);
        let mut state = self.lock();
        if before != Some(state.placements) && !anyway {
            return Ok(false);
        }
        state.built = Some(Built {
            key,
            at: Instant::now(),
            candidates,
        });
        Ok(true)
    }

    /// A role changed: the next read rebuilds.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AssignmentPolicy;
    use crate::fleet::policy;

    fn candidate(name: &str, load: u64) -> Candidate {
        Candidate {
            name: ProxyName::parse(name).unwrap(),
            limit: 10,
            load,
            floor: None,
        }
    }

    fn names(list: &[&str]) -> Vec<ProxyName> {
        list.iter().map(|s| ProxyName::parse(s).unwrap()).collect()
    }

    #[test]
    fn the_index_is_read_again_only_when_the_fleet_changed() {
        let index = std::sync::Arc::new(CandidateIndex::default());
        let reads = std::cell::Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            Ok(vec![candidate("a", 1), candidate("b", 5)])
        };
        let least_loaded =
            |list: &[Candidate]| policy::choose(AssignmentPolicy::LeastLoaded, 1, &[], list, None);
        assert_eq!(
            index.place(1, read, &[], 1, None, least_loaded).unwrap().0,
            names(&["a"])
        );
        assert_eq!(
            index.place(1, read, &[], 1, None, least_loaded).unwrap().0,
            names(&["a"])
        );
        assert_eq!(reads.get(), 1, "cached");
        // a: 1 + 2 placed = 3 of 10; then 4 more make it busier than b (5).
        for _ in 0..3 {
            index.place(1, read, &[], 1, None, least_loaded).unwrap();
        }
        assert_eq!(
            index.place(1, read, &[], 1, None, least_loaded).unwrap().0,
            names(&["b"]),
            "placements count in"
        );
        index.place(2, read, &[], 1, None, least_loaded).unwrap();
        assert_eq!(reads.get(), 2, "a proxy came or went");
        index.invalidate();
        index.place(2, read, &[], 1, None, least_loaded).unwrap();
        assert_eq!(reads.get(), 3, "a role changed");
    }

    /// The periodic refresh reads the store while a sign-up places and commits: the read,
    /// older than that placement, is not installed (it would forget the placement).
    #[test]
    fn a_refresh_that_a_placement_overlapped_keeps_the_placement() {
        let index = std::sync::Arc::new(CandidateIndex::default());
        let stored = || Ok(vec![candidate("a", 1), candidate("b", 1)]);
        let least_loaded =
            |list: &[Candidate]| policy::choose(AssignmentPolicy::LeastLoaded, 1, &[], list, None);
        index.rebuild(1, stored).unwrap();
        index
            .refresh(1, || {
                // A sign-up while the refresh reads: it takes a (ties go by name) and commits.
                let (chosen, committed) = index.place(1, stored, &[], 1, None, least_loaded)?;
                assert_eq!(chosen, names(&["a"]));
                drop(committed);
                stored()
            })
            .unwrap();
        assert_eq!(
            index
                .place(1, stored, &[], 1, None, least_loaded)
                .unwrap()
                .0,
            names(&["b"]),
            "a holds the placement made during the read"
        );

        // A stale index's rebuild that a placement overlapped reads again, and keeps the
        // second read (the store after that placement), not the first.
        let reads = std::cell::Cell::new(0);
        index
            .rebuild(2, || {
                reads.set(reads.get() + 1);
                if reads.get() == 1 {
                    drop(index.place(1, stored, &[], 1, None, least_loaded)?);
                    return stored();
                }
                Ok(vec![candidate("a", 5), candidate("b", 2)])
            })
            .unwrap();
        assert_eq!(reads.get(), 2, "read again after the overlapped read");
        assert_eq!(
            index
                .place(2, stored, &[], 1, None, least_loaded)
                .unwrap()
                .0,
            names(&["b"]),
            "the second read's loads are installed (the first's would give a)"
        );

        // With a placement on its way to the store, the refresh does not read at all.
        let (_, on_its_way) = index.place(1, stored, &[], 1, None, least_loaded).unwrap();
        index
            .refresh(1, || panic!("read while a placement was uncommitted"))
            .unwrap();
        drop(on_its_way);
    }

    /// Choosing from the shortlist gives what choosing from every candidate would, for each
    /// policy, count and ancestry, while placements fill the fleet up.
    #[test]
    fn the_shortlist_chooses_as_the_whole_list_would() {
        let mut rng = 7u64;
        let mut next = |below: u64| {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (rng >> 33) % below
        };
        let all: Vec<Candidate> = (0..60)
            .map(|i| Candidate {
                name: ProxyName::parse(&format!("p{i}")).unwrap(),
                limit: 1 + next(12) as u32,
                load: next(10),
                floor: [None, Some(0), Some(2), Some(4)][next(4) as usize],
            })
            .collect();
        let index = std::sync::Arc::new(CandidateIndex::default());
        let mut whole = all.clone();
        index.rebuild(1, || Ok(all.clone())).unwrap();
        for round in 0..300 {
            let policy = if round % 2 == 0 {
                AssignmentPolicy::Trust
            } else {
                AssignmentPolicy::LeastLoaded
            };
            let count = 1 + next(4) as usize;
            let ancestry: Vec<Vec<ProxyName>> = (0..next(3))
                .map(|_| {
                    (0..next(3))
                        .map(|_| whole[next(60) as usize].name.clone())
                        .collect()
                })
                .collect();
            let named: Vec<&ProxyName> = ancestry.iter().flatten().collect();
            let fit = (policy == AssignmentPolicy::Trust && round % 3 != 0).then(|| policy::Fit {
                level: next(5) as u8,
                fresh_level: 3,
            });
            let expected = policy::choose(policy, count, &ancestry, &whole, fit);
            let chosen = index
                .place(
                    1,
                    || unreachable!(),
                    &named,
                    count,
                    fit,
                    |list| policy::choose(policy, count, &ancestry, list, fit),
                )
                .unwrap()
                .0;
            assert_eq!(chosen, expected, "round {round}");
            for name in &chosen {
                let given = whole.iter_mut().find(|c| &c.name == name).unwrap();
                given.load += 1;
                if let Some(fit) = fit {
                    given.floor = Some(given.floor.map_or(fit.level, |f| f.min(fit.level)));
                }
            }
        }
        assert!(
            whole.iter().all(|c| c.headroom() <= 0),
            "the fleet filled up and nothing went past its limit"
        );
    }

    /// The periodic refresh leaves the counted-in loads alone while a placement is on its
    /// way to the store.
    #[test]
    fn a_refresh_waits_for_the_placements_on_their_way() {
        let index = std::sync::Arc::new(CandidateIndex::default());
        let stored = || Ok(vec![candidate("a", 9)]);
        let one =
            |list: &[Candidate]| policy::choose(AssignmentPolicy::LeastLoaded, 1, &[], list, None);
        let (chosen, pending) = index.place(1, stored, &[], 1, None, one).unwrap();
        assert_eq!(chosen, names(&["a"]));
        index.refresh(1, stored).unwrap();
        assert!(
            index
                .place(1, stored, &[], 1, None, one)
                .unwrap()
                .0
                .is_empty(),
            "a is full: 9 stored and 1 on its way"
        );
        drop(pending);
        index.refresh(1, || Ok(vec![candidate("a", 5)])).unwrap();
        assert_eq!(
            index.place(1, stored, &[], 1, None, one).unwrap().0,
            names(&["a"])
        );
    }
}
