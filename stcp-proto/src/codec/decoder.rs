//! The incremental decoder: received bytes in any split, whole units back in place, the unit
//! cut by the end of a receive reassembled in the decoder's own buffer.

use std::ops::Range;

use super::{Codec, Framing, HEADER_LEN};
use crate::Error;

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
/// Never buffers more than one unit, and grows its buffer only with bytes
/// actually received, after the unit's header passed the limits (so the
/// buffer never grows with what a peer merely claims): while a header is
/// incomplete it holds at most 4 bytes. Errors are sticky: after one, every `decode` returns
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
        self.codec = Codec::new(framing, self.codec.max_frame);
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
                self.want = len;
            }
            let take = (self.want - self.partial.len()).min(data.len() - pos);
            let needed = self.partial.len() + take;
            if needed > self.partial.capacity() {
                // Grow geometrically with what arrived, never past the unit's own length: the
                // buffer holds at most twice what was received and at most one unit.
                let target = (self.partial.capacity() * 2).max(needed).min(self.want);
                self.partial.reserve_exact(target - self.partial.len());
            }
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
            // Only what arrived is kept: a header's claim never sizes the buffer.
            self.want = split.next_len.unwrap_or(0);
            self.partial.reserve_exact(tail.len().max(HEADER_LEN));
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
