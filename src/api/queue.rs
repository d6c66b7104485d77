//! Admin view of the queue: counts, dead letters, one task, retry.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::error::Error;
use crate::http::{json, reject};
use crate::queue::TaskState;

type Route = warp::reply::Response;

#[derive(Serialize)]
struct DeadLetters {
    tasks: Vec<crate::queue::Task>,
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

pub fn routes(
    state: Arc<AppState>,
) -> (
    super::Table,
    impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone,
) {
    let base = warp::path!("api" / "v1" / "admin" / "queue" / ..).and(admin(&state));
    let counts = base
        .clone()
        .and(warp::path::end())
        .and(warp::get())
        .and(with_state(&state))
        .and_then(queue_counts);
    let dead = base
        .clone()
        .and(warp::path!("dead"))
        .and(warp::get())
        .and(warp::query::<ListQuery>())
        .and(with_state(&state))
        .and_then(dead_letters);
    let one = base
        .clone()
        .and(warp::path!("tasks" / u64))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(one_task);
    let retry = base
        .and(warp::path!("tasks" / u64 / "retry"))
        .and(warp::post())
        .and(with_state(&state))
        .and_then(retry_task);
    endpoints! {
        GET "/api/v1/admin/queue" => counts,
        GET "/api/v1/admin/queue/dead" => dead,
        GET "/api/v1/admin/queue/tasks/{id}" => one,
        POST "/api/v1/admin/queue/tasks/{id}/retry" => retry,
    }
}

async fn queue_counts(state: Arc<AppState>) -> Result<Route, Rejection> {
    // The workers' clock (not the API's, which a test may move) decides what is due.
    let counts = state.queue.counts(state.clock.now_ms()).map_err(reject)?;
    Ok(json(StatusCode::OK, &counts))
}

async fn dead_letters(q: ListQuery, state: Arc<AppState>) -> Result<Route, Rejection> {
    let limit = q.limit.unwrap_or(100).min(1000);
    let tasks = state.queue.list(TaskState::Dead, limit).map_err(reject)?;
    Ok(json(StatusCode::OK, &DeadLetters { tasks }))
}

async fn one_task(id: u64, state: Arc<AppState>) -> Result<Route, Rejection> {
    match state.queue.get(id).map_err(reject)? {
        Some(task) => Ok(json(StatusCode::OK, &task)),
        None => Err(reject(Error::NotFound(format!("task {id}")))),
    }
}

async fn retry_task(id: u64, state: Arc<AppState>) -> Result<Route, Rejection> {
    let task = state
        .queue
        .retry_dead(id, state.clock.now_ms())
        .await
        .map_err(reject)?;
    Ok(json(StatusCode::OK, &task))
}
