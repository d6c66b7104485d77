//! HTTP: `/register` and `/unregister` for proxies (registry token, form or JSON, as
//! peerdnsreg), and the admin views of the registry and the edge config.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::model::{Proxy, ProxyEvent, ProxyName};
use super::{edge, validate};
use crate::app::AppState;
use crate::clock::now_ms;
use crate::error::Error;
use crate::http::body::{fields, Fields};
use crate::http::rate_limit::{limited, Endpoint};
use crate::http::{admin, json, json_with_etag, registry, reject, with_state};

type Route = warp::reply::Response;

/// A proxy as the API shows it: flat, times in unix seconds.
#[derive(Serialize)]
pub struct ProxyView {
    name: String,
    ip: String,
    port: u16,
    role: super::Role,
    country: Option<String>,
    city: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    capacity: Option<u32>,
    clients: Option<u32>,
    cpu: Option<f64>,
    bandwidth: Option<u64>,
    registered_at: u64,
    last_seen: u64,
    expires_at: u64,
}

impl From<Proxy> for ProxyView {
    fn from(p: Proxy) -> Self {
        ProxyView {
            name: p.name.to_string(),
            ip: p.ip.to_string(),
            port: p.port,
            role: p.role,
            country: p.location.country,
            city: p.location.city,
            lat: p.location.lat,
            lon: p.location.lon,
            capacity: p.capacity,
            clients: p.load.clients,
            cpu: p.load.cpu,
            bandwidth: p.load.bandwidth,
            registered_at: p.registered_ms / 1000,
            last_seen: p.last_seen_ms / 1000,
            expires_at: p.expires_ms / 1000,
        }
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
    before: Option<u64>,
    name: Option<String>,
}

pub fn routes(state: Arc<AppState>) -> impl Filter<Extract = (Route,), Error = Rejection> + Clone {
    let limit = state.config.max_body_bytes;
    let register = warp::path!("register")
        .and(warp::post())
        .and(limited(&state, Endpoint::Register))
        .and(registry(&state))
        .and(fields(limit))
        .and(with_state(&state))
        .and_then(register);
    let unregister = warp::path!("unregister")
        .and(warp::post())
        .and(registry(&state))
        .and(fields(limit))
        .and(with_state(&state))
        .and_then(unregister);

    let admin_base = warp::path("api")
        .and(warp::path("v1"))
        .and(warp::path("admin"))
        .and(admin(&state));
    let list = admin_base
        .clone()
        .and(warp::path!("proxies"))
        .and(warp::get())
        .and(warp::query::<ListQuery>())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_state(&state))
        .and_then(list);
    let one = admin_base
        .clone()
        .and(warp::path!("proxies" / String))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(one);
    let load = admin_base
        .clone()
        .and(warp::path!("proxies" / String / "load"))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(load);
    let events = admin_base
        .clone()
        .and(warp::path!("registry" / "events"))
        .and(warp::get())
        .and(warp::query::<EventsQuery>())
        .and(with_state(&state))
        .and_then(events);
    let vcl = admin_base
        .clone()
        .and(warp::path!("edge" / "varnish.vcl"))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(vcl);
    let edge_status = admin_base
        .and(warp::path!("edge"))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(edge_status);

    register
        .or(unregister)
        .unify()
        .or(list)
        .unify()
        .or(one)
        .unify()
        .or(load)
        .unify()
        .or(events)
        .unify()
        .or(vcl)
        .unify()
        .or(edge_status)
        .unify()
}

async fn register(fields: Fields, state: Arc<AppState>) -> Result<Route, Rejection> {
    let rules = validate::Rules {
        allow_private_ips: state.config.allow_private_ips,
    };
    let registration = validate::registration(&fields, &rules).map_err(reject)?;
    let proxy = state
        .registry
        .register(registration, now_ms())
        .await
        .map_err(reject)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "name": proxy.name,
            "expires_at": proxy.expires_ms / 1000,
            "heartbeat_ttl_secs": state.config.heartbeat_ttl_secs,
        }),
    ))
}

async fn unregister(fields: Fields, state: Arc<AppState>) -> Result<Route, Rejection> {
    let name = validate::name_only(&fields).map_err(reject)?;
    let proxy = state
        .registry
        .unregister(&name, now_ms())
        .await
        .map_err(reject)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "name": proxy.name, "unregistered": true }),
    ))
}

/// Without `limit`, every live proxy (scripts); with it, one page in name order after `after`,
/// filtered on the server by `role` and `q` (a substring of name, ip, country or city).
/// `history=true` adds each proxy's recent client counts (the panel's sparklines).
#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
    q: Option<String>,
    role: Option<String>,
    history: Option<bool>,
}

/// Load samples a list row carries with `history=true`.
const ROW_HISTORY: usize = 30;

