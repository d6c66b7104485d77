//! Durability through the real binary: a clean restart keeps everything, and every
//! registration acknowledged before a kill -9 is still there afterwards.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{client, proxy_names, ServerProcess, ADMIN_TOKEN, REGISTRY_TOKEN};

async fn list(server: &ServerProcess) -> Vec<String> {
    let response = client()
        .get(server.url("/api/v1/admin/proxies"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    proxy_names(&response.json::<Value>().await.unwrap())
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
