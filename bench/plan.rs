//! Rebalance planning at scale: builds a snapshot of USERS users on PROXIES proxies (limit 200,
//! users spread evenly), OVERLOADED percent of them reporting 250 clients (50 over), and times the pure
//! planner. Prints a Markdown table with the time and the peak memory of the process.
//!
//! Usage: bench-plan USERS PROXIES OVERLOADED_PERCENT

use std::collections::BTreeMap;
use std::time::Instant;

use proxyfleet::config::AssignmentPolicy;
use proxyfleet::fleet::model::UserId;
use proxyfleet::fleet::policy::Fit;
use proxyfleet::fleet::rebalance::plan::{plan, ProxyState, Rules, Snapshot, Trigger, UserState};
use proxyfleet::registry::model::ProxyName;
use proxyfleet::registry::Role;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn peak_rss_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(|| "unknown".into(), |kb| format!("{} MiB", kb / 1024))
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (users, proxies, overloaded_percent) = match args.as_slice() {
        [u, p, o] => (*u, *p, *o),
        _ => (1_000_000, 10_000, 10),
    };
    let build_started = Instant::now();
    let per_proxy = users / proxies;
    let overloaded = proxies * overloaded_percent / 100;
    let mut snapshot = Snapshot::default();
    let mut users_on = BTreeMap::new();
    let mut next_user = 0u64;
    for i in 0..proxies {
        let name = ProxyName::parse(&format!("p{i}")).expect("a valid name");
        let hot = i < overloaded;
        snapshot.proxies.push(ProxyState {
            name: name.clone(),
            role: Role::Fallback,
            limit: 200,
            clients: Some(if hot { 250 } else { per_proxy as u32 / 2 }),
            assigned: per_proxy,
            over_limit_since_ms: hot.then_some(0),
            under_low_since_ms: None,
            // Every level has proxies, and users of every level move: the planner ranks by
            // level (a scan of the targets per move), its costliest case.
            floor: Some((i % 5) as u8),
        });
        let list: Vec<UserState> = (0..per_proxy)
            .map(|_| {
                next_user += 1;
                UserState {
                    id: UserId(next_user),
                    proxies: vec![name.clone()],
                    last_moved_ms: None,
                    blocked_here: Vec::new(),
                    wanted: 1,
                    fit: Fit::under(AssignmentPolicy::Trust, (next_user % 5) as u8, 3),
                }
            })
            .collect();
        users_on.insert(name, list);
    }
    snapshot.users_on = users_on;
    let build = build_started.elapsed();

    let rules = Rules {
        hysteresis_ms: 0,
        cooldown_ms: 3_600_000,
        max_moves: usize::MAX,
        drain_after_ms: u64::MAX,
        min_fallback_proxies: 2,
        provisioning_pending: false,
        retire_hook: false,
    };
    let started = Instant::now();
    let result = plan(
        &snapshot,
        &rules,
        Trigger::Manual,
        10_000_000,
        &mut StdRng::seed_from_u64(1),
    );
    let elapsed = started.elapsed();
    println!("| users | proxies | overloaded | moves planned | unplaced | snapshot build | planning | peak memory |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {next_user} | {proxies} | {overloaded} | {} | {} | {:.2} s | {:.2} s | {} |",
        result.moves.len(),
        result.unplaced,
        build.as_secs_f64(),
        elapsed.as_secs_f64(),
        peak_rss_mib()
    );
}
