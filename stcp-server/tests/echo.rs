//! Echo correctness on both io backends (and, for STCP, both crypto backends): every frame size,
//! frames dribbled one byte at a time, frames pipelined in one write, hundreds of connections,
//! every echo compared byte for byte.

mod common;

use std::io::Write;

use common::*;
use stcp_proto::{CryptoBackend, Event};
use stcp_server::IoBackend;

/// Generates one test per io backend (and crypto backend where it matters).
macro_rules! per_io {
    ($name:ident) => {
        mod $name {
            #[test]
            fn uring() {
                if super::uring_ok(super::IoBackend::Uring) {
                    super::$name(super::IoBackend::Uring, super::CryptoBackend::AwsLc);
                }
            }
            #[test]
            fn epoll() {
                super::$name(super::IoBackend::Epoll, super::CryptoBackend::AwsLc);
            }
        }
    };
}
macro_rules! per_io_and_crypto {
    ($name:ident) => {
        mod $name {
            #[test]
            fn uring_aws_lc() {
                if super::uring_ok(super::IoBackend::Uring) {
                    super::$name(super::IoBackend::Uring, super::CryptoBackend::AwsLc);
                }
            }
            #[test]
            fn uring_rustcrypto() {
                if super::uring_ok(super::IoBackend::Uring) {
                    super::$name(super::IoBackend::Uring, super::CryptoBackend::RustCrypto);
                }
            }
            #[test]
            fn epoll_aws_lc() {
                super::$name(super::IoBackend::Epoll, super::CryptoBackend::AwsLc);
            }
            #[test]
            fn epoll_rustcrypto() {
                super::$name(super::IoBackend::Epoll, super::CryptoBackend::RustCrypto);
            }
        }
    };
}

fn stcp_client(server: &stcp_server::ServerHandle, crypto: CryptoBackend) -> StcpClient {
    let cfg = client_config(keypair(42).public, None, crypto);
    StcpClient::connect(server.stcp_addr().unwrap(), &cfg).expect("handshake")
}

fn tcp_every_size(io: IoBackend, crypto: CryptoBackend) {
    let server = start(io, crypto, |_| {});
    let mut s = tcp_connect(server.tcp_addr().unwrap());
    for (i, size) in SIZES.into_iter().enumerate() {
        let p = payload(size, i as u8);
        s.write_all(&frame(&p)).unwrap();
        assert_eq!(read_tcp_frame(&mut s).unwrap(), p, "size {size}");
    }
    drop(s);
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.frames, SIZES.len() as u64);
    assert_eq!(totals.errors_total(), 0, "{totals:?}");
}
per_io!(tcp_every_size);

fn stcp_every_size(io: IoBackend, crypto: CryptoBackend) {
    let server = start(io, crypto, |_| {});
    let mut c = stcp_client(&server, crypto);
    for (i, size) in SIZES.into_iter().enumerate() {
        let p = payload(size, i as u8);
        c.send(&p).unwrap();
        assert_eq!(c.recv_frame().unwrap(), p, "size {size}");
    }
    c.close_cleanly();
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.handshakes, 1);
    assert_eq!(totals.errors_total(), 0, "{totals:?}");
}
per_io_and_crypto!(stcp_every_size);

const DRIBBLE_SIZES: [usize; 4] = [0, 1, 300, 5000];

fn tcp_one_byte_at_a_time(io: IoBackend, crypto: CryptoBackend) {
    let server = start(io, crypto, |_| {});
    let mut s = tcp_connect(server.tcp_addr().unwrap());
    for size in DRIBBLE_SIZES {
        let p = payload(size, 3);
        for b in frame(&p) {
            s.write_all(&[b]).unwrap();
        }
        assert_eq!(read_tcp_frame(&mut s).unwrap(), p, "size {size}");
    }
}
per_io!(tcp_one_byte_at_a_time);

fn stcp_one_byte_at_a_time(io: IoBackend, crypto: CryptoBackend) {
    let server = start(io, crypto, |_| {});
    // The handshake itself is dribbled too.
    let cfg = client_config(keypair(42).public, None, crypto);
    let mut stream = tcp_connect(server.stcp_addr().unwrap());
    let mut conn = stcp_proto::Connection::client(
        &cfg,
        stcp_proto::Mode::Stcp,
        std::time::Instant::now(),
        [5; 32],
        IO_TIMEOUT,
    )
    .unwrap();
    for &b in conn.poll_transmit() {
        stream.write_all(&[b]).unwrap();
    }
    let n = conn.poll_transmit().len();
    conn.advance_transmit(n);
    let mut c = StcpClient {
        stream,
        conn,
        closed: false,
    };
    assert_eq!(c.next_event().unwrap(), Event::Connected);
    for size in DRIBBLE_SIZES {
        let p = payload(size, 4);
        c.queue(&p);
        let bytes = c.conn.poll_transmit().to_vec();
        c.conn.advance_transmit(bytes.len());
        for b in bytes {
            c.stream.write_all(&[b]).unwrap();
        }
        assert_eq!(c.recv_frame().unwrap(), p, "size {size}");
    }
    c.close_cleanly();
}
per_io_and_crypto!(stcp_one_byte_at_a_time);

/// Sizes of frames pipelined in one write: small ones around ring-buffer and record edges, and
/// big ones that span several receive buffers.
fn pipeline_sizes() -> Vec<usize> {
    let mut v: Vec<usize> = (0..40).map(|i| (i * 97) % 700).collect();
    v.extend([4095, 4096, 16 * 1024 - 4, 16 * 1024, 65536, 200_000, 0, 1]);
    v
}

