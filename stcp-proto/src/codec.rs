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
//!   a receive is copied, into one buffer reserved for exactly that unit once
//!   its header has passed the limits.
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

/// What one [`Decoder::decode`] call produced.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Decoded {
    /// A unit begun in an earlier `decode` completed in the decoder's buffer
    /// (it comes before the in-place run): look at it with
    /// [`Decoder::reassembled_mut`], take it with [`Decoder::take_reassembled`];
    /// it is dropped by the next `decode` otherwise.
    pub reassembled: bool,
    /// `data[run]` holds whole units back to back, in place (empty range:
    /// none). Walk them with [`Codec::units`].
    pub run: Range<usize>,
    /// Whole units in `run`.
    pub units: usize,
    /// Bytes of `data` this call used. All of it, except:
    /// - under [`Framing::Handshake`], where decode stops right after one
    ///   whole handshake frame (reassembled or in place) so the caller can
    ///   finish the handshake and call `set_framing(Framing::Records)` before
    ///   passing `&data[consumed..]` again;
    /// - when a unit was reassembled and an incomplete unit follows the run:
    ///   the decoder's one buffer still holds the reassembled unit, so the
    ///   tail is left for the next call (which drops the reassembled unit);
    /// - when a bad header follows whole units: they are returned, decode
    ///   stops at the bad header, and every later call returns its error.
    ///
    /// So a caller loops `while !data.is_empty()`, handling each result and
    /// then `data = &data[consumed..]`; it sees every unit, in order, and
    /// every error. With non-empty `data`, `consumed` is never 0.
    pub consumed: usize,
}

/// An incremental decoder: feed received bytes in any split; get whole units
/// back in place, with a unit begun in an earlier call reassembled in the
/// decoder's own buffer.
///
/// Never buffers more than one unit, and reserves for a unit only after its
/// header passed the limits (so the buffer never grows with what a peer
/// merely claims): while a header is incomplete it holds at most 4 bytes,
/// then it reserves exactly the unit's length and grows only with bytes
/// actually received. Errors are sticky: after one, every `decode` returns
/// it until [`Decoder::clear`].
#[derive(Debug)]
pub struct Decoder {
    codec: Codec,
    /// The incomplete unit (`want == 0`: its header is not complete yet), or
    /// the unit just completed (`done`).
    partial: Vec<u8>,
    /// Whole length of the unit in `partial`, once its header is read.
    want: usize,
    /// `partial` holds a whole reassembled unit, dropped by the next decode.
    done: bool,
    /// The error this decoder stopped on.
    failed: Option<Error>,
}

impl Decoder {
    /// A decoder at a unit boundary, reading headers with `codec`. Allocates nothing.
    pub fn new(codec: Codec) -> Decoder {
        Decoder {
            codec,
            partial: Vec::new(),
            want: 0,
            done: false,
            failed: None,
        }
    }

    /// How headers are read.
    #[inline]
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Reads the next headers with `framing`, keeping the payload limit
    /// (clamped as [`Codec::new`] does). Call it at a unit boundary, e.g.
    /// after a handshake frame [`Decoded::consumed`] stopped at.
    pub fn set_framing(&mut self, framing: Framing) {
        self.codec = Codec::new(framing, self.codec.max_payload);
    }

    /// Reads the next headers with `codec`. Call it at a unit boundary.
    pub fn set_codec(&mut self, codec: Codec) {
        self.codec = codec;
    }

    fn fail(&mut self, e: Error) -> Error {
        self.failed = Some(e.clone());
        e
    }

