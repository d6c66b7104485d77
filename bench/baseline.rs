//! The bare-warp baseline for benchmarks: the same request handling as proxyfleet up to
//! storage, with nothing stored and nothing read from disk. The ratio proxyfleet / baseline is
//! what BENCHMARKS.md reports, so the figures mean the same on any machine.
//!
//! - `POST /register`: bearer check, body limit, form parsing, the same validation.
//! - `GET /api/v1/config`: bearer check, a fixed three-proxy config serialised and hashed for
//!   its ETag, 304 on If-None-Match, exactly as the real handler renders it.
//!
//! Usage: bench-baseline ADDR TOKEN

use std::net::SocketAddr;

use proxyfleet::distribution::config::{matches, render, ClientConfig, ProxyEntry};
use proxyfleet::http::body::{fields, Fields};
use proxyfleet::http::{auth::bearer, TokenHash};
use proxyfleet::registry::{validate, Role};
use warp::http::{header, Response, StatusCode};
use warp::Filter;

fn fixed_config() -> ClientConfig {
    let proxies = (1..=3)
        .map(|i| ProxyEntry {
            name: format!("p{i}"),
            ip: format!("127.0.0.{i}"),
            port: 8443,
            role: Role::Fallback,
            country: Some("DE".into()),
            city: None,
        })
        .collect();
    ClientConfig {
        version: 1,
        proxies,
        poll_after_secs: 300,
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let address: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| ([127, 0, 0, 1], 18090).into());
    let token = TokenHash::of(&args.next().unwrap_or_else(|| "bench-token".into()));
    let register = warp::path!("register")
        .and(warp::post())
        .and(bearer(token))
        .and(fields(64 * 1024))
        .map(|fields: Fields| {
            let rules = validate::Rules {
                allow_private_ips: true,
            };
            match validate::registration(&fields, &rules) {
                Ok(reg) => {
                    warp::reply::json(&serde_json::json!({ "name": reg.name, "expires_at": 0 }))
                }
                Err(e) => warp::reply::json(&serde_json::json!({ "error": e.code() })),
            }
        });
    let config = warp::path!("api" / "v1" / "config")
        .and(warp::get())
        .and(bearer(token))
        .and(warp::header::optional::<String>("if-none-match"))
        .map(|if_none_match: Option<String>| {
            let (body, etag) = render(&fixed_config());
            let builder = Response::builder().header(header::ETAG, &etag);
            if if_none_match.is_some_and(|inm| matches(&inm, &etag)) {
                builder.status(StatusCode::NOT_MODIFIED).body(Vec::new())
            } else {
                builder
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body)
            }
            .unwrap_or_default()
        });
    println!("baseline listening on http://{address}");
    warp::serve(register.or(config)).run(address).await;
}
