//! HTTP: `/register` and `/unregister` for proxies (registry token, form or JSON, as
//! peerdnsreg), and the admin views of the registry and the edge config.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::api::filters::limited;
use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::error::Error;
use crate::http::auth::bearer_lookup;
use crate::http::body::{fields, json as json_body, Fields};
use crate::http::rate_limit::Endpoint;
use crate::http::{json, json_with_etag, reject};
use crate::registry::credentials::{self, Presented};
use crate::registry::credentials::{Enrolment, NewEnrolment};
use crate::registry::model::{Proxy, ProxyEvent, ProxyName};
use crate::registry::{edge, validate};

type Route = warp::reply::Response;

/// A proxy as the API shows it: flat, times in unix seconds.
#[derive(Serialize)]
pub struct ProxyView {
    name: String,
    ip: String,
    port: u16,
    role: crate::registry::Role,
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
    protocol: Option<crate::registry::model::Protocol>,
    cert_sha256: Option<String>,
    public_key: Option<String>,
    sni: Option<String>,
    front: Option<String>,
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
            protocol: p.transport.protocol,
            cert_sha256: p.transport.cert_sha256,
            public_key: p.transport.public_key,
            sni: p.transport.sni,
            front: p.transport.front,
        }
    }
}

/// `GET /api/v1/admin/proxies` without `limit`: every live proxy.
#[derive(Serialize)]
struct AllProxies {
    proxies: Vec<ProxyView>,
}

/// One row of a page of proxies, with its recent client counts when asked (`history=true`).
#[derive(Serialize)]
struct ProxyRow {
    #[serde(flatten)]
    proxy: ProxyView,
    /// Users assigned to it (fallback users, whatever the clients it reports).
    users: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<Option<u32>>>,
}

#[derive(Serialize)]
struct ProxyPage {
    proxies: Vec<ProxyRow>,
    next_after: Option<String>,
    matched_total: usize,
}

#[derive(Serialize)]
struct LoadSampleView {
    at: u64,
    clients: Option<u32>,
    cpu: Option<f64>,
    bandwidth: Option<u64>,
}

#[derive(Serialize)]
struct LoadHistory {
    name: String,
    samples: Vec<LoadSampleView>,
}

#[derive(Serialize)]
struct Events {
    events: Vec<EventView>,
    next_before: Option<u64>,
}

/// `GET /api/v1/admin/edge`: the registry's version, what varnishd last loaded, and the sync
/// task while varnishd lags behind.
#[derive(Serialize)]
struct EdgeView<'a> {
    version: u64,
    loaded: Option<edge::EdgeStatus>,
    /// The last check that varnishd runs what was loaded (every `varnish_check_secs`).
    varnish_check: Option<edge::VarnishCheck>,
    pending: Option<crate::queue::Task>,
    vcl_path: &'a std::path::Path,
    groups: usize,
    group_loads: u64,
}

#[derive(Serialize)]
struct Enrolments {
    enrolments: Vec<EnrolmentView>,
}

/// A new enrolment and its token, shown this once.
#[derive(Serialize)]
struct CreatedEnrolment<'a> {
    #[serde(flatten)]
    enrolment: EnrolmentView,
    token: &'a str,
}

#[derive(Serialize)]
struct RotatedSecret<'a> {
    name: &'a ProxyName,
    proxy_secret: &'a str,
}

#[derive(Serialize)]
struct Revoked<'a> {
    name: &'a ProxyName,
    revoked: bool,
    removed: bool,
}

#[derive(Serialize)]
struct Unregistered<'a> {
    name: &'a ProxyName,
    unregistered: bool,
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<usize>,
    before: Option<u64>,
    name: Option<String>,
}

