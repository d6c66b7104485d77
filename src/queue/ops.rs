//! Queue operations on the store. Each state change is one transaction over the task record,
//! its idempotency key and its schedule entry, so the three never disagree.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{backoff, NewTask, Queue, Task, TaskState};
use crate::error::{Error, Result};
use crate::store::codec::{key_u64, pair_key, u64_key};
use crate::store::{abort, TreeId, Tx, TxResult};

const NEXT_ID: &str = "queue.next_id";
/// A task not yet tried and due further ahead than this is `scheduled`, not `ready`: work
/// debounced to the next second and retries waiting out their backoff are work waiting; an
/// invitation's expiry days away is not.
pub const SCHEDULED_AFTER_MS: u64 = 60_000;

#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct QueueCounts {
    /// Due now (or overdue), waiting for a worker.
    pub ready: u64,
    /// Ready, first run more than `SCHEDULED_AFTER_MS` away (an invitation's expiry): not
    /// work waiting, so not in `ready`.
    pub scheduled: u64,
    pub leased: u64,
    pub done: u64,
    pub dead: u64,
    /// kind -> state -> count
    pub by_kind: BTreeMap<String, BTreeMap<String, u64>>,
}

enum LeaseOutcome {
    Leased(Box<Task>),
    /// Another worker took the entry first, or the task ran out of tries: look again.
    LookAgain,
}

impl Queue {
    /// Enqueues inside the caller's transaction. Returns the task id; if a task with the same
    /// key exists (pending, running, finished or dead), that task's id and nothing new.
    pub fn enqueue_in(&self, tx: &Tx, task: &NewTask, now_ms: u64) -> TxResult<u64> {
        if let Some(existing) = tx.get::<u64>(TreeId::TaskKeys, &task.key)? {
            return Ok(existing);
        }
        let id = tx.next(NEXT_ID)?;
        let record = Task {
            id,
            kind: task.kind.to_string(),
            key: task.key.clone(),
            payload: task.payload.to_string(),
            state: TaskState::Ready,
            attempts: 0,
            max_attempts: self.policy.max_attempts,
            due_ms: task.due_ms,
            created_ms: now_ms,
            updated_ms: now_ms,
            last_error: None,
        };
        tx.put(TreeId::Tasks, u64_key(id), &record)?;
        tx.put(TreeId::TaskKeys, &task.key, &id)?;
        tx.put_marker(TreeId::TaskSchedule, pair_key(task.due_ms, id))?;
        Ok(id)
    }

    /// Enqueues in a transaction of its own, durably.
    pub async fn enqueue(&self, task: NewTask, now_ms: u64) -> Result<u64> {
        let id = self
            .store
            .transaction(|tx| self.enqueue_in(tx, &task, now_ms))?;
        self.store.durable().await?;
        self.wake();
        Ok(id)
    }

    /// Hands out the task due first, if one is due at `now_ms`.
    pub fn lease(&self, now_ms: u64) -> Result<Option<Task>> {
        loop {
            let Some(entry) = self.store.first_key(TreeId::TaskSchedule)? else {
                return Ok(None);
            };
            let (Some(due), Some(id)) = (key_u64(&entry), key_u64(&entry[8..])) else {
                return Err(Error::internal("malformed task schedule key"));
            };
            if due > now_ms {
                return Ok(None);
            }
            let outcome = self
                .store
                .transaction(|tx| self.lease_in(tx, &entry, id, now_ms))?;
            if let LeaseOutcome::Leased(task) = outcome {
                return Ok(Some(*task));
            }
        }
    }

