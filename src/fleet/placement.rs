//! Users owed a fallback proxy (`NeedsFallback`: theirs left, or none had room when they
//! joined) are placed as soon as room appears, not at the next periodic rebalance: a fallback
//! proxy enrols or comes back, raises its capacity, a proxy becomes a fallback, or a proxy
//! loses users. Each of those queues a `fleet.place_unplaced` task (one per second at most,
//! run when that second ends, so a proxy changing its capacity at every heartbeat cannot flood
//! the queue); the task gives every
//! waiting user proxies with headroom, best for its trust level first (`policy::Fit`), counting each placement in the
//! loads the next one sees, and stops when the room is gone.

use super::links::set_proxies;
use super::model::{ProxyName, User, UserId, UserStatus};
use super::policy::{best_for, Candidate};
use super::{trust, Fleet};
use crate::error::Result;
use crate::queue::{NewTask, Queue, TaskKind};
use crate::store::codec::{key_u64, u64_key};
use crate::store::{TreeId, Tx, TxResult};

/// Task: place the users waiting for a fallback proxy.
pub const PLACE_UNPLACED: TaskKind = TaskKind::PlaceUnplaced;
/// Waiting users read per round of a task (a task places them all, round after round).
const PER_ROUND: usize = 500;

/// Queues a placement, in the transaction that made room (at most one task a second).
pub fn queue_placement(queue: &Queue, tx: &Tx, now_ms: u64) -> TxResult<()> {
    queue.enqueue_in(tx, &NewTask::per_second(PLACE_UNPLACED, now_ms), now_ms)?;
    Ok(())
}

impl Fleet {
    /// The `fleet.place_unplaced` task: places waiting users while there is room. Returns how
    /// many users got at least one proxy.
    pub async fn place_unplaced(&self, now_ms: u64) -> Result<usize> {
        if self.store.first_key(TreeId::NeedsFallback)?.is_none() {
            return Ok(0); // nobody waits: not even the proxies are read
        }
        // Read fresh: room just appeared (a capacity raised, a role set) that the index may
        // not show yet.
        let mut candidates = self.read_candidates(now_ms)?;
        let mut placed = std::collections::BTreeSet::new();
        // Everyone's first proxy before anyone's second: when room is short, a user with none
        // comes before a user owed its level's third.
        for at_most in [1, usize::MAX] {
            let mut after = 0u64;
            loop {
                if !candidates.iter().any(|c| c.headroom() > 0) {
                    break;
                }
                let waiting: Vec<UserId> = self
                    .store
                    .keys_from(TreeId::NeedsFallback, u64_key(after))
                    .take(PER_ROUND)
                    .filter_map(|key| key.ok().and_then(|k| key_u64(&k)).map(UserId))
                    .collect();
                let Some(last) = waiting.last() else { break };
                after = last.0 + 1;
                let (round, loads) = self.store.transaction(|tx| {
                    let mut loads = candidates.clone();
                    let mut round = Vec::new();
                    for id in &waiting {
                        if self.place(tx, *id, &mut loads, at_most, now_ms)? {
                            round.push(*id);
                        }
                    }
                    Ok((round, loads))
                })?;
                candidates = loads;
                self.store.durable().await?;
                self.notifier.notify(&round);
                placed.extend(round);
            }
        }
        Ok(placed.len())
    }
}

impl Fleet {
    /// Gives one waiting user the proxies it lacks (as many as its level holds, `at_most` in
    /// all), from those with room and not blocked in its country, best for its level first;
    /// true if it got any.
    fn place(
        &self,
        tx: &Tx,
        id: UserId,
        loads: &mut [Candidate],
        at_most: usize,
        now_ms: u64,
    ) -> TxResult<bool> {
        let Some(mut user) = tx.get::<User>(TreeId::Users, id.key())? else {
            tx.remove(TreeId::NeedsFallback, id.key())?;
            return Ok(false);
        };
        if user.status != UserStatus::Active {
            return Ok(false); // a disabled user waits until enabled again
        }
        if super::suspicion::is_quarantined(tx, id)? {
            return Ok(false); // waits until an admin clears it
        }
        let trust = trust::read(tx, id)?;
        if trust.held(now_ms) {
            return Ok(false); // on probation after a block (`trust.rs`)
        }
        let level = trust.standing(&self.settings.trust, now_ms).level;
        let wanted = self.wanted_at(level);
        let per_user = wanted.min(at_most);
        let fit = self.fit(level);
        let country = tx.get::<String>(TreeId::UserCountries, id.key())?;
        let blocked_there: Vec<ProxyName> = self
            .blocked
            .in_country(country.as_deref())
            .iter()
            .filter_map(|name| ProxyName::parse(name).ok())
            .collect();
        let mut proxies = user.proxies.clone();
        while proxies.len() < per_user {
            let excluded: Vec<ProxyName> = blocked_there.iter().chain(&proxies).cloned().collect();
            let Some(best) = best_for(loads, &excluded, fit) else {
                break;
            };
            let name = best.name.clone();
            if let Some(chosen) = loads.iter_mut().find(|c| c.name == name) {
                chosen.load += 1;
                chosen.floor = Some(chosen.floor.map_or(level, |f| f.min(level)));
            }
            proxies.push(name);
        }
        let got_any = proxies.len() > user.proxies.len();
        let complete = proxies.len() >= wanted;
        if got_any {
            trust::note_given(tx, &proxies, level)?;
            set_proxies(
                tx,
                &mut user,
                proxies,
                "room appeared on a fallback proxy",
                now_ms,
            )?;
        }
        if complete {
            tx.remove(TreeId::NeedsFallback, id.key())?;
        }
        Ok(got_any)
    }
}
