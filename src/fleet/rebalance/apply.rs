//! Carrying out a plan: promotions, moves (in transactions of a few hundred users, each move
//! changing both link indexes at once), drains, provisioning requests, and the plan's record.

use serde_json::json;

use super::plan::{DrainAction, Plan};
use crate::changes::ChangeKind;
use crate::error::Result;
use crate::fleet::links::set_proxies;
use crate::fleet::model::{ProxyName, User, UserId, UserStatus};
use crate::fleet::{trust, Fleet, PROVISION, RETIRE};
use crate::queue::NewTask;
use crate::registry::{Proxy, Role};
use crate::store::codec::u64_key;
use crate::store::{TreeId, Tx, TxResult};

const MOVES_PER_TRANSACTION: usize = 500;
const NEXT_PLAN_ID: &str = "rebalance.next_plan_id";
pub const PROVISION_REQUESTED: &str = "rebalance.provision_requested_ms";

/// Sets and pins a proxy's role (the rebalancer's promotions and drains, an operator's actions).
pub(crate) fn set_role(tx: &Tx, name: &str, role: Role, now_ms: u64) -> TxResult<()> {
    let Some(mut proxy) = tx.get::<Proxy>(TreeId::Proxies, name)? else {
        return Ok(()); // it left meanwhile
    };
    proxy.role = role;
    proxy.role_pinned = true;
    proxy.under_low_since_ms = None;
    tx.put(TreeId::Proxies, name, &proxy)?;
    tx.log(now_ms, ChangeKind::ProxiesUpserted(vec![proxy]))?;
    Ok(())
}

fn role_of(tx: &Tx, proxy: &ProxyName) -> TxResult<Option<Role>> {
    Ok(tx
        .get::<Proxy>(TreeId::Proxies, proxy.as_str())?
        .map(|p| p.role))
}

/// Numbers a dry run's plan and keeps it, for the operator to apply after review.
pub fn keep_for_review(fleet: &Fleet, plan: &mut Plan) -> Result<()> {
    plan.id = fleet.store.transaction(|tx| {
        let id = tx.next(NEXT_PLAN_ID)?;
        tx.put(TreeId::Plans, u64_key(id), &Plan { id, ..plan.clone() })?;
        Ok(id)
    })?;
    Ok(())
}

/// What keeps a reviewed plan from being applied as it is: users gone, disabled or moved
/// meanwhile, targets that left or changed role, standbys promoted or taken out of service,
/// proxies to drain that are no longer fallbacks. Empty when it still fits.
pub fn what_changed(fleet: &Fleet, plan: &Plan) -> Result<Vec<String>> {
    let store = &fleet.store;
    let role = |name: &ProxyName| -> Result<Option<Role>> {
        Ok(store
            .get::<Proxy>(TreeId::Proxies, name.as_str())?
            .map(|p| p.role))
    };
    let shown = |role: Option<Role>| role.map_or("gone", Role::name);
    let mut changed = Vec::new();
    for promotion in &plan.promoted {
        let now = role(&promotion.proxy)?;
        if now != Some(Role::Standby) {
            changed.push(format!("{} to promote is {}", promotion.proxy, shown(now)));
        }
    }
    for step in &plan.moves {
        let promoted = plan.promoted.iter().any(|p| p.proxy == step.to);
        let now = role(&step.to)?;
        if !(now == Some(Role::Fallback) || promoted && now == Some(Role::Standby)) {
            changed.push(format!("target {} is {}", step.to, shown(now)));
            continue;
        }
        let user = store.get::<User>(TreeId::Users, step.user.key())?;
        let problem = match &user {
            None => Some("is gone"),
            Some(u) if u.status != UserStatus::Active => Some("is disabled"),
            Some(u) if step.from.as_ref().is_some_and(|f| !u.proxies.contains(f)) => {
                Some("left the proxy to move off")
            }
            Some(u) if u.proxies.contains(&step.to) => Some("has the target already"),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            changed.push(format!("user {} {problem}", step.user));
        }
    }
    for drain in &plan.retired {
        let now = role(&drain.proxy)?;
        if now != Some(Role::Fallback) {
            changed.push(format!("{} to drain is {}", drain.proxy, shown(now)));
        }
    }
    Ok(changed)
}

