//! What the targets assert, written from `docs/PROTOCOL.md` rather than from
//! stcp-proto's code: the order of a connection's events, sticky errors,
//! the handshake's documented checks, and that every record a receiver
//! accepted is byte for byte what the genuine peer seals for that payload.

use stcp_proto::handshake::{HANDSHAKE_MAX_LEN, HELLO_PREFIX_LEN, MAGIC, VERSION};
use stcp_proto::{
    Connection, Error, Event, Framing, RecordHeader, FRAME_HEADER_LEN, RECORD_HEADER_LEN,
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
    /// `Frame` and `Closed` events in order: one per record opened.
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

/// The spans of the whole records at the start of `stream`, read with the
/// receiver's payload limit, up to the first bad or incomplete one.
pub fn record_spans(stream: &[u8], max_payload: usize) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut pos = 0;
    while let Some(header) = stream.get(pos..pos + RECORD_HEADER_LEN) {
        let Ok(header) = RecordHeader::parse(header.try_into().unwrap(), max_payload) else {
            break;
        };
        let end = pos + header.record_len();
        if end > stream.len() {
            break;
        }
        spans.push(pos..end);
        pos = end;
    }
    spans
}

/// Authentication held: each record the receiver opened (`opened`, in
/// order) is one the genuine peer sent. The first ones are the genuine
/// prefix the input asked for (`known`, the events they stand for); each
/// later one must be exactly what `reference`, an established connection
/// standing for the genuine peer right after that prefix, seals for the
/// same event. The records are read from `records`, the stream after the
/// handshake.
pub fn assert_genuine_records(
    records: &[u8],
    max_payload: usize,
    opened: &[Event],
    known: &[Event],
    reference: &mut Connection,
) {
    let spans = record_spans(records, max_payload);
    assert!(
        spans.len() >= opened.len(),
        "{} records opened but the stream holds {} whole ones",
        opened.len(),
        spans.len()
    );
    for (k, (event, span)) in opened.iter().zip(spans).enumerate() {
        if let Some(genuine) = known.get(k) {
            assert_eq!(
                event, genuine,
                "genuine record {k} opened to something else"
            );
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
            sealed, &records[span],
            "record {k} was opened but is not what the genuine peer seals"
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

/// After the peer's authenticated close, a further record is refused from
/// its header or as a record after close, never decrypted.
pub fn assert_nothing_after_close(conn: &Connection, log: &EventLog) {
    if let (true, Some(e)) = (log.closed, conn.error()) {
        assert!(
            matches!(
                e,
                Error::RecordAfterClose
                    | Error::BadRecordType(_)
                    | Error::BadLength
                    | Error::FrameTooLarge { .. }
            ),
            "a record after the close failed with {e:?}"
        );
    }
}

/// Bytes of `stream` taken by the records `log` reports opened.
pub fn opened_len(stream: &[u8], max_payload: usize, log: &EventLog) -> usize {
    record_spans(stream, max_payload)
        .get(..log.opened.len())
        .and_then(|spans| spans.last())
        .map_or(0, |span| span.end)
}

/// The whole length (header included) of the unit a 4-byte header announces
/// under `framing` with payload limit `max`, read from the documented
/// header formats (docs/PROTOCOL.md), not from the codec: handshake frames
/// and plain frames are a big-endian length; a record header is the type in
/// the top 4 bits (0 data, 1 close) and the length of ciphertext + 16-byte
/// tag in the low 28, its payload limit capped by what 28 bits can carry.
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
            let kind = header[0] >> 4;
            if kind > 1 {
                return Err(Error::BadRecordType(kind));
            }
            let body = word & 0x0fff_ffff;
            if body < 16 {
                return Err(Error::BadLength);
            }
            let max = max.min((1 << 28) - 1 - 16);
            if body - 16 > max {
                return Err(Error::FrameTooLarge {
                    len: body - 16,
                    max,
                });
            }
            Ok(4 + body)
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
