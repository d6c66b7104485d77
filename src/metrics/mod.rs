//! Prometheus metrics: what the process counts as it goes (requests, tasks, mails, webhooks,
//! rebalancer runs) plus, at scrape time, what the store holds (proxies, users, queue, mirror,
//! payments). `GET /metrics` with the admin token; the names are listed in the README (Operations).

pub mod route_names;
pub mod scrape;

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::fleet::rebalance::plan::Plan;
use route_names::RouteNames;

pub struct Metrics {
    registry: Registry,
    routes: RouteNames,
    requests: IntCounterVec,
    latency: HistogramVec,
    tasks: IntCounterVec,
    mails: IntCounterVec,
    webhooks: IntCounterVec,
    rebalance_runs: IntCounterVec,
    rebalance_changes: IntCounterVec,
    pro_sweeps: IntCounterVec,
}

/// Request latency buckets, in seconds: the hot paths answer in well under a millisecond,
/// long-polls take up to a minute.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 60.0,
];

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}")); // static names: a bug if it fails
    registry
        .register(Box::new(counter.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    counter
}

impl Metrics {
    pub fn new(openapi: &str) -> Metrics {
        let registry = Registry::new();
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "proxyfleet_http_request_duration_seconds",
                "Time to answer a request, by route template and method.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method"],
        )
        .unwrap_or_else(|e| panic!("latency histogram: {e}"));
        registry
            .register(Box::new(latency.clone()))
            .unwrap_or_else(|e| panic!("latency histogram: {e}"));
        Metrics {
            routes: RouteNames::from_openapi(openapi),
            requests: counter(
                &registry,
                "proxyfleet_http_requests_total",
                "Requests answered, by route template, method and status.",
                &["route", "method", "status"],
            ),
            latency,
            tasks: counter(
                &registry,
                "proxyfleet_tasks_total",
                "Durable-queue task runs, by kind and outcome (ok or error: retried later).",
                &["kind", "outcome"],
            ),
            mails: counter(
                &registry,
                "proxyfleet_mails_total",
                "Mail deliveries tried, by outcome (sent or failed).",
                &["outcome"],
            ),
            webhooks: counter(
                &registry,
                "proxyfleet_stripe_webhooks_total",
                "Stripe webhook events, by outcome (granted, revoked, duplicate, ignored, rejected).",
                &["outcome"],
            ),
            rebalance_runs: counter(
                &registry,
                "proxyfleet_rebalance_runs_total",
                "Rebalancer runs that changed something or not, by trigger and dry_run.",
                &["trigger", "dry_run"],
            ),
            rebalance_changes: counter(
                &registry,
                "proxyfleet_rebalance_changes_total",
                "Changes applied by the rebalancer: moves, promoted, drained, provisioned.",
                &["change"],
            ),
            pro_sweeps: counter(
                &registry,
                "proxyfleet_pro_sweeps_total",
                "Runs of the Pro expiry sweeper (ends Pro that ran out, announces Pro ending soon), by outcome (ok or failed).",
                &["outcome"],
            ),
            registry,
        }
    }

    /// One run of the Pro expiry sweeper: a stalled sweeper shows as a flat counter.
    pub fn pro_swept(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.pro_sweeps.with_label_values(&[outcome]).inc();
    }

    /// Called for every answer, so it allocates nothing: labels are borrowed strings.
    pub fn observe_request(&self, method: &str, path: &str, status: &str, elapsed: Duration) {
        let route = self.routes.name(path);
        self.requests
            .with_label_values(&[route, method, status])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
    }

    pub fn task_ran(&self, kind: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "error" };
        self.tasks.with_label_values(&[kind, outcome]).inc();
        if kind == crate::mail::MAIL_SEND.name() {
            let outcome = if ok { "sent" } else { "failed" };
            self.mails.with_label_values(&[outcome]).inc();
        }
    }

    pub fn webhook(&self, outcome: &str) {
        self.webhooks.with_label_values(&[outcome]).inc();
    }

    pub fn rebalanced(&self, plan: &Plan) {
        let trigger = serde_json::to_value(plan.trigger)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let dry_run = if plan.dry_run { "true" } else { "false" };
        self.rebalance_runs
            .with_label_values(&[trigger.as_str(), dry_run])
            .inc();
        if plan.dry_run {
            return;
        }
        for (change, count) in [
            ("moves", plan.moves.len()),
            ("promoted", plan.promoted.len()),
            ("drained", plan.retired.len()),
            ("provisioned", plan.provisioned.len()),
        ] {
            self.rebalance_changes
                .with_label_values(&[change])
                .inc_by(count as u64);
        }
    }

    /// The process's counters in the text format.
    pub(crate) fn encode_counters(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out)
        {
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}
