//! What the targets assert, written from `docs/PROTOCOL.md` rather than from
//! stcp-proto's code: the order of a connection's events, sticky errors,
//! the handshake's documented checks, how headers read and records tie into
//! frames (a reference receiver, [`RecordWalker`]), and that every frame a
//! receiver accepted is byte for byte what the genuine peer seals for it.

use crate::input::RECORD;
use stcp_proto::handshake::{HANDSHAKE_MAX_LEN, HELLO_PREFIX_LEN, MAGIC, VERSION};
use stcp_proto::{
    CipherState, Connection, Error, Event, Framing, RecordType, RekeyPolicy, FRAME_HEADER_LEN,
};
use std::ops::Range;

/// Noise message length of both handshake messages: `e` and a tag.
pub const NOISE_MESSAGE_LEN: usize = 48;

/// Everything one connection reported, checked as it arrives.
#[derive(Debug, Default)]
pub struct EventLog {
    /// `Connected` was reported.
    pub connected: bool,
    /// `Closed` was reported.
    pub closed: bool,
    /// `Frame` payloads, in order.
    pub frames: Vec<Vec<u8>>,
    /// `Frame` and `Closed` events in order: one per frame whose final
    /// record opened, one for the close.
    pub opened: Vec<Event>,
}

impl EventLog {
    /// Takes `conn`'s pending events: `Connected` at most once and first,
    /// nothing after `Closed`.
    pub fn take(&mut self, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            match &event {
                Event::Connected => {
                    assert!(!self.connected, "Connected reported twice");
                    self.connected = true;
                }
                Event::Frame(payload) => {
                    assert!(self.connected, "a frame before Connected");
                    assert!(!self.closed, "a frame after the peer's close");
                    self.frames.push(payload.clone());
                    self.opened.push(event);
                }
                Event::Closed => {
                    assert!(self.connected, "Closed before Connected");
                    assert!(!self.closed, "Closed reported twice");
                    self.closed = true;
                    self.opened.push(event);
                }
            }
        }
        assert_eq!(conn.is_peer_closed(), self.closed);
    }
}

/// A call's result agrees with the connection's state: an error is kept and
/// repeated, success means no error.
pub fn assert_sticky(conn: &Connection, result: &Result<(), Error>) {
    match result {
        Ok(()) => assert_eq!(conn.error(), None, "Ok from a failed connection"),
        Err(e) => assert_eq!(conn.error(), Some(e), "error not kept"),
    }
}

/// Feeds `chunks` to `conn` one by one, checking each result is sticky and
/// that nothing more is accepted after an error.
pub fn feed(conn: &mut Connection, log: &mut EventLog, chunks: &[&[u8]]) {
    let mut failed: Option<Error> = None;
    for chunk in chunks {
        let result = conn.handle_input(crate::fixture::start(), chunk);
        assert_sticky(conn, &result);
        if let Some(first) = &failed {
            assert_eq!(result.as_ref(), Err(first), "error changed");
        }
        failed = result.err();
        log.take(conn);
    }
}

/// How the first handshake frame of a stream reads (section 3.4).
pub enum FirstFrame<'a> {
    /// The stream ends before the frame does.
    Incomplete,
    /// The header announces more than `HANDSHAKE_MAX_LEN`.
    TooLarge(Error),
    /// The frame's payload and the offset just past it.
    Complete(&'a [u8], usize),
}

/// Reads the first handshake frame of `stream`.
pub fn first_handshake_frame(stream: &[u8]) -> FirstFrame<'_> {
    let Some(header) = stream.get(..FRAME_HEADER_LEN) else {
        return FirstFrame::Incomplete;
    };
    let len = u32::from_be_bytes(header.try_into().unwrap()) as usize;
    if len > HANDSHAKE_MAX_LEN {
        return FirstFrame::TooLarge(Error::HandshakeTooLarge {
            len,
            max: HANDSHAKE_MAX_LEN,
        });
    }
    match stream.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + len) {
        Some(payload) => FirstFrame::Complete(payload, FRAME_HEADER_LEN + len),
        None => FirstFrame::Incomplete,
    }
}

