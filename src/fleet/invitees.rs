//! The trust graph downwards: who each user invited, as an index beside `User::invited_by`
//! (written with the user), so a user's children are a prefix scan, not a scan of every user.

use crate::error::Result;
use crate::fleet::model::{User, UserId};
use crate::store::codec::pair_key;
use crate::store::{Store, TreeId};

/// Set once the index holds every user created before it existed.
const BUILT: &str = "index.invitees.built";
const PER_TRANSACTION: usize = 5_000;

/// Ids of the users `inviter` invited, oldest first, at most `limit`.
pub fn children(store: &Store, inviter: UserId, limit: usize) -> Result<Vec<UserId>> {
    store
        .keys_with_prefix(TreeId::Invitees, inviter.key())
        .take(limit)
        .map(|key| {
            let key = key?;
            Ok(key
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .map_or(UserId(0), UserId))
        })
        .collect()
}

/// How many users `inviter` invited directly.
pub fn count(store: &Store, inviter: UserId) -> Result<u64> {
    let mut n = 0;
    for key in store.keys_with_prefix(TreeId::Invitees, inviter.key()) {
        key?;
        n += 1;
    }
    Ok(n)
}

/// A page of invitees, each with how many it invited; and the cursor of the next page.
pub type InviteePage = (Vec<(User, u64)>, Option<UserId>);

/// One page of `inviter`'s invitees, by id from after `after`, with how many each invited
/// in turn; and the cursor of the next page.
pub fn page(
    store: &Store,
    inviter: UserId,
    after: Option<UserId>,
    limit: usize,
) -> Result<InviteePage> {
    let from = pair_key(inviter.0, after.map_or(0, |a| a.0.saturating_add(1)));
    let mut page = Vec::with_capacity(limit);
    let mut next = None;
    for key in store.keys_from(TreeId::Invitees, from) {
        let key = key?;
        if !key.starts_with(&inviter.key()) {
            break;
        }
        let Some(id) = key.get(8..16).and_then(crate::store::codec::key_u64) else {
            continue;
        };
        if page.len() == limit {
            next = page.last().map(|(u, _): &(User, u64)| u.id);
            break;
        }
        if let Some(user) = store.get::<User>(TreeId::Users, UserId(id).key())? {
            let invited = count(store, user.id)?;
            page.push((user, invited));
        }
    }
    Ok((page, next))
}

/// Fills the index from the users of a store made before it existed; once.
pub fn backfill(store: &Store) -> Result<usize> {
    if store.get::<bool>(TreeId::Meta, BUILT)?.unwrap_or(false) {
        return Ok(0);
    }
    let mut pairs = Vec::new();
    for user in store.values::<User>(TreeId::Users) {
        let user = user?;
        if let Some(inviter) = user.invited_by {
            pairs.push(pair_key(inviter.0, user.id.0));
        }
    }
    for chunk in pairs.chunks(PER_TRANSACTION) {
        store.transaction(|tx| {
            for key in chunk {
                tx.put_marker(TreeId::Invitees, key)?;
            }
            Ok(())
        })?;
    }
    store.put(TreeId::Meta, BUILT, &true)?;
    store.flush_now()?;
    Ok(pairs.len())
}
