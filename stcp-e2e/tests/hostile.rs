//! The hostile-peer matrix (issue 6; protocol v2 records, issue "STCP v2 records" item 7). Every
//! case runs against one real stcp-server (started in this process on loopback ports: its
//! STCP, TCP and TLS listeners, a PSK, short handshake and idle timeouts, a 1 MiB --max-frame, a small
//! --max-conns, a --handshake-rate-per-ip) while two stcp-loadgen processes keep a steady, verified load on other
//! connections of the same server, one in STCP mode and one in raw TCP mode.
//!
//! Each case must close only the offending connection and count it under its kind (or, for a
//! client that closes cleanly, count nothing): after each case the server's per-kind error
//! counters must equal the running expectation exactly (no other kind moves), the open
//! connections must be back to the steady load's, and the memory the server holds for
//! connections (the `conn_buffer_bytes` gauge) back within the steady load's allowance. At the end the steady loads must report zero errors and zero verify
//! mismatches, the gauge must be back to 0, and the process's resident size within a generous
//! bound of where it started. Both io backends run the matrix, one after the other (they share
//! the process's resident size). `cargo test -p stcp-e2e --test hostile -- --nocapture` prints
//! a summary table. The server's own limits come from `stcp_server::Config` and
//! `stcp_server::config`, the protocol's from `stcp_proto`, never copied here.

mod common;
mod hostile_cases;
mod hostile_peer;
use hostile_cases::*;
mod steady_load;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{fresh_dir, loadgen, only_report};
use hostile_peer::*;
use stcp_loadgen::report::Report;
use stcp_loadgen::run::exit;
use stcp_proto::{
    write_record_header, ClientConfig, ClientHandshake, Mode, RecordHeader, RecordSealer,
    RecordType, Session, StaticKeypair, FRAME_HEADER_LEN, MAX_RECORD_LEN, MAX_RECORD_PAYLOAD,
    RECORD_HEADER_LEN, TAG_LEN,
};
use stcp_server::config::DEFAULT_CONN_BUFFER_LIMIT;
use stcp_server::{Config, ErrorKind, IoBackend, Server, ServerHandle, StatsSnapshot};
use steady_load::SteadyLoad;

const PSK: [u8; 32] = [0x5a; 32];
/// Connections of each steady load (one STCP, one TCP).
const STEADY_CLIENTS: u64 = 4;
const STEADY_CONNS: u64 = 2 * STEADY_CLIENTS;
const MAX_CONNS: usize = 40;
/// --max-frame, and the length of the large frames the unread clients send: 1 MiB, far more
/// than a connection's buffers (an STCP frame of 64 records).
const MAX_FRAME: usize = 1 << 20;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(1500);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
const RING_BUFS: u16 = 256;
/// --handshake-rate-per-ip: far above what the other cases need from 127.0.0.1 in a second (a
/// few handshakes each), far below what a churning load generator asks for.
const HANDSHAKE_RATE: u32 = 50;
/// Each connection's buffer limit: the server's default, set explicitly so that the bounds
/// below follow it.
const CONN_BUFFER_LIMIT: usize = DEFAULT_CONN_BUFFER_LIMIT;
/// The most the server may hold for one STCP connection: its buffer limit, plus the one record
/// the decoder may be reassembling past it.
const STCP_CONN_BOUND: u64 = (CONN_BUFFER_LIMIT + MAX_RECORD_LEN) as u64;
/// The most the server may hold for one TCP-mode connection (cut-through: no reassembly).
const TCP_CONN_BOUND: u64 = CONN_BUFFER_LIMIT as u64;
/// Buffer memory the steady load's connections may hold at any moment: each within its bound.
const STEADY_ALLOWANCE: u64 = STEADY_CLIENTS * (STCP_CONN_BOUND + TCP_CONN_BOUND);
/// Growth of this process's resident size allowed over one matrix: the server's ring buffers
/// (2 workers x RING_BUFS x the default ring buffer size: 8 MiB) and pooled heap buffers (at most
/// 32 MiB per worker) being touched, allocator caches, and this test's own clients.
const RSS_BOUND: u64 = 96 << 20;

