//! Request payloads: content that differs for every request of every connection, cheap to write
//! and to check, so each echo is verified byte for byte without keeping a copy of what was sent.
//!
//! Payload of request `seq` on connection `conn` is a sequence of little-endian 64-bit words
//! `w_i = base + i·K` with `base = mix(conn, seq)`. A stale, reordered, truncated or altered echo
//! differs from the expected bytes.

const STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 finaliser: a different base for every (connection, sequence number).
#[inline]
fn base(conn: u32, seq: u64) -> u64 {
    let mut z = (u64::from(conn) << 40 ^ seq).wrapping_add(STEP);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes the payload of request `seq` of connection `conn` into `buf` (its whole length).
#[inline]
pub fn fill(buf: &mut [u8], conn: u32, seq: u64) {
    fill_at(buf, conn, seq, 0);
}

/// Writes the part of request `seq`'s payload that starts at byte `offset` into `part` (its
/// whole length), so a request can be written piece by piece (a record, or as much as a send
/// buffer has room for) without ever holding the whole payload. The same bytes as [`fill`]
/// writes at those offsets; [`verify_at`] checks them.
#[inline]
pub fn fill_at(part: &mut [u8], conn: u32, seq: u64, offset: usize) {
    let b = base(conn, seq);
    let word_at = |index: usize| b.wrapping_add((index as u64).wrapping_mul(STEP));
    // Bytes before the first word boundary, one by one.
    let head = ((8 - offset % 8) % 8).min(part.len());
    let (unaligned, aligned) = part.split_at_mut(head);
    for (i, byte) in unaligned.iter_mut().enumerate() {
        let at = offset + i;
        *byte = word_at(at / 8).to_le_bytes()[at % 8];
    }
    let mut word = word_at((offset + head) / 8);
    let mut chunks = aligned.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word.to_le_bytes());
        word = word.wrapping_add(STEP);
    }
    let tail = chunks.into_remainder();
    let n = tail.len();
    tail.copy_from_slice(&word.to_le_bytes()[..n]);
}

/// Checks that `buf` is exactly the payload [`fill`] wrote for (`conn`, `seq`); on a mismatch
/// returns the offset of the first differing 8-byte word (or of the tail after the last word).
#[inline]
pub fn verify(buf: &[u8], conn: u32, seq: u64) -> Result<(), usize> {
    verify_at(buf, conn, seq, 0)
}

/// Like [`verify`] for the part of the payload that starts at byte `offset`, so an echo can be
/// checked piece by piece as it arrives; the error is an offset within the whole payload.
#[inline]
pub fn verify_at(part: &[u8], conn: u32, seq: u64, offset: usize) -> Result<(), usize> {
    let b = base(conn, seq);
    let word_at = |index: usize| b.wrapping_add((index as u64).wrapping_mul(STEP));
    // Bytes before the first word boundary, one by one.
    let head = ((8 - offset % 8) % 8).min(part.len());
    for (i, &byte) in part[..head].iter().enumerate() {
        let at = offset + i;
        if byte != word_at(at / 8).to_le_bytes()[at % 8] {
            return Err(at);
        }
    }
    let aligned = &part[head..];
    let first_word = (offset + head) / 8;
    let mut chunks = aligned.chunks_exact(8);
    let mut word = word_at(first_word);
    // One OR-accumulator over the whole part keeps the loop free of branches.
    let mut diff = 0u64;
    for chunk in &mut chunks {
        diff |= u64::from_le_bytes(chunk.try_into().expect("8-byte chunk")) ^ word;
        word = word.wrapping_add(STEP);
    }
    let tail = chunks.remainder();
    if diff == 0 && tail == &word.to_le_bytes()[..tail.len()] {
        return Ok(());
    }
    // Locate the first difference (slow path, only on a failed echo).
    let mut word = word_at(first_word);
    for (i, chunk) in aligned.chunks(8).enumerate() {
        if chunk != &word.to_le_bytes()[..chunk.len()] {
            return Err(offset + head + i * 8);
        }
        word = word.wrapping_add(STEP);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_then_verify_for_every_small_length_and_some_large() {
        for len in (0..=1100).chain([4095, 4096, 65536, 65537]) {
            let mut buf = vec![0u8; len];
            fill(&mut buf, 7, 42);
            assert_eq!(verify(&buf, 7, 42), Ok(()), "len {len}");
        }
    }

    #[test]
    fn any_single_flipped_byte_is_found_at_its_word() {
        let mut buf = vec![0u8; 2053];
        fill(&mut buf, 3, 9);
        for i in [0, 7, 8, 511, 512, 1023, 2047, 2048, 2052] {
            buf[i] ^= 0x40;
            assert_eq!(verify(&buf, 3, 9), Err(i / 8 * 8), "byte {i}");
            buf[i] ^= 0x40;
        }
    }

    #[test]
    fn verifying_in_pieces_equals_verifying_whole() {
        let mut buf = vec![0u8; 1000];
        fill(&mut buf, 5, 77);
        for cut in [1, 3, 8, 13, 500, 999] {
            let (a, b) = buf.split_at(cut);
            assert_eq!(verify_at(a, 5, 77, 0), Ok(()));
            assert_eq!(verify_at(b, 5, 77, cut), Ok(()), "cut {cut}");
        }
        buf[601] ^= 1;
        let (a, b) = buf.split_at(597);
        assert_eq!(verify_at(a, 5, 77, 0), Ok(()));
        assert_eq!(verify_at(b, 5, 77, 597), Err(600));
        assert!(verify_at(&buf[600..], 5, 77, 600).is_err());
    }

    #[test]
    fn filling_in_pieces_equals_filling_whole() {
        let mut whole = vec![0u8; 1000];
        fill(&mut whole, 5, 77);
        for cuts in [&[1usize, 3, 8][..], &[7, 16, 999], &[13, 500, 501, 640]] {
            let mut pieces = vec![0u8; 1000];
            let mut at = 0;
            for &cut in cuts.iter().chain([&1000]) {
                fill_at(&mut pieces[at..cut], 5, 77, at);
                at = cut;
            }
            assert_eq!(pieces, whole, "cuts {cuts:?}");
        }
        let mut part = vec![0u8; 333];
        fill_at(&mut part, 5, 77, 421);
        assert_eq!(verify_at(&part, 5, 77, 421), Ok(()));
        assert_eq!(verify(&whole, 5, 77), Ok(()));
    }

    #[test]
    fn content_differs_per_request_and_per_connection() {
        let mut a = vec![0u8; 64];
        let mut b = vec![0u8; 64];
        fill(&mut a, 1, 1);
        fill(&mut b, 1, 2);
        assert_ne!(a, b);
        assert!(verify(&a, 1, 2).is_err());
        fill(&mut b, 2, 1);
        assert_ne!(a, b);
        assert!(verify(&a, 2, 1).is_err());
    }
}
