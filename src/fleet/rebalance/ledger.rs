//! Moves a proxy has not reported yet. A proxy tells its clients with each heartbeat, so right
//! after the rebalancer moves users off it, its last report still counts them; planning on
//! that report again would move the same excess a second time (10 users reporting 14 against
//! 10: 4, then 4 more, then the last 2). The ledger keeps each applied move until the proxy
//! it touched reports after it, and the snapshot corrects the reported clients with it: the
//! moved users are counted out of their old proxy and into their new one.
//!
//! Kept in memory: after a restart the proxies report again within one heartbeat, and the
//! periodic rebalancer waits out its hysteresis before acting on a report.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::registry::model::ProxyName;

#[derive(Default)]
pub struct MoveLedger {
    /// Per proxy: (when, clients gained (+) or lost (-)) for each applied plan that touched it.
    unreported: Mutex<HashMap<ProxyName, Vec<(u64, i64)>>>,
}

impl MoveLedger {
    /// Records the moves of one applied plan, all at `at_ms`.
    pub fn record<'a>(
        &self,
        moves: impl IntoIterator<Item = (Option<&'a ProxyName>, &'a ProxyName)>,
        at_ms: u64,
    ) {
        let mut delta: HashMap<&ProxyName, i64> = HashMap::new();
        for (from, to) in moves {
            if let Some(from) = from {
                *delta.entry(from).or_default() -= 1;
            }
            *delta.entry(to).or_default() += 1;
        }
        let mut unreported = self.lock();
        for (proxy, delta) in delta.into_iter().filter(|(_, d)| *d != 0) {
            unreported
                .entry(proxy.clone())
                .or_default()
                .push((at_ms, delta));
        }
    }

    /// `clients` as reported at `reported_ms`, corrected by the moves applied since. Moves
    /// the report already reflects are forgotten.
    pub fn corrected(
        &self,
        proxy: &ProxyName,
        clients: Option<u32>,
        reported_ms: u64,
    ) -> Option<u32> {
        let mut unreported = self.lock();
        let Some(moves) = unreported.get_mut(proxy) else {
            return clients;
        };
        moves.retain(|(at_ms, _)| *at_ms >= reported_ms);
        let delta: i64 = moves.iter().map(|(_, d)| d).sum();
        if moves.is_empty() {
            unreported.remove(proxy);
        }
        let clients = clients?;
        Some(u32::try_from((i64::from(clients) + delta).max(0)).unwrap_or(u32::MAX))
    }

    /// Forgets proxies no longer registered (the ledger never outgrows the fleet).
    pub fn keep_only(&self, live: &std::collections::HashSet<&ProxyName>) {
        self.lock().retain(|proxy, _| live.contains(proxy));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProxyName, Vec<(u64, i64)>>> {
        self.unreported.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> ProxyName {
        ProxyName::parse(n).unwrap()
    }

    #[test]
    fn moves_count_until_the_proxy_reports_after_them() {
        let ledger = MoveLedger::default();
        let (p1, p2) = (name("p1"), name("p2"));
        let moves = vec![(Some(&p1), &p2); 4];
        ledger.record(moves, 1_000);
        // Reports from before the move are corrected, in both directions.
        assert_eq!(ledger.corrected(&p1, Some(14), 900), Some(10));
        assert_eq!(ledger.corrected(&p2, Some(0), 900), Some(4));
        // A proxy that reports no load stays without one.
        assert_eq!(ledger.corrected(&p2, None, 900), None);
        // A report after the move already counts it: taken as it is, and the move forgotten.
        assert_eq!(ledger.corrected(&p1, Some(11), 1_001), Some(11));
        assert_eq!(ledger.corrected(&p1, Some(14), 900), Some(14));
        // Never below zero.
        ledger.record(vec![(Some(&p1), &p2); 3], 2_000);
        assert_eq!(ledger.corrected(&p1, Some(1), 1_500), Some(0));
        ledger.keep_only(&[&p2].into_iter().collect());
        assert_eq!(ledger.corrected(&p1, Some(1), 1_500), Some(1));
        assert_eq!(ledger.corrected(&p2, Some(0), 1_500), Some(3));
    }
}
