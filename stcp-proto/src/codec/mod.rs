//! The one reader of peer bytes: every unit on an STCP or TCP-mode stream
//! (handshake frame, record, plain frame) starts with a 4-byte header that
//! gives its length, and this module is the only place that reads one.
//!
//! - [`Codec`]: a framing plus its payload limit; turns a header into the
//!   unit's whole length ([`Codec::unit_len`]) with every limit checked, and
//!   walks a buffer over whole units ([`Codec::split`], [`Codec::units`]).
//!   Stateless, `Copy`, allocation-free.
//! - [`Decoder`]: the incremental, zero-copy decoder built on it. Whole units
//!   come back in place in the caller's buffer; only a unit cut by the end of
//!   a receive is copied, into one buffer that grows with the bytes actually
//!   received (never with what a header claims) and only after the header
//!   has passed the limits.
//!
//! The header formats (see `docs/PROTOCOL.md`):
//! - handshake frame and plain frame: 4-byte big-endian payload length;
//! - record: record type in the top 4 bits, in the low 28 the length of what
//!   follows (ciphertext + 16-byte tag), see [`RecordHeader`].

use crate::crypto::AEAD_TAG_LEN;
use crate::Error;
use std::ops::Range;

/// Bytes in the header every unit starts with.
pub const HEADER_LEN: usize = 4;
/// Bytes in a frame header (handshake or plain frame).
pub const FRAME_HEADER_LEN: usize = HEADER_LEN;
/// Bytes in a record header.
pub const RECORD_HEADER_LEN: usize = HEADER_LEN;
/// Bytes in a record's authentication tag.
pub const TAG_LEN: usize = AEAD_TAG_LEN;
/// Header plus tag: what a record adds to its payload.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + TAG_LEN;
/// Largest value of the 28-bit length field (ciphertext + tag).
pub const MAX_RECORD_BODY: usize = (1 << 28) - 1;
/// Largest payload a record can carry, whatever the configuration.
pub const MAX_RECORD_PAYLOAD: usize = MAX_RECORD_BODY - TAG_LEN;
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

/// What a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordType {
    /// One application frame.
    Data = 0,
    /// The authenticated end of this direction; its payload is empty.
    Close = 1,
}

impl RecordType {
    #[inline]
    fn from_bits(bits: u8) -> Result<Self, Error> {
        match bits {
            0 => Ok(RecordType::Data),
            1 => Ok(RecordType::Close),
            other => Err(Error::BadRecordType(other)),
        }
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// The record's type.
    pub kind: RecordType,
    /// Plaintext bytes the record carries (its length field minus the tag).
    pub payload_len: usize,
}

impl RecordHeader {
    /// Decodes a header, refusing unknown types ([`Error::BadRecordType`]), a
    /// length field shorter than a tag ([`Error::BadLength`]), and payloads
    /// over `max_payload` ([`Error::FrameTooLarge`]), in that order: all before
    /// the caller buffers anything for the record. The only reader of record
    /// headers in this crate.
    #[inline]
    pub fn parse(bytes: [u8; RECORD_HEADER_LEN], max_payload: usize) -> Result<Self, Error> {
        let raw = u32::from_be_bytes(bytes);
        let kind = RecordType::from_bits((raw >> TYPE_SHIFT) as u8)?;
        let body = (raw & LENGTH_MASK) as usize;
        let payload_len = body.checked_sub(TAG_LEN).ok_or(Error::BadLength)?;
        if payload_len > max_payload {
            return Err(Error::FrameTooLarge {
                len: payload_len,
                max: max_payload,
            });
        }
        Ok(RecordHeader { kind, payload_len })
    }

    /// Encodes the header. `payload_len` must be at most [`MAX_RECORD_PAYLOAD`]
    /// (a caller's bug otherwise: it panics).
    #[inline]
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        assert!(
            self.payload_len <= MAX_RECORD_PAYLOAD,
            "record payload too large"
        );
        let raw = ((self.kind as u32) << TYPE_SHIFT) | (self.payload_len + TAG_LEN) as u32;
        raw.to_be_bytes()
    }

    /// Bytes of the whole record on the wire.
    #[inline]
    pub fn record_len(&self) -> usize {
        RECORD_OVERHEAD + self.payload_len
    }
}

/// Writes the header of a `kind` record carrying `payload_len` bytes into
/// `buf[..4]`. The caller puts the payload at `buf[4..4 + payload_len]` and
/// leaves 16 bytes after it for the tag, then calls
/// [`RecordSealer::seal`](crate::RecordSealer::seal).
#[inline]
pub fn write_record_header(buf: &mut [u8], kind: RecordType, payload_len: usize) {
    buf[..RECORD_HEADER_LEN].copy_from_slice(&RecordHeader { kind, payload_len }.encode());
}

/// What a stream carries, and so how its headers are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// STCP handshake frames: 4-byte big-endian length + at most
    /// [`HANDSHAKE_MAX_LEN`] bytes (over: [`Error::HandshakeTooLarge`]).
    Handshake,
    /// STCP records: 4-bit type + 28-bit length header ([`RecordHeader`]),
    /// payload at most `max_payload` (over: [`Error::FrameTooLarge`]), unknown
    /// type: [`Error::BadRecordType`], length field shorter than a tag:
    /// [`Error::BadLength`].
    Records,
    /// Plain frames (TCP mode): 4-byte big-endian length + payload of at most
    /// `max_payload` (over: [`Error::FrameTooLarge`]).
    Frames,
}

/// Stateless header reader: a framing plus its payload limit.
///
/// Every method only reads headers: no allocation, no panic on any input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    framing: Framing,
    max_payload: usize,
}

impl Codec {
    /// A codec for `framing` accepting payloads of at most `max_payload`
    /// bytes. Under [`Framing::Records`] the limit is clamped to
    /// [`MAX_RECORD_PAYLOAD`]; under [`Framing::Handshake`] it is kept (for a
    /// later [`Decoder::set_framing`]) but handshake frames are held to
    /// [`HANDSHAKE_MAX_LEN`].
    #[inline]
    pub fn new(framing: Framing, max_payload: usize) -> Codec {
        let max_payload = match framing {
            Framing::Records => max_payload.min(MAX_RECORD_PAYLOAD),
            // A unit's whole length (header + payload) must fit a usize.
            Framing::Frames | Framing::Handshake => max_payload.min(usize::MAX - HEADER_LEN),
        };
        Codec {
            framing,
            max_payload,
        }
    }

    /// How this codec reads headers.
    #[inline]
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The largest payload accepted (after clamping, see [`Codec::new`]).
    #[inline]
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Whole length (header included) of the unit this header announces,
    /// with every limit of the framing checked: an `Ok` length is at most
    /// `HEADER_LEN + max_payload` (+ the tag for records; `HEADER_LEN +
    /// HANDSHAKE_MAX_LEN` for handshake frames), so a caller may reserve it.
    #[inline]
    pub fn unit_len(&self, header: [u8; HEADER_LEN]) -> Result<usize, Error> {
        match self.framing {
            Framing::Records => Ok(RecordHeader::parse(header, self.max_payload)?.record_len()),
            Framing::Frames => Ok(HEADER_LEN + frame_len(header, self.max_payload)?),
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

pub use decoder::{Decoded, Decoder};

#[cfg(test)]
mod tests;
