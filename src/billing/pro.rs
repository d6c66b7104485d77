//! Pro time and pro proxies, inside the caller's transaction. A user who becomes Pro is given
//! the least loaded pro proxies; one whose Pro ends gives them back. Each link is kept three
//! ways that always agree: `User::pro_proxies`, the `ProLinks` reverse index with a count per
//! proxy, and `ProxyTokens`, the token hashes a pro proxy must accept (what an http-proxy
//! checks, through the Redis mirror, with one set lookup).

use crate::fleet::links::proxy_user_key;
use crate::fleet::model::{ProxyName, User};
use crate::fleet::policy::Candidate;
use crate::fleet::users::save_user;
use crate::http::TokenHash;
use crate::store::codec::pair_key;
use crate::store::{TreeId, Tx, TxResult};

const DAY_MS: u64 = 86_400_000;

fn token_key(proxy: &str, token_hash: &[u8; 32]) -> Vec<u8> {
    let mut key = Vec::with_capacity(proxy.len() + 33);
    key.extend_from_slice(proxy.as_bytes());
    key.push(0);
    key.extend_from_slice(token_hash);
    key
}

fn adjust_count(tx: &Tx, proxy: &str, delta: i64) -> TxResult<()> {
    let current: u64 = tx.get(TreeId::ProCounts, proxy)?.unwrap_or(0);
    match current.saturating_add_signed(delta) {
        0 => tx.remove(TreeId::ProCounts, proxy).map(|_| ()),
        next => tx.put(TreeId::ProCounts, proxy, &next),
    }
}

/// `snapshot` (taken when a request arrived) with the links committed since: a batch of
/// payments starts from the links the batches before it made, not from its requests' reads.
pub fn with_links_in(tx: &Tx, snapshot: &[Candidate]) -> TxResult<Vec<Candidate>> {
    snapshot
        .iter()
        .map(|c| {
            let linked: u64 = tx.get(TreeId::ProCounts, c.name.as_str())?.unwrap_or(0);
            Ok(Candidate {
                load: c.load.max(linked),
                ..c.clone()
            })
        })
        .collect()
}

/// Counts the proxies just given to a user in the loads later choices see (a batch of
/// payments, or the users of a departed proxy, do not all land on the same proxy).
fn count_in(candidates: &mut [Candidate], given: &[ProxyName]) {
    for candidate in candidates.iter_mut().filter(|c| given.contains(&c.name)) {
        candidate.load += 1;
    }
}

/// Links `user` to exactly `proxies` (both indexes, the tokens, the config version).
fn set_pro_proxies(tx: &Tx, user: &mut User, proxies: Vec<ProxyName>) -> TxResult<()> {
    if user.pro_proxies == proxies {
        return Ok(());
    }
    for gone in user.pro_proxies.iter().filter(|p| !proxies.contains(p)) {
        tx.remove(TreeId::ProLinks, proxy_user_key(gone.as_str(), user.id))?;
        for token in user.token_hashes() {
            tx.remove(
                TreeId::ProxyTokens,
                token_key(gone.as_str(), token.as_bytes()),
            )?;
        }
        adjust_count(tx, gone.as_str(), -1)?;
    }
    for added in proxies.iter().filter(|p| !user.pro_proxies.contains(p)) {
        tx.put_marker(TreeId::ProLinks, proxy_user_key(added.as_str(), user.id))?;
        for token in user.token_hashes() {
            tx.put(
                TreeId::ProxyTokens,
                token_key(added.as_str(), token.as_bytes()),
                &user.id,
            )?;
        }
        adjust_count(tx, added.as_str(), 1)?;
    }
    user.pro_proxies = proxies;
    user.config_version += 1;
    Ok(())
}

/// A token the user's pro proxies must start accepting (a device was linked).
pub fn accept_token(tx: &Tx, user: &User, token: &TokenHash) -> TxResult<()> {
    for proxy in &user.pro_proxies {
        tx.put(
            TreeId::ProxyTokens,
            token_key(proxy.as_str(), token.as_bytes()),
            &user.id,
        )?;
    }
    Ok(())
}

/// A token the user's pro proxies must stop accepting (a device was removed).
pub fn refuse_token(tx: &Tx, user: &User, token: &TokenHash) -> TxResult<()> {
    for proxy in &user.pro_proxies {
        tx.remove(
            TreeId::ProxyTokens,
            token_key(proxy.as_str(), token.as_bytes()),
        )?;
    }
    Ok(())
}

/// Moves the user's entry in the expiry index from the old end of Pro to the new one.
fn reindex_expiry(tx: &Tx, user: &User, old_until: Option<u64>) -> TxResult<()> {
    if let Some(old) = old_until {
        tx.remove(TreeId::ProExpiry, pair_key(old, user.id.0))?;
    }
    if let Some(until) = user.pro_until_ms {
        tx.put_marker(TreeId::ProExpiry, pair_key(until, user.id.0))?;
    }
    Ok(())
}

/// The `count` pro proxies with the most headroom (ties by name, so the choice is stable).
pub fn choose(candidates: &[Candidate], count: usize) -> Vec<ProxyName> {
    let mut ranked: Vec<&Candidate> = candidates.iter().collect();
    ranked.sort_by(|a, b| {
        b.headroom()
            .cmp(&a.headroom())
            .then_with(|| a.name.cmp(&b.name))
    });
    ranked
        .into_iter()
        .take(count)
        .map(|c| c.name.clone())
        .collect()
}

