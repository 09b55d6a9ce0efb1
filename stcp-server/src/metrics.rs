//! Prometheus metrics: with `--metrics ADDR` ([`crate::Config::metrics_listen`]) a thread of its
//! own serves the workers' counters in the Prometheus text format (version 0.0.4) at `/metrics`.
//!
//! Workers are not involved: each keeps writing only its own [`WorkerCounters`] (relaxed adds,
//! as for the stats line), and a scrape reads them, worker by worker, in [`StatsCollector`], a
//! `prometheus_client` collector encoded with `prometheus_client::encoding::prometheus_text`.
//! Nothing is registered or updated on the hot path, and a scrape takes no lock a worker could
//! wait on.
//!
//! The HTTP side answers one request at a time: a request head of at most [`REQUEST_LIMIT`]
//! bytes (431 beyond) within [`REQUEST_DEADLINE`] of the accept (408 when it is not in by then),
//! the response within [`RESPONSE_DEADLINE`] (dropped when not taken by then), then the
//! connection is closed. A scraper that connects and sends nothing, dribbles, sends too much or
//! never reads thus holds the thread for at most the two deadlines and costs at most one fixed
//! buffer; the next scraper waits in the listen backlog, never the workers.
//!
//! [`WorkerCounters`]: crate::stats::WorkerCounters

use std::{
    fmt::Write as _,
    io::{self, Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering::Relaxed},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use prometheus_client::{
    collector::Collector,
    encoding::{prometheus_text, DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, info::Info, MetricType},
    registry::Registry,
};
use stcp_proto::CryptoBackend;

use crate::{errors::ErrorKind, server::Backend, stats::Stats, StatsSnapshot};

/// Largest request head (request line and headers) read; a longer one gets 431.
pub const REQUEST_LIMIT: usize = 8 * 1024;

/// Time a scraper has to send its request head, from the accept.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// Time a scraper has to take the response.
pub const RESPONSE_DEADLINE: Duration = Duration::from_secs(2);

/// Pause after a failed accept (out of descriptors and the like), so that it does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The path served.
pub const PATH: &str = "/metrics";

/// What the info metric (`stcp_server_info`) says about this server.
#[derive(Clone, Copy, Debug)]
pub struct ServerInfo {
    /// The io backend in use.
    pub io: Backend,
    /// The AES-GCM implementation.
    pub crypto: CryptoBackend,
}

/// Reads every worker's counters at scrape time and encodes them, one sample per worker.
pub struct StatsCollector {
    stats: Arc<Stats>,
    info: ServerInfo,
}

impl std::fmt::Debug for StatsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsCollector")
            .field("workers", &self.stats.workers())
            .field("info", &self.info)
            .finish()
    }
}

impl StatsCollector {
    /// A collector over `stats`.
    pub fn new(stats: Arc<Stats>, info: ServerInfo) -> StatsCollector {
        StatsCollector { stats, info }
    }
}

