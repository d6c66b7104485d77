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
