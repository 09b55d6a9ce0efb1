//! Plain frames as a stream: TCP mode's cut-through reader. Bytes are passed on as they
//! arrive; only the frame boundaries are tracked, each header checked against the limit, so a
//! frame of any allowed length costs no memory.

use super::{frame_len, FRAME_HEADER_LEN};
use crate::Error;

/// Tracks frame boundaries in a stream of plain frames without holding any payload.
///
/// Holds at most the 4 bytes of a header cut by the end of a receive. Errors are sticky.
#[derive(Clone, Debug)]
pub struct FrameStream {
    max_frame: usize,
    header: [u8; FRAME_HEADER_LEN],
    header_got: usize,
    /// Payload bytes still due in the current frame.
    remaining: usize,
    failed: Option<Error>,
}

/// A bad header found by [`FrameStream::advance`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamError {
    /// Bytes of the data passed in that come before the bad header (whose
    /// frames are good, and may be passed on); 0 when the header began in
    /// an earlier call.
    pub valid: usize,
    /// Why the header was refused.
    pub error: Error,
}

impl FrameStream {
    /// A stream at a frame boundary accepting frames of at most `max_frame` payload bytes.
    pub fn new(max_frame: usize) -> FrameStream {
        FrameStream {
            max_frame,
            header: [0; FRAME_HEADER_LEN],
            header_got: 0,
            remaining: 0,
            failed: None,
        }
    }

    /// Walks `data` (the bytes received after those of earlier calls) and
    /// returns how many frames it completed. Every header is checked the
    /// moment its 4th byte arrives; the first bad one is an error, returned
    /// again by every later call. The bytes of a header cut by the end of
    /// `data` count as passed on: a caller that forwards them before the
    /// header is whole forwards at most 3 bytes of a header that may then be
    /// refused.
    pub fn advance(&mut self, data: &[u8]) -> Result<usize, StreamError> {
        if let Some(error) = &self.failed {
            return Err(StreamError {
                valid: 0,
                error: error.clone(),
            });
        }
        let mut frames = 0;
        let mut pos = 0;
        while pos < data.len() {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len() - pos);
                self.remaining -= take;
                pos += take;
                if self.remaining == 0 {
                    frames += 1;
                }
                continue;
            }
            let header_start = pos;
            let take = (FRAME_HEADER_LEN - self.header_got).min(data.len() - pos);
            self.header[self.header_got..self.header_got + take]
                .copy_from_slice(&data[pos..pos + take]);
            self.header_got += take;
            pos += take;
            if self.header_got < FRAME_HEADER_LEN {
                break;
            }
            self.header_got = 0;
            match frame_len(self.header, self.max_frame) {
                Ok(0) => frames += 1,
                Ok(len) => self.remaining = len,
                Err(error) => {
                    self.failed = Some(error.clone());
                    // A header begun in an earlier call continues at the start of `data`.
                    return Err(StreamError {
                        valid: header_start,
                        error,
                    });
                }
            }
        }
        Ok(frames)
    }

    /// Whether the stream is between frames (a clean place for it to end).
    #[inline]
    pub fn at_boundary(&self) -> bool {
        self.header_got == 0 && self.remaining == 0 && self.failed.is_none()
    }

    /// Payload bytes still due in the current frame.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Back to a frame boundary with no error, for a new connection.
    pub fn reset(&mut self, max_frame: usize) {
        *self = FrameStream::new(max_frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Vec<u8> {
        let mut f = (len as u32).to_be_bytes().to_vec();
        f.extend((0..len).map(|i| i as u8));
        f
    }

    #[test]
    fn counts_frames_over_any_split() {
        let mut wire = frame(10);
        wire.extend(frame(0));
        wire.extend(frame(300));
        for cut in 1..wire.len() {
            let mut s = FrameStream::new(300);
            let a = s.advance(&wire[..cut]).unwrap();
            let b = s.advance(&wire[cut..]).unwrap();
            assert_eq!(a + b, 3, "cut at {cut}");
            assert!(s.at_boundary());
        }
        let mut s = FrameStream::new(300);
        s.advance(&wire[..wire.len() - 1]).unwrap();
        assert!(!s.at_boundary());
    }

    #[test]
    fn a_bad_header_stops_at_its_first_byte_and_sticks() {
        let mut wire = frame(3);
        wire.extend(frame(301));
        let mut s = FrameStream::new(300);
        let e = s.advance(&wire).unwrap_err();
        assert_eq!(e.valid, 7);
        assert_eq!(e.error, Error::FrameTooLarge { len: 301, max: 300 });
        assert_eq!(s.advance(&[0]).unwrap_err().valid, 0);
        // A header cut over two calls: nothing of the second call is valid.
        let mut s = FrameStream::new(300);
        assert_eq!(s.advance(&wire[..9]), Ok(1));
        assert_eq!(s.advance(&wire[9..]).unwrap_err().valid, 0);
    }
}
