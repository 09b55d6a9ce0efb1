//! The connection's byte-level work, without sockets: requests out, echoes in, in any split,
//! against an in-memory server (a paired opener and sealer that echo record by record).

use std::sync::mpsc;
use std::time::Duration;

use stcp_proto::{
    sealed_frame_len, RecordOpener, RecordSealer, AWS_LC, BEGIN_HEADER_LEN, MAX_RECORD_LEN,
    MAX_RECORD_PAYLOAD,
};

use super::*;
use crate::engine::settings::{largest_record, STREAM_WINDOW};

const UP: [u8; 32] = [1; 32];
const DOWN: [u8; 32] = [2; 32];

/// Closed loop: a completed request queues the next one.
fn settings(mode: Mode, payload: usize, depth: u32) -> Settings {
    Settings::new(mode, payload, depth, Duration::from_secs(5), None, 1, None)
}

/// Open loop: a completed request queues nothing, so `in_flight` counts what is left.
fn open_loop(mode: Mode, payload: usize, depth: u32) -> Settings {
    Settings::new(
        mode,
        payload,
        depth,
        Duration::from_secs(5),
        Some(1.0),
        1,
        None,
    )
}

fn tally() -> (Tally, mpsc::Receiver<crate::engine::tally::ThreadMessage>) {
    let (tx, rx) = mpsc::channel();
    (
        Tally::new(tx, Instant::now(), Duration::ZERO, Duration::from_secs(60)),
        rx,
    )
}

/// An established STCP connection with session keys `UP` (client to server) and `DOWN`.
fn stcp_connection(id: u32, s: &Settings, now: Instant) -> Connection {
    let mut c = Connection::new(id, 0, s, now);
    c.state = State::Established;
    c.sealer = Some(RecordSealer::new(&AWS_LC, &UP));
    c.opener = Some(RecordOpener::new(&AWS_LC, &DOWN, 1 << 30));
    c
}

/// The server's half of the session: opens the client's records and reseals them as echoes.
struct EchoServer {
    opener: RecordOpener,
    sealer: RecordSealer,
}

impl EchoServer {
    fn new() -> EchoServer {
        EchoServer {
            opener: RecordOpener::new(&AWS_LC, &UP, 1 << 30),
            sealer: RecordSealer::new(&AWS_LC, &DOWN),
        }
    }
    /// Echoes whole records in place, as the server does.
    fn echo(&mut self, wire: &mut [u8]) {
        self.opener
            .open_all(wire)
            .expect("the client's records open");
        self.sealer.seal_all(wire).expect("the echo seals");
    }
    /// Opens whole records in place (to alter a plaintext before resealing).
    fn open(&mut self, wire: &mut [u8]) {
        self.opener
            .open_all(wire)
            .expect("the client's records open");
    }
    /// Seals one record of `header` carrying `payload`: any record a server could send, even
    /// one its own sealer's frame rules would refuse (authentic all the same).
    fn record(&mut self, header: RecordHeader, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; header.record_len()];
        let h = header.write(&mut r);
        r[h..h + payload.len()].copy_from_slice(payload);
        let (aad, rest) = r.split_at_mut(h);
        let (body, tag) = rest.split_at_mut(payload.len());
        let tag: &mut [u8; TAG_LEN] = tag.try_into().unwrap();
        self.sealer
            .cipher_state()
            .encrypt_with_ad(aad, body, tag)
            .expect("the server seals");
        r
    }
}

/// The bytes of a send range handed out by `start_send`/`sent`.
fn bytes(range: (*const u8, u32), conn: &Connection) -> &[u8] {
    let buf = conn
        .out
        .iter()
        .find(|o| o.buf.as_ptr_range().contains(&range.0))
        .expect("inside an out buffer");
    let start = range.0 as usize - buf.buf.as_ptr() as usize;
    &buf.buf[start..start + range.1 as usize]
}

/// What `seal_and_send` does for one connection: writes what fits, seals it, hands it over.
fn hand_over(c: &mut Connection, s: &Settings, now: Instant) -> Option<(*const u8, u32)> {
    c.write_requests(s).expect("requests are written");
    if let Some((sealer, records)) = c.seal_job() {
        sealer.seal_all(records).expect("requests seal");
        c.sealed_all();
    }
    c.start_send(now)
}

