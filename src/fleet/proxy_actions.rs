//! An operator's hand on one proxy: drain it (its users move elsewhere and it carries no one),
//! promote a standby to a fallback, retire it (drain, then the retire hook), and return a
//! drained or retired proxy to service (undrain, reactivate). The role is pinned on the live
//! record and kept in the proxy's credential, so neither its own heartbeats nor a later
//! enrolment undo the operator's choice; a drained or retired proxy is never chosen, promoted
//! or assigned by anything automatic.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::placement::queue_placement;
use super::rebalance::apply::set_role;
use super::{Fleet, PROXY_CHANGED, RETIRE};
use crate::error::{Error, Result};
use crate::queue::{NewTask, Task, TaskKind};
use crate::registry::{Proxy, ProxyName, Role};
use crate::store::{TreeId, Tx, TxResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyAction {
    Drain,
    Promote,
    Retire,
    /// A drained proxy becomes a fallback again.
    Undrain,
    /// A retired proxy becomes a standby again (the rebalancer may promote it).
    Reactivate,
}

/// A proxy after an operator changed its role, and the tasks that carry the change out (moving
/// its users off, the retire hook), by id.
pub struct RoleChanged {
    pub proxy: Proxy,
    pub tasks: Vec<u64>,
}

impl ProxyAction {
    /// The role the proxy ends with.
    fn role(self) -> Role {
        match self {
            ProxyAction::Promote | ProxyAction::Undrain => Role::Fallback,
            ProxyAction::Reactivate => Role::Standby,
            ProxyAction::Drain => Role::Drained,
            ProxyAction::Retire => Role::Retired,
        }
    }

    /// The role the proxy must have for the action to make sense, if any.
    fn requires(self) -> Option<Role> {
        match self {
            ProxyAction::Undrain => Some(Role::Drained),
            ProxyAction::Reactivate => Some(Role::Retired),
            ProxyAction::Promote => Some(Role::Standby),
            ProxyAction::Drain | ProxyAction::Retire => None,
        }
    }
}

impl Fleet {
    /// Applies `action` to proxy `name` in one transaction with the tasks that carry it out:
    /// moving its users off (a `fleet.proxy_changed` task; they are owed new fallbacks, which
    /// the rebalancer places) and, to retire, the retire hook. Returns the proxy as it now is,
    /// with the tasks queued, so the caller can follow their real outcome.
    pub async fn proxy_action(
        &self,
        name: &ProxyName,
        action: ProxyAction,
        now_ms: u64,
    ) -> Result<RoleChanged> {
        if let Some(required) = action.requires() {
            let role = self
                .store
                .get::<Proxy>(TreeId::Proxies, name.as_str())?
                .map(|p| p.role);
            if role.is_some_and(|role| role != required) {
                return Err(Error::conflict(
                    "wrong_role",
                    format!(
                        "{action:?} applies to a {} proxy; {name} is {}",
                        required.name(),
                        role.map_or("gone", Role::name)
                    ),
                ));
            }
        }
        self.change_role(name.as_str(), action.role(), now_ms, |tx, name| {
            crate::registry::credentials::set_role_in(tx, name, action.role())?;
            let mut tasks = Vec::new();
            if action.role() != Role::Fallback {
                tasks.push(self.shed_users(tx, name, &format!("{action:?}"), now_ms)?);
            } else {
                queue_placement(&self.queue, tx, now_ms)?;
            }
            // The hook only when there is one: a task that would do nothing is not reported as
            // the retirement's outcome.
            if action == ProxyAction::Retire && self.settings.retire_command.is_some() {
                let task = NewTask {
                    kind: RETIRE,
                    key: format!("{RETIRE}:{name}:manual:{now_ms}"),
                    payload: json!({ "proxy": name, "reason": "retired by an operator" }),
                    due_ms: now_ms,
                };
                tasks.push(self.queue.enqueue_in(tx, &task, now_ms)?);
            }
            Ok(tasks)
        })
        .await
    }

    /// The background tasks about proxy `name` that are still kept (done ones until the
    /// queue's retention): its retire hook, moving its users off, leaving a country that
    /// blocked it. Newest first, at most `limit`. Every such task's key starts with its kind
    /// and the proxy's name (names hold no `:`), so this reads only the proxy's own keys.
    pub fn proxy_tasks(&self, name: &ProxyName, limit: usize) -> Result<Vec<Task>> {
        let mut tasks = Vec::new();
        for kind in [
            TaskKind::Retire,
            TaskKind::ProxyChanged,
            TaskKind::ProxyBlocked,
        ] {
            let prefix = format!("{kind}:{name}:");
            for item in self
                .store
                .scan_prefix::<u64>(TreeId::TaskKeys, prefix.as_bytes())
            {
                let (_, id) = item?;
                if let Some(task) = self.queue.get(id)? {
                    tasks.push(task);
                }
            }
        }
        tasks.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
        tasks.truncate(limit);
        Ok(tasks)
    }

    /// Gives proxy `name` a role for good (an operator's decision): it is pinned on the live
    /// record and kept in its credential, so the proxy has it again when it comes back. A
    /// proxy that stops being a fallback sheds its users (they are owed new fallbacks).
    pub async fn set_proxy_role(
        &self,
        name: &ProxyName,
        role: Role,
        now_ms: u64,
    ) -> Result<RoleChanged> {
        self.change_role(name.as_str(), role, now_ms, |tx, name| {
            crate::registry::credentials::set_role_in(tx, name, role)?;
            if role != Role::Fallback {
                let task = self.shed_users(tx, name, &format!("role-{}", role.name()), now_ms)?;
                Ok(vec![task])
            } else {
                queue_placement(&self.queue, tx, now_ms)?;
                Ok(Vec::new())
            }
        })
        .await
    }

    /// Pins `role` on proxy `name` and does `also` in the same transaction; durable when it
    /// returns, with the queue and the config long-polls woken. Returns the proxy as it is now
    /// and the ids of the tasks `also` queued.
    async fn change_role(
        &self,
        name: &str,
        role: Role,
        now_ms: u64,
        also: impl Fn(&Tx, &str) -> TxResult<Vec<u64>>,
    ) -> Result<RoleChanged> {
        let changed = self.store.transaction(|tx| {
            let Some(before) = tx.get::<Proxy>(TreeId::Proxies, name)? else {
                return Ok(None);
            };
            set_role(tx, name, role, now_ms)?;
            let tasks = also(tx, name)?;
            let after = tx.get::<Proxy>(TreeId::Proxies, name)?;
            Ok(Some(RoleChanged {
                proxy: after.unwrap_or(before),
                tasks,
            }))
        })?;
        let Some(changed) = changed else {
            return Err(Error::NotFound(format!("proxy {name}")));
        };
        self.index.invalidate();
        self.store.durable().await?;
        self.queue.wake();
        self.notifier.notify_all();
        Ok(changed)
    }

    /// Queues the task that moves the users off proxy `name` (`why` keys it); its id.
    fn shed_users(&self, tx: &Tx, name: &str, why: &str, now_ms: u64) -> TxResult<u64> {
        let task = NewTask {
            kind: PROXY_CHANGED,
            key: format!("{PROXY_CHANGED}:{name}:{why}:{now_ms}"),
            payload: json!({ "proxy": name }),
            due_ms: now_ms,
        };
        self.queue.enqueue_in(tx, &task, now_ms)
    }
}
