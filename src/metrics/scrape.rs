//! The gauges read from the store at scrape time, from the same figures as the dashboard.

use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};

use crate::admin::summary::Summary;
use crate::billing::payments::Totals;

fn int_gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let gauge = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(gauge.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    gauge
}

/// The store's figures in Prometheus' text format.
pub fn gauges(summary: &Summary, totals: &std::collections::BTreeMap<String, Totals>) -> String {
    let registry = Registry::new();
    let proxies = int_gauge(
        &registry,
        "proxyfleet_proxies",
        "Proxies by role and state: up (registered, heartbeating) or down (left in the last 24 h and not back: expired or unregistered; role unknown).",
        &["role", "state"],
    );
    for (role, count) in &summary.proxies {
        proxies
            .with_label_values(&[role.as_str(), "up"])
            .set(count.proxies as i64);
    }
    let down = &summary.proxies_down;
    proxies
        .with_label_values(&["", "expired"])
        .set(down.expired as i64);
    proxies
        .with_label_values(&["", "unregistered"])
        .set(down.unregistered as i64);
    let fleet = int_gauge(
        &registry,
        "proxyfleet_fleet",
        "Distinct clients the live proxies report, and their capacity.",
        &["measure"],
    );
    fleet
        .with_label_values(&["clients"])
        .set(summary.clients as i64);
    fleet
        .with_label_values(&["capacity"])
        .set(summary.capacity as i64);
    let users = int_gauge(
        &registry,
        "proxyfleet_users",
        "User accounts: all, and those with Pro now.",
        &["tier"],
    );
    users
        .with_label_values(&["all"])
        .set(summary.users_total as i64);
    users
        .with_label_values(&["pro"])
        .set(summary.users_pro as i64);
    let queue = int_gauge(
        &registry,
        "proxyfleet_queue_tasks",
        "Durable-queue tasks by kind and state (ready, leased, done, dead).",
        &["kind", "state"],
    );
    for (kind, states) in &summary.queue.by_kind {
        for (state, count) in states {
            queue
                .with_label_values(&[kind.as_str(), state.as_str()])
                .set(*count as i64);
        }
    }
    let payments = int_gauge(
        &registry,
        "proxyfleet_payments_total",
        "Payments recorded since the store was created, by currency.",
        &["currency"],
    );
    let money = match GaugeVec::new(
        Opts::new(
            "proxyfleet_payments_amount_total",
            "Amounts paid and refunded since the store was created, in minor units.",
        ),
        &["currency", "kind"],
    ) {
        Ok(gauge) => registry
            .register(Box::new(gauge.clone()))
            .ok()
            .map(|_| gauge),
        Err(_) => None,
    };
    for (currency, total) in totals {
        payments
            .with_label_values(&[currency.as_str()])
            .set(total.payments as i64);
        if let Some(money) = &money {
            money
                .with_label_values(&[currency.as_str(), "paid"])
                .set(total.amount as f64);
            money
                .with_label_values(&[currency.as_str(), "refunded"])
                .set(total.refunded as f64);
        }
    }
    let mut out = String::new();
    if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut out) {
        tracing::error!(error = %e, "encoding metrics");
    }
    out
}
