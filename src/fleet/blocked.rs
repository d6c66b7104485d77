//! Where users are, and what a block there does to them: each user's country (from its last
//! config request or report), and the users of a country leaving a proxy blocked there. The
//! blocking capability decides the verdicts and keeps `distribution::blocked::BlockedSet`
//! current; the fleet only follows them (placement avoids what is blocked where a user is).

use super::links::set_proxies;
use super::model::{ProxyName, User, UserId};
use super::Fleet;
pub use crate::distribution::blocked::BlockedSet;
use crate::error::Result;
use crate::store::TreeId;

/// Users changed per transaction when a blocked proxy's users in one country leave it.
const USERS_PER_TRANSACTION: usize = 500;

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

    /// The `blocking.proxy_blocked` task: users in `country` leave `proxy` (history: why) and
    /// are placed again on proxies not blocked there; users elsewhere keep it. Every config
    /// long-poll wakes (free subsets may have listed it). Returns how many users left it.
    pub async fn leave_blocked(&self, proxy: &str, country: &str, now_ms: u64) -> Result<usize> {
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
}
