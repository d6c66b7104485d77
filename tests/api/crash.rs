//! Crash safety through the real binary: registrations, user creations, invitation accepts
//! and Stripe webhook events at full speed, the server killed with SIGKILL at a random moment
//! twenty times. After every kill `proxyfleet check` passes; at the end every write that got a
//! 2xx is there, and the Redis mirror that ran through all of it equals a fresh copy of sled.
//! Meanwhile the store is compacted again and again, so kills also land during compactions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::billing::{paid_intent, signed_webhook};
use crate::check::run_check;
use crate::helpers::{client, ServerProcess, ADMIN_TOKEN, REGISTRY_TOKEN};
use crate::redis_support::{assert_equals_a_fresh_copy, RedisServer};

const KILLS: usize = 20;
const WEBHOOK_SECRET: &str = "whsec_crash_test";

/// Every write the server acknowledged, by kind.
#[derive(Default)]
struct Acked {
    proxies: BTreeSet<String>,
    /// user id -> email, for admin-created and invited users alike.
    users: BTreeMap<u64, String>,
    /// invited user id -> inviter id.
    invited: BTreeMap<u64, u64>,
    events: BTreeSet<String>,
    /// Store compactions that completed (not writes: kept out of `total`).
    compactions: usize,
}

type Shared = Arc<Mutex<Acked>>;

impl Acked {
    fn total(&self) -> usize {
        self.proxies.len() + self.users.len() + self.events.len()
    }
}

/// One writer: calls `step(i)` until the server stops answering; each `Some` is recorded.
fn writer<F, Fut>(acked: &Shared, step: F) -> tokio::task::JoinHandle<()>
where
    F: Fn(usize) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Box<dyn FnOnce(&mut Acked) + Send>, ()>> + Send,
{
    let acked = acked.clone();
    tokio::spawn(async move {
        for i in 0.. {
            match step(i).await {
                Ok(record) => record(&mut acked.lock().unwrap()),
                Err(()) => return, // refused or the server is gone
            }
        }
    })
}

async fn ok_json(
    sent: reqwest_middleware::Result<reqwest::Response>,
    want: StatusCode,
) -> Result<Value, ()> {
    match sent {
        Ok(response) if response.status() == want => response.json().await.map_err(|_| ()),
        _ => Err(()),
    }
}

/// Starts the four kinds of writers against `server`, tagged with `round` so names never repeat.
fn start_writers(
    server: &ServerProcess,
    round: usize,
    inviter: (u64, &str),
    payer: u64,
    acked: &Shared,
) -> Vec<tokio::task::JoinHandle<()>> {
    let http = client();
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, url) = (http.clone(), server.url("/register"));
        writers.push(writer(acked, move |i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let name = format!("k{round}r{w}n{i}");
                let form = [
                    ("name", name.as_str()),
                    ("ip", "127.0.0.1"),
                    ("port", "7000"),
                ];
                let sent = http
                    .post(&url)
                    .bearer_auth(REGISTRY_TOKEN)
                    .form(&form)
                    .send()
                    .await;
                ok_json(sent, StatusCode::OK).await?;
                Ok(Box::new(move |a: &mut Acked| {
                    a.proxies.insert(name);
                }) as Box<dyn FnOnce(&mut Acked) + Send>)
            }
        }));
    }
    for w in 0..2 {
        let (http, url) = (http.clone(), server.url("/api/v1/admin/users"));
        writers.push(writer(acked, move |i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let email = format!("k{round}u{w}n{i}@example.org");
                let sent = http
                    .post(&url)
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&json!({ "email": email }))
                    .send()
                    .await;
                let id = ok_json(sent, StatusCode::CREATED).await?["id"]
                    .as_u64()
                    .ok_or(())?;
                Ok(Box::new(move |a: &mut Acked| {
                    a.users.insert(id, email);
                }) as Box<dyn FnOnce(&mut Acked) + Send>)
            }
        }));
    }
    for w in 0..2 {
        let http = http.clone();
        let (invite, base) = (server.url("/api/v1/invitations"), server.url(""));
        let (inviter_id, token) = (inviter.0, inviter.1.to_string());
        writers.push(writer(acked, move |i| {
            let (http, invite, base, token) =
                (http.clone(), invite.clone(), base.clone(), token.clone());
            async move {
                let email = format!("k{round}i{w}n{i}@example.org");
                let sent = http
                    .post(&invite)
                    .bearer_auth(&token)
                    .json(&json!({ "email": email }))
                    .send()
                    .await;
                let code = ok_json(sent, StatusCode::CREATED).await?["code"]
                    .as_str()
                    .ok_or(())?
                    .to_string();
                let sent = http
                    .post(format!("{base}/api/v1/invitations/{code}/accept"))
                    .send()
                    .await;
                let id = ok_json(sent, StatusCode::CREATED).await?["id"]
                    .as_u64()
                    .ok_or(())?;
                Ok(Box::new(move |a: &mut Acked| {
                    a.users.insert(id, email);
                    a.invited.insert(id, inviter_id);
                }) as Box<dyn FnOnce(&mut Acked) + Send>)
            }
        }));
    }
    for w in 0..2 {
        let (http, url) = (http.clone(), server.url("/api/v1/stripe/webhook"));
        writers.push(writer(acked, move |i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let event = format!("evt_k{round}w{w}n{i}");
                let body = paid_intent(&event, &format!("pi_k{round}w{w}n{i}"), payer, "pro-1m");
                let sent = signed_webhook(&http, url, WEBHOOK_SECRET, body)
                    .send()
                    .await;
                ok_json(sent, StatusCode::OK).await?;
                Ok(Box::new(move |a: &mut Acked| {
                    a.events.insert(event);
                }) as Box<dyn FnOnce(&mut Acked) + Send>)
            }
        }));
    }
    // Not a writer: rewrites the store into a new generation, over and over.
    let (http, url) = (http.clone(), server.url("/api/v1/admin/store/compact"));
    writers.push(writer(acked, move |_| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let sent = http.post(&url).bearer_auth(ADMIN_TOKEN).send().await;
            ok_json(sent, StatusCode::OK).await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Box::new(|a: &mut Acked| a.compactions += 1) as Box<dyn FnOnce(&mut Acked) + Send>)
        }
    }));
    writers
}

