//! The replication loop: connect, decide whether Redis can resume or needs a full copy, then
//! send the change log in batches, each batch one MULTI/EXEC that also sets `mirror:seq`, so
//! Redis always holds exactly the changes up to its own `mirror:seq` (no gap, no reordering,
//! whichever side crashes). Only changes already on disk are sent: Redis is never ahead of
//! what sled would recover after a crash.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::watch;

use super::configs::Configs;
use super::records::apply_change;
use super::MirrorDeps;
use super::{connect, resync, State, APPLIED_SEQ, BATCH, SOURCE_ID};
use crate::changes::ChangeKind;
use crate::clock::now_ms;
use crate::store::TreeId;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often an idle mirror looks for a resync request even when nothing changes.
const IDLE_TICK: Duration = Duration::from_millis(250);

/// Where streaming can start.
#[derive(Debug, PartialEq, Eq)]
pub enum Start {
    /// Redis holds exactly the changes up to this sequence.
    Resume(u64),
    /// Redis must be copied from sled first; why.
    Resync(&'static str),
}

/// Decides from what Redis says it holds and what sled still has.
pub fn decide(
    redis_seq: Option<u64>,
    redis_source: Option<&str>,
    our_source: &str,
    last_seq: u64,
    first_retained: Option<u64>,
) -> Start {
    let Some(seq) = redis_seq else {
        return Start::Resync("redis holds no mirror (empty or new)");
    };
    if redis_source != Some(our_source) {
        return Start::Resync("redis holds another store's mirror");
    }
    if seq > last_seq {
        return Start::Resync("redis is ahead of the store (restored from an older backup?)");
    }
    match first_retained {
        // The next change Redis needs was compacted away.
        Some(first) if seq + 1 < first => Start::Resync("redis is behind the retained change log"),
        None if seq < last_seq => Start::Resync("redis is behind the retained change log"),
        _ => Start::Resume(seq),
    }
}

/// The mirror job: runs sessions until stopped, backing off while Redis fails.
pub async fn run(deps: Arc<MirrorDeps>, mut stop: watch::Receiver<bool>) {
    let Some(url) = deps.mirror.url.clone() else {
        return;
    };
    let mut backoff = BACKOFF_MIN;
    while !*stop.borrow() {
        deps.mirror.update(|s| s.state = State::Connecting);
        let mut progressed = false;
        match session(&deps, &url, &mut stop, &mut progressed).await {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(%error, "redis mirror interrupted; retrying");
                deps.mirror.update(|s| {
                    s.state = State::Failing;
                    s.last_error = Some(error);
                    s.last_error_at = Some(now_ms() / 1000);
                });
            }
        }
        if progressed {
            backoff = BACKOFF_MIN;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => break,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// This store's id (made on first use).
pub fn source_id(deps: &MirrorDeps) -> Result<String, String> {
    if let Some(id) = deps
        .store
        .get::<String>(TreeId::Meta, SOURCE_ID)
        .map_err(text)?
    {
        return Ok(id);
    }
    let id = hex::encode(rand::random::<[u8; 16]>());
    deps.store.put(TreeId::Meta, SOURCE_ID, &id).map_err(text)?;
    Ok(id)
}

/// Why a replica that holds the right changes must still be copied again: it was written in
/// another layout, from another data format, or with its secrets sealed otherwise.
async fn replica_outdated(
    deps: &MirrorDeps,
    conn: &mut MultiplexedConnection,
) -> Result<Option<&'static str>, String> {
    let keys = &deps.mirror.keys;
    let (replica, data_format, sealed): (Option<u64>, Option<u64>, Option<String>) = redis::pipe()
        .get(keys.replica_format())
        .get(keys.data_format())
        .get(keys.sealed())
        .query_async(conn)
        .await
        .map_err(text)?;
    Ok(if replica != Some(super::REPLICA_FORMAT) {
        Some("redis holds no replica of every tree yet (mirrored by an older version)")
    } else if data_format != Some(crate::store::format::DATA_FORMAT) {
        Some("the store was migrated to a new data format since the last copy")
    } else if sealed.as_deref() != deps.mirror.sealing.as_ref().map(|s| s.id()) {
        Some("the replica's secrets were sealed otherwise (redis_encrypt_secrets changed)")
    } else {
        None
    })
}

async fn session(
    deps: &Arc<MirrorDeps>,
    url: &str,
    stop: &mut watch::Receiver<bool>,
    progressed: &mut bool,
) -> Result<(), String> {
    let keys = deps.mirror.keys.clone();
    let mut conn = connect(url).await.map_err(text)?;
    let source = source_id(deps)?;
    let (redis_seq, redis_source): (Option<u64>, Option<String>) = redis::pipe()
        .get(keys.seq())
        .get(keys.source())
        .query_async(&mut conn)
        .await
        .map_err(text)?;
    let start = match decide(
        redis_seq,
        redis_source.as_deref(),
        &source,
        deps.store.last_seq().map_err(text)?,
        deps.store.first_retained_seq().map_err(text)?,
    ) {
        Start::Resume(seq) => match replica_outdated(deps, &mut conn).await? {
            Some(reason) => Start::Resync(reason),
            None => Start::Resume(seq),
        },
        start => start,
    };
    let mut configs = Configs::load(deps, now_ms()).map_err(text)?;
    let mut watchdog = Watchdog::new(deps.mirror.check_every);
    watchdog.check(&mut conn, &keys, None, &source).await?;
    let mut applied = match start {
        Start::Resume(seq) => {
            resync::write_settings(deps, &mut conn).await?;
            // The proxies may have changed while nobody mirrored: rewrite every config.
            configs.start_sweep(deps, now_ms()).map_err(text)?;
            record_applied(deps, seq)?;
            deps.mirror.update(|s| s.state = State::Streaming);
            seq
        }
        Start::Resync(reason) => {
            copy(
                deps,
                &mut conn,
                &mut configs,
                &source,
                reason,
                &mut watchdog,
            )
            .await?
        }
    };
    *progressed = true;

    'streaming: loop {
        if *stop.borrow() {
            return Ok(());
        }
        // One step of streaming; it breaks out with the reason when Redis needs a full copy.
        let copy_because: String = 'step: {
            if deps.mirror.take_resync_request() {
                break 'step "requested by an admin".to_string();
            }
            if watchdog.due() {
                if let Some(reason) = watchdog
                    .check(&mut conn, &keys, Some(applied), &source)
                    .await?
                {
                    break 'step reason;
                }
                // As often as the check: what the edges counted since.
                super::edge_counts::fold(deps, &mut conn).await?;
            }
            if !configs.sweeping() && configs.window_moved(deps, now_ms()) {
                configs.start_sweep(deps, now_ms()).map_err(text)?;
            }
            let changes = deps.store.changes_after(applied, BATCH).map_err(text)?;
            if changes.is_empty() && !configs.sweeping() {
                tokio::select! {
                    _ = deps.store.next_change() => {}
                    _ = tokio::time::sleep(IDLE_TICK) => {}
                    _ = stop.changed() => {}
                }
                continue 'streaming;
            }
            if let Some(first) = changes.first() {
                if first.seq != applied + 1 {
                    // The changes Redis needs next were compacted away while it was behind.
                    break 'step "redis is behind the retained change log".to_string();
                }
                match send_batch(deps, &mut conn, &mut configs, &changes, applied, &source).await? {
                    Sent::Applied(last) => {
                        applied = last;
                        record_applied(deps, applied)?;
                    }
                    Sent::Diverged(reason) => break 'step reason,
                }
            }
            if configs.sweeping() {
                sweep_step(deps, &mut conn, &mut configs, applied).await?;
            }
            continue 'streaming;
        };
        applied = copy(
            deps,
            &mut conn,
            &mut configs,
            &source,
            &copy_because,
            &mut watchdog,
        )
        .await?;
    }
}