/// The error the server's documented checks give `hello` before any Noise
/// processing, in their documented order; `None` when they all pass and
/// Noise decides.
pub fn hello_precheck(hello: &[u8], server_has_psk: bool) -> Option<Error> {
    if !hello.starts_with(&MAGIC) {
        return Some(Error::NotStcp);
    }
    if hello.len() < HELLO_PREFIX_LEN {
        return Some(Error::BadHandshake);
    }
    if hello[4] != VERSION {
        return Some(Error::VersionMismatch {
            got: hello[4],
            ours: VERSION,
        });
    }
    match (hello[5], server_has_psk) {
        (0, false) | (1, true) => {}
        (0, true) => return Some(Error::PskRequired),
        (1, false) => return Some(Error::PskNotConfigured),
        (other, _) => return Some(Error::UnknownPattern(other)),
    }
    if hello[6..HELLO_PREFIX_LEN] != [0, 0] || hello.len() != HELLO_PREFIX_LEN + NOISE_MESSAGE_LEN {
        return Some(Error::BadHandshake);
    }
    None
}

/// An error Noise itself may give a well-formed handshake message.
pub fn is_noise_error(e: &Error) -> bool {
    matches!(e, Error::HandshakeAuthFailed | Error::BadHandshake)
}

/// A record's header as docs/PROTOCOL.md section 4 reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocumentedHeader {
    /// The record type (0 Data, 1 Close, 2 Begin, 3 Continue, 4 End).
    pub kind: RecordType,
    /// Plaintext bytes: the length field minus the tag.
    pub payload_len: usize,
    /// What a `Begin` header announces: the whole frame's payload.
    pub announced: Option<usize>,
}

impl DocumentedHeader {
    /// Bytes of the header (the associated data): 8 for `Begin`, else 4.
    pub fn header_len(&self) -> usize {
        documented_header_len(self.kind)
    }

    /// Bytes of the whole record.
    pub fn record_len(&self) -> usize {
        self.header_len() + self.payload_len + TAG_BYTES
    }
}

/// Bytes of a record's tag.
pub const TAG_BYTES: usize = 16;

/// Header bytes of a record of `kind`: the type-and-length word, and for
/// `Begin` the frame's length after it.
pub fn documented_header_len(kind: RecordType) -> usize {
    match kind {
        RecordType::Begin => 8,
        _ => 4,
    }
}

/// The rules a record's 4-byte header word must pass before anything is
/// buffered for it, in their documented order: a known type (0-4); a length
/// field of at least the tag; at most 16 KiB of payload (`RecordTooLarge`);
/// a Close empty, a `Begin`, `Continue` or `End` not empty (`BadLength`); a
/// `Data` frame at most `max` (`FrameTooLarge`). Returns the type and the
/// payload length.
pub fn documented_record_word(word: [u8; 4], max: usize) -> Result<(RecordType, usize), Error> {
    let raw = u32::from_be_bytes(word);
    let kind = match raw >> 28 {
        0 => RecordType::Data,
        1 => RecordType::Close,
        2 => RecordType::Begin,
        3 => RecordType::Continue,
        4 => RecordType::End,
        other => return Err(Error::BadRecordType(other as u8)),
    };
    let field = (raw & 0x0fff_ffff) as usize;
    let Some(payload) = field.checked_sub(TAG_BYTES) else {
        return Err(Error::BadLength);
    };
    if payload > RECORD {
        return Err(Error::RecordTooLarge { len: payload });
    }
    match kind {
        RecordType::Close if payload > 0 => Err(Error::BadLength),
        RecordType::Begin | RecordType::Continue | RecordType::End if payload == 0 => {
            Err(Error::BadLength)
        }
        RecordType::Data if payload > max => Err(Error::FrameTooLarge { len: payload, max }),
        _ => Ok((kind, payload)),
    }
}

