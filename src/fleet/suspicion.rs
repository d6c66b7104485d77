//! Suspicion (Salmon, PETS 2016): when a proxy becomes blocked in a country, the censor learnt
//! its address from one of the users there who had been given it. Each of them is blamed for
//! a share of the block (`shares`: most on those given it just before the block); past
//! `suspicion_threshold` a user is quarantined: it keeps what it has, gets no new proxy and
//! cannot invite, until an admin clears it (or bans it: disabling, with its branch if need
//! be). An honest user shares blocks with different people each time and stays low; an agent
//! is behind every block of the proxies it learns, and its score adds up. Rules and defaults:
//! docs/BLOCKING.md.

use serde::{Deserialize, Serialize};

use super::model::UserId;
use super::Fleet;
use crate::error::{Error, Result};
use crate::store::{abort, TreeId, Tx, TxResult};

/// Blames kept per user (the newest): the score keeps counting the older ones.
pub const BLAMES_KEPT: usize = 50;
/// Suspects listed per page at most.
pub const MAX_PAGE: usize = 500;

/// One block a user was blamed for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blame {
    pub proxy: String,
    pub country: String,
    /// When the verdict became blocked: with the proxy and the country, names the block, so a
    /// task run twice blames once.
    pub blocked_ms: u64,
    /// This user's share of the block: 1 / the users there who had been given the proxy.
    pub share: f64,
}

/// A user's suspicion: `Suspicions` (user id -> this). Absent for a user never blamed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Suspicion {
    pub score: f64,
    /// The newest blames, oldest first.
    pub blames: Vec<Blame>,
    /// Set when the score passed the threshold; cleared by an admin.
    pub quarantined_ms: Option<u64>,
    /// When an admin last cleared the score.
    pub cleared_ms: Option<u64>,
}

/// How a block's weight (1) is shared among the users there who had been given the proxy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlameRules {
    /// Past this score a user is quarantined.
    pub threshold: f64,
    /// Users given the proxy this long before the block or less weigh 1 ...
    pub recent_ms: u64,
    /// ... and those who had it longer weigh this.
    pub old_weight: f64,
}

/// Each user's share of a block: `given` lists the users there with when each was last given
/// the proxy. A censor blocks what it learns soon after: a proxy that served its users for
/// weeks and is blocked the day after a newcomer got it was most likely given away by the
/// newcomer, so the recent ones weigh 1 and the others `old_weight`. The shares sum to 1.
pub fn shares(given: &[(UserId, u64)], blocked_ms: u64, rules: &BlameRules) -> Vec<(UserId, f64)> {
    let weight = |given_ms: u64| {
        if blocked_ms.saturating_sub(given_ms) <= rules.recent_ms {
            1.0
        } else {
            rules.old_weight
        }
    };
    let total: f64 = given.iter().map(|&(_, at)| weight(at)).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    given
        .iter()
        .map(|&(user, at)| (user, weight(at) / total))
        .collect()
}

/// True when `user` is quarantined (read in the caller's transaction).
pub fn is_quarantined(tx: &Tx, user: UserId) -> TxResult<bool> {
    Ok(tx
        .get::<Suspicion>(TreeId::Suspicions, user.key())?
        .is_some_and(|s| s.quarantined_ms.is_some()))
}

/// 403 `user_quarantined` for what a quarantined user may not do (invite).
pub fn refuse_quarantined(tx: &Tx, user: UserId) -> TxResult<()> {
    if is_quarantined(tx, user)? {
        return abort(Error::Forbidden {
            code: "user_quarantined",
            message: format!(
                "user {user} is quarantined: too many proxies it was given were blocked"
            ),
        });
    }
    Ok(())
}

/// What one blame did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blamed {
    /// False when this block was counted already (a task run twice).
    pub counted: bool,
    /// This blame put the user in quarantine.
    pub quarantined: bool,
}

/// Blames `user` for its share of a block, once per block.
pub fn blame(tx: &Tx, user: UserId, blame: Blame, threshold: f64, now_ms: u64) -> TxResult<Blamed> {
    let mut suspicion: Suspicion = tx.get(TreeId::Suspicions, user.key())?.unwrap_or_default();
    let Some(quarantined) = suspicion.add(blame, threshold, now_ms) else {
        return Ok(Blamed {
            counted: false,
            quarantined: false,
        });
    };
    tx.put(TreeId::Suspicions, user.key(), &suspicion)?;
    Ok(Blamed {
        counted: true,
        quarantined,
    })
}

