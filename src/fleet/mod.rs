//! Users, the trust graph, invitations, fallback assignment and the rebalancer (the
//! fallback-proxy proposal).

pub mod blocked;
pub mod branch;
pub mod exposure;
pub mod index;
pub mod invitations;
pub mod invitees;
pub mod links;
pub mod model;
pub mod pending;
pub mod placement;
pub mod policy;
pub mod proxy_actions;
pub mod rebalance;
pub mod suspicion;
pub mod token_prefixes;
pub mod trust;
pub mod users;

use crate::queue::TaskKind;
use std::process::Stdio;

use crate::config::{AssignmentPolicy, Config};
use crate::distribution::notify::ConfigNotifier;
use crate::error::Result;
use crate::queue::Queue;
use crate::registry::Registry;
use crate::store::combiner::Combiner;
use crate::store::{Store, TreeId, Tx, TxResult};
use links::set_proxies;
use model::{ProxyName, User};

/// Task: a proxy left or changed address; its users' configs follow.
pub const PROXY_CHANGED: TaskKind = TaskKind::ProxyChanged;
/// Task: run the provisioning hook.
pub const PROVISION: TaskKind = TaskKind::Provision;
/// Task: run the retire hook for a drained proxy.
pub const RETIRE: TaskKind = TaskKind::Retire;

/// Users changed per transaction when a proxy's users are all touched.
const USERS_PER_TRANSACTION: usize = 500;

#[derive(Debug, Clone)]
pub struct FleetSettings {
    pub policy: AssignmentPolicy,
    pub fallbacks_per_user: usize,
    pub max_clients: u32,
    pub provision_command: Option<String>,
    pub retire_command: Option<String>,
    pub invitations: invitations::InvitationRules,
    /// How a block's blame is shared, and past what a user is quarantined (`suspicion.rs`).
    pub blame: suspicion::BlameRules,
    pub trust: trust::TrustRules,
}

impl FleetSettings {
    pub fn from_config(config: &Config) -> FleetSettings {
        FleetSettings {
            policy: config.assignment_policy,
            fallbacks_per_user: config.fallbacks_per_user,
            max_clients: config.max_clients,
            provision_command: config.provision_command.clone(),
            retire_command: config.retire_command.clone(),
            invitations: invitations::InvitationRules {
                ttl_ms: config.invitation_ttl_secs.saturating_mul(1000),
                period_ms: config.invitation_period_secs.saturating_mul(1000),
                per_period: config.invitations_per_period,
                pro_per_period: config.pro_invitations_per_period,
            },
            blame: suspicion::BlameRules {
                threshold: config.suspicion_threshold,
                recent_ms: config.blame_recent_secs.saturating_mul(1000),
                old_weight: config.blame_old_weight,
            },
            trust: config.trust.clone(),
        }
    }
}

