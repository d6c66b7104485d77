//! Admin view of the queue: counts, dead letters, one task, retry.

use std::sync::Arc;

use serde::Deserialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::clock::now_ms;
use crate::error::Error;
use crate::http::{json, reject};
use crate::queue::TaskState;

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let base = warp::path!("api" / "v1" / "admin" / "queue" / ..).and(admin(&state));
    let counts = base
        .clone()
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state(&state))
        .and_then(|state: Arc<AppState>| async move {
            let counts = state.queue.counts().map_err(reject)?;
            Ok::<_, Rejection>(json(StatusCode::OK, &counts))
        });
    let dead = base
        .clone()
        .and(warp::path!("dead"))
        .and(warp::get())
        .and(warp::query::<ListQuery>())
        .and(with_state(&state))
        .and_then(|q: ListQuery, state: Arc<AppState>| async move {
            let limit = q.limit.unwrap_or(100).min(1000);
            let tasks = state.queue.list(TaskState::Dead, limit).map_err(reject)?;
            Ok::<_, Rejection>(json(StatusCode::OK, &serde_json::json!({ "tasks": tasks })))
        });
    let one = base
        .clone()
        .and(warp::path!("tasks" / u64))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(|id: u64, state: Arc<AppState>| async move {
            match state.queue.get(id).map_err(reject)? {
                Some(task) => Ok::<_, Rejection>(json(StatusCode::OK, &task)),
                None => Err(reject(Error::NotFound(format!("task {id}")))),
            }
        });
    let retry = base
        .and(warp::path!("tasks" / u64 / "retry"))
        .and(warp::post())
        .and(with_state(&state))
        .and_then(|id: u64, state: Arc<AppState>| async move {
            let task = state.queue.retry_dead(id, now_ms()).await.map_err(reject)?;
            Ok::<_, Rejection>(json(StatusCode::OK, &task))
        });
    counts.or(dead).unify().or(one).unify().or(retry).unify()
}