/// Adds `days` of Pro from now or from the current end, whichever is later, and gives the user
/// pro proxies if they had none. Stores the user.
pub fn extend(
    tx: &Tx,
    user: &mut User,
    days: u64,
    candidates: &mut [Candidate],
    per_user: usize,
    now_ms: u64,
) -> TxResult<()> {
    let old_until = user.pro_until_ms;
    let from = old_until.unwrap_or(0).max(now_ms);
    user.pro_until_ms = Some(from + days * DAY_MS);
    if user.pro_proxies.len() < per_user {
        let mut proxies = user.pro_proxies.clone();
        let more: Vec<Candidate> = candidates
            .iter()
            .filter(|c| !proxies.contains(&c.name))
            .cloned()
            .collect();
        let given = choose(&more, per_user - proxies.len());
        count_in(candidates, &given);
        proxies.extend(given);
        set_pro_proxies(tx, user, proxies)?;
    }
    reindex_expiry(tx, user, old_until)?;
    save_user(tx, user, now_ms)
}

/// Takes `days` of Pro back (a refund). If Pro is over, the pro proxies are released at once.
pub fn shorten(tx: &Tx, user: &mut User, days: u64, now_ms: u64) -> TxResult<()> {
    let old_until = user.pro_until_ms;
    let Some(until) = old_until else {
        return Ok(());
    };
    user.pro_until_ms = Some(until.saturating_sub(days * DAY_MS).max(now_ms.min(until)));
    if !user.is_pro(now_ms) {
        set_pro_proxies(tx, user, Vec::new())?;
    }
    reindex_expiry(tx, user, old_until)?;
    save_user(tx, user, now_ms)
}

/// Ends Pro for a user whose time ran out: releases the pro proxies and the expiry entry.
/// Does nothing (and returns false) if the user is Pro again meanwhile.
pub fn expire(tx: &Tx, user: &mut User, now_ms: u64) -> TxResult<bool> {
    if user.is_pro(now_ms) {
        return Ok(false);
    }
    set_pro_proxies(tx, user, Vec::new())?;
    if let Some(until) = user.pro_until_ms {
        tx.remove(TreeId::ProExpiry, pair_key(until, user.id.0))?;
    }
    save_user(tx, user, now_ms)?;
    Ok(true)
}

/// Replaces a departed pro proxy in the user's set with the best other candidate (while Pro
/// lasts; past it, the proxy is just dropped). Stores the user. Returns whether it changed.
pub fn replace_departed(
    tx: &Tx,
    user: &mut User,
    gone: &str,
    candidates: &mut [Candidate],
    per_user: usize,
    now_ms: u64,
) -> TxResult<bool> {
    if !user.pro_proxies.iter().any(|p| p == gone) {
        return Ok(false);
    }
    let mut kept: Vec<ProxyName> = user
        .pro_proxies
        .iter()
        .filter(|p| *p != gone)
        .cloned()
        .collect();
    if user.is_pro(now_ms) && kept.len() < per_user {
        let others: Vec<Candidate> = candidates
            .iter()
            .filter(|c| c.name != gone && !kept.contains(&c.name))
            .cloned()
            .collect();
        let given = choose(&others, per_user - kept.len());
        count_in(candidates, &given);
        kept.extend(given);
    }
    set_pro_proxies(tx, user, kept)?;
    save_user(tx, user, now_ms)?;
    Ok(true)
}

/// Releases the user's pro proxies (the account is disabled): their token stops being
/// accepted by those proxies at once. The caller stores the user.
pub fn release(tx: &Tx, user: &mut User) -> TxResult<()> {
    set_pro_proxies(tx, user, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(name: &str, limit: u32, load: u64) -> Candidate {
        Candidate {
            name: ProxyName::parse(name).unwrap(),
            limit,
            load,
            floor: None,
        }
    }

    #[test]
    fn the_least_loaded_are_chosen_ties_by_name() {
        let candidates = [
            candidate("b", 50, 10),
            candidate("a", 50, 10),
            candidate("c", 50, 40),
            candidate("d", 100, 10),
        ];
        assert_eq!(choose(&candidates, 3), vec!["d", "a", "b"]);
        assert_eq!(choose(&candidates, 9).len(), 4);
    }

    fn user(id: u64) -> User {
        let email = crate::fleet::model::Email::parse("p@example.org").unwrap();
        User::new(
            crate::fleet::model::UserId(id),
            email,
            crate::http::TokenHash::of("pfu_test"),
            None,
            0,
        )
    }

    #[tokio::test]
    async fn pro_ends_with_its_links_tokens_and_expiry_entry() {
        use crate::store::codec::u64_key;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let candidates = [candidate("p1", 50, 0), candidate("p2", 50, 3)];
        let now = 1_000 * DAY_MS;
        let extended = store
            .transaction(|tx| {
                let mut u = user(1);
                extend(tx, &mut u, 2, &mut candidates.clone(), 1, now)?;
                Ok(u)
            })
            .unwrap();
        assert_eq!(extended.pro_proxies, vec!["p1"]);
        assert_eq!(extended.pro_until_ms, Some(now + 2 * DAY_MS));
        assert!(crate::fleet::links::check(&store).unwrap().is_empty());
        assert_eq!(store.keys_from(TreeId::ProExpiry, []).count(), 1);

        let later = now + 2 * DAY_MS;
        let ended = store
            .transaction(|tx| {
                let mut u: User = tx.get(TreeId::Users, u64_key(1))?.unwrap();
                Ok((expire(tx, &mut u, later)?, u))
            })
            .unwrap();
        assert!(ended.0, "Pro over at its end");
        assert!(ended.1.pro_proxies.is_empty());
        assert_eq!(store.keys_from(TreeId::ProExpiry, []).count(), 0);
        assert_eq!(store.keys_from(TreeId::ProxyTokens, []).count(), 0);
        assert!(crate::fleet::links::check(&store).unwrap().is_empty());
    }
}