/// The two backends' matrices run one after the other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn hostile_peers_io_uring() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !common::uring_available() {
        return;
    }
    run_matrix(IoBackend::Uring);
}

#[test]
fn hostile_peers_epoll() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    run_matrix(IoBackend::Epoll);
}

// ---------------------------------------------------------------------------------------------
// The matrix.

fn run_matrix(io: IoBackend) {
    let dir = fresh_dir(&format!("hostile-{}", io.name()));
    let keypair = StaticKeypair::generate([42; 32]);
    let mut config = Config::ephemeral(keypair.clone());
    config.io = io;
    config.cores = 2;
    config.psk = Some(PSK);
    config.max_conns = MAX_CONNS;
    config.max_frame = MAX_FRAME;
    config.handshake_timeout = HANDSHAKE_TIMEOUT;
    config.idle_timeout = Some(IDLE_TIMEOUT);
    config.conn_buffer_limit = CONN_BUFFER_LIMIT;
    config.ring_bufs = RING_BUFS;
    config.handshake_rate_per_ip = Some(HANDSHAKE_RATE);
    config = config.with_ephemeral_tls().expect("a certificate");
    let server = Server::start(config).expect("server starts");
    let idle = server.stats();
    assert_eq!(
        idle.conn_buffer_bytes, 0,
        "buffers held before any connection"
    );

    let psk_file = dir.join("stcp.psk");
    stcp_proto::keys::write_new_psk(&psk_file, PSK).unwrap();
    let mut m = Matrix {
        stcp: server.stcp_addr().unwrap(),
        tcp: server.tcp_addr().unwrap(),
        tls: server.tls_addr().unwrap(),
        tls_pem: server.tls_cert_pem().unwrap().to_string(),
        public: keypair.public,
        server,
        expected: [0; ErrorKind::COUNT],
        refused: 0,
        rows: Vec::new(),
        dir: dir.clone(),
        psk_file: psk_file.clone(),
        seed: 1,
    };

    // The steady loads, on other connections of the same server.
    let steady_stcp = SteadyLoad::start(
        "stcp",
        STEADY_CLIENTS,
        m.stcp,
        Some((&keypair.public_hex(), &psk_file)),
        "1k",
        &dir,
    );
    let steady_tcp = SteadyLoad::start("tcp", STEADY_CLIENTS, m.tcp, None, "4k", &dir);
    wait_for(&m.server, "the steady loads to connect", |s| {
        s.open() == STEADY_CONNS && s.handshakes >= STEADY_CLIENTS
    });
    let frames = m.server.stats().frames;
    wait_for(&m.server, "the steady loads to echo", |s| {
        s.frames >= frames + 200
    });
    let started = Instant::now();
    let rss_before = resident_bytes();
    let frames_before = m.server.stats().frames;

    pre_handshake_cases(&mut m);
    key_and_psk_cases(&mut m);
    frame_length_cases(&mut m);
    record_cases(&mut m);
    frame_sequence_cases(&mut m);
    reset_and_cut_cases(&mut m);
    slow_cases(&mut m);
    idle_and_unread_cases(&mut m);
    unread_large_frame_cases(&mut m);
    flood_case(&mut m);
    garbage_hello_flood_case(&mut m);
    valid_hello_flood_case(&mut m);
    loadgen_wrong_key_case(&mut m);
    tls_cases(&mut m);

    // The steady load kept going through all of it.
    assert!(
        m.server.stats().frames > frames_before,
        "no steady echo during the matrix"
    );
    let matrix_time = started.elapsed();
    let reports = [steady_stcp.finish(), steady_tcp.finish()];
    for r in &reports {
        let mode = r.configuration.mode.name();
        let e = &r.results.errors;
        assert_eq!(
            r.results.errors_total, 0,
            "steady {mode} load saw errors: {e:?}"
        );
        assert_eq!(e.verify, 0, "steady {mode} load saw verify mismatches");
        assert_eq!(r.results.connections.established, STEADY_CLIENTS, "{mode}");
        assert_eq!(r.results.connections.lost, 0, "{mode}");
        assert_eq!(r.partial_reason.as_deref(), Some("interrupted"), "{mode}");
        assert!(r.results.requests > 0, "{mode}");
        assert!(
            r.results.measured_seconds >= matrix_time.as_secs_f64() - 1.0,
            "the steady {mode} load stopped early: {} s of {matrix_time:?}",
            r.results.measured_seconds
        );
    }

    // Memory back to its idle value; resident size within the bound.
    wait_for(&m.server, "every connection to close", |s| s.open() == 0);
    wait_for(&m.server, "the buffer gauge to return to idle", |s| {
        s.conn_buffer_bytes == idle.conn_buffer_bytes
    });
    let rss_after = resident_bytes();
    let growth = rss_after.saturating_sub(rss_before);
    assert!(
        growth <= RSS_BOUND,
        "resident size grew by {} MiB (bound {} MiB)",
        growth >> 20,
        RSS_BOUND >> 20
    );
    let totals = m.server.stats();
    let pooled = totals.pool_idle_bytes;
    let Matrix {
        server,
        expected,
        refused,
        rows,
        ..
    } = m;
    let totals_at_exit = server.shutdown().expect("clean shutdown");
    // Exact accounting: the steady loads' connections ended without any error on the server side.
    assert_eq!(totals.errors, expected, "{}", diff(&totals, &expected));
    assert_eq!(totals_at_exit.errors, expected);
    assert_eq!(totals.refused, refused);

    print_table(
        io,
        &rows,
        refused,
        &reports,
        (rss_before, rss_after, pooled),
        matrix_time,
    );
}

