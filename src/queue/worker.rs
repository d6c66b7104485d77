//! Workers: lease a task, run it, ack or fail it. A handler that outlives its lease is cut
//! off, so a task is never run by two workers at once.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use super::{Queue, Task};
use crate::clock::Clock;

/// Longest idle wait: a wake-up missed between "nothing due" and waiting costs at most this.
const MAX_IDLE: Duration = Duration::from_millis(500);

/// Runs tasks as they fall due by `clock` (the app's: a test that moves it forward finds
/// what it scheduled due).
pub async fn run<F, Fut>(queue: Queue, clock: Clock, mut stop: watch::Receiver<bool>, handle: F)
where
    F: Fn(Task) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let run_limit = Duration::from_millis(queue.policy.lease_ms.saturating_sub(1000).max(1000));
    while !*stop.borrow() {
        match queue.lease(clock.now_ms()) {
            Ok(Some(task)) => {
                // The lease reaches the disk before the work starts: a kill during the work
                // must find the try counted at the next start (a task that kills the server
                // every time ends a dead letter), and sled alone writes it up to 500 ms later.
                if let Err(e) = queue.store.durable().await {
                    tracing::error!(task = task.id, error = %e, "could not record a lease");
                    let _ = queue.fail(&task, "could not record the lease", clock.now_ms());
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                let outcome = match tokio::time::timeout(run_limit, handle(task.clone())).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(format!("ran longer than {run_limit:?}")),
                };
                let recorded = match &outcome {
                    Ok(()) => queue.ack(&task, clock.now_ms()),
                    Err(error) => {
                        tracing::warn!(task = task.id, kind = %task.kind, attempt = task.attempts, %error, "task failed");
                        queue.fail(&task, error, clock.now_ms())
                    }
                };
                if let Err(e) = recorded {
                    tracing::error!(task = task.id, error = %e, "could not record task outcome");
                }
            }
            Ok(None) => {
                let idle = match queue.next_due_ms() {
                    Ok(Some(due)) => {
                        Duration::from_millis(due.saturating_sub(clock.now_ms())).min(MAX_IDLE)
                    }
                    _ => MAX_IDLE,
                };
                tokio::select! {
                    _ = queue.bell.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "task queue unavailable");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}