/// The whole header at the start of `record`: the word's rules, then for a
/// `Begin` its frame length (bytes 4-7), at most `max` (`FrameTooLarge`) and
/// more than the `Begin` itself carries (`FrameLength`). Fewer bytes than
/// the header is `BadLength`.
pub fn documented_record_header(record: &[u8], max: usize) -> Result<DocumentedHeader, Error> {
    let Some(word) = record.first_chunk::<4>() else {
        return Err(Error::BadLength);
    };
    let (kind, payload_len) = documented_record_word(*word, max)?;
    let mut header = DocumentedHeader {
        kind,
        payload_len,
        announced: None,
    };
    if kind == RecordType::Begin {
        let Some(bytes) = record.get(4..8) else {
            return Err(Error::BadLength);
        };
        let announced = u32::from_be_bytes(bytes.try_into().unwrap()) as usize;
        if announced > max {
            return Err(Error::FrameTooLarge {
                len: announced,
                max,
            });
        }
        if announced <= payload_len {
            return Err(Error::FrameLength);
        }
        header.announced = Some(announced);
    }
    Ok(header)
}

/// The records a sender cuts a frame of `len` payload bytes into, as
/// (type, payload length): one `Data` record up to 16 KiB, otherwise a
/// `Begin`, `Continue`s and an `End`, each full (16 KiB) but the last.
pub fn documented_frame_records(len: usize) -> Vec<(RecordType, usize)> {
    if len <= RECORD {
        return vec![(RecordType::Data, len)];
    }
    let mut out = vec![(RecordType::Begin, RECORD)];
    let mut left = len - RECORD;
    while left > RECORD {
        out.push((RecordType::Continue, RECORD));
        left -= RECORD;
    }
    out.push((RecordType::End, left));
    out
}

/// How records tie into frames (docs/PROTOCOL.md section 4), one record
/// at a time: inside a frame only `Continue` (leaving some of the frame for
/// later) and `End` (carrying exactly the rest) may come, else
/// `MissingFinal` (`Data`, `Begin`, `Close`) or `FrameLength`; outside a
/// frame `Continue` and `End` are `MissingBegin`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DocumentedSequence {
    /// Payload bytes the open frame still owes (`None`: between frames).
    pub owed: Option<usize>,
}

impl DocumentedSequence {
    /// Whether a record with `header` may come next.
    pub fn check(&self, header: &DocumentedHeader) -> Result<(), Error> {
        let n = header.payload_len;
        match (self.owed, header.kind) {
            (Some(_), RecordType::Data | RecordType::Begin | RecordType::Close) => {
                Err(Error::MissingFinal)
            }
            (Some(owed), RecordType::Continue) if n >= owed => Err(Error::FrameLength),
            (Some(owed), RecordType::End) if n != owed => Err(Error::FrameLength),
            (None, RecordType::Continue | RecordType::End) => Err(Error::MissingBegin),
            _ => Ok(()),
        }
    }

    /// Moves past a record [`DocumentedSequence::check`] accepted.
    pub fn advance(&mut self, header: &DocumentedHeader) {
        self.owed = match (self.owed, header.kind) {
            (_, RecordType::Begin) => Some(header.announced.unwrap() - header.payload_len),
            (Some(owed), RecordType::Continue) => Some(owed - header.payload_len),
            _ => None,
        };
    }
}

/// One record a receiver must open, found by [`RecordWalker::walk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalkedRecord {
    /// Where it is in the stream walked.
    pub span: Range<usize>,
    /// Its header.
    pub header: DocumentedHeader,
    /// Its plaintext.
    pub payload: Vec<u8>,
}

/// Where a walk stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkEnd {
    /// Every byte belonged to a record that opened.
    Clean,
    /// A record starting at this offset is not whole yet (its header word,
    /// if complete, passed).
    Incomplete(usize),
    /// The record starting at this offset is refused with this error.
    Refused(usize, Error),
}

