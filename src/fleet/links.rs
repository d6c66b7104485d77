//! User <-> proxy links. The forward side is `User::proxies`, the reverse side the
//! `ProxyUsers` index plus a per-proxy count; `set_proxies` changes all of them, the user's
//! config version and the assignment history in the caller's transaction, so they never
//! disagree.

use super::exposure;
use super::model::{Assignment, ProxyName, User, UserId};
use super::users::save_user;
use crate::error::Result;
use crate::store::codec::{key_u64, pair_key};
use crate::store::{Store, TreeId, Tx, TxResult};

/// History entries kept per user (older ones are dropped).
pub const HISTORY_KEPT: u64 = 50;

pub fn proxy_user_key(proxy: &str, user: UserId) -> Vec<u8> {
    let mut key = Vec::with_capacity(proxy.len() + 9);
    key.extend_from_slice(proxy.as_bytes());
    key.push(0);
    key.extend_from_slice(&user.key());
    key
}

fn proxy_prefix(proxy: &str) -> Vec<u8> {
    let mut prefix = proxy.as_bytes().to_vec();
    prefix.push(0);
    prefix
}

fn adjust_assigned(tx: &Tx, proxy: &str, delta: i64) -> TxResult<()> {
    let current: u64 = tx.get(TreeId::ProxyAssigned, proxy)?.unwrap_or(0);
    let next = current.saturating_add_signed(delta);
    if next == 0 {
        tx.remove(TreeId::ProxyAssigned, proxy)?;
    } else {
        tx.put(TreeId::ProxyAssigned, proxy, &next)?;
    }
    Ok(())
}

/// Gives `user` the proxy set `proxies` (newest last): updates both indexes, bumps the config
/// version, appends to the history and stores the user. Does nothing if the set is unchanged.
pub fn set_proxies(
    tx: &Tx,
    user: &mut User,
    proxies: Vec<ProxyName>,
    reason: &str,
    now_ms: u64,
) -> TxResult<bool> {
    if user.proxies == proxies {
        return Ok(false);
    }
    for gone in user.proxies.iter().filter(|p| !proxies.contains(p)) {
        tx.remove(TreeId::ProxyUsers, proxy_user_key(gone.as_str(), user.id))?;
        adjust_assigned(tx, gone.as_str(), -1)?;
        exposure::closed(tx, gone, user.id, now_ms)?;
    }
    for added in proxies.iter().filter(|p| !user.proxies.contains(p)) {
        tx.put_marker(TreeId::ProxyUsers, proxy_user_key(added.as_str(), user.id))?;
        adjust_assigned(tx, added.as_str(), 1)?;
        exposure::opened(tx, added, user.id, now_ms)?;
    }
    let entry = Assignment {
        at_ms: now_ms,
        proxies: proxies.clone(),
        reason: reason.to_string(),
    };
    tx.put(
        TreeId::UserHistory,
        pair_key(user.id.0, user.history_len),
        &entry,
    )?;
    if user.history_len >= HISTORY_KEPT {
        tx.remove(
            TreeId::UserHistory,
            pair_key(user.id.0, user.history_len - HISTORY_KEPT),
        )?;
    }
    user.history_len += 1;
    user.proxies = proxies;
    user.config_version += 1;
    save_user(tx, user, now_ms)?;
    Ok(true)
}

/// Users linked to `proxy`, from the reverse index.
pub fn users_of(store: &Store, proxy: &str) -> Result<Vec<UserId>> {
    linked_users(store, TreeId::ProxyUsers, proxy)
}

/// A page of the users assigned to `proxy` (fallback links), by id from after `after`: at most
/// `limit` ids, and whether more follow. Reads only the index keys of that page.
pub fn users_page(
    store: &Store,
    proxy: &str,
    after: Option<UserId>,
    limit: usize,
) -> Result<(Vec<UserId>, bool)> {
    let prefix = proxy_prefix(proxy);
    let start = match after {
        Some(id) => proxy_user_key(proxy, UserId(id.0.saturating_add(1))),
        None => prefix.clone(),
    };
    let mut ids = Vec::new();
    for key in store.keys_from(TreeId::ProxyUsers, &start) {
        let key = key?;
        if !key.starts_with(&prefix) {
            break;
        }
        if ids.len() == limit {
            return Ok((ids, true));
        }
        ids.push(UserId(key_u64(&key[prefix.len()..]).unwrap_or(0)));
    }
    Ok((ids, false))
}

/// The users of `proxy` in a `name 0 user` index (`ProxyUsers` or `ProLinks`).
pub fn linked_users(store: &Store, index: TreeId, proxy: &str) -> Result<Vec<UserId>> {
    let prefix = proxy_prefix(proxy);
    store
        .keys_with_prefix(index, &prefix)
        .map(|key| key.map(|k| UserId(key_u64(&k[prefix.len()..]).unwrap_or(0))))
        .collect()
}

