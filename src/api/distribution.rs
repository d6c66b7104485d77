//! `GET /api/v1/config`: the user's signed config with ETag / If-None-Match (304), gzip when
//! accepted, and `?wait=SECS` to hold the request until the config changes (long-poll).
//! `GET /api/v1/config/pubkey`: the key that verifies the signatures.
//! `GET /api/v1/admin/distribution/exposure`: what the subset size costs in exposure.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::http::listener::Connection;
use flate2::write::GzEncoder;
use flate2::Compression;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use warp::http::{header, Response, StatusCode};
use warp::{Filter, Rejection};

use crate::api::filters::{admin, config_reader, with_state};
use crate::api::AppState;
use crate::distribution::config::{matches, Rendered};
use crate::distribution::subset::accounts_to_learn;
use crate::distribution::SIGNATURE_HEADER;
use crate::error::Error;
use crate::fleet::model::User;
use crate::http::client_ip::client_ip;
use crate::http::{json, reject};

/// `GET /api/v1/config?wait=SECONDS` (a long poll when set).
#[derive(Deserialize)]
pub struct ConfigQuery {
    pub wait: Option<u64>,
}

#[derive(Deserialize)]
struct ExposureQuery {
    trials: Option<usize>,
}

type Route = warp::reply::Response;

/// The key that signs configs, for clients that check the signature.
#[derive(Serialize)]
struct PublicKey<'a> {
    algorithm: &'static str,
    public_key: &'a str,
    signature_header: &'static str,
}

/// How many accounts a censor needs to learn half, and 90%, of the free proxies (simulated).
#[derive(Serialize)]
struct Exposure {
    free_proxies: usize,
    k: usize,
    trials: usize,
    accounts_for_50_percent: f64,
    accounts_for_90_percent: f64,
}

pub fn routes(
    state: Arc<AppState>,
) -> (
    super::Table,
    impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone,
) {
    let trusted = Arc::new(state.config.trusted_proxies.clone());
    let config = warp::path!("api" / "v1" / "config")
        .and(warp::get())
        .and(config_reader(&state))
        .and(warp::query::<ConfigQuery>())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(warp::header::optional::<String>("accept-encoding"))
        .and(client_ip(trusted))
        .and(warp::ext::optional::<Connection>())
        .and(with_state(&state))
        .and_then(get_config);
    let pubkey = warp::path!("api" / "v1" / "config" / "pubkey")
        .and(warp::get())
        .and(with_state(&state))
        .map(|state: Arc<AppState>| pubkey_response(&state.distribution.keys.public_key()));
    let exposure = warp::path!("api" / "v1" / "admin" / "distribution" / "exposure")
        .and(warp::get())
        .and(admin(&state))
        .and(warp::query::<ExposureQuery>())
        .and(with_state(&state))
        .and_then(exposure);
    endpoints! {
        GET "/api/v1/config" => config,
        GET "/api/v1/config/pubkey" => pubkey,
        GET "/api/v1/admin/distribution/exposure" => exposure,
    }
}

/// `GET /api/v1/config/pubkey`'s answer (the edge sends the same).
pub fn pubkey_response(public_key: &str) -> Route {
    json(
        StatusCode::OK,
        &PublicKey {
            algorithm: "ed25519",
            public_key,
            signature_header: SIGNATURE_HEADER,
        },
    )
}

fn render_for(
    state: &AppState,
    user: &User,
    client: Option<IpAddr>,
    country: Option<&str>,
) -> Result<Arc<Rendered>, Rejection> {
    state
        .distribution
        .rendered_for(user, client, country, state.clock.now_ms())
        .map_err(reject)
}

