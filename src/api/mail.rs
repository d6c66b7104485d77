//! The mail outbox over HTTP (admin): `GET /api/v1/admin/mail/outbox`, the newest mails with
//! what each is about and whether it went out.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::http::{json, reject};

type Route = warp::reply::Response;

#[derive(Deserialize)]
struct OutboxQuery {
    /// 1 to 500, default 50.
    limit: Option<usize>,
}

#[derive(Serialize)]
struct Outbox {
    mails: Vec<crate::mail::Mail>,
}

pub fn routes(
    state: Arc<AppState>,
) -> (
    super::Table,
    impl Filter<Extract = (Route,), Error = Rejection> + Clone,
) {
    let outbox = warp::path!("api" / "v1" / "admin" / "mail" / "outbox")
        .and(warp::get())
        .and(admin(&state))
        .and(warp::query::<OutboxQuery>())
        .and(with_state(&state))
        .and_then(outbox);
    endpoints! {
        GET "/api/v1/admin/mail/outbox" => outbox,
    }
}

async fn outbox(query: OutboxQuery, state: Arc<AppState>) -> Result<Route, Rejection> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let mails = state.mailer.outbox(limit).map_err(reject)?;
    Ok(json(StatusCode::OK, &Outbox { mails }))
}
