//! TLS 1.3 on both io backends, against a blocking rustls client (`StreamOwned` over a
//! `TcpStream`) that pins the server's certificate: every frame size (one larger than a TLS
//! record, one larger than the per-connection buffer limit) echoed byte for byte, pipelined
//! frames, close_notify both ways, the frame limit inside TLS, and peers the server must refuse
//! (a non-TLS peer, a client that does not trust the certificate), each counted by its kind.

mod common;

use std::{
    io::{self, Read, Write},
    net::TcpStream,
    sync::Arc,
    time::Duration,
};

use common::*;
use rustls::{pki_types::ServerName, ClientConnection, StreamOwned};
use stcp_proto::CryptoBackend;
use stcp_server::{tls::pinned_client_config, Config, ErrorKind, IoBackend, ServerHandle};

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

fn start_tls(io: IoBackend, tweak: impl FnOnce(&mut Config)) -> ServerHandle {
    start(io, CryptoBackend::AwsLc, |c| {
        let tls = Config::ephemeral(keypair(42))
            .with_ephemeral_tls()
            .expect("certificate");
        c.tls_listen = tls.tls_listen;
        c.tls_identity = tls.tls_identity;
        tweak(c);
    })
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn connect(server: &ServerHandle, cert_pem: &str, name: &str) -> Tls {
    let cfg = Arc::new(pinned_client_config(cert_pem).expect("client config"));
    let name = ServerName::try_from(name.to_string()).unwrap();
    let conn = ClientConnection::new(cfg, name).unwrap();
    let sock = tcp_connect(server.tls_addr().expect("a TLS listener"));
    StreamOwned::new(conn, sock)
}

fn read_frame(s: &mut Tls) -> io::Result<Vec<u8>> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h)?;
    let mut p = vec![0u8; u32::from_be_bytes(h) as usize];
    s.read_exact(&mut p)?;
    Ok(p)
}

/// Reads until the server's close_notify: true for a clean end.
fn clean_end(s: &mut Tls) -> bool {
    let mut b = [0u8; 256];
    matches!(s.read(&mut b), Ok(0))
}

fn tls_every_size(io: IoBackend) {
    let server = start_tls(io, |_| {});
    let pem = server.tls_cert_pem().unwrap().to_string();
    let mut s = connect(&server, &pem, "localhost");
    for (i, size) in SIZES.into_iter().enumerate() {
        let p = payload(size, i as u8);
        s.write_all(&frame(&p)).unwrap();
        assert_eq!(read_frame(&mut s).unwrap(), p, "size {size}");
    }
    let suite = s.conn.negotiated_cipher_suite().unwrap().suite();
    assert_eq!(suite, rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
    assert_eq!(
        s.conn.negotiated_key_exchange_group().unwrap().name(),
        rustls::NamedGroup::X25519
    );
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    // close_notify from us; the server answers with its own, then FIN.
    s.conn.send_close_notify();
    s.flush().unwrap();
    assert!(clean_end(&mut s), "the server ends with close_notify");
    drop(s);
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.frames, SIZES.len() as u64);
    assert_eq!(totals.tls_handshakes, 1);
    assert_eq!(totals.handshakes, 0, "STCP handshakes are counted apart");
    assert_eq!(totals.errors_total(), 0, "{totals:?}");
}
per_io!(tls_every_size);

/// Many frames in one write (over the 64 KiB buffer limit in total), by IP address (no SNI),
/// with a small buffer limit: reading pauses and resumes, and every echo comes back in order.
fn tls_pipelined_under_a_small_limit(io: IoBackend) {
    let server = start_tls(io, |c| c.conn_buffer_limit = 48 << 10);
    let pem = server.tls_cert_pem().unwrap().to_string();
    let mut s = connect(&server, &pem, "127.0.0.1");
    let frames: Vec<Vec<u8>> = (0..40).map(|i| payload(5000 + 97 * i, i as u8)).collect();
    let mut all = Vec::new();
    for p in &frames {
        all.extend(frame(p));
    }
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s.conn.set_buffer_limit(None);
    let mut writer = s.sock.try_clone().unwrap();
    // The TLS bytes are made here, the socket written by a second thread so that reading the
    // echoes cannot wait for the writes.
    s.conn.writer().write_all(&all).unwrap();
    let mut wire = Vec::new();
    while s.conn.wants_write() {
        s.conn.write_tls(&mut wire).unwrap();
    }
    let t = std::thread::spawn(move || writer.write_all(&wire));
    for p in &frames {
        assert_eq!(&read_frame(&mut s).unwrap(), p);
    }
    t.join().unwrap().unwrap();
    drop(s);
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.frames, frames.len() as u64);
    assert_eq!(totals.tls_handshakes, 1);
}
per_io!(tls_pipelined_under_a_small_limit);