/// Runs the send side until nothing more goes out, every send taken whole; returns the bytes
/// the kernel would have taken.
fn send_all(c: &mut Connection, s: &Settings, now: Instant) -> Vec<u8> {
    let mut wire = Vec::new();
    while let Some(mut range) = hand_over(c, s, now) {
        loop {
            wire.extend_from_slice(bytes(range, c));
            match c.sent(range.1 as usize, now) {
                Some(next) => range = next,
                None => break,
            }
        }
    }
    wire
}

/// Feeds received bytes in pieces of `piece`, opening and verifying after each as a turn does.
fn receive(
    c: &mut Connection,
    wire: &[u8],
    piece: usize,
    s: &Settings,
    tally: &mut Tally,
    now: Instant,
) -> Result<(), ErrorKind> {
    for part in wire.chunks(piece) {
        c.absorb_records(part, now, s, tally)?;
        open_and_verify(c, s, tally, now)?;
    }
    Ok(())
}

/// The turn's `open_records` for one connection.
fn open_and_verify(
    c: &mut Connection,
    s: &Settings,
    tally: &mut Tally,
    now: Instant,
) -> Result<(), ErrorKind> {
    if let Some((opener, job)) = c.open_job() {
        opener.open_all(job).map_err(|_| ErrorKind::Verify)?;
        c.consume_opened(now, s, tally)?;
    }
    Ok(())
}

/// The records of a stream of whole records: (header, range in the stream).
fn records(wire: &[u8]) -> Vec<(RecordHeader, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < wire.len() {
        let header = RecordHeader::parse(&wire[at..], MAX_FRAME_LEN).expect("a record header");
        out.push((header, at..at + header.record_len()));
        at += header.record_len();
    }
    out
}

#[test]
fn tcp_requests_stream_out_and_echoes_are_checked_in_pieces() {
    let s = settings(Mode::Tcp, 100, 2);
    let (mut tally, _rx) = tally();
    let now = Instant::now();
    tally.advance(now);
    let mut c = Connection::new(7, 0, &s, now);
    c.state = State::Established;
    c.queue_request(now);
    c.queue_request(now);
    let first = hand_over(&mut c, &s, now).expect("two requests ready");
    assert_eq!(first.1 as usize, 2 * s.wire_len);
    let sent: Vec<u8> = bytes(first, &c).to_vec();
    assert!(c.start_send(now).is_none(), "one send at a time");
    // A short send: the rest is handed out again.
    let rest = c.sent(30, now).expect("remainder");
    assert_eq!(rest.1 as usize, 2 * s.wire_len - 30);
    // The first echo arrives in three pieces; the closed loop queues request 2 meanwhile.
    let (a, b) = sent[..s.wire_len].split_at(3);
    let (b, d) = b.split_at(50);
    for piece in [a, b, d] {
        c.absorb_frames(piece, now, &s, &mut tally).unwrap();
    }
    assert_eq!(c.in_flight.len(), 2);
    assert!(
        hand_over(&mut c, &s, now).is_none(),
        "still sending the first buffer"
    );
    // The first buffer finishes: the second (holding request 2) goes out next.
    let next = c.sent(2 * s.wire_len - 30, now).expect("the other buffer");
    assert_eq!(next.1 as usize, s.wire_len);
    let mut expected = vec![0u8; s.wire_len];
    expected[..4].copy_from_slice(&100u32.to_be_bytes());
    payload::fill(&mut expected[4..], 7, 2);
    assert_eq!(bytes(next, &c), &expected[..]);
    // A corrupted second echo is a verify error.
    let mut echo = sent[s.wire_len..].to_vec();
    echo[60] ^= 1;
    assert_eq!(
        c.absorb_frames(&echo, now, &s, &mut tally),
        Err(ErrorKind::Verify)
    );
}

