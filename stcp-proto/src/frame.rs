//! Framing: every message is a 4-byte big-endian length followed by that many
//! bytes. Raw TCP mode is exactly this, in plaintext; STCP records and
//! handshake messages use the same header shape (see `docs/PROTOCOL.md`).

use crate::Error;

/// Bytes in a frame header.
pub const FRAME_HEADER_LEN: usize = 4;

/// Default largest payload a frame may carry: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// Reads a frame header and returns the payload length it announces, refusing
/// a length above `max` before the caller buffers anything for it.
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

/// A streaming decoder for plain frames with a bounded buffer.
///
/// Push bytes as they arrive in any split; take whole frames out. The buffer
/// never holds more than one partial frame plus what one `push` delivered, and
/// a header announcing more than `max` fails before any of that frame is kept.
#[derive(Debug)]
pub struct FrameDecoder {
    max: usize,
    buf: Vec<u8>,
    /// Start of the first unconsumed byte in `buf`.
    start: usize,
}

impl FrameDecoder {
    /// A decoder accepting payloads of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            max,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Returns the next whole frame's payload, `Ok(None)` when more bytes are
    /// needed, or an error when the next header announces too much.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, Error> {
        let pending = &self.buf[self.start..];
        if pending.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let header = [pending[0], pending[1], pending[2], pending[3]];
        let len = frame_len(header, self.max)?;
        if pending.len() < FRAME_HEADER_LEN + len {
            return Ok(None);
        }
        let begin = self.start + FRAME_HEADER_LEN;
        self.start = begin + len;
        Ok(Some(&self.buf[begin..begin + len]))
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_over_max_is_refused() {
        assert_eq!(
            frame_len([0xff, 0xff, 0xff, 0xff], 1024),
            Err(Error::FrameTooLarge {
                len: 0xffff_ffff,
                max: 1024
            })
        );
        assert_eq!(frame_len([0, 0, 4, 0], 1024), Ok(1024));
    }

    #[test]
    fn oversized_frame_fails_before_its_body_arrives() {
        let mut d = FrameDecoder::new(16);
        d.push(&[0, 0, 0, 17]);
        assert!(matches!(d.next_frame(), Err(Error::FrameTooLarge { .. })));
        assert_eq!(d.buffered(), 4);
    }

    #[test]
    fn decodes_back_to_back_frames() {
        let mut d = FrameDecoder::new(16);
        d.push(&[0, 0, 0, 2, b'h', b'i', 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.next_frame().unwrap(), Some(&b"hi"[..]));
        assert_eq!(d.next_frame().unwrap(), Some(&b""[..]));
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(&[0, 1, b'x']);
        assert_eq!(d.next_frame().unwrap(), Some(&b"x"[..]));
    }
}
