//! The connection's byte-level work, without sockets: requests out, echoes in, in any split.

use std::sync::mpsc;
use std::time::Duration;

use stcp_proto::{RecordOpener, RecordSealer, AWS_LC};

use super::*;

fn settings(mode: Mode, payload: usize, depth: u32) -> Settings {
    Settings::new(mode, payload, depth, Duration::from_secs(5), None, 1)
}

fn tally() -> (Tally, mpsc::Receiver<crate::engine::tally::ThreadMessage>) {
    let (tx, rx) = mpsc::channel();
    (
        Tally::new(tx, Instant::now(), Duration::ZERO, Duration::from_secs(60)),
        rx,
    )
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

#[test]
fn tcp_requests_stream_out_and_echoes_are_checked_in_pieces() {
    let s = settings(Mode::Tcp, 100, 2);
    let (mut tally, _rx) = tally();
    let now = Instant::now();
    tally.advance(now);
    let mut c = Connection::new(7, 0, &s, now);
    c.state = State::Established;
    c.queue_request(&s, now);
    c.queue_request(&s, now);
    let first = c.start_send().expect("two requests ready");
    assert_eq!(first.1 as usize, 2 * s.record_len);
    let sent: Vec<u8> = bytes(first, &c).to_vec();
    assert!(c.start_send().is_none(), "one send at a time");
    // A short send: the rest is handed out again.
    let rest = c.sent(30).expect("remainder");
    assert_eq!(rest.1 as usize, 2 * s.record_len - 30);
    // The first echo arrives in three pieces; the closed loop queues request 2 meanwhile.
    let (a, b) = sent[..s.record_len].split_at(3);
    let (b, d) = b.split_at(50);
    for piece in [a, b, d] {
        c.absorb_frames(piece, now, &s, &mut tally).unwrap();
    }
    assert_eq!(c.in_flight.len(), 2);
    assert!(c.start_send().is_none(), "still sending the first buffer");
    // The first buffer finishes: the second (holding request 2) goes out next.
    let next = c.sent(2 * s.record_len - 30).expect("the other buffer");
    assert_eq!(next.1 as usize, s.record_len);
    let mut expected = vec![0u8; s.record_len];
    expected[..4].copy_from_slice(&100u32.to_be_bytes());
    payload::fill(&mut expected[4..], 7, 2);
    assert_eq!(bytes(next, &c), &expected[..]);
    // A corrupted second echo is a verify error.
    let mut echo = sent[s.record_len..].to_vec();
    echo[60] ^= 1;
    assert_eq!(
        c.absorb_frames(&echo, now, &s, &mut tally),
        Err(ErrorKind::Verify)
    );
}

#[test]
fn stcp_records_are_assembled_opened_and_verified() {
    let s = settings(Mode::Stcp, 1000, 2);
    let (mut tally, _rx) = tally();
    let now = Instant::now();
    tally.advance(now);
    let (up, down) = ([1u8; 32], [2u8; 32]);
    let mut c = Connection::new(3, 0, &s, now);
    c.state = State::Established;
    c.sealer = Some(RecordSealer::new(&AWS_LC, &up));
    c.opener = Some(RecordOpener::new(&AWS_LC, &down, 1 << 20));
    let mut server_opener = RecordOpener::new(&AWS_LC, &up, 1 << 20);
    let mut server_sealer = RecordSealer::new(&AWS_LC, &down);
    c.queue_request(&s, now);
    c.queue_request(&s, now);
    let (sealer, records) = c.seal_job().expect("two records to seal");
    assert_eq!(sealer.seal_all(records), Ok(2));
    c.sealed_all();
    let range = c.start_send().unwrap();
    // The server opens and reseals in place: an echo.
    let mut wire = bytes(range, &c).to_vec();
    assert_eq!(server_opener.open_all(&mut wire), Ok(2));
    assert_eq!(server_sealer.seal_all(&mut wire), Ok(2));
    // Delivered in odd pieces: only whole records are handed to the opener.
    let (a, rest) = wire.split_at(700);
    c.absorb_records(a, &s).unwrap();
    assert!(c.open_job().is_none());
    c.absorb_records(&rest[..400], &s).unwrap();
    let (opener, job) = c.open_job().expect("one whole record");
    assert_eq!(job.len(), s.record_len);
    assert_eq!(opener.open_all(job), Ok(1));
    c.consume_opened(now, &s, &mut tally).unwrap();
    assert_eq!(c.in_flight.len(), 2, "request 0 done, request 2 queued");
    c.absorb_records(&rest[400..], &s).unwrap();
    let (opener, job) = c.open_job().unwrap();
    assert_eq!(opener.open_all(job), Ok(1));
    c.consume_opened(now, &s, &mut tally).unwrap();
    assert_eq!(c.in_len, 0);
    // A server that echoes a different plaintext (sealed correctly) fails verification.
    c.sent(range.1 as usize);
    let (sealer, records) = c.seal_job().unwrap();
    sealer.seal_all(records).unwrap();
    c.sealed_all();
    let range = c.start_send().unwrap();
    let mut wire = bytes(range, &c).to_vec();
    server_opener.open_all(&mut wire).unwrap();
    wire[10] ^= 0x80;
    server_sealer.seal_all(&mut wire).unwrap();
    c.absorb_records(&wire, &s).unwrap();
    let (opener, job) = c.open_job().unwrap();
    assert!(opener.open_all(job).is_ok());
    assert_eq!(
        c.consume_opened(now, &s, &mut tally),
        Err(ErrorKind::Verify)
    );
}

/// A server's Close record after its echoes: the echoes are verified, the Close is opened
/// (authenticated) and ends the connection cleanly; a forged or trailing one does not.
#[test]
fn the_servers_close_record_is_a_clean_end_only_when_authentic() {
    let s = settings(Mode::Stcp, 1000, 2);
    let (mut tally, _rx) = tally();
    let now = Instant::now();
    tally.advance(now);
    let (up, down) = ([1u8; 32], [2u8; 32]);
    let connection = || {
        let mut c = Connection::new(3, 0, &s, now);
        c.state = State::Established;
        c.sealer = Some(RecordSealer::new(&AWS_LC, &up));
        c.opener = Some(RecordOpener::new(&AWS_LC, &down, 1 << 20));
        c
    };
    let close_record = |sealer: &mut RecordSealer| {
        let mut close = vec![0u8; RECORD_HEADER_LEN + TAG_LEN];
        stcp_proto::write_record_header(&mut close, RecordType::Close, 0);
        sealer.seal(&mut close).unwrap();
        close
    };
    // Two requests in flight; the server echoes one, then closes (a stopping server).
    let mut c = connection();
    let mut server_opener = RecordOpener::new(&AWS_LC, &up, 1 << 20);
    let mut server_sealer = RecordSealer::new(&AWS_LC, &down);
    c.queue_request(&s, now);
    c.queue_request(&s, now);
    let (sealer, records) = c.seal_job().unwrap();
    sealer.seal_all(records).unwrap();
    c.sealed_all();
    let range = c.start_send().unwrap();
    let mut wire = bytes(range, &c)[..s.record_len].to_vec();
    server_opener.open_all(&mut wire).unwrap();
    server_sealer.seal_all(&mut wire).unwrap();
    wire.extend(close_record(&mut server_sealer));
    // Echo and Close arrive together: the buffer has room for both.
    c.absorb_records(&wire, &s).unwrap();
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
    let mut c = connection();
    let mut forged = close_record(&mut RecordSealer::new(&AWS_LC, &[9; 32]));
    c.absorb_records(&forged, &s).unwrap();
    let (opener, job) = c.open_job().unwrap();
    assert!(opener.open_all(job).is_err());
    // Bytes after a Close are refused before anything is opened.
    let mut c = connection();
    forged.extend_from_slice(&[0u8; 8]);
    assert_eq!(c.absorb_records(&forged, &s), Err(ErrorKind::Verify));
}

#[test]
fn more_bytes_than_requested_are_refused_not_buffered() {
    let s = settings(Mode::Stcp, 64, 1);
    let now = Instant::now();
    let mut c = Connection::new(0, 0, &s, now);
    c.state = State::Established;
    c.opener = Some(RecordOpener::new(&AWS_LC, &[0; 32], 1 << 20));
    let flood = vec![0u8; 4096];
    assert_eq!(c.absorb_records(&flood, &s), Err(ErrorKind::Verify));
    // A header announcing another size is refused before its body arrives.
    let mut c = Connection::new(0, 0, &s, now);
    c.opener = Some(RecordOpener::new(&AWS_LC, &[0; 32], 1 << 20));
    let mut header = [0u8; 4];
    stcp_proto::write_record_header(&mut header, RecordType::Data, 65);
    assert_eq!(c.absorb_records(&header, &s), Err(ErrorKind::Verify));
}