/// How many users are linked to `proxy`.
pub fn assigned(store: &Store, proxy: &str) -> Result<u64> {
    Ok(store.get(TreeId::ProxyAssigned, proxy)?.unwrap_or(0))
}

/// The user's history, oldest first.
pub fn history(store: &Store, user: UserId) -> Result<Vec<Assignment>> {
    store
        .scan_prefix::<Assignment>(TreeId::UserHistory, user.key())
        .map(|item| item.map(|(_, entry)| entry))
        .collect()
}

/// Checks that the two sides of every link agree and that the per-proxy counts are right.
/// Returns one line per problem (none when consistent). Reads only.
pub fn check(store: &Store) -> Result<Vec<String>> {
    let users: Vec<User> = store.values::<User>(TreeId::Users).collect::<Result<_>>()?;
    let mut problems = check_side(store, &users, Side::FALLBACK)?;
    problems.extend(check_side(store, &users, Side::PRO)?);
    problems.extend(check_pro_tokens(store, &users)?);
    Ok(problems)
}

/// One kind of user <-> proxy link: where the forward list, the index and the counts live.
struct Side {
    name: &'static str,
    forward: fn(&User) -> &Vec<ProxyName>,
    index: TreeId,
    counts: TreeId,
}

impl Side {
    const FALLBACK: Side = Side {
        name: "fallback",
        forward: |u| &u.proxies,
        index: TreeId::ProxyUsers,
        counts: TreeId::ProxyAssigned,
    };
    const PRO: Side = Side {
        name: "pro",
        forward: |u| &u.pro_proxies,
        index: TreeId::ProLinks,
        counts: TreeId::ProCounts,
    };
}

/// (proxy, rest of the key) of a `name 0 rest` index key.
fn split_proxy_key(key: &[u8]) -> Option<(String, &[u8])> {
    let split = key.iter().position(|b| *b == 0)?;
    Some((
        String::from_utf8_lossy(&key[..split]).into_owned(),
        &key[split + 1..],
    ))
}

fn check_side(store: &Store, users: &[User], side: Side) -> Result<Vec<String>> {
    use std::collections::{BTreeMap, BTreeSet};
    let name = side.name;
    let mut problems = Vec::new();
    let mut forward: BTreeSet<(String, u64)> = BTreeSet::new();
    for user in users {
        for proxy in (side.forward)(user) {
            if !forward.insert((proxy.to_string(), user.id.0)) {
                problems.push(format!("user {} lists {name} proxy {proxy} twice", user.id));
            }
        }
    }
    let mut reverse: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for key in store.keys_from(side.index, []) {
        let key = key?;
        let Some((proxy, rest)) = split_proxy_key(&key) else {
            problems.push(format!("malformed {name} link key"));
            continue;
        };
        let user = key_u64(rest).unwrap_or(0);
        *counts.entry(proxy.clone()).or_default() += 1;
        reverse.insert((proxy, user));
    }
    for (proxy, user) in forward.difference(&reverse) {
        problems.push(format!(
            "user {user} lists {name} proxy {proxy} but {proxy} does not list the user"
        ));
    }
    for (proxy, user) in reverse.difference(&forward) {
        problems.push(format!(
            "{name} proxy {proxy} lists user {user} but the user does not list it"
        ));
    }
    let stored: BTreeMap<String, u64> = store
        .scan_from::<u64>(side.counts, [])
        .filter_map(|item| item.ok())
        .map(|(k, n)| (String::from_utf8_lossy(&k).into_owned(), n))
        .collect();
    if stored != counts {
        problems.push(format!(
            "per-proxy {name} user counts disagree with the index: stored {stored:?}, counted {counts:?}"
        ));
    }
    Ok(problems)
}

/// Every pro link has the user's token in the proxy's accepted set, and nothing else is there.
fn check_pro_tokens(store: &Store, users: &[User]) -> Result<Vec<String>> {
    use std::collections::BTreeSet;
    let expected: BTreeSet<(String, Vec<u8>)> = users
        .iter()
        .flat_map(|u| {
            u.pro_proxies.iter().flat_map(move |p| {
                u.token_hashes()
                    .map(move |t| (p.to_string(), t.as_bytes().to_vec()))
            })
        })
        .collect();
    let mut found: BTreeSet<(String, Vec<u8>)> = BTreeSet::new();
    for key in store.keys_from(TreeId::ProxyTokens, []) {
        let key = key?;
        if let Some((proxy, token)) = split_proxy_key(&key) {
            found.insert((proxy, token.to_vec()));
        }
    }
    let mut problems = Vec::new();
    let missing = expected.difference(&found).count();
    let stray = found.difference(&expected).count();
    if missing > 0 || stray > 0 {
        problems.push(format!(
            "pro proxy tokens disagree with the pro links: {missing} missing, {stray} stray"
        ));
    }
    Ok(problems)
}
