//! Reading what the planner needs: every live proxy, and the users of the proxies that are
//! overloaded or idle, and the users owed a fallback.

use std::collections::BTreeMap;

use super::plan::{ProxyState, Snapshot, UserState};
use crate::error::Result;
use crate::fleet::model::{ProxyName, User, UserId, UserStatus};
use crate::fleet::trust::Standing;
use crate::fleet::{links, Fleet};
use crate::store::codec::{key_u64, u64_key};
use crate::store::TreeId;

/// A user as the planner sees it, with its level read from `standing` (the caller's read of
/// its trust).
fn user_state(fleet: &Fleet, user: &User, standing: Standing) -> Result<UserState> {
    let country = fleet.country_of(user.id)?;
    let blocked_here = fleet
        .blocked
        .in_country(country.as_deref())
        .iter()
        .filter_map(|name| ProxyName::parse(name).ok())
        .collect();
    Ok(UserState {
        id: user.id,
        proxies: user.proxies.clone(),
        last_moved_ms: user.last_moved_ms,
        blocked_here,
        wanted: fleet.wanted_at(standing.level),
        fit: fleet.fit(standing.level),
    })
}

pub fn take(fleet: &Fleet, now_ms: u64) -> Result<Snapshot> {
    let max_clients = fleet.settings.max_clients;
    let mut snapshot = Snapshot::default();
    let mut users_on: BTreeMap<ProxyName, Vec<UserState>> = BTreeMap::new();
    let proxies = fleet.registry.list(now_ms)?;
    let floors = fleet.floors()?;
    fleet
        .moves
        .keep_only(&proxies.iter().map(|p| &p.name).collect());
    for proxy in proxies {
        let name = proxy.name.clone();
        let limit = proxy.limit(max_clients);
        // The report, less the users moved off since it was made (plus those moved on).
        let clients = fleet
            .moves
            .corrected(&name, proxy.load.clients, proxy.last_seen_ms);
        let overloaded = clients.is_some_and(|c| c > limit);
        if overloaded || proxy.under_low_since_ms.is_some() {
            let mut users = Vec::new();
            for id in links::users_of(&fleet.store, name.as_str())? {
                if let Some(user) = fleet.user(id)? {
                    let (_, standing) = fleet.trust_of(&user, now_ms)?;
                    users.push(user_state(fleet, &user, standing)?);
                }
            }
            users_on.insert(name.clone(), users);
        }
        snapshot.proxies.push(ProxyState {
            assigned: links::assigned(&fleet.store, name.as_str())?,
            floor: floors.get(name.as_str().as_bytes()).copied(),
            name,
            role: proxy.role,
            limit,
            clients,
            over_limit_since_ms: proxy.over_limit_since_ms,
            under_low_since_ms: proxy.under_low_since_ms,
        });
    }
    snapshot.users_on = users_on;
    for key in fleet.store.keys_from(TreeId::NeedsFallback, u64_key(0)) {
        let Some(id) = key_u64(&key?) else { continue };
        let quarantined = fleet
            .suspicion(UserId(id))?
            .is_some_and(|s| s.quarantined_ms.is_some());
        if quarantined {
            continue; // gets no new proxy until an admin clears it
        }
        if let Some(user) = fleet
            .user(UserId(id))?
            .filter(|u| u.status == UserStatus::Active)
        {
            let (trust, standing) = fleet.trust_of(&user, now_ms)?;
            if trust.held(now_ms) {
                continue; // on probation after a block
            }
            snapshot
                .needs_fallback
                .push(user_state(fleet, &user, standing)?);
        }
    }
    // Users with no proxy first: when room is short, a first proxy before anyone's second.
    snapshot.needs_fallback.sort_by_key(|u| u.proxies.len());
    Ok(snapshot)
}
