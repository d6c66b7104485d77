//! Wall-clock time as unix milliseconds: the one unit stored and compared everywhere.
//!
//! `now_ms()` is the system clock. The HTTP API reads time through a [`Clock`] held in its
//! state instead, so a test can move the server's clock forward (a promo code's expiry, a
//! heartbeat a minute later) rather than sleep until it is so.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The system clock plus an offset that only grows (zero unless a test advances it).
#[derive(Clone, Default)]
pub struct Clock {
    ahead_ms: Arc<AtomicU64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    pub fn now_ms(&self) -> u64 {
        now_ms().saturating_add(self.ahead_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every copy of it) forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.ahead_ms.fetch_add(by, Ordering::Relaxed);
    }
}

/// Runs `round` every `period`, the first time at once, until `stop` turns true (the loop of
/// every periodic job).
pub async fn every<F, Round>(period: Duration, stop: tokio::sync::watch::Receiver<bool>, round: F)
where
    F: FnMut() -> Round,
    Round: std::future::Future<Output = ()>,
{
    repeat(tokio::time::Instant::now(), period, stop, round).await;
}

/// As [`every`], the first time at `first`. A round that overruns delays the next one
/// instead of bunching them up.
pub async fn repeat<F, Round>(
    first: tokio::time::Instant,
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut round: F,
) where
    F: FnMut() -> Round,
    Round: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval_at(first, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        round().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_is_ahead_in_every_copy() {
        let clock = Clock::system();
        let copy = clock.clone();
        clock.advance(Duration::from_secs(3600));
        let ahead = copy.now_ms() - now_ms();
        assert!((3_599_000..=3_601_000).contains(&ahead), "{ahead}");
    }
}