/// A full copy (at start or while streaming); returns the sequence Redis now holds.
async fn copy(
    deps: &MirrorDeps,
    conn: &mut MultiplexedConnection,
    configs: &mut Configs,
    source: &str,
    reason: &str,
    watchdog: &mut Watchdog,
) -> Result<u64, String> {
    let applied = resync::run(deps, conn, configs, source, reason).await?;
    record_applied(deps, applied)?;
    // Evictions during the copy are the copy's own business: count from here.
    watchdog
        .check(conn, &deps.mirror.keys, None, source)
        .await?;
    deps.mirror.update(|s| s.state = State::Streaming);
    Ok(applied)
}

/// Checks that Redis still holds what the mirror wrote: on every batch (inside it, see
/// `send_batch`) and every `check_every` even when nothing changes, so a Redis restarted
/// empty, a FLUSHALL or FLUSHDB, a deleted or rewritten `mirror:seq`, or keys evicted under
/// `maxmemory` lead to a full copy within seconds instead of going unnoticed.
struct Watchdog {
    every: Duration,
    next_at: tokio::time::Instant,
    /// Redis' `evicted_keys` counter at the last check.
    evicted: Option<u64>,
}

impl Watchdog {
    fn new(every: Duration) -> Watchdog {
        Watchdog {
            every,
            next_at: tokio::time::Instant::now() + every,
            evicted: None,
        }
    }

