//! Trust levels (Lox, PETS 2023; Salmon, PETS 2016): a user's level, 0 to 4, rises after set
//! times without suspicion and drops by one each time a proxy it had been given is blocked
//! where it is. The level bounds how many fallback proxies the user holds, whether it may
//! invite, and which proxies it is given: proxies nobody has had yet go to the higher levels,
//! and each level is kept on proxies that users of its own level already know, so what a
//! newcomer gives away is what newcomers already had. Rules and defaults: docs/BLOCKING.md.
//!
//! The stored record names a level and since when; the level now is computed from it, so a
//! rise needs no job and is seen by every check at once (the rebalancer's rounds give a risen
//! user the proxies its new level allows).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::model::{ProxyName, User, UserId};
use super::Fleet;
pub use crate::config::TrustRules;
use crate::error::{Error, Result};
use crate::store::{abort, TreeId, Tx, TxResult};

/// The highest level.
pub const TOP: u8 = crate::config::TRUST_TOP;
/// Level changes kept per user (the newest), to explain the level.
pub const CHANGES_KEPT: usize = 20;
const DAY_MS: u64 = 24 * 3600 * 1000;

impl TrustRules {
    /// How many fallback proxies a user at `level` holds, given the fleet's `per_user`.
    pub fn fallbacks_for(&self, level: u8, per_user: usize) -> usize {
        self.fallbacks[usize::from(level.min(TOP))].min(per_user)
    }

    /// The level an invitee starts at: one below its inviter's, never above
    /// `invitee_max_level` (0 by default: levels are earned, docs/BLOCKING.md).
    pub fn invitee_level(&self, inviter_level: u8) -> u8 {
        inviter_level
            .saturating_sub(1)
            .min(self.invitee_max_level)
            .min(TOP - 1)
    }
}

/// Why a level changed, as the user view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrustChange {
    pub at_ms: u64,
    pub from: u8,
    pub to: u8,
    pub why: String,
}

/// A user's trust: `TrustLevels` (user id -> this). A user without one (made before levels
/// existed) is at level 0 since it was created, so its age earns its level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trust {
    /// The level at `since_ms`.
    pub level: u8,
    /// When the user reached `level`, or was last lowered: the time without suspicion counts
    /// from here.
    pub since_ms: u64,
    /// The newest explicit changes (start, blocks, an admin's), oldest first.
    pub changes: Vec<TrustChange>,
    /// Given a proxy shortly before it was blocked: no new proxy until then (probation).
    pub held_until_ms: Option<u64>,
}

/// A level now, and when it rises next (None at the top).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Standing {
    pub level: u8,
    /// Since when the user is at this level.
    pub since_ms: u64,
    pub next_rise_ms: Option<u64>,
}

impl Trust {
    pub fn starting(level: u8, why: &str, now_ms: u64) -> Trust {
        let level = level.min(TOP);
        Trust {
            level,
            since_ms: now_ms,
            changes: vec![TrustChange {
                at_ms: now_ms,
                from: level,
                to: level,
                why: why.to_string(),
            }],
            held_until_ms: None,
        }
    }

    /// The record a user without one is taken to have: level 0 since it was created, so its
    /// age earns its level.
    fn unrecorded(created_ms: u64) -> Trust {
        Trust {
            level: 0,
            since_ms: created_ms,
            changes: Vec::new(),
            held_until_ms: None,
        }
    }

    /// True while on probation: it gets no new proxy.
    pub fn held(&self, now_ms: u64) -> bool {
        self.held_until_ms.is_some_and(|until| until > now_ms)
    }

    /// The level at `now_ms`: the stored one, risen by each full stay at a level since.
    pub fn standing(&self, rules: &TrustRules, now_ms: u64) -> Standing {
        let (mut level, mut since) = (self.level.min(TOP), self.since_ms);
        while level < TOP {
            let rise_at = since.saturating_add(rules.rise_days[usize::from(level)] * DAY_MS);
            if rise_at > now_ms {
                return Standing {
                    level,
                    since_ms: since,
                    next_rise_ms: Some(rise_at),
                };
            }
            level += 1;
            since = rise_at;
        }
        Standing {
            level,
            since_ms: since,
            next_rise_ms: None,
        }
    }

    /// Sets the level now (a block lowers it, an admin sets it) and restarts its clock.
    pub fn set(&mut self, rules: &TrustRules, to: u8, why: String, now_ms: u64) {
        let from = self.standing(rules, now_ms).level;
        self.level = to.min(TOP);
        self.since_ms = now_ms;
        self.changes.push(TrustChange {
            at_ms: now_ms,
            from,
            to: self.level,
            why,
        });
        if self.changes.len() > CHANGES_KEPT {
            self.changes.remove(0);
        }
    }

    /// A proxy the user had been given was blocked where it is: one level down, and the time
    /// without suspicion starts again.
    pub fn lower(&mut self, rules: &TrustRules, why: String, now_ms: u64) {
        let now = self.standing(rules, now_ms).level;
        self.set(rules, now.saturating_sub(1), why, now_ms);
    }
}