async fn get_config(
    user: User,
    query: ConfigQuery,
    if_none_match: Option<String>,
    accept_encoding: Option<String>,
    client: Option<IpAddr>,
    connection: Option<Connection>,
    state: Arc<AppState>,
) -> Result<Route, Rejection> {
    // Where the client is decides which proxies are blocked for it; the fleet keeps it, so
    // a block there moves this user (and the mirror renders what an edge serves it).
    let country = client
        .and_then(|ip| state.gateways.geo.lookup(ip))
        .and_then(|place| place.country_code);
    if let Some(country) = &country {
        state.fleet.note_country(user.id, country).map_err(reject)?;
    }
    let country = country.as_deref();
    let mut rendered = render_for(&state, &user, client, country)?;
    let wait = Duration::from_secs(
        query
            .wait
            .unwrap_or(0)
            .min(state.config.config_wait_max_secs),
    );
    if !wait.is_zero() {
        // Waiting moves the connection under the long-poll caps (503 when they are full).
        let _waiting = connection
            .map(|c| c.wait_long())
            .transpose()
            .map_err(reject)?;
        // Hold until the config differs from what the client has (or had when it asked).
        let known = if_none_match
            .clone()
            .unwrap_or_else(|| rendered.etag.clone());
        let deadline = tokio::time::Instant::now() + wait;
        let bell = state.fleet.notifier.bell(user.id);
        while matches(&known, &rendered.etag) {
            let notified = bell.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-read after arming the bell, so a change in between is not missed.
            let current = state
                .fleet
                .user(user.id)
                .map_err(reject)?
                .unwrap_or_else(|| user.clone());
            rendered = render_for(&state, &current, client, country)?;
            if !matches(&known, &rendered.etag) {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        state.fleet.notifier.release(user.id, bell);
    }
    respond(
        &rendered.body,
        &rendered.etag,
        || state.distribution.signature(&rendered),
        if_none_match.as_deref(),
        accept_encoding.as_deref(),
    )
}

/// The response for a config: 304 when the client has it, else the body (gzip when
/// accepted) with its signature, asked for only then. Shared with the edge, so both answer
/// byte for byte alike.
pub fn respond<S: AsRef<str>>(
    body: &[u8],
    etag: &str,
    signature: impl FnOnce() -> S,
    if_none_match: Option<&str>,
    accept_encoding: Option<&str>,
) -> Result<Route, Rejection> {
    let gzip = accept_encoding.is_some_and(accepts_gzip);
    let sent_etag = if gzip {
        gzip_tag(etag)
    } else {
        etag.to_string()
    };
    let builder = Response::builder()
        .header(header::ETAG, &sent_etag)
        .header(header::CACHE_CONTROL, "private, max-age=0, must-revalidate")
        .header(header::VARY, "Accept-Encoding, Authorization");
    if if_none_match.is_some_and(|inm| matches(inm, etag)) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(warp::hyper::Body::empty())
            .map_err(|e| reject(Error::internal(e)));
    }
    let builder = builder
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature().as_ref());
    let response = if gzip {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder
            .write_all(body)
            .and_then(|_| encoder.finish())
            .map_err(|e| reject(Error::internal(e)))
            .and_then(|compressed| {
                builder
                    .header(header::CONTENT_ENCODING, "gzip")
                    .body(warp::hyper::Body::from(compressed))
                    .map_err(|e| reject(Error::internal(e)))
            })?
    } else {
        builder
            .body(warp::hyper::Body::from(body.to_vec()))
            .map_err(|e| reject(Error::internal(e)))?
    };
    Ok(response)
}

/// `"abc"` -> `"abc-gz"`: the gzip variant's tag (`matches` treats both as one config).
fn gzip_tag(etag: &str) -> String {
    format!("\"{}-gz\"", etag.trim_matches('"'))
}

fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|coding| {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        // `q=0`, `q=0.0`, `q=0.000`: not acceptable (RFC 9110 12.4.2).
        let refused = parts.any(|p| {
            let p = p.trim().replace(' ', "");
            p.strip_prefix("q=")
                .is_some_and(|q| q.parse::<f32>().map_or(true, |q| q <= 0.0))
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

async fn exposure(query: ExposureQuery, state: Arc<AppState>) -> Result<Route, Rejection> {
    let now = state.clock.now_ms();
    let view = state.distribution.view(now).map_err(reject)?;
    let free: Vec<String> = view
        .free
        .iter()
        .filter(|n| view.by_name.get(*n).is_some_and(|p| p.expires_ms > now))
        .cloned()
        .collect();
    let k = state.distribution.settings.free_k;
    let trials = query.trials.unwrap_or(20).clamp(1, 200);
    let report = tokio::task::spawn_blocking(move || {
        let mut rng = StdRng::from_entropy();
        let half = accounts_to_learn(&free, k, 0.5, trials, 1_000_000, &mut rng);
        let most = accounts_to_learn(&free, k, 0.9, trials, 1_000_000, &mut rng);
        Exposure {
            free_proxies: free.len(),
            k,
            trials,
            accounts_for_50_percent: half,
            accounts_for_90_percent: most,
        }
    })
    .await
    .map_err(|e| reject(Error::internal(e)))?;
    Ok(json(StatusCode::OK, &report))
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn reads_accept_encoding() {
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
    }
}
