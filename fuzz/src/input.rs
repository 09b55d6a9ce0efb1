//! How the targets read their input: a cursor that never fails (bytes past
//! the end read as zero, slices come out short), and the "split stream"
//! layout that says where a byte stream is cut into the pieces a socket
//! would deliver.
//!
//! Split stream layout: `[n] [n cut lengths, one byte each] [stream...]`,
//! with `n = first byte % (MAX_CUTS + 1)`. The stream is pushed as `n`
//! pieces of the given lengths (zero-length pushes included, each clamped to
//! what is left) and then one last piece with the rest. The stream itself is
//! contiguous in the input, so a corpus file holds the wire bytes verbatim.

/// Most cuts a split stream describes.
pub const MAX_CUTS: usize = 16;

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
            let (head, tail) = rest.split_at((cut as usize).min(rest.len()));
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
/// `piece` bytes (as many cuts as fit in [`MAX_CUTS`]).
pub fn even_cuts(stream_len: usize, piece: u8) -> Vec<u8> {
    let n = if piece == 0 {
        1
    } else {
        (stream_len / piece as usize).min(MAX_CUTS)
    };
    vec![piece; n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_stream_round_trips() {
        let stream: Vec<u8> = (0..100).collect();
        let encoded = encode_split_stream(&[3, 0, 250, 7], &stream);
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
    fn reader_reads_zero_past_the_end() {
        let mut reader = Reader::new(&[1, 2, 3]);
        assert_eq!(reader.u16(), 0x0102);
        assert_eq!(reader.u16(), 0x0300);
        assert_eq!(reader.bytes(5), &[] as &[u8]);
        assert!(reader.is_empty());
    }
}