    fn due(&self) -> bool {
        tokio::time::Instant::now() >= self.next_at
    }

    /// Why Redis needs a full copy, if it does. `applied`: what Redis should hold (`None`
    /// right after a copy or at start, when only the eviction counter is taken as the base).
    async fn check(
        &mut self,
        conn: &mut MultiplexedConnection,
        keys: &super::keys::Keys,
        applied: Option<u64>,
        source: &str,
    ) -> Result<Option<String>, String> {
        self.next_at = tokio::time::Instant::now() + self.every;
        let (seq, found_source, info): (Option<u64>, Option<String>, String) = redis::pipe()
            .get(keys.seq())
            .get(keys.source())
            .cmd("INFO")
            .arg("stats")
            .query_async(conn)
            .await
            .map_err(text)?;
        let evicted = info
            .lines()
            .find_map(|line| line.strip_prefix("evicted_keys:"))
            .and_then(|n| n.trim().parse::<u64>().ok());
        let before = std::mem::replace(&mut self.evicted, evicted);
        let Some(applied) = applied else {
            return Ok(None);
        };
        if let Some(reason) = diverged(seq, found_source.as_deref(), applied, source) {
            return Ok(Some(reason.to_string()));
        }
        match (before, evicted) {
            (Some(before), Some(now)) if now > before => Ok(Some(format!(
                "redis evicted {} keys under maxmemory (set maxmemory-policy noeviction)",
                now - before
            ))),
            _ => Ok(None),
        }
    }
}

/// Why `mirror:seq` and `mirror:source` are not what this mirror last wrote, if they are not.
pub fn diverged(
    seq: Option<u64>,
    found_source: Option<&str>,
    applied: u64,
    source: &str,
) -> Option<&'static str> {
    match (seq, found_source) {
        (None, _) => Some("redis lost the mirror (restarted empty, flushed, or mirror:seq deleted or evicted)"),
        (_, found) if found != Some(source) => Some("redis holds another store's mirror"),
        (Some(seq), _) if seq != applied => Some("mirror:seq is not what the mirror wrote (rewritten, or redis restarted from an older snapshot)"),
        _ => None,
    }
}

/// What became of a batch.
enum Sent {
    /// Applied; the last sequence sent.
    Applied(u64),
    /// Not applied: Redis no longer holds what the mirror wrote (why).
    Diverged(String),
}

