//! `GET /json` (menshen's shape) and the admin's count of manual city overrides.

use std::net::IpAddr;
use std::sync::Arc;

use rand::thread_rng;
use serde::{Deserialize, Serialize};
use warp::http::StatusCode;
use warp::{Filter, Rejection};

use crate::api::filters::limited;
use crate::api::filters::{admin, with_state};
use crate::api::AppState;
use crate::gateways::rank::{self, location_key, Origin};
use crate::http::client_ip::client_ip;
use crate::http::rate_limit::Endpoint;
use crate::http::{json, reject, ErrorBody};
use crate::registry::validate::utc_offset_minutes;

/// The query of `/json`, as text: menshen's clients send empty values for "unknown" (an empty
/// `city=` is no city), so each field is read by hand (`Wanted::from_query`).
#[derive(Deserialize)]
pub struct JsonQuery {
    city: Option<String>,
    lat: Option<String>,
    lon: Option<String>,
    tz: Option<String>,
    n: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `GET /json` and `POST /json`, the query read from the URL: bitmask-vpn's bonafide package
/// POSTs with an empty body (never read: whatever it carries is ignored), RiseupVPN for
/// Android and browsers GET. Shared with the edge.
pub fn json_request() -> impl Filter<Extract = (JsonQuery,), Error = Rejection> + Clone {
    warp::path!("json")
        .and(warp::get().or(warp::post()).unify())
        .and(warp::query::<JsonQuery>())
}

type Route = warp::reply::Response;

/// How often each city was asked for by name: the total by city, and each city's last days.
#[derive(Serialize)]
struct Overrides {
    overrides: std::collections::BTreeMap<String, u64>,
    by_day: std::collections::BTreeMap<String, Vec<crate::gateways::overrides::DayCount>>,
    /// Batches of the edges' counts folded in from Redis so far (0 without edges).
    edge_batches: u64,
}

/// The error shape, and the cities that have gateways.
#[derive(Serialize)]
struct UnknownCity<'a> {
    #[serde(flatten)]
    error: ErrorBody<'a>,
    cities: Vec<&'a String>,
}

pub fn routes(
    state: Arc<AppState>,
) -> (
    super::Table,
    impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone,
) {
    let trusted = Arc::new(state.config.trusted_proxies.clone());
    let recommend = json_request()
        .and(limited(&state, Endpoint::Json))
        .and(client_ip(trusted))
        .and(with_state(&state))
        .and_then(recommend);
    let overrides = warp::path!("api" / "v1" / "admin" / "gateways" / "overrides")
        .and(warp::get())
        .and(admin(&state))
        .and(with_state(&state))
        .and_then(override_counts);
    endpoints! {
        // bitmask-vpn POSTs its gateway request.
        [GET POST] "/json" => recommend,
        GET "/api/v1/admin/gateways/overrides" => overrides,
    }
}

async fn override_counts(state: Arc<AppState>) -> Result<Route, Rejection> {
    let cities = crate::gateways::overrides::counts(&state.store).map_err(reject)?;
    let mut answer = Overrides {
        overrides: Default::default(),
        by_day: Default::default(),
        edge_batches: crate::gateways::overrides::edge_batches_folded(&state.store)
            .map_err(reject)?,
    };
    for (city, counts) in cities {
        answer.overrides.insert(city.clone(), counts.total);
        answer.by_day.insert(city, counts.days);
    }
    Ok(json(StatusCode::OK, &answer))
}

/// A query value, or `None` when absent or empty (`city=` is no city).
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn bad(code: &'static str, message: &str) -> Rejection {
    reject(crate::error::Error::bad_request(code, message))
}

async fn recommend(
    query: JsonQuery,
    client: Option<IpAddr>,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    let now = state.clock.now_ms();
    let view = state.distribution.view(now).map_err(reject)?;
    let set = state.gateways.set(&view, now);
    recommend_in(&set, &state.gateways.geo, &query, client, |key| {
        crate::gateways::overrides::count(&state.store, key, now)
    })
}

