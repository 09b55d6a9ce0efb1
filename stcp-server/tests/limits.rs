//! Limits and failures on both io backends: PSK, pinned key, max-conns, max-frame, handshake and
//! idle timeouts, tampered records, non-STCP peers, unread echoes (backpressure), and stop().

mod common;

use std::{
    io::{self, Read, Write},
    time::{Duration, Instant},
};

use common::*;
use stcp_proto::{CryptoBackend, Event};
use stcp_server::{config::DEFAULT_CONN_BUFFER_LIMIT, ErrorKind, IoBackend, ServerHandle};

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

/// Waits (bounded) until `cond` holds on the server's counters.
fn wait_for(server: &ServerHandle, what: &str, cond: impl Fn(&stcp_server::StatsSnapshot) -> bool) {
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

const PSK: [u8; 32] = [7; 32];

fn psk_server_refuses_client_without_psk(io: IoBackend) {
    let server = start(io, CryptoBackend::AwsLc, |c| c.psk = Some(PSK));
    let addr = server.stcp_addr().unwrap();
    let without = client_config(keypair(42).public, None, CryptoBackend::AwsLc);
    assert!(
        StcpClient::connect(addr, &without).is_err(),
        "a client without the PSK got in"
    );
    wait_for(&server, "psk_required", |s| {
        s.error(ErrorKind::PskRequired) == 1
    });
    let wrong = client_config(keypair(42).public, Some([8; 32]), CryptoBackend::AwsLc);
    assert!(
        StcpClient::connect(addr, &wrong).is_err(),
        "a client with another PSK got in"
    );
    // NKpsk2 mixes the PSK into the server's reply: the client is the side that finds the
    // mismatch, and the server sees it hang up without a close.
    wait_for(&server, "truncated", |s| s.error(ErrorKind::Truncated) == 1);
    let with = client_config(keypair(42).public, Some(PSK), CryptoBackend::AwsLc);
    let mut c = StcpClient::connect(addr, &with).expect("a client with the PSK gets in");
    c.send(b"psk ok").unwrap();
    assert_eq!(c.recv_frame().unwrap(), b"psk ok");
    c.close_cleanly();
    assert_eq!(server.shutdown().unwrap().handshakes, 2);
}
per_io!(psk_server_refuses_client_without_psk);

fn client_pinning_the_wrong_key_fails(io: IoBackend) {
    let server = start(io, CryptoBackend::AwsLc, |_| {});
    let cfg = client_config(keypair(43).public, None, CryptoBackend::AwsLc);
    assert!(StcpClient::connect(server.stcp_addr().unwrap(), &cfg).is_err());
    wait_for(&server, "handshake_auth_failed", |s| {
        s.error(ErrorKind::HandshakeAuthFailed) == 1
    });
    assert_eq!(server.shutdown().unwrap().handshakes, 0);
}
per_io!(client_pinning_the_wrong_key_fails);

fn max_conns_refuses_extra_connections(io: IoBackend) {
    let server = start(io, CryptoBackend::AwsLc, |c| c.max_conns = 3);
    let addr = server.tcp_addr().unwrap();
    let mut admitted: Vec<_> = (0..3).map(|_| tcp_connect(addr)).collect();
    for s in &mut admitted {
        s.write_all(&frame(b"in")).unwrap();
        assert_eq!(read_tcp_frame(s).unwrap(), b"in");
    }
    let mut extra = tcp_connect(addr);
    assert!(
        closed_by_peer(&mut extra),
        "the 4th connection was not closed"
    );
    wait_for(&server, "refused", |s| s.refused == 1);
    // Closing one admitted connection makes room again.
    drop(admitted.pop());
    wait_for(&server, "a close", |s| s.open() == 2);
    let mut again = tcp_connect(addr);
    again.write_all(&frame(b"again")).unwrap();
    assert_eq!(read_tcp_frame(&mut again).unwrap(), b"again");
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.refused, 1);
    assert_eq!(totals.accepted, 4);
}
per_io!(max_conns_refuses_extra_connections);

