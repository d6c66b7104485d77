//! The gauges read from the store at scrape time, from the same figures as the dashboard.

use std::collections::BTreeMap;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::admin::summary::Summary;
use crate::billing::payments::Totals;

/// Registers a gauge family and sets its samples: (label values, value).
fn gauge<'a>(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    samples: impl IntoIterator<Item = (Vec<&'a str>, i64)>,
) {
    let family = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}")); // static names: a bug if it fails
    for (values, value) in samples {
        family.with_label_values(&values).set(value);
    }
    if let Err(e) = registry.register(Box::new(family)) {
        tracing::error!(metric = name, error = %e, "registering a gauge");
    }
}

/// A counter family whose values are totals kept in the store (monotonic since the store was
/// created), set afresh at each scrape: a `_total` name is a counter's (promtool).
fn counter<'a>(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    samples: impl IntoIterator<Item = (Vec<&'a str>, u64)>,
) {
    let family = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}")); // static names: a bug if it fails
    for (values, value) in samples {
        family.with_label_values(&values).inc_by(value);
    }
    if let Err(e) = registry.register(Box::new(family)) {
        tracing::error!(metric = name, error = %e, "registering a counter");
    }
}

/// A registry's samples in Prometheus' text format.
fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut out) {
        tracing::error!(error = %e, "encoding metrics");
    }
    out
}

/// The store's figures in Prometheus' text format.
pub fn gauges(summary: &Summary, totals: &BTreeMap<String, Totals>) -> String {
    let registry = Registry::new();
    let down = &summary.proxies_down;
    let up = summary
        .proxies
        .iter()
        .map(|(role, count)| (vec![role.as_str(), "up"], count.proxies as i64));
    gauge(
        &registry,
        "proxyfleet_proxies",
        "Proxies by role and state: up (registered, heartbeating), or expired / unregistered \
         (left in the last 24 h and not back; role unknown).",
        &["role", "state"],
        up.chain([
            (vec!["", "expired"], down.expired as i64),
            (vec!["", "unregistered"], down.unregistered as i64),
        ]),
    );
    gauge(
        &registry,
        "proxyfleet_fleet",
        "Distinct clients the live proxies report, and their capacity.",
        &["measure"],
        [
            (vec!["clients"], summary.clients as i64),
            (vec!["capacity"], summary.capacity as i64),
        ],
    );
    gauge(
        &registry,
        "proxyfleet_users",
        "User accounts: all, and those with Pro now.",
        &["tier"],
        [
            (vec!["all"], summary.users_total as i64),
            (vec!["pro"], summary.users_pro as i64),
        ],
    );
    gauge(
        &registry,
        "proxyfleet_users_unplaced",
        "Users waiting for a fallback proxy because none had room; placed as soon as room appears.",
        &["reason"],
        [(vec!["no_room"], summary.users_unplaced as i64)],
    );
    let queue = summary.queue.by_kind.iter().flat_map(|(kind, states)| {
        states
            .iter()
            .map(move |(state, count)| (vec![kind.as_str(), state.as_str()], *count as i64))
    });
    gauge(
        &registry,
        "proxyfleet_queue_tasks",
        "Durable-queue tasks by kind and state (ready, leased, done, dead).",
        &["kind", "state"],
        queue,
    );
    counter(
        &registry,
        "proxyfleet_payments_total",
        "Payments recorded since the store was created, by currency.",
        &["currency"],
        totals
            .iter()
            .map(|(currency, total)| (vec![currency.as_str()], total.payments)),
    );
    let amounts = totals.iter().flat_map(|(currency, total)| {
        [
            (vec![currency.as_str(), "paid"], total.amount),
            (vec![currency.as_str(), "refunded"], total.refunded),
        ]
    });
    counter(
        &registry,
        "proxyfleet_payments_amount_total",
        "Amounts paid and refunded since the store was created, in minor units.",
        &["currency", "kind"],
        amounts,
    );
    let disk = &summary.storage;
    gauge(
        &registry,
        "proxyfleet_storage",
        "The data disk: free bytes, the free space under which writes are refused, whether \
         they are refused now (1), and whether the engine failed at a full disk (1: restart).",
        &["measure"],
        [
            (vec!["free_bytes"], disk.free_bytes as i64),
            (vec!["min_free_bytes"], disk.min_free_bytes as i64),
            (vec!["writes_refused"], i64::from(disk.writes_refused)),
            (vec!["failed"], i64::from(disk.storage_failed)),
        ],
    );
    let store = &summary.compaction;
    gauge(
        &registry,
        "proxyfleet_store",
        "The store: bytes on disk, bytes right after its last rewrite, the size that starts the \
         next rewrite (0: never), its generation and the rewrites since start.",
        &["measure"],
        [
            (vec!["bytes_on_disk"], store.bytes_on_disk as i64),
            (
                vec!["bytes_after_last_compaction"],
                store.bytes_after_last as i64,
            ),
            (
                vec!["compaction_threshold_bytes"],
                store.next_at_bytes.unwrap_or(0) as i64,
            ),
            (vec!["generation"], store.generation as i64),
            (vec!["compactions"], store.compactions as i64),
        ],
    );
    encode(&registry)
}

/// The proxies blocked in each country (`blocking`), one sample per country with any.
pub fn blocked_gauges(counts: &[(String, usize)]) -> String {
    let registry = Registry::new();
    gauge(
        &registry,
        "proxyfleet_proxy_blocked",
        "Proxies blocked in each country (by reachability reports and probes: docs/BLOCKING.md).",
        &["country"],
        counts
            .iter()
            .map(|(country, count)| (vec![country.as_str()], *count as i64)),
    );
    encode(&registry)
}

/// Manual city choices in `/json` (`type=refresh`), by city, since the store was made.
pub fn override_counters(totals: &[(String, u64)]) -> String {
    let registry = Registry::new();
    counter(
        &registry,
        "proxyfleet_gateway_overrides_total",
        "Clients that chose a gateway city by hand in /json (type=refresh), by city.",
        &["city"],
        totals
            .iter()
            .map(|(city, total)| (vec![city.as_str()], *total)),
    );
    encode(&registry)
}

/// What the HTTP listeners hold now, against their caps (`max_connections`, `max_long_polls`).
pub fn listener_gauges(connections: usize, long_polls: usize) -> String {
    let registry = Registry::new();
    gauge(
        &registry,
        "proxyfleet_http_open",
        "Open HTTP connections (waiting config long-polls counted apart), and long-polls waiting.",
        &["kind"],
        [
            (vec!["connections"], connections as i64),
            (vec!["long_polls"], long_polls as i64),
        ],
    );
    encode(&registry)
}