/// The `/json` answer from a gateway set (shared with the edge, which reads the set from
/// Redis). `count_override` records a manual city choice (`type=refresh`).
pub fn recommend_in(
    set: &crate::gateways::GatewaySet,
    geo: &crate::gateways::geo::GeoDb,
    query: &JsonQuery,
    client: Option<IpAddr>,
    count_override: impl FnOnce(&str) -> crate::error::Result<()>,
) -> Result<Route, Rejection> {
    let number = |v: &Option<String>, field: &str| -> Result<Option<f64>, Rejection> {
        given(v)
            .map(|raw| {
                raw.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| bad("invalid_location", &format!("{field} must be a number")))
            })
            .transpose()
    };
    // Without `n`, every gateway, sorted (as menshen answers); `n` keeps the first n.
    let n = match given(&query.n) {
        None => set.gateways.len(),
        Some(raw) => raw
            .parse::<usize>()
            .map_err(|_| bad("invalid_n", "n must be a whole number"))?
            .max(1),
    };
    let (lat, lon) = (number(&query.lat, "lat")?, number(&query.lon, "lon")?);
    let tz = given(&query.tz);
    let city = given(&query.city);
    let place = client.and_then(|ip| geo.lookup(ip));

    let origin = match (lat, lon) {
        (Some(lat), Some(lon))
            if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
        {
            Origin::Point { lat, lon }
        }
        (Some(_), _) | (_, Some(_)) => {
            return Err(bad(
                "invalid_location",
                "lat and lon must be given together, within range",
            ))
        }
        _ => match (&place, tz) {
            (Some(p), _) => Origin::Point {
                lat: p.lat,
                lon: p.lon,
            },
            (None, Some(tz)) => Origin::Timezone {
                offset_min: utc_offset_minutes(tz).ok_or_else(|| {
                    bad("invalid_tz", "tz must be a UTC offset such as +2 or -05:00")
                })?,
            },
            (None, None) => Origin::Unknown,
        },
    };

    let chosen: Vec<&rank::Gateway> = match city {
        Some(city) => {
            let key = location_key(city);
            let in_city: Vec<rank::Gateway> = set
                .gateways
                .iter()
                .filter(|g| g.location == key)
                .cloned()
                .collect();
            if in_city.is_empty() {
                let known: Vec<&String> = set.locations.keys().collect();
                let message = format!("no gateway in {city}; see `cities` for the known ones");
                return Ok(json(
                    StatusCode::NOT_FOUND,
                    &UnknownCity {
                        error: ErrorBody::new("unknown_city", &message),
                        cities: known,
                    },
                ));
            }
            if query.kind.as_deref() == Some("refresh") {
                count_override(&key).map_err(reject)?;
            }
            let mut ranked = in_city;
            rank::rank(&mut ranked, Origin::Unknown, &mut thread_rng());
            let chosen: Vec<&rank::Gateway> = ranked.iter().take(n).collect();
            return Ok(answer(client, place.as_ref(), &chosen, &set.locations_json));
        }
        None => rank::best(&set.gateways, &set.centres, origin, n, &mut thread_rng()),
    };
    Ok(answer(client, place.as_ref(), &chosen, &set.locations_json))
}

/// One entry of `sortedGateways`.
#[derive(Serialize)]
struct SortedGateway<'a> {
    host: &'a str,
    ip_address: &'a str,
    fullness: f64,
    overload: bool,
    location: &'a str,
    /// How to connect (absent fields are not sent; clients that know none ignore them).
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<crate::registry::model::Protocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sni: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    front: Option<&'a str>,
}

/// The `/json` body, borrowed: `locations` is spliced in as already-serialised text (a
/// `json!` value would parse it back into a tree on every request).
#[derive(Serialize)]
struct Answer<'a> {
    ip: String,
    cc: &'a str,
    city: &'a str,
    /// Always numbers (0 when the client's place is unknown): menshen sends float64 zeros,
    /// and its clients decode these fields as plain numbers.
    lat: f64,
    lon: f64,
    gateways: Vec<&'a str>,
    #[serde(rename = "sortedGateways")]
    sorted_gateways: Vec<SortedGateway<'a>>,
    locations: &'a serde_json::value::RawValue,
    attribution: &'static str,
}

const ATTRIBUTION: &str =
    "IP geolocation by DB-IP (https://db-ip.com), CC BY 4.0, where a DB-IP database is configured";

/// The `/json` body for the chosen gateways (public: the benchmark baseline renders the same).
pub fn answer(
    client: Option<IpAddr>,
    place: Option<&crate::gateways::geo::Place>,
    chosen: &[&rank::Gateway],
    locations: &serde_json::value::RawValue,
) -> Route {
    let body = Answer {
        ip: client.map(|ip| ip.to_string()).unwrap_or_default(),
        cc: place
            .and_then(|p| p.country_code.as_deref())
            .unwrap_or_default(),
        city: place.and_then(|p| p.city.as_deref()).unwrap_or_default(),
        lat: place.map_or(0.0, |p| p.lat),
        lon: place.map_or(0.0, |p| p.lon),
        gateways: chosen.iter().map(|g| g.host.as_str()).collect(),
        sorted_gateways: chosen
            .iter()
            .map(|g| SortedGateway {
                host: &g.host,
                ip_address: &g.ip,
                fullness: g.fullness,
                overload: g.overloaded,
                location: &g.location,
                protocol: g.transport.protocol,
                cert_sha256: g.transport.cert_sha256.as_deref(),
                public_key: g.transport.public_key.as_deref(),
                sni: g.transport.sni.as_deref(),
                front: g.transport.front.as_deref(),
            })
            .collect(),
        locations,
        attribution: ATTRIBUTION,
    };
    json(StatusCode::OK, &body)
}
