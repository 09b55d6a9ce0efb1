//! The hostile-peer matrix (issue 6). Every case runs against one real stcp-server (started in
//! this process on loopback ports: both listeners, a PSK, short handshake and idle timeouts, a
//! small --max-frame and --max-conns) while two stcp-loadgen processes keep a steady, verified
//! load on other connections of the same server, one in STCP mode and one in raw TCP mode.
//!
//! Each case must close only the offending connection and count it under its kind: after each
//! case the server's per-kind error counters must equal the running expectation exactly (no
//! other kind moves), the open connections must be back to the steady load's, and the memory
//! the server holds for connections (the `conn_buffer_bytes` gauge) back within the steady
//! load's allowance. At the end the steady loads must report zero errors and zero verify
//! mismatches, the gauge must be back to 0, and the process's resident size within a generous
//! bound of where it started. Both io backends run the matrix, one after the other (they share
//! the process's resident size). `cargo test -p stcp-e2e --test hostile -- --nocapture` prints
//! a summary table. The server's own limits come from `stcp_server::Config` and
//! `stcp_server::config`, never copied here.

mod common;
mod hostile_peer;
mod steady_load;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{fresh_dir, loadgen, only_report};
use hostile_peer::*;
use stcp_loadgen::report::Report;
use stcp_loadgen::run::exit;
use stcp_proto::{
    write_record_header, ClientConfig, ClientHandshake, RecordType, Session, StaticKeypair,
    FRAME_HEADER_LEN, RECORD_HEADER_LEN, TAG_LEN,
};
use stcp_server::config::RING_HOLD_CAP;
use stcp_server::{Config, ErrorKind, IoBackend, Server, ServerHandle, StatsSnapshot};
use steady_load::SteadyLoad;

const PSK: [u8; 32] = [0x5a; 32];
/// Connections of each steady load (one STCP, one TCP).
const STEADY_CLIENTS: u64 = 4;
const STEADY_CONNS: u64 = 2 * STEADY_CLIENTS;
const MAX_CONNS: usize = 40;
const MAX_FRAME: usize = 64 * 1024;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(1500);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_UNSENT: usize = 1 << 20;
const RING_BUFS: u16 = 256;
/// Buffer memory the steady load's connections may hold at any moment (a few ring buffers or a
/// 64 KiB epoll read buffer each, with room to spare).
const STEADY_ALLOWANCE: u64 = STEADY_CONNS * 256 * 1024;
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
    config.max_unsent = MAX_UNSENT;
    config.ring_bufs = RING_BUFS;
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
    reset_and_cut_cases(&mut m);
    slow_cases(&mut m);
    idle_and_unread_cases(&mut m);
    flood_case(&mut m);
    loadgen_wrong_key_case(&mut m);

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
}

