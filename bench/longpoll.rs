//! Long-poll benchmark: WAITERS clients hold `GET /api/v1/config?wait=SECS` at once (each with
//! its own connection, tokens taken in turn from TOKENS_FILE), then one change is made (a POST
//! of TRIGGER_FORM to TRIGGER_URL with TRIGGER_TOKEN) that changes every waiter's config. It
//! reports how long each waiter took to get its new config after the change was sent, and the
//! server's resident memory (SERVER_PID) before the waiters came and while they waited.
//!
//! Plain HTTP/1.1 over TCP (one request per connection, `Connection: close`), so the count of
//! requests written is exact and no client pool sits in between.
//!
//! Usage: bench-longpoll BASE_URL TOKENS_FILE WAITERS WAIT_SECS SERVER_PID TRIGGER_URL TRIGGER_TOKEN TRIGGER_FORM
//! Prints: `RESULT waiters answered_200 p50_ms p99_ms max_ms rss_before_kib rss_waiting_kib`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Failure = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    host: String,
    tokens: Vec<String>,
    waiters: usize,
    wait_secs: u64,
    server_pid: u32,
    trigger_url: String,
    trigger_token: String,
    trigger_form: String,
}

fn args() -> Result<Args, Failure> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 8 {
        return Err("usage: bench-longpoll BASE_URL TOKENS_FILE WAITERS WAIT_SECS SERVER_PID TRIGGER_URL TRIGGER_TOKEN TRIGGER_FORM".into());
    }
    let host = a[0]
        .strip_prefix("http://")
        .ok_or("BASE_URL must be http://host:port")?
        .trim_end_matches('/')
        .to_string();
    let tokens: Vec<String> = std::fs::read_to_string(&a[1])?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if tokens.is_empty() {
        return Err("no tokens in TOKENS_FILE".into());
    }
    Ok(Args {
        host,
        tokens,
        waiters: a[2].parse()?,
        wait_secs: a[3].parse()?,
        server_pid: a[4].parse()?,
        trigger_url: a[5].clone(),
        trigger_token: a[6].clone(),
        trigger_form: a[7].clone(),
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Sends one long-poll and returns (status, when the whole answer had arrived).
async fn long_poll(
    host: String,
    token: String,
    wait_secs: u64,
    sent: Arc<AtomicUsize>,
) -> Result<(u16, Instant), Failure> {
    let mut stream = TcpStream::connect(&host).await?;
    let request = format!(
        "GET /api/v1/config?wait={wait_secs} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    sent.fetch_add(1, Ordering::SeqCst);
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let done = Instant::now();
    let status = std::str::from_utf8(answer.get(9..12).unwrap_or_default())?.parse()?;
    Ok((status, done))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = args()?;
    let rss_before = rss_kib(args.server_pid);
    let sent = Arc::new(AtomicUsize::new(0));
    let mut waiters = Vec::with_capacity(args.waiters);
    for i in 0..args.waiters {
        let token = args.tokens[i % args.tokens.len()].clone();
        waiters.push(tokio::spawn(long_poll(
            args.host.clone(),
            token,
            args.wait_secs,
            sent.clone(),
        )));
        // Connect in waves, so the listen backlog never overflows.
        if i % 500 == 499 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let connecting = Instant::now();
    while sent.load(Ordering::SeqCst) < args.waiters {
        if connecting.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "only {} of {} long-polls were sent in 60 s",
                sent.load(Ordering::SeqCst),
                args.waiters
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the server read every request and park it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_waiting = rss_kib(args.server_pid);

    let changed = Instant::now();
    let trigger = reqwest::Client::new()
        .post(&args.trigger_url)
        .bearer_auth(&args.trigger_token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(args.trigger_form.clone())
        .send()
        .await?;
    if !trigger.status().is_success() {
        return Err(format!("the change was refused: {}", trigger.status()).into());
    }

    let mut latencies = Vec::with_capacity(args.waiters);
    let mut answered = 0;
    for waiter in waiters {
        let (status, done) = waiter.await??;
        if status == 200 {
            answered += 1;
        }
        latencies.push(done.saturating_duration_since(changed).as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "RESULT {} {} {:.1} {:.1} {:.1} {} {}",
        args.waiters,
        answered,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
        rss_before,
        rss_waiting
    );
    Ok(())
}
