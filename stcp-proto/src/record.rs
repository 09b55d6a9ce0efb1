//! The record layer: an application frame is carried by one or more records
//! of at most 16 KiB of payload each,
//! `[header][AES-256-GCM ciphertext][16-byte tag]`.
//!
//! The header (record type in the top 4 bits, length of what follows in the
//! low 28; a `Begin` record adds the frame's length) is the associated data,
//! so changing any bit of it fails. Both halves check that records tie into
//! frames ([`FrameSequence`]) record by record, so a receiver can pass each
//! record on as it opens, never holding a frame. Each
//! direction has its own key and 64-bit counter; the nonce is Noise's AESGCM
//! rule (4 zero bytes, then the counter big-endian) and never travels, so a
//! replayed, reordered or dropped record fails authentication. Keys are
//! replaced with Noise's `Rekey()` on a schedule both sides compute alike
//! ([`RekeyPolicy`]). Sealing and opening work in place, one record or many
//! connections' records in one batch, without allocating.

pub use crate::codec::{
    frame_records, sealed_frame_len, write_record_header, FrameRecords, FrameSequence,
    RecordHeader, RecordType, BEGIN_HEADER_LEN, MAX_FRAME_LEN, MAX_RECORD_LEN, MAX_RECORD_PAYLOAD,
    RECORD_HEADER_LEN, RECORD_OVERHEAD, TAG_LEN,
};
use crate::codec::{Codec, Framing};
use crate::crypto::{AeadKey, CryptoProvider, KEY_LEN, NONCE_LEN};
use crate::Error;

/// When a direction's key is replaced with Noise's `Rekey()`.
///
/// Both peers must use the same policy: the protocol fixes [`RekeyPolicy::PROTOCOL`];
/// other values exist so tests can reach a rekey quickly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyPolicy {
    /// Rekey after this many records under one key.
    pub max_records: u64,
    /// Rekey once this many payload bytes were sealed under one key.
    pub max_bytes: u64,
}

impl RekeyPolicy {
    /// The protocol's schedule: 2^24 records or 2^32 payload bytes per key,
    /// whichever comes first (justified in `docs/PROTOCOL.md`).
    pub const PROTOCOL: RekeyPolicy = RekeyPolicy {
        max_records: 1 << 24,
        max_bytes: 1 << 32,
    };
}

impl Default for RekeyPolicy {
    fn default() -> Self {
        RekeyPolicy::PROTOCOL
    }
}