/// A TCP frame larger than the out buffers goes out in pieces as buffers come back, stamped once
/// (its first byte), and its echo is verified as it streams in, never buffered.
#[test]
fn a_tcp_frame_larger_than_the_buffers_streams_both_ways() {
    let s = open_loop(Mode::Tcp, 1 << 20, 1);
    assert_eq!(s.out_capacity, STREAM_WINDOW);
    assert_eq!(s.in_capacity, 0);
    let (mut tally, _rx) = tally();
    let t0 = Instant::now();
    tally.advance(t0);
    let mut c = Connection::new(4, 0, &s, t0);
    c.state = State::Established;
    c.queue_request(t0);
    let t1 = t0 + Duration::from_millis(1);
    let mut range = hand_over(&mut c, &s, t1).expect("the first piece");
    assert_eq!(
        c.in_flight.front().unwrap().sent,
        t1,
        "stamped at hand-over"
    );
    let mut wire = Vec::new();
    let mut later = t1;
    loop {
        let piece = bytes(range, &c).to_vec();
        wire.extend_from_slice(&piece);
        // The echo of what went out so far streams back before the request is all out.
        c.absorb_frames(&piece, later, &s, &mut tally).unwrap();
        later += Duration::from_millis(1);
        range = match c.sent(range.1 as usize, later) {
            Some(next) => next,
            None => match hand_over(&mut c, &s, later) {
                Some(next) => next,
                None => break,
            },
        };
        if c.in_flight.len() == 1 {
            assert_eq!(c.in_flight.front().unwrap().sent, t1, "stamped once");
        }
    }
    assert_eq!(wire.len(), s.wire_len);
    assert_eq!(&wire[..4], &(1u32 << 20).to_be_bytes());
    assert_eq!(payload::verify(&wire[4..], 4, 0), Ok(()));
    assert_eq!(c.in_flight.len(), 0, "the echo verified whole");
}

#[test]
fn stcp_records_are_assembled_opened_and_verified() {
    let s = settings(Mode::Stcp, 1000, 2);
    let (mut tally, _rx) = tally();
    let now = Instant::now();
    tally.advance(now);
    let mut c = stcp_connection(3, &s, now);
    let mut server = EchoServer::new();
    c.queue_request(now);
    c.queue_request(now);
    let range = hand_over(&mut c, &s, now).unwrap();
    // The server opens and reseals in place: an echo.
    let mut wire = bytes(range, &c).to_vec();
    assert_eq!(wire.len(), 2 * s.wire_len);
    server.echo(&mut wire);
    // Delivered in odd pieces: only whole records are handed to the opener.
    let (a, rest) = wire.split_at(700);
    c.absorb_records(a, now, &s, &mut tally).unwrap();
    assert!(c.open_job().is_none());
    c.absorb_records(&rest[..400], now, &s, &mut tally).unwrap();
    let (opener, job) = c.open_job().expect("one whole record");
    assert_eq!(job.len(), s.wire_len);
    assert_eq!(opener.open_all(job), Ok(1));
    c.consume_opened(now, &s, &mut tally).unwrap();
    assert_eq!(c.in_flight.len(), 2, "request 0 done, request 2 queued");
    c.absorb_records(&rest[400..], now, &s, &mut tally).unwrap();
    let (opener, job) = c.open_job().unwrap();
    assert_eq!(opener.open_all(job), Ok(1));
    c.consume_opened(now, &s, &mut tally).unwrap();
    assert_eq!(c.in_len, 0);
    // A server that echoes a different plaintext (sealed correctly) fails verification.
    assert!(c.sent(range.1 as usize, now).is_none());
    let range = hand_over(&mut c, &s, now).unwrap();
    let mut wire = bytes(range, &c).to_vec();
    server.open(&mut wire);
    wire[10] ^= 0x80;
    server.sealer.seal_all(&mut wire).unwrap();
    c.absorb_records(&wire, now, &s, &mut tally).unwrap();
    let (opener, job) = c.open_job().unwrap();
    assert!(opener.open_all(job).is_ok());
    assert_eq!(
        c.consume_opened(now, &s, &mut tally),
        Err(ErrorKind::Verify)
    );
}

