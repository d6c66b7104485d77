//! The fallback proxies a new user can be given, kept in memory: creating a user read every
//! proxy and its link count (10,000 reads per sign-up with 10,000 proxies). A request rebuilds
//! it only when the set of live proxies changed (an enrolment, a departure) or a role was set
//! (`invalidate`); the loads, which move with heartbeats, are read again every second by the
//! periodic view refresh, off the request path (a request rebuilds them only if that refresh
//! has not run for `MAX_AGE`). Between rebuilds each placement counts itself
//! in (`count_in`), so a burst of sign-ups spreads as the store would say. A placement is a
//! choice, not an invariant: the rebalancer corrects what a stale load got wrong.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::policy::Candidate;
use crate::error::Result;
use crate::registry::model::ProxyName;

/// Loads older than this are read again by the request that finds them (the periodic refresh
/// renews them every second; this is for when it cannot).
pub const MAX_AGE: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct CandidateIndex {
    built: Mutex<Option<Built>>,
    /// Bumped when a role changes outside the registry's own changes.
    epoch: AtomicU64,
}

struct Built {
    /// (registry generation, epoch) the index was built at.
    key: (u64, u64),
    at: Instant,
    candidates: Arc<Vec<Candidate>>,
}

impl CandidateIndex {
    /// The candidates, rebuilt with `read` if the live set or a role changed (`generation`
    /// is the registry's) or they are older than `MAX_AGE`.
    pub fn get(
        &self,
        generation: u64,
        read: impl FnOnce() -> Result<Vec<Candidate>>,
    ) -> Result<Arc<Vec<Candidate>>> {
        let key = (generation, self.epoch.load(Ordering::Acquire));
        if let Some(built) = self.lock().as_ref() {
            if built.key == key && built.at.elapsed() < MAX_AGE {
                return Ok(built.candidates.clone());
            }
        }
        self.rebuild(generation, read)
    }

    /// Reads the candidates again now (the periodic refresh, and `get` when stale).
    pub fn rebuild(
        &self,
        generation: u64,
        read: impl FnOnce() -> Result<Vec<Candidate>>,
    ) -> Result<Arc<Vec<Candidate>>> {
        let key = (generation, self.epoch.load(Ordering::Acquire));
        let candidates = Arc::new(read()?);
        *self.lock() = Some(Built {
            key,
            at: Instant::now(),
            candidates: candidates.clone(),
        });
        Ok(candidates)
    }

    /// Counts users just given `proxies` in the loads the next placements see.
    pub fn count_in(&self, proxies: &[ProxyName]) {
        if let Some(built) = self.lock().as_mut() {
            let candidates = Arc::make_mut(&mut built.candidates);
            for candidate in candidates.iter_mut().filter(|c| proxies.contains(&c.name)) {
                candidate.load += 1;
            }
        }
    }

    /// A role changed: the next read rebuilds.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Built>> {
        self.built.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(name: &str, load: u64) -> Candidate {
        Candidate {
            name: ProxyName::parse(name).unwrap(),
            limit: 10,
            load,
        }
    }

    #[test]
    fn the_index_is_read_again_only_when_the_fleet_changed() {
        let index = CandidateIndex::default();
        let reads = std::cell::Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            Ok(vec![candidate("a", 1), candidate("b", 5)])
        };
        index.get(1, read).unwrap();
        index.get(1, read).unwrap();
        assert_eq!(reads.get(), 1, "cached");
        index.count_in(&[ProxyName::parse("a").unwrap()]);
        assert_eq!(
            index.get(1, read).unwrap()[0].load,
            2,
            "placements count in"
        );
        index.get(2, read).unwrap();
        assert_eq!(reads.get(), 2, "a proxy came or went");
        index.invalidate();
        index.get(2, read).unwrap();
        assert_eq!(reads.get(), 3, "a role changed");
    }
}