fn frames_over_max_frame_close_the_connection(io: IoBackend) {
    let server = start(io, CryptoBackend::AwsLc, |c| c.max_frame = 1024);
    // TCP: the header alone is enough to refuse.
    let mut s = tcp_connect(server.tcp_addr().unwrap());
    s.write_all(&frame(&payload(1024, 0))).unwrap();
    assert_eq!(read_tcp_frame(&mut s).unwrap(), payload(1024, 0));
    s.write_all(&1025u32.to_be_bytes()).unwrap();
    assert!(closed_by_peer(&mut s));
    wait_for(&server, "frame_too_large (tcp)", |s| {
        s.error(ErrorKind::FrameTooLarge) == 1
    });
    // STCP: a record one byte over.
    let cfg = client_config(keypair(42).public, None, CryptoBackend::AwsLc);
    let mut c = StcpClient::connect(server.stcp_addr().unwrap(), &cfg).unwrap();
    c.send(&payload(1024, 1)).unwrap();
    assert_eq!(c.recv_frame().unwrap(), payload(1024, 1));
    c.send(&payload(1025, 1)).unwrap();
    assert!(c.next_event().is_err());
    wait_for(&server, "frame_too_large (stcp)", |s| {
        s.error(ErrorKind::FrameTooLarge) == 2
    });
}
per_io!(frames_over_max_frame_close_the_connection);

fn handshake_and_idle_timeouts_close_connections(io: IoBackend) {
    let server = start(io, CryptoBackend::AwsLc, |c| {
        c.handshake_timeout = Duration::from_millis(300);
        c.idle_timeout = Some(Duration::from_millis(400));
    });
    // Silent STCP client, and one that sends half a hello.
    let mut silent = tcp_connect(server.stcp_addr().unwrap());
    let mut half = tcp_connect(server.stcp_addr().unwrap());
    half.write_all(&[0, 0, 0, 56, b'S', b'T']).unwrap();
    let t0 = Instant::now();
    assert!(closed_by_peer(&mut silent));
    assert!(closed_by_peer(&mut half));
    assert!(t0.elapsed() < Duration::from_secs(10));
    wait_for(&server, "handshake_timeout", |s| {
        s.error(ErrorKind::HandshakeTimeout) == 2
    });
    // An idle TCP connection after one echo.
    let mut idle = tcp_connect(server.tcp_addr().unwrap());
    idle.write_all(&frame(b"once")).unwrap();
    assert_eq!(read_tcp_frame(&mut idle).unwrap(), b"once");
    assert!(closed_by_peer(&mut idle));
    wait_for(&server, "idle_timeout", |s| {
        s.error(ErrorKind::IdleTimeout) == 1
    });
    // An idle STCP connection is ended with the server's authenticated Close, not cut: a
    // client following the protocol sees a clean end.
    let cfg = client_config(keypair(42).public, None, CryptoBackend::AwsLc);
    let mut c = StcpClient::connect(server.stcp_addr().unwrap(), &cfg).unwrap();
    c.send(b"once").unwrap();
    assert_eq!(c.recv_frame().unwrap(), b"once");
    assert_eq!(c.next_event().unwrap(), Event::Closed);
    assert!(closed_by_peer(&mut c.stream));
    assert_eq!(c.conn.handle_eof(), Ok(()));
    wait_for(&server, "idle_timeout", |s| {
        s.error(ErrorKind::IdleTimeout) == 2
    });
}
per_io!(handshake_and_idle_timeouts_close_connections);

fn tampered_record_closes_only_its_connection(io: IoBackend) {
    let server = start(io, CryptoBackend::AwsLc, |_| {});
    let cfg = client_config(keypair(42).public, None, CryptoBackend::AwsLc);
    let mut good = StcpClient::connect(server.stcp_addr().unwrap(), &cfg).unwrap();
    let mut bad = StcpClient::connect(server.stcp_addr().unwrap(), &cfg).unwrap();
    bad.queue(b"tamper with me");
    let mut bytes = bad.conn.poll_transmit().to_vec();
    bad.conn.advance_transmit(bytes.len());
    bytes[6] ^= 0x01; // a ciphertext bit
    bad.stream.write_all(&bytes).unwrap();
    assert!(closed_by_peer(&mut bad.stream));
    wait_for(&server, "bad_tag", |s| s.error(ErrorKind::BadTag) == 1);
    good.send(b"still fine").unwrap();
    assert_eq!(good.recv_frame().unwrap(), b"still fine");
    good.close_cleanly();
}
per_io!(tampered_record_closes_only_its_connection);

fn non_stcp_peer_is_refused(io: IoBackend) {
    let server = start(io, CryptoBackend::AwsLc, |_| {});
    let mut s = tcp_connect(server.stcp_addr().unwrap());
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(closed_by_peer(&mut s));
    wait_for(&server, "handshake_too_large", |s| {
        s.error(ErrorKind::HandshakeTooLarge) == 1
    });
    let mut s = tcp_connect(server.stcp_addr().unwrap());
    s.write_all(&frame(b"NOPE and more bytes")).unwrap();
    assert!(closed_by_peer(&mut s));
    wait_for(&server, "not_stcp", |s| s.error(ErrorKind::NotStcp) == 1);
}
per_io!(non_stcp_peer_is_refused);