/// Frames of one record at the limit, one byte over it (two records), and of several records
/// round-trip: the requests go out record by record with the record structure of
/// `frame_records`, and the echoes verify record by record whatever the pieces they arrive in,
/// including more at once than the in buffer holds.
#[test]
fn frames_of_one_and_of_several_records_round_trip() {
    for (payload, depth) in [
        (MAX_RECORD_PAYLOAD, 2),
        (MAX_RECORD_PAYLOAD + 1, 2),
        (100 << 10, 3),
        (4 << 20, 1),
    ] {
        let s = open_loop(Mode::Stcp, payload, depth);
        for piece in [1000, 7 * 1024 + 3, usize::MAX] {
            let (mut tally, _rx) = tally();
            let now = Instant::now();
            tally.advance(now);
            let mut c = stcp_connection(9, &s, now);
            let mut server = EchoServer::new();
            for _ in 0..depth {
                c.queue_request(now);
            }
            let mut wire = send_all(&mut c, &s, now);
            assert_eq!(wire.len(), depth as usize * sealed_frame_len(payload));
            let recs = records(&wire);
            let per_frame: Vec<_> = frame_records(payload).map(|(h, _)| h).collect();
            assert_eq!(recs.len(), depth as usize * per_frame.len());
            for (i, (header, range)) in recs.iter().enumerate() {
                assert_eq!(*header, per_frame[i % per_frame.len()], "payload {payload}");
                assert!(range.len() <= MAX_RECORD_LEN);
            }
            server.echo(&mut wire);
            receive(&mut c, &wire, piece, &s, &mut tally, now).unwrap();
            assert_eq!(
                c.in_flight.len(),
                0,
                "payload {payload}, pieces of {piece}: every echo verified"
            );
            assert_eq!(c.in_len, 0);
        }
    }
}

/// Echo records are refused unless each is exactly the request's record, in order, authentic
/// and carrying the request's bytes at its offset.
#[test]
fn tampered_reordered_or_reshaped_echo_records_are_refused() {
    let payload = 2 * MAX_RECORD_PAYLOAD + 8000; // Begin, Continue, End
    let s = open_loop(Mode::Stcp, payload, 1);
    let now = Instant::now();
    // One request sent; returns the connection, the server and the server's echo, unsent.
    let setup = || {
        let mut c = stcp_connection(5, &s, now);
        let mut server = EchoServer::new();
        c.queue_request(now);
        let mut wire = send_all(&mut c, &s, now);
        server.open(&mut wire);
        (c, server, wire)
    };
    let outcome = |c: &mut Connection, wire: &[u8]| {
        let (mut tally, _rx) = tally();
        tally.advance(now);
        receive(c, wire, usize::MAX, &s, &mut tally, now)
    };
    // The request's records, opened: their plaintext is what a faithful echo carries.
    let plain = setup().2;
    let recs = records(&plain);
    let body = |i: usize| {
        let (h, r) = &recs[i];
        &plain[r.start + h.header_len()..r.end - TAG_LEN]
    };
    assert_eq!(
        recs.iter().map(|(h, _)| h.kind).collect::<Vec<_>>(),
        [RecordType::Begin, RecordType::Continue, RecordType::End]
    );
    let [begin, middle, end] = [0, 1, 2].map(|i| recs[i].1.clone());

    // The faithful echo verifies.
    let (mut c, mut server, mut wire) = setup();
    server.sealer.seal_all(&mut wire).unwrap();
    assert_eq!(outcome(&mut c, &wire), Ok(()));
    assert_eq!(c.in_flight.len(), 0);

    // A flipped ciphertext bit fails authentication.
    let (mut c, mut server, mut wire) = setup();
    server.sealer.seal_all(&mut wire).unwrap();
    wire[middle.start + 100] ^= 1;
    assert_eq!(outcome(&mut c, &wire), Err(ErrorKind::Verify));

    // Records reordered on the way (Continue and End swapped) fail at the header check; two
    // records of one frame each sealed right but with their payloads swapped fail verification.
    let (mut c, mut server, mut wire) = setup();
    server.sealer.seal_all(&mut wire).unwrap();
    let reordered = [
        &wire[begin.clone()],
        &wire[end.clone()],
        &wire[middle.clone()],
    ]
    .concat();
    assert_eq!(outcome(&mut c, &reordered), Err(ErrorKind::Verify));
    let (mut c, mut server, _) = setup();
    let swapped = [
        server.record(recs[0].0, body(1)),
        server.record(recs[1].0, body(0)),
        server.record(recs[2].0, body(2)),
    ]
    .concat();
    assert_eq!(outcome(&mut c, &swapped), Err(ErrorKind::Verify));

    // Authentic records of another shape: a shorter Begin, a Begin announcing another frame
    // length, a Data record for the whole frame's start, an End too soon.
    for header in [
        RecordHeader::first(payload, 8000),
        RecordHeader::first(payload + 1, MAX_RECORD_PAYLOAD),
        RecordHeader::new(RecordType::Data, MAX_RECORD_PAYLOAD),
        RecordHeader::new(RecordType::End, MAX_RECORD_PAYLOAD),
    ] {
        let (mut c, mut server, _) = setup();
        let forged = server.record(header, &vec![0; header.payload_len]);
        assert_eq!(
            outcome(&mut c, &forged),
            Err(ErrorKind::Verify),
            "{header:?}"
        );
        // Refused from its header, before its body is buffered.
        let (mut c, _, _) = setup();
        assert_eq!(
            outcome(&mut c, &forged[..header.header_len()]),
            Err(ErrorKind::Verify),
            "{header:?} (header only)"
        );
    }
    // A Continue with a wrong length in the middle of the echo.
    let (mut c, mut server, _) = setup();
    let short = RecordHeader::new(RecordType::Continue, 100);
    let echo = [
        server.record(recs[0].0, body(0)),
        server.record(short, &body(1)[..100]),
    ]
    .concat();
    assert_eq!(outcome(&mut c, &echo), Err(ErrorKind::Verify));

    // The server's Close inside a frame, and a second echo with nothing in flight.
    let (mut c, mut server, _) = setup();
    let close = {
        let mut r = vec![0u8; CLOSE_RECORD_LEN];
        stcp_proto::write_record_header(&mut r, RecordType::Close, 0);
        r
    };
    let mut echo = server.record(recs[0].0, body(0));
    echo.extend_from_slice(&close);
    assert_eq!(outcome(&mut c, &echo), Err(ErrorKind::Verify));
    let (mut c, mut server, mut wire) = setup();
    server.sealer.seal_all(&mut wire).unwrap();
    let again = server.record(recs[0].0, body(0));
    wire.extend_from_slice(&again[..RECORD_HEADER_LEN]);
    assert_eq!(outcome(&mut c, &wire), Err(ErrorKind::Verify));
}