/// A user's trust record, or the one it is taken to have: a user made before levels existed
/// is at level 0 since it was created (its record is read only then).
pub fn read(tx: &Tx, user: UserId) -> TxResult<Trust> {
    if let Some(trust) = tx.get::<Trust>(TreeId::TrustLevels, user.key())? {
        return Ok(trust);
    }
    let created_ms = tx
        .get::<User>(TreeId::Users, user.key())?
        .map_or(0, |u| u.created_ms);
    Ok(Trust::unrecorded(created_ms))
}

/// A user's level now (read in the caller's transaction).
pub fn level_of(tx: &Tx, user: UserId, rules: &TrustRules, now_ms: u64) -> TxResult<u8> {
    Ok(read(tx, user)?.standing(rules, now_ms).level)
}

/// Writes a user's trust, and when its level rises next (`TrustRises`), so the user gets the
/// fallbacks its new level holds at that time (`Fleet::note_rises`) rather than at its next
/// placement. An older entry left for the user is harmless: it checks the user again.
pub fn write(
    tx: &Tx,
    user: UserId,
    trust: &Trust,
    rules: &TrustRules,
    now_ms: u64,
) -> TxResult<()> {
    tx.put(TreeId::TrustLevels, user.key(), trust)?;
    if let Some(at) = trust.standing(rules, now_ms).next_rise_ms {
        tx.put(TreeId::TrustRises, rise_key(at, user), &())?;
    }
    Ok(())
}

/// Writes a new user's starting level.
pub fn start(
    tx: &Tx,
    user: UserId,
    level: u8,
    why: &str,
    rules: &TrustRules,
    now_ms: u64,
) -> TxResult<()> {
    write(
        tx,
        user,
        &Trust::starting(level, why, now_ms),
        rules,
        now_ms,
    )
}

fn rise_key(at_ms: u64, user: UserId) -> [u8; 16] {
    crate::store::codec::pair_key(at_ms, user.0)
}

/// Rises handled per transaction.
const RISES_PER_TRANSACTION: usize = 500;

/// Records that `proxies` were given to a user of `level`: each one's floor (the lowest level
/// that knows it) goes down to it, so placement keeps the levels apart (`policy::Fit`).
pub fn note_given(tx: &Tx, proxies: &[ProxyName], level: u8) -> TxResult<()> {
    for proxy in proxies {
        let floor: Option<u8> = tx.get(TreeId::ProxyFloors, proxy.as_str())?;
        if floor.is_none_or(|f| level < f) {
            tx.put(TreeId::ProxyFloors, proxy.as_str(), &level)?;
        }
    }
    Ok(())
}

/// 403 `trust_level_too_low` when `user` may not invite yet.
pub fn refuse_inviting(tx: &Tx, user: &User, rules: &TrustRules, now_ms: u64) -> TxResult<()> {
    let standing = read(tx, user.id)?.standing(rules, now_ms);
    if standing.level >= rules.invite_level {
        return Ok(());
    }
    let when = standing
        .next_rise_ms
        .map(|at| {
            format!(
                "; it rises at {} without a block",
                crate::mail::format_time(at)
            )
        })
        .unwrap_or_default();
    abort(Error::Forbidden {
        code: "trust_level_too_low",
        message: format!(
            "user {} is at trust level {}, and inviting takes level {}{when}",
            user.id, standing.level, rules.invite_level
        ),
    })
}

impl Fleet {
    /// A user's trust record (as stored, or taken) and its standing now.
    pub fn trust_of(&self, user: &User, now_ms: u64) -> Result<(Trust, Standing)> {
        let trust = match self
            .store
            .get::<Trust>(TreeId::TrustLevels, user.id.key())?
        {
            Some(trust) => trust,
            None => Trust::unrecorded(user.created_ms),
        };
        let standing = trust.standing(&self.settings.trust, now_ms);
        Ok((trust, standing))
    }

    /// Every proxy's floor (proxy name -> the lowest level given it), in one pass, for the
    /// candidates placement reads.
    pub fn floors(&self) -> Result<HashMap<sled::IVec, u8>> {
        self.store
            .scan_from::<u8>(TreeId::ProxyFloors, [])
            .collect()
    }

