//! The handshake's primitives from aws-lc-rs, for snow: X25519, AES-256-GCM and
//! SHA-256 (HMAC too), behind snow's `Dh`, `Cipher` and `Hash` traits.
//!
//! snow's default resolver does X25519 with curve25519-dalek and AES-GCM and
//! SHA-256 with RustCrypto; aws-lc's assembly X25519 is the handshake's largest
//! cost, so the aws-lc backend resolves these instead (`resolver.rs`).
//!
//! Keys stay deterministic: a key snow generates is 32 bytes drawn from the
//! `Random` snow passes in (the caller's seed), imported into aws-lc with
//! `PrivateKey::from_private_key`, exactly as snow's default imports them into
//! dalek. aws-lc refuses a peer public key whose agreement is all zeros (a
//! low-order point); `dh` reports that as an error, which fails the handshake.
//!
//! A static key (`Dh::set`: the server's, once per handshake) costs a scalar multiplication to
//! import (aws-lc derives the public key on import), for the same key every time. Each thread
//! keeps the last static key it imported and agrees with it when the same private key comes
//! again (compared in constant time): a server worker imports its key once. Per thread, so no
//! lock and no shared cache line; keyed by the private key itself, so a configuration that
//! changes its key is never served a stale one, and a `DhX25519` used on another thread than
//! the one that set it imports the key there.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use snow::types::{Cipher, Dh, Hash, Random};
use std::cell::RefCell;

const X25519_LEN: usize = 32;
const TAG_LEN: usize = 16;
const SHA256_LEN: usize = 32;
const SHA256_BLOCK_LEN: usize = 64;

/// Where a `DhX25519`'s aws-lc key is.
#[derive(Default)]
enum Held {
    /// Not set or generated yet (or set with a key of the wrong length): `dh` fails.
    #[default]
    Nothing,
    /// Its own (an ephemeral key).
    Own(PrivateKey),
    /// A static key: this thread's `LAST_STATIC` while it holds the same private key.
    Static,
}

/// An X25519 keypair held by aws-lc. Before snow sets or generates a key it
/// holds none, and `dh` fails.
#[derive(Default)]
pub(crate) struct DhX25519 {
    key: Held,
    private: [u8; X25519_LEN],
    public: [u8; X25519_LEN],
}

impl Drop for DhX25519 {
    fn drop(&mut self) {
        // aws-lc clears its own copy when the key is freed.
        self.private.fill(0);
    }
}

/// The last static key this thread imported, ready to use.
struct ImportedStatic {
    private: [u8; X25519_LEN],
    key: PrivateKey,
    public: [u8; X25519_LEN],
}

impl Drop for ImportedStatic {
    fn drop(&mut self) {
        self.private.fill(0);
    }
}

