//! How the targets read their input: a cursor that never fails (bytes past
//! the end read as zero, slices come out short), and the "split stream"
//! layout that says where a byte stream is cut into the pieces a socket
//! would deliver.
//!
//! Split stream layout: `[n] [n cut lengths, one byte each] [stream...]`,
//! with `n = first byte % (MAX_CUTS + 1)`. The stream is pushed as `n`
//! pieces of the given lengths (zero-length pushes included, each clamped to
//! what is left) and then one last piece with the rest. A cut byte below
//! [`LONG_CUT`] is that many bytes; from it up, whole KiB ([`cut_len`]), so
//! that a genuine prefix of 16 KiB records can be cut inside any of them.
//! The stream itself is contiguous in the input, so a corpus file holds the
//! wire bytes verbatim.
//!
//! Frame lengths come from one byte ([`frame_len`]) or two ([`frame_len16`]):
//! mostly small, but the top codes are the lengths around the 16 KiB record
//! boundaries ([`BOUNDARY_LENS`]), so a short input asks for frames of
//! several records and for the exact 16 KiB / 16 KiB + 1 edges.

/// Most cuts a split stream describes.
pub const MAX_CUTS: usize = 16;
/// The first cut byte that means whole KiB: `b >= LONG_CUT` cuts
/// `(b - LONG_CUT + 1)` KiB (1 to 64 KiB).
pub const LONG_CUT: u8 = 192;
/// One record's largest payload, as docs/PROTOCOL.md gives it (16 KiB);
/// `oracle::tests` checks stcp-proto agrees.
pub const RECORD: usize = 16 * 1024;
/// Frame lengths around the record boundaries: `k` records of 16 KiB give
/// or take one byte, `k` = 1 to 4, and a few half-record ends.
pub const BOUNDARY_LENS: [usize; 16] = [
    RECORD - 1,
    RECORD,
    RECORD + 1,
    2 * RECORD - 1,
    2 * RECORD,
    2 * RECORD + 1,
    3 * RECORD - 1,
    3 * RECORD,
    3 * RECORD + 1,
    4 * RECORD - 1,
    4 * RECORD,
    LONGEST_FRAME,
    RECORD + 17,
    RECORD + RECORD / 2,
    2 * RECORD + RECORD / 2,
    3 * RECORD + RECORD / 2,
];
/// The longest of the [`BOUNDARY_LENS`]: a `Begin`, three `Continue`s and
/// a one-byte `End`. (Longer frames only cost the fuzzer time: the
/// records' rules are all met by then.)
pub const LONGEST_FRAME: usize = 4 * RECORD + 1;
/// The first one-byte frame length code that means a [`BOUNDARY_LENS`] entry.
pub const BOUNDARY_CODE: u8 = 240;
/// The first two-byte frame length code that means a [`BOUNDARY_LENS`] entry.
pub const BOUNDARY_CODE16: u16 = 0xfff0;
/// Largest "small" frame a two-byte code gives.
pub const SMALL_FRAME16: usize = 4096;

/// `len` bytes `start, start + step, start + 2 * step, ...` (wrapping): a
/// frame's payload, distinct per frame. Built by copying one 256-byte
/// period rather than byte by byte, which the fuzzer's instrumentation
/// makes slow for frames of many records.
pub fn pattern(len: usize, start: usize, step: usize) -> Vec<u8> {
    let period: [u8; 256] = std::array::from_fn(|j| start.wrapping_add(j * step) as u8);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let n = (len - out.len()).min(period.len());
        out.extend_from_slice(&period[..n]);
    }
    out
}

/// Bytes one cut byte stands for (see [`LONG_CUT`]).
pub fn cut_len(b: u8) -> usize {
    if b < LONG_CUT {
        b as usize
    } else {
        (b - LONG_CUT + 1) as usize * 1024
    }
}

/// A frame length from one byte: 0-239 as is, 240-255 the
/// [`BOUNDARY_LENS`].
pub fn frame_len(code: u8) -> usize {
    match code.checked_sub(BOUNDARY_CODE) {
        Some(i) => BOUNDARY_LENS[i as usize],
        None => code as usize,
    }
}

/// A frame length from two bytes: up to [`SMALL_FRAME16`] (the code modulo
/// 4097), the top 16 codes the [`BOUNDARY_LENS`].
pub fn frame_len16(code: u16) -> usize {
    match code.checked_sub(BOUNDARY_CODE16) {
        Some(i) => BOUNDARY_LENS[i as usize],
        None => code as usize % (SMALL_FRAME16 + 1),
    }
}