/// A TLS connection's large output buffers go back to the worker's pool; an STCP connection
/// that comes after them on the same worker must still receive whole records. (A pooled buffer
/// larger than a record once became an STCP decoder's buffer, its capacity counted against the
/// connection's buffer limit, and the connection stopped receiving in the middle of a record.)
fn tls_then_stcp_on_one_worker(io: IoBackend) {
    let server = start_tls(io, |c| c.cores = 1);
    let pem = server.tls_cert_pem().unwrap().to_string();
    // Several TLS connections with 64 KiB frames in flight at once leave several large buffers.
    let mut tls: Vec<Tls> = (0..4)
        .map(|_| connect(&server, &pem, "localhost"))
        .collect();
    for round in 0..4u8 {
        for (i, s) in tls.iter_mut().enumerate() {
            s.write_all(&frame(&payload(64 << 10, round ^ i as u8)))
                .unwrap();
        }
        for (i, s) in tls.iter_mut().enumerate() {
            assert_eq!(read_frame(s).unwrap(), payload(64 << 10, round ^ i as u8));
        }
    }
    for mut s in tls {
        s.conn.send_close_notify();
        s.flush().unwrap();
        assert!(clean_end(&mut s));
    }
    let cfg = client_config(keypair(42).public, None, CryptoBackend::AwsLc);
    let mut stcp: Vec<StcpClient> = (0..4)
        .map(|_| StcpClient::connect(server.stcp_addr().unwrap(), &cfg).expect("handshake"))
        .collect();
    for round in 0..8u8 {
        for (i, c) in stcp.iter_mut().enumerate() {
            c.send(&payload(64 << 10, round ^ i as u8)).unwrap();
        }
        for (i, c) in stcp.iter_mut().enumerate() {
            let echo = c.recv_frame().unwrap();
            assert_eq!(
                echo,
                payload(64 << 10, round ^ i as u8),
                "STCP echo after TLS"
            );
        }
    }
    for c in stcp {
        c.close_cleanly();
    }
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.errors_total(), 0, "{totals:?}");
}
per_io!(tls_then_stcp_on_one_worker);

/// A frame header over --max-frame inside TLS fails the connection like TCP mode's, counted as
/// frame_too_large; the next connection is served.
fn tls_frame_limit(io: IoBackend) {
    let server = start_tls(io, |c| c.max_frame = 1000);
    let pem = server.tls_cert_pem().unwrap().to_string();
    let mut s = connect(&server, &pem, "localhost");
    s.write_all(&frame(&payload(1000, 1))).unwrap();
    assert_eq!(read_frame(&mut s).unwrap(), payload(1000, 1));
    s.write_all(&1001u32.to_be_bytes()).unwrap();
    let mut b = [0u8; 16];
    assert!(
        !matches!(s.read(&mut b), Ok(n) if n > 0),
        "no echo after a bad header"
    );
    let mut again = connect(&server, &pem, "localhost");
    again.write_all(&frame(b"next")).unwrap();
    assert_eq!(read_frame(&mut again).unwrap(), b"next");
    drop((s, again));
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.error(ErrorKind::FrameTooLarge), 1, "{totals:?}");
}
per_io!(tls_frame_limit);

/// A client that pins another certificate refuses the server's: it sends an alert, which the
/// server counts as tls_alert. HTTP on the TLS port is tls_bad_client_hello. Neither counts a
/// handshake.
fn tls_refusals_are_counted(io: IoBackend) {
    let server = start_tls(io, |_| {});
    let other = Config::ephemeral(keypair(1)).with_ephemeral_tls().unwrap();
    let other_pem = other.tls_identity.unwrap().cert_pem().to_string();
    let mut s = connect(&server, &other_pem, "localhost");
    let e = s.write_all(&frame(b"x")).and_then(|_| s.flush());
    let e = match e {
        Err(e) => e,
        Ok(()) => read_frame(&mut s).expect_err("the handshake must fail"),
    };
    assert!(e.to_string().contains("certificate"), "{e}");
    drop(s);
    let mut http = tcp_connect(server.tls_addr().unwrap());
    http.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert!(closed_by_peer(&mut http));
    // Counters are updated by the workers: wait for both.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.stats().errors_total() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.error(ErrorKind::TlsAlert), 1, "{totals:?}");
    assert_eq!(totals.error(ErrorKind::TlsBadClientHello), 1, "{totals:?}");
    assert_eq!(totals.tls_handshakes, 0);
}
per_io!(tls_refusals_are_counted);

