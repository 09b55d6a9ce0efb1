//! The TLS listener's hostile cases: peers that do not speak TLS, a ClientHello cut short or
//! trickled, a client that refuses the certificate, and a garbage record after the handshake.
//! Each must close only its connection, counted under its TLS kind (or the handshake timeout).

use std::sync::Arc;

use rustls::{pki_types::ServerName, ClientConnection, StreamOwned};
use stcp_server::tls::pinned_client_config;

use super::*;

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn client(pem: &str) -> ClientConnection {
    let cfg = Arc::new(pinned_client_config(pem).expect("client config"));
    ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap()
}

/// A TLS connection with its handshake done and one frame echoed.
fn established(m: &Matrix) -> Tls {
    let mut s = StreamOwned::new(client(&m.tls_pem), connect(m.tls));
    s.write_all(&frame(b"hello over TLS")).unwrap();
    let mut h = [0u8; 4];
    s.read_exact(&mut h).unwrap();
    let mut p = vec![0u8; u32::from_be_bytes(h) as usize];
    s.read_exact(&mut p).unwrap();
    assert_eq!(p, b"hello over TLS");
    s
}

/// The bytes of a real rustls ClientHello.
fn client_hello(pem: &str) -> Vec<u8> {
    let mut c = client(pem);
    let mut hello = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut hello).unwrap();
    }
    hello
}

pub(crate) fn tls_cases(m: &mut Matrix) {
    m.case(
        "an STCP hello on the TLS port",
        "tls",
        Counted::Error(ErrorKind::TlsBadClientHello),
        1,
        |m| {
            let (_, hello) = m.hello(&m.good());
            refused_after(m.tls, &hello, "STCP hello on the TLS port");
        },
    );
    m.case(
        "an HTTP request on the TLS port",
        "tls",
        Counted::Error(ErrorKind::TlsBadClientHello),
        1,
        |m| {
            let req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: scanner\r\n\r\n";
            refused_after(m.tls, req, "HTTP request on the TLS port");
        },
    );
    m.case(
        "a ClientHello without a key share (TLS 1.3 only by name)",
        "tls",
        Counted::Error(ErrorKind::TlsIncompatible),
        1,
        |m| refused_after(m.tls, &tls_client_hello(), "ClientHello without key share"),
    );
    m.case(
        "a ClientHello at 1 byte/s + a truncated ClientHello then silence",
        "tls",
        Counted::Error(ErrorKind::HandshakeTimeout),
        2,
        |m| {
            let hello = client_hello(&m.tls_pem);
            let addr = m.tls;
            std::thread::scope(|scope| {
                let slow = scope.spawn(|| slowloris(addr, &hello));
                let mut half = connect(addr);
                half.write_all(&hello[..hello.len() / 2]).unwrap();
                let t0 = Instant::now();
                assert_closed(&mut half, "truncated ClientHello");
                assert!(t0.elapsed() >= HANDSHAKE_TIMEOUT - Duration::from_millis(150));
                let (lasted, sent) = slow.join().unwrap();
                assert!(
                    lasted >= HANDSHAKE_TIMEOUT - Duration::from_millis(150),
                    "the trickled ClientHello was cut after {lasted:?}"
                );
                assert!(
                    sent < hello.len(),
                    "the trickled ClientHello was sent whole"
                );
            });
        },
    );
    m.case(
        "a client that does not trust the certificate",
        "tls",
        Counted::Error(ErrorKind::TlsAlert),
        1,
        |m| {
            let other = stcp_server::TlsIdentity::generate().unwrap();
            let mut s = StreamOwned::new(client(other.cert_pem()), connect(m.tls));
            let r = s.write_all(&frame(b"x")).and_then(|()| s.flush());
            let mut b = [0u8; 8];
            let failed = r.is_err() || s.read(&mut b).is_err();
            assert!(failed, "a client pinning another certificate completed");
        },
    );
    m.case(
        "a garbage record after the handshake",
        "tls",
        Counted::Error(ErrorKind::TlsBadRecord),
        1,
        |m| {
            let s = established(m);
            let mut sock = s.sock;
            let mut record = vec![0x17, 0x03, 0x03, 0x01, 0x00];
            record.extend(pseudo_random(256, 77));
            sock.write_all(&record).unwrap();
            assert_closed(&mut sock, "garbage record");
        },
    );
    m.case(
        "a TLS client that never reads its echoes",
        "tls",
        Counted::Error(ErrorKind::IdleTimeout),
        1,
        unread_tls_client,
    );
    m.case(
        "a TLS echo then close_notify",
        "tls",
        Counted::Nothing,
        1,
        |m| {
            let mut s = established(m);
            s.conn.send_close_notify();
            s.flush().unwrap();
            let mut b = [0u8; 64];
            assert_eq!(s.read(&mut b).unwrap(), 0, "the server's close_notify");
        },
    );
    m.case(
        "a TLS echo then FIN without close_notify",
        "tls",
        Counted::Error(ErrorKind::Truncated),
        1,
        |m| {
            let s = established(m);
            s.sock.shutdown(std::net::Shutdown::Write).unwrap();
            let mut sock = s.sock;
            assert_closed(&mut sock, "FIN without close_notify");
        },
    );
}

/// The most the server may hold for one TLS connection: its buffer limit (which counts rustls's
/// one incomplete record), overshot by at most the records one receive's plaintext makes (one
/// receive is capped at the room left, so at most the limit again).
const TLS_CONN_BOUND: u64 = 2 * CONN_BUFFER_LIMIT as u64;

/// A TLS client that writes large frames and never reads: the server stops reading it, holds a
/// bounded amount (rustls's buffers included), and cuts it at the idle timeout.
fn unread_tls_client(m: &mut Matrix) {
    let mut s = established(m);
    s.conn.set_buffer_limit(Some(64 << 10));
    s.sock
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let f = frame(&pseudo_random(MAX_FRAME, 9));
    let bound = STEADY_ALLOWANCE + TLS_CONN_BOUND;
    let writing = Duration::from_millis(1500);
    let done = std::sync::atomic::AtomicBool::new(false);
    let server = &m.server;
    let (written, stalled, peak) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(server.stats().conn_buffer_bytes);
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        let t0 = Instant::now();
        let (mut written, mut stalled, mut off) = (0usize, false, 0);
        while t0.elapsed() < writing {
            if s.conn.wants_write() {
                match s.conn.write_tls(&mut s.sock) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        stalled = true
                    }
                    Err(e) => panic!("the unread TLS client's write failed early: {e}"),
                }
            } else {
                let n = s.conn.writer().write(&f[off..]).unwrap();
                off = (off + n) % f.len();
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (written, stalled, sampler.join().unwrap())
    });
    assert!(
        stalled,
        "wrote {written} bytes without a stall: the server keeps reading"
    );
    assert!(
        peak <= bound,
        "the server held {peak} bytes while a TLS client did not read (bound {bound})"
    );
    eprintln!(
        "{} tls: the unread client wrote {} KiB before stalling; the server held at most {} KiB (bound {} KiB)",
        m.server.backend().name(),
        written >> 10,
        peak >> 10,
        bound >> 10
    );
    let want = m.expected[ErrorKind::IdleTimeout as usize] + 1;
    wait_for(&m.server, "the idle timeout", |st| {
        st.error(ErrorKind::IdleTimeout) >= want
    });
    // Read what the server queued (echoes, its close_notify) to the end, so that this client's
    // close is not a reset.
    let mut sock = s.sock;
    sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_closed(&mut sock, "unread TLS client");
}