struct Matrix {
    server: ServerHandle,
    stcp: SocketAddr,
    tcp: SocketAddr,
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
    /// Runs one case; then checks that the server counted exactly `n` of `counted` (and nothing
    /// else), that only the steady connections are left, and that buffers are back to baseline.
    fn case(
        &mut self,
        name: &str,
        listener: &'static str,
        counted: Counted,
        n: u64,
        body: impl FnOnce(&mut Matrix),
    ) {
        let refused_before = self.refused;
        body(self);
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
        }
        let s = self.server.stats();
        assert_eq!(
            s.errors,
            self.expected,
            "{name}: {}",
            diff(&s, &self.expected)
        );
        assert_eq!(s.refused, self.refused, "{name}: refused");
        self.settle(name);
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

fn pre_handshake_cases(m: &mut Matrix) {
    // Random bytes: whatever their first 4 bytes announce decides the refusal.
    let junk = pseudo_random(1024, 0x9e37_79b9_7f4a_7c15);
    let announced = u32::from_be_bytes([junk[0], junk[1], junk[2], junk[3]]) as usize;
    let kind = if announced > stcp_proto::HANDSHAKE_MAX_LEN {
        ErrorKind::HandshakeTooLarge
    } else {
        ErrorKind::NotStcp
    };
    m.case(
        "random bytes instead of a handshake",
        "stcp",
        Counted::Error(kind),
        1,
        |m| {
            refused_after(m.stcp, &junk, "random bytes");
        },
    );
    m.case(
        "an HTTP request",
        "stcp",
        Counted::Error(ErrorKind::HandshakeTooLarge),
        1,
        |m| {
            let req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: scanner\r\n\r\n";
            refused_after(m.stcp, req, "HTTP request");
        },
    );
    m.case(
        "a TLS ClientHello",
        "stcp",
        Counted::Error(ErrorKind::HandshakeTooLarge),
        1,
        |m| refused_after(m.stcp, &tls_client_hello(), "TLS ClientHello"),
    );
    m.case(
        "a TLS ClientHello",
        "tcp",
        Counted::Error(ErrorKind::FrameTooLarge),
        1,
        |m| refused_after(m.tcp, &tls_client_hello(), "TLS ClientHello"),
    );
    // A real hello with one field changed. Layout: [len:4]["STCP"][version][pattern][0][0][noise].
    m.case(
        "a wrong protocol name",
        "stcp",
        Counted::Error(ErrorKind::NotStcp),
        1,
        |m| {
            let (_, mut hello) = m.hello(&m.good());
            hello[FRAME_HEADER_LEN + 3] = b'X';
            refused_after(m.stcp, &hello, "wrong magic");
        },
    );
    m.case(
        "a wrong protocol version",
        "stcp",
        Counted::Error(ErrorKind::VersionMismatch),
        1,
        |m| {
            let (_, mut hello) = m.hello(&m.good());
            hello[FRAME_HEADER_LEN + 4] = hello[FRAME_HEADER_LEN + 4].wrapping_add(1);
            refused_after(m.stcp, &hello, "wrong version");
        },
    );
    m.case(
        "an unknown handshake pattern",
        "stcp",
        Counted::Error(ErrorKind::HandshakeRefused),
        1,
        |m| {
            let (_, mut hello) = m.hello(&m.good());
            hello[FRAME_HEADER_LEN + 5] = 0x7f;
            refused_after(m.stcp, &hello, "unknown pattern");
        },
    );
    m.case(
        &format!(
            "a handshake message over its cap ({} bytes announced)",
            stcp_proto::HANDSHAKE_MAX_LEN + 1
        ),
        "stcp",
        Counted::Error(ErrorKind::HandshakeTooLarge),
        1,
        |m| {
            let over = (stcp_proto::HANDSHAKE_MAX_LEN as u32 + 1).to_be_bytes();
            refused_after(m.stcp, &over, "handshake over its cap");
        },
    );
    m.case(
        "a handshake length of 0xFFFFFFFF",
        "stcp",
        Counted::Error(ErrorKind::HandshakeTooLarge),
        1,
        |m| refused_after(m.stcp, &[0xff; 4], "0xFFFFFFFF"),
    );
}

fn key_and_psk_cases(m: &mut Matrix) {
    m.case(
        "a missing PSK on a PSK server",
        "stcp",
        Counted::Error(ErrorKind::HandshakeRefused),
        1,
        |m| {
            let (_, hello) = m.hello(&m.config(None));
            refused_after(m.stcp, &hello, "hello without a PSK");
        },
    );
    // NKpsk2 mixes the PSK into the server's reply: the client is the side that finds the
    // mismatch, with a clear error, and hangs up (the server sees a cut stream).
    m.case(
        "a wrong PSK",
        "stcp",
        Counted::Error(ErrorKind::Truncated),
        1,
        |m| {
            let cfg = m.config(Some([0xa5; 32]));
            let (hs, hello) = m.hello(&cfg);
            let mut s = connect(m.stcp);
            s.write_all(&hello).unwrap();
            let reply = read_handshake_reply(&mut s).expect("the server replies");
            let err = hs.finish(&reply).err().expect("a wrong PSK must fail");
            assert_eq!(err, stcp_proto::Error::HandshakeAuthFailed);
            let text = err.to_string();
            assert!(
                text.contains("wrong server key or wrong PSK"),
                "unclear error: {text}"
            );
        },
    );
    m.case(
        "a client pinning the wrong server key",
        "stcp",
        Counted::Error(ErrorKind::HandshakeAuthFailed),
        1,
        |m| {
            let mut cfg = m.good();
            cfg.server_public = StaticKeypair::generate([43; 32]).public;
            let (_, hello) = m.hello(&cfg);
            let mut s = connect(m.stcp);
            s.write_all(&hello).unwrap();
            // Only the holder of the pinned key could answer: the server just hangs up.
            assert!(
                read_handshake_reply(&mut s).is_err(),
                "a reply to a wrong key"
            );
        },
    );
}

fn frame_length_cases(m: &mut Matrix) {
    // Refused from the header alone: no payload byte is ever sent.
    m.case(
        "a frame length over --max-frame (header only)",
        "tcp",
        Counted::Error(ErrorKind::FrameTooLarge),
        1,
        |m| {
            refused_after(
                m.tcp,
                &(MAX_FRAME as u32 + 1).to_be_bytes(),
                "frame over max",
            )
        },
    );
    m.case(
        "a frame length of 0xFFFFFFFF",
        "tcp",
        Counted::Error(ErrorKind::FrameTooLarge),
        1,
        |m| refused_after(m.tcp, &[0xff; 4], "0xFFFFFFFF"),
    );
    m.case(
        "a record length over --max-frame (header only)",
        "stcp",
        Counted::Error(ErrorKind::FrameTooLarge),
        1,
        |m| {
            let (mut s, _session) = m.established();
            let mut header = [0u8; RECORD_HEADER_LEN];
            write_record_header(&mut header, RecordType::Data, MAX_FRAME + 1);
            s.write_all(&header).unwrap();
            assert_closed(&mut s, "record over max");
        },
    );
    m.case(
        "a record header of 0xFFFFFFFF",
        "stcp",
        Counted::Error(ErrorKind::BadRecord),
        1,
        |m| {
            let (mut s, _session) = m.established();
            s.write_all(&[0xff; 4]).unwrap();
            assert_closed(&mut s, "record header 0xFFFFFFFF");
        },
    );
}

fn record_cases(m: &mut Matrix) {
    let payload = pseudo_random(100, 7);
    // Record layout: [header 4][ciphertext 100][tag 16]; the header's length field is 116.
    let flips: [(&str, usize, u8); 3] = [
        // 116 -> 112: a shorter record whose tag cannot match (a longer one would just wait).
        ("one flipped bit in a record's header", 3, 0x04),
        (
            "one flipped bit in a record's body",
            RECORD_HEADER_LEN + 50,
            0x10,
        ),
        (
            "one flipped bit in a record's tag",
            RECORD_HEADER_LEN + 100 + 7,
            0x01,
        ),
    ];
    for (name, at, bit) in flips {
        m.case(name, "stcp", Counted::Error(ErrorKind::BadTag), 1, |m| {
            let (mut s, mut session) = m.established();
            echo_ok(&mut s, &mut session, b"before the flip");
            let mut rec = data_record(&mut session.sealer, &payload);
            rec[at] ^= bit;
            // Send what the (maybe altered) header announces, so the server opens this record
            // rather than refusing the header of a "next" one made of its leftover bytes.
            let field = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]) & 0x0fff_ffff;
            rec.truncate(RECORD_HEADER_LEN + field as usize);
            s.write_all(&rec).unwrap();
            assert_closed(&mut s, name);
        });
    }
    m.case(
        "a replayed record",
        "stcp",
        Counted::Error(ErrorKind::BadTag),
        1,
        |m| {
            let (mut s, mut session) = m.established();
            let rec = data_record(&mut session.sealer, &payload);
            s.write_all(&rec).unwrap();
            assert_eq!(read_record(&mut s, &mut session.opener).unwrap(), payload);
            s.write_all(&rec).unwrap();
            assert_closed(&mut s, "replay");
        },
    );
    m.case(
        "two records swapped",
        "stcp",
        Counted::Error(ErrorKind::BadTag),
        1,
        |m| {
            let (mut s, mut session) = m.established();
            let first = data_record(&mut session.sealer, b"first");
            let second = data_record(&mut session.sealer, b"second");
            s.write_all(&[second, first].concat()).unwrap();
            assert_closed(&mut s, "swapped");
        },
    );
    m.case(
        "a record after an authenticated close",
        "stcp",
        Counted::Error(ErrorKind::RecordAfterClose),
        1,
        |m| {
            let (mut s, mut session) = m.established();
            echo_ok(&mut s, &mut session, b"before the close");
            let mut close = vec![0u8; RECORD_HEADER_LEN + TAG_LEN];
            write_record_header(&mut close, RecordType::Close, 0);
            session.sealer.seal(&mut close).unwrap();
            // The sealer refuses to seal after its close; seal the next record by hand, under
            // the next nonce, so it authenticates and only its place is wrong.
            let late = seal_by_hand(&mut session.sealer, b"after the close");
            // One write: both arrive in one read, so the server sees them together.
            s.write_all(&[close, late].concat()).unwrap();
            assert_closed(&mut s, "record after close");
        },
    );
}

