//! Background work: the task handlers (one line per task kind) and periodic upkeep.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::AppState;
use crate::clock::{every, now_ms};
use crate::queue::{Task, TaskKind};
use crate::registry::edge;

/// Registry history kept for the admin (older entries are dropped).
const EVENTS_KEPT: usize = 100_000;
/// Rebalance plans kept for the admin.
const PLANS_KEPT: usize = 1_000;
/// Audit entries removed per upkeep round at most (a year of a busy panel goes in a few).
const AUDIT_PRUNE_BATCH: usize = 10_000;
const UPKEEP_EVERY: Duration = Duration::from_secs(60);
/// How often the store's size is compared with its compaction threshold (a cheap check).
const COMPACT_CHECK_EVERY: Duration = Duration::from_secs(10);

pub async fn run_task(state: Arc<AppState>, task: Task) -> Result<(), String> {
    let outcome = handle(&state, &task).await;
    state.metrics.task_ran(&task.kind, outcome.is_ok());
    outcome
}

async fn handle(state: &Arc<AppState>, task: &Task) -> Result<(), String> {
    let Some(kind) = TaskKind::parse(&task.kind) else {
        return Err(format!("no handler for task kind `{}`", task.kind));
    };
    match kind {
        TaskKind::EdgeSync => {
            edge::sync(&state.store, &state.registry, &state.edge, &task.payload).await
        }
        TaskKind::ProxyChanged => {
            let name = state.fleet.proxy_changed(&task.payload).await?;
            (state
                .billing
                .proxy_changed(&name, state.clock.now_ms())
                .await)
                .map_err(|e| e.to_string())
        }
        TaskKind::Provision | TaskKind::Retire => state.fleet.hook_task(kind, &task.payload).await,
        TaskKind::MailSend => {
            state
                .mailer
                .send_task(&task.payload, state.clock.now_ms())
                .await
        }
        TaskKind::ProxyBlocked => {
            let payload: serde_json::Value =
                serde_json::from_str(&task.payload).map_err(|e| format!("bad payload: {e}"))?;
            let (Some(proxy), Some(country)) =
                (payload["proxy"].as_str(), payload["country"].as_str())
            else {
                return Err(format!("bad payload {}", task.payload));
            };
            let blocked_ms = payload["at"].as_u64().unwrap_or_else(now_ms);
            let block = crate::fleet::blocked::Block {
                proxy,
                country,
                blocked_ms,
            };
            (state
                .fleet
                .leave_blocked(&block, state.clock.now_ms())
                .await)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        TaskKind::InvitationExpire => {
            (state.fleet)
                .expire_invitation_task(&task.payload, state.clock.now_ms())
                .await
        }
        TaskKind::PlaceUnplaced => (state.fleet.place_unplaced(state.clock.now_ms()).await)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

/// Every `varnish_check_secs`, checks that varnishd still runs what the last edge sync
/// loaded, and queues a sync when it does not (a varnishd restarted by its supervisor).
pub async fn verify_varnish(state: Arc<AppState>, stop: watch::Receiver<bool>) {
    let period = Duration::from_secs(state.config.varnish_check_secs);
    every(period, stop, || check_varnish(&state)).await;
}

async fn check_varnish(state: &AppState) {
    let version = match edge::verify(&state.store, &state.edge).await {
        Ok(Some(version)) => version,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(error = %e, "varnish check failed");
            return;
        }
    };
    let now = now_ms();
    let task = crate::queue::NewTask {
        kind: edge::EDGE_SYNC,
        key: format!("{}:{version}:reload:{now}", edge::EDGE_SYNC),
        payload: serde_json::json!({ "version": version }),
        due_ms: now,
    };
    let queued = state
        .store
        .transaction(|tx| state.queue.enqueue_in(tx, &task, now));
    match queued {
        Ok(_) => state.queue.wake(),
        Err(e) => tracing::error!(error = %e, "queueing the varnish reload failed"),
    }
}

/// Re-reads the live fleet every second (load, roles) and prepares the gateway set, so the
/// config and `/json` requests never rebuild them themselves.
pub async fn refresh_views(state: Arc<AppState>, stop: watch::Receiver<bool>) {
    every(crate::distribution::VIEW_REFRESH, stop, || async {
        let state = state.clone();
        let refreshed = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            state.distribution.refresh(now, |view| {
                state.gateways.set(view, now);
            })?;
            state.fleet.refresh_candidates(now)
        })
        .await;
        if let Ok(Err(e)) = refreshed {
            tracing::error!(error = %e, "fleet view refresh failed");
        }
    })
    .await;
}