/// A stream of records as a receiver must read it: see [`RecordWalker`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walked {
    /// The records that open, in order.
    pub records: Vec<WalkedRecord>,
    /// What the receiver reports, in order (`Event::Frame` once a frame's
    /// final record opens, `Event::Closed`), each with the offset where the
    /// record that completes it ends.
    pub events: Vec<(Event, usize)>,
    /// Where it stopped.
    pub end: WalkEnd,
}

impl Walked {
    /// The error a receiver must have stopped with, if any.
    pub fn error(&self) -> Option<&Error> {
        match &self.end {
            WalkEnd::Refused(_, e) => Some(e),
            _ => None,
        }
    }

    /// Bytes of the records that opened.
    pub fn opened_len(&self) -> usize {
        self.records.last().map_or(0, |r| r.span.end)
    }

    /// Whether the peer's Close opened.
    pub fn closed(&self) -> bool {
        matches!(self.events.last(), Some((Event::Closed, _)))
    }

    /// Whether an end of stream here is a clean one: the Close opened and
    /// nothing is left over.
    pub fn clean_eof(&self) -> bool {
        self.closed() && self.end == WalkEnd::Clean
    }

    /// The events alone.
    pub fn event_list(&self) -> Vec<Event> {
        self.events.iter().map(|(e, _)| e.clone()).collect()
    }
}

/// A reference receiver written from docs/PROTOCOL.md section 4, not from
/// stcp-proto's record layer: it reads each header with the documented
/// rules, refuses anything after a Close, ties records into frames with
/// [`DocumentedSequence`], and only then authenticates the record with the
/// bare AEAD (Noise's CipherState at the next counter, the header as
/// associated data), rekeying on the documented schedule. Whatever a real
/// receiver opens and reports must be what this one does.
pub struct RecordWalker<'a> {
    cipher: &'a mut CipherState,
    policy: RekeyPolicy,
    since: (u64, u64),
    max: usize,
    sequence: DocumentedSequence,
    closed: bool,
    frame: Vec<u8>,
}

impl<'a> RecordWalker<'a> {
    /// A receiver at the start of a direction keyed by `cipher` (at counter
    /// 0), accepting frames of up to `max` payload bytes.
    pub fn new(cipher: &'a mut CipherState, policy: RekeyPolicy, max: usize) -> Self {
        RecordWalker {
            cipher,
            policy,
            since: (0, 0),
            max,
            sequence: DocumentedSequence::default(),
            closed: false,
            frame: Vec::new(),
        }
    }

    /// Reads `stream` (the records after the handshake) up to its end or
    /// the first record refused.
    pub fn walk(mut self, stream: &[u8]) -> Walked {
        let mut walked = Walked {
            records: Vec::new(),
            events: Vec::new(),
            end: WalkEnd::Clean,
        };
        let mut pos = 0;
        while pos < stream.len() {
            match self.next(&stream[pos..]) {
                Ok(Some((header, payload))) => {
                    let span = pos..pos + header.record_len();
                    pos = span.end;
                    match header.kind {
                        RecordType::Data => {
                            walked.events.push((Event::Frame(payload.clone()), pos))
                        }
                        RecordType::End => walked
                            .events
                            .push((Event::Frame(std::mem::take(&mut self.frame)), pos)),
                        RecordType::Close => walked.events.push((Event::Closed, pos)),
                        _ => {}
                    }
                    walked.records.push(WalkedRecord {
                        span,
                        header,
                        payload,
                    });
                }
                Ok(None) => {
                    walked.end = WalkEnd::Incomplete(pos);
                    break;
                }
                Err(e) => {
                    walked.end = WalkEnd::Refused(pos, e);
                    break;
                }
            }
        }
        walked
    }