pub fn routes(
    state: Arc<AppState>,
) -> (
    super::Table,
    impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone,
) {
    let limit = state.config.max_body_bytes;
    let register = warp::path!("register")
        .and(warp::post())
        .and(limited(&state, Endpoint::Register))
        .and(proxy_credential(&state))
        .and(fields(limit))
        .and(with_state(&state))
        .and_then(register);
    let unregister = warp::path!("unregister")
        .and(warp::post())
        .and(limited(&state, Endpoint::Unregister))
        .and(proxy_credential(&state))
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
    let create_enrolment = admin_base
        .clone()
        .and(warp::path!("enrolments"))
        .and(warp::post())
        .and(json_body::<EnrolmentBody>(limit))
        .and(with_state(&state))
        .and_then(create_enrolment);
    let list_enrolments = admin_base
        .clone()
        .and(warp::path!("enrolments"))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(list_enrolments);
    let revoke_enrolment = admin_base
        .clone()
        .and(warp::path!("enrolments" / u64 / "revoke"))
        .and(warp::post())
        .and(with_state(&state))
        .and_then(revoke_enrolment);
    let rotate_secret = admin_base
        .clone()
        .and(warp::path!("proxies" / String / "secret"))
        .and(warp::post())
        .and(with_state(&state))
        .and_then(rotate_secret);
    let revoke_proxy = admin_base
        .clone()
        .and(warp::path!("proxies" / String / "revoke"))
        .and(warp::post())
        .and(with_state(&state))
        .and_then(revoke_proxy);
    let set_role = admin_base
        .clone()
        .and(warp::path!("proxies" / String / "role"))
        .and(warp::post())
        .and(json_body::<RoleBody>(limit))
        .and(with_state(&state))
        .and_then(set_role);
    let edge_status = admin_base
        .and(warp::path!("edge"))
        .and(warp::get())
        .and(with_state(&state))
        .and_then(edge_status);

    endpoints! {
        POST "/register" => register,
        POST "/unregister" => unregister,
        GET "/api/v1/admin/proxies" => list,
        GET "/api/v1/admin/proxies/{name}" => one,
        GET "/api/v1/admin/proxies/{name}/load" => load,
        GET "/api/v1/admin/registry/events" => events,
        GET "/api/v1/admin/edge/varnish.vcl" => vcl,
        GET "/api/v1/admin/edge" => edge_status,
        POST "/api/v1/admin/enrolments" => create_enrolment,
        GET "/api/v1/admin/enrolments" => list_enrolments,
        POST "/api/v1/admin/enrolments/{id}/revoke" => revoke_enrolment,
        POST "/api/v1/admin/proxies/{name}/secret" => rotate_secret,
        POST "/api/v1/admin/proxies/{name}/revoke" => revoke_proxy,
        POST "/api/v1/admin/proxies/{name}/role" => set_role,
    }
}

/// `POST /api/v1/admin/enrolments`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrolmentBody {
    /// Role of every proxy it enrols (default `fallback`).
    role: Option<String>,
    /// Capacity ceiling of those proxies (default: `max_proxy_capacity`).
    max_capacity: Option<u32>,
    /// Names it may enrol (default 1, at most 10,000).
    uses: Option<u32>,
    /// Lifetime in seconds (default 7 days, at most a year).
    expires_in_secs: Option<u64>,
    note: Option<String>,
}

#[derive(Serialize)]
struct EnrolmentView {
    id: u64,
    role: crate::registry::Role,
    max_capacity: Option<u32>,
    uses: u32,
    used: u32,
    enrolled: Vec<String>,
    created_at: u64,
    expires_at: u64,
    revoked: bool,
    note: String,
}

impl From<Enrolment> for EnrolmentView {
    fn from(e: Enrolment) -> Self {
        EnrolmentView {
            id: e.id,
            role: e.role,
            max_capacity: e.max_capacity,
            uses: e.uses,
            used: e.used(),
            enrolled: e.enrolled,
            created_at: e.created_ms / 1000,
            expires_at: e.expires_ms / 1000,
            revoked: e.revoked,
            note: e.note,
        }
    }
}

const MAX_ENROLMENT_USES: u32 = 10_000;
const MAX_ENROLMENT_SECS: u64 = 365 * 24 * 3600;