/// A client that writes without reading its echoes must stall (the server stops reading), not
/// make the server buffer without bound; when it reads again every echo arrives intact.
fn unread_echoes_stop_the_server_reading(io: IoBackend) {
    let server = start(io, CryptoBackend::AwsLc, |_| {});
    let mut s = tcp_connect(server.tcp_addr().unwrap());
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    const FRAME: usize = 64 * 1024;
    const LIMIT: usize = 512 << 20;
    let mut stream_bytes = Vec::new();
    let mut written = 0usize;
    let mut frames = 0usize;
    let stalled = 'outer: loop {
        assert!(
            written < LIMIT,
            "wrote {written} bytes without a stall: the server keeps reading"
        );
        let f = frame(&payload(FRAME, frames as u8));
        frames += 1;
        stream_bytes.extend_from_slice(&f);
        let mut off = 0;
        while off < f.len() {
            match s.write(&f[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break 'outer written + off;
                }
                Err(e) => panic!("write failed: {e}"),
            }
        }
        written += f.len();
    };
    assert!(stalled < LIMIT);
    // While it is stalled, the memory the server holds for it stays within the per-connection
    // buffer limit (64 KiB by default), whatever the frames' length: io_uring arms a receive
    // capped at the room left (or, on older kernels, a single receive of one buffer), epoll
    // reads at most that much. Sampled over a while (io_uring publishes the gauge every 100 ms).
    let bound = DEFAULT_CONN_BUFFER_LIMIT;
    let mut peak = 0;
    let until = Instant::now() + Duration::from_millis(600);
    while Instant::now() < until {
        peak = peak.max(server.stats().conn_buffer_bytes);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        peak > 0,
        "the gauge saw nothing held for a stalled connection"
    );
    assert!(
        peak <= bound as u64,
        "{io:?}: the server holds {peak} bytes for one stalled connection (bound {bound})"
    );
    // Finish the frame in flight from another thread while reading everything back.
    let rest = stream_bytes[stalled..].to_vec();
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let t = std::thread::spawn(move || w.write_all(&rest).unwrap());
    for i in 0..frames {
        assert_eq!(
            read_tcp_frame(&mut s).unwrap(),
            payload(FRAME, i as u8),
            "frame {i}"
        );
    }
    t.join().unwrap();
    eprintln!(
        "{io:?}: stalled after {} KiB, server held at most {} KiB",
        stalled / 1024,
        peak / 1024
    );
    drop(s);
    wait_for(&server, "the connection to close", |s| s.open() == 0);
    wait_for(&server, "the buffer gauge to return to 0", |s| {
        s.conn_buffer_bytes == 0
    });
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.frames, frames as u64);
    assert_eq!(totals.errors_total(), 0, "{totals:?}");
}
per_io!(unread_echoes_stop_the_server_reading);

/// The same for STCP with frames far larger than the per-connection limit: each 1 MiB frame is
/// 64 records, echoed record by record, and a client that does not read holds the server to
/// the same bound; once it reads, every frame comes back whole and authentic.
fn unread_large_stcp_frames_stay_bounded(io: IoBackend) {
    let server = start(io, CryptoBackend::AwsLc, |_| {});
    let cfg = client_config(keypair(42).public, None, CryptoBackend::AwsLc);
    let mut c = StcpClient::connect(server.stcp_addr().unwrap(), &cfg).unwrap();
    c.stream.set_nonblocking(true).unwrap();
    const FRAME: usize = 1 << 20;
    let would_block =
        |e: &ClientError| matches!(e, ClientError::Io(e) if e.kind() == io::ErrorKind::WouldBlock);
    // Write until the kernel's buffers are full and the server has stopped reading.
    let mut frames = 0usize;
    let mut stalled_for = Duration::ZERO;
    while stalled_for < Duration::from_millis(300) {
        assert!(frames < 512, "never stalled");
        if c.conn.poll_transmit().is_empty() {
            c.queue(&payload(FRAME, frames as u8));
            frames += 1;
        }
        let before = c.conn.poll_transmit().len();
        match c.flush() {
            Ok(()) => stalled_for = Duration::ZERO,
            Err(e) if would_block(&e) => {
                if c.conn.poll_transmit().len() == before {
                    std::thread::sleep(Duration::from_millis(10));
                    stalled_for += Duration::from_millis(10);
                }
            }
            Err(e) => panic!("write failed: {e:?}"),
        }
    }
    // The limit, plus the record being reassembled.
    let bound = DEFAULT_CONN_BUFFER_LIMIT + stcp_proto::MAX_RECORD_LEN;
    let mut peak = 0;
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        peak = peak.max(server.stats().conn_buffer_bytes);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        peak <= bound as u64,
        "{io:?}: the server holds {peak} bytes for one stalled connection (bound {bound})"
    );
    // Read everything back, writing the rest as the server takes it.
    let mut got = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < frames {
        assert!(
            Instant::now() < deadline,
            "echoes stopped after {got} frames"
        );
        match c.flush() {
            Ok(()) => {}
            Err(e) if would_block(&e) => {}
            Err(e) => panic!("write failed: {e:?}"),
        }
        match c.next_event() {
            Ok(Event::Frame(f)) => {
                assert_eq!(f, payload(FRAME, got as u8), "frame {got}");
                got += 1;
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) if would_block(&e) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("read failed: {e:?}"),
        }
    }
    eprintln!(
        "{io:?}: {frames} frames of 1 MiB, server held at most {} KiB",
        peak / 1024
    );
    c.stream.set_nonblocking(false).unwrap();
    c.close_cleanly();
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.frames, frames as u64);
    assert_eq!(totals.errors_total(), 0, "{totals:?}");
}
per_io!(unread_large_stcp_frames_stay_bounded);

