//! Serving a warp filter on a TCP listener with bounds an attacker cannot stretch: a cap on
//! open connections in total and per client address (over it, a plain 503 and close, not a
//! stall), a TLS handshake timeout, hyper's header-read timeout (from the connection's start
//! to a first request's end of headers), and an idle timeout for kept-alive connections with
//! nothing in flight (hyper's timer does not cover the wait between requests). Long-poll waiters leave the connection caps for their own
//! (`LongPolls`), so clients waiting for a config change do not crowd out heartbeats.
//!
//! Measured before this existed: 500 connections sending headers slowly, or 1,100 idle ones,
//! were never closed; at 1,024 open files every request timed out and a heartbeating proxy
//! expired.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use warp::http::{header, Method};
use warp::hyper::body::Bytes;
use warp::hyper::server::conn::Http;
use warp::hyper::service::service_fn;
use warp::hyper::{Body, Request};
use warp::{Filter, Reply};

use crate::error::{Error, Result};

/// Bounds of one listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to send a request's headers.
    pub header_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// A connection with no request in flight and no byte either way for this long is closed.
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_long_polls: usize,
    pub max_long_polls_per_ip: usize,
    /// Requests whose body is read before routing (up to `MAX_KEPT_BODY` declared bytes) and
    /// handed on as a `KeptBody` extension too: the audit trail records what an admin asked.
    pub keep_body: Option<fn(&Method, &str) -> bool>,
    /// Once stopped, how long requests in flight may take to finish before their connections
    /// are cut.
    pub shutdown_grace: Duration,
}

/// How long requests in flight may take to finish once shutdown starts. hyper also waits for
/// idle keep-alive connections, which a client may hold for minutes: those are cut after it.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The largest body `keep_body` reads ahead; a larger or undeclared one is left unread.
pub const MAX_KEPT_BODY: u64 = 16 * 1024;

/// A request's body as read before routing (`Limits::keep_body`); the route reads its own copy.
#[derive(Debug, Clone)]
pub struct KeptBody(pub Bytes);

/// File descriptors kept for the store, Redis, SMTP, Varnish and logs, whatever the caps say.
const RESERVED_FILES: usize = 128;

impl Limits {
    /// The bounds every listener of this server gets (before fitting the open-file limit).
    pub fn from_config(config: &crate::config::Config) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(config.http_header_timeout_secs),
            tls_handshake_timeout: Duration::from_secs(config.tls_handshake_timeout_secs),
            idle_timeout: Duration::from_secs(config.http_idle_timeout_secs),
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            max_long_polls: config.max_long_polls,
            max_long_polls_per_ip: config.max_long_polls_per_ip,
            keep_body: None,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }

    /// Caps no larger than the process may open (RLIMIT_NOFILE less a reserve): past that,
    /// `accept` fails and every connection, heartbeats included, waits.
    pub fn within_file_limit(mut self) -> Limits {
        let Some(files) = open_file_limit() else {
            return self;
        };
        let room = files.saturating_sub(RESERVED_FILES).max(16);
        let wanted = self.max_connections + self.max_long_polls;
        if wanted > room {
            let connections = (room * self.max_connections / wanted.max(1)).max(8);
            let long_polls = room.saturating_sub(connections).max(8);
            tracing::warn!(
                open_file_limit = files,
                max_connections = connections,
                max_long_polls = long_polls,
                "the open-file limit is below max_connections + max_long_polls: caps lowered \
                 to fit (raise LimitNOFILE, as install.sh does, to serve more)"
            );
            self.max_connections = connections;
            self.max_long_polls = long_polls;
        }
        self.max_connections_per_ip = self.max_connections_per_ip.min(self.max_connections);
        self.max_long_polls_per_ip = self.max_long_polls_per_ip.min(self.max_long_polls);
        self
    }
}

/// The open-file limit, after raising the soft limit to the hard one (as Go's runtime does:
/// the soft default of 1,024 is a relic of `select`, which nothing here uses).
fn open_file_limit() -> Option<usize> {
    let raised = rlimit::increase_nofile_limit(u64::MAX).ok()?;
    usize::try_from(raised).ok()
}

