//! The bare-warp baseline for benchmarks: the same request handling as proxyfleet up to
//! storage, with nothing stored and nothing read from disk. The ratio proxyfleet / baseline is
//! what BENCHMARKS.md reports, so the figures mean the same on any machine.
//!
//! - `POST /register`: bearer check, body limit, form parsing, the same validation. With
//!   SECRETS_FILE (lines `name secret`, from bench/enrol.py), each proxy's own secret, checked
//!   in memory as proxyfleet checks it in its store: the SHA-256 of the bearer token must name
//!   the proxy the form names (else 401 or 403).
//! - `GET /api/v1/config`: bearer check against a set of tokens (TOKEN, plus those in
//!   TOKENS_FILE), a fixed three-proxy config serialised and hashed for its ETag, 304 on
//!   If-None-Match, exactly as the real handler renders it. With `?wait=SECS` the request is
//!   held until `POST /bump` (TOKEN) or the time is up, then answered the same way.
//! - `GET /json`: 10,000 gateways in 200 cities held in memory, ranked for `lat`/`lon` and
//!   rendered by the same code as proxyfleet's handler.
//!
//! - `POST /api/v1/stripe/webhook`: the Stripe-Signature check with `bench-webhook-secret`
//!   and the event parsed, as proxyfleet does before its transaction.
//!
//! Usage: bench-baseline ADDR TOKEN [TOKENS_FILE [SECRETS_FILE]]

use std::net::SocketAddr;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use proxyfleet::distribution::config::{matches, render, ClientConfig, ProxyEntry};
use proxyfleet::gateways::rank::{self, location_key, offset_from_longitude, Gateway, Origin};
use proxyfleet::gateways::GatewaySet;
use proxyfleet::http::body::{fields, Fields};
use proxyfleet::http::{auth::bearer, TokenHash};
use proxyfleet::registry::{validate, Role};
use rand::{Rng, SeedableRng};
use warp::http::{header, Response, StatusCode};
use warp::Filter;

/// The webhook secret both servers use in the benchmark.
const WEBHOOK_SECRET: &str = "bench-webhook-secret";

fn fixed_config() -> ClientConfig {
    let proxies = (1..=3)
        .map(|i| ProxyEntry {
            name: format!("p{i}"),
            ip: format!("127.0.0.{i}"),
            port: 8443,
            role: Role::Fallback,
            country: Some("DE".into()),
            city: None,
            protocol: None,
            cert_sha256: None,
            public_key: None,
            sni: None,
            front: None,
        })
        .collect();
    ClientConfig {
        version: 1,
        user: 1,
        issued_at: 1_764_547_200,
        expires_at: 1_764_547_200 + 604_800,
        proxies,
        poll_after_secs: 300,
    }
}

fn gateways(count: usize) -> GatewaySet {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let cities: Vec<(String, f64, f64)> = (0..200)
        .map(|i| {
            (
                format!("City{i}"),
                rng.gen_range(-60.0..70.0),
                rng.gen_range(-180.0..180.0),
            )
        })
        .collect();
    let list = (0..count)
        .map(|i| {
            let (city, lat, lon) = &cities[i % cities.len()];
            let fullness = rng.gen_range(0.0..1.5);
            Gateway {
                host: format!("gw{i}.peers.localhost"),
                ip: "127.0.0.1".into(),
                location: location_key(city),
                city: city.clone(),
                country_code: None,
                lat: lat + rng.gen_range(-0.1..0.1),
                lon: lon + rng.gen_range(-0.1..0.1),
                tz_offset_min: offset_from_longitude(*lon),
                fullness: rank::round3(fullness),
                overloaded: fullness >= 1.0,
                transport: Default::default(),
            }
        })
        .collect();
    GatewaySet::new(list)
}

/// An Ed25519 key like the server's, kept in memory.
fn signing_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&rand::thread_rng().gen())
}

fn sign(key: &ed25519_dalek::SigningKey, body: &[u8]) -> String {
    use base64::Engine;
    use ed25519_dalek::Signer;
    base64::engine::general_purpose::STANDARD.encode(key.sign(body).to_bytes())
}

#[derive(serde::Deserialize)]
struct Point {
    lat: Option<f64>,
    lon: Option<f64>,
}

type Route<T> = warp::filters::BoxedFilter<(T,)>;

#[derive(serde::Deserialize)]
struct Wait {
    wait: u64,
}