    /// The record at the start of `rest`: `Ok(None)` while it is not whole.
    fn next(&mut self, rest: &[u8]) -> Result<Option<(DocumentedHeader, Vec<u8>)>, Error> {
        let Some(word) = rest.first_chunk::<4>() else {
            return Ok(None);
        };
        let (kind, payload_len) = documented_record_word(*word, self.max)?;
        let len = documented_header_len(kind) + payload_len + TAG_BYTES;
        let Some(record) = rest.get(..len) else {
            return Ok(None);
        };
        if self.closed {
            return Err(Error::RecordAfterClose);
        }
        let header = documented_record_header(record, self.max)?;
        self.sequence.check(&header)?;
        let (aad, rest) = record.split_at(header.header_len());
        let (body, tag) = rest.split_at(payload_len);
        let mut payload = body.to_vec();
        self.cipher
            .decrypt_with_ad(aad, &mut payload, tag.try_into().unwrap())
            .map_err(|_| Error::BadTag)?;
        self.sequence.advance(&header);
        match kind {
            RecordType::Begin | RecordType::Continue | RecordType::End => {
                self.frame.extend_from_slice(&payload)
            }
            RecordType::Close => self.closed = true,
            RecordType::Data => {}
        }
        // Rekey on the documented schedule (docs/PROTOCOL.md 4.2).
        self.since.0 += 1;
        self.since.1 += payload_len as u64;
        if self.since.0 >= self.policy.max_records || self.since.1 >= self.policy.max_bytes {
            self.cipher.rekey();
            self.since = (0, 0);
        }
        Ok(Some((header, payload)))
    }
}

/// A receiver of `records` (the stream after the handshake), with the
/// events in `log`, read it as the reference walk says: the same frames
/// and close in the same order, and the same error, if any.
pub fn assert_walked(conn: &Connection, log: &EventLog, walked: &Walked) {
    assert_eq!(
        log.opened,
        walked.event_list(),
        "the receiver reported other frames than the documented reading"
    );
    assert_eq!(
        conn.error(),
        walked.error(),
        "the receiver stopped otherwise than the documented reading"
    );
}

/// Authentication held: each frame and close the receiver reported (the
/// `walked` events) is one the genuine peer sent. The first ones are the
/// genuine prefix the input asked for (`known`, the events they stand
/// for); each later one must be exactly what `reference`, an established
/// connection standing for the genuine peer right after that prefix,
/// seals for the same event: its records byte for byte, in `records`, the
/// stream after the handshake.
pub fn assert_genuine_records(
    records: &[u8],
    walked: &Walked,
    known: &[Event],
    reference: &mut Connection,
) {
    let mut start = 0;
    for (k, (event, end)) in walked.events.iter().enumerate() {
        let wire = &records[start..*end];
        start = *end;
        if let Some(genuine) = known.get(k) {
            assert_eq!(event, genuine, "genuine frame {k} opened to something else");
            continue;
        }
        match event {
            Event::Frame(payload) => reference.send_frame(payload).expect("reference sends"),
            Event::Closed => reference.close().expect("reference closes"),
            Event::Connected => unreachable!("not a record event"),
        }
        let sealed = reference.poll_transmit().to_vec();
        reference.advance_transmit(sealed.len());
        assert_eq!(
            sealed, wire,
            "frame {k} was opened but is not what the genuine peer seals"
        );
    }
}

/// What the stream ending (EOF) must do: repeat an earlier error, succeed
/// when the stream ended cleanly (`clean`), or fail as truncated.
pub fn assert_eof(conn: &mut Connection, clean: bool) {
    let before = conn.error().cloned();
    let result = conn.handle_eof();
    match before {
        Some(e) => assert_eq!(result, Err(e), "EOF changed the error"),
        None if clean => assert_eq!(result, Ok(()), "a clean end reported as an error"),
        None => assert_eq!(result, Err(Error::Truncated), "a cut stream not reported"),
    }
    assert_sticky(conn, &result);
}