/// The buffers are sized from the depth and a fixed window, never from the payload: a
/// connection set up for 1 GiB requests allocates a few hundred KiB, and still writes its
/// request as whole records.
#[test]
fn buffer_capacities_do_not_depend_on_the_payload_size() {
    let now = Instant::now();
    for mode in [Mode::Stcp, Mode::Tcp] {
        for depth in [1, 8, 4096] {
            for payload in [0, 256, MAX_RECORD_PAYLOAD + 1, 64 << 10, 16 << 20, 1 << 30] {
                let s = settings(mode, payload, depth);
                let c = Connection::new(0, 0, &s, now);
                for out in &c.out {
                    assert!(out.buf.len() <= STREAM_WINDOW, "{mode:?} {payload} {depth}");
                    assert!(mode == Mode::Tcp || out.buf.len() >= largest_record(payload));
                }
                assert!(c.inbuf.len() <= STREAM_WINDOW);
                if mode == Mode::Stcp {
                    assert!(c.inbuf.len() >= largest_record(payload));
                }
            }
        }
    }
    let s = settings(Mode::Stcp, 1 << 30, 1);
    assert_eq!(s.wire_len, sealed_frame_len(1 << 30));
    let mut c = stcp_connection(1, &s, now);
    assert_eq!(
        [c.out[0].buf.len(), c.out[1].buf.len(), c.inbuf.len()],
        [STREAM_WINDOW; 3]
    );
    c.queue_request(now);
    let range = hand_over(&mut c, &s, now).expect("the first records");
    let first = bytes(range, &c).to_vec();
    let recs = records(&first);
    assert_eq!(recs.len(), 16, "sixteen full records a buffer");
    assert_eq!(recs[0].0, RecordHeader::first(1 << 30, MAX_RECORD_PAYLOAD));
    assert!(recs[1..]
        .iter()
        .all(|(h, _)| h.kind == RecordType::Continue));
    // The other buffer fills while the first is in the kernel; no more than that.
    assert!(c.writing());
    assert!(hand_over(&mut c, &s, now).is_none());
    let continue_len = MAX_RECORD_LEN - (BEGIN_HEADER_LEN - RECORD_HEADER_LEN);
    assert_eq!(c.out[c.fill].len, 16 * continue_len);
}

