//! The one reader of peer bytes: every unit on an STCP or TCP-mode stream
//! (handshake frame, record, plain frame) starts with a 4-byte header that
//! gives its length, and this module is the only place that reads one.
//!
//! - [`Codec`]: a framing plus its frame limit; turns a header into the
//!   unit's whole length ([`Codec::unit_len`]) with every limit checked, and
//!   walks a buffer over whole units ([`Codec::split`], [`Codec::units`]).
//!   Stateless, `Copy`, allocation-free.
//! - [`FrameSequence`]: the rules that tie records into frames, record by
//!   record; [`frame_records`] splits a frame into records.
//! - [`Decoder`]: the incremental, zero-copy decoder built on it. Whole units
//!   come back in place in the caller's buffer; only a unit cut by the end of
//!   a receive is copied, into one buffer that grows with the bytes actually
//!   received (never with what a header claims) and only after the header
//!   has passed the limits. Holds at most one record (16 KiB of payload).
//! - [`FrameStream`]: plain-frame boundaries tracked while the bytes are
//!   passed on as they arrive (TCP mode's cut-through echo).
//!
//! The header formats (see `docs/PROTOCOL.md`):
//! - handshake frame and plain frame: 4-byte big-endian payload length;
//! - record: record type in the top 4 bits, in the low 28 the length of the
//!   ciphertext + 16-byte tag; a `Begin` record's header has 4 more bytes, the
//!   frame's whole length. See [`RecordHeader`].

use crate::crypto::AEAD_TAG_LEN;
use crate::Error;
use std::ops::Range;

/// Bytes in the header every unit starts with.
pub const HEADER_LEN: usize = 4;
/// Bytes in a frame header (handshake or plain frame).
pub const FRAME_HEADER_LEN: usize = HEADER_LEN;
/// Bytes in the header word every record starts with (type and length).
pub const RECORD_HEADER_LEN: usize = HEADER_LEN;
/// Bytes in a [`RecordType::Begin`] record's header: the header word and the
/// frame's whole length.
pub const BEGIN_HEADER_LEN: usize = HEADER_LEN + 4;
/// Bytes in a record's authentication tag.
pub const TAG_LEN: usize = AEAD_TAG_LEN;
/// Header plus tag: what a one-record frame (a [`RecordType::Data`] record)
/// adds to its payload.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + TAG_LEN;
/// Largest payload one record carries: 16 KiB, TLS 1.3's record limit. A
/// larger frame is carried by several records.
pub const MAX_RECORD_PAYLOAD: usize = 16 * 1024;
/// Largest record on the wire (a full [`RecordType::Begin`] record).
pub const MAX_RECORD_LEN: usize = BEGIN_HEADER_LEN + MAX_RECORD_PAYLOAD + TAG_LEN;
/// Largest frame the format can announce (a 32-bit length), whatever the
/// configuration.
pub const MAX_FRAME_LEN: usize = u32::MAX as usize;
/// Default largest payload a frame may carry: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;
/// Largest handshake frame payload either side accepts, checked from the header.
pub const HANDSHAKE_MAX_LEN: usize = 256;

const LENGTH_MASK: u32 = (1 << 28) - 1;
const TYPE_SHIFT: u32 = 28;

/// Reads a plain frame header and returns the payload length it announces,
/// refusing a length above `max` ([`Error::FrameTooLarge`]) before the caller
/// buffers anything for it.
#[inline]
pub fn frame_len(header: [u8; FRAME_HEADER_LEN], max: usize) -> Result<usize, Error> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(Error::FrameTooLarge { len, max });
    }
    Ok(len)
}

/// Writes the header of a frame with `len` payload bytes.
#[inline]
pub fn frame_header(len: usize) -> [u8; FRAME_HEADER_LEN] {
    debug_assert!(len <= u32::MAX as usize);
    (len as u32).to_be_bytes()
}

/// Reads a handshake frame header and returns the payload length it
/// announces, refusing one over [`HANDSHAKE_MAX_LEN`]
/// ([`Error::HandshakeTooLarge`]) before anything is buffered.
#[inline]
pub fn handshake_frame_len(header: [u8; FRAME_HEADER_LEN]) -> Result<usize, Error> {
    let len = u32::from_be_bytes(header) as usize;
    if len > HANDSHAKE_MAX_LEN {
        return Err(Error::HandshakeTooLarge {
            len,
            max: HANDSHAKE_MAX_LEN,
        });
    }
    Ok(len)
}

