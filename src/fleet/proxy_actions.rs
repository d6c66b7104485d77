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
use crate::queue::NewTask;
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
    /// the rebalancer places) and, to retire, the retire hook. Returns the proxy as it now is.
    pub async fn proxy_action(
        &self,
        name: &ProxyName,
        action: ProxyAction,
        now_ms: u64,
    ) -> Result<Proxy> {
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
            if action.role() != Role::Fallback {
                self.shed_users(tx, name, &format!("{action:?}"), now_ms)?;
            } else {
                queue_placement(&self.queue, tx, now_ms)?;
            }
            if action == ProxyAction::Retire {
                let task = NewTask {
                    kind: RETIRE,
                    key: format!("{RETIRE}:manual:{name}:{now_ms}"),
                    payload: json!({ "proxy": name, "reason": "retired by an operator" }),
                    due_ms: now_ms,
                };
                self.queue.enqueue_in(tx, &task, now_ms)?;
            }
            Ok(())
        })
        .await
    }

    /// Gives proxy `name` a role for good (an operator's decision): it is pinned on the live
    /// record and kept in its credential, so the proxy has it again when it comes back. A
    /// proxy that stops being a fallback sheds its users (they are owed new fallbacks).
    pub async fn set_proxy_role(&self, name: &ProxyName, role: Role, now_ms: u64) -> Result<Proxy> {
        self.change_role(name.as_str(), role, now_ms, |tx, name| {
            crate::registry::credentials::set_role_in(tx, name, role)?;
            if role != Role::Fallback {
                self.shed_users(tx, name, &format!("role-{}", role.name()), now_ms)?;
            } else {
                queue_placement(&self.queue, tx, now_ms)?;
            }
            Ok(())
        })
        .await
    }

    /// Pins `role` on proxy `name` and does `also` in the same transaction; durable when it
    /// returns, with the queue and the config long-polls woken. Returns the proxy as it is now.
    async fn change_role(
        &self,
        name: &str,
        role: Role,
        now_ms: u64,
        also: impl Fn(&Tx, &str) -> TxResult<()>,
    ) -> Result<Proxy> {
        let proxy = self.store.transaction(|tx| {
            let Some(before) = tx.get::<Proxy>(TreeId::Proxies, name)? else {
                return Ok(None);
            };
            set_role(tx, name, role, now_ms)?;
            also(tx, name)?;
            let after = tx.get::<Proxy>(TreeId::Proxies, name)?;
            Ok(after.or(Some(before)))
        })?;
        let Some(proxy) = proxy else {
            return Err(Error::NotFound(format!("proxy {name}")));
        };
        self.index.invalidate();
        self.store.durable().await?;
        self.queue.wake();
        self.notifier.notify_all();
        Ok(proxy)
    }

    /// Queues the task that moves the users off proxy `name` (`why` keys it).
    fn shed_users(&self, tx: &Tx, name: &str, why: &str, now_ms: u64) -> TxResult<()> {
        let task = NewTask {
            kind: PROXY_CHANGED,
            key: format!("{PROXY_CHANGED}:{name}:{why}:{now_ms}"),
            payload: json!({ "proxy": name }),
            due_ms: now_ms,
        };
        self.queue.enqueue_in(tx, &task, now_ms)?;
        Ok(())
    }
}