/// A server's Close record after its echoes: the echoes are verified, the Close is opened
/// (authenticated) and ends the connection cleanly; a forged or trailing one does not.
#[test]
fn the_servers_close_record_is_a_clean_end_only_when_authentic() {
    let s = settings(Mode::Stcp, 1000, 2);
    let (mut tally, _rx) = tally();
    let now = Instant::now();
    tally.advance(now);
    let close_record = |sealer: &mut RecordSealer| {
        let mut close = vec![0u8; CLOSE_RECORD_LEN];
        stcp_proto::write_record_header(&mut close, RecordType::Close, 0);
        sealer.seal(&mut close).unwrap();
        close
    };
    // Two requests in flight; the server echoes one, then closes (a stopping server).
    let mut c = stcp_connection(3, &s, now);
    let mut server = EchoServer::new();
    c.queue_request(now);
    c.queue_request(now);
    let range = hand_over(&mut c, &s, now).unwrap();
    let mut wire = bytes(range, &c)[..s.wire_len].to_vec();
    server.echo(&mut wire);
    wire.extend(close_record(&mut server.sealer));
    // Echo and Close arrive together: the buffer has room for both.
    c.absorb_records(&wire, now, &s, &mut tally).unwrap();
    let (opener, job) = c.open_job().unwrap();
    assert_eq!(opener.open_all(job), Ok(2));
    c.consume_opened(now, &s, &mut tally).unwrap();
    assert!(c.server_closed);
    assert_eq!(
        c.in_flight.len(),
        2,
        "request 1 unanswered, request 2 queued"
    );
    // A Close sealed under another key fails to open: not a clean end.
    let mut c = stcp_connection(3, &s, now);
    let mut forged = close_record(&mut RecordSealer::new(&AWS_LC, &[9; 32]));
    c.absorb_records(&forged, now, &s, &mut tally).unwrap();
    let (opener, job) = c.open_job().unwrap();
    assert!(opener.open_all(job).is_err());
    // Bytes after a Close are refused before anything is opened.
    let mut c = stcp_connection(3, &s, now);
    forged.extend_from_slice(&[0u8; 8]);
    assert_eq!(
        c.absorb_records(&forged, now, &s, &mut tally),
        Err(ErrorKind::Verify)
    );
}

/// No Close record is written while a request is only partly written: it would cut its frame.
#[test]
fn no_close_record_inside_a_frame() {
    let s = settings(Mode::Stcp, 1 << 20, 1);
    let now = Instant::now();
    let mut c = stcp_connection(2, &s, now);
    c.queue_request(now);
    let range = hand_over(&mut c, &s, now).unwrap();
    let before = c.out[c.fill].len;
    c.queue_close();
    assert_eq!(
        c.out[c.fill].len, before,
        "no Close while the frame is open"
    );
    // Once the request is out, the Close follows it.
    let mut range = Some(range);
    while let Some(r) = range {
        range = c
            .sent(r.1 as usize, now)
            .or_else(|| hand_over(&mut c, &s, now));
    }
    assert!(!c.writing());
    c.queue_close();
    let range = hand_over(&mut c, &s, now).expect("the Close");
    assert_eq!(range.1 as usize, CLOSE_RECORD_LEN);
}

#[test]
fn more_bytes_than_requested_are_refused_not_buffered() {
    let s = settings(Mode::Stcp, 64, 1);
    let (mut tally, _rx) = tally();
    let now = Instant::now();
    let mut c = Connection::new(0, 0, &s, now);
    c.state = State::Established;
    c.opener = Some(RecordOpener::new(&AWS_LC, &[0; 32], 1 << 20));
    let flood = vec![0u8; 4096];
    assert_eq!(
        c.absorb_records(&flood, now, &s, &mut tally),
        Err(ErrorKind::Verify)
    );
    // A header announcing another size is refused before its body arrives.
    let mut c = Connection::new(0, 0, &s, now);
    c.opener = Some(RecordOpener::new(&AWS_LC, &[0; 32], 1 << 20));
    c.queue_request(now);
    let mut header = [0u8; 4];
    stcp_proto::write_record_header(&mut header, RecordType::Data, 65);
    assert_eq!(
        c.absorb_records(&header, now, &s, &mut tally),
        Err(ErrorKind::Verify)
    );
    // A right-sized echo header with nothing in flight is refused too.
    let mut c = Connection::new(0, 0, &s, now);
    c.opener = Some(RecordOpener::new(&AWS_LC, &[0; 32], 1 << 20));
    stcp_proto::write_record_header(&mut header, RecordType::Data, 64);
    assert_eq!(
        c.absorb_records(&header, now, &s, &mut tally),
        Err(ErrorKind::Verify)
    );
}