/// Sends one batch of changes (and the configs of the users they carry) in one MULTI/EXEC
/// with the new `mirror:seq`, only if Redis still holds exactly the changes up to `applied`
/// from this store: `mirror:seq` and `mirror:source` are WATCHed and read first, so a FLUSHALL
/// or a restart before or during the batch aborts it instead of writing a few records into
/// an empty Redis and calling it up to date.
async fn send_batch(
    deps: &MirrorDeps,
    conn: &mut MultiplexedConnection,
    configs: &mut Configs,
    changes: &[crate::changes::Change],
    applied: u64,
    source: &str,
) -> Result<Sent, String> {
    let keys = &deps.mirror.keys;
    // Never let Redis get ahead of what sled would recover after a crash.
    deps.store.durable().await.map_err(text)?;
    // The mirror's connection is its own, so the WATCH covers exactly the MULTI below.
    let (_, seq, found_source): ((), Option<u64>, Option<String>) = redis::pipe()
        .cmd("WATCH")
        .arg(keys.seq())
        .arg(keys.source())
        .get(keys.seq())
        .get(keys.source())
        .query_async(conn)
        .await
        .map_err(text)?;
    if let Some(reason) = diverged(seq, found_source.as_deref(), applied, source) {
        redis::cmd("UNWATCH")
            .query_async::<()>(conn)
            .await
            .map_err(text)?;
        return Ok(Sent::Diverged(reason.to_string()));
    }
    let now = now_ms();
    let mut sweep = false;
    let mut pipe = redis::pipe();
    pipe.atomic();
    let mut written = 0;
    for change in changes {
        apply_change(&mut pipe, keys, deps.mirror.sealing.as_ref(), change);
        sweep |= configs.observe(change);
        if let ChangeKind::UserUpserted(user) = &change.kind {
            configs.write(&mut pipe, keys, deps, user, now);
            written += 1;
        }
    }
    let last = changes.last().map_or(0, |c| c.seq);
    pipe.set(keys.seq(), last).ignore();
    // EXEC answers nil when a WATCHed key changed (FLUSHALL and FLUSHDB count): nothing of
    // the batch was written.
    let executed: Option<()> = pipe.query_async(conn).await.map_err(text)?;
    if executed.is_none() {
        return Ok(Sent::Diverged(
            "the mirror's keys changed in redis during a batch (flushed or rewritten)".into(),
        ));
    }
    if sweep {
        configs.start_sweep(deps, now).map_err(text)?;
    }
    deps.mirror.update(|s| {
        s.configs_written += written;
        s.configs_pending = configs.sweeping();
    });
    Ok(Sent::Applied(last))
}

async fn sweep_step(
    deps: &MirrorDeps,
    conn: &mut MultiplexedConnection,
    configs: &mut Configs,
    applied: u64,
) -> Result<(), String> {
    let keys = &deps.mirror.keys;
    let mut pipe = redis::pipe();
    let users = configs
        .sweep_step(&mut pipe, keys, deps, now_ms())
        .map_err(text)?;
    if !configs.sweeping() {
        let message = serde_json::json!({ "kind": "configs", "ids": [], "seq": applied });
        pipe.publish(keys.events(), message.to_string()).ignore();
    }
    pipe.query_async::<()>(conn).await.map_err(text)?;
    deps.mirror.update(|s| {
        s.configs_written += users as u64;
        s.configs_pending = configs.sweeping();
    });
    Ok(())
}

fn record_applied(deps: &MirrorDeps, applied: u64) -> Result<(), String> {
    deps.store
        .put(TreeId::Meta, APPLIED_SEQ, &applied)
        .map_err(text)?;
    deps.mirror.update(|s| s.applied_seq = applied);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_goes_only_to_the_redis_that_holds_what_the_mirror_wrote() {
        assert_eq!(diverged(Some(7), Some("me"), 7, "me"), None);
        assert!(diverged(None, Some("me"), 7, "me").is_some_and(|r| r.contains("lost")));
        assert!(diverged(None, None, 7, "me").is_some());
        assert!(diverged(Some(7), None, 7, "me").is_some_and(|r| r.contains("another")));
        assert!(diverged(Some(7), Some("you"), 7, "me").is_some_and(|r| r.contains("another")));
        assert!(diverged(Some(3), Some("me"), 7, "me").is_some_and(|r| r.contains("not what")));
        assert!(diverged(Some(9), Some("me"), 7, "me").is_some());
    }

    #[test]
    fn resumes_only_when_redis_holds_this_stores_gapless_prefix() {
        assert_eq!(
            decide(Some(5), Some("me"), "me", 9, Some(1)),
            Start::Resume(5)
        );
        assert_eq!(
            decide(Some(9), Some("me"), "me", 9, None),
            Start::Resume(9),
            "caught up with an empty log"
        );
        assert_eq!(
            decide(Some(5), Some("me"), "me", 9, Some(6)),
            Start::Resume(5),
            "the next change needed is the first retained"
        );
        assert!(matches!(
            decide(Some(5), Some("me"), "me", 9, Some(7)),
            Start::Resync(_)
        ));
        assert!(matches!(
            decide(None, None, "me", 9, Some(1)),
            Start::Resync(_)
        ));
        assert!(matches!(
            decide(Some(5), Some("other"), "me", 9, Some(1)),
            Start::Resync(_)
        ));
        assert!(matches!(
            decide(Some(12), Some("me"), "me", 9, Some(1)),
            Start::Resync(_)
        ));
    }
}