/// Every user id the server lists, with email and inviter, read page by page.
async fn listed_users(server: &ServerProcess) -> BTreeMap<u64, (String, Option<u64>)> {
    let mut users = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = server
            .admin_json(&format!("/api/v1/admin/users?limit=500&after={after}"))
            .await;
        for user in page["users"].as_array().unwrap() {
            let id = user["id"].as_u64().unwrap();
            users.insert(
                id,
                (
                    user["email"].as_str().unwrap().to_string(),
                    user["invited_by"].as_u64(),
                ),
            );
        }
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => return users,
        }
    }
}

async fn listed_events(server: &ServerProcess) -> BTreeSet<String> {
    let mut events = BTreeSet::new();
    let mut after = String::new();
    loop {
        let page = server
            .admin_json(&format!("/api/v1/admin/payments?limit=500&after={after}"))
            .await;
        for payment in page["payments"].as_array().unwrap() {
            events.insert(payment["event_id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(next) => after = next.to_string(),
            None => return events,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_twenty_kills_and_redis_ends_equal_to_sled() {
    let redis = RedisServer::start();
    let data = tempfile::tempdir().unwrap();
    let redis_url = redis.url();
    let env = [
        ("PROXYFLEET_REDIS_URL", redis_url.as_str()),
        ("PROXYFLEET_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        // The whole test runs within one heartbeat lifetime: no registration expires.
        ("PROXYFLEET_HEARTBEAT_TTL_SECS", "3600"),
        // No periodic rebalance: one that runs between the final comparison's two dumps
        // (plans, users placed) would tell the streamed copy from the fresh one.
        ("PROXYFLEET_REBALANCE_INTERVAL_SECS", "0"),
        // One inviter keeps inviting through every round: no quota.
        ("PROXYFLEET_INVITATIONS_PER_PERIOD", "4000000000"),
    ];

    // The inviter and the paying user exist before the first kill.
    let server = ServerProcess::start(data.path(), &env);
    let http = client();
    let mut made = Vec::new();
    for email in ["inviter@example.org", "payer@example.org"] {
        let sent = http
            .post(server.url("/api/v1/admin/users"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "email": email }))
            .send()
            .await;
        made.push(
            ok_json(sent, StatusCode::CREATED)
                .await
                .expect("setup user"),
        );
    }
    let inviter = (
        made[0]["id"].as_u64().unwrap(),
        made[0]["token"].as_str().unwrap().to_string(),
    );
    let payer = made[1]["id"].as_u64().unwrap();
    server.kill9();

    let acked: Shared = Arc::default();
    let mut random = rand::thread_rng();
    for round in 0..KILLS {
        let server = ServerProcess::start(data.path(), &env);
        let before = acked.lock().unwrap().total();
        let writers = start_writers(&server, round, (inviter.0, &inviter.1), payer, &acked);
        // Some writes first (however slow the machine), then a random moment.
        let started = Instant::now();
        while acked.lock().unwrap().total() < before + 20
            && started.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(random.gen_range(0..400))).await;
        server.kill9();
        for writer in writers {
            writer.await.unwrap();
        }
        assert!(
            acked.lock().unwrap().total() >= before + 20,
            "round {round}: too few writes before the kill"
        );
        let (ok, text) = run_check(data.path());
        assert!(
            ok,
            "round {round}: proxyfleet check after the kill:\n{text}"
        );
    }

    let server = ServerProcess::start(data.path(), &env);
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.compactions > 0,
        "no compaction completed: the kills never met a rewritten store"
    );
    let proxies: BTreeSet<String> =
        crate::helpers::proxy_names(&server.admin_json("/api/v1/admin/proxies").await)
            .into_iter()
            .collect();
    let lost: Vec<&String> = acked.proxies.difference(&proxies).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged registrations lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );

    let users = listed_users(&server).await;
    for (id, email) in &acked.users {
        let listed = users
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged user {id} ({email}) lost"));
        assert_eq!(&listed.0, email, "user {id}");
        assert_eq!(
            listed.1,
            acked.invited.get(id).copied(),
            "inviter of user {id}"
        );
    }
    let events = listed_events(&server).await;
    let lost: Vec<&String> = acked.events.difference(&events).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged payments lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    assert!(
        acked.proxies.len() >= KILLS && acked.users.len() >= KILLS && acked.events.len() >= KILLS,
        "every kind of write ran: {} proxies, {} users ({} invited), {} payments",
        acked.proxies.len(),
        acked.users.len(),
        acked.invited.len(),
        acked.events.len()
    );
    eprintln!(
        "crash test: {KILLS} kills; acknowledged {} registrations, {} users ({} by invitation), {} payments; {} compactions",
        acked.proxies.len(),
        acked.users.len(),
        acked.invited.len(),
        acked.events.len(),
        acked.compactions
    );
    assert_equals_a_fresh_copy(&server.url(""), &redis).await;
}
