//! The rebalancer: periodic and on demand. `snapshot` reads, `plan` decides (pure), `apply`
//! writes. A dry run plans and returns without writing anything.

pub mod apply;
pub mod plan;
pub mod snapshot;

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::config::Config;
use crate::error::Result;
use crate::fleet::Fleet;
use crate::store::TreeId;
use plan::{Plan, Rules, Trigger};

#[derive(Debug, Clone)]
pub struct RebalanceSettings {
    pub interval: Duration,
    pub hysteresis_ms: u64,
    pub cooldown_ms: u64,
    pub max_moves: usize,
    pub drain_after_ms: u64,
    pub min_fallback_proxies: usize,
    pub provision_wait_ms: u64,
    pub seed: Option<u64>,
}

impl RebalanceSettings {
    pub fn from_config(config: &Config) -> RebalanceSettings {
        RebalanceSettings {
            interval: Duration::from_secs(config.rebalance_interval_secs),
            hysteresis_ms: config.rebalance_hysteresis_secs * 1000,
            cooldown_ms: config.rebalance_cooldown_secs * 1000,
            max_moves: config.rebalance_max_moves,
            drain_after_ms: config.drain_after_secs * 1000,
            min_fallback_proxies: config.min_fallback_proxies,
            provision_wait_ms: config.provision_wait_secs * 1000,
            seed: config.rebalance_seed,
        }
    }
}

/// Plans (and unless `dry_run`, applies) one rebalance.
pub async fn run(
    fleet: &Fleet,
    settings: &RebalanceSettings,
    trigger: Trigger,
    dry_run: bool,
) -> Result<Plan> {
    let _one_at_a_time = fleet.rebalancing.lock().await;
    let now = now_ms();
    let requested: Option<u64> = fleet.store.get(TreeId::Meta, apply::PROVISION_REQUESTED)?;
    let rules = Rules {
        hysteresis_ms: settings.hysteresis_ms,
        cooldown_ms: settings.cooldown_ms,
        max_moves: settings.max_moves,
        drain_after_ms: settings.drain_after_ms,
        min_fallback_proxies: settings.min_fallback_proxies,
        fallbacks_per_user: fleet.settings.fallbacks_per_user,
        provisioning_pending: requested
            .is_some_and(|at| now.saturating_sub(at) < settings.provision_wait_ms),
        retire_hook: fleet.settings.retire_command.is_some(),
    };
    let snapshot = {
        let fleet = fleet.clone();
        tokio::task::spawn_blocking(move || snapshot::take(&fleet, now))
            .await
            .map_err(crate::error::Error::internal)??
    };
    let mut rng = match settings.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_entropy(),
    };
    let mut plan = plan::plan(&snapshot, &rules, trigger, now, &mut rng);
    plan.dry_run = dry_run;
    if !dry_run {
        apply::apply(fleet, &mut plan, now).await?;
    }
    Ok(plan)
}

/// The plans of past runs, newest first.
pub fn history(fleet: &Fleet, limit: usize) -> Result<Vec<Plan>> {
    fleet
        .store
        .scan_rev::<Plan>(TreeId::Plans, None)
        .take(limit)
        .map(|item| item.map(|(_, plan)| plan))
        .collect()
}

/// Drops the oldest plans beyond `keep`.
pub fn compact_history(fleet: &Fleet, keep: usize) -> Result<usize> {
    let old: Vec<Vec<u8>> = fleet
        .store
        .scan_rev::<Plan>(TreeId::Plans, None)
        .skip(keep)
        .map(|item| item.map(|(key, _)| key.to_vec()))
        .collect::<Result<_>>()?;
    for key in &old {
        fleet
            .store
            .transaction(|tx| tx.remove(TreeId::Plans, key))?;
    }
    Ok(old.len())
}

/// Periodic runs; `ran` sees each plan (for the metrics).
pub async fn periodic(
    fleet: Fleet,
    settings: RebalanceSettings,
    ran: impl Fn(&Plan) + Send + 'static,
    mut stop: watch::Receiver<bool>,
) {
    if settings.interval.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(settings.interval);
    tick.tick().await; // the first tick is immediate: let the fleet report first
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let outcome = run(&fleet, &settings, Trigger::Periodic, false).await;
        if let Ok(plan) = &outcome {
            ran(plan);
        }
        match outcome {
            Ok(plan)
                if !plan.moves.is_empty()
                    || !plan.retired.is_empty()
                    || !plan.promoted.is_empty() =>
            {
                tracing::info!(
                    plan = plan.id,
                    moves = plan.moves.len(),
                    promoted = plan.promoted.len(),
                    drained = plan.retired.len(),
                    "rebalanced"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "rebalance failed"),
        }
    }
}