/// The AES-GCM nonce for record number `counter` (Noise's AESGCM rule).
#[inline]
pub fn record_nonce(counter: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

/// Noise's CipherState for AESGCM: one direction's key `k` and counter `n`.
///
/// `encrypt_with_ad`/`decrypt_with_ad` use nonce `n` and increment it, exactly
/// as the Noise specification (section 5.1) and snow's transport do; `rekey`
/// is Noise's `Rekey()`. The record layer builds on it; it is public so tests
/// can check it against snow byte for byte.
pub struct CipherState {
    key: Box<dyn AeadKey>,
    provider: &'static CryptoProvider,
    counter: u64,
}

impl CipherState {
    /// A cipher state with key `key` and counter 0.
    pub fn new(provider: &'static CryptoProvider, key: &[u8; KEY_LEN]) -> Self {
        CipherState {
            key: (provider.aes256gcm)(key),
            provider,
            counter: 0,
        }
    }

    /// The next nonce's counter.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    #[inline]
    fn nonce(&self) -> Result<[u8; NONCE_LEN], Error> {
        // Noise reserves nonce 2^64 - 1 for Rekey().
        if self.counter == u64::MAX {
            return Err(Error::CounterExhausted);
        }
        Ok(record_nonce(self.counter))
    }

    /// Encrypts `in_out` in place under the current counter with associated
    /// data `ad`, writes the tag, and increments the counter.
    #[inline]
    pub fn encrypt_with_ad(
        &mut self,
        ad: &[u8],
        in_out: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), Error> {
        let nonce = self.nonce()?;
        self.key
            .seal_in_place(&nonce, ad, in_out, tag)
            .map_err(|_| Error::BadLength)?;
        self.counter += 1;
        Ok(())
    }

    /// Authenticates and decrypts `in_out` in place under the current counter.
    /// Increments the counter only on success.
    #[inline]
    pub fn decrypt_with_ad(
        &mut self,
        ad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        let nonce = self.nonce()?;
        self.key
            .open_in_place(&nonce, ad, in_out, tag)
            .map_err(|_| Error::BadTag)?;
        self.counter += 1;
        Ok(())
    }

    /// Noise `Rekey()`: the new key is the first 32 bytes of
    /// `ENCRYPT(k, 2^64 - 1, "", zeros(32))`. The counter is not reset.
    pub fn rekey(&mut self) {
        let mut next = [0u8; KEY_LEN];
        let mut tag = [0u8; TAG_LEN];
        self.key
            .seal_in_place(&record_nonce(u64::MAX), &[], &mut next, &mut tag)
            .expect("AES-GCM sealing 32 bytes cannot fail");
        self.key = (self.provider.aes256gcm)(&next);
        next.fill(0);
    }
}

/// A direction's cipher state plus the rekey schedule both peers follow.
struct DirectionKey {
    cipher: CipherState,
    policy: RekeyPolicy,
    records_since_rekey: u64,
    bytes_since_rekey: u64,
    rekeys: u64,
}

impl DirectionKey {
    fn new(provider: &'static CryptoProvider, key: &[u8; KEY_LEN], policy: RekeyPolicy) -> Self {
        DirectionKey {
            cipher: CipherState::new(provider, key),
            policy,
            records_since_rekey: 0,
            bytes_since_rekey: 0,
            rekeys: 0,
        }
    }

    /// Accounts for one record just sealed or opened; rekeys on schedule.
    #[inline]
    fn record_done(&mut self, payload_len: usize) {
        self.records_since_rekey += 1;
        self.bytes_since_rekey += payload_len as u64;
        if self.records_since_rekey >= self.policy.max_records
            || self.bytes_since_rekey >= self.policy.max_bytes
        {
            self.cipher.rekey();
            self.records_since_rekey = 0;
            self.bytes_since_rekey = 0;
            self.rekeys += 1;
        }
    }
}

/// A whole record split into its parts, borrowed from one buffer.
struct RecordParts<'a> {
    header: RecordHeader,
    aad: &'a [u8],
    body: &'a mut [u8],
    tag: &'a mut [u8; TAG_LEN],
}

/// Splits one whole record (`record` must be exactly one) into its parts,
/// its header read by the codec's record header parser.
#[inline]
fn split_record(record: &mut [u8], max_frame: usize) -> Result<RecordParts<'_>, Error> {
    let header = RecordHeader::parse(record, max_frame)?;
    if header.record_len() != record.len() {
        return Err(Error::BadLength);
    }
    let (head, rest) = record.split_at_mut(header.header_len());
    let (body, tag) = rest.split_at_mut(header.payload_len);
    let tag: &mut [u8; TAG_LEN] = tag.try_into().map_err(|_| Error::BadLength)?;
    Ok(RecordParts {
        header,
        aad: head,
        body,
        tag,
    })
}

/// Seals this side's records: the sending half of a session.
pub struct RecordSealer {
    dir: DirectionKey,
    sequence: FrameSequence,
    closed: bool,
}

impl RecordSealer {
    /// A sealer starting at counter 0 under `key`, with the protocol's rekey policy.
    pub fn new(provider: &'static CryptoProvider, key: &[u8; KEY_LEN]) -> Self {
        Self::with_policy(provider, key, RekeyPolicy::PROTOCOL)
    }

    /// A sealer with another rekey policy (tests only: peers must agree).
    pub fn with_policy(
        provider: &'static CryptoProvider,
        key: &[u8; KEY_LEN],
        policy: RekeyPolicy,
    ) -> Self {
        RecordSealer {
            dir: DirectionKey::new(provider, key, policy),
            sequence: FrameSequence::default(),
            closed: false,
        }
    }