fn stop_sends_an_authenticated_close(io: IoBackend) {
    let server = start(io, CryptoBackend::AwsLc, |_| {});
    let cfg = client_config(keypair(42).public, None, CryptoBackend::AwsLc);
    let mut c = StcpClient::connect(server.stcp_addr().unwrap(), &cfg).unwrap();
    c.send(b"before stop").unwrap();
    assert_eq!(c.recv_frame().unwrap(), b"before stop");
    let mut t = tcp_connect(server.tcp_addr().unwrap());
    t.write_all(&frame(b"tcp")).unwrap();
    assert_eq!(read_tcp_frame(&mut t).unwrap(), b"tcp");
    let t0 = Instant::now();
    server.stop();
    assert_eq!(c.next_event().unwrap(), Event::Closed);
    assert!(closed_by_peer(&mut c.stream));
    let mut rest = Vec::new();
    assert_eq!(t.read_to_end(&mut rest).unwrap(), 0);
    let totals = server.join().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        t0.elapsed()
    );
    assert_eq!(totals.open(), 0);
}
per_io!(stop_sends_an_authenticated_close);

/// A connection that never reads its echoes must not starve the others of receive buffers: with
/// a tiny buffer ring, other connections keep echoing while it is stalled.
fn stalled_reader_does_not_starve_others(io: IoBackend) {
    let server = start(io, CryptoBackend::AwsLc, |c| {
        c.ring_bufs = 16;
        c.ring_buf_size = 4096;
        c.conn_buffer_limit = 64 * 1024;
    });
    let addr = server.tcp_addr().unwrap();
    let mut stalled = tcp_connect(addr);
    stalled
        .set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut sent = Vec::new();
    let mut frames = 0usize;
    let cut = 'outer: loop {
        assert!(sent.len() < 512 << 20, "never stalled");
        let f = frame(&payload(4000, frames as u8));
        frames += 1;
        let base = sent.len();
        sent.extend_from_slice(&f);
        let mut off = 0;
        while off < f.len() {
            match stalled.write(&f[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break 'outer base + off,
            }
        }
    };
    // Others echo while it stays stalled.
    let mut others: Vec<_> = (0..20).map(|_| tcp_connect(addr)).collect();
    for round in 0..10u8 {
        for (i, s) in others.iter_mut().enumerate() {
            let p = payload(3000 + i, round);
            s.write_all(&frame(&p)).unwrap();
            assert_eq!(read_tcp_frame(s).unwrap(), p, "conn {i} round {round}");
        }
    }
    // The stalled client catches up and gets every echo intact.
    let rest = sent[cut..].to_vec();
    let mut w = stalled.try_clone().unwrap();
    w.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let t = std::thread::spawn(move || w.write_all(&rest).unwrap());
    for i in 0..frames {
        assert_eq!(
            read_tcp_frame(&mut stalled).unwrap(),
            payload(4000, i as u8),
            "stalled frame {i}"
        );
    }
    t.join().unwrap();
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.errors_total(), 0, "{totals:?}");
}
per_io!(stalled_reader_does_not_starve_others);

