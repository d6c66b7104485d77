//! The sweeper removes proxies whose heartbeat is overdue. It checks often enough that a short
//! TTL (tests, labs) is honoured within a fraction of it.

use std::time::Duration;

use tokio::sync::watch;

use super::Registry;
use crate::clock::now_ms;

pub fn interval_for(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(250), Duration::from_secs(15))
}

pub async fn run(registry: Registry, ttl: Duration, stop: watch::Receiver<bool>) {
    crate::clock::every(interval_for(ttl), stop, || async {
        match registry.sweep(now_ms()).await {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(count = removed.len(), "expired silent proxies")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "sweep failed"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_at_least_every_few_seconds() {
        assert_eq!(
            interval_for(Duration::from_secs(2)),
            Duration::from_millis(500)
        );
        assert_eq!(
            interval_for(Duration::from_secs(300)),
            Duration::from_secs(15)
        );
        assert_eq!(
            interval_for(Duration::from_millis(100)),
            Duration::from_millis(250)
        );
    }
}
