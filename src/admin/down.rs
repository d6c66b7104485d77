//! Proxies that are down: they left the registry (expired, or unregistered themselves) within
//! the window and have not come back. Read from the registry's history, newest first, so the
//! cost is the window's churn, not the fleet's size.

use std::collections::HashSet;

use serde::Serialize;

use crate::registry::model::ProxyEventKind;
use crate::registry::ProxyEvent;

/// The most history one dashboard read walks.
pub const MAX_EVENTS: usize = 100_000;
pub const WINDOW_MS: u64 = 24 * 3_600_000;
/// The most down proxies named in one answer (the counts cover them all).
pub const MAX_LISTED: usize = 100;

#[derive(Serialize, Debug, Default, PartialEq)]
pub struct Down {
    /// Went silent: the sweeper expired them.
    pub expired: u64,
    /// Said goodbye (`POST /unregister`), or an operator revoked them.
    pub unregistered: u64,
    pub window_secs: u64,
    /// Which they are, most recently gone first, at most `MAX_LISTED`.
    pub proxies: Vec<DownProxy>,
}

/// A proxy that is down, and its last event: how and when it left, from which address.
#[derive(Serialize, Debug, PartialEq)]
pub struct DownProxy {
    pub name: String,
    /// `expired`, `unregistered` or `revoked`.
    pub how: &'static str,
    /// Unix seconds.
    pub at: u64,
    pub ip: String,
    pub port: u16,
}

/// Counts the proxies whose latest event since `since_ms` is a departure and that are not live
/// now. `events` come newest first.
pub fn count(
    events: impl IntoIterator<Item = ProxyEvent>,
    is_live: impl Fn(&str) -> bool,
    since_ms: u64,
) -> Down {
    let mut seen: HashSet<String> = HashSet::new();
    let mut down = Down {
        window_secs: WINDOW_MS / 1000,
        ..Down::default()
    };
    for event in events {
        if event.at_ms < since_ms {
            break;
        }
        if event.kind.country().is_some() {
            continue; // a block says nothing of whether the proxy is up
        }
        let name = event.name.as_str();
        if !seen.insert(name.to_string()) || is_live(name) {
            continue; // an older event of a proxy already counted, or one that is back
        }
        match event.kind {
            ProxyEventKind::Expired => down.expired += 1,
            ProxyEventKind::Unregistered | ProxyEventKind::Revoked => down.unregistered += 1,
            _ => continue,
        }
        if down.proxies.len() < MAX_LISTED {
            down.proxies.push(DownProxy {
                name: name.to_string(),
                how: event.kind.name(),
                at: event.at_ms / 1000,
                ip: event.ip.to_string(),
                port: event.port,
            });
        }
    }
    down
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ProxyName;

    fn event(seq: u64, name: &str, kind: ProxyEventKind) -> ProxyEvent {
        ProxyEvent {
            seq,
            at_ms: seq * 1000,
            name: ProxyName::parse(name).unwrap(),
            kind,
            ip: "192.0.2.1".parse().unwrap(),
            port: 443,
        }
    }

    #[test]
    fn only_the_latest_departure_of_a_proxy_still_gone_counts() {
        use ProxyEventKind::*;
        // Newest first.
        let history = [
            event(9, "back", Registered),
            event(8, "gone", Expired),
            event(7, "back", Expired),
            event(6, "bye", Unregistered),
            event(5, "gone", Expired),
            event(1, "old", Expired), // before the window
        ];
        let live = |name: &str| name == "back";
        let down = count(history, live, 2000);
        assert_eq!((down.expired, down.unregistered), (1, 1));
        let named: Vec<(&str, &str, u64)> = down
            .proxies
            .iter()
            .map(|p| (p.name.as_str(), p.how, p.at))
            .collect();
        assert_eq!(named, [("gone", "expired", 8), ("bye", "unregistered", 6)]);
    }
}