fn tcp_pipelined(io: IoBackend, crypto: CryptoBackend) {
    let server = start(io, crypto, |_| {});
    let mut s = tcp_connect(server.tcp_addr().unwrap());
    let sizes = pipeline_sizes();
    let mut all = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        all.extend(frame(&payload(n, i as u8)));
    }
    let mut writer = s.try_clone().unwrap();
    let t = std::thread::spawn(move || writer.write_all(&all).unwrap());
    for (i, &n) in sizes.iter().enumerate() {
        assert_eq!(
            read_tcp_frame(&mut s).unwrap(),
            payload(n, i as u8),
            "frame {i} ({n} bytes)"
        );
    }
    t.join().unwrap();
}
per_io!(tcp_pipelined);

fn stcp_pipelined(io: IoBackend, crypto: CryptoBackend) {
    let server = start(io, crypto, |_| {});
    let mut c = stcp_client(&server, crypto);
    let sizes = pipeline_sizes();
    for (i, &n) in sizes.iter().enumerate() {
        c.queue(&payload(n, i as u8));
    }
    // All records in one write, read back concurrently.
    let bytes = c.conn.poll_transmit().to_vec();
    c.conn.advance_transmit(bytes.len());
    let mut writer = c.stream.try_clone().unwrap();
    let t = std::thread::spawn(move || writer.write_all(&bytes).unwrap());
    for (i, &n) in sizes.iter().enumerate() {
        assert_eq!(
            c.recv_frame().unwrap(),
            payload(n, i as u8),
            "frame {i} ({n} bytes)"
        );
    }
    t.join().unwrap();
    c.close_cleanly();
}
per_io_and_crypto!(stcp_pipelined);

const MANY: usize = 300;

fn tcp_many_connections(io: IoBackend, crypto: CryptoBackend) {
    let server = start(io, crypto, |_| {});
    let addr = server.tcp_addr().unwrap();
    let mut conns: Vec<_> = (0..MANY).map(|_| tcp_connect(addr)).collect();
    for round in 0..2u8 {
        for (i, s) in conns.iter_mut().enumerate() {
            s.write_all(&frame(&payload(i % 2000, round))).unwrap();
        }
        for (i, s) in conns.iter_mut().enumerate() {
            assert_eq!(
                read_tcp_frame(s).unwrap(),
                payload(i % 2000, round),
                "conn {i}"
            );
        }
    }
    assert_eq!(server.stats().open(), MANY as u64);
    drop(conns);
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.accepted, MANY as u64);
    assert_eq!(totals.frames, 2 * MANY as u64);
}
per_io!(tcp_many_connections);

fn stcp_many_connections(io: IoBackend, crypto: CryptoBackend) {
    let server = start(io, crypto, |_| {});
    let mut clients: Vec<_> = (0..MANY).map(|_| stcp_client(&server, crypto)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&payload(i * 7 % 3000, 1)).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(
            c.recv_frame().unwrap(),
            payload(i * 7 % 3000, 1),
            "conn {i}"
        );
    }
    assert_eq!(server.stats().open(), MANY as u64);
    for c in clients {
        c.close_cleanly();
    }
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.handshakes, MANY as u64);
    assert_eq!(totals.errors_total(), 0, "{totals:?}");
}
per_io!(stcp_many_connections);

/// A client that sends its last frame and its close record and half-closes in one go ends
/// cleanly: the FIN arriving with the close record is not a truncation.
fn stcp_close_and_fin_together(io: IoBackend, crypto: CryptoBackend) {
    let server = start(io, crypto, |_| {});
    for _ in 0..20 {
        let mut c = stcp_client(&server, crypto);
        c.queue(b"last words");
        c.conn.close().unwrap();
        let bytes = c.conn.poll_transmit().to_vec();
        c.conn.advance_transmit(bytes.len());
        c.stream.write_all(&bytes).unwrap();
        c.stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(c.recv_frame().unwrap(), b"last words");
        assert_eq!(c.next_event().unwrap(), Event::Closed);
        assert!(closed_by_peer(&mut c.stream));
    }
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.errors_total(), 0, "{totals:?}");
    assert_eq!(totals.closed, 20);
}
per_io!(stcp_close_and_fin_together);

/// Busy poll changes how a worker waits for completions, not what it echoes: every size one by
/// one, then a pipelined burst, over STCP with it on (io_uring spins; epoll ignores it).
fn busy_poll_echoes(io: IoBackend, crypto: CryptoBackend) {
    let server = start(io, crypto, |c| {
        c.busy_poll = std::time::Duration::from_micros(200)
    });
    let mut c = stcp_client(&server, crypto);
    for (i, size) in SIZES.into_iter().enumerate() {
        let p = payload(size, i as u8);
        c.send(&p).unwrap();
        assert_eq!(c.recv_frame().unwrap(), p, "size {size}");
    }
    let sizes = pipeline_sizes();
    for (i, &n) in sizes.iter().enumerate() {
        c.queue(&payload(n, i as u8));
    }
    let bytes = c.conn.poll_transmit().to_vec();
    c.conn.advance_transmit(bytes.len());
    let mut writer = c.stream.try_clone().unwrap();
    let t = std::thread::spawn(move || writer.write_all(&bytes).unwrap());
    for (i, &n) in sizes.iter().enumerate() {
        assert_eq!(
            c.recv_frame().unwrap(),
            payload(n, i as u8),
            "frame {i} ({n} bytes)"
        );
    }
    t.join().unwrap();
    c.close_cleanly();
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.errors_total(), 0, "{totals:?}");
}
per_io!(busy_poll_echoes);
