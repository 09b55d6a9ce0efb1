//! The RustCrypto (`aes-gcm` crate, 0.11) AES-256-GCM backend: pure Rust,
//! using AES-NI and CLMUL when the CPU has them. 0.11 rather than 0.10.3
//! (the RUSTSEC-2023-0096 floor) because its GHASH is about twice as fast here.

use super::{AeadError, AeadKey, AEAD_TAG_LEN, KEY_LEN, NONCE_LEN};
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

struct RustCryptoKey(Aes256Gcm);

pub(super) fn new_key(key: &[u8; KEY_LEN]) -> Box<dyn AeadKey> {
    Box::new(RustCryptoKey(Aes256Gcm::new(key.into())))
}

impl AeadKey for RustCryptoKey {
    #[inline]
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &mut [u8; AEAD_TAG_LEN],
    ) -> Result<(), AeadError> {
        let t = self
            .0
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, in_out.into())
            .map_err(|_| AeadError)?;
        tag.copy_from_slice(&t);
        Ok(())
    }

    #[inline]
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<(), AeadError> {
        self.0
            .decrypt_inout_detached(&Nonce::from(*nonce), aad, in_out.into(), &Tag::from(*tag))
            .map_err(|_| AeadError)
    }
}