/// The whole length (header included) of the unit a 4-byte header announces
/// under `framing` with payload limit `max`, read from the documented
/// header formats (docs/PROTOCOL.md), not from the codec: handshake frames
/// and plain frames are a big-endian length; a record's header word is the
/// type in the top 4 bits and the length of ciphertext + 16-byte tag in the
/// low 28 ([`documented_record_word`]), and a `Begin` record's header is 4
/// bytes longer.
pub fn documented_unit_len(framing: Framing, max: usize, header: [u8; 4]) -> Result<usize, Error> {
    let word = u32::from_be_bytes(header) as usize;
    match framing {
        Framing::Handshake if word > HANDSHAKE_MAX_LEN => Err(Error::HandshakeTooLarge {
            len: word,
            max: HANDSHAKE_MAX_LEN,
        }),
        Framing::Frames if word > max => Err(Error::FrameTooLarge { len: word, max }),
        Framing::Handshake | Framing::Frames => Ok(4 + word),
        Framing::Records => {
            let (kind, payload) = documented_record_word(header, max)?;
            Ok(documented_header_len(kind) + payload + TAG_BYTES)
        }
    }
}

/// How a stream reads unit by unit under the documented header formats.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DocumentedUnits {
    /// The whole units from the start, in order.
    pub units: Vec<Range<usize>>,
    /// Where a bad header starts, and its error; reading stops there.
    pub bad: Option<(usize, Error)>,
    /// The whole length of the incomplete unit at the end, once its header is there.
    pub next_len: Option<usize>,
}

impl DocumentedUnits {
    /// Reads `stream`: the first unit under `first`, every later one under
    /// `then` (a handshake frame, then records; or one framing throughout).
    pub fn read(stream: &[u8], first: Framing, then: Framing, max: usize) -> Self {
        let mut out = DocumentedUnits::default();
        let mut pos = 0;
        while let Some(header) = stream.get(pos..pos + 4) {
            let framing = if out.units.is_empty() { first } else { then };
            match documented_unit_len(framing, max, header.try_into().unwrap()) {
                Err(e) => {
                    out.bad = Some((pos, e));
                    break;
                }
                Ok(len) if pos + len <= stream.len() => {
                    out.units.push(pos..pos + len);
                    pos += len;
                }
                Ok(len) => {
                    out.next_len = Some(len);
                    break;
                }
            }
        }
        out
    }

    /// End of the last whole unit.
    pub fn whole(&self) -> usize {
        self.units.last().map_or(0, |u| u.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_limits_are_the_protocol_crate_s() {
        assert_eq!(RECORD, stcp_proto::MAX_RECORD_PAYLOAD);
        assert_eq!(TAG_BYTES, stcp_proto::TAG_LEN);
        assert_eq!(
            documented_header_len(RecordType::Begin),
            stcp_proto::BEGIN_HEADER_LEN
        );
    }

    #[test]
    fn frames_split_into_full_records_but_the_last() {
        use RecordType::*;
        assert_eq!(documented_frame_records(0), vec![(Data, 0)]);
        assert_eq!(documented_frame_records(RECORD), vec![(Data, RECORD)]);
        assert_eq!(
            documented_frame_records(RECORD + 1),
            vec![(Begin, RECORD), (End, 1)]
        );
        assert_eq!(
            documented_frame_records(3 * RECORD),
            vec![(Begin, RECORD), (Continue, RECORD), (End, RECORD)]
        );
    }

    #[test]
    fn the_sequence_rules() {
        let h = |kind, payload_len, announced| DocumentedHeader {
            kind,
            payload_len,
            announced,
        };
        let mut s = DocumentedSequence::default();
        assert_eq!(
            s.check(&h(RecordType::End, 1, None)),
            Err(Error::MissingBegin)
        );
        let begin = h(RecordType::Begin, 10, Some(30));
        s.advance(&begin);
        assert_eq!(
            s.check(&h(RecordType::Data, 1, None)),
            Err(Error::MissingFinal)
        );
        assert_eq!(
            s.check(&h(RecordType::Close, 0, None)),
            Err(Error::MissingFinal)
        );
        assert_eq!(
            s.check(&h(RecordType::Continue, 20, None)),
            Err(Error::FrameLength)
        );
        assert_eq!(
            s.check(&h(RecordType::End, 19, None)),
            Err(Error::FrameLength)
        );
        assert_eq!(s.check(&h(RecordType::End, 20, None)), Ok(()));
        s.advance(&h(RecordType::Continue, 19, None));
        assert_eq!(s.owed, Some(1));
    }
}