/// TLS: a certificate and its key as stcp-server makes them (ECDSA P-256, self-signed).
fn tls_certificate() -> (
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    let certified = rcgen::generate_simple_self_signed(names).expect("a certificate");
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    (certified.cert.der().clone(), key.into())
}

/// TLS: the in-memory server, with the parameters of the comparison.
fn tls_server(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> rustls::ServerConnection {
    let mut config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(crate::tls::provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
    config.send_tls13_tickets = 0;
    rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap()
}

/// TLS: a connection just connected, its ClientHello queued, pinning `pinned`.
fn tls_connection(
    s: &Settings,
    pinned: rustls::pki_types::CertificateDer<'static>,
    now: Instant,
) -> Connection {
    let client = crate::tls::TlsClient::new(pinned, "localhost").unwrap();
    let mut c = Connection::new(7, 0, s, now);
    c.tls = Some(Box::new(
        rustls::ClientConnection::new(client.config, client.server_name).unwrap(),
    ));
    c.drain_tls();
    c.state = State::TlsHandshaking;
    c
}

/// Hands the client's bytes to the server; returns what the server answers (TLS bytes) and
/// the plaintext it received.
fn tls_server_reads(server: &mut rustls::ServerConnection, mut wire: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut plain = Vec::new();
    while !wire.is_empty() {
        server.read_tls(&mut wire).unwrap();
        server
            .process_new_packets()
            .expect("the server accepts the client");
        plain.extend_from_slice(&tls_server_plaintext(server));
    }
    (tls_server_output(server), plain)
}

fn tls_server_takes(server: &mut rustls::ServerConnection, wire: &[u8]) -> Vec<u8> {
    tls_server_reads(server, wire).0
}

/// The server echoes `plain` (TLS bytes).
fn tls_server_sends(server: &mut rustls::ServerConnection, plain: &[u8]) -> Vec<u8> {
    server.set_buffer_limit(None);
    std::io::Write::write_all(&mut server.writer(), plain).unwrap();
    tls_server_output(server)
}

fn tls_server_output(server: &mut rustls::ServerConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while server.wants_write() {
        server.write_tls(&mut out).unwrap();
    }
    out
}

/// The plaintext the server has received.
fn tls_server_plaintext(server: &mut rustls::ServerConnection) -> Vec<u8> {
    let mut plain = Vec::new();
    let _ = std::io::Read::read_to_end(&mut server.reader(), &mut plain);
    plain
}

/// Runs the handshake to its end; the connection is established.
fn tls_handshake(
    c: &mut Connection,
    server: &mut rustls::ServerConnection,
    s: &Settings,
    now: Instant,
) -> Result<(), TlsFailure> {
    let hello = send_all(c, s, now);
    let flight = tls_server_takes(server, &hello);
    assert_eq!(
        c.absorb_tls(&flight, now, s, None)?,
        TlsProgress::HandshakeDone
    );
    assert!(c.is_established());
    // The client's Finished.
    let finished = send_all(c, s, now);
    assert!(tls_server_takes(server, &finished).is_empty());
    assert!(!server.is_handshaking());
    Ok(())
}

#[test]
fn tls_pins_the_servers_certificate_and_echoes_are_verified() {
    let (cert, key) = tls_certificate();
    let now = Instant::now();
    for (payload, depth) in [(256, 1), (100, 8), (64 * 1024, 1), (1 << 20, 2)] {
        // Open loop: a completed request queues nothing, so the echoes run out.
        let s = open_loop(Mode::Tls, payload, depth);
        let mut c = tls_connection(&s, cert.clone(), now);
        let mut server = tls_server(cert.clone(), key.clone_key());
        tls_handshake(&mut c, &mut server, &s, now).unwrap();
        let (mut tally, _rx) = tally();
        for _ in 0..depth {
            c.queue_request(now);
        }
        // Requests out, a record at a time through the out buffers; echoed back in pieces.
        let mut echoed = 0;
        while c.in_flight.len() > 0 {
            let wire = send_all(&mut c, &s, now);
            let (_, plain) = tls_server_reads(&mut server, &wire);
            let back = tls_server_sends(&mut server, &plain);
            for part in back.chunks(1000) {
                assert_eq!(
                    c.absorb_tls(part, now, &s, Some(&mut tally)),
                    Ok(TlsProgress::Taken)
                );
            }
            echoed += 1;
            assert!(echoed < 10_000, "the echoes never completed");
        }
        assert_eq!(c.next_seq, u64::from(depth));
    }
}

#[test]
fn tls_refuses_a_server_with_another_certificate() {
    let (pinned, _) = tls_certificate();
    let (cert, key) = tls_certificate();
    let s = settings(Mode::Tls, 256, 1);
    let now = Instant::now();
    let mut c = tls_connection(&s, pinned, now);
    let mut server = tls_server(cert, key);
    let hello = send_all(&mut c, &s, now);
    let flight = tls_server_takes(&mut server, &hello);
    let failure = c.absorb_tls(&flight, now, &s, None).unwrap_err();
    let (kind, why) = failure.kind();
    assert_eq!(kind, ErrorKind::Handshake);
    assert!(why.contains("--server-cert"), "{why}");
    assert!(!c.is_established());
}

#[test]
fn tls_catches_a_corrupted_or_forged_echo() {
    let (cert, key) = tls_certificate();
    let s = settings(Mode::Tls, 256, 1);
    let now = Instant::now();
    // A plaintext byte changed by the server: a verify failure.
    let mut c = tls_connection(&s, cert.clone(), now);
    let mut server = tls_server(cert.clone(), key.clone_key());
    tls_handshake(&mut c, &mut server, &s, now).unwrap();
    let (mut tally, _rx) = tally();
    c.queue_request(now);
    let wire = send_all(&mut c, &s, now);
    let (_, mut plain) = tls_server_reads(&mut server, &wire);
    assert_eq!(plain.len(), s.frame_len);
    plain[100] ^= 1;
    let back = tls_server_sends(&mut server, &plain);
    let (kind, _) = c
        .absorb_tls(&back, now, &s, Some(&mut tally))
        .unwrap_err()
        .kind();
    assert_eq!(kind, ErrorKind::Verify);

    // A ciphertext byte changed on the way: the record does not authenticate.
    let mut c = tls_connection(&s, cert.clone(), now);
    let mut server = tls_server(cert, key);
    tls_handshake(&mut c, &mut server, &s, now).unwrap();
    c.queue_request(now);
    let wire = send_all(&mut c, &s, now);
    let (_, plain) = tls_server_reads(&mut server, &wire);
    let mut back = tls_server_sends(&mut server, &plain);
    back[20] ^= 1;
    assert_eq!(
        c.absorb_tls(&back, now, &s, Some(&mut tally)),
        Err(TlsFailure::Verify("echo record failed authentication"))
    );
    assert_eq!(c.in_flight.len(), 1);
}

#[test]
fn tls_close_notify_is_a_clean_end_and_nothing_may_follow_it() {
    let (cert, key) = tls_certificate();
    let s = settings(Mode::Tls, 256, 1);
    let now = Instant::now();
    let mut c = tls_connection(&s, cert.clone(), now);
    let mut server = tls_server(cert, key);
    tls_handshake(&mut c, &mut server, &s, now).unwrap();
    let (mut tally, _rx) = tally();

    // Our close_notify reaches the server as a clean end of its input.
    c.queue_close();
    let wire = send_all(&mut c, &s, now);
    let (_, plain) = tls_server_reads(&mut server, &wire);
    assert!(plain.is_empty());
    let mut rest = Vec::new();
    assert_eq!(
        std::io::Read::read_to_end(&mut server.reader(), &mut rest).unwrap(),
        0
    );
    // The server's close_notify ends ours cleanly.
    server.send_close_notify();
    let mut back = tls_server_output(&mut server);
    assert_eq!(
        c.absorb_tls(&back, now, &s, Some(&mut tally)),
        Ok(TlsProgress::Closed)
    );
    assert!(c.server_closed);
    // Anything after it is refused.
    back.truncate(5);
    assert!(matches!(
        c.absorb_tls(&back, now, &s, Some(&mut tally)),
        Err(TlsFailure::Verify(_))
    ));
}
