//! The process's log: stderr (journald keeps it under systemd), as text or one JSON object a
//! line, with the HTTP stack held at info and nothing written from a thread being torn down.

use std::cell::Cell;
use std::io::{self, IsTerminal};

use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

use crate::config::LogFormat;

/// Crates whose debug and trace lines carry paths, headers and bodies, which hold invitation
/// codes and tokens: they stay at info whatever RUST_LOG asks.
const HTTP_STACK: [&str; 9] = [
    "warp",
    "hyper",
    "hyper_util",
    "h2",
    "http",
    "reqwest",
    "rustls",
    "tokio_rustls",
    "redis",
];

/// Installs the global subscriber (and the bridge that turns `log` records, sled's, into
/// events). RUST_LOG picks the levels; info when unset or unreadable.
pub fn init(format: LogFormat) {
    install(format, io::stderr().is_terminal(), io::stderr);
}

fn install<W>(format: LogFormat, ansi: bool, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for quiet in HTTP_STACK {
        if let Ok(directive) = format!("{quiet}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    // hyper warns once per connection cut by the header timeout: an attacker's line rate.
    if let Ok(directive) = "hyper::proto=error".parse() {
        filter = filter.add_directive(directive);
    }
    // Colours only on a terminal: journald and log files would keep the escape codes.
    let lines = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(MarkingThreads(writer));
    let lines = match format {
        LogFormat::Text => lines.boxed(),
        LogFormat::Json => lines.json().flatten_event(true).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(lines.with_filter(filter_fn(|_| thread_can_write())))
        .try_init();
}

thread_local! {
    /// Set when this thread's `TornDown` marker is dropped. No destructor of its own, so it
    /// can be read at any point of the thread's exit.
    static TORN_DOWN: Cell<bool> = const { Cell::new(false) };
    static MARKER: TornDown = const { TornDown };
}

/// A thread's exit drops its thread-locals newest first. The formatter keeps its line buffer
/// in one, and sled's epoch garbage (another, older one) logs as it is freed: after the buffer
/// is gone, formatting that line panics, and a panic in a thread-local's destructor aborts
/// the process (seen at SIGTERM under RUST_LOG=trace). The marker is created just after the
/// buffer, on the thread's first line, so it is dropped just before it, and from then on the
/// thread's lines are skipped instead.
struct TornDown;

impl Drop for TornDown {
    fn drop(&mut self) {
        TORN_DOWN.with(|torn_down| torn_down.set(true));
    }
}

fn thread_can_write() -> bool {
    !TORN_DOWN.with(Cell::get)
}

/// The writer, creating the calling thread's marker: the formatter asks for its writer while
/// it holds its buffer, so the marker is always younger than the buffer.
struct MarkingThreads<W>(W);

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for MarkingThreads<W> {
    type Writer = W::Writer;

    fn make_writer(&'a self) -> W::Writer {
        // Only the first call creates it; an error means the thread is already past it.
        let _ = MARKER.try_with(|_| ());
        self.0.make_writer()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    thread_local! {
        /// Stands for sled's epoch handle: older than the formatter's buffer, logs when dropped.
        static LOGS_WHEN_DROPPED: LogsWhenDropped = const { LogsWhenDropped };
    }

    struct LogsWhenDropped;

    impl Drop for LogsWhenDropped {
        fn drop(&mut self) {
            tracing::warn!("freed at thread exit");
        }
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_from_a_thread_local_destructor_at_thread_exit_is_skipped_not_fatal() {
        let captured = Captured::default();
        let writer = captured.clone();
        // The only test in this binary that installs the global subscriber.
        install(LogFormat::Json, false, move || writer.clone());
        let thread = std::thread::spawn(|| {
            LOGS_WHEN_DROPPED.with(|_| ());
            tracing::warn!("first line of the thread");
        });
        // Without the marker the whole test process aborts here: "thread local panicked on
        // drop".
        thread.join().expect("the thread exits cleanly");
        tracing::warn!("a later line from another thread");
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("first line of the thread"), "{log}");
        assert!(log.contains("a later line from another thread"), "{log}");
        assert!(!log.contains("freed at thread exit"), "{log}");
    }
}