    /// Seals one whole record in place. The start of `record` already holds
    /// its header ([`RecordHeader::write`], or the header of a record just
    /// opened in the same buffer); the payload is encrypted in place and the
    /// tag written over the last 16 bytes. Records must tie into frames as a
    /// receiver checks ([`FrameSequence`]). After a [`RecordType::Close`]
    /// record nothing more may be sealed.
    #[inline]
    pub fn seal(&mut self, record: &mut [u8]) -> Result<RecordType, Error> {
        if self.closed {
            return Err(Error::Closed);
        }
        let RecordParts {
            header,
            aad,
            body,
            tag,
        } = split_record(record, MAX_FRAME_LEN)?;
        self.sequence.check(&header)?;
        self.dir.cipher.encrypt_with_ad(aad, body, tag)?;
        self.sequence.advance(&header);
        self.dir.record_done(header.payload_len);
        if header.kind == RecordType::Close {
            self.closed = true;
        }
        Ok(header.kind)
    }

    /// Seals every record in `buf`, which holds whole records back to back.
    /// Returns how many were sealed.
    pub fn seal_all(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        for_each_record(buf, MAX_FRAME_LEN, |record| self.seal(record).map(|_| ()))
    }

    /// Whether this side has sealed its close record.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Records sealed so far (the next nonce's counter).
    pub fn counter(&self) -> u64 {
        self.dir.cipher.counter()
    }

    /// The underlying Noise cipher state, for interoperability tests: using
    /// it directly bypasses the record format and the rekey schedule.
    pub fn cipher_state(&mut self) -> &mut CipherState {
        &mut self.dir.cipher
    }

    /// How many times the key was replaced.
    pub fn rekeys(&self) -> u64 {
        self.dir.rekeys
    }
}

/// Opens the peer's records: the receiving half of a session.
pub struct RecordOpener {
    dir: DirectionKey,
    max_frame: usize,
    sequence: FrameSequence,
    frames: u64,
    peer_closed: bool,
}

impl RecordOpener {
    /// An opener starting at counter 0 under `key`, accepting frames of up
    /// to `max_frame` payload bytes, with the protocol's rekey policy.
    pub fn new(provider: &'static CryptoProvider, key: &[u8; KEY_LEN], max_frame: usize) -> Self {
        Self::with_policy(provider, key, max_frame, RekeyPolicy::PROTOCOL)
    }

    /// An opener with another rekey policy (tests only: peers must agree).
    pub fn with_policy(
        provider: &'static CryptoProvider,
        key: &[u8; KEY_LEN],
        max_frame: usize,
        policy: RekeyPolicy,
    ) -> Self {
        RecordOpener {
            dir: DirectionKey::new(provider, key, policy),
            max_frame: max_frame.min(MAX_FRAME_LEN),
            sequence: FrameSequence::default(),
            frames: 0,
            peer_closed: false,
        }
    }

    /// Decodes the header at the start of `record` (at least its header's
    /// bytes), refusing oversized or malformed ones before the record is
    /// buffered.
    #[inline]
    pub fn parse_header(&self, record: &[u8]) -> Result<RecordHeader, Error> {
        RecordHeader::parse(record, self.max_frame)
    }

    /// Authenticates and decrypts one whole record in place. On success the
    /// plaintext payload is `record[h..record.len() - 16]`, `h` its header's
    /// length ([`RecordType::header_len`]). Before decrypting, the record
    /// must fit the frame it belongs to ([`FrameSequence::check`]) and a
    /// `Begin` record's frame must be at most `max_frame`. A failed record
    /// leaves the counter where it was; the connection must be dropped.
    #[inline]
    pub fn open(&mut self, record: &mut [u8]) -> Result<RecordType, Error> {
        if self.peer_closed {
            return Err(Error::RecordAfterClose);
        }
        let RecordParts {
            header,
            aad,
            body,
            tag,
        } = split_record(record, self.max_frame)?;
        self.sequence.check(&header)?;
        self.dir.cipher.decrypt_with_ad(aad, body, tag)?;
        self.sequence.advance(&header);
        if header.kind.ends_frame() {
            self.frames += 1;
        }
        self.dir.record_done(header.payload_len);
        if header.kind == RecordType::Close {
            self.peer_closed = true;
        }
        Ok(header.kind)
    }