/// What a record carries, and where it sits in its frame.
///
/// A frame of at most [`MAX_RECORD_PAYLOAD`] bytes is one `Data` record; a
/// longer one is a `Begin` record (which announces the frame's length), any
/// number of `Continue` records, and an `End` record. `Data` and `End` are a
/// frame's final record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordType {
    /// A whole frame in one record.
    Data = 0,
    /// The authenticated end of this direction; its payload is empty.
    Close = 1,
    /// The first record of a frame carried by several; its 8-byte header
    /// announces the frame's whole payload length.
    Begin = 2,
    /// A record in the middle of a frame.
    Continue = 3,
    /// The final record of a frame that a `Begin` record started.
    End = 4,
}

impl RecordType {
    #[inline]
    fn from_bits(bits: u8) -> Result<Self, Error> {
        match bits {
            0 => Ok(RecordType::Data),
            1 => Ok(RecordType::Close),
            2 => Ok(RecordType::Begin),
            3 => Ok(RecordType::Continue),
            4 => Ok(RecordType::End),
            other => Err(Error::BadRecordType(other)),
        }
    }

    /// Bytes of this type's header (the associated data of its record).
    #[inline]
    pub fn header_len(self) -> usize {
        match self {
            RecordType::Begin => BEGIN_HEADER_LEN,
            _ => RECORD_HEADER_LEN,
        }
    }

    /// Whether a record of this type ends its frame (`Data`, `End`).
    #[inline]
    pub fn ends_frame(self) -> bool {
        matches!(self, RecordType::Data | RecordType::End)
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The record's type.
    pub kind: RecordType,
    /// Plaintext bytes the record carries (its length field minus the tag).
    pub payload_len: usize,
    /// The whole frame's payload length: announced by a `Begin` record, the
    /// record's own payload for `Data`, 0 for the others (not in their header).
    pub frame_len: usize,
}

impl RecordHeader {
    /// The header of a frame of `frame_len` bytes' first record, which
    /// carries `payload_len` of them: `Data` when that is all of it.
    #[inline]
    pub fn first(frame_len: usize, payload_len: usize) -> RecordHeader {
        let kind = if payload_len >= frame_len {
            RecordType::Data
        } else {
            RecordType::Begin
        };
        RecordHeader {
            kind,
            payload_len,
            frame_len,
        }
    }

    /// The header of a record of `kind` (not `Begin`, which needs
    /// [`RecordHeader::first`]) carrying `payload_len` bytes.
    #[inline]
    pub fn new(kind: RecordType, payload_len: usize) -> RecordHeader {
        RecordHeader {
            kind,
            payload_len,
            frame_len: if kind == RecordType::Data {
                payload_len
            } else {
                0
            },
        }
    }

    /// Reads the header word (a record's first 4 bytes): the type and the
    /// payload length, with every rule a record obeys on its own checked, in
    /// this order, before the caller buffers anything for the record: type
    /// known ([`Error::BadRecordType`]); length field at least a tag
    /// ([`Error::BadLength`]); payload at most [`MAX_RECORD_PAYLOAD`]
    /// ([`Error::RecordTooLarge`]); a Close empty, a `Begin`, `Continue` or
    /// `End` not empty ([`Error::BadLength`]); a `Data` frame at most
    /// `max_frame` ([`Error::FrameTooLarge`]).
    #[inline]
    pub fn peek(
        word: [u8; RECORD_HEADER_LEN],
        max_frame: usize,
    ) -> Result<(RecordType, usize), Error> {
        let raw = u32::from_be_bytes(word);
        let kind = RecordType::from_bits((raw >> TYPE_SHIFT) as u8)?;
        let body = (raw & LENGTH_MASK) as usize;
        let payload_len = body.checked_sub(TAG_LEN).ok_or(Error::BadLength)?;
        if payload_len > MAX_RECORD_PAYLOAD {
            return Err(Error::RecordTooLarge { len: payload_len });
        }
        match kind {
            RecordType::Close if payload_len != 0 => return Err(Error::BadLength),
            RecordType::Begin | RecordType::Continue | RecordType::End if payload_len == 0 => {
                return Err(Error::BadLength)
            }
            RecordType::Data if payload_len > max_frame => {
                return Err(Error::FrameTooLarge {
                    len: payload_len,
                    max: max_frame,
                })
            }
            _ => {}
        }
        Ok((kind, payload_len))
    }

