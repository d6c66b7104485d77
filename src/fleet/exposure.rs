//! Exposure: who was ever given each proxy, and when. When a proxy is blocked, its address
//! reached the censor through one of these users (or the proxy's operator): the operator reads
//! the list with each user's inviter chain, and cuts the branch the suspects share
//! (`branch.rs`). Kept beside the links, in the same transaction (`links::set_proxies`), so it
//! agrees with the assignment history; bounded per (proxy, user) pair.

use serde::{Deserialize, Serialize};

use super::links::proxy_user_key;
use super::model::{Assignment, ProxyName, User, UserId};
use crate::error::Result;
use crate::store::codec::key_u64;
use crate::store::{Store, TreeId, Tx, TxResult};

/// Periods kept per (proxy, user): a user moved on and off one proxy more often keeps the
/// newest.
pub const PERIODS_KEPT: usize = 20;
/// Inviters listed above each exposed user, nearest first.
pub const CHAIN_SHOWN: usize = 16;
/// Users per page at most.
pub const MAX_PAGE: usize = 500;

/// One time a user held a proxy: from, and until (`None`: holds it still).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub from_ms: u64,
    pub until_ms: Option<u64>,
}

/// A user's periods on one proxy, oldest first: `ProxyExposure` (proxy name, 0, user id BE).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    pub periods: Vec<Period>,
}

/// Records that `user` was given `proxy` now.
pub fn opened(tx: &Tx, proxy: &ProxyName, user: UserId, now_ms: u64) -> TxResult<()> {
    let key = proxy_user_key(proxy.as_str(), user);
    let mut exposure: Exposure = tx.get(TreeId::ProxyExposure, &key)?.unwrap_or_default();
    if exposure
        .periods
        .last()
        .is_some_and(|p| p.until_ms.is_none())
    {
        return Ok(()); // already open
    }
    exposure.periods.push(Period {
        from_ms: now_ms,
        until_ms: None,
    });
    if exposure.periods.len() > PERIODS_KEPT {
        exposure.periods.remove(0);
    }
    tx.put(TreeId::ProxyExposure, &key, &exposure)
}

/// True when `user` was ever given `proxy` (a reachability report is taken only for those).
pub fn was_given(store: &Store, proxy: &str, user: UserId) -> Result<bool> {
    store.contains(TreeId::ProxyExposure, proxy_user_key(proxy, user))
}

/// Records that `user` no longer has `proxy`.
pub fn closed(tx: &Tx, proxy: &ProxyName, user: UserId, now_ms: u64) -> TxResult<()> {
    let key = proxy_user_key(proxy.as_str(), user);
    let Some(mut exposure) = tx.get::<Exposure>(TreeId::ProxyExposure, &key)? else {
        return Ok(());
    };
    if let Some(open) = exposure.periods.last_mut().filter(|p| p.until_ms.is_none()) {
        open.until_ms = Some(now_ms);
        tx.put(TreeId::ProxyExposure, &key, &exposure)?;
    }
    Ok(())
}

/// One exposed user as the operator reads it.
#[derive(Debug, Clone)]
pub struct Exposed {
    pub user: User,
    pub periods: Vec<Period>,
    /// Who invited the user, who invited that one, and so on (nearest first, bounded).
    pub inviters: Vec<UserId>,
}

/// The users ever given `proxy`, by user id from after `after`, `limit` at most; and the
/// cursor of the next page.
pub fn of_proxy(
    store: &Store,
    proxy: &ProxyName,
    after: Option<UserId>,
    limit: usize,
) -> Result<(Vec<Exposed>, Option<UserId>)> {
    let mut prefix = proxy.as_str().as_bytes().to_vec();
    prefix.push(0);
    let from = match after {
        Some(id) => proxy_user_key(proxy.as_str(), UserId(id.0.saturating_add(1))),
        None => prefix.clone(),
    };
    let limit = limit.clamp(1, MAX_PAGE);
    let mut page = Vec::with_capacity(limit);
    let mut next = None;
    for item in store.scan_from::<Exposure>(TreeId::ProxyExposure, &from) {
        let (key, exposure) = item?;
        if !key.starts_with(&prefix) {
            break;
        }
        let Some(id) = key_u64(&key[prefix.len()..]).map(UserId) else {
            continue;
        };
        if page.len() == limit {
            next = page.last().map(|e: &Exposed| e.user.id);
            break;
        }
        let Some(user) = store.get::<User>(TreeId::Users, id.key())? else {
            continue;
        };
        let inviters = chain(store, &user)?;
        page.push(Exposed {
            user,
            periods: exposure.periods,
            inviters,
        });
    }
    Ok((page, next))
}

/// Every user ever given `proxy`, by id (the users a block of it casts suspicion on).
pub fn users_given(store: &Store, proxy: &str) -> Result<Vec<UserId>> {
    let mut prefix = proxy.as_bytes().to_vec();
    prefix.push(0);
    let mut users = Vec::new();
    for key in store.keys_from(TreeId::ProxyExposure, &prefix) {
        let key = key?;
        if !key.starts_with(&prefix) {
            break;
        }
        users.extend(key_u64(&key[prefix.len()..]).map(UserId));
    }
    Ok(users)
}

