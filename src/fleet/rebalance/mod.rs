//! The rebalancer: periodic and on demand. `snapshot` reads, `plan` decides (pure), `apply`
//! writes, `ledger` remembers the moves the proxies have not reported yet. Plans are
//! deterministic: the same fleet and the same seed give the same plan. A dry run changes
//! nothing in the fleet but keeps its plan, so the operator can apply exactly what they
//! reviewed (`apply_reviewed`), or learn that the fleet changed since (409 `plan_stale`).

pub mod apply;
pub mod ledger;
pub mod plan;
pub mod snapshot;

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::watch;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::store::codec::u64_key;
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

/// The meta key of this store's own rebalance seed (made once, never shown): plans are
/// deterministic, yet which users move cannot be predicted from outside.
const STORE_SEED: &str = "rebalance.seed";

/// The seed of a run: the one asked for, else `rebalance_seed`, else the store's own.
fn seed_for(fleet: &Fleet, settings: &RebalanceSettings, asked: Option<u64>) -> Result<u64> {
    if let Some(seed) = asked.or(settings.seed) {
        return Ok(seed);
    }
    fleet.store.transaction(|tx| {
        if let Some(seed) = tx.get::<u64>(TreeId::Meta, STORE_SEED)? {
            return Ok(seed);
        }
        let seed: u64 = rand::random();
        tx.put(TreeId::Meta, STORE_SEED, &seed)?;
        Ok(seed)
    })
}

/// Plans (and unless `dry_run`, applies) one rebalance at `now` (the clock the proxies'
/// reports are timed with); a dry run's plan is kept, numbered, for `apply_reviewed`. `seed`
/// makes the random choices (which users move) reproducible.
pub async fn run(
    fleet: &Fleet,
    settings: &RebalanceSettings,
    trigger: Trigger,
    dry_run: bool,
    seed: Option<u64>,
    now: u64,
) -> Result<Plan> {
    let _one_at_a_time = fleet.rebalancing.lock().await;
    if !dry_run {
        // Users whose level rose since are owed the fallbacks it holds: the snapshot sees them.
        fleet.note_rises(now).await?;
    }
    let requested: Option<u64> = fleet.store.get(TreeId::Meta, apply::PROVISION_REQUESTED)?;
    let rules = Rules {
        hysteresis_ms: settings.hysteresis_ms,
        cooldown_ms: settings.cooldown_ms,
        max_moves: settings.max_moves,
        drain_after_ms: settings.drain_after_ms,
        min_fallback_proxies: settings.min_fallback_proxies,
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
    let mut rng = StdRng::seed_from_u64(seed_for(fleet, settings, seed)?);
    let mut plan = plan::plan(&snapshot, &rules, trigger, now, &mut rng);
    plan.dry_run = dry_run;
    if dry_run {
        apply::keep_for_review(fleet, &mut plan)?;
    } else {
        apply::apply(fleet, &mut plan, now, None).await?;
    }
    Ok(plan)
}

/// Applies the dry run `id` exactly as the operator reviewed it, if every part of it still
/// fits the fleet; otherwise 409 `plan_stale`, saying what changed. A plan is applied once.
pub async fn apply_reviewed(fleet: &Fleet, id: u64, now: u64) -> Result<Plan> {
    let _one_at_a_time = fleet.rebalancing.lock().await;
    let Some(mut plan) = fleet.store.get::<Plan>(TreeId::Plans, u64_key(id))? else {
        return Err(Error::NotFound(format!("plan {id}")));
    };
    if !plan.dry_run {
        return Err(Error::conflict(
            "plan_applied",
            format!("plan {id} is not a dry run waiting for review: it was applied"),
        ));
    }
    let changed = {
        let (fleet, plan) = (fleet.clone(), plan.clone());
        tokio::task::spawn_blocking(move || apply::what_changed(&fleet, &plan))
            .await
            .map_err(Error::internal)??
    };
    if !changed.is_empty() {
        const SHOWN: usize = 10;
        let mut shown = changed.iter().take(SHOWN).cloned().collect::<Vec<_>>();
        if changed.len() > SHOWN {
            shown.push(format!("and {} more", changed.len() - SHOWN));
        }
        return Err(Error::conflict(
            "plan_stale",
            format!(
                "plan {id} no longer fits the fleet ({}); run a new dry run",
                shown.join("; ")
            ),
        ));
    }
    plan.dry_run = false;
    apply::apply(fleet, &mut plan, now, Some(id)).await?;
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

/// Periodic runs, timed by `clock` (the one the proxies' reports are timed with); `ran` sees
/// each plan (for the metrics). The first run waits one interval: the fleet reports first.
pub async fn periodic(
    fleet: Fleet,
    settings: RebalanceSettings,
    clock: crate::clock::Clock,
    ran: impl Fn(&Plan) + Send + 'static,
    stop: watch::Receiver<bool>,
) {
    if settings.interval.is_zero() {
        return;
    }
    let first = tokio::time::Instant::now() + settings.interval;
    crate::clock::repeat(first, settings.interval, stop, || async {
        let outcome = run(
            &fleet,
            &settings,
            Trigger::Periodic,
            false,
            None,
            clock.now_ms(),
        )
        .await;
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
    })
    .await;
}