    /// Opens every record in `buf`, which holds whole records back to back.
    /// Returns how many were opened.
    pub fn open_all(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let max = self.max_frame;
        for_each_record(buf, max, |record| self.open(record).map(|_| ()))
    }

    /// Whether the peer's authenticated close arrived.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The largest frame payload this opener accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Frames whose final record was opened so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Where the peer's stream is between frames: inside one, the payload
    /// bytes still due ([`FrameSequence::remaining`]).
    pub fn sequence(&self) -> FrameSequence {
        self.sequence
    }

    /// Records opened so far (the next nonce's counter).
    pub fn counter(&self) -> u64 {
        self.dir.cipher.counter()
    }

    /// The underlying Noise cipher state, for interoperability tests: using
    /// it directly bypasses the record format and the rekey schedule.
    pub fn cipher_state(&mut self) -> &mut CipherState {
        &mut self.dir.cipher
    }

    /// How many times the key was replaced.
    pub fn rekeys(&self) -> u64 {
        self.dir.rekeys
    }
}

/// Calls `f` on each record of `buf`, which must hold whole records back to
/// back (a cut record at the end is [`Error::BadLength`]); each header is read
/// by the codec with `max_frame`. Stops at the first error.
fn for_each_record(
    buf: &mut [u8],
    max_frame: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<(), Error>,
) -> Result<usize, Error> {
    let codec = Codec::new(Framing::Records, max_frame);
    let mut pos = 0;
    let mut count = 0;
    while pos < buf.len() {
        let rest = &mut buf[pos..];
        let Some(header) = rest.first_chunk::<RECORD_HEADER_LEN>() else {
            return Err(Error::BadLength);
        };
        let len = codec.unit_len(*header)?;
        let Some(record) = rest.get_mut(..len) else {
            return Err(Error::BadLength);
        };
        f(record)?;
        pos += len;
        count += 1;
    }
    Ok(count)
}

/// Seals a batch of jobs, each a sealer with a buffer of whole records
/// (typically: every reply that one io_uring completion batch produced, across
/// all connections of a worker). `done(i, result)` reports job `i`: the number
/// of records sealed, or its first error. Nothing is allocated.
pub fn seal_batch<'a, I>(jobs: I, mut done: impl FnMut(usize, Result<usize, Error>))
where
    I: IntoIterator<Item = (&'a mut RecordSealer, &'a mut [u8])>,
{
    for (i, (sealer, buf)) in jobs.into_iter().enumerate() {
        done(i, sealer.seal_all(buf));
    }
}

