//! Records from a peer after the handshake. A real session comes from an
//! in-memory handshake with the fixture's fixed seeds; then any bytes go
//! - in any split into the established `Connection::server`,
//! - into `RecordOpener::open` of a fresh session's opener, as one record,
//! - into `RecordOpener::open_all` of that opener (or a fresh one),
//!
//! and each must read them exactly as the reference receiver written from
//! docs/PROTOCOL.md does (`oracle::RecordWalker`): the same records opened,
//! the same frames (a `Begin`, `Continue`s and an `End` make one) and close
//! reported, and the same error where it stops: a record over 16 KiB or a
//! frame over the maximum refused from its header, a `Continue` or `End`
//! with no frame begun, a new frame or a Close before the last one's final
//! record, records that overrun or fall short of the announced length, a
//! record after the Close, each before any decryption. Whatever opens must
//! be exactly what the genuine client seals at that point of the session
//! (authentication holds); errors are kept; `RecordHeader::parse` and
//! `write` read and write the first header as documented.
//!
//! Input: `[flags] [plan] [split stream]`: flags as in
//! `fixture::Setup::from_flags`; the stream is the genuine client's records
//! the plan asks for (`genuine::Plan`: frames of up to 6 records, at the
//! 16 KiB edges), then the fuzzer's bytes. Some seeds are recorded records
//! instead (plan 0), replayed verbatim.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stcp_proto::{Error, RecordHeader, RecordOpener, RecordSealer, RecordType, RekeyPolicy};
use stcp_proto_fuzz::fixture::Setup;
use stcp_proto_fuzz::genuine::Plan;
use stcp_proto_fuzz::input::{Reader, SplitStream};
use stcp_proto_fuzz::oracle::{
    assert_eof, assert_genuine_records, assert_walked, documented_record_header, feed,
    DocumentedHeader, EventLog, RecordWalker, WalkEnd, Walked, TAG_BYTES,
};

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(data);
    let setup = Setup::from_flags(reader.u8());
    let plan = Plan::read(&mut reader);
    let split = SplitStream::read(&mut reader);
    let max = setup.max_frame;

    // An established pair; the client seals the planned prefix.
    let (mut client, mut server) = setup.established_pair();
    let (prefix, known) = plan.seal(&mut client);
    let stream = &[&prefix[..], split.stream].concat()[..];
    check_header_parse(stream, max);

    // The reference reading, with the server's opening key.
    let (mut genuine, mut reference) = setup.session_pair();
    let walked =
        RecordWalker::new(reference.opener.cipher_state(), RekeyPolicy::PROTOCOL, max).walk(stream);
    // The oracle reads the genuine prefix back whole, unless it holds a
    // frame over this setup's maximum.
    if plan.longest_frame() <= max {
        assert!(
            walked.opened_len() >= prefix.len(),
            "the genuine prefix does not read back"
        );
        assert_eq!(walked.event_list()[..known.len()], known[..]);
    }

    // The server connection receiving the stream.
    let mut log = EventLog {
        connected: true,
        ..EventLog::default()
    };
    feed(&mut server, &mut log, &split.chunks_of(stream));
    assert_walked(&server, &log, &walked);
    assert_genuine_records(stream, &walked, &known, &mut client);
    assert_eof(&mut server, walked.clean_eof());

    // The record layer alone: the stream as one record for open, then
    // (from the same opener when that failed, as it leaves no trace) as
    // records for open_all.
    let (_, mut session) = setup.session_pair();
    let mut buf = stream.to_vec();
    let one = session.opener.open(&mut buf);
    assert_eq!(
        one,
        expected_open(stream, &walked, max),
        "open of the whole stream"
    );
    if one.is_ok() {
        assert_eq!(session.opener.counter(), 1);
        assert_resealed(&mut genuine.sealer, stream, &buf, &walked.records[0].header);
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
    assert_eq!(
        opened,
        walked.records.len(),
        "open_all opened another count"
    );
    for record in &walked.records {
        let span = record.span.clone();
        assert_eq!(
            &buf[span.start + record.header.header_len()..span.end - TAG_BYTES],
            &record.payload[..]
        );
        assert_resealed(
            &mut genuine.sealer,
            &stream[span.clone()],
            &buf[span],
            &record.header,
        );
    }
    let expected = match &walked.end {
        WalkEnd::Clean => Ok(opened),
        // `open_all` takes whole records only.
        WalkEnd::Incomplete(_) => Err(Error::BadLength),
        WalkEnd::Refused(_, e) => Err(e.clone()),
    };
    assert_eq!(result, expected, "open_all");
    assert_eq!(session.opener.peer_closed(), walked.closed());
    assert_eq!(
        session.opener.frames() as usize,
        walked.events.len() - walked.closed() as usize
    );
});

/// What `RecordOpener::open` of a fresh opener must say of `stream` as one
/// record: its header's rules, then exactly one record's length
/// (`BadLength`), then what the reference reading says of its first record.
fn expected_open(stream: &[u8], walked: &Walked, max: usize) -> Result<RecordType, Error> {
    let header = documented_record_header(stream, max)?;
    if header.record_len() != stream.len() {
        return Err(Error::BadLength);
    }
    match (&walked.records.first(), &walked.end) {
        (Some(record), _) => Ok(record.header.kind),
        (None, WalkEnd::Refused(0, e)) => Err(e.clone()),
        (None, end) => panic!("a whole first record neither opened nor refused: {end:?}"),
    }
}

/// `wire` was opened in place into `opened`: the header `RecordHeader`
/// writes for it is its header, and sealing its plaintext with the genuine
/// peer's sealer (at the same counter and place in the frame) must give
/// `wire` back.
fn assert_resealed(
    sealer: &mut RecordSealer,
    wire: &[u8],
    opened: &[u8],
    header: &DocumentedHeader,
) {
    let h = header.header_len();
    let api = match header.kind {
        RecordType::Begin => RecordHeader::first(header.announced.unwrap(), header.payload_len),
        kind => RecordHeader::new(kind, header.payload_len),
    };
    let mut record = vec![0; header.record_len()];
    assert_eq!(api.write(&mut record), h);
    assert_eq!(record[..h], wire[..h], "the header does not write back");
    record[h..h + header.payload_len].copy_from_slice(&opened[h..h + header.payload_len]);
    assert_eq!(
        sealer.seal(&mut record),
        Ok(header.kind),
        "the genuine peer seals"
    );
    assert_eq!(
        record, wire,
        "a record opened that the genuine peer did not seal"
    );
}

/// `RecordHeader::parse` and `RecordOpener::parse_header` against the
/// documented header at the start of `stream`.
fn check_header_parse(stream: &[u8], max: usize) {
    let expected = documented_record_header(stream, max);
    let parsed = RecordHeader::parse(stream, max);
    let opener = RecordOpener::new(&stcp_proto::AWS_LC, &[0; 32], max);
    assert_eq!(opener.parse_header(stream), parsed);
    match (parsed, expected) {
        (Ok(h), Ok(d)) => {
            assert_eq!((h.kind, h.payload_len), (d.kind, d.payload_len));
            assert_eq!(h.record_len(), d.record_len());
            if let Some(announced) = d.announced {
                assert_eq!(h.frame_len, announced);
            }
        }
        (parsed, expected) => assert_eq!(parsed.err(), expected.err()),
    }
}