async fn list(
    query: ListQuery,
    seen: Option<String>,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let now = now_ms();
    let Some(limit) = query.limit else {
        let proxies = state.registry.list(now).map_err(reject)?;
        let proxies: Vec<ProxyView> = proxies.into_iter().map(ProxyView::from).collect();
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "proxies": proxies }),
        ));
    };
    let role = query
        .role
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(super::Role::parse)
        .transpose()
        .map_err(reject)?;
    let needle = query
        .q
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .to_lowercase();
    let filter = super::service::ListFilter {
        role,
        needle: &needle,
    };
    let page = state
        .registry
        .page(query.after.as_deref(), limit.clamp(1, 500), &filter, now)
        .map_err(reject)?;
    let next_after = page.next_after.clone();
    let rows: Vec<serde_json::Value> = page
        .proxies
        .into_iter()
        .map(|proxy| {
            let history = if query.history.unwrap_or(false) {
                let samples = state.registry.load_history(&proxy.name).unwrap_or_default();
                let start = samples.len().saturating_sub(ROW_HISTORY);
                Some(
                    samples[start..]
                        .iter()
                        .map(|s| s.clients)
                        .collect::<Vec<_>>(),
                )
            } else {
                None
            };
            let mut row = serde_json::to_value(ProxyView::from(proxy)).unwrap_or_default();
            if let (Some(history), Some(map)) = (history, row.as_object_mut()) {
                map.insert("history".into(), serde_json::json!(history));
            }
            row
        })
        .collect();
    let body = serde_json::json!({ "proxies": rows, "next_after": next_after, "matched_total": page.matched_total });
    Ok(json_with_etag(&body, seen.as_deref()))
}

async fn one(name: String, state: Arc<AppState>) -> Result<Route, Rejection> {
    let not_found = || reject(Error::NotFound(format!("proxy {name}")));
    let parsed = ProxyName::parse(&name).map_err(|_| not_found())?;
    match state.registry.get(&parsed, now_ms()).map_err(reject)? {
        Some(proxy) => Ok(json(StatusCode::OK, &ProxyView::from(proxy))),
        None => Err(not_found()),
    }
}

async fn load(name: String, state: Arc<AppState>) -> Result<Route, Rejection> {
    let not_found = || reject(Error::NotFound(format!("proxy {name}")));
    let parsed = ProxyName::parse(&name).map_err(|_| not_found())?;
    if state
        .registry
        .get(&parsed, now_ms())
        .map_err(reject)?
        .is_none()
    {
        return Err(not_found());
    }
    let samples: Vec<serde_json::Value> = state
        .registry
        .load_history(&parsed)
        .map_err(reject)?
        .into_iter()
        .map(|s| serde_json::json!({ "at": s.at_ms / 1000, "clients": s.clients, "cpu": s.cpu, "bandwidth": s.bandwidth }))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "name": name, "samples": samples }),
    ))
}

#[derive(Serialize)]
struct EventView {
    seq: u64,
    at: u64,
    name: String,
    kind: super::model::ProxyEventKind,
    ip: String,
    port: u16,
}

impl From<ProxyEvent> for EventView {
    fn from(e: ProxyEvent) -> Self {
        EventView {
            seq: e.seq,
            at: e.at_ms / 1000,
            name: e.name.to_string(),
            kind: e.kind,
            ip: e.ip.to_string(),
            port: e.port,
        }
    }
}

async fn events(query: EventsQuery, state: Arc<AppState>) -> Result<Route, Rejection> {
    let name = query
        .name
        .as_deref()
        .map(ProxyName::parse)
        .transpose()
        .map_err(reject)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let events = state
        .registry
        .events(limit, query.before, name.as_ref())
        .map_err(reject)?;
    let next_before = if events.len() == limit {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    let events: Vec<EventView> = events.into_iter().map(EventView::from).collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "events": events, "next_before": next_before }),
    ))
}

async fn vcl(state: Arc<AppState>) -> Result<Route, Rejection> {
    let (text, _) = edge::render_current(&state.registry, &state.edge).map_err(reject)?;
    Ok(warp::reply::with_header(text, "content-type", "text/plain; charset=utf-8").into_response())
}

async fn edge_status(state: Arc<AppState>) -> Result<Route, Rejection> {
    let (version, loaded) = edge::status(&state.store).map_err(reject)?;
    // While varnish lags behind the registry, the sync task that will catch it up, with its
    // tries and last error (varnishd's admin port down, say).
    let behind = loaded.as_ref().is_none_or(|l| l.version < version);
    let pending = if behind && version > 0 {
        let key = format!("{}:{version}", edge::EDGE_SYNC);
        state.queue.by_key(&key).map_err(reject)?
    } else {
        None
    };
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "version": version, "loaded": loaded, "pending": pending,
                             "vcl_path": state.edge.vcl_path }),
    ))
}