/// A cursor over the fuzzer's bytes.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte, or 0 past the end.
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian, missing ones read as 0.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Up to `n` next bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }
}

/// A byte stream and where to cut it into deliveries.
pub struct SplitStream<'a> {
    cuts: &'a [u8],
    /// The whole stream, as it would be on the wire.
    pub stream: &'a [u8],
}

impl<'a> SplitStream<'a> {
    /// Reads a split stream from the rest of `reader`.
    pub fn read(reader: &mut Reader<'a>) -> Self {
        let n = reader.u8() as usize % (MAX_CUTS + 1);
        let cuts = reader.bytes(n);
        SplitStream {
            cuts,
            stream: reader.rest(),
        }
    }

    /// The deliveries, in order; their concatenation is `stream`.
    pub fn chunks(&self) -> Vec<&'a [u8]> {
        self.chunks_of(self.stream)
    }

    /// `stream` (another stream, e.g. `self.stream` behind a prefix) cut
    /// where this split says.
    pub fn chunks_of<'s>(&self, stream: &'s [u8]) -> Vec<&'s [u8]> {
        let mut rest = stream;
        let mut out = Vec::with_capacity(self.cuts.len() + 1);
        for &cut in self.cuts {
            let (head, tail) = rest.split_at(cut_len(cut).min(rest.len()));
            out.push(head);
            rest = tail;
        }
        out.push(rest);
        out
    }
}

/// Encodes a split stream (for seed corpora): `cuts` lengths, then `stream`.
pub fn encode_split_stream(cuts: &[u8], stream: &[u8]) -> Vec<u8> {
    assert!(cuts.len() <= MAX_CUTS, "at most {MAX_CUTS} cuts");
    let mut out = Vec::with_capacity(1 + cuts.len() + stream.len());
    out.push(cuts.len() as u8);
    out.extend_from_slice(cuts);
    out.extend_from_slice(stream);
    out
}

/// Cuts for a split stream that delivers `stream_len` bytes in pieces of
/// `cut_len(piece)` bytes (as many cuts as fit in [`MAX_CUTS`]).
pub fn even_cuts(stream_len: usize, piece: u8) -> Vec<u8> {
    let n = if piece == 0 {
        1
    } else {
        (stream_len / cut_len(piece)).min(MAX_CUTS)
    };
    vec![piece; n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_stream_round_trips() {
        let stream: Vec<u8> = (0..100).collect();
        let encoded = encode_split_stream(&[3, 0, 150, 7], &stream);
        let mut reader = Reader::new(&encoded);
        let split = SplitStream::read(&mut reader);
        let chunks = split.chunks();
        assert_eq!(split.stream, &stream[..]);
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![3, 0, 97, 0, 0]
        );
        assert_eq!(chunks.concat(), stream);
    }

    #[test]
    fn long_cuts_reach_inside_a_later_record() {
        let stream = vec![0u8; 40_000];
        let split = encode_split_stream(&[LONG_CUT + 16, 5, 255], &stream);
        let chunks = SplitStream::read(&mut Reader::new(&split)).chunks();
        let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(lens, vec![17 * 1024, 5, 40_000 - 17 * 1024 - 5, 0]);
    }

    #[test]
    fn frame_length_codes_reach_the_record_boundaries() {
        assert_eq!(frame_len(239), 239);
        assert_eq!(frame_len(BOUNDARY_CODE + 1), RECORD);
        assert_eq!(frame_len(BOUNDARY_CODE + 2), RECORD + 1);
        assert_eq!(frame_len16(4097), 0);
        assert_eq!(frame_len16(BOUNDARY_CODE16 - 1), 0xffef % 4097);
        assert_eq!(frame_len16(BOUNDARY_CODE16 + 11), LONGEST_FRAME);
        assert_eq!(BOUNDARY_LENS.iter().max(), Some(&LONGEST_FRAME));
    }

    #[test]
    fn pattern_is_the_byte_by_byte_sequence() {
        let slow: Vec<u8> = (0..1000).map(|i| (5 + i * 7) as u8).collect();
        assert_eq!(pattern(1000, 5, 7), slow);
        assert!(pattern(0, 1, 1).is_empty());
    }

    #[test]
    fn reader_reads_zero_past_the_end() {
        let mut reader = Reader::new(&[1, 2, 3]);
        assert_eq!(reader.u16(), 0x0102);
        assert_eq!(reader.u16(), 0x0300);
        assert_eq!(reader.bytes(5), &[] as &[u8]);
        assert!(reader.is_empty());
    }
}