impl Suspicion {
    /// Adds a blame, once per block: None when this block was counted already, else whether
    /// it put the user in quarantine.
    pub fn add(&mut self, blame: Blame, threshold: f64, now_ms: u64) -> Option<bool> {
        let same = |b: &Blame| {
            b.proxy == blame.proxy && b.country == blame.country && b.blocked_ms == blame.blocked_ms
        };
        if self.blames.iter().any(same) {
            return None;
        }
        self.score += blame.share;
        self.blames.push(blame);
        if self.blames.len() > BLAMES_KEPT {
            self.blames.remove(0);
        }
        let newly = self.quarantined_ms.is_none() && self.score > threshold;
        if newly {
            self.quarantined_ms = Some(now_ms);
        }
        Some(newly)
    }
}

impl Fleet {
    pub fn suspicion(&self, id: UserId) -> Result<Option<Suspicion>> {
        self.store.get(TreeId::Suspicions, id.key())
    }

    /// The users with suspicion, highest score first (quarantined or not), `limit` at most.
    pub fn suspects(&self, limit: usize) -> Result<Vec<(UserId, Suspicion)>> {
        let mut all: Vec<(UserId, Suspicion)> = Vec::new();
        for item in self.store.scan_from::<Suspicion>(TreeId::Suspicions, []) {
            let (key, suspicion) = item?;
            if let Some(id) = crate::store::codec::key_u64(&key) {
                all.push((UserId(id), suspicion));
            }
        }
        all.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
        all.truncate(limit.clamp(1, MAX_PAGE));
        Ok(all)
    }

    /// An admin's judgement that the user is honest: the score goes to zero (the blames stay
    /// listed), the quarantine and any probation end; a user waiting for a proxy is placed
    /// again.
    pub async fn clear_suspicion(&self, id: UserId, now_ms: u64) -> Result<Suspicion> {
        let suspicion = self.store.transaction(|tx| {
            if !tx.contains(TreeId::Users, id.key())? {
                return abort(Error::NotFound(format!("user {id}")));
            }
            let mut suspicion: Suspicion =
                tx.get(TreeId::Suspicions, id.key())?.unwrap_or_default();
            suspicion.score = 0.0;
            suspicion.quarantined_ms = None;
            suspicion.cleared_ms = Some(now_ms);
            tx.put(TreeId::Suspicions, id.key(), &suspicion)?;
            // Judged honest: its probation after a block ends too.
            let mut trust = super::trust::read(tx, id)?;
            if trust.held_until_ms.take().is_some() {
                super::trust::write(tx, id, &trust, &self.settings.trust, now_ms)?;
            }
            if tx.contains(TreeId::NeedsFallback, id.key())? {
                super::placement::queue_placement(&self.queue, tx, now_ms)?;
            }
            Ok(suspicion)
        })?;
        self.store.durable().await?;
        self.queue.wake();
        Ok(suspicion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn a_share_per_block_once_each_until_past_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let block = |proxy: &str, at: u64| Blame {
            proxy: proxy.into(),
            country: "IR".into(),
            blocked_ms: at,
            share: 0.25,
        };
        let user = UserId(7);
        let mut quarantined = Vec::new();
        for (proxy, at) in [("a", 1), ("a", 1), ("b", 2)] {
            quarantined.push(
                store
                    .transaction(|tx| blame(tx, user, block(proxy, at), 1.0 / 3.0, at))
                    .unwrap()
                    .quarantined,
            );
        }
        assert_eq!(
            quarantined,
            [false, false, true],
            "the same block counts once"
        );
        let suspicion: Suspicion = store.get(TreeId::Suspicions, user.key()).unwrap().unwrap();
        assert_eq!(suspicion.score, 0.5);
        assert_eq!(suspicion.quarantined_ms, Some(2));
        assert!(store.transaction(|tx| is_quarantined(tx, user)).unwrap());
    }
}