    /// Decodes the whole header at the start of `record` (4 bytes, 8 for a
    /// `Begin` record): [`RecordHeader::peek`]'s checks, then for `Begin` a
    /// frame of at most `max_frame` ([`Error::FrameTooLarge`]) that is longer
    /// than this first record ([`Error::FrameLength`]). A `record` shorter
    /// than its header is [`Error::BadLength`].
    #[inline]
    pub fn parse(record: &[u8], max_frame: usize) -> Result<RecordHeader, Error> {
        let Some(word) = record.first_chunk::<RECORD_HEADER_LEN>() else {
            return Err(Error::BadLength);
        };
        let (kind, payload_len) = Self::peek(*word, max_frame)?;
        let mut header = RecordHeader::new(kind, payload_len);
        if kind == RecordType::Begin {
            let Some(announced) = record
                .get(RECORD_HEADER_LEN..BEGIN_HEADER_LEN)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
            else {
                return Err(Error::BadLength);
            };
            let frame_len = u32::from_be_bytes(announced) as usize;
            if frame_len > max_frame {
                return Err(Error::FrameTooLarge {
                    len: frame_len,
                    max: max_frame,
                });
            }
            if frame_len <= payload_len {
                return Err(Error::FrameLength);
            }
            header.frame_len = frame_len;
        }
        Ok(header)
    }

    /// Writes the header at the start of `buf` and returns its length. The
    /// payload must be at most [`MAX_RECORD_PAYLOAD`] and a `Begin` frame
    /// at most [`MAX_FRAME_LEN`] (a caller's bug otherwise: it panics).
    #[inline]
    pub fn write(&self, buf: &mut [u8]) -> usize {
        assert!(
            self.payload_len <= MAX_RECORD_PAYLOAD,
            "record payload too large"
        );
        let raw = ((self.kind as u32) << TYPE_SHIFT) | (self.payload_len + TAG_LEN) as u32;
        buf[..RECORD_HEADER_LEN].copy_from_slice(&raw.to_be_bytes());
        if self.kind == RecordType::Begin {
            let frame_len = u32::try_from(self.frame_len).expect("frame too large for its header");
            buf[RECORD_HEADER_LEN..BEGIN_HEADER_LEN].copy_from_slice(&frame_len.to_be_bytes());
        }
        self.kind.header_len()
    }

    /// Bytes of the header.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.kind.header_len()
    }

    /// Bytes of the whole record on the wire.
    #[inline]
    pub fn record_len(&self) -> usize {
        self.header_len() + self.payload_len + TAG_LEN
    }
}

/// Writes the header of a `kind` record carrying `payload_len` bytes into
/// the start of `buf` (not for `Begin`: use [`RecordHeader::first`]) and
/// returns its length, 4. The caller puts the payload after it and leaves 16
/// bytes after that for the tag, then calls
/// [`RecordSealer::seal`](crate::RecordSealer::seal).
#[inline]
pub fn write_record_header(buf: &mut [u8], kind: RecordType, payload_len: usize) -> usize {
    debug_assert!(
        kind != RecordType::Begin,
        "a Begin header needs the frame length"
    );
    RecordHeader::new(kind, payload_len).write(buf)
}

/// The records that carry a frame of `frame_len` payload bytes, in order:
/// one `Data` record up to [`MAX_RECORD_PAYLOAD`], otherwise `Begin`,
/// `Continue`..., `End`, each full but the last.
#[inline]
pub fn frame_records(frame_len: usize) -> FrameRecords {
    FrameRecords {
        frame_len,
        offset: 0,
        started: false,
    }
}

/// Bytes on the wire of a frame of `frame_len` payload bytes sent as
/// [`frame_records`] does.
#[inline]
pub fn sealed_frame_len(frame_len: usize) -> usize {
    let records = frame_len.div_ceil(MAX_RECORD_PAYLOAD).max(1);
    let extra = if records > 1 {
        BEGIN_HEADER_LEN - RECORD_HEADER_LEN
    } else {
        0
    };
    frame_len + records * RECORD_OVERHEAD + extra
}

