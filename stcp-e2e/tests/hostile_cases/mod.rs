//! The hostile matrix's cases, by family: each opens hostile connections against the server
//! and records what the server must count for them.

use super::*;

mod tls;
pub(super) use tls::tls_cases;

pub(super) fn pre_handshake_cases(m: &mut Matrix) {
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
        Counted::Error(ErrorKind::UnknownPattern),
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

pub(super) fn key_and_psk_cases(m: &mut Matrix) {
    m.case(
        "a missing PSK on a PSK server",
        "stcp",
        Counted::Error(ErrorKind::PskRequired),
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

pub(super) fn frame_length_cases(m: &mut Matrix) {
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
    // Records are at most 16 KiB whatever --max-frame says: a full one echoes, one byte more is
    // refused from its header word alone.
    m.case(
        &format!(
            "a record of {} bytes (16 KiB + 1, header only) after one of 16 KiB",
            MAX_RECORD_PAYLOAD + 1
        ),
        "stcp",
        Counted::Error(ErrorKind::RecordTooLarge),
        1,
        |m| {
            let (mut s, mut session) = m.established();
            echo_ok(&mut s, &mut session, &pseudo_random(MAX_RECORD_PAYLOAD, 21));
            s.write_all(&record_word(RecordType::Data, MAX_RECORD_PAYLOAD + 1))
                .unwrap();
            assert_closed(&mut s, "record of 16 KiB + 1");
        },
    );
    m.case(
        "a record header of 0xFFFFFFFF",
        "stcp",
        Counted::Error(ErrorKind::BadRecordType),
        1,
        |m| {
            let (mut s, _session) = m.established();
            s.write_all(&[0xff; 4]).unwrap();
            assert_closed(&mut s, "record header 0xFFFFFFFF");
        },
    );
}

pub(super) fn record_cases(m: &mut Matrix) {
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
            let late = record_by_hand(&mut session.sealer, RecordType::Data, b"after the close");
            // One write: both arrive in one read, so the server sees them together.
            s.write_all(&[close, late].concat()).unwrap();
            assert_closed(&mut s, "record after close");
        },
    );
}

/// Records that do not tie into frames (protocol v2: a frame is one `Data` record, or `Begin`,
/// `Continue`s and `End`). Every record is authentic (sealed under the right nonce, by hand where
/// the sealer would refuse it): only its place in the frame, or the length it carries, is
/// wrong, and the server refuses it before decrypting. Each connection first echoes a frame of
/// several records, so the session is good up to the bad record.
pub(super) fn frame_sequence_cases(m: &mut Matrix) {
    let half = MAX_RECORD_PAYLOAD / 2;
    let r = MAX_RECORD_PAYLOAD;
    let body = pseudo_random(r, 31);
    // (name, counted, the bad records given a sealer that just sealed a good frame)
    type Bad = fn(&mut stcp_proto::RecordSealer, &[u8]) -> Vec<u8>;
    let cases: [(String, ErrorKind, Bad); 6] = [
        (
            format!("a frame whose End overruns it (Begin announcing {r} + 100 bytes, End of {r})"),
            ErrorKind::FrameLength,
            |sealer, body| {
                let r = MAX_RECORD_PAYLOAD;
                let begin = begin_record(sealer, r + 100, body);
                let end = record_by_hand(sealer, RecordType::End, body);
                [begin, end].concat()
            },
        ),
        (
            format!("a frame whose End falls short (Begin announcing 2 x {r}, End of 100)"),
            ErrorKind::FrameLength,
            |sealer, body| {
                let r = MAX_RECORD_PAYLOAD;
                let begin = begin_record(sealer, 2 * r, body);
                let end = record_by_hand(sealer, RecordType::End, &body[..100]);
                [begin, end].concat()
            },
        ),
        (
            "a Begin then a Data record (the frame's final record missing)".into(),
            ErrorKind::MissingFinal,
            |sealer, body| {
                let begin = begin_record(sealer, 3 * MAX_RECORD_PAYLOAD, body);
                let data = record_by_hand(sealer, RecordType::Data, b"a new frame");
                [begin, data].concat()
            },
        ),
        (
            "a Continue record with no Begin".into(),
            ErrorKind::MissingBegin,
            |sealer, body| record_by_hand(sealer, RecordType::Continue, &body[..1000]),
        ),
        (
            format!("an empty Continue record inside a frame (Begin of {half} announcing {r})"),
            ErrorKind::BadLength,
            |sealer, body| {
                let half = MAX_RECORD_PAYLOAD / 2;
                let begin = begin_record(sealer, MAX_RECORD_PAYLOAD, &body[..half]);
                let empty = record_by_hand(sealer, RecordType::Continue, b"");
                [begin, empty].concat()
            },
        ),
        (
            format!(
                "a Begin announcing --max-frame + 1 ({} bytes)",
                MAX_FRAME + 1
            ),
            ErrorKind::FrameTooLarge,
            |sealer, body| begin_record(sealer, MAX_FRAME + 1, body),
        ),
    ];
    for (name, kind, bad) in cases {
        m.case(&name, "stcp", Counted::Error(kind), 1, |m| {
            let (mut s, mut session) = m.established();
            echo_frame_ok(&mut s, &mut session, &pseudo_random(2 * r + 1, 32));
            s.write_all(&bad(&mut session.sealer, &body)).unwrap();
            assert_closed(&mut s, &name);
        });
    }
    // The close ends the direction whatever the next record is: a frame's first record after it
    // is refused as a record after the close (one write, so the server reads both at once; a
    // small Begin, so both fit in one receive buffer).
    m.case(
        "a Begin record after an authenticated close",
        "stcp",
        Counted::Error(ErrorKind::RecordAfterClose),
        1,
        |m| {
            let (mut s, mut session) = m.established();
            echo_ok(&mut s, &mut session, b"before the close");
            let mut close = vec![0u8; RECORD_HEADER_LEN + TAG_LEN];
            write_record_header(&mut close, RecordType::Close, 0);
            session.sealer.seal(&mut close).unwrap();
            let begin = seal_by_hand(
                &mut session.sealer,
                RecordHeader::first(200, 100),
                &body[..100],
            );
            s.write_all(&[close, begin].concat()).unwrap();
            assert_closed(&mut s, "Begin after close");
        },
    );
}

pub(super) fn reset_and_cut_cases(m: &mut Matrix) {
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
pub(super) fn slow_cases(m: &mut Matrix) {
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
pub(super) fn idle_and_unread_cases(m: &mut Matrix) {
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
            let bound = STEADY_ALLOWANCE + TCP_CONN_BOUND;
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
            // The server ends an idle connection as its own end (docs/PROTOCOL.md 4.5): it sends
            // what it had queued, then FIN. The unread client reads all of it to the end before
            // closing, so that its close is not a reset the server would see (and count) as a
            // second failure of a connection it already counted as idle.
            unread.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            assert_closed(&mut unread, "unread client");
        },
    );
}

/// More connections than --max-conns: the extra ones are accepted and closed at once, counted
/// as refused; the admitted ones (and the steady load) keep working.
pub(super) fn flood_case(m: &mut Matrix) {
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

/// A flood of garbage hellos (a handshake header announcing a plausible length, then bytes that
/// are not STCP), 16 connections at a time: each is refused from its first bytes, counted as
/// `not_stcp`, and the steady loads lose nothing (checked at the end of the matrix).
pub(super) fn garbage_hello_flood_case(m: &mut Matrix) {
    const BATCH: u64 = 16;
    const BATCHES: u64 = 16;
    m.case(
        "a flood of garbage hellos (256 connections)",
        "stcp",
        Counted::Error(ErrorKind::NotStcp),
        BATCH * BATCHES,
        |m| {
            let frames_before = m.server.stats().frames;
            for b in 0..BATCHES {
                let mut batch: Vec<TcpStream> = (0..BATCH).map(|_| connect(m.stcp)).collect();
                for (i, s) in batch.iter_mut().enumerate() {
                    let junk: Vec<u8> = (0..64u64)
                        .map(|k| (k * 31 + b * 7 + i as u64) as u8 | 0x80)
                        .collect();
                    s.write_all(&frame(&junk)).unwrap();
                }
                for (i, s) in batch.iter_mut().enumerate() {
                    assert!(closed_by_peer(s), "garbage hello {b}/{i} not closed");
                }
            }
            wait_for(
                &m.server,
                "the steady loads to echo during the flood",
                |s| s.frames > frames_before,
            );
        },
    );
}

/// A flood of valid hellos from one address: stcp-loadgen churning (handshake, close, again)
/// with one thread, against a server with --handshake-rate-per-ip. The hellos over each
/// worker's bucket are closed unanswered and counted as `handshake_rate_limited` (and nothing
/// else is counted: the answered ones close cleanly); the bucket's share is answered; the
/// steady loads lose nothing (checked at the end of the matrix).
pub(super) fn valid_hello_flood_case(m: &mut Matrix) {
    m.case_counting(
        "a flood of valid hellos over --handshake-rate-per-ip (stcp-loadgen churn, 1 thread)",
        "stcp",
        Counted::Error(ErrorKind::HandshakeRateLimited),
        |m| {
            let before = m.server.stats();
            let out = m.dir.join("hello-flood");
            let output = loadgen()
                .env("RUST_LOG", "error")
                .args(["--target", &m.stcp.to_string(), "--server-key"])
                .arg(
                    m.public
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>(),
                )
                .arg("--psk")
                .arg(&m.psk_file)
                .args([
                    "--requests-per-conn",
                    "0",
                    "--clients",
                    "8",
                    "--threads",
                    "1",
                ])
                .args(["--duration", "2s", "--warmup", "0s", "--timeout", "5s"])
                .args(["--quiet", "--out"])
                .arg(&out)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            let report = only_report(&out).expect("a report");
            // Every connection the load generator made has ended on the server.
            wait_for(&m.server, "the flood's connections to close", |s| {
                s.open() == STEADY_CONNS
            });
            let after = m.server.stats();
            let limited = after.error(ErrorKind::HandshakeRateLimited)
                - before.error(ErrorKind::HandshakeRateLimited);
            let answered = after.handshakes - before.handshakes;
            assert!(
                limited > 0,
                "no hello was rate-limited: {report:?}\n{stderr}"
            );
            assert!(answered > 0, "no hello was answered\n{stderr}");
            // The load generator saw both: handshakes completed (its first connections' are not
            // in the churn count), and refusals as handshake errors.
            assert!(
                report.results.handshakes > 0 && report.results.handshakes <= answered,
                "{} handshakes reported, {answered} answered\n{stderr}",
                report.results.handshakes
            );
            assert!(
                report.results.errors.handshake > 0 && report.results.errors.handshake <= limited,
                "{} handshake errors reported, {limited} refused\n{stderr}",
                report.results.errors.handshake
            );
            // The flood emptied 127.0.0.1's buckets; the cases after this one handshake from the
            // same address. A bucket refills from empty in burst / rate = 1 s: wait that long
            // and a little more, or their handshakes would be refused as rate-limited.
            std::thread::sleep(Duration::from_secs(1) + Duration::from_millis(250));
            limited
        },
    );
}

/// The load generator pinning the wrong key: every handshake fails, with a clear message.
pub(super) fn loadgen_wrong_key_case(m: &mut Matrix) {
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

/// Clients that send 1 MiB frames (far over a connection's buffer limit: 64 records each in
/// STCP) and never read their echoes. The server must stop reading them while holding no more
/// than its per-connection bound for them, whatever the frames' length (sampled while they
/// write); then each client reads again, finishes its frame and closes cleanly (STCP: its Close,
/// TCP: FIN at a frame boundary), gets every echo back intact, and nothing is counted.
pub(super) fn unread_large_frame_cases(m: &mut Matrix) {
    for (mode, listener) in [(Mode::Stcp, "stcp"), (Mode::Tcp, "tcp")] {
        let name = format!(
            "a client sending {} MiB frames that does not read, then reads and closes cleanly",
            MAX_FRAME >> 20
        );
        m.case(&name, listener, Counted::Nothing, 1, |m| {
            unread_then_clean_close(m, mode)
        });
    }
}

/// Frame `k`'s payload for the unread clients: `k` in its first 8 bytes, the rest shared.
fn large_payload(base: &[u8], k: u64) -> Vec<u8> {
    let mut p = base.to_vec();
    p[..8].copy_from_slice(&k.to_be_bytes());
    p
}

/// Frame `k` on the wire: its records (STCP, sealed by `sealer`) or a plain frame.
fn large_wire(sealer: Option<&mut RecordSealer>, base: &[u8], k: u64) -> Vec<u8> {
    let payload = large_payload(base, k);
    match sealer {
        Some(sealer) => sealed_frame(sealer, &payload),
        None => frame(&payload),
    }
}

fn unread_then_clean_close(m: &mut Matrix, mode: Mode) {
    let base = &pseudo_random(MAX_FRAME, 41)[..];
    let (mut s, session) = match mode {
        Mode::Stcp => {
            let (s, session) = m.established();
            (s, Some(session))
        }
        Mode::Tcp => (connect(m.tcp), None),
        Mode::Tls => panic!("the TLS cases are in hostile_cases/tls.rs"),
    };
    let (mut sealer, mut opener) = match session {
        Some(Session { sealer, opener, .. }) => (Some(sealer), Some(opener)),
        None => (None, None),
    };
    // What the server may hold for this connection, and the gauge's bound with the steady load.
    let bound = STEADY_ALLOWANCE
        + match mode {
            Mode::Stcp => STCP_CONN_BOUND,
            Mode::Tcp | Mode::Tls => TCP_CONN_BOUND,
        };
    s.set_write_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let server = &m.server;
    let (frames, written, peak, stall) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(server.stats().conn_buffer_bytes);
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        });
        // Write without reading until the server has not taken a byte for a while (a sixth of
        // the idle timeout, which would cut a connection whose echoes make no progress for that
        // long): it stopped reading. A server that never stops is caught by the time bound.
        let t0 = Instant::now();
        let (mut frames, mut written) = (0u64, 0usize);
        let mut wire = large_wire(sealer.as_mut(), base, frames);
        frames += 1;
        let mut off = 0;
        let mut stalled_since: Option<Instant> = None;
        let quiet = IDLE_TIMEOUT / 6;
        loop {
            if off == wire.len() {
                wire = large_wire(sealer.as_mut(), base, frames);
                frames += 1;
                off = 0;
            }
            match s.write(&wire[off..]) {
                Ok(n) => {
                    written += n;
                    off += n;
                    stalled_since = None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    let since = *stalled_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= quiet {
                        break;
                    }
                }
                Err(e) => panic!("the unread client's write failed: {e}"),
            }
            assert!(
                t0.elapsed() < IO_TIMEOUT,
                "wrote {written} bytes without a stall: the server keeps reading"
            );
        }
        let stall = t0.elapsed();
        // Now read everything back while finishing the frame begun, then close cleanly.
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut r = s.try_clone().unwrap();
        let reader = scope.spawn(move || {
            let mut got = 0u64;
            loop {
                let echo = match opener.as_mut() {
                    Some(opener) => read_stcp_frame(&mut r, opener).expect("an echo or the Close"),
                    None => match read_frame(&mut r) {
                        Ok(f) => Some(f),
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
                        Err(e) => panic!("reading the echoes: {e}"),
                    },
                };
                let Some(echo) = echo else { break };
                assert!(
                    echo == large_payload(base, got),
                    "echo {got} differs from its frame"
                );
                got += 1;
            }
            if opener.is_some() {
                // The server's Close is the last thing on the stream.
                let mut rest = Vec::new();
                r.read_to_end(&mut rest).unwrap();
                assert!(rest.is_empty(), "bytes after the server's Close");
            }
            got
        });
        s.write_all(&wire[off..]).unwrap();
        match sealer.as_mut() {
            Some(sealer) => {
                let mut close = vec![0u8; RECORD_HEADER_LEN + TAG_LEN];
                write_record_header(&mut close, RecordType::Close, 0);
                sealer.seal(&mut close).unwrap();
                s.write_all(&close).unwrap();
            }
            None => s.shutdown(std::net::Shutdown::Write).unwrap(),
        }
        let echoed = reader.join().unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(echoed, frames, "frames echoed");
        (frames, written, sampler.join().unwrap(), stall)
    });
    assert!(
        peak <= bound,
        "the server held {peak} bytes while a client did not read (bound {bound})"
    );
    eprintln!(
        "{} {mode}: the unread client wrote {} KiB ({frames} frames begun) before the server \
         stopped reading ({stall:?}); the server's buffers peaked at {} KiB (bound {} KiB: \
         the steady load's allowance and this connection's bound)",
        m.server.backend().name(),
        written >> 10,
        peak >> 10,
        bound >> 10
    );
}