async fn create_enrolment(body: EnrolmentBody, state: Arc<AppState>) -> Result<Route, Rejection> {
    let role = body
        .role
        .as_deref()
        .map(crate::registry::Role::parse)
        .transpose()
        .map_err(reject)?
        .unwrap_or_default();
    let uses = body.uses.unwrap_or(1);
    if !(1..=MAX_ENROLMENT_USES).contains(&uses) {
        return Err(reject(Error::invalid(
            "invalid_uses",
            format!("uses must be from 1 to {MAX_ENROLMENT_USES}"),
        )));
    }
    let lifetime = body.expires_in_secs.unwrap_or(7 * 24 * 3600);
    if !(1..=MAX_ENROLMENT_SECS).contains(&lifetime) {
        return Err(reject(Error::invalid(
            "invalid_expiry",
            format!("expires_in_secs must be from 1 to {MAX_ENROLMENT_SECS}"),
        )));
    }
    let ceiling = state.config.max_proxy_capacity;
    if body.max_capacity.is_some_and(|c| c == 0 || c > ceiling) {
        return Err(reject(Error::invalid(
            "invalid_capacity",
            format!("max_capacity must be from 1 to {ceiling} (max_proxy_capacity)"),
        )));
    }
    let note = body.note.unwrap_or_default();
    if note.chars().count() > 200 || note.chars().any(char::is_control) {
        return Err(reject(Error::invalid(
            "invalid_note",
            "note must be at most 200 printable characters",
        )));
    }
    let now = state.clock.now_ms();
    let new = NewEnrolment {
        role,
        max_capacity: body.max_capacity,
        uses,
        expires_ms: now + lifetime * 1000,
        note,
    };
    let (token, enrolment) = state
        .registry
        .credentials
        .create_enrolment(new, now)
        .await
        .map_err(reject)?;
    let body = CreatedEnrolment {
        enrolment: EnrolmentView::from(enrolment),
        token: &token,
    };
    let mut reply = json(StatusCode::CREATED, &body);
    reply.headers_mut().insert(
        warp::http::header::CACHE_CONTROL,
        warp::http::HeaderValue::from_static("no-store"),
    );
    Ok(reply)
}

async fn list_enrolments(state: Arc<AppState>) -> Result<Route, Rejection> {
    let enrolments: Vec<EnrolmentView> = state
        .registry
        .credentials
        .enrolments()
        .map_err(reject)?
        .into_iter()
        .map(EnrolmentView::from)
        .collect();
    Ok(json(StatusCode::OK, &Enrolments { enrolments }))
}

async fn revoke_enrolment(id: u64, state: Arc<AppState>) -> Result<Route, Rejection> {
    let enrolment = state
        .registry
        .credentials
        .revoke_enrolment(id)
        .await
        .map_err(reject)?;
    Ok(json(StatusCode::OK, &EnrolmentView::from(enrolment)))
}

fn proxy_name(name: &str) -> Result<ProxyName, Rejection> {
    ProxyName::parse(name).map_err(|_| reject(Error::NotFound(format!("proxy {name}"))))
}

async fn rotate_secret(name: String, state: Arc<AppState>) -> Result<Route, Rejection> {
    let name = proxy_name(&name)?;
    let secret = state
        .registry
        .credentials
        .rotate(&name)
        .await
        .map_err(reject)?;
    let body = RotatedSecret {
        name: &name,
        proxy_secret: &secret,
    };
    let mut reply = json(StatusCode::OK, &body);
    reply.headers_mut().insert(
        warp::http::header::CACHE_CONTROL,
        warp::http::HeaderValue::from_static("no-store"),
    );
    Ok(reply)
}

async fn revoke_proxy(name: String, state: Arc<AppState>) -> Result<Route, Rejection> {
    let name = proxy_name(&name)?;
    let removed = state
        .registry
        .revoke(&name, state.clock.now_ms())
        .await
        .map_err(reject)?;
    let body = Revoked {
        name: &name,
        revoked: true,
        removed: removed.is_some(),
    };
    Ok(json(StatusCode::OK, &body))
}

