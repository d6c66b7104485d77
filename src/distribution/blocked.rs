//! The proxies blocked per country, as the blocking capability decided them (docs/BLOCKING.md):
//! configs served in a country leave them out, and the fleet places no user of that country on
//! them. Held here, below both, so each reads the one set the blocking capability writes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The proxies blocked in each country (ISO code), shared by the blocking capability (which
/// writes it when a verdict changes) and the fleet and config server (which read it).
///
/// Every config request reads it: a country's set is shared (`Arc`), so a read takes the lock
/// for a map lookup and never copies the set; writes (a verdict changing) copy it.
#[derive(Clone, Default)]
pub struct BlockedSet {
    by_country: Arc<RwLock<HashMap<String, Arc<HashSet<String>>>>>,
    /// Bumped by every change: what was derived from an older generation (a rendered
    /// config) is stale.
    generation: Arc<AtomicU64>,
}

impl BlockedSet {
    pub fn set(&self, country: &str, proxy: &str, blocked: bool) {
        let mut map = self.by_country.write().unwrap_or_else(|e| e.into_inner());
        // Under the lock, so a reader that sees the new generation sees the new set.
        self.generation.fetch_add(1, Ordering::AcqRel);
        if blocked {
            Arc::make_mut(map.entry(country.to_string()).or_default()).insert(proxy.to_string());
        } else if let Some(proxies) = map.get_mut(country) {
            Arc::make_mut(proxies).remove(proxy);
            if proxies.is_empty() {
                map.remove(country);
            }
        }
    }

    /// Changes whenever any country's set changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The proxies blocked in `country` (empty for none, or for an unknown country).
    pub fn in_country(&self, country: Option<&str>) -> Arc<HashSet<String>> {
        let map = self.by_country.read().unwrap_or_else(|e| e.into_inner());
        country
            .and_then(|c| map.get(c))
            .cloned()
            .unwrap_or_default()
    }

    pub fn is_blocked(&self, country: Option<&str>, proxy: &str) -> bool {
        let Some(country) = country else {
            return false;
        };
        let map = self.by_country.read().unwrap_or_else(|e| e.into_inner());
        map.get(country).is_some_and(|p| p.contains(proxy))
    }

    /// The countries `proxy` is blocked in, sorted.
    pub fn countries_of(&self, proxy: &str) -> Vec<String> {
        let map = self.by_country.read().unwrap_or_else(|e| e.into_inner());
        let mut countries: Vec<String> = map
            .iter()
            .filter(|(_, proxies)| proxies.contains(proxy))
            .map(|(country, _)| country.clone())
            .collect();
        countries.sort();
        countries
    }

    /// Every (proxy, country) blocked now, sorted.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let map = self.by_country.read().unwrap_or_else(|e| e.into_inner());
        let mut pairs: Vec<(String, String)> = map
            .iter()
            .flat_map(|(country, proxies)| proxies.iter().map(|p| (p.clone(), country.clone())))
            .collect();
        pairs.sort();
        pairs
    }

    /// How many proxies are blocked in each country (for `/metrics`).
    pub fn counts(&self) -> Vec<(String, usize)> {
        let map = self.by_country.read().unwrap_or_else(|e| e.into_inner());
        let mut counts: Vec<(String, usize)> =
            map.iter().map(|(c, p)| (c.clone(), p.len())).collect();
        counts.sort();
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_set_is_per_country() {
        let set = BlockedSet::default();
        set.set("IR", "p1", true);
        set.set("IR", "p2", true);
        set.set("CN", "p1", true);
        assert!(set.is_blocked(Some("IR"), "p2"));
        assert!(!set.is_blocked(Some("CN"), "p2"));
        assert!(!set.is_blocked(None, "p1"));
        set.set("IR", "p2", false);
        assert_eq!(set.in_country(Some("IR")).len(), 1);
        set.set("CN", "p1", false);
        assert_eq!(set.counts(), vec![("IR".to_string(), 1)]);
    }
}