/// Applies `plan` and stores it under a new number (replacing the dry run `reviewed`, if it
/// is one the operator reviewed). Returns the users whose config changed.
pub async fn apply(
    fleet: &Fleet,
    plan: &mut Plan,
    now_ms: u64,
    reviewed: Option<u64>,
) -> Result<Vec<UserId>> {
    let store = &fleet.store;
    plan.id = store.transaction(|tx| {
        if let Some(reviewed) = reviewed {
            tx.remove(TreeId::Plans, u64_key(reviewed))?;
        }
        let id = tx.next(NEXT_PLAN_ID)?;
        for promotion in &plan.promoted {
            // Only a standby still: an operator may have drained it since the snapshot.
            if role_of(tx, &promotion.proxy)? == Some(Role::Standby) {
                set_role(tx, promotion.proxy.as_str(), Role::Fallback, now_ms)?;
            }
        }
        Ok(id)
    })?;

    if !plan.promoted.is_empty() {
        fleet.index.invalidate();
    }
    let mut changed = Vec::new();
    for chunk in plan.moves.chunks(MOVES_PER_TRANSACTION) {
        let moved = store.transaction(|tx| {
            let mut moved = Vec::new();
            for step in chunk {
                let Some(mut user) = tx.get::<User>(TreeId::Users, step.user.key())? else {
                    continue;
                };
                // The world may have moved since the snapshot: only apply what still makes sense.
                let still_there = step
                    .from
                    .as_ref()
                    .is_none_or(|from| user.proxies.contains(from));
                let target_serves = role_of(tx, &step.to)? == Some(Role::Fallback);
                let rules = &fleet.settings.trust;
                let level = trust::level_of(tx, user.id, rules, now_ms)?;
                // A fallback it was owed may have come from placement since.
                let owed = step.from.is_some() || user.proxies.len() < fleet.wanted_at(level);
                if user.status != UserStatus::Active
                    || !still_there
                    || !target_serves
                    || !owed
                    || user.proxies.contains(&step.to)
                {
                    continue;
                }
                let mut proxies: Vec<ProxyName> = user
                    .proxies
                    .iter()
                    .filter(|p| Some(*p) != step.from.as_ref())
                    .cloned()
                    .collect();
                proxies.push(step.to.clone());
                user.last_moved_ms = Some(now_ms);
                trust::note_given(tx, std::slice::from_ref(&step.to), level)?;
                set_proxies(tx, &mut user, proxies, &step.reason, now_ms)?;
                if user.proxies.len() >= fleet.wanted_at(level) {
                    tx.remove(TreeId::NeedsFallback, user.id.key())?;
                }
                moved.push((user.id, step));
            }
            Ok(moved)
        })?;
        store.durable().await?;
        fleet
            .moves
            .record(moved.iter().map(|(_, m)| (m.from.as_ref(), &m.to)), now_ms);
        let moved: Vec<UserId> = moved.into_iter().map(|(id, _)| id).collect();
        fleet.notifier.notify(&moved);
        changed.extend(moved);
    }

    store.transaction(|tx| {
        for drain in &plan.retired {
            if role_of(tx, &drain.proxy)? != Some(Role::Fallback) {
                continue; // an operator changed it since the snapshot
            }
            set_role(tx, drain.proxy.as_str(), Role::Standby, now_ms)?;
            if drain.action == DrainAction::Retire {
                let task = NewTask {
                    kind: RETIRE,
                    // Named first, so a proxy's tasks are found by prefix (`Fleet::proxy_tasks`).
                    key: format!("{RETIRE}:{}:plan-{}", drain.proxy, plan.id),
                    payload: json!({ "proxy": drain.proxy, "reason": drain.reason }),
                    due_ms: now_ms,
                };
                fleet.queue.enqueue_in(tx, &task, now_ms)?;
            }
        }
        for request in &plan.provisioned {
            let task = NewTask {
                kind: PROVISION,
                key: format!("{PROVISION}:{}", plan.id),
                payload: json!({ "reason": request.reason }),
                due_ms: now_ms,
            };
            fleet.queue.enqueue_in(tx, &task, now_ms)?;
            tx.put(TreeId::Meta, PROVISION_REQUESTED, &now_ms)?;
        }
        tx.put(TreeId::Plans, u64_key(plan.id), &*plan)
    })?;
    if !plan.retired.is_empty() {
        fleet.index.invalidate();
    }
    store.durable().await?;
    fleet.queue.wake();
    Ok(changed)
}
