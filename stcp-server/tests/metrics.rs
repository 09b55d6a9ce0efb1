//! The Prometheus endpoint (`Config::metrics_listen`): a real server with real STCP and TCP
//! echoes and a failing handshake, scraped over TCP and parsed with a Prometheus text-format
//! parser (`prometheus-parse`); the values are checked against what the test did and against
//! `ServerHandle::stats()`. Then the hostile side: scrapers that send nothing or too much do
//! not stop a following scrape, nor the echoes meanwhile.

mod common;

use std::{
    collections::{BTreeSet, HashMap},
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use common::*;
use prometheus_parse::{Sample, Scrape, Value};
use stcp_proto::CryptoBackend;
use stcp_server::{ErrorKind, IoBackend, ServerHandle, StatsSnapshot};

macro_rules! per_io {
    ($name:ident) => {
        mod $name {
            #[test]
            fn uring() {
                if super::uring_ok(super::IoBackend::Uring) {
                    super::$name(super::IoBackend::Uring);
                }
            }
            #[test]
            fn epoll() {
                super::$name(super::IoBackend::Epoll);
            }
        }
    };
}

const WORKERS: usize = 2;

fn start_with_metrics(io: IoBackend) -> ServerHandle {
    let server = start(io, CryptoBackend::AwsLc, |c| {
        c.cores = WORKERS;
        c.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    });
    let addr = server.metrics_addr().expect("a metrics address");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    server
}

/// An HTTP answer: status code, headers (lower-case names), body.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// Sends `request` on a new connection and reads the whole answer (the server closes).
fn http(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(request).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status = parts.next().unwrap().parse().expect("a status code");
    let headers: HashMap<String, String> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("a header line");
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let len: usize = headers["content-length"].parse().unwrap();
    assert_eq!(len, body.len(), "Content-Length against the body");
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

const GET_METRICS: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: stcp\r\nAccept: */*\r\n\r\n";

/// Scrapes the server and parses the text with a Prometheus text-format parser. Every sample
/// line must parse and every metric must be declared (no untyped samples).
fn scrape(server: &ServerHandle) -> Vec<Sample> {
    let answer = http(server.metrics_addr().unwrap(), GET_METRICS);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let lines = answer.body.lines().map(|l| Ok(l.to_string()));
    let parsed = Scrape::parse(lines).expect("the Prometheus parser reads it");
    let sample_lines = answer
        .body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(parsed.samples.len(), sample_lines, "a line did not parse");
    for s in &parsed.samples {
        assert!(
            matches!(s.value, Value::Counter(_) | Value::Gauge(_)),
            "{} has no TYPE line: {:?}",
            s.metric,
            s.value
        );
        assert!(
            parsed.docs.contains_key(&s.metric),
            "{} has no HELP",
            s.metric
        );
    }
    parsed.samples
}

fn value(s: &Sample) -> u64 {
    match s.value {
        Value::Counter(v) | Value::Gauge(v) => {
            assert!(v >= 0.0 && v.fract() == 0.0, "{}: {v}", s.metric);
            v as u64
        }
        ref other => panic!("{}: {other:?}", s.metric),
    }
}

/// The samples of `metric` whose labels include `filter`.
fn select<'a>(samples: &'a [Sample], metric: &str, filter: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| filter.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// `metric` summed over workers; each worker must have exactly one sample.
fn total(samples: &[Sample], metric: &str, filter: &[(&str, &str)]) -> u64 {
    let found = select(samples, metric, filter);
    let workers: BTreeSet<&str> = found
        .iter()
        .map(|s| s.labels.get("worker").expect("a worker label"))
        .collect();
    let want: BTreeSet<String> = (0..WORKERS).map(|i| i.to_string()).collect();
    assert_eq!(
        workers,
        want.iter().map(String::as_str).collect(),
        "{metric} {filter:?}"
    );
    assert_eq!(found.len(), WORKERS, "{metric} {filter:?}");
    found.into_iter().map(value).sum()
}

/// Waits (bounded) until `cond` holds on the server's counters.
fn wait_for(server: &ServerHandle, what: &str, cond: impl Fn(&StatsSnapshot) -> bool) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while !cond(&server.stats()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            server.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn scrape_matches_what_was_done(io: IoBackend) {
    let server = start_with_metrics(io);
    let before = scrape(&server);
    assert_eq!(total(&before, "stcp_connections_accepted_total", &[]), 0);

    // Two STCP connections, 5 frames each; one raw TCP connection, 7 frames.
    let cfg = client_config(keypair(42).public, None, CryptoBackend::AwsLc);
    let mut payload_bytes = 0u64;
    for c in 0..2u8 {
        let mut client = StcpClient::connect(server.stcp_addr().unwrap(), &cfg).expect("handshake");
        for i in 0..5 {
            let p = payload(100 + 1000 * i, c);
            client.send(&p).unwrap();
            assert_eq!(client.recv_frame().unwrap(), p);
            payload_bytes += p.len() as u64;
        }
        client.close_cleanly();
    }
    let mut tcp = tcp_connect(server.tcp_addr().unwrap());
    let mut tcp_bytes = 0u64;
    for i in 0..7 {
        let p = payload(10 * i, 9);
        tcp.write_all(&frame(&p)).unwrap();
        assert_eq!(read_tcp_frame(&mut tcp).unwrap(), p);
        tcp_bytes += 4 + p.len() as u64;
    }
    drop(tcp);
    // A client pinning another key: the server counts handshake_auth_failed.
    let wrong = client_config(keypair(43).public, None, CryptoBackend::AwsLc);
    assert!(StcpClient::connect(server.stcp_addr().unwrap(), &wrong).is_err());
    wait_for(&server, "every connection closed", |s| {
        s.accepted == 4 && s.closed == 4 && s.error(ErrorKind::HandshakeAuthFailed) == 1
    });

    // Nothing moves now but the gauges, which io_uring workers refresh every 100 ms: take a
    // scrape between two equal stats() (bounded retries), so both must agree exactly.
    let mut tries = 0;
    let (stats, m) = loop {
        let stats = server.stats();
        let m = scrape(&server);
        if server.stats() == stats {
            break (stats, m);
        }
        tries += 1;
        assert!(tries < 50, "the counters keep moving while idle");
        std::thread::sleep(Duration::from_millis(150));
    };

    // What the test did.
    assert_eq!(total(&m, "stcp_connections_accepted_total", &[]), 4);
    assert_eq!(total(&m, "stcp_connections_closed_total", &[]), 4);
    assert_eq!(total(&m, "stcp_connections_open", &[]), 0);
    assert_eq!(total(&m, "stcp_connections_refused_total", &[]), 0);
    assert_eq!(total(&m, "stcp_handshakes_completed_total", &[]), 2);
    assert_eq!(total(&m, "stcp_frames_echoed_total", &[]), 2 * 5 + 7);
    let failed = [("kind", "handshake_auth_failed")];
    assert_eq!(total(&m, "stcp_handshakes_failed_total", &failed), 1);
    assert_eq!(total(&m, "stcp_errors_total", &failed), 1);
    for kind in ErrorKind::ALL {
        let n = total(&m, "stcp_errors_total", &[("kind", kind.label())]);
        let want = u64::from(kind == ErrorKind::HandshakeAuthFailed);
        assert_eq!(n, want, "errors of kind {}", kind.label());
    }
    for kind in ErrorKind::HANDSHAKE {
        // Present for every worker, whatever the count.
        total(
            &m,
            "stcp_handshakes_failed_total",
            &[("kind", kind.label())],
        );
    }
    // Wire bytes: TCP exactly its frames; STCP more than its payloads (handshakes, headers,
    // tags, closes).
    let received = total(&m, "stcp_received_bytes_total", &[]);
    let sent = total(&m, "stcp_sent_bytes_total", &[]);
    assert!(received > tcp_bytes + payload_bytes, "{received}");
    assert!(sent > tcp_bytes + payload_bytes, "{sent}");
    assert_eq!(total(&m, "stcp_connection_buffer_bytes", &[]), 0);

    // Against stats(): every exported counter is the per-worker split of the same sums.
    assert_eq!(
        total(&m, "stcp_connections_accepted_total", &[]),
        stats.accepted
    );
    assert_eq!(
        total(&m, "stcp_connections_closed_total", &[]),
        stats.closed
    );
    assert_eq!(total(&m, "stcp_connections_open", &[]), stats.open());
    assert_eq!(
        total(&m, "stcp_connections_refused_total", &[]),
        stats.refused
    );
    assert_eq!(
        total(&m, "stcp_handshakes_completed_total", &[]),
        stats.handshakes
    );
    assert_eq!(
        total(&m, "stcp_handshakes_deferred_total", &[]),
        stats.handshakes_deferred
    );
    assert_eq!(total(&m, "stcp_frames_echoed_total", &[]), stats.frames);
    assert_eq!(received, stats.bytes_in);
    assert_eq!(sent, stats.bytes_out);
    assert_eq!(
        total(&m, "stcp_ring_starved_total", &[]),
        stats.ring_starved
    );
    assert_eq!(
        total(&m, "stcp_connection_buffer_bytes", &[]),
        stats.conn_buffer_bytes
    );
    assert_eq!(
        total(&m, "stcp_pool_idle_buffer_bytes", &[]),
        stats.pool_idle_bytes
    );
    for kind in ErrorKind::ALL {
        assert_eq!(
            total(&m, "stcp_errors_total", &[("kind", kind.label())]),
            stats.error(kind)
        );
    }

    // Server info and worker count.
    let info = select(&m, "stcp_server_info", &[]);
    assert_eq!(info.len(), 1);
    assert_eq!(value(info[0]), 1);
    assert_eq!(
        info[0].labels.get("io_backend"),
        Some(server.backend().name())
    );
    assert_eq!(info[0].labels.get("crypto_backend"), Some("aws-lc"));
    assert_eq!(
        info[0].labels.get("version"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(value(select(&m, "stcp_workers", &[])[0]), WORKERS as u64);

    // Other paths and methods.
    let addr = server.metrics_addr().unwrap();
    assert_eq!(http(addr, b"GET / HTTP/1.1\r\n\r\n").status, 404);
    assert_eq!(http(addr, b"GET /metric HTTP/1.0\r\n\r\n").status, 404);
    let post = http(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
    assert_eq!(post.headers["allow"], "GET");
    assert_eq!(http(addr, b"garbage\r\n\r\n").status, 400);

    let totals = server.shutdown().unwrap();
    // Scrapes change no counter (the pool gauge moves as the workers close down).
    let gauges_aside = StatsSnapshot {
        pool_idle_bytes: stats.pool_idle_bytes,
        ..totals
    };
    assert_eq!(gauges_aside, stats, "the scrapes changed a counter");
    // The endpoint goes with the server.
    assert!(TcpStream::connect(addr).is_err(), "metrics still served");
}
per_io!(scrape_matches_what_was_done);

/// One scraper holds the thread silent, another sends more than a request may be: neither
/// stops the echoes meanwhile nor the next scrape, and both are closed by the server.
fn hostile_scrapers_do_not_block_the_next(io: IoBackend) {
    let server = start_with_metrics(io);
    let addr = server.metrics_addr().unwrap();

    let mut silent = TcpStream::connect(addr).unwrap();
    silent.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut big = TcpStream::connect(addr).unwrap();
    big.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    big.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    // 64 KiB without an end of head; the server stops reading at its limit and answers 431
    // (the rest unread, the close may come as a reset: either way it is closed).
    let mut junk = b"GET /metrics HTTP/1.1\r\nX-Junk: ".to_vec();
    junk.resize(64 * 1024, b'a');
    let _ = big.write_all(&junk);

    // Echoes go on while the metrics thread is held.
    let mut tcp = tcp_connect(server.tcp_addr().unwrap());
    tcp.write_all(&frame(b"still echoing")).unwrap();
    assert_eq!(read_tcp_frame(&mut tcp).unwrap(), b"still echoing");
    drop(tcp);
    // (The worker counts the frame once its echo is written, which the client may see first.)
    wait_for(&server, "the echo counted", |s| s.frames == 1);

    // The next scrape is answered, once the silent one's deadline has passed.
    let m = scrape(&server);
    assert_eq!(total(&m, "stcp_frames_echoed_total", &[]), 1);

    // The silent scraper was told it took too long, then closed.
    let mut answer = String::new();
    silent
        .read_to_string(&mut answer)
        .expect("the server closes the silent scraper");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    // The oversized one got 431 or a reset, and a close.
    let mut raw = Vec::new();
    match big.read_to_end(&mut raw) {
        Ok(_) => {
            let text = String::from_utf8_lossy(&raw);
            assert!(text.starts_with("HTTP/1.1 431 "), "{text:?}");
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // A dribbling scraper that never finishes is cut at the deadline too.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");

    let again = scrape(&server);
    assert_eq!(total(&again, "stcp_connections_accepted_total", &[]), 1);
    server.shutdown().unwrap();
}
per_io!(hostile_scrapers_do_not_block_the_next);

#[test]
fn a_metrics_address_in_use_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = stcp_server::Config::ephemeral(keypair(42));
    cfg.io = IoBackend::Epoll;
    cfg.cores = 1;
    cfg.metrics_listen = Some(taken.local_addr().unwrap());
    match stcp_server::Server::start(cfg) {
        Err(stcp_server::ServerError::MetricsListen { addr, source }) => {
            assert_eq!(addr, taken.local_addr().unwrap());
            assert_eq!(source.kind(), std::io::ErrorKind::AddrInUse);
        }
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("started on a metrics address in use"),
    }
}

#[test]
fn no_metrics_unless_asked() {
    let server = start(IoBackend::Epoll, CryptoBackend::AwsLc, |_| {});
    assert_eq!(server.metrics_addr(), None);
    server.shutdown().unwrap();
}
