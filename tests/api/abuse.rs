//! Holding up under abuse, with real sockets: slow and idle connections from one address,
//! under a low open-file limit, do not stop another address's heartbeats; over the caps a
//! connection gets a 503 rather than a stall; a slow TLS handshake is cut.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{client, ServerProcess, ADMIN_TOKEN, REGISTRY_TOKEN};

/// A connection from `source` (a loopback address other than the heartbeats').
async fn connect_from(source: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().unwrap())?;
    socket.connect(to).await
}

/// What became of the attack's connections.
#[derive(Debug, Default)]
struct Tally {
    /// Answered with a 503 (over a cap).
    refused: usize,
    /// Closed by the server without an answer (its header or idle timeout).
    closed: usize,
    /// Answered otherwise (the first bytes read).
    answered: Vec<String>,
    /// Still open when the hold ended.
    held: usize,
    /// Not opened (this process's own limits).
    not_opened: usize,
}

/// Opens `count` connections from 127.0.0.2: every other one sends a request's headers a
/// line at a time and never finishes, the rest send nothing. Each is held until the server
/// closes it or `hold` ends.
async fn attack(to: SocketAddr, count: usize, hold: Duration) -> Tally {
    enum Outcome {
        Refused,
        Closed,
        Answered(String),
        Held,
    }
    let mut tally = Tally::default();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let Ok(mut stream) = connect_from("127.0.0.2", to).await else {
            tally.not_opened += 1;
            continue;
        };
        tasks.spawn(async move {
            let slow = i % 2 == 0;
            let started = tokio::time::Instant::now();
            if slow {
                let _ = stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                    .await;
            }
            let mut buffer = [0u8; 512];
            loop {
                let read =
                    tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buffer));
                match read.await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Outcome::Closed,
                    Ok(Ok(n)) => {
                        let answer = String::from_utf8_lossy(&buffer[..n]).into_owned();
                        return match answer.contains(" 503 ") {
                            true => Outcome::Refused,
                            false => Outcome::Answered(answer),
                        };
                    }
                    Err(_) if started.elapsed() >= hold => return Outcome::Held,
                    Err(_) => {
                        if slow && stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
                            return Outcome::Closed;
                        }
                    }
                }
            }
        });
    }
    while let Some(outcome) = tasks.join_next().await {
        match outcome.expect("an attacking connection's task") {
            Outcome::Refused => tally.refused += 1,
            Outcome::Closed => tally.closed += 1,
            Outcome::Answered(answer) => tally.answered.push(answer),
            Outcome::Held => tally.held += 1,
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_slow_or_idle_connections_do_not_expire_a_heartbeating_proxy() {
    let root = tempfile::tempdir().unwrap();
    let server = ServerProcess::start_with_open_files(
        &root.path().join("data"),
        &[("PROXYFLEET_HEARTBEAT_TTL_SECS", "5")],
        1024,
    );
    let http = client();
    let enrolled = server.enrol("steady", 9001).await;
    assert_eq!(enrolled.status(), StatusCode::OK);
    let secret = enrolled.headers()["x-proxy-secret"]
        .to_str()
        .unwrap()
        .to_string();

    // This process holds up to 2,000 sockets at once: its soft open-file limit may be 1,024.
    rlimit::increase_nofile_limit(u64::MAX).expect("raise this process's open-file limit");
    let hold = Duration::from_secs(12);
    let attack = tokio::spawn(attack(server.address, 2_000, hold));
    // Heartbeats every second through the attack, each on a new connection (as a proxy
    // agent behind NAT would), must all be answered: the proxy never expires.
    let started = tokio::time::Instant::now();
    let (mut beats, mut slowest) = (0, Duration::ZERO);
    while started.elapsed() < hold {
        let sent = tokio::time::Instant::now();
        let beat = reqwest::Client::new()
            .post(server.url("/register"))
            .bearer_auth(&secret)
            .form(&[("name", "steady"), ("ip", "127.0.0.1"), ("port", "9001")])
            .send()
            .await
            .expect("a heartbeat is answered during the attack");
        let (status, took) = (beat.status(), sent.elapsed());
        let body = beat.text().await.unwrap_or_default();
        assert_eq!(
            status,
            StatusCode::OK,
            "heartbeat {beats}, answered after {took:?}: {body}"
        );
        slowest = slowest.max(took);
        beats += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let tally = attack.await.unwrap();
    assert!(
        tally.refused > 1_000 && tally.answered.is_empty(),
        "over the per-address cap: 503, not a stall: {tally:?}"
    );

    let proxies: Value = http
        .get(server.url("/api/v1/admin/proxies"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(proxies["proxies"][0]["name"], "steady", "{proxies}");
    let events: Value = http
        .get(server.url("/api/v1/admin/registry/events"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !events.to_string().contains("expired"),
        "never expired (the slowest heartbeat took {slowest:?}): {events}"
    );
}

/// Reads until the server closes the connection; returns what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed_on_both_listeners() {
    let data = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::test_config(data.path());
    config.https_listen = Some("127.0.0.1:0".parse().unwrap());
    config.http_header_timeout_secs = 1;
    config.tls_handshake_timeout_secs = 1;
    config.http_idle_timeout_secs = 1;
    let app = proxyfleet::Application::build(config).await.unwrap();
    let (plain, tls) = (app.address(), app.https().unwrap().address);
    let shutdown = app.shutdown_handle();
    tokio::spawn(app.run_until_stopped());

    // Nothing sent, on either listener: closed (the TLS one without an answer).
    let mut silent = TcpStream::connect(plain).await.unwrap();
    let mut silent_tls = TcpStream::connect(tls).await.unwrap();
    // Half a request's headers: closed.
    let mut slow = TcpStream::connect(plain).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A whole request, then nothing on the kept-alive connection: answered, then closed.
    let mut idle = TcpStream::connect(plain).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();

    assert_eq!(until_closed(&mut silent_tls).await, "");
    let slow_answer = until_closed(&mut slow).await;
    assert!(!slow_answer.contains("200 OK"), "{slow_answer}");
    until_closed(&mut silent).await;
    let answered = until_closed(&mut idle).await;
    assert!(answered.starts_with("HTTP/1.1 200 OK"), "{answered}");
    shutdown.trigger();
}

#[tokio::test]
async fn long_polls_have_their_own_cap_and_do_not_hold_connection_slots() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.max_connections_per_ip = 4;
        c.max_long_polls_per_ip = 6;
    })
    .await;
    let (_, token, _) = app.create_user("waiting@example.org", None).await;

    // Six long-polls wait, each on its own connection: more than the 4 connection slots.
    let mut waiting = Vec::new();
    for _ in 0..6 {
        let mut stream = TcpStream::connect(app.address).await.unwrap();
        let request = format!(
            "GET /api/v1/config?wait=60 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        waiting.push(stream);
    }
    // The seventh is refused at once with the JSON error shape (503); the six still wait.
    let seventh = crate::helpers::eventually(Duration::from_secs(30), "the long-poll cap", || {
        let url = app.url("/api/v1/config?wait=60");
        let token = token.clone();
        async move {
            let response = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .ok()?;
            (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(response)
        }
    })
    .await;
    let body: Value = seventh.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    // Ordinary requests from the same address still get connection slots.
    for _ in 0..3 {
        let health = reqwest::Client::new()
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }
    // Five connections against a cap of four: one is answered with a readable 503 at once
    // (the others wait for headers until the header timeout closes them, saying nothing).
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(app.address).await.unwrap();
        reads.spawn(async move { until_closed(&mut stream).await });
    }
    let mut refused = None;
    while let Some(said) = reads.join_next().await {
        let said = said.unwrap();
        if !said.is_empty() {
            refused = Some(said);
            break;
        }
    }
    let refused = refused.expect("a connection over the cap is answered");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("\"busy\""), "{refused}");
    drop(waiting);
}

#[tokio::test]
async fn a_body_refused_from_its_length_leaves_the_answer_readable() {
    let app = crate::helpers::spawn_app().await;
    // A client that sends its whole 3 MiB body before reading, as most do, and asks to
    // close: the server refuses it from the Content-Length alone, with the body unread. The
    // client must still finish writing and read the whole 413, not a reset.
    let body = vec![b'x'; 3 * 1024 * 1024];
    for _ in 0..3 {
        let mut stream = TcpStream::connect(app.address).await.unwrap();
        let head = format!(
            "POST /register HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Authorization: Bearer {REGISTRY_TOKEN}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream
            .write_all(&body)
            .await
            .expect("the body is taken, not reset");
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .expect("the connection ends cleanly");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("body_too_large"), "{answer}");
    }
}
