//! Helpers of `bench/mirror.sh`.
//!
//! `bench-mirror seed DATA_DIR USERS TOKENS_FILE SAMPLE [SPREAD]`: writes USERS users straight
//! into a stopped server's store (each with three fallback proxies fb1..fb3, or with SPREAD one
//! fallback proxy of p0..p{SPREAD-1} in turn; through the same transaction code the API uses),
//! and SAMPLE of their tokens to TOKENS_FILE. Also used by `bench/rebalance.sh`.
//!
//! `bench-mirror lag REDIS_URL SECONDS [PREFIX]`: listens to the mirror's events for SECONDS and
//! prints the lag of each mirrored change (publish time minus commit time), weighted by the
//! records the event carries: `RESULT changes changes_per_sec p50_ms p99_ms max_ms`.

use std::io::Write;
use std::time::{Duration, Instant};

use futures::StreamExt;
use proxyfleet::clock::now_ms;
use proxyfleet::fleet::links::set_proxies;
use proxyfleet::fleet::model::{Email, ProxyName, User, UserId};
use proxyfleet::fleet::users::NEXT_USER_ID;
use proxyfleet::http::TokenHash;
use proxyfleet::store::{Store, TreeId};

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["seed", dir, users, tokens, sample] => {
            seed(
                dir,
                users.parse().map_err(|_| "USERS")?,
                tokens,
                sample.parse().map_err(|_| "SAMPLE")?,
                None,
            )
            .await
        }
        ["seed", dir, users, tokens, sample, spread] => {
            seed(
                dir,
                users.parse().map_err(|_| "USERS")?,
                tokens,
                sample.parse().map_err(|_| "SAMPLE")?,
                Some(spread.parse().map_err(|_| "SPREAD")?),
            )
            .await
        }
        ["lag", url, seconds] => {
            lag(url, seconds.parse().map_err(|_| "SECONDS")?, "proxyfleet:").await
        }
        ["lag", url, seconds, prefix] => {
            lag(url, seconds.parse().map_err(|_| "SECONDS")?, prefix).await
        }
        _ => Err(
            "usage: bench-mirror seed DIR USERS TOKENS SAMPLE [SPREAD] | lag URL SECONDS [PREFIX]"
                .into(),
        ),
    }
}

async fn seed(
    dir: &str,
    users: u64,
    tokens_file: &str,
    sample: u64,
    spread: Option<u64>,
) -> Result<(), String> {
    let store = Store::open(std::path::Path::new(dir)).map_err(|e| e.to_string())?;
    let three: Vec<ProxyName> = ["fb1", "fb2", "fb3"]
        .iter()
        .map(|s| ProxyName::parse(s).expect("a valid name"))
        .collect();
    let proxies_of = |id: u64| match spread {
        Some(n) => vec![ProxyName::parse(&format!("p{}", id % n)).expect("a valid name")],
        None => three.clone(),
    };
    let mut tokens =
        std::io::BufWriter::new(std::fs::File::create(tokens_file).map_err(|e| e.to_string())?);
    let started = Instant::now();
    let mut made = 0;
    while made < users {
        let batch = (users - made).min(2_000);
        let now = now_ms();
        let ids = store
            .transaction(|tx| {
                let mut ids = Vec::new();
                for _ in 0..batch {
                    let id = tx.next(NEXT_USER_ID)?;
                    let email = Email::parse(&format!("u{id}@bench.example.org"))
                        .map_err(sled::transaction::ConflictableTransactionError::Abort)?;
                    let token = TokenHash::of(&format!("pfu_bench{id}"));
                    tx.put(TreeId::UserEmails, email.as_str(), &id)?;
                    tx.put(TreeId::UserTokens, token.as_bytes(), &id)?;
                    let mut user = User::new(UserId(id), email, token, None, now);
                    set_proxies(tx, &mut user, proxies_of(id), "seed", now)?;
                    ids.push(id);
                }
                Ok(ids)
            })
            .map_err(|e| e.to_string())?;
        for id in ids {
            if id <= sample {
                writeln!(tokens, "pfu_bench{id}").map_err(|e| e.to_string())?;
            }
        }
        made += batch;
    }
    // Leave the store as a server of this version would: indexed and stamped with the current
    // data format, so the server starting on it does not migrate it first.
    proxyfleet::fleet::invitees::backfill(&store).map_err(|e| e.to_string())?;
    proxyfleet::store::format::write(&store, proxyfleet::store::format::DATA_FORMAT)
        .map_err(|e| e.to_string())?;
    store.flush_now().map_err(|e| e.to_string())?;
    tokens.flush().map_err(|e| e.to_string())?;
    println!(
        "seeded {made} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn lag(url: &str, seconds: u64, prefix: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
    pubsub
        .subscribe(format!("{prefix}events"))
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = pubsub.into_on_message();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let mut lags: Vec<(u64, u64)> = Vec::new(); // (lag ms, records)
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, messages.next()).await {
        let received = now_ms();
        let Ok(payload) = message.get_payload::<String>() else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&payload) else {
            continue;
        };
        let (Some(at), Some(ids)) = (event["at_ms"].as_u64(), event["ids"].as_array()) else {
            continue;
        };
        lags.push((received.saturating_sub(at), ids.len().max(1) as u64));
    }
    lags.sort();
    let total: u64 = lags.iter().map(|(_, n)| n).sum();
    let percentile = |p: f64| -> u64 {
        let wanted = (total as f64 * p).ceil() as u64;
        let mut seen = 0;
        for (lag, n) in &lags {
            seen += n;
            if seen >= wanted {
                return *lag;
            }
        }
        0
    };
    println!(
        "RESULT {total} {:.0} {} {} {}",
        total as f64 / seconds as f64,
        percentile(0.5),
        percentile(0.99),
        lags.last().map_or(0, |(lag, _)| *lag)
    );
    Ok(())
}
