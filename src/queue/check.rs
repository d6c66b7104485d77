//! The queue's invariants, read without changing anything (`proxyfleet check`): every task
//! decodes, has a JSON payload and a kind some worker handles; the key index and the schedule
//! agree with the tasks (a pending task is scheduled exactly at its due time, a finished one
//! is not scheduled at all).

use std::collections::HashSet;

use super::{Task, TaskState};
use crate::error::Result;
use crate::store::codec::{key_u64, pair_key};
use crate::store::{Store, TreeId};

pub fn check(store: &Store) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut ids = HashSet::new();
    for item in store.scan_from::<Task>(TreeId::Tasks, []) {
        let task = match item {
            Ok((_, task)) => task,
            Err(e) => {
                problems.push(format!("a task record does not decode: {e}"));
                continue;
            }
        };
        ids.insert(task.id);
        let id = task.id;
        if serde_json::from_str::<serde_json::Value>(&task.payload).is_err() {
            problems.push(format!("task {id}: its payload is not JSON"));
        }
        if super::TaskKind::parse(&task.kind).is_none() {
            problems.push(format!("task {id}: no worker handles kind `{}`", task.kind));
        }
        if store.get::<u64>(TreeId::TaskKeys, &task.key)? != Some(id) {
            problems.push(format!(
                "task {id}: its key `{}` is not indexed to it",
                task.key
            ));
        }
        let scheduled = store.contains(TreeId::TaskSchedule, pair_key(task.due_ms, id))?;
        let pending = matches!(task.state, TaskState::Ready | TaskState::Leased);
        if pending && !scheduled {
            problems.push(format!("task {id} is {:?} but not scheduled", task.state));
        }
        if !pending && scheduled {
            problems.push(format!("task {id} is {:?} but still scheduled", task.state));
        }
    }
    for key in store.keys_from(TreeId::TaskSchedule, []) {
        let key = key?;
        let id = key.get(8..).and_then(key_u64);
        if !id.is_some_and(|id| ids.contains(&id)) {
            problems.push(format!("a schedule entry names no task ({id:?})"));
        }
    }
    for item in store.scan_from::<u64>(TreeId::TaskKeys, []) {
        let (key, id) = item?;
        if !ids.contains(&id) {
            let key = String::from_utf8_lossy(&key);
            problems.push(format!(
                "the key `{key}` is indexed to task {id}, which does not exist"
            ));
        }
    }
    Ok(problems)
}