/// A TLS listener without a certificate is refused at start.
#[test]
fn a_tls_listener_needs_a_certificate() {
    let mut cfg = Config::ephemeral(keypair(3));
    cfg.tls_listen = Some("127.0.0.1:0".parse().unwrap());
    let e = stcp_server::Server::start(cfg).err().expect("refused");
    assert!(matches!(e, stcp_server::ServerError::NoTlsIdentity), "{e}");
}

/// The server's own end of a TLS connection is a close_notify after the echoes: at the idle
/// timeout (counted as idle_timeout) and when it stops.
fn tls_idle_and_stop_end_with_close_notify(io: IoBackend) {
    let server = start_tls(io, |c| c.idle_timeout = Some(Duration::from_millis(300)));
    let pem = server.tls_cert_pem().unwrap().to_string();
    let mut idle = connect(&server, &pem, "localhost");
    idle.write_all(&frame(b"then silence")).unwrap();
    assert_eq!(read_frame(&mut idle).unwrap(), b"then silence");
    assert!(clean_end(&mut idle), "close_notify at the idle timeout");
    let mut busy = connect(&server, &pem, "localhost");
    busy.write_all(&frame(b"before the stop")).unwrap();
    assert_eq!(read_frame(&mut busy).unwrap(), b"before the stop");
    server.stop();
    assert!(clean_end(&mut busy), "close_notify when the server stops");
    let totals = server.join().unwrap();
    assert_eq!(totals.error(ErrorKind::IdleTimeout), 1, "{totals:?}");
    assert_eq!(totals.errors_total(), 1, "{totals:?}");
}
per_io!(tls_idle_and_stop_end_with_close_notify);

/// `--handshake-rate-per-ip` holds for TLS handshakes too: with one a second, a second
/// handshake from 127.0.0.1 at once is closed unanswered, counted as handshake_rate_limited.
fn tls_handshakes_are_rate_limited(io: IoBackend) {
    let server = start_tls(io, |c| {
        c.handshake_rate_per_ip = Some(1);
        c.cores = 1;
    });
    let pem = server.tls_cert_pem().unwrap().to_string();
    let mut first = connect(&server, &pem, "localhost");
    first.write_all(&frame(b"one")).unwrap();
    assert_eq!(read_frame(&mut first).unwrap(), b"one");
    let mut second = connect(&server, &pem, "localhost");
    let r = second
        .write_all(&frame(b"two"))
        .and_then(|()| read_frame(&mut second));
    assert!(
        r.is_err(),
        "a second handshake within the second was answered"
    );
    drop((first, second));
    let totals = server.shutdown().unwrap();
    assert_eq!(
        totals.error(ErrorKind::HandshakeRateLimited),
        1,
        "{totals:?}"
    );
    assert_eq!(totals.tls_handshakes, 1);
}
per_io!(tls_handshakes_are_rate_limited);

/// Many TLS connections at once, handshakes and echoes of several sizes interleaved across two
/// workers: every echo byte for byte, every handshake counted, no error.
fn many_tls_connections_at_once(io: IoBackend) {
    const THREADS: usize = 16;
    const CONNS: usize = 8;
    let server = start_tls(io, |_| {});
    let pem = server.tls_cert_pem().unwrap().to_string();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (server, pem) = (&server, &pem);
            scope.spawn(move || {
                let mut open: Vec<Tls> = (0..CONNS)
                    .map(|_| connect(server, pem, "localhost"))
                    .collect();
                for round in 0..3 {
                    for (i, s) in open.iter_mut().enumerate() {
                        let p = payload(1 + (t * 977 + i * 131 + round * 7919) % 40_000, i as u8);
                        s.write_all(&frame(&p)).unwrap();
                        assert_eq!(read_frame(s).unwrap(), p);
                    }
                }
                for mut s in open {
                    s.conn.send_close_notify();
                    s.flush().unwrap();
                    assert!(clean_end(&mut s));
                }
            });
        }
    });
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.tls_handshakes, (THREADS * CONNS) as u64);
    assert_eq!(totals.frames, (THREADS * CONNS * 3) as u64);
    assert_eq!(totals.errors_total(), 0, "{totals:?}");
}
per_io!(many_tls_connections_at_once);
