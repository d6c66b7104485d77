//! Store compaction through the real binary: heartbeats make sled grow (it keeps the space of
//! every rewritten value); a compaction gives the space back, keeps every record at its newest
//! value, survives a kill -9, and runs by itself once the store passes its threshold.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::check::run_check;
use crate::helpers::{client, eventually, proxy_names, ProxyKeys, ServerProcess};

const PROXIES: usize = 100;
const ROUNDS: usize = 60;

/// `ROUNDS` heartbeats from each of `PROXIES` proxies, 16 at a time; the last one of proxy `p`
/// reports `p + last_round` clients.
async fn churn(server: &ServerProcess, keys: &ProxyKeys, first_round: usize) {
    let http = client();
    let url = server.url("");
    let mut lanes = Vec::new();
    for lane in 0..16 {
        let (http, url, keys) = (http.clone(), url.clone(), keys.clone());
        lanes.push(tokio::spawn(async move {
            for round in first_round..first_round + ROUNDS {
                for p in (lane..PROXIES).step_by(16) {
                    let (name, clients) = (format!("churn{p}"), (p + round).to_string());
                    let form = [
                        ("name", name.as_str()),
                        ("ip", "127.0.0.1"),
                        ("port", "7000"),
                        ("clients", clients.as_str()),
                    ];
                    let sent = keys.register(&http, &url, &name, &form).await;
                    assert_eq!(sent.status(), StatusCode::OK);
                }
            }
        }));
    }
    for lane in lanes {
        lane.await.unwrap();
    }
}

/// Every proxy's reported clients, by name.
async fn clients_by_proxy(server: &ServerProcess) -> Vec<(String, u64)> {
    let list = server.admin_json("/api/v1/admin/proxies?limit=1000").await;
    let mut found: Vec<(String, u64)> = list["proxies"]
        .as_array()
        .expect("proxies")
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_string();
            (name, p["clients"].as_u64().unwrap_or(u64::MAX))
        })
        .collect();
    found.sort();
    found
}

fn expected_clients(last_round: usize) -> Vec<(String, u64)> {
    let mut expected: Vec<(String, u64)> = (0..PROXIES)
        .map(|p| (format!("churn{p}"), (p + last_round) as u64))
        .collect();
    expected.sort();
    expected
}

fn generation_dirs(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("store-"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_gives_back_the_space_keeps_the_newest_values_and_survives_a_kill() {
    let data = tempfile::tempdir().unwrap();
    let never = [
        ("PROXYFLEET_STORE_COMPACT_RATIO", "0"),
        ("PROXYFLEET_HEARTBEAT_TTL_SECS", "3600"),
    ];
    let server = ServerProcess::start(data.path(), &never);
    let keys = ProxyKeys::default();
    churn(&server, &keys, 0).await;
    let status = server.admin_json("/api/v1/admin/store").await;
    assert_eq!(status["generation"], 1);
    assert_eq!(
        status["next_at_bytes"],
        Value::Null,
        "ratio 0 never compacts"
    );

    let done = server.admin_post_json("/api/v1/admin/store/compact").await;
    let (before, after) = (
        done["bytes_before"].as_u64().unwrap(),
        done["bytes_after"].as_u64().unwrap(),
    );
    eprintln!(
        "{} heartbeats: {before} bytes before, {after} after, {} records",
        PROXIES * ROUNDS,
        done["records"]
    );
    assert!(after * 2 < before, "{after} bytes after, {before} before");
    assert_eq!(done["generation"], 2);
    assert_eq!(
        clients_by_proxy(&server).await,
        expected_clients(ROUNDS - 1)
    );

    // Writes after the switch land in the new generation and survive a kill -9.
    // The secrets issued before the compaction still authenticate after it.
    churn(&server, &keys, ROUNDS).await;
    server.kill9();
    let (ok, text) = run_check(data.path());
    assert!(ok, "proxyfleet check after the kill:\n{text}");
    assert_eq!(
        generation_dirs(data.path()),
        ["store-2"],
        "the old generation is deleted"
    );

    // Past its threshold, the store compacts by itself (the first check runs at start).
    let soon = [
        ("PROXYFLEET_STORE_COMPACT_RATIO", "2"),
        ("PROXYFLEET_STORE_COMPACT_MIN_MB", "0"),
        ("PROXYFLEET_HEARTBEAT_TTL_SECS", "3600"),
    ];
    let server = ServerProcess::start(data.path(), &soon);
    let status = eventually(
        Duration::from_secs(20),
        "an automatic compaction",
        || async {
            let status = server.admin_json("/api/v1/admin/store").await;
            (status["compactions"] == 1).then_some(status)
        },
    )
    .await;
    assert_eq!(status["generation"], 3);
    assert!(status["bytes_after_last"].as_u64().unwrap() > 0);
    assert_eq!(
        clients_by_proxy(&server).await,
        expected_clients(2 * ROUNDS - 1)
    );
    let names = proxy_names(&server.admin_json("/api/v1/admin/proxies?limit=1000").await);
    assert_eq!(names.len(), PROXIES);
}
