//! Records from a peer after the handshake. A real session comes from an
//! in-memory handshake with the fixture's fixed seeds; then any bytes go
//! - in any split into the established `Connection::server`,
//! - into `RecordOpener::open` of a fresh session's opener, as one record,
//! - into `RecordOpener::open_all` of that opener (or a fresh one),
//!
//! and whatever any of them accepts must be exactly what the genuine client
//! seals at that point of the session (authentication holds), errors are
//! kept, and `RecordHeader::parse` reads the first header as documented.
//!
//! Input: `[flags] [plan] [split stream]`: flags as in
//! `fixture::Setup::from_flags`; the stream is the genuine client's records
//! the plan asks for (`genuine::Plan`), then the fuzzer's bytes. Some seeds
//! are recorded records instead (plan 0), replayed verbatim.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stcp_proto::record::MAX_RECORD_PAYLOAD;
use stcp_proto::{
    write_record_header, Error, RecordHeader, RecordSealer, RecordType, RECORD_HEADER_LEN, TAG_LEN,
};
use stcp_proto_fuzz::fixture::Setup;
use stcp_proto_fuzz::genuine::Plan;
use stcp_proto_fuzz::input::{Reader, SplitStream};
use stcp_proto_fuzz::oracle::{
    assert_eof, assert_genuine_records, assert_nothing_after_close, feed, opened_len, record_spans,
    EventLog,
};

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(data);
    let setup = Setup::from_flags(reader.u8());
    let plan = Plan::read(&mut reader);
    let split = SplitStream::read(&mut reader);
    let max_payload = setup.max_frame.min(MAX_RECORD_PAYLOAD);

    // An established pair; the client seals the planned prefix.
    let (mut client, mut server) = setup.established_pair();
    let (prefix, known) = plan.seal(&mut client);
    let stream = &[&prefix[..], split.stream].concat()[..];
    check_header_parse(stream, max_payload);

    // The server connection receiving the stream.
    let mut log = EventLog {
        connected: true,
        ..EventLog::default()
    };
    feed(&mut server, &mut log, &split.chunks_of(stream));
    assert_genuine_records(stream, max_payload, &log.opened, &known, &mut client);
    assert_nothing_after_close(&server, &log);
    let clean = log.closed && opened_len(stream, max_payload, &log) == stream.len();
    assert_eof(&mut server, clean);

    // The record layer alone: the stream as one record for open, then
    // (from the same opener when that failed, as it leaves no trace) as
    // records for open_all.
    let (mut genuine, mut session) = setup.session_pair();
    let mut buf = stream.to_vec();
    if session.opener.open(&mut buf).is_ok() {
        assert_eq!(session.opener.counter(), 1);
        assert_resealed(&mut genuine.sealer, stream, &buf);
        (genuine, session) = setup.session_pair();
    } else {
        assert_eq!(
            session.opener.counter(),
            0,
            "a failed record moved the counter"
        );
        assert!(!session.opener.peer_closed());
    }
    let mut buf = stream.to_vec();
    let result = session.opener.open_all(&mut buf);
    let opened = session.opener.counter() as usize;
    let spans = record_spans(stream, max_payload);
    assert!(
        opened <= spans.len(),
        "opened more records than the stream holds"
    );
    for span in &spans[..opened] {
        assert_resealed(
            &mut genuine.sealer,
            &stream[span.clone()],
            &buf[span.clone()],
        );
    }
    match result {
        Ok(n) => {
            assert_eq!(n, opened);
            assert_eq!(
                spans.get(..n).and_then(|s| s.last()).map_or(0, |s| s.end),
                stream.len()
            );
        }
        // Every whole record opened: what failed is the bytes after them.
        Err(e) if opened == spans.len() => assert!(
            matches!(
                e,
                Error::BadLength | Error::BadRecordType(_) | Error::FrameTooLarge { .. }
            ),
            "trailing bytes failed with {e:?}"
        ),
        Err(_) => {}
    }
});

/// `wire` was opened in place into `opened`: sealing its plaintext with the
/// genuine peer's sealer (at the same counter) must give `wire` back.
fn assert_resealed(sealer: &mut RecordSealer, wire: &[u8], opened: &[u8]) {
    let header = RecordHeader::parse(
        wire[..RECORD_HEADER_LEN].try_into().unwrap(),
        MAX_RECORD_PAYLOAD,
    )
    .expect("an opened record has a good header");
    let mut record = vec![0; opened.len()];
    write_record_header(&mut record, header.kind, header.payload_len);
    record[RECORD_HEADER_LEN..opened.len() - TAG_LEN]
        .copy_from_slice(&opened[RECORD_HEADER_LEN..opened.len() - TAG_LEN]);
    sealer.seal(&mut record).expect("the genuine peer seals");
    assert_eq!(
        record, wire,
        "a record opened that the genuine peer did not seal"
    );
    if header.kind == RecordType::Close {
        assert_eq!(
            header.payload_len, 0,
            "a close record with a payload opened"
        );
    }
}

/// `RecordHeader::parse` against the documented header: type in the top 4
/// bits (0 data, 1 close), length of ciphertext plus tag in the low 28.
fn check_header_parse(stream: &[u8], max_payload: usize) {
    let Some(bytes) = stream.get(..RECORD_HEADER_LEN) else {
        return;
    };
    let bytes: [u8; RECORD_HEADER_LEN] = bytes.try_into().unwrap();
    let raw = u32::from_be_bytes(bytes);
    let kind = (raw >> 28) as u8;
    let body = (raw & ((1 << 28) - 1)) as usize;
    let expected = match kind {
        0 | 1 if body < TAG_LEN => Err(Error::BadLength),
        0 | 1 if body - TAG_LEN > max_payload => Err(Error::FrameTooLarge {
            len: body - TAG_LEN,
            max: max_payload,
        }),
        0 => Ok(RecordType::Data),
        1 => Ok(RecordType::Close),
        other => Err(Error::BadRecordType(other)),
    };
    let parsed = RecordHeader::parse(bytes, max_payload);
    assert_eq!(parsed.clone().map(|h| h.kind), expected);
    if let Ok(header) = parsed {
        assert_eq!(header.payload_len, body - TAG_LEN);
        assert_eq!(header.encode(), bytes, "a parsed header does not re-encode");
        assert_eq!(header.record_len(), RECORD_HEADER_LEN + body);
    }
}
