//! Durability through the real binary: a clean restart keeps everything, and every
//! registration acknowledged before a kill -9 is still there afterwards.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{client, proxy_names, ServerProcess, ADMIN_TOKEN, REGISTRY_TOKEN};

/// The admin's list of live proxies.
async fn proxies(server: &ServerProcess) -> Value {
    let response = client()
        .get(server.url("/api/v1/admin/proxies"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn list(server: &ServerProcess) -> Vec<String> {
    proxy_names(&proxies(server).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_survive_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    for name in ["one", "two", "three"] {
        let response = server.enrol(name, 7000).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let status = server.terminate();
    assert!(
        status.success(),
        "SIGTERM should end in a clean exit, got {status}"
    );

    let server = ServerProcess::start(dir.path(), &[]);
    assert_eq!(list(&server).await, vec!["one", "three", "two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_registrations_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let server = ServerProcess::start(dir.path(), &[]);
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let mut writers = Vec::new();
        for writer in 0..16 {
            let url = server.url("/register");
            let acked = acked.clone();
            writers.push(tokio::spawn(async move {
                let client = client();
                for i in 0..10_000 {
                    let name = format!("r{round}w{writer}n{i}");
                    let sent = client
                        .post(&url)
                        .bearer_auth(REGISTRY_TOKEN)
                        .form(&[
                            ("name", name.as_str()),
                            ("ip", "127.0.0.1"),
                            ("port", "7000"),
                        ])
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == StatusCode::OK => {
                            acked.lock().unwrap().insert(name);
                        }
                        _ => return, // the server is gone
                    }
                }
            }));
        }
        // Let writes flow (however slow the machine), then kill the server mid-stream.
        let wanted = 100 + 200 * round as usize;
        let started = std::time::Instant::now();
        while acked.lock().unwrap().len() < wanted && started.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.kill9();
        for writer in writers {
            writer.await.unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        assert!(
            acked.len() > 50,
            "round {round}: too few writes before the kill ({})",
            acked.len()
        );

        let server = ServerProcess::start(dir.path(), &[]);
        let present: BTreeSet<String> = list(&server).await.into_iter().collect();
        let lost: Vec<&String> = acked.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged registrations lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );
        server.kill9();
    }
}

/// Every proxy's `clients` as the admin list shows it.
async fn clients_by_proxy(server: &ServerProcess) -> std::collections::BTreeMap<String, u64> {
    proxies(server).await["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let clients = p["clients"].as_u64().unwrap_or(0);
            (p["name"].as_str().unwrap().to_string(), clients)
        })
        .collect()
}

/// Heartbeats take the deferred path (a journal of their own, folded into the store later):
/// each proxy counts its clients up, one heartbeat after the other, and a kill -9 in the
/// middle loses none that was acknowledged. A kill while a heartbeat was in flight may keep
/// that one too (it may have reached the disk), never anything older than the last answer.
/// Then a clean restart, and the same again from where the store stands: the journal written
/// after a replay is read correctly by the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_heartbeats_survive_kill_9() {
    const PROXIES: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path(), &[]);
    let mut secrets = Vec::new();
    for i in 0..PROXIES {
        let name = format!("hb{i}");
        let enrolled: Value = server.enrol(&name, 7000).await.json().await.unwrap();
        let secret = enrolled["proxy_secret"].as_str().unwrap().to_string();
        secrets.push((name, secret));
    }
    let mut server = Some(server);
    let mut floor = vec![0u64; PROXIES];
    for round in 0..3u64 {
        let running = server.take().unwrap();
        let acked: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(floor.clone()));
        let mut writers = Vec::new();
        for (index, (name, secret)) in secrets.iter().cloned().enumerate() {
            let (url, acked) = (running.url("/register"), acked.clone());
            let start = floor[index];
            writers.push(tokio::spawn(async move {
                let client = client();
                for clients in start + 1.. {
                    let sent = client
                        .post(&url)
                        .bearer_auth(&secret)
                        .form(&[
                            ("name", name.as_str()),
                            ("ip", "127.0.0.1"),
                            ("port", "7000"),
                            ("clients", clients.to_string().as_str()),
                        ])
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == StatusCode::OK => {
                            acked.lock().unwrap()[index] = clients;
                        }
                        Ok(response) => panic!("heartbeat refused: {}", response.status()),
                        Err(_) => return, // the server is gone
                    }
                }
            }));
        }
        // Let heartbeats flow (however slow the machine), then kill the server mid-stream.
        let wanted = 200 + 100 * round;
        let started = std::time::Instant::now();
        let progress =
            |acked: &[u64]| -> u64 { acked.iter().zip(&floor).map(|(a, f)| a - f).sum() };
        while progress(&acked.lock().unwrap()) < wanted
            && started.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        running.kill9();
        for writer in writers {
            writer.await.unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        assert!(progress(&acked) > 50, "round {round}: too few heartbeats");
        // They took the deferred path (a transaction per batch would pass the rest too).
        let journal = std::fs::metadata(dir.path().join("deferred.journal")).unwrap();
        assert!(
            journal.len() > 0,
            "round {round}: no heartbeat reached the journal"
        );

        let restarted = ServerProcess::start(dir.path(), &[]);
        let present = clients_by_proxy(&restarted).await;
        for (index, (name, _)) in secrets.iter().enumerate() {
            let shown = present[name];
            assert!(
                shown == acked[index] || shown == acked[index] + 1,
                "round {round}: {name} shows {shown} clients, its last acknowledged heartbeat said {}",
                acked[index]
            );
            floor[index] = shown;
        }
        if round == 1 {
            // A clean stop folds everything; the next start has nothing to replay.
            assert!(restarted.terminate().success());
            let again = ServerProcess::start(dir.path(), &[]);
            let after_clean_stop = clients_by_proxy(&again).await;
            assert_eq!(
                after_clean_stop, present,
                "a clean restart changed what was shown"
            );
            server = Some(again);
        } else {
            server = Some(restarted);
        }
    }
    server.unwrap().kill9();
}