/// Counts of something held per client address, under a total and a per-address cap.
struct Counted {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_total: usize,
    max_per_ip: usize,
}

impl Counted {
    fn new(max_total: usize, max_per_ip: usize) -> Counted {
        Counted {
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            max_total,
            max_per_ip,
        }
    }

    fn try_take(&self, ip: IpAddr) -> bool {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let held = per_ip.get(&ip).copied().unwrap_or(0);
        if held >= self.max_per_ip || self.total.load(Ordering::Relaxed) >= self.max_total {
            return false;
        }
        per_ip.insert(ip, held + 1);
        self.total.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn give_back(&self, ip: IpAddr) {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = per_ip.get_mut(&ip) {
            *held -= 1;
            if *held == 0 {
                per_ip.remove(&ip);
            }
            self.total.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn total(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

/// What a listener's connections and long-polls hold now (shared by every listener of a
/// server, so the caps are the process's).
pub struct Capacity {
    connections: Counted,
    long_polls: Counted,
}

impl Capacity {
    pub fn new(limits: &Limits) -> Arc<Capacity> {
        Arc::new(Capacity {
            connections: Counted::new(limits.max_connections, limits.max_connections_per_ip),
            long_polls: Counted::new(limits.max_long_polls, limits.max_long_polls_per_ip),
        })
    }

    /// Open connections (long-poll waiters not counted).
    pub fn connections(&self) -> usize {
        self.connections.total()
    }

    pub fn long_polls(&self) -> usize {
        self.long_polls.total()
    }
}

/// The connection a request came on: its peer, and its place under the caps. A request
/// reads it with `warp::ext::optional::<Connection>()`.
#[derive(Clone)]
pub struct Connection {
    pub peer: SocketAddr,
    capacity: Arc<Capacity>,
}

/// Held while a request waits in a long-poll: its connection counts under the long-poll caps
/// instead of the connection caps. Dropping it moves the connection back.
pub struct LongPollPermit {
    connection: Connection,
}

impl Connection {
    /// What the listener holds now.
    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    /// Moves this connection from the connection caps to the long-poll caps, or `Err` with a
    /// 503 when the long-poll caps are full (the client should poll again later).
    pub fn wait_long(&self) -> Result<LongPollPermit> {
        let ip = self.peer.ip();
        if !self.capacity.long_polls.try_take(ip) {
            return Err(Error::Unavailable(
                "too many clients are waiting for changes: poll again shortly".into(),
            ));
        }
        self.capacity.connections.give_back(ip);
        Ok(LongPollPermit {
            connection: self.clone(),
        })
    }
}

impl Drop for LongPollPermit {
    fn drop(&mut self) {
        let ip = self.connection.peer.ip();
        let capacity = &self.connection.capacity;
        capacity.long_polls.give_back(ip);
        // Back under the connection caps, even past them: it is already open.
        let mut per_ip = capacity
            .connections
            .per_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *per_ip.entry(ip).or_insert(0) += 1;
        capacity.connections.total.fetch_add(1, Ordering::Relaxed);
    }
}

/// A connection's place under the caps, given back when it closes.
struct Slot {
    capacity: Arc<Capacity>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.capacity.connections.give_back(self.ip);
    }
}

/// The answer to a connection over the caps, written by hand: no request was read.
const FULL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 73\r\n\r\n\
{\"error\":{\"code\":\"busy\",\"message\":\"too many connections; retry shortly\"}}";

/// Binds `address`; the caller then runs `serve` on the listener.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves `filter` on `listener` until `stop` turns true; then stops accepting and lets open
/// connections finish their requests (hyper's graceful shutdown) for `limits.shutdown_grace`,
/// then cuts the rest. Returns once every connection task has ended.
pub async fn serve<F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    filter: F,
    limits: Limits,
    capacity: Arc<Capacity>,
    mut stop: watch::Receiver<bool>,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let service = warp::service(filter);
    let mut http = Http::new();
    http.http1_header_read_timeout(limits.header_timeout)
        .http1_keep_alive(true);
    let http = Arc::new(http);
    let mut connections = tokio::task::JoinSet::new();
    let mut accept_failing = false;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(pair) => {
                accept_failing = false;
                pair
            }
            Err(error) => {
                // EMFILE and friends: wait a moment rather than spin; connections close.
                // Logged once per run of failures, not 20 times a second.
                if !accept_failing {
                    tracing::warn!(%error, "accept failed (out of file descriptors?)");
                }
                accept_failing = true;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ip = canonical(peer.ip());
        if !capacity.connections.try_take(ip) {
            connections.spawn(refuse(stream, tls.is_some()));
            continue;
        }
        let slot = Slot {
            capacity: capacity.clone(),
            ip,
        };
        let connection = Connection {
            peer: SocketAddr::new(ip, peer.port()),
            capacity: capacity.clone(),
        };
        let service = service.clone();
        let http = http.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        let keep_body = limits.keep_body;
        let handshake = limits.tls_handshake_timeout;
        let idle_timeout = limits.idle_timeout;
        connections.spawn(async move {
            let _slot = slot;
            let activity = Activity::default();
            activity.touch(); // connected: the idle clock starts now
            let requests = activity.clone();
            let serve_request = service_fn(move |mut request: Request<Body>| {
                request.extensions_mut().insert(connection.clone());
                let mut service = service.clone();
                let in_flight = requests.start_request();
                async move {
                    use warp::hyper::service::Service;
                    let request = match keep_body {
                        Some(wanted) if wanted(request.method(), request.uri().path()) => {
                            read_ahead(request).await
                        }
                        _ => request,
                    };
                    let response = match service.call(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    drop(in_flight);
                    Ok::<_, Infallible>(response)
                }
            });
            let idle = (activity, idle_timeout);
            match tls {
                None => drive(&http, stream, serve_request, idle, stop).await,
                Some(acceptor) => {
                    // A failed or too slow handshake just closes the connection.
                    let handshaken = tokio::time::timeout(handshake, acceptor.accept(stream));
                    if let Ok(Ok(tls_stream)) = handshaken.await {
                        drive(&http, tls_stream, serve_request, idle, stop).await;
                    }
                }
            }
        });
    }
    // Stopped: the open connections finish their requests (each shuts down gracefully)...
    let finished = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    // ...or are cut, and their tasks waited for: nothing they hold outlives the server.
    if finished.is_err() {
        tracing::warn!(
            "connections still open after {:?}: closing them",
            limits.shutdown_grace
        );
        connections.shutdown().await;
    }
}

/// Reads a small declared body and puts it back, with a copy as a `KeptBody` extension.
/// The connection's idle timeout bounds a body that trickles.
async fn read_ahead(request: Request<Body>) -> Request<Body> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|length| length > MAX_KEPT_BODY) {
        return request;
    }
    let (mut parts, body) = request.into_parts();
    // A body cut short reaches the route empty, which then refuses it as it would any.
    let bytes = warp::hyper::body::to_bytes(body).await.unwrap_or_default();
    parts.extensions.insert(KeptBody(bytes.clone()));
    Request::from_parts(parts, Body::from(bytes))
}

/// Serves one connection until it ends, the server stops, or it sits idle (no request in
/// flight, no byte either way) for the idle timeout.
async fn drive<IO, S>(
    http: &Http,
    io: IO,
    service: S,
    (activity, idle_timeout): (Activity, Duration),
    mut stop: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: warp::hyper::service::Service<
            Request<Body>,
            Response = warp::hyper::Response<Body>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let io = Watched {
        io,
        activity: activity.clone(),
        pending: None,
    };
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    loop {
        let check_at = activity.idle_deadline(idle_timeout);
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.wait_for(|stopped| *stopped) => break,
            _ = tokio::time::sleep_until(check_at) => {
                if activity.is_idle(idle_timeout) {
                    break;
                }
            }
        }
    }
    // hyper closes an idle connection at once and lets a request in flight finish.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// When a connection last moved a byte, and how many requests it has in flight.
#[derive(Clone, Default)]
struct Activity(Arc<ActivityState>);

#[derive(Default)]
struct ActivityState {
    /// Milliseconds since `EPOCH` of the last byte read or written.
    last_ms: std::sync::atomic::AtomicU64,
    in_flight: AtomicUsize,
}

static EPOCH: std::sync::LazyLock<tokio::time::Instant> =
    std::sync::LazyLock::new(tokio::time::Instant::now);

fn since_epoch_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

/// Counts a request in flight until dropped.
struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0 .0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl Activity {
    fn touch(&self) {
        self.0.last_ms.store(since_epoch_ms(), Ordering::Relaxed);
    }

    fn start_request(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn idle_deadline(&self, timeout: Duration) -> tokio::time::Instant {
        let last = Duration::from_millis(self.0.last_ms.load(Ordering::Relaxed));
        (*EPOCH + last + timeout).max(tokio::time::Instant::now() + Duration::from_millis(10))
    }

    fn is_idle(&self, timeout: Duration) -> bool {
        let quiet = since_epoch_ms().saturating_sub(self.0.last_ms.load(Ordering::Relaxed));
        self.0.in_flight.load(Ordering::Relaxed) == 0 && quiet >= timeout.as_millis() as u64
    }
}

/// A connection's IO (plain, or inside TLS) that records its activity, and gives hyper's own
/// error answers the JSON error shape every other answer has: hyper writes a bare 414 or 431
/// for a URI or headers too long before any route sees the request.
struct Watched<IO> {
    io: IO,
    activity: Activity,
    /// Bytes written in place of what hyper wrote, still to go out.
    pending: Option<Vec<u8>>,
}

/// The JSON answer that replaces hyper's bare one, if `head` is one of those.
fn json_for_bare_error(head: &[u8]) -> Option<Vec<u8>> {
    let (status, code, message) = if head.starts_with(b"HTTP/1.1 414 ") {
        (
            "414 URI Too Long",
            "uri_too_long",
            "the request line is too long",
        )
    } else if head.starts_with(b"HTTP/1.1 431 ") {
        (
            "431 Request Header Fields Too Large",
            "headers_too_large",
            "the request's headers are too large",
        )
    } else {
        return None;
    };
    let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<IO: tokio::io::AsyncWrite + Unpin> Watched<IO> {
    /// Writes what replaced hyper's answer, before anything else.
    fn drain(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        while let Some(buffer) = self.pending.as_mut() {
            if buffer.is_empty() {
                self.pending = None;
                break;
            }
            match std::pin::Pin::new(&mut self.io).poll_write(cx, buffer) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    buffer.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::ready!(self.drain(cx))?;
        if let Some(replacement) = json_for_bare_error(data) {
            self.pending = Some(replacement);
            std::task::ready!(self.drain(cx))?;
            return std::task::Poll::Ready(Ok(data.len()));
        }
        let polled = std::pin::Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::ready!(self.drain(cx))?;
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Over the caps: a plain-HTTP client gets a 503 it can read; a TLS client is closed (an
/// answer would need the handshake the cap is there to avoid).
async fn refuse(mut stream: TcpStream, tls: bool) {
    if !tls {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(FULL)).await;
        let _ = stream.shutdown().await;
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The TLS side of a listener from PEM files.
pub fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor> {
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::caused_by("TLS certificate", e))?;
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| Error::caused_by("TLS key", e))?
        .ok_or_else(|| Error::internal("TLS key: no private key in the file"))?;
    let mut config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::caused_by("TLS certificate and key", e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_address_and_in_total() {
        let counted = Counted::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(counted.try_take(a) && counted.try_take(a));
        assert!(!counted.try_take(a), "per address");
        assert!(counted.try_take(b));
        assert!(!counted.try_take(b), "in total");
        counted.give_back(a);
        assert!(counted.try_take(b));
        assert_eq!(counted.total(), 3);
    }

    #[test]
    fn hypers_bare_errors_get_the_json_shape() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        let text = String::from_utf8(json_for_bare_error(bare).unwrap()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "headers_too_large");
        assert!(json_for_bare_error(b"HTTP/1.1 200 OK\r\n").is_none());
    }

    #[test]
    fn the_full_answer_is_well_formed() {
        let text = std::str::from_utf8(FULL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        serde_json::from_str::<serde_json::Value>(body).unwrap();
    }
}