/// Ends Pro that ran out (releases the pro proxies) and warns users whose Pro ends within
/// three days, every `pro_sweep_secs`.
pub async fn expire_pro(state: Arc<AppState>, stop: watch::Receiver<bool>) {
    let period = Duration::from_secs(state.config.pro_sweep_secs);
    every(period, stop, || async {
        let mut ok = true;
        match state.billing.expire_due(now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(users = n, "pro ended"),
            Err(e) => {
                ok = false;
                tracing::error!(error = %e, "pro expiry sweep failed");
            }
        }
        if let Err(e) = state.billing.warn_expiring(now_ms()).await {
            ok = false;
            tracing::error!(error = %e, "pro expiry warnings failed");
        }
        state.metrics.pro_swept(ok);
    })
    .await;
}

/// Keeps disk use bounded: drops the change-log entries no one needs and rewrites the store
/// when it has grown enough (`store::compaction`).
/// Folds the heartbeats' deferred writes into the store every `FOLD_EVERY` (`store::deferred`):
/// the Redis mirror learns of them then, and the journal starts again.
pub async fn fold_deferred(store: crate::store::Store, stop: watch::Receiver<bool>) {
    every(crate::store::FOLD_EVERY, stop, || async {
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.fold_deferred()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "folding the deferred writes failed"),
            Err(e) => tracing::error!(error = %e, "folding the deferred writes panicked"),
        }
    })
    .await;
}

pub async fn compact_store(state: Arc<AppState>, stop: watch::Receiver<bool>) {
    let policy = crate::store::CompactPolicy::from_config(&state.config);
    every(COMPACT_CHECK_EVERY, stop, || async {
        let state = state.clone();
        let due = move || {
            state.drop_replayed_changes()?;
            state.store.compact_if_due(policy)
        };
        match tokio::task::spawn_blocking(due).await {
            Ok(Ok(Some(done))) => tracing::info!(
                generation = done.generation,
                records = done.records,
                bytes_before = done.bytes_before,
                bytes_after = done.bytes_after,
                writes_paused_ms = done.writes_paused_ms,
                "store compacted"
            ),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "store compaction failed"),
            Err(e) => tracing::error!(error = %e, "store compaction panicked"),
        }
    })
    .await;
}

/// Retention of everything that grows: finished tasks, the registry's history, forgotten
/// credentials, old plans, expired sessions, the audit trail, the throttles' memory, quiet
/// blocking verdicts.
pub async fn upkeep(state: Arc<AppState>, stop: watch::Receiver<bool>) {
    every(UPKEEP_EVERY, stop, || async {
        let state = state.clone();
        let outcome = tokio::task::spawn_blocking(move || -> crate::error::Result<()> {
            state.queue.purge_done(now_ms())?;
            state.registry.compact_events(EVENTS_KEPT)?;
            let keep_ms = state.config.proxy_credential_keep_days * 24 * 3600 * 1000;
            state.registry.credentials.forget_gone(keep_ms, now_ms())?;
            crate::fleet::rebalance::compact_history(&state.fleet, PLANS_KEPT)?;
            crate::admin::sessions::end_expired(&state.store, now_ms())?;
            state.admin.throttle.shrink(now_ms());
            state.admin.failures.flush(&state.store, now_ms())?;
            let audit_keep_ms = state
                .config
                .audit_keep_days
                .saturating_mul(24 * 3600 * 1000);
            crate::admin::audit::prune(&state.store, audit_keep_ms, now_ms(), AUDIT_PRUNE_BATCH)?;
            state.limits.shrink();
            state.blocking.forget_quiet(now_ms())?;
            Ok(())
        })
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "upkeep failed"),
            Err(e) => tracing::error!(error = %e, "upkeep panicked"),
        }
    })
    .await;
}