fn reset_and_cut_cases(m: &mut Matrix) {
    m.case(
        "a stream cut mid-record",
        "stcp",
        Counted::Error(ErrorKind::Truncated),
        1,
        |m| {
            let (mut s, mut session) = m.established();
            echo_ok(&mut s, &mut session, b"before the cut");
            let rec = data_record(&mut session.sealer, &pseudo_random(1000, 3));
            s.write_all(&rec[..500]).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            assert_closed(&mut s, "cut mid-record");
        },
    );
    m.case(
        "a stream cut mid-frame",
        "tcp",
        Counted::Error(ErrorKind::Truncated),
        1,
        |m| {
            let mut s = connect(m.tcp);
            let f = frame(&pseudo_random(4000, 4));
            s.write_all(&f[..1500]).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            assert_closed(&mut s, "cut mid-frame");
        },
    );
    m.case(
        "a client resetting mid-record (SO_LINGER 0)",
        "stcp",
        Counted::Error(ErrorKind::Io),
        1,
        |m| {
            let (mut s, mut session) = m.established();
            echo_ok(&mut s, &mut session, b"before the reset");
            let rec = data_record(&mut session.sealer, &pseudo_random(3000, 5));
            s.write_all(&rec[..1000]).unwrap();
            reset(s);
        },
    );
    m.case(
        "a client resetting mid-frame (SO_LINGER 0)",
        "tcp",
        Counted::Error(ErrorKind::Io),
        1,
        |m| {
            let mut s = connect(m.tcp);
            let f = frame(&pseudo_random(4000, 6));
            s.write_all(&f[..2000]).unwrap();
            reset(s);
        },
    );
}