thread_local! {
    static LAST_STATIC: RefCell<Option<ImportedStatic>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's last static key if its private key is `private`.
fn with_last_static<R>(
    private: &[u8; X25519_LEN],
    f: impl FnOnce(&ImportedStatic) -> R,
) -> Option<R> {
    LAST_STATIC.with_borrow(|last| {
        let last = last.as_ref()?;
        aws_lc_rs::constant_time::verify_slices_are_equal(&last.private, private).ok()?;
        Some(f(last))
    })
}

/// Imports `private` into aws-lc, which derives its public key. aws-lc
/// accepts any 32 bytes for X25519 (it clamps the scalar as RFC 7748 says).
fn import(private: &[u8; X25519_LEN]) -> Result<(PrivateKey, [u8; X25519_LEN]), snow::Error> {
    let key = PrivateKey::from_private_key(&X25519, private).map_err(|_| snow::Error::Dh)?;
    let public = key.compute_public_key().map_err(|_| snow::Error::Dh)?;
    let public = public.as_ref().try_into().map_err(|_| snow::Error::Dh)?;
    Ok((key, public))
}

/// X25519 of `key` with the peer's public key, into `out`.
fn agree(key: &PrivateKey, peer: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
    agreement::agree(
        key,
        UnparsedPublicKey::new(&X25519, peer),
        snow::Error::Dh,
        |secret| {
            out.copy_from_slice(secret);
            Ok(())
        },
    )
}

impl DhX25519 {
    /// A static key: the one this thread imported last if it is the same, else imported now
    /// (and remembered for the next time).
    fn set_static(&mut self, private: &[u8]) -> Result<(), snow::Error> {
        let private: &[u8; X25519_LEN] = private.try_into().map_err(|_| snow::Error::Dh)?;
        let public = match with_last_static(private, |last| last.public) {
            Some(public) => public,
            None => {
                let (key, public) = import(private)?;
                let imported = ImportedStatic {
                    private: *private,
                    key,
                    public,
                };
                LAST_STATIC.with_borrow_mut(|last| *last = Some(imported));
                public
            }
        };
        self.private = *private;
        self.public = public;
        self.key = Held::Static;
        Ok(())
    }
}

impl Dh for DhX25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        X25519_LEN
    }

    fn priv_len(&self) -> usize {
        X25519_LEN
    }

    fn set(&mut self, privkey: &[u8]) {
        // snow sets only static keys (ephemerals are generated). It passes a
        // private key of `priv_len` bytes; a key of another length leaves this
        // side without a key, and its `dh` then fails.
        if self.set_static(privkey).is_err() {
            self.key = Held::Nothing;
        }
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut private = [0u8; X25519_LEN];
        rng.try_fill_bytes(&mut private)?;
        let imported = import(&private);
        self.private = private;
        private.fill(0);
        let (key, public) = imported?;
        self.public = public;
        self.key = Held::Own(key);
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        &self.private
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let peer = pubkey.get(..X25519_LEN).ok_or(snow::Error::Dh)?;
        let out = out.get_mut(..X25519_LEN).ok_or(snow::Error::Dh)?;
        match &self.key {
            Held::Nothing => Err(snow::Error::Dh),
            Held::Own(key) => agree(key, peer, out),
            Held::Static => {
                match with_last_static(&self.private, |last| agree(&last.key, peer, &mut *out)) {
                    Some(result) => result,
                    // This thread holds another static key (or none): import ours here.
                    None => agree(&import(&self.private)?.0, peer, out),
                }
            }
        }
    }
}

/// AES-256-GCM with Noise's nonce (four zero bytes, then the 64-bit counter
/// big-endian), held by aws-lc.
#[derive(Default)]
pub(crate) struct CipherAesGcm {
    key: Option<LessSafeKey>,
}

fn noise_nonce(n: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&n.to_be_bytes());
    Nonce::assume_unique_for_key(nonce)
}

impl Cipher for CipherAesGcm {
    fn name(&self) -> &'static str {
        "AESGCM"
    }

    fn set(&mut self, key: &[u8; 32]) {
        // A 32-byte key is always valid for AES-256-GCM.
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("AES-256-GCM accepts 32-byte keys");
        self.key = Some(LessSafeKey::new(unbound));
    }

    fn encrypt(&self, nonce: u64, authtext: &[u8], plaintext: &[u8], out: &mut [u8]) -> usize {
        // snow's CipherState encrypts only once it has set a key, and gives
        // room for the tag (it checks `out` before it calls).
        let key = self
            .key
            .as_ref()
            .expect("snow sets a cipher's key before it encrypts");
        let len = plaintext.len();
        out[..len].copy_from_slice(plaintext);
        let tag = key
            .seal_in_place_separate_tag(noise_nonce(nonce), Aad::from(authtext), &mut out[..len])
            .expect("AES-256-GCM seals any handshake-sized message");
        out[len..len + TAG_LEN].copy_from_slice(tag.as_ref());
        len + TAG_LEN
    }

    fn decrypt(
        &self,
        nonce: u64,
        authtext: &[u8],
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<usize, snow::Error> {
        let key = self.key.as_ref().ok_or(snow::Error::Decrypt)?;
        let len = ciphertext
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(snow::Error::Decrypt)?;
        let out = out.get_mut(..len).ok_or(snow::Error::Decrypt)?;
        out.copy_from_slice(&ciphertext[..len]);
        key.open_in_place_separate_tag(
            noise_nonce(nonce),
            Aad::from(authtext),
            &ciphertext[len..],
            out,
        )
        .map(|_| len)
        .map_err(|_| snow::Error::Decrypt)
    }
}