/// Counted by the server for a case.
#[derive(Clone, Copy)]
enum Counted {
    Error(ErrorKind),
    Refused,
    /// Nothing: the client closed cleanly.
    Nothing,
}

struct Matrix {
    server: ServerHandle,
    stcp: SocketAddr,
    tcp: SocketAddr,
    tls: SocketAddr,
    /// The TLS listener's certificate, as clients pin it.
    tls_pem: String,
    public: [u8; 32],
    /// What every per-kind error counter must read now.
    expected: [u64; ErrorKind::COUNT],
    refused: u64,
    /// Case, listener, what the server counted, how many.
    rows: Vec<(String, &'static str, &'static str, u64)>,
    dir: PathBuf,
    psk_file: PathBuf,
    seed: u8,
}

impl Matrix {
    /// Runs one case; then checks that only the steady connections are left, that buffers are
    /// back to baseline, and that the server counted exactly `n` of `counted` (and nothing else).
    fn case(
        &mut self,
        name: &str,
        listener: &'static str,
        counted: Counted,
        n: u64,
        body: impl FnOnce(&mut Matrix),
    ) {
        self.case_counting(name, listener, counted, |m| {
            body(m);
            n
        })
    }

    /// [`Matrix::case`] for a case whose count only its body knows (it returns it).
    fn case_counting(
        &mut self,
        name: &str,
        listener: &'static str,
        counted: Counted,
        body: impl FnOnce(&mut Matrix) -> u64,
    ) {
        let refused_before = self.refused;
        let n = body(self);
        match counted {
            Counted::Error(kind) => {
                let want = self.expected[kind as usize] + n;
                wait_for(&self.server, name, |s| s.error(kind) >= want);
                self.expected[kind as usize] = want;
                self.rows.push((name.into(), listener, kind.label(), n));
            }
            Counted::Refused => {
                let want = refused_before + n;
                wait_for(&self.server, name, |s| s.refused >= want);
                self.refused = want;
                self.rows
                    .push((name.into(), listener, "refused (max-conns)", n));
            }
            Counted::Nothing => self
                .rows
                .push((name.into(), listener, "nothing (clean close)", n)),
        }
        // Settled first: a count that comes late (as the connection closes) is seen too.
        self.settle(name);
        let s = self.server.stats();
        assert_eq!(
            s.errors,
            self.expected,
            "{name}: {}",
            diff(&s, &self.expected)
        );
        assert_eq!(s.refused, self.refused, "{name}: refused");
    }

