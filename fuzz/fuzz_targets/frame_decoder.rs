//! Units from a peer: `codec::Decoder` in each framing (a handshake frame
//! then records, records, or plain frames), with a small maximum, fed any
//! bytes in any split, never panics and reads the stream exactly as the
//! documented header formats do (`oracle::DocumentedUnits`, written from
//! docs/PROTOCOL.md, not from the codec): the same whole units in the same
//! order, reassembled or in place; a bad header (an unknown type, a record
//! over 16 KiB, an empty `Begin`/`Continue`/`End`, a frame over the maximum)
//! refused as soon as its 4 bytes arrived, after every unit before it, and
//! for good; never more buffered than the incomplete unit received so far,
//! and no more memory than the largest unit whose header passed.
//! `Codec::split` and `Codec::units` agree with the decoder; the header
//! functions (`RecordHeader::peek`, `parse`, `write`) read and write a
//! header as documented. Records: `FrameSequence` ties the whole records
//! into frames as the documented rules do (`oracle::DocumentedSequence`),
//! whatever order of types and lengths the fuzzer puts them in. Plain
//! frames: `FrameStream`, TCP mode's cut-through reader, fed the same
//! pieces, counts the frames each piece completes, fails at the same bad
//! header with the bytes before it, and stands at a frame boundary exactly
//! where the documented reading does; a TCP-mode `Connection` decodes the
//! same frames.
//!
//! Input: `[mode] [max] [split stream]` (see `stcp_proto_fuzz::input`).
//! `mode % 3`: 0 handshake frame then records, 1 records, 2 plain frames;
//! `mode & 4`: take reassembled units with `take_reassembled` instead of
//! reading them with `reassembled_mut`; `mode & 8`: the maximum is `max`
//! KiB instead of `max` bytes (so a record of 16 KiB and one byte meets a
//! maximum above it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use stcp_proto::codec::HEADER_LEN;
use stcp_proto::handshake::handshake_frame_len;
use stcp_proto::{
    frame_len, Codec, Decoder, Error, FrameSequence, FrameStream, Framing, Mode, RecordHeader,
    RecordType, Split, StreamError, FRAME_HEADER_LEN,
};
use stcp_proto_fuzz::fixture::{self, Setup};
use stcp_proto_fuzz::input::{Reader, SplitStream};
use stcp_proto_fuzz::oracle::{
    documented_record_header, documented_record_word, documented_unit_len, feed,
    DocumentedSequence, DocumentedUnits, EventLog,
};
use std::ops::Range;

fuzz_target!(|data: &[u8]| {
    let mut reader = Reader::new(data);
    let mode = reader.u8();
    let (first, then) = match mode % 3 {
        0 => (Framing::Handshake, Framing::Records),
        1 => (Framing::Records, Framing::Records),
        _ => (Framing::Frames, Framing::Frames),
    };
    let take = mode & 4 != 0;
    let max = reader.u8() as usize * if mode & 8 != 0 { 1024 } else { 1 };
    let split = SplitStream::read(&mut reader);
    let chunks = split.chunks();
    let stream = split.stream;

    check_header_functions(stream, max);
    let expected = DocumentedUnits::read(stream, first, then, max);
    check_split(first, max, stream);
    if let (Framing::Handshake, Some(hello)) = (first, expected.units.first()) {
        check_split(then, max, &stream[hello.end..]);
    }
    let (units, error) = decode(&chunks, stream, &expected, first, then, max, take);

    if then == Framing::Records {
        let records = match first {
            Framing::Handshake => &expected.units[expected.units.len().min(1)..],
            _ => &expected.units[..],
        };
        check_sequence(stream, records, max);
    }
    if first != Framing::Frames {
        return;
    }
    check_frame_stream(&chunks, &expected, max);
    // A TCP-mode connection reads peer bytes with the same decoder.
    let setup = Setup {
        psk: false,
        max_frame: max,
        crypto: fixture::provider(false),
    };
    let mut conn = setup.server(Mode::Tcp);
    let mut log = EventLog::default();
    feed(&mut conn, &mut log, &chunks);
    let frames: Vec<&[u8]> = units
        .iter()
        .map(|u| &stream[u.start + FRAME_HEADER_LEN..u.end])
        .collect();
    assert_eq!(log.frames, frames, "Connection and Decoder disagree");
    assert_eq!(conn.error(), error.as_ref());
    let eof = conn.handle_eof();
    match &error {
        Some(e) => assert_eq!(eof.as_ref(), Err(e)),
        None if expected.whole() == stream.len() => assert_eq!(eof, Ok(())),
        None => assert_eq!(eof, Err(Error::Truncated)),
    }
});