/// The proxy with its new role, and the task that moves its users off (none to a fallback).
#[derive(Serialize)]
struct RoleSet {
    #[serde(flatten)]
    proxy: ProxyView,
    tasks: Vec<super::fleet::TaskRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

async fn set_role(name: String, body: RoleBody, state: Arc<AppState>) -> Result<Route, Rejection> {
    let name = proxy_name(&name)?;
    let role = crate::registry::Role::parse(&body.role).map_err(reject)?;
    let changed = state
        .fleet
        .set_proxy_role(&name, role, state.clock.now_ms())
        .await
        .map_err(reject)?;
    let body = RoleSet {
        tasks: super::fleet::task_refs(&state, &changed.tasks).map_err(reject)?,
        proxy: ProxyView::from(changed.proxy),
    };
    Ok(json(StatusCode::OK, &body))
}

/// What the bearer token of `/register` or `/unregister` is: the fleet registry token, an
/// enrolment token or a proxy's own secret; anything else is a 401.
fn proxy_credential(
    state: &Arc<AppState>,
) -> impl Filter<Extract = (Presented,), Error = Rejection> + Clone {
    let state = state.clone();
    bearer_lookup(move |token| {
        state
            .registry
            .credentials
            .classify(token, &state.tokens.registry)
    })
}

/// The answer to `/register`.
#[derive(Serialize)]
struct Registered<'a> {
    name: &'a str,
    role: crate::registry::Role,
    capacity: Option<u32>,
    expires_at: u64,
    heartbeat_ttl_secs: u64,
    /// Only when this registration issued it (enrolment, or a pre-upgrade proxy's claim).
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy_secret: Option<&'a str>,
}

/// Header carrying a newly issued proxy secret (for form clients that read no JSON).
pub const SECRET_HEADER: &str = "x-proxy-secret";

async fn register(
    presented: Presented,
    fields: Fields,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let rules = validate::Rules {
        allow_private_ips: state.config.allow_private_ips,
    };
    let registration = validate::registration(&fields, &rules).map_err(reject)?;
    if let Presented::Secret { owner, .. } = &presented {
        // Another proxy's secret: refused before it reaches the write path.
        if owner.name != registration.name.as_str() {
            return Err(reject(credentials::name_taken(registration.name.as_str())));
        }
    }
    let registered = state
        .registry
        .register(registration, presented, state.clock.now_ms())
        .await
        .map_err(reject)?;
    let proxy = &registered.proxy;
    let body = Registered {
        name: proxy.name.as_str(),
        role: proxy.role,
        capacity: proxy.capacity,
        expires_at: proxy.expires_ms / 1000,
        heartbeat_ttl_secs: state.config.heartbeat_ttl_secs,
        proxy_secret: registered.secret.as_deref(),
    };
    let reply = json(StatusCode::OK, &body);
    let Some(secret) = registered.secret else {
        return Ok(reply);
    };
    let mut reply = warp::reply::with_header(reply, SECRET_HEADER, secret).into_response();
    // A secret must not sit in any cache on the way.
    reply.headers_mut().insert(
        warp::http::header::CACHE_CONTROL,
        warp::http::HeaderValue::from_static("no-store"),
    );
    Ok(reply)
}

async fn unregister(
    presented: Presented,
    fields: Fields,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let name = validate::name_only(&fields).map_err(reject)?;
    let proxy = state
        .registry
        .unregister(&name, &presented, state.clock.now_ms())
        .await
        .map_err(reject)?;
    let body = Unregistered {
        name: &proxy.name,
        unregistered: true,
    };
    Ok(json(StatusCode::OK, &body))
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
    let now = state.clock.now_ms();
    let Some(limit) = query.limit else {
        let proxies = state.registry.list(now).map_err(reject)?;
        let proxies: Vec<ProxyView> = proxies.into_iter().map(ProxyView::from).collect();
        return Ok(json(StatusCode::OK, &AllProxies { proxies }));
    };
    let role = query
        .role
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(crate::registry::Role::parse_any)
        .transpose()
        .map_err(reject)?;
    let needle = query
        .q
        .as_deref()
        .map(str::trim)
        .unwrap_or("")
        .to_lowercase();
    let filter = crate::registry::service::ListFilter {
        role,
        needle: &needle,
    };
    let page = state
        .registry
        .page(query.after.as_deref(), limit.clamp(1, 500), &filter, now)
        .map_err(reject)?;
    let next_after = page.next_after.clone();
    let proxies: Vec<ProxyRow> = page
        .proxies
        .into_iter()
        .map(|proxy| {
            let history = if query.history.unwrap_or(false) {
                let samples = state.registry.load_history(&proxy.name).unwrap_or_default();
                let start = samples.len().saturating_sub(ROW_HISTORY);
                Some(samples[start..].iter().map(|s| s.clients).collect())
            } else {
                None
            };
            Ok(ProxyRow {
                users: state.fleet.users_on(proxy.name.as_str())?,
                proxy: ProxyView::from(proxy),
                history,
            })
        })
        .collect::<crate::error::Result<_>>()
        .map_err(reject)?;
    let body = ProxyPage {
        proxies,
        next_after,
        matched_total: page.matched_total,
    };
    Ok(json_with_etag(&body, seen.as_deref()))
}