/// One metric family with a sample per worker, valued by `value`.
fn per_worker<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    workers: &[StatsSnapshot],
    name: &str,
    help: &str,
    value: impl Fn(&StatsSnapshot) -> M,
) -> std::fmt::Result {
    let Some(first) = workers.first() else {
        return Ok(());
    };
    let mut family = enc.encode_descriptor(name, help, None, value(first).metric_type())?;
    for (i, w) in workers.iter().enumerate() {
        let labels = [("worker", i.to_string())];
        value(w).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One counter family with a sample per worker and error kind in `kinds`.
fn per_worker_and_kind(
    enc: &mut DescriptorEncoder,
    workers: &[StatsSnapshot],
    kinds: &[ErrorKind],
    name: &str,
    help: &str,
) -> std::fmt::Result {
    let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (i, w) in workers.iter().enumerate() {
        let worker = i.to_string();
        for &kind in kinds {
            let labels = [("worker", worker.as_str()), ("kind", kind.label())];
            ConstCounter::new(w.error(kind)).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

impl Collector for StatsCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let info = Info::new([
            ("version", env!("CARGO_PKG_VERSION")),
            ("io_backend", self.info.io.name()),
            ("crypto_backend", self.info.crypto.name()),
        ]);
        info.encode(enc.encode_descriptor(
            "stcp_server",
            "The server's version, io backend and AES-GCM implementation.",
            None,
            MetricType::Info,
        )?)?;
        ConstGauge::new(self.stats.workers() as i64).encode(enc.encode_descriptor(
            "stcp_workers",
            "Worker threads (one per core).",
            None,
            MetricType::Gauge,
        )?)?;

        // Every worker's counters, read once for this scrape.
        let w: Vec<StatsSnapshot> = self.stats.per_worker().collect();
        let e = &mut enc;
        let c = |v: u64| ConstCounter::new(v);
        let g = |v: u64| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
        per_worker(
            e,
            &w,
            "stcp_connections_open",
            "Connections open now.",
            |s| g(s.open()),
        )?;
        per_worker(
            e,
            &w,
            "stcp_connections_accepted",
            "Connections admitted.",
            |s| c(s.accepted),
        )?;
        per_worker(
            e,
            &w,
            "stcp_connections_refused",
            "Connections closed at once because --max-conns were open.",
            |s| c(s.refused),
        )?;
        per_worker(
            e,
            &w,
            "stcp_connections_closed",
            "Admitted connections closed, for any reason.",
            |s| c(s.closed),
        )?;
        per_worker(
            e,
            &w,
            "stcp_handshakes_completed",
            "STCP handshakes completed.",
            |s| c(s.handshakes),
        )?;
        per_worker(
            e,
            &w,
            "stcp_tls_handshakes_completed",
            "TLS 1.3 handshakes completed (--tls-listen).",
            |s| c(s.tls_handshakes),
        )?;
        per_worker(
            e,
            &w,
            "stcp_handshakes_deferred",
            "Hellos that waited for a later loop iteration's bounded handshake step (io_uring).",
            |s| c(s.handshakes_deferred),
        )?;
        per_worker_and_kind(
            e,
            &w,
            &ErrorKind::HANDSHAKE,
            "stcp_handshakes_failed",
            "Handshakes failed, by the kinds only a handshake ends in (also in stcp_errors_total).",
        )?;
        per_worker(
            e,
            &w,
            "stcp_frames_echoed",
            "Frames received whole and echoed (each is one frame in and one frame out).",
            |s| c(s.frames),
        )?;
        per_worker(
            e,
            &w,
            "stcp_received_bytes",
            "Bytes received (wire bytes: headers, tags, payload, handshakes).",
            |s| c(s.bytes_in),
        )?;
        per_worker(e, &w, "stcp_sent_bytes", "Bytes sent (wire bytes).", |s| {
            c(s.bytes_out)
        })?;
        per_worker_and_kind(
            e,
            &w,
            &ErrorKind::ALL,
            "stcp_errors",
            "Connection failures (and failed accepts), by kind.",
        )?;
        per_worker(
            e,
            &w,
            "stcp_ring_starved",
            "Multishot receives stopped because the provided buffer ring was empty (io_uring).",
            |s| c(s.ring_starved),
        )?;
        per_worker(
            e,
            &w,
            "stcp_connection_buffer_bytes",
            "Buffer memory open connections hold now (io_uring: updated every 100 ms).",
            |s| g(s.conn_buffer_bytes),
        )?;
        per_worker(
            e,
            &w,
            "stcp_pool_idle_buffer_bytes",
            "Capacity of the free heap buffers kept for reuse (io_uring).",
            |s| g(s.pool_idle_bytes),
        )
    }
}

/// The registry a metrics thread encodes: the [`StatsCollector`] over `stats`.
pub fn registry(stats: Arc<Stats>, info: ServerInfo) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(StatsCollector::new(stats, info)));
    registry
}

/// Encodes `registry` in the Prometheus text format into `out` (cleared first).
pub fn render(registry: &Registry, out: &mut String) {
    out.clear();
    // Writing to a String cannot fail, and our collector returns only the writer's errors.
    if prometheus_text::encode(out, registry).is_err() {
        out.clear();
    }
}

/// The running metrics thread: [`MetricsThread::stop`] ends it.
pub struct MetricsThread {
    handle: thread::JoinHandle<()>,
    /// The thread's listener (a second descriptor for it), to wake a blocked `accept`.
    listener: TcpListener,
    stop: Arc<AtomicBool>,
}

impl MetricsThread {
    /// Starts the metrics thread on `listener`. It blocks in `accept` while no one scrapes, so
    /// an idle endpoint costs no CPU.
    pub fn spawn(listener: TcpListener, registry: Registry) -> io::Result<MetricsThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let waker = listener.try_clone()?;
        let flag = stop.clone();
        let handle = thread::Builder::new()
            .name("stcp-metrics".into())
            .spawn(move || serve(&listener, &registry, &flag))?;
        Ok(MetricsThread {
            handle,
            listener: waker,
            stop,
        })
    }

    /// Stops the thread and waits for it: a blocked `accept` is woken by shutting the listening
    /// socket down (Linux ends it with EINVAL); a scrape in progress ends within its deadlines.
    pub fn stop(self) {
        self.stop.store(true, Relaxed);
        if let Err(e) = socket2::SockRef::from(&self.listener).shutdown(Shutdown::Both) {
            tracing::debug!("metrics listener shutdown: {e}");
        }
        let _ = self.handle.join();
    }
}