/// Slowloris and a truncated hello followed by silence, at the same time: both are cut by
/// --handshake-timeout.
fn slow_cases(m: &mut Matrix) {
    m.case(
        "slowloris (a handshake at 1 byte/s) + a truncated handshake then silence",
        "stcp",
        Counted::Error(ErrorKind::HandshakeTimeout),
        2,
        |m| {
            let (_, hello) = m.hello(&m.good());
            let addr = m.stcp;
            std::thread::scope(|scope| {
                let slow = scope.spawn(|| slowloris(addr, &hello));
                let mut half = connect(addr);
                half.write_all(&hello[..20]).unwrap();
                let t0 = Instant::now();
                assert_closed(&mut half, "truncated hello");
                assert!(t0.elapsed() >= HANDSHAKE_TIMEOUT - Duration::from_millis(150));
                let (lasted, sent) = slow.join().unwrap();
                assert!(
                    lasted >= HANDSHAKE_TIMEOUT - Duration::from_millis(150),
                    "slowloris cut after {lasted:?}, before the handshake timeout"
                );
                assert!(
                    lasted <= HANDSHAKE_TIMEOUT + Duration::from_secs(10),
                    "slowloris lasted {lasted:?}"
                );
                assert!(
                    sent <= HANDSHAKE_TIMEOUT.as_secs() as usize + 2 && sent < hello.len(),
                    "slowloris sent {sent} bytes"
                );
            });
        },
    );
}