    /// Decodes `data` (received bytes, following what earlier calls got);
    /// a trailing incomplete unit is copied into the decoder's buffer.
    ///
    /// Every header is checked before anything is kept for its unit; on a
    /// bad one with no whole unit before it in this call, `Err` (and every
    /// later call returns it too). See [`Decoded`] for what comes back.
    pub fn decode(&mut self, data: &[u8]) -> Result<Decoded, Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.done {
            self.partial.clear();
            self.done = false;
        }
        let mut out = Decoded::default();
        let mut pos = 0;
        if !self.partial.is_empty() {
            if self.want == 0 {
                // Complete the header first: at most 4 bytes are held for it.
                let take = (HEADER_LEN - self.partial.len()).min(data.len());
                self.partial.extend_from_slice(&data[..take]);
                pos = take;
                let Some(header) = self.partial.first_chunk::<HEADER_LEN>() else {
                    out.consumed = pos;
                    return Ok(out);
                };
                let len = match self.codec.unit_len(*header) {
                    Ok(len) => len,
                    Err(e) => return Err(self.fail(e)),
                };
                self.partial.reserve_exact(len - HEADER_LEN);
                self.want = len;
            }
            let take = (self.want - self.partial.len()).min(data.len() - pos);
            self.partial.extend_from_slice(&data[pos..pos + take]);
            pos += take;
            if self.partial.len() < self.want {
                out.consumed = pos;
                return Ok(out);
            }
            out.reassembled = true;
            self.done = true;
            self.want = 0;
            if self.codec.framing == Framing::Handshake {
                out.run = pos..pos;
                out.consumed = pos;
                return Ok(out);
            }
        }