/// Every user ever given `proxy`, with when each was last given it.
pub fn last_given(store: &Store, proxy: &str) -> Result<Vec<(UserId, u64)>> {
    let mut prefix = proxy.as_bytes().to_vec();
    prefix.push(0);
    let mut given = Vec::new();
    for item in store.scan_from::<Exposure>(TreeId::ProxyExposure, &prefix) {
        let (key, exposure) = item?;
        if !key.starts_with(&prefix) {
            break;
        }
        let Some(user) = key_u64(&key[prefix.len()..]).map(UserId) else {
            continue;
        };
        let at = exposure.periods.last().map_or(0, |p| p.from_ms);
        given.push((user, at));
    }
    Ok(given)
}

fn chain(store: &Store, user: &User) -> Result<Vec<UserId>> {
    let mut inviters = Vec::new();
    let mut next = user.invited_by;
    while let Some(id) = next {
        if inviters.len() == CHAIN_SHOWN || inviters.contains(&id) || id == user.id {
            break;
        }
        inviters.push(id);
        next = store
            .get::<User>(TreeId::Users, id.key())?
            .and_then(|u| u.invited_by);
    }
    Ok(inviters)
}

/// Builds the index from the assignment history of a store made before it (as far back as
/// each user's kept history reaches). Part of data format 5.
pub fn backfill(store: &Store) -> Result<usize> {
    let mut written = 0;
    let users: Vec<UserId> = store
        .values::<User>(TreeId::Users)
        .map(|u| u.map(|u| u.id))
        .collect::<Result<_>>()?;
    for chunk in users.chunks(1_000) {
        let mut records = Vec::new();
        for id in chunk {
            let history: Vec<Assignment> = super::links::history(store, *id)?;
            let mut held: Vec<(ProxyName, Exposure)> = Vec::new();
            let mut current: Vec<ProxyName> = Vec::new();
            for entry in &history {
                for gone in current.iter().filter(|p| !entry.proxies.contains(p)) {
                    if let Some((_, e)) = held.iter_mut().find(|(p, _)| p == gone) {
                        if let Some(open) = e.periods.last_mut() {
                            open.until_ms.get_or_insert(entry.at_ms);
                        }
                    }
                }
                for added in entry.proxies.iter().filter(|p| !current.contains(p)) {
                    let period = Period {
                        from_ms: entry.at_ms,
                        until_ms: None,
                    };
                    match held.iter_mut().find(|(p, _)| p == added) {
                        Some((_, e)) => e.periods.push(period),
                        None => held.push((
                            added.clone(),
                            Exposure {
                                periods: vec![period],
                            },
                        )),
                    }
                }
                current = entry.proxies.clone();
            }
            for (proxy, mut exposure) in held {
                let excess = exposure.periods.len().saturating_sub(PERIODS_KEPT);
                exposure.periods.drain(..excess);
                records.push((proxy_user_key(proxy.as_str(), *id), exposure));
            }
        }
        written += records.len();
        store.transaction(|tx| {
            for (key, exposure) in &records {
                if !tx.contains(TreeId::ProxyExposure, key)? {
                    tx.put(TreeId::ProxyExposure, key, exposure)?;
                }
            }
            Ok(())
        })?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::links::set_proxies;
    use crate::fleet::model::Email;

    fn names(list: &[&str]) -> Vec<ProxyName> {
        list.iter().map(|n| ProxyName::parse(n).unwrap()).collect()
    }

    /// A store from before the index is filled from the history with what the live updates
    /// would have written.
    #[tokio::test]
    async fn the_backfill_from_history_equals_the_index_kept_live() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let moves: [&[&str]; 6] = [&["a"], &["a", "b"], &["b"], &[], &["a", "c"], &["c"]];
        for id in 1..=3u64 {
            let mut user = User::new(
                UserId(id),
                Email::parse(&format!("u{id}@example.org")).unwrap(),
                crate::http::TokenHash::of(&format!("t{id}")),
                None,
                0,
            );
            // Each user makes the moves from a different point on, at its own times.
            for (step, proxies) in moves.iter().enumerate().skip(id as usize - 1) {
                let at = 1_000 * id + 60_000 * step as u64;
                user = store
                    .transaction(|tx| {
                        let mut current = user.clone();
                        set_proxies(tx, &mut current, names(proxies), "test", at)?;
                        Ok(current)
                    })
                    .unwrap();
            }
        }
        let live: Vec<(sled::IVec, Exposure)> = store
            .scan_from(TreeId::ProxyExposure, b"")
            .collect::<Result<_>>()
            .unwrap();
        assert!(!live.is_empty());
        store
            .transaction(|tx| {
                for (key, _) in &live {
                    tx.remove(TreeId::ProxyExposure, key)?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(backfill(&store).unwrap(), live.len());
        let rebuilt: Vec<(sled::IVec, Exposure)> = store
            .scan_from(TreeId::ProxyExposure, b"")
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(rebuilt, live);
        let (page, next) = of_proxy(&store, &names(&["a"])[0], None, 10).unwrap();
        assert_eq!(next, None);
        let first = page.iter().find(|e| e.user.id == UserId(1)).unwrap();
        assert_eq!(
            first.periods,
            vec![
                Period {
                    from_ms: 1_000,
                    until_ms: Some(121_000)
                },
                Period {
                    from_ms: 241_000,
                    until_ms: Some(301_000)
                }
            ]
        );
    }
}