fn serve(listener: &TcpListener, registry: &Registry, stop: &AtomicBool) {
    let mut head = vec![0u8; REQUEST_LIMIT];
    let mut body = String::new();
    while !stop.load(Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = exchange(stream, &mut head, &mut body, registry) {
                    tracing::debug!(%peer, "metrics request failed: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) if stop.load(Relaxed) => break,
            Err(e) => {
                // Out of descriptors and the like: try again later, without spinning.
                tracing::debug!("metrics accept failed: {e}");
                thread::sleep(ACCEPT_RETRY);
            }
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Metrics,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    TooLarge,
    Timeout,
}

/// Where the request head ends (just past its blank line), if it is whole.
fn head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// Judges a whole request head by its request line.
fn route(head: &[u8]) -> Answer {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Answer::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Answer::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Answer::BadRequest;
    }
    if method != "GET" {
        return Answer::MethodNotAllowed;
    }
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    if path == PATH {
        Answer::Metrics
    } else {
        Answer::NotFound
    }
}

/// Reads the request head into `buf` until it is whole, too large, or the deadline passes.
fn read_head(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> io::Result<Answer> {
    let mut len = 0;
    loop {
        if let Some(end) = head_end(&buf[..len]) {
            return Ok(route(&buf[..end]));
        }
        if len == buf.len() {
            return Ok(Answer::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Answer::Timeout);
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Answer::Timeout)
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes all of `bytes` before `deadline`.
fn write_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Serves one connection: one request, one response, close.
fn exchange(
    mut stream: TcpStream,
    head: &mut [u8],
    body: &mut String,
    registry: &Registry,
) -> io::Result<()> {
    let answer = read_head(&mut stream, head, Instant::now() + REQUEST_DEADLINE)?;
    let (status, extra) = match answer {
        Answer::Metrics => {
            render(registry, body);
            ("200 OK", "")
        }
        Answer::BadRequest => ("400 Bad Request", ""),
        Answer::NotFound => ("404 Not Found", ""),
        Answer::MethodNotAllowed => ("405 Method Not Allowed", "Allow: GET\r\n"),
        Answer::TooLarge => ("431 Request Header Fields Too Large", ""),
        Answer::Timeout => ("408 Request Timeout", ""),
    };
    if answer != Answer::Metrics {
        body.clear();
        let _ = writeln!(
            body,
            "{status}: this endpoint serves GET {PATH} (Prometheus text format)"
        );
    }
    let content_type = if answer == Answer::Metrics {
        prometheus_text::CONTENT_TYPE
    } else {
        "text/plain; charset=utf-8"
    };
    let response_head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\
         Connection: close\r\n\r\n",
        body.len()
    );
    let deadline = Instant::now() + RESPONSE_DEADLINE;
    write_by(&mut stream, response_head.as_bytes(), deadline)?;
    write_by(&mut stream, body.as_bytes(), deadline)?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::WorkerCounters;

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\n\r\n"), Answer::Metrics);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\n\n"), Answer::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Answer::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Answer::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Answer::MethodNotAllowed
        );
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1\r\n\r\n"),
            Answer::MethodNotAllowed
        );
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Answer::BadRequest);
        assert_eq!(route(b"GET /metrics HTTP/2.0\r\n\r\n"), Answer::BadRequest);
        assert_eq!(
            route(b"\xff\xfe /metrics HTTP/1.1\r\n\r\n"),
            Answer::BadRequest
        );
        assert_eq!(route(b"GET  /metrics HTTP/1.1\r\n\r\n"), Answer::BadRequest);
    }

    #[test]
    fn finds_the_end_of_the_head() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(head_end(b""), None);
    }

    #[test]
    fn encodes_each_worker_and_every_error_kind() {
        let stats = Arc::new(Stats::new(2));
        WorkerCounters::add(&stats.worker(0).accepted, 5);
        WorkerCounters::add(&stats.worker(0).closed, 2);
        WorkerCounters::add(&stats.worker(1).frames, 7);
        stats.worker(1).error(ErrorKind::HandshakeAuthFailed);
        let reg = registry(
            stats,
            ServerInfo {
                io: Backend::Epoll,
                crypto: CryptoBackend::RustCrypto,
            },
        );
        let mut out = String::new();
        render(&reg, &mut out);
        for line in [
            "stcp_connections_open{worker=\"0\"} 3",
            "stcp_connections_accepted_total{worker=\"0\"} 5",
            "stcp_frames_echoed_total{worker=\"1\"} 7",
            "stcp_errors_total{worker=\"1\",kind=\"handshake_auth_failed\"} 1",
            "stcp_handshakes_failed_total{worker=\"1\",kind=\"handshake_auth_failed\"} 1",
            "stcp_errors_total{worker=\"0\",kind=\"bad_tag\"} 0",
            "# TYPE stcp_sent_bytes_total counter",
            "# TYPE stcp_connection_buffer_bytes gauge",
            "stcp_workers 2",
        ] {
            assert!(out.lines().any(|l| l == line), "no line {line:?} in\n{out}");
        }
        let info = out
            .lines()
            .find(|l| l.starts_with("stcp_server_info{"))
            .expect("info metric");
        assert!(info.contains("io_backend=\"epoll\""), "{info}");
        assert!(info.contains("crypto_backend=\"rustcrypto\""), "{info}");
        assert!(info.ends_with("} 1"), "{info}");
        let kinds = out
            .lines()
            .filter(|l| l.starts_with("stcp_errors_total{"))
            .count();
        assert_eq!(kinds, 2 * ErrorKind::COUNT);
    }
}