/// Opens a batch of jobs, each an opener with a buffer of whole records
/// received on its connection. `done(i, result)` reports job `i`: the number of
/// records opened, or its first error. Nothing is allocated.
pub fn open_batch<'a, I>(jobs: I, mut done: impl FnMut(usize, Result<usize, Error>))
where
    I: IntoIterator<Item = (&'a mut RecordOpener, &'a mut [u8])>,
{
    for (i, (opener, buf)) in jobs.into_iter().enumerate() {
        done(i, opener.open_all(buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AWS_LC;

    fn record(kind: RecordType, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; payload.len() + RECORD_OVERHEAD];
        write_record_header(&mut buf, kind, payload.len());
        buf[RECORD_HEADER_LEN..RECORD_HEADER_LEN + payload.len()].copy_from_slice(payload);
        buf
    }

    #[test]
    fn close_then_nothing() {
        let key = [3u8; 32];
        let mut s = RecordSealer::new(&AWS_LC, &key);
        let mut o = RecordOpener::new(&AWS_LC, &key, 1024);
        let mut c = record(RecordType::Close, b"");
        s.seal(&mut c).unwrap();
        assert_eq!(
            s.seal(&mut record(RecordType::Data, b"x")),
            Err(Error::Closed)
        );
        assert_eq!(o.open(&mut c), Ok(RecordType::Close));
        assert!(o.peer_closed());
        let mut late = record(RecordType::Data, b"x");
        assert_eq!(o.open(&mut late), Err(Error::RecordAfterClose));
    }

    /// Every record of a frame, sealed in order; the payload is `frame_len` bytes of `fill`.
    fn sealed_frame(sealer: &mut RecordSealer, frame_len: usize, fill: u8) -> Vec<Vec<u8>> {
        frame_records(frame_len)
            .map(|(header, _)| {
                let mut r = vec![fill; header.record_len()];
                header.write(&mut r);
                sealer.seal(&mut r).unwrap();
                r
            })
            .collect()
    }

    #[test]
    fn a_frame_of_many_records_opens_record_by_record() {
        let key = [5u8; 32];
        let mut s = RecordSealer::new(&AWS_LC, &key);
        let mut o = RecordOpener::new(&AWS_LC, &key, 1 << 20);
        let records = sealed_frame(&mut s, 3 * MAX_RECORD_PAYLOAD + 7, 0x42);
        assert_eq!(records.len(), 4);
        for (i, mut r) in records.into_iter().enumerate() {
            let kind = o.open(&mut r).unwrap();
            let body = &r[kind.header_len()..r.len() - TAG_LEN];
            assert!(body.iter().all(|&b| b == 0x42));
            assert_eq!(o.sequence().in_frame(), i < 3);
        }
        assert_eq!(o.frames(), 1);
    }

    #[test]
    fn records_out_of_frame_order_are_refused_before_decrypting() {
        let key = [6u8; 32];
        let mut s = RecordSealer::new(&AWS_LC, &key);
        let mut o = RecordOpener::new(&AWS_LC, &key, 1 << 20);
        let mut records = sealed_frame(&mut s, 2 * MAX_RECORD_PAYLOAD, 1);
        // The sealer will not start a new frame (or close) inside one either.
        let mut s2 = RecordSealer::new(&AWS_LC, &key);
        let begin = RecordHeader::first(2 * MAX_RECORD_PAYLOAD, MAX_RECORD_PAYLOAD);
        let mut first = vec![0; begin.record_len()];
        begin.write(&mut first);
        s2.seal(&mut first).unwrap();
        let mut data = record(RecordType::Data, b"x");
        assert_eq!(s2.seal(&mut data), Err(Error::MissingFinal));
        // Skipping the Begin: the End has no frame.
        let mut end = records.pop().unwrap();
        assert_eq!(o.open(&mut end.clone()), Err(Error::MissingBegin));
        assert_eq!(o.counter(), 0, "refused before decrypting");
        o.open(&mut records[0]).unwrap();
        let mut close = record(RecordType::Close, b"");
        assert_eq!(o.open(&mut close), Err(Error::MissingFinal));
        o.open(&mut end).unwrap();
        assert_eq!(o.frames(), 1);
    }

    #[test]
    fn rekey_schedule_is_shared() {
        let key = [9u8; 32];
        let policy = RekeyPolicy {
            max_records: 3,
            max_bytes: 100,
        };
        let mut s = RecordSealer::with_policy(&AWS_LC, &key, policy);
        let mut o = RecordOpener::with_policy(&AWS_LC, &key, 1024, policy);
        for i in 0..20usize {
            let mut r = record(RecordType::Data, &vec![i as u8; i * 7]);
            s.seal(&mut r).unwrap();
            o.open(&mut r).unwrap();
        }
        assert!(s.rekeys() > 5);
        assert_eq!(s.rekeys(), o.rekeys());
    }
}