/// Idle connections past --idle-timeout, and a client that writes without ever reading its
/// echoes: the server stops reading it, holds a bounded amount for it while it keeps writing,
/// and cuts it at the idle timeout (its echoes make no progress).
fn idle_and_unread_cases(m: &mut Matrix) {
    m.case(
        "idle connections (STCP, TCP) and a client that never reads its echoes",
        "both",
        Counted::Error(ErrorKind::IdleTimeout),
        3,
        |m| {
            let (mut idle_stcp, mut session) = m.established();
            echo_ok(&mut idle_stcp, &mut session, b"then silence");
            let mut idle_tcp = connect(m.tcp);
            idle_tcp.write_all(&frame(b"then silence")).unwrap();
            assert_eq!(read_frame(&mut idle_tcp).unwrap(), b"then silence");

            let mut unread = connect(m.tcp);
            unread
                .set_write_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let f = frame(&pseudo_random(MAX_FRAME, 8));
            let bound = STEADY_ALLOWANCE
                + MAX_UNSENT as u64
                + RING_HOLD_CAP as u64 * (MAX_FRAME + FRAME_HEADER_LEN) as u64
                + 3 * (MAX_FRAME + FRAME_HEADER_LEN) as u64;
            let writing = Duration::from_millis(1500);
            let done = std::sync::atomic::AtomicBool::new(false);
            let (written, stalled, peak) = std::thread::scope(|scope| {
                let sampler = scope.spawn(|| {
                    let mut peak = 0;
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        peak = peak.max(m.server.stats().conn_buffer_bytes);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    peak
                });
                let t0 = Instant::now();
                let (mut written, mut stalled) = (0usize, false);
                let mut off = 0;
                while t0.elapsed() < writing {
                    match unread.write(&f[off..]) {
                        Ok(n) => {
                            written += n;
                            off = (off + n) % f.len();
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) =>
                        {
                            stalled = true
                        }
                        Err(e) => panic!("the unread client's write failed early: {e}"),
                    }
                }
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                (written, stalled, sampler.join().unwrap())
            });
            assert!(stalled, "wrote {written} bytes without a stall: the server keeps reading");
            assert!(
                peak <= bound,
                "the server held {peak} bytes while a client did not read (bound {bound})"
            );
            eprintln!(
                "{}: the unread client wrote {} KiB before stalling; the server held at most {} KiB",
                m.server.backend().name(),
                written >> 10,
                peak >> 10
            );
            // Never reading, the unread client is cut with the idle ones.
            let want = m.expected[ErrorKind::IdleTimeout as usize] + 3;
            wait_for(&m.server, "the idle timeouts", |s| {
                s.error(ErrorKind::IdleTimeout) >= want
            });
            assert_closed(&mut idle_stcp, "idle STCP");
            assert_closed(&mut idle_tcp, "idle TCP");
            drop(unread);
        },
    );
}

/// More connections than --max-conns: the extra ones are accepted and closed at once, counted
/// as refused; the admitted ones (and the steady load) keep working.
fn flood_case(m: &mut Matrix) {
    const EXTRA: u64 = 16;
    m.case(
        "a connection flood beyond --max-conns",
        "tcp",
        Counted::Refused,
        EXTRA,
        |m| {
            let open = m.server.stats().open();
            assert_eq!(open, STEADY_CONNS);
            let room = MAX_CONNS as u64 - open;
            let before = m.server.stats().refused;
            let mut flood: Vec<TcpStream> = (0..room + EXTRA).map(|_| connect(m.tcp)).collect();
            wait_for(&m.server, "the extra connections to be refused", |s| {
                s.refused >= before + EXTRA && s.open() == MAX_CONNS as u64
            });
            let mut admitted = 0;
            for (i, s) in flood.iter_mut().enumerate() {
                let p = format!("flood {i}");
                s.write_all(&frame(p.as_bytes())).unwrap();
                match read_frame(s) {
                    Ok(echo) => {
                        assert_eq!(echo, p.as_bytes());
                        admitted += 1;
                    }
                    Err(_) => assert!(closed_by_peer(s), "flood {i} neither echoed nor closed"),
                }
            }
            assert_eq!(admitted, room, "admitted connections");
        },
    );
}

/// The load generator pinning the wrong key: every handshake fails, with a clear message.
fn loadgen_wrong_key_case(m: &mut Matrix) {
    m.case(
        "stcp-loadgen pinning the wrong server key (2 connections)",
        "stcp",
        Counted::Error(ErrorKind::HandshakeAuthFailed),
        2,
        |m| {
            let out = m.dir.join("wrong-key");
            let wrong = StaticKeypair::generate([43; 32]).public_hex();
            let output = loadgen()
                .env("RUST_LOG", "warn")
                .args(["--target", &m.stcp.to_string(), "--server-key", &wrong])
                .arg("--psk")
                .arg(&m.psk_file)
                .args(["--clients", "2", "--threads", "1", "--duration", "1s"])
                .args(["--warmup", "0s", "--timeout", "5s", "--quiet", "--out"])
                .arg(&out)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(exit::PARTIAL), "{stderr}");
            let report = only_report(&out).expect("a report");
            assert_eq!(report.results.errors.handshake, 2, "{stderr}");
            assert_eq!(report.results.connections.established, 0);
            assert_eq!(
                report.partial_reason.as_deref(),
                Some("no connection could be set up")
            );
            assert!(
                stderr.contains("wrong --server-key"),
                "the load generator does not say why:\n{stderr}"
            );
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers.

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
    let closed: u64 = rows.iter().map(|r| r.3).sum::<u64>() - refused;
    t.push_str(&format!(
        "connections closed by error kind: {closed}; refused (max-conns): {refused}\n"
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