/// Hellos arriving together are all answered, however many: the io_uring worker answers a
/// bounded number per loop iteration and carries the rest over (counted as deferred), so a
/// burst is spread over iterations, not lost, and established connections keep echoing
/// meanwhile.
fn hello_burst_is_answered_in_bounded_steps(io: IoBackend) {
    const BURST: usize = 64;
    let server = start(io, CryptoBackend::AwsLc, |c| c.cores = 1);
    let addr = server.stcp_addr().unwrap();
    let cfg = client_config(keypair(42).public, None, CryptoBackend::AwsLc);
    let mut steady = StcpClient::connect(addr, &cfg).expect("steady handshake");
    // Every hello written before any reply is read.
    let mut burst: Vec<StcpClient> = (0..BURST)
        .map(|i| {
            let conn = stcp_proto::Connection::client(
                &cfg,
                stcp_proto::Mode::Stcp,
                Instant::now(),
                [i as u8; 32],
                IO_TIMEOUT,
            )
            .expect("client");
            let mut c = StcpClient {
                stream: tcp_connect(addr),
                conn,
                closed: false,
            };
            c.flush().expect("hello sent");
            c
        })
        .collect();
    let p = payload(256, 1);
    steady.send(&p).unwrap();
    assert_eq!(steady.recv_frame().unwrap(), p);
    for (i, c) in burst.iter_mut().enumerate() {
        assert_eq!(c.next_event().unwrap(), Event::Connected, "burst conn {i}");
        let p = payload(100 + i, 2);
        c.send(&p).unwrap();
        assert_eq!(c.recv_frame().unwrap(), p, "burst conn {i}");
    }
    steady.send(&p).unwrap();
    assert_eq!(steady.recv_frame().unwrap(), p);
    for c in burst {
        c.close_cleanly();
    }
    steady.close_cleanly();
    let totals = server.shutdown().unwrap();
    assert_eq!(totals.handshakes, BURST as u64 + 1, "{totals:?}");
    assert_eq!(totals.errors_total(), 0, "{totals:?}");
    if io == IoBackend::Uring {
        // 64 hellos written back to back reach one worker faster than it computes 64 handshakes
        // (tens of microseconds each): some must have waited for a later iteration.
        assert!(totals.handshakes_deferred > 0, "{totals:?}");
    }
    assert!(totals.handshakes_deferred <= BURST as u64, "{totals:?}");
}
per_io!(hello_burst_is_answered_in_bounded_steps);

/// `handshake_rate_per_ip`: hellos from one address beyond its bucket are closed unanswered
/// and counted as `handshake_rate_limited`; an established connection from the same address
/// keeps echoing, and the address gets handshakes again as its bucket refills.
fn handshake_rate_per_ip_refuses_the_excess(io: IoBackend) {
    const TRIES: usize = 12;
    let server = start(io, CryptoBackend::AwsLc, |c| {
        c.cores = 1;
        c.handshake_rate_per_ip = Some(1);
    });
    let addr = server.stcp_addr().unwrap();
    let cfg = client_config(keypair(42).public, None, CryptoBackend::AwsLc);
    let t0 = Instant::now();
    let mut steady = StcpClient::connect(addr, &cfg).expect("the first handshake is in the burst");
    let mut answered = 1;
    let mut refused = 0;
    for i in 0..TRIES {
        match StcpClient::connect(addr, &cfg) {
            Ok(c) => {
                answered += 1;
                c.close_cleanly();
            }
            Err(_) => refused += 1,
        }
        let p = payload(256, i as u8);
        steady.send(&p).unwrap();
        assert_eq!(steady.recv_frame().unwrap(), p, "steady echo {i}");
    }
    let elapsed = t0.elapsed();
    // One token at start, one more per second since: never more answered than that.
    let allowed = 1 + elapsed.as_secs() as usize + 1;
    assert!(
        answered <= allowed,
        "{answered} answered in {elapsed:?} at 1/s"
    );
    wait_for(&server, "the refusals counted", |s| {
        s.error(ErrorKind::HandshakeRateLimited) == refused as u64
    });
    if elapsed < Duration::from_secs(TRIES as u64 / 2) {
        assert!(refused > 0, "none refused in {elapsed:?}");
    }
    // The bucket refills: after a second, the address is answered again.
    std::thread::sleep(Duration::from_millis(1100));
    StcpClient::connect(addr, &cfg)
        .expect("a handshake after the refill")
        .close_cleanly();
    steady.close_cleanly();
    let totals = server.shutdown().unwrap();
    assert_eq!(
        totals.errors_total(),
        totals.error(ErrorKind::HandshakeRateLimited),
        "{totals:?}"
    );
    assert_eq!(totals.handshakes, answered as u64 + 1, "{totals:?}");
}
per_io!(handshake_rate_per_ip_refuses_the_excess);