async fn one(name: String, state: Arc<AppState>) -> Result<Route, Rejection> {
    let not_found = || reject(Error::NotFound(format!("proxy {name}")));
    let parsed = ProxyName::parse(&name).map_err(|_| not_found())?;
    match state
        .registry
        .get(&parsed, state.clock.now_ms())
        .map_err(reject)?
    {
        Some(proxy) => Ok(json(StatusCode::OK, &ProxyView::from(proxy))),
        None => Err(not_found()),
    }
}

async fn load(name: String, state: Arc<AppState>) -> Result<Route, Rejection> {
    let not_found = || reject(Error::NotFound(format!("proxy {name}")));
    let parsed = ProxyName::parse(&name).map_err(|_| not_found())?;
    if state
        .registry
        .get(&parsed, state.clock.now_ms())
        .map_err(reject)?
        .is_none()
    {
        return Err(not_found());
    }
    let samples = state
        .registry
        .load_history(&parsed)
        .map_err(reject)?
        .into_iter()
        .map(|s| LoadSampleView {
            at: s.at_ms / 1000,
            clients: s.clients,
            cpu: s.cpu,
            bandwidth: s.bandwidth,
        })
        .collect();
    Ok(json(StatusCode::OK, &LoadHistory { name, samples }))
}

#[derive(Serialize)]
struct EventView {
    seq: u64,
    at: u64,
    name: String,
    kind: &'static str,
    /// The country of a `blocked` or `unblocked` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    ip: String,
    port: u16,
}

impl From<ProxyEvent> for EventView {
    fn from(e: ProxyEvent) -> Self {
        EventView {
            seq: e.seq,
            at: e.at_ms / 1000,
            name: e.name.to_string(),
            kind: e.kind.name(),
            country: e.kind.country().map(str::to_string),
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
        &Events {
            events,
            next_before,
        },
    ))
}

async fn vcl(state: Arc<AppState>) -> Result<Route, Rejection> {
    let (config, _) = edge::render_current(&state.registry, &state.edge).map_err(reject)?;
    // A split config: the top VCL, then each group's after a comment naming its label.
    let mut text = config.top;
    for group in config.groups {
        text.push_str(&format!("\n# ---- VCL label {} ----\n", group.label));
        text.push_str(&group.vcl);
    }
    Ok(warp::reply::with_header(text, "content-type", "text/plain; charset=utf-8").into_response())
}

async fn edge_status(state: Arc<AppState>) -> Result<Route, Rejection> {
    let (version, loaded) = edge::status(&state.store).map_err(reject)?;
    let groups = edge::loaded_groups(&state.store).map_err(reject)?;
    // While varnish lags behind the registry, the sync task that will catch it up, with its
    // tries and last error (varnishd's admin port down, say).
    let behind = loaded.as_ref().is_none_or(|l| l.version < version);
    let pending = if behind && version > 0 {
        let key = format!("{}:{version}", edge::EDGE_SYNC);
        state.queue.by_key(&key).map_err(reject)?
    } else {
        None
    };
    let body = EdgeView {
        version,
        loaded,
        varnish_check: edge::varnish_check(&state.store).map_err(reject)?,
        pending,
        vcl_path: &state.edge.vcl_path,
        groups: groups.labels.len(),
        group_loads: groups.group_loads,
    };
    Ok(json(StatusCode::OK, &body))
}
