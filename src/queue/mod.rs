//! The durable task queue: every background effect (VCL reloads, mirror writes, mail) is a
//! task in sled, enqueued in the same transaction as the change that causes it.
//!
//! - enqueue is idempotent by key: the same key twice is one task (for as long as finished
//!   tasks are retained);
//! - a worker leases a task for `queue_lease_secs`; if it dies, the lease runs out and the task
//!   is handed out again (the schedule index holds the lease's end as the task's next due time);
//! - a failure is retried with exponential backoff; after `max_attempts` tries it is dead;
//! - an operator can list dead letters and retry them.

pub mod backoff;
pub mod check;
mod kind;
mod ops;
pub mod worker;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::store::Store;

pub use kind::TaskKind;
pub use ops::{QueueCounts, SCHEDULED_AFTER_MS};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Ready,
    Leased,
    Done,
    Dead,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Task {
    pub id: u64,
    pub kind: String,
    pub key: String,
    /// JSON text (bincode cannot store self-describing values).
    pub payload: String,
    pub state: TaskState,
    /// Leases handed out so far (a lease that ran out counts as a try).
    pub attempts: u32,
    pub max_attempts: u32,
    /// When the task is next due; while leased, when the lease runs out.
    pub due_ms: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub last_error: Option<String>,
}

/// A task to enqueue. `key` makes the enqueue idempotent.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub kind: TaskKind,
    pub key: String,
    pub payload: serde_json::Value,
    pub due_ms: u64,
}

impl NewTask {
    /// One task of `kind` for everything that asks for it within the same second, run when
    /// that second ends: a burst (a thousand enrolments, a proxy changing its capacity at
    /// every heartbeat) queues one task a second, and none asked for is missed, because the
    /// task runs after every request its key covers.
    pub fn per_second(kind: TaskKind, now_ms: u64) -> NewTask {
        let second_end = (now_ms / 1000 + 1) * 1000;
        NewTask {
            kind,
            key: format!("{kind}:{second_end}"),
            payload: serde_json::json!({}),
            due_ms: second_end,
        }
    }
}

/// Queue settings taken from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct QueuePolicy {
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub lease_ms: u64,
    pub done_retention_ms: u64,
}

/// The queue as the rest of the app sees it: the store, the policy and a bell that wakes idle
/// workers when something is enqueued.
#[derive(Clone)]
pub struct Queue {
    store: Store,
    policy: QueuePolicy,
    bell: Arc<Notify>,
}

impl Queue {
    pub fn new(store: Store, policy: QueuePolicy) -> Queue {
        Queue {
            store,
            policy,
            bell: Arc::new(Notify::new()),
        }
    }

    pub fn policy(&self) -> QueuePolicy {
        self.policy
    }

    /// Call after committing a transaction that enqueued tasks.
    pub fn wake(&self) {
        self.bell.notify_waiters();
    }
}