    /// Users whose level rose by `now_ms` (`TrustRises`) and who hold fewer fallbacks than
    /// their new level does are owed one (`NeedsFallback`), and placement is queued; their next
    /// rise is scheduled. Run by each rebalance. Returns how many were owed a fallback.
    pub async fn note_rises(&self, now_ms: u64) -> Result<usize> {
        let rules = &self.settings.trust;
        let until = crate::store::codec::u64_key(now_ms.saturating_add(1));
        let mut owed = 0;
        loop {
            let due: Vec<sled::IVec> = self
                .store
                .keys_from(TreeId::TrustRises, [])
                .take_while(|key| key.as_ref().map_or(true, |k| k.as_ref() < &until[..]))
                .take(RISES_PER_TRANSACTION)
                .collect::<Result<_>>()?;
            if due.is_empty() {
                break;
            }
            owed += self.store.transaction(|tx| {
                let mut owed = 0;
                for key in &due {
                    tx.remove(TreeId::TrustRises, key.as_ref())?;
                    let Some(id) = key.get(8..).and_then(crate::store::codec::key_u64) else {
                        continue;
                    };
                    let id = UserId(id);
                    let Some(user) = tx.get::<User>(TreeId::Users, id.key())? else {
                        continue;
                    };
                    let trust = read(tx, id)?;
                    let standing = trust.standing(rules, now_ms);
                    if let Some(at) = standing.next_rise_ms {
                        tx.put(TreeId::TrustRises, rise_key(at, id), &())?;
                    }
                    let short = user.proxies.len() < self.wanted_at(standing.level);
                    if user.status == super::model::UserStatus::Active
                        && short
                        && !trust.held(now_ms)
                        && !super::suspicion::is_quarantined(tx, id)?
                        && !tx.contains(TreeId::NeedsFallback, id.key())?
                    {
                        tx.put(TreeId::NeedsFallback, id.key(), &now_ms)?;
                        owed += 1;
                    }
                }
                if owed > 0 {
                    super::placement::queue_placement(&self.queue, tx, now_ms)?;
                }
                Ok(owed)
            })?;
        }
        if owed > 0 {
            self.store.durable().await?;
            self.queue.wake();
        }
        Ok(owed)
    }

    /// An admin sets a user's level (a vouch, or a demotion); its clock starts again and any
    /// probation ends. A user short of the proxies its level holds is placed.
    pub async fn set_trust_level(&self, id: UserId, level: u8, now_ms: u64) -> Result<Trust> {
        if level > TOP {
            return Err(Error::invalid(
                "invalid_level",
                format!("level must be from 0 to {TOP}"),
            ));
        }
        let rules = &self.settings.trust;
        let trust = self.store.transaction(|tx| {
            let Some(user) = tx.get::<User>(TreeId::Users, id.key())? else {
                return abort(Error::NotFound(format!("user {id}")));
            };
            let mut trust = read(tx, id)?;
            trust.set(rules, level, "set by an operator".to_string(), now_ms);
            trust.held_until_ms = None;
            write(tx, id, &trust, rules, now_ms)?;
            let wanted = self.wanted_at(level);
            if user.status == super::model::UserStatus::Active && user.proxies.len() < wanted {
                tx.put(TreeId::NeedsFallback, id.key(), &now_ms)?;
                super::placement::queue_placement(&self.queue, tx, now_ms)?;
            }
            Ok(trust)
        })?;
        self.store.durable().await?;
        self.queue.wake();
        Ok(trust)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_rise_after_each_stay_and_drop_by_one_at_a_block() {
        let rules = TrustRules::default();
        let mut trust = Trust::starting(0, "created", 0);
        let at = |days: u64| days * DAY_MS;
        assert_eq!(trust.standing(&rules, at(1)).level, 0);
        assert_eq!(trust.standing(&rules, at(2)).level, 1);
        assert_eq!(trust.standing(&rules, at(5)).level, 1);
        assert_eq!(trust.standing(&rules, at(6)).level, 2);
        assert_eq!(trust.standing(&rules, at(14)).level, 3);
        let top = trust.standing(&rules, at(30));
        assert_eq!((top.level, top.next_rise_ms), (4, None));
        assert_eq!(trust.standing(&rules, at(7)).next_rise_ms, Some(at(14)));

        // A block on day 7 (level 2): down to 1, and 4 more days from then to rise again.
        trust.lower(&rules, "proxy a blocked in IR".into(), at(7));
        assert_eq!(trust.standing(&rules, at(7)).level, 1);
        assert_eq!(trust.standing(&rules, at(10)).level, 1);
        assert_eq!(trust.standing(&rules, at(11)).level, 2);
        let last = trust.changes.last().unwrap();
        assert_eq!((last.from, last.to), (2, 1));

        let mut low = Trust::starting(0, "created", 0);
        low.lower(&rules, "again".into(), 0);
        assert_eq!(low.level, 0, "never below 0");
    }

    #[test]
    fn the_level_bounds_fallbacks_and_invitees_start_one_below() {
        let rules = TrustRules::default();
        assert_eq!(rules.fallbacks_for(0, 3), 1);
        assert_eq!(rules.fallbacks_for(4, 3), 3);
        assert_eq!(
            rules.fallbacks_for(4, 1),
            1,
            "never above fallbacks_per_user"
        );
        assert_eq!(rules.invitee_level(4), 0, "levels are earned by default");
        let vouching = TrustRules {
            invitee_max_level: TOP,
            ..TrustRules::default()
        };
        assert_eq!(vouching.invitee_level(4), 3);
        assert_eq!(vouching.invitee_level(2), 1);
        assert_eq!(vouching.invitee_level(0), 0);
    }
}