/// `GET /api/v1/config?wait=SECS`, held until `POST /bump`; and `POST /bump`.
fn long_poll(
    token: TokenHash,
    tokens: Arc<HashSet<[u8; 32]>>,
    signer: Arc<ed25519_dalek::SigningKey>,
) -> (Route<Response<Vec<u8>>>, Route<&'static str>) {
    let bell = Arc::new(tokio::sync::Notify::new());
    let waiting = bell.clone();
    let long_poll = warp::path!("api" / "v1" / "config")
        .and(warp::get())
        .and(warp::query::<Wait>())
        .and(warp::header::optional::<String>("authorization"))
        .and_then(move |wait: Wait, authorization: Option<String>| {
            let (tokens, signer, bell) = (tokens.clone(), signer.clone(), waiting.clone());
            async move {
                let presented = authorization
                    .as_deref()
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .unwrap_or_default();
                if !tokens.contains(TokenHash::of(presented).as_bytes()) {
                    let refused = Response::builder().status(StatusCode::UNAUTHORIZED);
                    return Ok::<_, warp::Rejection>(refused.body(Vec::new()).unwrap_or_default());
                }
                let changed = bell.notified();
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(wait.wait), changed).await;
                let rendered = render(&fixed_config());
                let signature = sign(&signer, &rendered.body);
                Ok(Response::builder()
                    .status(StatusCode::OK)
                    .header(header::ETAG, &rendered.etag)
                    .header(header::CONTENT_TYPE, "application/json")
                    .header("x-proxyfleet-signature", signature)
                    .body(rendered.body)
                    .unwrap_or_default())
            }
        })
        .boxed();
    let bump = warp::path!("bump")
        .and(warp::post())
        .and(bearer(token))
        .map(move || {
            bell.notify_waiters();
            "rung"
        })
        .boxed();
    (long_poll, bump)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let address: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| ([127, 0, 0, 1], 18090).into());
    let token = TokenHash::of(&args.next().unwrap_or_else(|| "bench-token".into()));
    let mut tokens: HashSet<[u8; 32]> = HashSet::from([*token.as_bytes()]);
    if let Some(file) = args.next() {
        for line in std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
        {
            tokens.insert(*TokenHash::of(line).as_bytes());
        }
    }
    let tokens = Arc::new(tokens);
    // SHA-256 of each proxy secret -> the proxy's name (proxyfleet's `proxy_secrets` tree).
    let secrets: HashMap<[u8; 32], String> = args
        .next()
        .map(|file| std::fs::read_to_string(file).unwrap_or_default())
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, secret)| (*TokenHash::of(secret).as_bytes(), name.to_string()))
        .collect();
    let secrets = Arc::new(secrets);
    let set = Arc::new(gateways(10_000));
    let signer = Arc::new(signing_key());
    let (long_poll, bump) = long_poll(token, tokens.clone(), signer.clone());
    let register = warp::path!("register")
        .and(warp::post())
        .and(warp::header::optional::<String>("authorization"))
        .and(fields(64 * 1024))
        .map(move |authorization: Option<String>, fields: Fields| {
            let presented = authorization
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer "))
                .unwrap_or_default();
            let hash = TokenHash::of(presented);
            let owner = secrets.get(hash.as_bytes());
            if owner.is_none() && hash != token {
                return warp::reply::with_status(
                    warp::reply::json(&serde_json::json!({ "error": "unauthorized" })),
                    StatusCode::UNAUTHORIZED,
                );
            }
            let rules = validate::Rules {
                allow_private_ips: true,
            };
            let (body, status) = match validate::registration(&fields, &rules) {
                Ok(reg) if owner.is_some_and(|o| o != reg.name.as_str()) => (
                    serde_json::json!({ "error": "name_taken" }),
                    StatusCode::FORBIDDEN,
                ),
                Ok(reg) => (
                    serde_json::json!({ "name": reg.name, "expires_at": 0 }),
                    StatusCode::OK,
                ),
                Err(e) => (
                    serde_json::json!({ "error": e.code() }),
                    StatusCode::UNPROCESSABLE_ENTITY,
                ),
            };
            warp::reply::with_status(warp::reply::json(&body), status)
        });
    let config = warp::path!("api" / "v1" / "config")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("if-none-match"))
        .map(
            move |authorization: Option<String>, if_none_match: Option<String>| {
                let presented = authorization
                    .as_deref()
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .unwrap_or_default();
                if !tokens.contains(TokenHash::of(presented).as_bytes()) {
                    return Response::builder()
                        .status(StatusCode::UNAUTHORIZED)
                        .body(Vec::new())
                        .unwrap_or_default();
                }
                let rendered = render(&fixed_config());
                let (body, etag) = (rendered.body, rendered.etag);
                let builder = Response::builder().header(header::ETAG, &etag);
                if if_none_match.is_some_and(|inm| matches(&inm, &etag)) {
                    builder.status(StatusCode::NOT_MODIFIED).body(Vec::new())
                } else {
                    // Signed like the real config: signing is work, not storage.
                    let signature = sign(&signer, &body);
                    builder
                        .status(StatusCode::OK)
                        .header(header::CONTENT_TYPE, "application/json")
                        .header("x-proxyfleet-signature", signature)
                        .body(body)
                }
                .unwrap_or_default()
            },
        );
    let json = warp::path!("json")
        .and(warp::get())
        .and(warp::query::<Point>())
        .map(move |point: Point| {
            let origin = match (point.lat, point.lon) {
                (Some(lat), Some(lon)) => Origin::Point { lat, lon },
                _ => Origin::Unknown,
            };
            let chosen = rank::best(
                &set.gateways,
                &set.centres,
                origin,
                3,
                &mut rand::thread_rng(),
            );
            proxyfleet::api::gateways::answer(None, None, &chosen, &set.locations_json)
        });
    let webhook = warp::path!("api" / "v1" / "stripe" / "webhook")
        .and(warp::post())
        .and(warp::header::optional::<String>("stripe-signature"))
        .and(warp::body::content_length_limit(256 * 1024))
        .and(warp::body::bytes())
        .map(|signature: Option<String>, body: bytes::Bytes| {
            let now = proxyfleet::clock::now_ms() / 1000;
            let verified = signature.as_deref().is_some_and(|header| {
                proxyfleet::billing::signature::verify(WEBHOOK_SECRET, header, &body, now as i64)
                    .is_ok()
            });
            let parsed = verified && proxyfleet::billing::event::parse(&body).is_ok();
            let status = if parsed {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            };
            warp::reply::with_status(
                warp::reply::json(&serde_json::json!({ "received": parsed })),
                status,
            )
        });
    println!("baseline listening on http://{address}");
    warp::serve(
        register
            .or(long_poll)
            .or(config)
            .or(json)
            .or(webhook)
            .or(bump),
    )
    .run(address)
    .await;
}
