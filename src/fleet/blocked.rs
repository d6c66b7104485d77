//! Where users are, and what a block there does to them: each user's country (from its last
//! config request or report), and the users of a country leaving a proxy blocked there. The
//! blocking capability decides the verdicts and keeps `distribution::blocked::BlockedSet`
//! current; the fleet only follows them (placement avoids what is blocked where a user is).

use super::links::set_proxies;
use super::model::{ProxyName, User, UserId};
use super::Fleet;
use crate::error::Result;
use crate::store::TreeId;

/// Users changed per transaction when a blocked proxy's users in one country leave it.
const USERS_PER_TRANSACTION: usize = 500;

/// A proxy blocked in a country, since when (the verdict's time names the block).
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    pub proxy: &'a str,
    pub country: &'a str,
    pub blocked_ms: u64,
}

impl Fleet {
    /// The country a user's last config request came from, if known.
    pub fn country_of(&self, id: UserId) -> Result<Option<String>> {
        self.store.get(TreeId::UserCountries, id.key())
    }

    /// Records where a user's config request came from. Written only when it changed, so the
    /// config path pays a read, not a write; not flushed (the next request writes it again).
    pub fn note_country(&self, id: UserId, country: &str) -> Result<()> {
        if self.country_of(id)?.as_deref() == Some(country) {
            return Ok(());
        }
        self.store.put(TreeId::UserCountries, id.key(), &country)
    }

    /// The `blocking.proxy_blocked` task: every user there who had been given the proxy is
    /// blamed for a share of the block (`suspicion.rs`), then the users seen there leave it
    /// (history: why) and are placed again on proxies not blocked there, unless quarantined;
    /// users elsewhere keep it. Every config long-poll wakes (free subsets may have listed
    /// it). Run twice, it blames once. Returns how many users left it.
    pub async fn leave_blocked(&self, block: &Block<'_>, now_ms: u64) -> Result<usize> {
        let Block { proxy, country, .. } = *block;
        self.blame_for(block, now_ms).await?;
        let why = format!("proxy {proxy} is blocked in {country}");
        let mut moved = 0;
        let users = super::links::users_of(&self.store, proxy)?;
        for chunk in users.chunks(USERS_PER_TRANSACTION) {
            let changed = self.store.transaction(|tx| {
                let mut changed = Vec::new();
                for id in chunk {
                    let there = tx.get::<String>(TreeId::UserCountries, id.key())?;
                    if there.as_deref() != Some(country) {
                        continue;
                    }
                    let Some(mut user) = tx.get::<User>(TreeId::Users, id.key())? else {
                        continue;
                    };
                    let kept: Vec<ProxyName> = user
                        .proxies
                        .iter()
                        .filter(|p| p.as_str() != proxy)
                        .cloned()
                        .collect();
                    if set_proxies(tx, &mut user, kept, &why, now_ms)? {
                        tx.put(TreeId::NeedsFallback, id.key(), &now_ms)?;
                        changed.push(*id);
                    }
                }
                Ok(changed)
            })?;
            self.store.durable().await?;
            self.notifier.notify(&changed);
            moved += changed.len();
        }
        self.notifier.notify_all();
        self.place_unplaced(now_ms).await?;
        Ok(moved)
    }

    /// Blames the users in the block's country who had ever been given the proxy (the
    /// exposure index: the censor may have learnt it from one who holds it no longer), each
    /// for its share (`suspicion::shares`: those given it recently weigh most), and lowers
    /// each one's trust level by one (`trust.rs`).
    async fn blame_for(&self, block: &Block<'_>, now_ms: u64) -> Result<()> {
        let mut there = Vec::new();
        for (id, given_ms) in super::exposure::last_given(&self.store, block.proxy)? {
            if self.country_of(id)?.as_deref() == Some(block.country) {
                there.push((id, given_ms));
            }
        }
        let shares = super::suspicion::shares(&there, block.blocked_ms, &self.settings.blame);
        // `shares` keeps `there`'s order: each user beside when it was given the proxy.
        let blamed: Vec<(UserId, u64, f64)> = there
            .iter()
            .zip(&shares)
            .map(|(&(id, given_ms), &(_, share))| (id, given_ms, share))
            .collect();
        let rules = &self.settings.trust;
        for chunk in blamed.chunks(USERS_PER_TRANSACTION) {
            self.store.transaction(|tx| {
                for &(id, given_ms, share) in chunk {
                    let blame = super::suspicion::Blame {
                        proxy: block.proxy.to_string(),
                        country: block.country.to_string(),
                        blocked_ms: block.blocked_ms,
                        share,
                    };
                    let threshold = self.settings.blame.threshold;
                    if !super::suspicion::blame(tx, id, blame, threshold, now_ms)?.counted {
                        continue; // this block was counted already: lowered once
                    }
                    if !tx.contains(TreeId::Users, id.key())? {
                        continue;
                    }
                    let mut trust = super::trust::read(tx, id)?;
                    if block.blocked_ms.saturating_sub(given_ms) <= self.settings.blame.recent_ms {
                        // Given it just before the block: the likeliest to have passed it on.
                        let days = rules.probation_days.saturating_mul(86_400_000);
                        trust.held_until_ms = Some(now_ms.saturating_add(days));
                    }
                    let why = format!(
                        "proxy {} it had been given is blocked in {}",
                        block.proxy, block.country
                    );
                    trust.lower(rules, why, now_ms);
                    super::trust::write(tx, id, &trust, rules, now_ms)?;
                }
                Ok(())
            })?;
            self.store.durable().await?;
        }
        Ok(())
    }
}