/// Iterator of [`frame_records`]: each record's header and the offset of
/// its payload in the frame.
#[derive(Clone, Debug)]
pub struct FrameRecords {
    frame_len: usize,
    offset: usize,
    started: bool,
}

impl Iterator for FrameRecords {
    type Item = (RecordHeader, usize);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.started && self.offset >= self.frame_len {
            return None;
        }
        let offset = self.offset;
        let payload_len = (self.frame_len - offset).min(MAX_RECORD_PAYLOAD);
        let header = if !self.started {
            RecordHeader::first(self.frame_len, payload_len)
        } else if offset + payload_len == self.frame_len {
            RecordHeader::new(RecordType::End, payload_len)
        } else {
            RecordHeader::new(RecordType::Continue, payload_len)
        };
        self.started = true;
        self.offset += payload_len;
        Some((header, offset))
    }
}

/// Where a stream of records is between frames: the rules that tie records
/// into frames, checked record by record (see `docs/PROTOCOL.md` 4.1).
///
/// A sealer and an opener each keep one, so neither side can send or accept a
/// `Continue` without a `Begin`, a new frame before the last one's final
/// record, or records that overrun or fall short of the announced length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameSequence {
    /// Payload bytes still due in the frame a `Begin` started (`None`: between frames).
    remaining: Option<usize>,
}

impl FrameSequence {
    /// Checks that a record with `header` may come next, changing nothing:
    /// [`Error::MissingFinal`] for a `Data`, `Begin` or `Close` inside a frame,
    /// [`Error::MissingBegin`] for a `Continue` or `End` outside one,
    /// [`Error::FrameLength`] for one that overruns the frame or an `End` that
    /// leaves it short.
    #[inline]
    pub fn check(&self, header: &RecordHeader) -> Result<(), Error> {
        match (header.kind, self.remaining) {
            (RecordType::Data | RecordType::Begin | RecordType::Close, Some(_)) => {
                Err(Error::MissingFinal)
            }
            (RecordType::Continue | RecordType::End, None) => Err(Error::MissingBegin),
            (RecordType::Continue, Some(left)) if header.payload_len >= left => {
                Err(Error::FrameLength)
            }
            (RecordType::End, Some(left)) if header.payload_len != left => Err(Error::FrameLength),
            _ => Ok(()),
        }
    }

    /// Moves past a record [`FrameSequence::check`] accepted.
    #[inline]
    pub fn advance(&mut self, header: &RecordHeader) {
        self.remaining = match header.kind {
            RecordType::Begin => Some(header.frame_len - header.payload_len),
            RecordType::Continue => self.remaining.map(|left| left - header.payload_len),
            RecordType::Data | RecordType::Close | RecordType::End => None,
        };
    }

    /// Whether a frame is open (its final record has not come yet).
    #[inline]
    pub fn in_frame(&self) -> bool {
        self.remaining.is_some()
    }

    /// Payload bytes still due in the open frame (0 between frames).
    #[inline]
    pub fn remaining(&self) -> usize {
        self.remaining.unwrap_or(0)
    }
}

/// What a stream carries, and so how its headers are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// STCP handshake frames: 4-byte big-endian length + at most
    /// [`HANDSHAKE_MAX_LEN`] bytes (over: [`Error::HandshakeTooLarge`]).
    Handshake,
    /// STCP records: a header word (4-bit type + 28-bit length), 4 more
    /// header bytes for a `Begin` record, at most [`MAX_RECORD_PAYLOAD`]
    /// payload bytes; each record's own rules are checked from its header
    /// word ([`RecordHeader::peek`]).
    Records,
    /// Plain frames (TCP mode): 4-byte big-endian length + payload of at most
    /// `max_frame` (over: [`Error::FrameTooLarge`]).
    Frames,
}

/// Stateless header reader: a framing plus the largest frame accepted.
///
/// Every method only reads headers: no allocation, no panic on any input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    framing: Framing,
    max_frame: usize,
}

