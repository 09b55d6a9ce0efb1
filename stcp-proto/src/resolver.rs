//! The snow crypto resolver both the handshake and key generation use:
//! randomness from a caller-supplied seed, and the handshake's primitives from
//! the configured backend. The aws-lc backend resolves X25519, AES-256-GCM and
//! SHA-256 to aws-lc-rs (`crypto/noise_aws_lc.rs`); the RustCrypto backend
//! keeps snow's default, pure-Rust ones (curve25519-dalek, `aes-gcm`, `sha2`).
//! Its own module so that `keys` (key generation) and `handshake` both depend
//! on it without depending on each other.

use crate::crypto::noise_aws_lc::{CipherAesGcm, DhX25519, HashSha256};
use crate::crypto::CryptoBackend;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

/// A snow resolver whose randomness comes from the caller's seed, so
/// handshakes are deterministic under test, and whose primitives come from
/// `backend`.
pub(crate) struct SeededResolver {
    seed: [u8; 32],
    backend: CryptoBackend,
}

impl SeededResolver {
    pub(crate) fn new(seed: [u8; 32], backend: CryptoBackend) -> Self {
        SeededResolver { seed, backend }
    }
}

struct SeededRng(ChaCha20Rng);

impl Random for SeededRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRng(ChaCha20Rng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match (self.backend, choice) {
            (CryptoBackend::AwsLc, DHChoice::Curve25519) => Some(Box::<DhX25519>::default()),
            _ => DefaultResolver.resolve_dh(choice),
        }
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match (self.backend, choice) {
            (CryptoBackend::AwsLc, HashChoice::SHA256) => Some(Box::<HashSha256>::default()),
            _ => DefaultResolver.resolve_hash(choice),
        }
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match (self.backend, choice) {
            (CryptoBackend::AwsLc, CipherChoice::AESGCM) => Some(Box::<CipherAesGcm>::default()),
            _ => DefaultResolver.resolve_cipher(choice),
        }
    }
}
