//! The record layer: one application frame is one record,
//! `[4-byte header][AES-256-GCM ciphertext][16-byte tag]`.
//!
//! The header (record type in the top 4 bits, length of what follows in the
//! low 28) is the associated data, so changing any bit of it fails. Each
//! direction has its own key and 64-bit counter; the nonce is Noise's AESGCM
//! rule (4 zero bytes, then the counter big-endian) and never travels, so a
//! replayed, reordered or dropped record fails authentication. Keys are
//! replaced with Noise's `Rekey()` on a schedule both sides compute alike
//! ([`RekeyPolicy`]). Sealing and opening work in place, one record or many
//! connections' records in one batch, without allocating.

pub use crate::codec::{
    write_record_header, RecordHeader, RecordType, MAX_RECORD_BODY, MAX_RECORD_PAYLOAD,
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
fn split_record(record: &mut [u8], max_payload: usize) -> Result<RecordParts<'_>, Error> {
    let Some(bytes) = record.first_chunk::<RECORD_HEADER_LEN>() else {
        return Err(Error::BadLength);
    };
    let header = RecordHeader::parse(*bytes, max_payload)?;
    if header.record_len() != record.len() {
        return Err(Error::BadLength);
    }
    let (head, rest) = record.split_at_mut(RECORD_HEADER_LEN);
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
            closed: false,
        }
    }

    /// Seals one whole record in place. `record[..4]` already holds its header
    /// ([`write_record_header`], or the header of a record just opened in the
    /// same buffer); the payload is encrypted in place and the tag written over
    /// the last 16 bytes. After a [`RecordType::Close`] record nothing more
    /// may be sealed.
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
        } = split_record(record, MAX_RECORD_PAYLOAD)?;
        if header.kind == RecordType::Close && header.payload_len != 0 {
            return Err(Error::BadLength);
        }
        self.dir.cipher.encrypt_with_ad(aad, body, tag)?;
        self.dir.record_done(header.payload_len);
        if header.kind == RecordType::Close {
            self.closed = true;
        }
        Ok(header.kind)
    }

    /// Seals every record in `buf`, which holds whole records back to back.
    /// Returns how many were sealed.
    pub fn seal_all(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        for_each_record(buf, MAX_RECORD_PAYLOAD, |record| {
            self.seal(record).map(|_| ())
        })
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
    max_payload: usize,
    peer_closed: bool,
}

impl RecordOpener {
    /// An opener starting at counter 0 under `key`, accepting payloads up to
    /// `max_payload` bytes, with the protocol's rekey policy.
    pub fn new(provider: &'static CryptoProvider, key: &[u8; KEY_LEN], max_payload: usize) -> Self {
        Self::with_policy(provider, key, max_payload, RekeyPolicy::PROTOCOL)
    }

    /// An opener with another rekey policy (tests only: peers must agree).
    pub fn with_policy(
        provider: &'static CryptoProvider,
        key: &[u8; KEY_LEN],
        max_payload: usize,
        policy: RekeyPolicy,
    ) -> Self {
        RecordOpener {
            dir: DirectionKey::new(provider, key, policy),
            max_payload: max_payload.min(MAX_RECORD_PAYLOAD),
            peer_closed: false,
        }
    }

    /// Decodes a header of this connection's next record, refusing oversized
    /// or malformed ones before the record is buffered.
    #[inline]
    pub fn parse_header(&self, header: [u8; RECORD_HEADER_LEN]) -> Result<RecordHeader, Error> {
        RecordHeader::parse(header, self.max_payload)
    }

    /// Authenticates and decrypts one whole record in place. On success the
    /// plaintext payload is `record[4..record.len() - 16]`. A failed record
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
        } = split_record(record, self.max_payload)?;
        if header.kind == RecordType::Close && header.payload_len != 0 {
            return Err(Error::BadLength);
        }
        self.dir.cipher.decrypt_with_ad(aad, body, tag)?;
        self.dir.record_done(header.payload_len);
        if header.kind == RecordType::Close {
            self.peer_closed = true;
        }
        Ok(header.kind)
    }

    /// Opens every record in `buf`, which holds whole records back to back.
    /// Returns how many were opened.
    pub fn open_all(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let max = self.max_payload;
        for_each_record(buf, max, |record| self.open(record).map(|_| ()))
    }

    /// Whether the peer's authenticated close arrived.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The largest payload this opener accepts.
    pub fn max_payload(&self) -> usize {
        self.max_payload
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
/// by the codec with `max_payload`. Stops at the first error.
fn for_each_record(
    buf: &mut [u8],
    max_payload: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<(), Error>,
) -> Result<usize, Error> {
    let codec = Codec::new(Framing::Records, max_payload);
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