/// What other capabilities release when an account is disabled, in the disabling transaction
/// (billing: the account's Pro proxies). The fleet calls it without knowing who listens.
pub type DisableHook = std::sync::Arc<dyn Fn(&Tx<'_>, &mut User) -> TxResult<()> + Send + Sync>;

#[derive(Clone)]
pub struct Fleet {
    pub store: Store,
    pub queue: Queue,
    pub registry: Registry,
    pub notifier: ConfigNotifier,
    pub settings: FleetSettings,
    /// One rebalance at a time (periodic and manual runs).
    pub rebalancing: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Applied moves the proxies have not reported yet (`rebalance::ledger`).
    pub moves: std::sync::Arc<rebalance::ledger::MoveLedger>,
    /// The fallback proxies new users are placed on, in memory (`index.rs`).
    pub index: std::sync::Arc<index::CandidateIndex>,
    new_users: users::NewUsers,
    /// Sign-ups sharing transactions (`users::SIGN_UPS_PER_TRANSACTION`).
    sign_ups: Combiner<users::SignUp, users::SignUpOutcome>,
    on_disable: DisableHook,
    /// Derives invitees' tokens from their codes (`pending.rs`).
    invitee_secret: pending::InviteeSecret,
    /// The proxies blocked per country, which placement avoids (`blocked.rs`).
    pub blocked: crate::distribution::blocked::BlockedSet,
}

impl Fleet {
    /// Must run inside a tokio runtime (it starts the sign-up combiner).
    pub fn new(
        store: Store,
        queue: Queue,
        registry: Registry,
        notifier: ConfigNotifier,
        settings: FleetSettings,
        on_disable: DisableHook,
        invitee_secret: pending::InviteeSecret,
    ) -> Fleet {
        let new_users = users::NewUsers {
            queue: queue.clone(),
            fallbacks_per_user: settings.fallbacks_per_user,
            trust: settings.trust.clone(),
        };
        Fleet {
            sign_ups: new_users.clone().combiner(store.clone()),
            new_users,
            on_disable,
            invitee_secret,
            blocked: Default::default(),
            store,
            queue,
            registry,
            notifier,
            settings,
            rebalancing: Default::default(),
            moves: Default::default(),
            index: Default::default(),
        }
    }

    /// The `fleet.proxy_changed` task: if the proxy is gone or drained, its users lose it (and are owed a
    /// new fallback); if it moved, their config version changes.
    /// Returns the proxy's name, for the other capabilities that follow it (the Pro tier).
    pub async fn proxy_changed(&self, payload: &str) -> std::result::Result<String, String> {
        let name = serde_json::from_str::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v["proxy"].as_str().map(String::from))
            .ok_or_else(|| format!("bad payload {payload}"))?;
        self.follow_proxy(&name, crate::clock::now_ms())
            .await
            .map_err(|e| e.to_string())?;
        Ok(name)
    }

    async fn follow_proxy(&self, name: &str, now_ms: u64) -> Result<()> {
        // A proxy that is no longer a fallback (drained to standby, or made a public gateway)
        // carries no one's private fallback: its users lose it like a proxy that left.
        let proxy = self
            .store
            .get::<crate::registry::Proxy>(TreeId::Proxies, name)?;
        let gone = proxy
            .as_ref()
            .is_none_or(|p| p.role != crate::registry::Role::Fallback);
        let why = match proxy.map(|p| p.role) {
            None => format!("proxy {name} left"),
            Some(crate::registry::Role::Standby | crate::registry::Role::Drained) => {
                format!("proxy {name} was drained")
            }
            Some(crate::registry::Role::Retired) => format!("proxy {name} was retired"),
            Some(role) => format!("proxy {name} became a {} proxy", role.name()),
        };
        let users = links::users_of(&self.store, name)?;
        for chunk in users.chunks(USERS_PER_TRANSACTION) {
            self.store.transaction(|tx| {
                for id in chunk {
                    let Some(mut user) = tx.get::<User>(TreeId::Users, id.key())? else {
                        continue;
                    };
                    if gone {
                        let kept: Vec<ProxyName> = user
                            .proxies
                            .iter()
                            .filter(|p| *p != name)
                            .cloned()
                            .collect();
                        set_proxies(tx, &mut user, kept, &why, now_ms)?;
                        tx.put(TreeId::NeedsFallback, id.key(), &now_ms)?;
                    } else {
                        user.config_version += 1;
                        users::save_user(tx, &user, now_ms)?;
                    }
                }
                Ok(())
            })?;
            self.store.durable().await?;
            self.notifier.notify(chunk);
        }
        // Free subsets of any user may have shown it too.
        self.notifier.notify_all();
        // Its users wait for another proxy: those with room take them now.
        self.place_unplaced(now_ms).await?;
        Ok(())
    }

    /// Runs an operator's hook command with `sh -c`, with `env` added. Ok when it exits 0.
    pub async fn run_hook(command: &str, env: &[(&str, &str)]) -> std::result::Result<(), String> {
        let mut child = tokio::process::Command::new("sh");
        child
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            child.env(key, value);
        }
        let output = child.output().await.map_err(|e| format!("hook: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(format!(
                "hook exited with {}: {}",
                output.status,
                stderr.trim()
            ))
        }
    }

    /// The `fleet.provision` and `fleet.retire` tasks.
    pub async fn hook_task(
        &self,
        kind: TaskKind,
        payload: &str,
    ) -> std::result::Result<(), String> {
        let payload: serde_json::Value =
            serde_json::from_str(payload).map_err(|e| format!("bad payload: {e}"))?;
        let reason = payload["reason"].as_str().unwrap_or_default();
        match kind {
            TaskKind::Provision => match &self.settings.provision_command {
                Some(command) => Self::run_hook(command, &[("PROXYFLEET_REASON", reason)]).await,
                None => Ok(()), // nothing configured: the plan records the need for the operator
            },
            _ => {
                let proxy = payload["proxy"].as_str().unwrap_or_default();
                match &self.settings.retire_command {
                    Some(command) => {
                        Self::run_hook(
                            command,
                            &[("PROXYFLEET_PROXY", proxy), ("PROXYFLEET_REASON", reason)],
                        )
                        .await
                    }
                    None => Ok(()),
                }
            }
        }
    }
}