        let rest = &data[pos..];
        let max_units = match self.codec.framing {
            Framing::Handshake => 1,
            Framing::Records | Framing::Frames => usize::MAX,
        };
        let (split, bad) = self.codec.scan(rest, max_units);
        out.run = pos..pos + split.whole;
        out.units = split.units;
        out.consumed = pos + split.whole;
        if let Some(e) = bad {
            let e = self.fail(e);
            if out.reassembled || out.units > 0 {
                return Ok(out);
            }
            return Err(e);
        }
        if self.codec.framing == Framing::Handshake && split.units == 1 {
            return Ok(out);
        }
        let tail = &rest[split.whole..];
        if !tail.is_empty() && out.reassembled {
            // The buffer still holds the reassembled unit for the caller: the
            // tail is buffered by the next call, after the caller is done with it.
            return Ok(out);
        }
        if !tail.is_empty() {
            match split.next_len {
                Some(len) => {
                    self.partial.reserve_exact(len);
                    self.want = len;
                }
                None => self.partial.reserve_exact(HEADER_LEN),
            }
            self.partial.extend_from_slice(tail);
            out.consumed = data.len();
        }
        Ok(out)
    }

    /// The unit completed by the last [`Decoder::decode`] (header included)
    /// when it reported [`Decoded::reassembled`], to read or open in place;
    /// empty otherwise.
    pub fn reassembled_mut(&mut self) -> &mut [u8] {
        if self.done {
            &mut self.partial
        } else {
            &mut []
        }
    }

    /// Takes the completed unit's buffer (the unit is all of it), leaving
    /// `replacement` (cleared) in its place, which lets a caller pool
    /// buffers. Without a completed unit it changes nothing and hands
    /// `replacement` back, cleared.
    pub fn take_reassembled(&mut self, mut replacement: Vec<u8>) -> Vec<u8> {
        replacement.clear();
        if !self.done {
            return replacement;
        }
        self.done = false;
        std::mem::replace(&mut self.partial, replacement)
    }

    /// Bytes of an incomplete unit held (0 at a unit boundary: a clean place
    /// for the stream to end).
    #[inline]
    pub fn buffered(&self) -> usize {
        if self.done {
            0
        } else {
            self.partial.len()
        }
    }

    /// Heap capacity held, in bytes (for memory gauges). It stays after a
    /// unit completes, for the next one; [`Decoder::clear`] or
    /// [`Decoder::take_reassembled`] give it back.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.partial.capacity()
    }

    /// Drops any partial or completed unit and any error, leaving the
    /// decoder at a unit boundary with no memory, and returns its buffer
    /// (cleared) for pooling or freeing.
    pub fn clear(&mut self) -> Vec<u8> {
        self.want = 0;
        self.done = false;
        self.failed = None;
        let mut buf = std::mem::take(&mut self.partial);
        buf.clear();
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        [&frame_header(payload.len())[..], payload].concat()
    }

    fn record(kind: RecordType, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0xaa; RECORD_OVERHEAD + payload.len()];
        write_record_header(&mut buf, kind, payload.len());
        buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload.len()].copy_from_slice(payload);
        buf
    }

    /// Decodes `chunks` in order, returning every unit (reassembled and in
    /// place, in order) and the largest `buffered()` seen.
    fn decode_all(d: &mut Decoder, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, usize) {
        let mut units = Vec::new();
        let mut most = 0;
        for chunk in chunks {
            let mut data = *chunk;
            while !data.is_empty() {
                let out = d.decode(data).unwrap();
                assert!(out.consumed > 0);
                if out.reassembled {
                    units.push(d.reassembled_mut().to_vec());
                }
                let run = &data[out.run.clone()];
                let mut n = 0;
                for unit in d.codec().units(run) {
                    units.push(run[unit.unwrap()].to_vec());
                    n += 1;
                }
                assert_eq!(n, out.units);
                most = most.max(d.buffered());
                data = &data[out.consumed..];
            }
        }
        (units, most)
    }

    #[test]
    fn header_functions_follow_the_spec() {
        assert_eq!(
            frame_len([0xff, 0xff, 0xff, 0xff], 1024),
            Err(Error::FrameTooLarge {
                len: 0xffff_ffff,
                max: 1024
            })
        );
        assert_eq!(frame_len([0, 0, 4, 0], 1024), Ok(1024));
        assert_eq!(handshake_frame_len([0, 0, 1, 0]), Ok(256));
        assert_eq!(
            handshake_frame_len([0, 0, 1, 1]),
            Err(Error::HandshakeTooLarge { len: 257, max: 256 })
        );
        let h = RecordHeader {
            kind: RecordType::Close,
            payload_len: 0,
        };
        assert_eq!(h.encode(), [0x10, 0, 0, 16]);
        assert_eq!(RecordHeader::parse(h.encode(), 10), Ok(h));
        assert_eq!(
            RecordHeader::parse([0x20, 0, 0, 16], 10),
            Err(Error::BadRecordType(2))
        );
        assert_eq!(
            RecordHeader::parse([0, 0, 0, 15], 10),
            Err(Error::BadLength)
        );
        assert_eq!(
            RecordHeader::parse([0, 0, 0, 27], 10),
            Err(Error::FrameTooLarge { len: 11, max: 10 })
        );
    }

    #[test]
    fn unit_len_per_framing() {
        let frames = Codec::new(Framing::Frames, 10);
        assert_eq!(frames.unit_len([0, 0, 0, 10]), Ok(14));
        assert_eq!(
            frames.unit_len([0, 0, 0, 11]),
            Err(Error::FrameTooLarge { len: 11, max: 10 })
        );
        let records = Codec::new(Framing::Records, usize::MAX);
        assert_eq!(records.max_payload(), MAX_RECORD_PAYLOAD);
        assert_eq!(
            records.unit_len([0x0f, 0xff, 0xff, 0xff]),
            Ok((1 << 28) - 1 + 4)
        );
        let hs = Codec::new(Framing::Handshake, 10);
        assert_eq!(hs.unit_len([0, 0, 1, 0]), Ok(260));
        assert_eq!(hs.max_payload(), 10);
    }

    /// Each framing refuses an over-limit header from the header alone: the
    /// decoder holds at most the 4 header bytes and reserves nothing more.
    #[test]
    fn limits_are_refused_from_the_header() {
        let cases: [(Framing, [u8; 4], Error); 5] = [
            (
                Framing::Frames,
                [0xff, 0xff, 0xff, 0xff],
                Error::FrameTooLarge {
                    len: 0xffff_ffff,
                    max: 1024,
                },
            ),
            (
                Framing::Handshake,
                [0, 0, 1, 1],
                Error::HandshakeTooLarge { len: 257, max: 256 },
            ),
            (
                Framing::Records,
                [0x0f, 0xff, 0xff, 0xff],
                Error::FrameTooLarge {
                    len: (1 << 28) - 1 - TAG_LEN,
                    max: 1024,
                },
            ),
            (Framing::Records, [0x30, 0, 0, 16], Error::BadRecordType(3)),
            (Framing::Records, [0, 0, 0, 15], Error::BadLength),
        ];
        for (framing, header, error) in cases {
            // In place, with body bytes following.
            let mut d = Decoder::new(Codec::new(framing, 1024));
            let mut data = header.to_vec();
            data.extend_from_slice(&[0; 100]);
            assert_eq!(d.decode(&data), Err(error.clone()), "{framing:?}");
            assert!(d.buffered() <= HEADER_LEN);
            assert!(d.capacity() <= HEADER_LEN);
            assert_eq!(d.decode(&[0; 8]), Err(error.clone()), "sticky");
            // Header cut in two: held, then refused when it completes.
            let mut d = Decoder::new(Codec::new(framing, 1024));
            let out = d.decode(&header[..3]).unwrap();
            assert_eq!((out.consumed, out.units, d.buffered()), (3, 0, 3));
            assert!(d.capacity() <= HEADER_LEN);
            assert_eq!(d.decode(&data[3..]), Err(error.clone()));
            assert!(d.buffered() <= HEADER_LEN);
            assert!(d.capacity() <= HEADER_LEN);
            // Split agrees.
            assert_eq!(Codec::new(framing, 1024).split(&data), Err(error));
        }
    }

    #[test]
    fn back_to_back_units_come_back_in_place() {
        let stream = [frame(b"hi"), frame(b""), frame(b"abc"), frame(b"xy")].concat();
        let mut d = Decoder::new(Codec::new(Framing::Frames, 16));
        let cut = stream.len() - 2;
        let out = d.decode(&stream[..cut]).unwrap();
        assert_eq!(
            out,
            Decoded {
                reassembled: false,
                run: 0..17,
                units: 3,
                consumed: cut,
            }
        );
        assert_eq!(d.buffered(), 4);
        // The tail's header was complete: exactly its length was reserved.
        assert_eq!(d.capacity(), 6);
        let units: Vec<_> = d
            .codec()
            .units(&stream[out.run])
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(units, vec![0..6, 6..10, 10..17]);
        let out = d.decode(&stream[cut..]).unwrap();
        assert!(out.reassembled);
        assert_eq!((out.run, out.units, out.consumed), (2..2, 0, 2));
        assert_eq!(d.reassembled_mut(), &frame(b"xy")[..]);
        assert_eq!(d.buffered(), 0);
        // The completed unit is dropped by the next call.
        let out = d.decode(&[]).unwrap();
        assert_eq!(out, Decoded::default());
        assert!(d.reassembled_mut().is_empty());
        assert_eq!(
            Codec::new(Framing::Frames, 16).split(&stream[..cut]),
            Ok(Split {
                whole: 17,
                units: 3,
                next_len: Some(6),
            })
        );
    }

    #[test]
    fn reassembles_across_many_splits() {
        let payloads: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; i as usize * 5]).collect();
        for framing in [Framing::Frames, Framing::Records] {
            let units: Vec<Vec<u8>> = payloads
                .iter()
                .map(|p| match framing {
                    Framing::Records => record(RecordType::Data, p),
                    _ => frame(p),
                })
                .collect();
            let stream = units.concat();
            for piece in [1, 2, 3, 5, 7, 64] {
                let chunks: Vec<&[u8]> = stream.chunks(piece).collect();
                let mut d = Decoder::new(Codec::new(framing, 1000));
                let (got, most) = decode_all(&mut d, &chunks);
                assert_eq!(got, units, "{framing:?} in pieces of {piece}");
                let largest = units.iter().map(Vec::len).max().unwrap();
                assert!(most <= largest);
                assert!(d.capacity() <= largest);
                assert_eq!(d.buffered(), 0);
            }
        }
    }

    #[test]
    fn a_header_split_over_two_decodes() {
        let unit = record(RecordType::Close, b"");
        let mut d = Decoder::new(Codec::new(Framing::Records, 100));
        let out = d.decode(&unit[..2]).unwrap();
        assert_eq!(out.consumed, 2);
        assert!(!out.reassembled);
        assert_eq!(d.buffered(), 2);
        assert!(d.capacity() <= HEADER_LEN);
        let out = d.decode(&unit[2..]).unwrap();
        assert!(out.reassembled);
        assert_eq!(out.consumed, unit.len() - 2);
        assert_eq!(d.reassembled_mut(), &unit[..]);
    }

    #[test]
    fn handshake_stops_after_one_unit() {
        let hello = frame(&[7; 56]);
        let records = [
            record(RecordType::Data, b"one"),
            record(RecordType::Close, b""),
        ]
        .concat();
        let stream = [hello.clone(), records.clone()].concat();
        // In place.
        let mut d = Decoder::new(Codec::new(Framing::Handshake, 1 << 20));
        let out = d.decode(&stream).unwrap();
        assert_eq!((out.run.clone(), out.units), (0..hello.len(), 1));
        assert_eq!(out.consumed, hello.len());
        d.set_framing(Framing::Records);
        assert_eq!(d.codec().max_payload(), 1 << 20);
        let out = d.decode(&stream[hello.len()..]).unwrap();
        assert_eq!((out.units, out.consumed), (2, records.len()));
        // Reassembled: the bytes after the frame are not consumed.
        let mut d = Decoder::new(Codec::new(Framing::Handshake, 1 << 20));
        assert_eq!(d.decode(&stream[..10]).unwrap().consumed, 10);
        let out = d.decode(&stream[10..]).unwrap();
        assert!(out.reassembled);
        assert_eq!(out.units, 0);
        assert_eq!(out.consumed, hello.len() - 10);
        assert_eq!(d.reassembled_mut(), &hello[..]);
        d.set_framing(Framing::Records);
        let out = d.decode(&stream[hello.len()..]).unwrap();
        assert!(!out.reassembled);
        assert_eq!(out.units, 2);
    }

    #[test]
    fn take_reassembled_swaps_buffers() {
        let unit = frame(b"pooled");
        let mut d = Decoder::new(Codec::new(Framing::Frames, 64));
        d.decode(&unit[..5]).unwrap();
        // Nothing completed yet: the replacement comes back, the partial stays.
        let back = d.take_reassembled(vec![1, 2, 3]);
        assert!(back.is_empty());
        assert_eq!(d.buffered(), 5);
        assert!(d.decode(&unit[5..]).unwrap().reassembled);
        let spare = Vec::with_capacity(128);
        let got = d.take_reassembled(spare);
        assert_eq!(got, unit);
        assert_eq!(d.capacity(), 128);
        assert!(d.reassembled_mut().is_empty());
        assert_eq!(d.buffered(), 0);
        // The next unit goes into the replacement buffer.
        d.decode(&unit[..3]).unwrap();
        assert_eq!(d.capacity(), 128);
        assert!(d.decode(&unit[3..]).unwrap().reassembled);
        assert_eq!(d.reassembled_mut(), &unit[..]);
        let buf = d.clear();
        assert!(buf.is_empty() && buf.capacity() == 128);
        assert_eq!((d.capacity(), d.buffered()), (0, 0));
    }

    #[test]
    fn bad_header_after_whole_units_returns_them_first() {
        let stream = [frame(b"ok"), frame(&[0; 17])].concat();
        let mut d = Decoder::new(Codec::new(Framing::Frames, 16));
        let out = d.decode(&stream).unwrap();
        assert_eq!((out.run, out.units, out.consumed), (0..6, 1, 6));
        let e = Error::FrameTooLarge { len: 17, max: 16 };
        assert_eq!(d.decode(&stream[6..]), Err(e.clone()));
        assert_eq!(d.decode(b""), Err(e.clone()));
        assert_eq!(Codec::new(Framing::Frames, 16).split(&stream), Err(e));
        d.clear();
        assert!(d.decode(&stream[..6]).is_ok());
    }

    #[test]
    fn units_iterator_stops_at_incomplete_and_bad() {
        let codec = Codec::new(Framing::Frames, 4);
        let buf = [frame(b"a"), frame(b"bb"), vec![0, 0]].concat();
        let mut it = codec.units(&buf);
        assert_eq!(it.next(), Some(Ok(0..5)));
        assert_eq!(it.next(), Some(Ok(5..11)));
        assert_eq!(it.next(), None);
        assert_eq!(it.offset(), 11);
        let buf = [frame(b"a"), vec![0, 0, 0, 5]].concat();
        let got: Vec<_> = codec.units(&buf).collect();
        assert_eq!(
            got,
            vec![Ok(0..5), Err(Error::FrameTooLarge { len: 5, max: 4 })]
        );
    }
}