/// The header readers against the documented rules.
fn check_header_functions(stream: &[u8], max: usize) {
    let Some(header) = stream.get(..FRAME_HEADER_LEN) else {
        return;
    };
    let header: [u8; FRAME_HEADER_LEN] = header.try_into().unwrap();
    for framing in [Framing::Handshake, Framing::Records, Framing::Frames] {
        let expected = documented_unit_len(framing, max, header);
        assert_eq!(Codec::new(framing, max).unit_len(header), expected);
        let unit = match framing {
            Framing::Handshake => handshake_frame_len(header).map(|n| n + HEADER_LEN),
            Framing::Frames => frame_len(header, max).map(|n| n + HEADER_LEN),
            Framing::Records => RecordHeader::peek(header, max)
                .map(|(kind, payload)| kind.header_len() + payload + stcp_proto::TAG_LEN),
        };
        assert_eq!(unit, expected);
    }
    assert_eq!(
        RecordHeader::peek(header, max),
        documented_record_word(header, max)
    );
    check_record_header(stream, max);
}

/// `RecordHeader::parse` on the record at the start of `bytes` (whole or
/// not) against the documented header, and `RecordHeader::write` back.
fn check_record_header(bytes: &[u8], max: usize) {
    let parsed = RecordHeader::parse(bytes, max);
    let documented = documented_record_header(bytes, max);
    match (&parsed, &documented) {
        (Err(e), Err(d)) => assert_eq!(e, d, "a header refused for another reason"),
        (Ok(h), Ok(d)) => {
            assert_eq!((h.kind, h.payload_len), (d.kind, d.payload_len));
            let frame_len = match d.kind {
                RecordType::Data => d.payload_len,
                RecordType::Begin => d.announced.unwrap(),
                _ => 0,
            };
            assert_eq!(h.frame_len, frame_len, "the frame length of {d:?}");
            assert_eq!(
                (h.header_len(), h.record_len()),
                (d.header_len(), d.record_len())
            );
            let mut out = [0u8; 8];
            assert_eq!(h.write(&mut out), d.header_len());
            assert_eq!(
                out[..d.header_len()],
                bytes[..d.header_len()],
                "a parsed header does not write back"
            );
        }
        _ => panic!("RecordHeader::parse gives {parsed:?}, the documented rules {documented:?}"),
    }
}

/// `FrameSequence` over the whole records `units` of `stream` (each header
/// read as documented) against the documented rules: the same verdict for
/// every record, nothing changed by a refused one (which is then skipped,
/// so the walk goes on), and the same place in the frame after each.
fn check_sequence(stream: &[u8], units: &[Range<usize>], max: usize) {
    let mut sequence = FrameSequence::default();
    let mut documented = DocumentedSequence::default();
    for unit in units {
        let record = &stream[unit.clone()];
        check_record_header(record, max);
        let Ok(doc) = documented_record_header(record, max) else {
            continue;
        };
        let header = RecordHeader::parse(record, max).expect("checked above");
        let expected = documented.check(&doc);
        let before = sequence;
        assert_eq!(
            sequence.check(&header),
            expected,
            "FrameSequence::check on {doc:?} after {documented:?}"
        );
        if expected.is_ok() {
            sequence.advance(&header);
            documented.advance(&doc);
        } else {
            assert_eq!(sequence, before, "a refused record changed the sequence");
        }
        assert_eq!(sequence.in_frame(), documented.owed.is_some());
        assert_eq!(sequence.remaining(), documented.owed.unwrap_or(0));
    }
}