    /// Only the steady connections are left and the server holds no more than they need.
    fn settle(&self, name: &str) {
        wait_for(
            &self.server,
            &format!("{name}: back to the steady load"),
            |s| s.open() == STEADY_CONNS && s.conn_buffer_bytes <= STEADY_ALLOWANCE,
        );
    }

    fn config(&self, psk: Option<[u8; 32]>) -> ClientConfig {
        let mut c = ClientConfig::new(self.public);
        c.psk = psk;
        c
    }

    fn good(&self) -> ClientConfig {
        self.config(Some(PSK))
    }

    fn next_seed(&mut self) -> [u8; 32] {
        self.seed = self.seed.wrapping_add(1);
        [self.seed; 32]
    }

    /// The first handshake frame of a client with `config`.
    fn hello(&mut self, config: &ClientConfig) -> (ClientHandshake, Vec<u8>) {
        ClientHandshake::start(config, self.next_seed()).expect("hello")
    }

    /// A connection with a finished handshake, whose records the test seals by hand.
    fn established(&mut self) -> (TcpStream, Session) {
        let cfg = self.good();
        let (hs, hello) = self.hello(&cfg);
        let mut s = connect(self.stcp);
        s.write_all(&hello).unwrap();
        let reply = read_handshake_reply(&mut s).expect("handshake reply");
        let session = hs.finish(&reply).expect("handshake");
        (s, session)
    }
}

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

fn diff(s: &StatsSnapshot, expected: &[u64; ErrorKind::COUNT]) -> String {
    ErrorKind::ALL
        .iter()
        .filter(|k| s.error(**k) != expected[**k as usize])
        .map(|k| {
            format!(
                "{}: counted {}, expected {}",
                k.label(),
                s.error(*k),
                expected[*k as usize]
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// This process's resident set size (VmRSS).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

fn print_table(
    io: IoBackend,
    rows: &[(String, &'static str, &'static str, u64)],
    refused: u64,
    reports: &[Report],
    (rss_before, rss_after, pooled): (u64, u64, u64),
    took: Duration,
) {
    let mut t = format!(
        "\nhostile matrix on {} ({} cases in {:.1} s)\n\
         | case | listener | server counted | connections closed |\n|---|---|---|---|\n",
        io.name(),
        rows.len(),
        took.as_secs_f64()
    );
    for (name, listener, kind, n) in rows {
        t.push_str(&format!("| {name} | {listener} | {kind} | {n} |\n"));
    }
    let clean: u64 = rows
        .iter()
        .filter(|r| r.2.starts_with("nothing"))
        .map(|r| r.3)
        .sum();
    let closed: u64 = rows.iter().map(|r| r.3).sum::<u64>() - refused - clean;
    t.push_str(&format!(
        "connections closed by error kind: {closed}; refused (max-conns): {refused}; \
         closed cleanly by the client: {clean}\n"
    ));
    for r in reports {
        t.push_str(&format!(
            "steady {} load: {} requests in {:.1} s, errors {} (verify {}), connections lost {}\n",
            r.configuration.mode.name(),
            r.results.requests,
            r.results.measured_seconds,
            r.results.errors_total,
            r.results.errors.verify,
            r.results.connections.lost
        ));
    }
    t.push_str(&format!(
        "resident size {} MiB -> {} MiB; pooled idle buffers at the end {} KiB\n",
        rss_before >> 20,
        rss_after >> 20,
        pooled >> 10
    ));
    eprintln!("{t}");
}