    fn lease_in(&self, tx: &Tx, entry: &[u8], id: u64, now_ms: u64) -> TxResult<LeaseOutcome> {
        if !tx.remove(TreeId::TaskSchedule, entry)? {
            return Ok(LeaseOutcome::LookAgain);
        }
        let Some(mut task) = tx.get::<Task>(TreeId::Tasks, u64_key(id))? else {
            // An index entry without its task is dropped (it was removed above).
            return Ok(LeaseOutcome::LookAgain);
        };
        task.updated_ms = now_ms;
        if task.attempts >= task.max_attempts {
            // Its last lease ran out: the worker died every time. Stop handing it out.
            task.state = TaskState::Dead;
            task.last_error
                .get_or_insert_with(|| "lease ran out on every try (worker died?)".into());
            tx.put(TreeId::Tasks, u64_key(id), &task)?;
            return Ok(LeaseOutcome::LookAgain);
        }
        task.attempts += 1;
        task.state = TaskState::Leased;
        task.due_ms = now_ms + self.policy.lease_ms;
        tx.put(TreeId::Tasks, u64_key(id), &task)?;
        tx.put_marker(TreeId::TaskSchedule, pair_key(task.due_ms, id))?;
        Ok(LeaseOutcome::Leased(Box::new(task)))
    }

    /// The current record of a leased task if `lease` is still the latest lease of it.
    fn still_leased(tx: &Tx, lease: &Task) -> TxResult<Option<Task>> {
        let current = tx.get::<Task>(TreeId::Tasks, u64_key(lease.id))?;
        Ok(current.filter(|t| t.state == TaskState::Leased && t.attempts == lease.attempts))
    }

    /// Marks a leased task done. False if the lease had run out and the task moved on.
    pub fn ack(&self, lease: &Task, now_ms: u64) -> Result<bool> {
        self.store.transaction(|tx| {
            let Some(mut task) = Self::still_leased(tx, lease)? else {
                return Ok(false);
            };
            tx.remove(TreeId::TaskSchedule, pair_key(task.due_ms, task.id))?;
            task.state = TaskState::Done;
            task.due_ms = now_ms;
            task.updated_ms = now_ms;
            tx.put(TreeId::Tasks, u64_key(task.id), &task)?;
            Ok(true)
        })
    }

    /// Records a failed try: retried after a backoff, or dead after the last try.
    pub fn fail(&self, lease: &Task, error: &str, now_ms: u64) -> Result<bool> {
        self.store.transaction(|tx| {
            let Some(mut task) = Self::still_leased(tx, lease)? else {
                return Ok(false);
            };
            tx.remove(TreeId::TaskSchedule, pair_key(task.due_ms, task.id))?;
            task.last_error = Some(error.to_string());
            task.updated_ms = now_ms;
            if task.attempts >= task.max_attempts {
                task.state = TaskState::Dead;
            } else {
                task.state = TaskState::Ready;
                task.due_ms =
                    now_ms + backoff::delay_ms(self.policy.backoff_base_ms, task.attempts);
                tx.put_marker(TreeId::TaskSchedule, pair_key(task.due_ms, task.id))?;
            }
            tx.put(TreeId::Tasks, u64_key(task.id), &task)?;
            Ok(true)
        })
    }

    /// At start, before any worker runs: hands out again, now, every task a previous run of
    /// the server leased and never finished (it was killed, or lost power). Only one process
    /// opens the store (sled locks it), so every lease found here is an orphan; waiting for
    /// each to run out (`queue_lease_secs`) only delayed the work after a crash. The try
    /// counts: a task that kills the server every time still ends a dead letter.
    pub fn release_orphaned_leases(&self, now_ms: u64) -> Result<u64> {
        let mut leased = Vec::new();
        for entry in self.store.keys_from(TreeId::TaskSchedule, []) {
            let entry = entry?;
            let Some(id) = key_u64(entry.get(8..).unwrap_or_default()) else {
                return Err(Error::internal("malformed task schedule key"));
            };
            if self
                .get(id)?
                .is_some_and(|task| task.state == TaskState::Leased)
            {
                leased.push(id);
            }
        }
        let mut released = 0;
        for id in leased {
            let done = self.store.transaction(|tx| {
                let Some(mut task) = tx.get::<Task>(TreeId::Tasks, u64_key(id))? else {
                    return Ok(false);
                };
                if task.state != TaskState::Leased {
                    return Ok(false);
                }
                tx.remove(TreeId::TaskSchedule, pair_key(task.due_ms, id))?;
                task.state = TaskState::Ready;
                task.last_error = Some("the server stopped while running it".into());
                task.due_ms = now_ms;
                task.updated_ms = now_ms;
                tx.put(TreeId::Tasks, u64_key(id), &task)?;
                tx.put_marker(TreeId::TaskSchedule, pair_key(now_ms, id))?;
                Ok(true)
            })?;
            released += u64::from(done);
        }
        Ok(released)
    }