/// SHA-256, and HMAC-SHA-256 in one call (snow's HKDF runs on it).
pub(crate) struct HashSha256 {
    context: digest::Context,
}

impl Default for HashSha256 {
    fn default() -> Self {
        HashSha256 {
            context: digest::Context::new(&digest::SHA256),
        }
    }
}

impl Hash for HashSha256 {
    fn name(&self) -> &'static str {
        "SHA256"
    }

    fn block_len(&self) -> usize {
        SHA256_BLOCK_LEN
    }

    fn hash_len(&self) -> usize {
        SHA256_LEN
    }

    fn reset(&mut self) {
        self.context = digest::Context::new(&digest::SHA256);
    }

    fn input(&mut self, data: &[u8]) {
        self.context.update(data);
    }

    fn result(&mut self, out: &mut [u8]) {
        let context = std::mem::replace(&mut self.context, digest::Context::new(&digest::SHA256));
        out[..SHA256_LEN].copy_from_slice(context.finish().as_ref());
    }

    fn hmac(&mut self, key: &[u8], data: &[u8], out: &mut [u8]) {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
        out[..SHA256_LEN].copy_from_slice(tag.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snow::params::{CipherChoice, DHChoice, HashChoice};
    use snow::resolvers::{CryptoResolver, DefaultResolver};

    struct Counter(u8);
    impl Random for Counter {
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
            for b in dest {
                self.0 = self.0.wrapping_mul(31).wrapping_add(7);
                *b = self.0;
            }
            Ok(())
        }
    }

    #[test]
    fn x25519_agrees_with_snow_default() {
        let mut rng = Counter(1);
        for _ in 0..16 {
            let mut ours = DhX25519::default();
            ours.generate(&mut rng).unwrap();
            let mut theirs = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
            theirs.set(ours.privkey());
            assert_eq!(ours.pubkey(), theirs.pubkey());

            let mut peer = DhX25519::default();
            peer.generate(&mut rng).unwrap();
            let mut a = [0u8; 32];
            let mut b = [0u8; 32];
            ours.dh(peer.pubkey(), &mut a).unwrap();
            theirs.dh(peer.pubkey(), &mut b).unwrap();
            assert_eq!(a, b);
            peer.dh(ours.pubkey(), &mut b).unwrap();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn a_static_key_set_again_is_reused_and_another_one_is_not_confused_with_it() {
        let mut rng = Counter(9);
        let mut peer = DhX25519::default();
        peer.generate(&mut rng).unwrap();
        let keys: Vec<[u8; 32]> = (0..2u8).map(|i| [i.wrapping_mul(77) ^ 0x35; 32]).collect();
        // a, b, a again: the thread's cache holds one key at a time.
        for private in [keys[0], keys[1], keys[0], keys[0]] {
            let mut ours = DhX25519::default();
            ours.set(&private);
            let mut theirs = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
            theirs.set(&private);
            assert_eq!(ours.pubkey(), theirs.pubkey());
            assert_eq!(ours.privkey(), &private[..]);
            let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
            ours.dh(peer.pubkey(), &mut a).unwrap();
            theirs.dh(peer.pubkey(), &mut b).unwrap();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn a_static_key_agrees_on_a_thread_that_holds_another_one() {
        let mut peer = DhX25519::default();
        peer.generate(&mut Counter(5)).unwrap();
        let mut ours = DhX25519::default();
        ours.set(&[0x11; 32]);
        let mut here = [0u8; 32];
        ours.dh(peer.pubkey(), &mut here).unwrap();
        let peer_public = peer.pubkey().to_vec();
        let there = std::thread::spawn(move || {
            // This thread's last static key is another one.
            let mut other = DhX25519::default();
            other.set(&[0x22; 32]);
            let mut out = [0u8; 32];
            ours.dh(&peer_public, &mut out).unwrap();
            out
        })
        .join()
        .unwrap();
        assert_eq!(here, there);
    }

    #[test]
    fn x25519_refuses_a_low_order_point_and_a_missing_key() {
        let mut ours = DhX25519::default();
        let mut out = [0u8; 32];
        assert!(ours.dh(&[9u8; 32], &mut out).is_err(), "no key yet");
        ours.generate(&mut Counter(3)).unwrap();
        // 0 and 1 are points of small order: the agreement would be all zeros.
        assert!(ours.dh(&[0u8; 32], &mut out).is_err());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(ours.dh(&one, &mut out).is_err());
        assert!(ours.dh(&[9u8; 16], &mut out).is_err(), "short key");
    }

    #[test]
    fn aes_gcm_agrees_with_snow_default() {
        let mut ours = CipherAesGcm::default();
        let mut theirs = DefaultResolver
            .resolve_cipher(&CipherChoice::AESGCM)
            .unwrap();
        let key = [0x5c; 32];
        ours.set(&key);
        theirs.set(&key);
        for len in [0usize, 1, 32, 100] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut a = vec![0u8; len + TAG_LEN];
            let mut b = vec![0u8; len + TAG_LEN];
            let nonce = 0x0102_0304_0506_0708 + len as u64;
            assert_eq!(ours.encrypt(nonce, b"ad", &plain, &mut a), len + TAG_LEN);
            theirs.encrypt(nonce, b"ad", &plain, &mut b);
            assert_eq!(a, b);
            let mut back = vec![0u8; len];
            assert_eq!(ours.decrypt(nonce, b"ad", &b, &mut back), Ok(len));
            assert_eq!(back, plain);
            b[0] ^= 1;
            assert!(ours.decrypt(nonce, b"ad", &b, &mut back).is_err());
        }
        assert!(ours.decrypt(0, b"", &[0u8; 15], &mut [0u8; 16]).is_err());
        // Rekey (snow's default method, on our encrypt) agrees as well.
        ours.rekey();
        theirs.rekey();
        let mut a = [0u8; TAG_LEN + 4];
        let mut b = [0u8; TAG_LEN + 4];
        ours.encrypt(1, b"", b"abcd", &mut a);
        theirs.encrypt(1, b"", b"abcd", &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn sha256_and_hkdf_agree_with_snow_default() {
        let mut ours = HashSha256::default();
        let mut theirs = DefaultResolver.resolve_hash(&HashChoice::SHA256).unwrap();
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        for data in [&b""[..], b"abc", &[7u8; 200]] {
            ours.reset();
            ours.input(data);
            ours.input(b"tail");
            ours.result(&mut a);
            theirs.reset();
            theirs.input(data);
            theirs.input(b"tail");
            theirs.result(&mut b);
            assert_eq!(a[..32], b[..32]);
        }
        let mut ours_out = [[0u8; 64]; 3];
        let mut theirs_out = [[0u8; 64]; 3];
        let [o1, o2, o3] = &mut ours_out;
        ours.hkdf(&[1; 32], &[2; 32], 3, o1, o2, o3);
        let [t1, t2, t3] = &mut theirs_out;
        theirs.hkdf(&[1; 32], &[2; 32], 3, t1, t2, t3);
        assert_eq!(ours_out, theirs_out);
    }
}
