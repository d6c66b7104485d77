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

#[derive(Serialize, Debug, Default, PartialEq)]
pub struct Down {
    /// Went silent: the sweeper expired them.
    pub expired: u64,
    /// Said goodbye (`POST /unregister`).
    pub unregistered: u64,
    pub window_secs: u64,
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
            _ => {}
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
    }
}