/// `FrameStream` fed `chunks` against the documented reading `expected` of
/// their concatenation: each call completes the frames that end in it; the
/// call in which a bad header's 4th byte arrives fails with that header's
/// error and the bytes of the call before it, every later call with the
/// same error and none; between calls it is at a boundary exactly where a
/// frame ended, and owes the rest of the frame whose header is in.
fn check_frame_stream(chunks: &[&[u8]], expected: &DocumentedUnits, max: usize) {
    let mut s = FrameStream::new(max);
    assert!(s.at_boundary());
    let mut pushed = 0;
    let mut failed: Option<Error> = None;
    for chunk in chunks {
        let before = pushed;
        pushed += chunk.len();
        let result = s.advance(chunk);
        if let Some(error) = &failed {
            let error = error.clone();
            assert_eq!(
                result,
                Err(StreamError { valid: 0, error }),
                "error not kept"
            );
            assert!(!s.at_boundary());
            continue;
        }
        if let Some((at, error)) = expected
            .bad
            .clone()
            .filter(|(at, _)| at + HEADER_LEN <= pushed)
        {
            let valid = at.saturating_sub(before);
            assert_eq!(
                result,
                Err(StreamError {
                    valid,
                    error: error.clone()
                }),
                "a bad header at {at} in a call from {before}"
            );
            assert!(!s.at_boundary());
            failed = Some(error);
            continue;
        }
        let done = expected
            .units
            .iter()
            .filter(|u| before < u.end && u.end <= pushed)
            .count();
        assert_eq!(
            result,
            Ok(done),
            "frames completed by bytes {before}..{pushed}"
        );
        let boundary = pushed == 0 || expected.units.iter().any(|u| u.end == pushed);
        assert_eq!(s.at_boundary(), boundary, "boundary after {pushed} bytes");
        let next = expected
            .next_len
            .map(|len| expected.whole()..expected.whole() + len);
        let owed = expected
            .units
            .iter()
            .cloned()
            .chain(next)
            .find(|u| u.start + HEADER_LEN <= pushed && pushed < u.end)
            .map_or(0, |u| u.end - pushed);
        assert_eq!(s.remaining(), owed, "payload owed after {pushed} bytes");
    }
    // Reset: a new stream, read in one piece.
    s.reset(max);
    assert!(s.at_boundary());
    let whole: Vec<u8> = chunks.concat();
    match &expected.bad {
        Some((at, error)) => assert_eq!(
            s.advance(&whole),
            Err(StreamError {
                valid: *at,
                error: error.clone()
            })
        ),
        None => assert_eq!(s.advance(&whole), Ok(expected.units.len())),
    }
}

/// `Codec::split` over `stream` (at a unit boundary) reads it as documented.
fn check_split(framing: Framing, max: usize, stream: &[u8]) {
    let documented = DocumentedUnits::read(stream, framing, framing, max);
    let expected = match documented.bad {
        Some((_, e)) => Err(e),
        None => Ok(Split {
            whole: documented.whole(),
            units: documented.units.len(),
            next_len: documented.next_len,
        }),
    };
    assert_eq!(Codec::new(framing, max).split(stream), expected);
}

