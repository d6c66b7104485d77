//! The HTTP API: the shared state, one route module per capability, and the root router that
//! merges them and makes every error JSON. Nothing below this layer knows about HTTP routes or
//! about `AppState`; handlers call the capabilities' services (docs/ARCHITECTURE.md).

/// A route table: each endpoint's method and path template, as `assets/openapi.json` writes
/// them, beside the filter that serves it. Expands to `(Table, filter)`, the filter trying the
/// endpoints in the order written. The router is built only from these tables, so the table is
/// every route there is (tests/api/openapi.rs compares it with the OpenAPI file, both ways).
///
/// Each endpoint is boxed before it joins the chain. Unboxed, every module's chain was one
/// type nested hundreds deep, and rustc spent most of the crate's build on it: 207 s for the
/// library (coherence 76 s, monomorphization 114 s, `-Ztime-passes`), 79 s boxed. A request
/// pays one boxed future per endpoint tried; the hot routes come first. The filters most
/// endpoints share (the client's address, bearer lookups, `limited`, the admin guard, bodies)
/// are boxed where they are made, for the same reason: inlined into each endpoint's type they
/// had grown the library's monomorphisation back to 119.6 s; boxed, it took 58 to 66 s.
/// A filter that serves several templates lists them with `|`, several methods in brackets:
/// `[GET POST] "/json" => recommend`.
macro_rules! endpoints {
    ($( $methods:tt $($template:literal)|+ => $filter:expr ),+ $(,)?) => {{
        let mut table: $crate::api::Table = Vec::new();
        $( $( table.extend(endpoints!(@rows $methods $template)); )+ )+
        (table, endpoints!(@or $($filter),+))
    }};
    (@rows [$($method:ident)+] $template:literal) => {
        [$( (warp::http::Method::$method, $template) ),+]
    };
    (@rows $method:ident $template:literal) => { [(warp::http::Method::$method, $template)] };
    (@or $only:expr) => { warp::Filter::boxed($only) };
    // Nested to the right: the first endpoint's answer leaves through one `or`, the last's
    // through all of them (see `first_match`).
    (@or $first:expr, $($rest:expr),+) => {
        warp::Filter::boxed($first).or(endpoints!(@or $($rest),+)).unify()
    };
}

pub mod admin;
pub mod backup;
pub mod billing;
pub mod blocking;
pub mod distribution;
pub mod edge;
pub mod filters;
pub mod fleet;
pub mod gateways;
pub mod invitations;
pub mod mail;
pub mod metrics;
pub mod mirror;
pub mod queue;
pub mod registry;
mod state;
pub mod store;

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::Filter;

use crate::http::{json, recover};
pub use state::{AppState, Tokens};

/// Every endpoint's method and path template, in the order the router tries them.
pub type Table = Vec<(warp::http::Method, &'static str)>;

/// Every endpoint, for people and for tools (tests/api/openapi.rs keeps it true to the routes).
pub const OPENAPI: &str = include_str!("../../assets/openapi.json");

/// `GET /healthz`: `ok`, or why the server cannot take writes.
#[derive(serde::Serialize)]
struct Health {
    status: &'static str,
    storage: crate::store::DiskStatus,
}

/// Adds a module's endpoints to `table` and boxes its filter.
fn boxed<F>(table: &mut Table, (rows, filter): (Table, F)) -> BoxedFilter<(warp::reply::Response,)>
where
    F: Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
        + Clone
        + Send
        + Sync
        + 'static,
{
    table.extend(rows);
    filter.boxed()
}

/// The first of `filters` (in order) that serves the request. Nested to the right,
/// `a.or(b.or(c))`: an answer is moved out through every `or` that holds its filter, and
/// nested to the left (`a.or(b).or(c)`) the first filter, the hottest, was inside them all.
/// Moving the answers up those chains was 7% of a heartbeat's CPU (`perf`, memmove under
/// warp's `EitherFuture`).
fn first_match(
    filters: Vec<BoxedFilter<(warp::reply::Response,)>>,
) -> BoxedFilter<(warp::reply::Response,)> {
    filters
        .into_iter()
        .rev()
        .reduce(|rest, filter| filter.or(rest).unify().boxed())
        .expect("the router has route modules")
}

/// Every route, and the table of every endpoint it serves; `over_tls` when they answer on the
/// HTTPS listener.
pub fn routes(
    state: Arc<AppState>,
    over_tls: bool,
) -> (Table, BoxedFilter<(warp::reply::Response,)>) {
    // A monitor's probe: 503 while writes are refused for lack of disk, or after the engine
    // failed at a full disk (that one needs a restart).
    let storage = state.clone();
    let health = warp::path!("healthz").and(warp::get()).map(move || {
        let disk = storage.store.disk_status();
        let (status, word) = if disk.storage_failed {
            (StatusCode::SERVICE_UNAVAILABLE, "restart_needed")
        } else if disk.writes_refused {
            (StatusCode::SERVICE_UNAVAILABLE, "disk_full")
        } else {
            (StatusCode::OK, "ok")
        };
        json(
            status,
            &Health {
                status: word,
                storage: disk,
            },
        )
    });
    let openapi = warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .map(|| {
            warp::http::Response::builder()
                .header(warp::http::header::CONTENT_TYPE, "application/json")
                .header(warp::http::header::CACHE_CONTROL, "public, max-age=3600")
                .body(warp::hyper::Body::from(OPENAPI))
                .unwrap_or_default()
        });
    // The hot paths (config reads, heartbeats) come first: warp tries routes in order. Each
    // module's filters are boxed once, so a request pays one boxed attempt per module at most.
    let mut table = Table::new();
    let t = &mut table;
    let modules = vec![
        boxed(t, distribution::routes(state.clone())),
        boxed(t, registry::routes(state.clone())),
        boxed(t, gateways::routes(state.clone())),
        boxed(
            t,
            endpoints! {
                GET "/healthz" => health,
                GET "/api/v1/openapi.json" => openapi,
            },
        ),
        boxed(t, queue::routes(state.clone())),
        boxed(t, billing::routes(state.clone())),
        boxed(t, mirror::routes(state.clone())),
        boxed(t, metrics::routes(state.clone())),
        boxed(t, backup::routes(state.clone())),
        boxed(t, store::routes(state.clone())),
        boxed(t, mail::routes(state.clone())),
        boxed(t, fleet::routes(state.clone())),
        boxed(t, invitations::routes(state.clone())),
        boxed(t, blocking::routes(state.clone())),
        boxed(t, admin::routes(state.clone(), over_tls)),
    ];
    let api = first_match(modules).recover(recover).unify().boxed();
    // Every mutating admin call is recorded in the audit trail once answered; every answer is
    // counted by route template (never the raw path: it may hold a code or a user id).
    let observed = state.clone();
    let served = admin::layer::audited(state, api)
        .with(warp::log::custom(move |info| {
            observed.metrics.observe_request(
                info.method().as_str(),
                info.path(),
                info.status().as_str(),
                info.elapsed(),
            )
        }))
        .map(warp::Reply::into_response)
        // The audit layer's own rejections, if any, get the JSON error shape too.
        .recover(recover)
        .unify()
        .boxed();
    (table, served)
}