impl Codec {
    /// A codec for `framing` accepting frames of at most `max_frame` payload
    /// bytes (clamped to [`MAX_FRAME_LEN`], what a 32-bit length can say).
    /// Under [`Framing::Handshake`] the limit is kept (for a later
    /// [`Decoder::set_framing`]) but handshake frames are held to
    /// [`HANDSHAKE_MAX_LEN`].
    #[inline]
    pub fn new(framing: Framing, max_frame: usize) -> Codec {
        Codec {
            framing,
            max_frame: max_frame.min(MAX_FRAME_LEN),
        }
    }

    /// How this codec reads headers.
    #[inline]
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The largest frame payload accepted (after clamping, see [`Codec::new`]).
    #[inline]
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Whole length (header included) of the unit whose header starts with
    /// `header`, with every limit of the framing checked. An `Ok` length is
    /// at most [`MAX_RECORD_LEN`] for a record, `HEADER_LEN + max_frame`
    /// for a plain frame and `HEADER_LEN + HANDSHAKE_MAX_LEN` for a
    /// handshake frame.
    #[inline]
    pub fn unit_len(&self, header: [u8; HEADER_LEN]) -> Result<usize, Error> {
        match self.framing {
            Framing::Records => {
                let (kind, payload_len) = RecordHeader::peek(header, self.max_frame)?;
                Ok(kind.header_len() + payload_len + TAG_LEN)
            }
            Framing::Frames => Ok(HEADER_LEN + frame_len(header, self.max_frame)?),
            Framing::Handshake => Ok(HEADER_LEN + handshake_frame_len(header)?),
        }
    }

    /// Walks `buf` from its start over whole units, checking each header
    /// (including the header of a trailing incomplete unit, if its 4 bytes
    /// are there). `Err` is the first bad header's error.
    #[inline]
    pub fn split(&self, buf: &[u8]) -> Result<Split, Error> {
        let (split, bad) = self.scan(buf, usize::MAX);
        match bad {
            Some(e) => Err(e),
            None => Ok(split),
        }
    }

    /// Walks at most `max_units` whole units from the start of `buf`. Returns
    /// what it walked, and the error of the header it stopped at, if bad (the
    /// units before it are in the `Split`).
    #[inline]
    fn scan(&self, buf: &[u8], max_units: usize) -> (Split, Option<Error>) {
        let mut split = Split::default();
        while split.units < max_units {
            let rest = &buf[split.whole..];
            let Some(header) = rest.first_chunk::<HEADER_LEN>() else {
                break;
            };
            let len = match self.unit_len(*header) {
                Ok(len) => len,
                Err(e) => return (split, Some(e)),
            };
            if rest.len() < len {
                split.next_len = Some(len);
                break;
            }
            split.whole += len;
            split.units += 1;
        }
        (split, None)
    }

    /// Iterates the whole units of `buf` (which must start at a unit
    /// boundary), as ranges of `buf`, each header included; stops at the
    /// first incomplete unit; yields `Err` on a bad header (then stops).
    #[inline]
    pub fn units<'a>(&self, buf: &'a [u8]) -> Units<'a> {
        Units {
            codec: *self,
            buf,
            pos: 0,
            done: false,
        }
    }
}

/// What [`Codec::split`] found at the front of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Split {
    /// Bytes of whole units at the front of the buffer.
    pub whole: usize,
    /// How many whole units those are.
    pub units: usize,
    /// Whole length of the incomplete unit that follows them, once its header
    /// is complete (and passed the limits).
    pub next_len: Option<usize>,
}

/// The whole units of a buffer: see [`Codec::units`].
#[derive(Clone, Debug)]
pub struct Units<'a> {
    codec: Codec,
    buf: &'a [u8],
    pos: usize,
    done: bool,
}

impl Units<'_> {
    /// Offset in the buffer just past the last unit yielded: where the
    /// incomplete unit, or the bad header, starts once iteration ended.
    pub fn offset(&self) -> usize {
        self.pos
    }
}

impl Iterator for Units<'_> {
    type Item = Result<Range<usize>, Error>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let Some(header) = rest.first_chunk::<HEADER_LEN>() else {
            self.done = true;
            return None;
        };
        match self.codec.unit_len(*header) {
            Ok(len) if len <= rest.len() => {
                let start = self.pos;
                self.pos += len;
                Some(Ok(start..self.pos))
            }
            Ok(_) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

mod decoder;
mod stream;

pub use decoder::{Decoded, Decoder};
pub use stream::{FrameStream, StreamError};

#[cfg(test)]
mod tests;
