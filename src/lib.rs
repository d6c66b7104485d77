//! proxyfleet: the control plane of a circumvention proxy network, in one process.
//!
//! The map (one module per capability; each keeps types, pure logic, storage and routes apart):

/// The admin web panel: accounts, sessions, CSRF, audit trail, the embedded UI.
pub mod admin;
/// The HTTP API: `AppState`, the root router, one route module per capability.
pub mod api;
/// Wiring: `Application::build(config)`, background jobs, shutdown.
pub mod app;
/// Backups: consistent online snapshots, restore, the schedule.
pub mod backup;
pub mod billing;
/// Blocking awareness: reachability reports, probes, per-country verdicts.
pub mod blocking;
/// The change log's record types (proxies and users), above the store that keeps them.
pub mod changes;
/// Wall-clock milliseconds.
pub mod clock;
/// Typed configuration: defaults < TOML file < `PROXYFLEET_*` environment.
pub mod config;
/// The config server: what each client is told to use, with long-poll.
pub mod distribution;
/// The crate's one error type, with an HTTP status per variant.
pub mod error;
/// Users, trust graph, invitations, fallback assignment, the rebalancer.
pub mod fleet;
/// Gateway recommendation (menshen): GeoIP, distance, load.
pub mod gateways;
/// Shared HTTP pieces: JSON errors, bearer tokens, body limits and parsing.
pub mod http;
pub mod mail;
/// Prometheus metrics: request counts and latency by route, tasks, mails, the store's figures.
pub mod metrics;
/// The Redis mirror of the change log, and the edge (read-only, Redis-backed) mode.
pub mod mirror;
/// The durable task queue and its workers.
pub mod queue;
/// Proxies: register, heartbeat, unregister, expiry, history, edge (VCL) sync.
pub mod registry;
/// sled behind a typed interface: trees, transactions, change log, group commit.
pub mod store;

pub use app::Application;
pub use config::Config;