    /// Puts a dead letter back in the queue with a fresh set of tries.
    pub async fn retry_dead(&self, id: u64, now_ms: u64) -> Result<Task> {
        let task = self.store.transaction(|tx| {
            let Some(mut task) = tx.get::<Task>(TreeId::Tasks, u64_key(id))? else {
                return abort(Error::NotFound(format!("task {id}")));
            };
            if task.state != TaskState::Dead {
                return abort(Error::conflict(
                    "task_not_dead",
                    format!("task {id} is not a dead letter"),
                ));
            }
            task.state = TaskState::Ready;
            task.attempts = 0;
            task.due_ms = now_ms;
            task.updated_ms = now_ms;
            tx.put(TreeId::Tasks, u64_key(id), &task)?;
            tx.put_marker(TreeId::TaskSchedule, pair_key(now_ms, id))?;
            Ok(task)
        })?;
        self.store.durable().await?;
        self.wake();
        Ok(task)
    }

    pub fn get(&self, id: u64) -> Result<Option<Task>> {
        self.store.get(TreeId::Tasks, u64_key(id))
    }

    /// The task enqueued under `key`, while it is kept.
    pub fn by_key(&self, key: &str) -> Result<Option<Task>> {
        match self.store.get::<u64>(TreeId::TaskKeys, key)? {
            Some(id) => self.get(id),
            None => Ok(None),
        }
    }

    /// When the earliest live task is due (or its lease runs out).
    pub fn next_due_ms(&self) -> Result<Option<u64>> {
        Ok(self
            .store
            .first_key(TreeId::TaskSchedule)?
            .and_then(|k| key_u64(&k)))
    }

    /// Tasks by state (and by kind) at `now_ms`.
    pub fn counts(&self, now_ms: u64) -> Result<QueueCounts> {
        let mut counts = QueueCounts::default();
        for task in self.store.values::<Task>(TreeId::Tasks) {
            let task = task?;
            let (total, label) = match task.state {
                TaskState::Ready
                    if task.attempts == 0 && task.due_ms > now_ms + SCHEDULED_AFTER_MS =>
                {
                    (&mut counts.scheduled, "scheduled")
                }
                TaskState::Ready => (&mut counts.ready, "ready"),
                TaskState::Leased => (&mut counts.leased, "leased"),
                TaskState::Done => (&mut counts.done, "done"),
                TaskState::Dead => (&mut counts.dead, "dead"),
            };
            *total += 1;
            *counts
                .by_kind
                .entry(task.kind)
                .or_default()
                .entry(label.to_string())
                .or_default() += 1;
        }
        Ok(counts)
    }

    pub fn list(&self, state: TaskState, limit: usize) -> Result<Vec<Task>> {
        let mut found = Vec::new();
        for task in self.store.values::<Task>(TreeId::Tasks) {
            let task = task?;
            if task.state == state {
                found.push(task);
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Forgets finished tasks (and their idempotency keys) older than the retention.
    pub fn purge_done(&self, now_ms: u64) -> Result<usize> {
        let cutoff = now_ms.saturating_sub(self.policy.done_retention_ms);
        let old: Vec<Task> = self
            .store
            .values::<Task>(TreeId::Tasks)
            .filter_map(|t| t.ok())
            .filter(|t| t.state == TaskState::Done && t.due_ms < cutoff)
            .collect();
        for task in &old {
            self.store.transaction(|tx| {
                tx.remove(TreeId::Tasks, u64_key(task.id))?;
                tx.remove(TreeId::TaskKeys, &task.key)?;
                Ok(())
            })?;
        }
        Ok(old.len())
    }
}
