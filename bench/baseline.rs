//! The bare-warp baseline for benchmarks: the same `/register` request handling as proxyfleet
//! up to storage (bearer check, body limit, form parsing into fields, the same validation) but
//! nothing stored, nothing flushed. The ratio proxyfleet / baseline is what BENCHMARKS.md
//! reports, so the figures mean the same on any machine.
//!
//! Usage: bench-baseline ADDR TOKEN

use std::net::SocketAddr;

use proxyfleet::http::body::{fields, Fields};
use proxyfleet::http::{auth::bearer, TokenHash};
use proxyfleet::registry::validate;
use warp::Filter;

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
    println!("baseline listening on http://{address}");
    warp::serve(register).run(address).await;
}