/// Decodes `chunks` with a `Decoder`, checking every result against the
/// documented reading `expected`. Returns the units (ranges of `stream`) and
/// the error that stopped it, if any.
fn decode(
    chunks: &[&[u8]],
    stream: &[u8],
    expected: &DocumentedUnits,
    first: Framing,
    then: Framing,
    max: usize,
    take: bool,
) -> (Vec<Range<usize>>, Option<Error>) {
    let mut d = Decoder::new(Codec::new(first, max));
    let mut got: Vec<Range<usize>> = Vec::new();
    let mut pushed = 0;
    // The replacement buffers `take_reassembled` hands in have this capacity.
    let spare = if take { 8 } else { 0 };
    for chunk in chunks {
        // `base`: offset in `stream` of `data[0]`.
        let mut base = pushed;
        let mut data = *chunk;
        pushed += chunk.len();
        loop {
            let codec = d.codec();
            let out = match d.decode(data) {
                Ok(out) => out,
                Err(e) => {
                    let (at, documented) = expected.bad.clone().expect("an error on good units");
                    assert_eq!(e, documented);
                    assert_eq!(got, expected.units, "an error before all units came out");
                    assert!(
                        at + HEADER_LEN <= pushed,
                        "an error before its header arrived"
                    );
                    assert_eq!(d.decode(&[0; 3]), Err(e.clone()), "error not kept");
                    assert!(d.buffered() <= HEADER_LEN, "kept a refused unit");
                    assert!(d.capacity() <= largest(expected, pushed).max(spare));
                    return (got, Some(e));
                }
            };
            assert!(out.consumed <= data.len());
            assert!(data.is_empty() || out.consumed > 0, "no progress");
            assert!(out.run.start <= out.run.end && out.run.end <= out.consumed);
            if out.reassembled {
                let unit = if take {
                    d.take_reassembled(Vec::with_capacity(spare))
                } else {
                    d.reassembled_mut().to_vec()
                };
                let next = expected
                    .units
                    .get(got.len())
                    .expect("a unit not in the stream");
                assert_eq!(unit, &stream[next.clone()], "a reassembled unit differs");
                assert!(next.start < base, "reassembled a unit begun in this call");
                assert_eq!(next.end, base + out.run.start);
                got.push(next.clone());
            } else {
                assert_eq!(out.run.start, 0);
            }
            assert!(d.reassembled_mut().is_empty() || !take);
            let run = &data[out.run.clone()];
            assert_eq!(
                codec.split(run),
                Ok(Split {
                    whole: run.len(),
                    units: out.units,
                    next_len: None
                })
            );
            let mut n = 0;
            for unit in codec.units(run) {
                let unit = unit.expect("a bad header in a run");
                let at = base + out.run.start;
                let next = expected
                    .units
                    .get(got.len())
                    .expect("a unit not in the stream");
                assert_eq!(
                    at + unit.start..at + unit.end,
                    *next,
                    "an in-place unit differs"
                );
                got.push(next.clone());
                n += 1;
            }
            assert_eq!(n, out.units);
            if codec.framing() == Framing::Handshake && out.reassembled as usize + n > 0 {
                assert_eq!(
                    out.reassembled as usize + n,
                    1,
                    "two handshake frames at once"
                );
                assert_eq!(
                    out.consumed, out.run.end,
                    "did not stop after the handshake frame"
                );
            }
            if !got.is_empty() && d.codec().framing() != then {
                d.set_framing(then);
                assert_eq!(d.codec(), Codec::new(then, max));
            }
            base += out.consumed;
            data = &data[out.consumed..];
            if data.is_empty() {
                break;
            }
        }
        // Everything pushed was read: what is held is exactly the
        // incomplete unit's received bytes, and no bad header is complete.
        assert_eq!(got.as_slice(), &expected.units[..got.len()]);
        let whole_end = got.last().map_or(0, |u| u.end);
        assert_eq!(d.buffered(), pushed - whole_end, "buffered bytes");
        if let Some((at, _)) = &expected.bad {
            assert!(at + HEADER_LEN > pushed, "a bad header not refused at once");
        }
        assert!(
            d.capacity() <= largest(expected, pushed).max(spare),
            "memory beyond the unit"
        );
    }
    assert_eq!(got, expected.units);
    (got, None)
}

/// The largest unit whose header (all 4 bytes) was among the first `pushed`
/// bytes and passed: all the memory a decoder may hold (at least a header).
fn largest(expected: &DocumentedUnits, pushed: usize) -> usize {
    let mut most = HEADER_LEN;
    for unit in &expected.units {
        if unit.start + HEADER_LEN <= pushed {
            most = most.max(unit.len());
        }
    }
    if let Some(len) = expected.next_len {
        if expected.whole() + HEADER_LEN <= pushed {
            most = most.max(len);
        }
    }
    most
}
