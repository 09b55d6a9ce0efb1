//! The RustCrypto (`aes-gcm` crate) AES-256-GCM backend: pure Rust, using
//! AES-NI and CLMUL when the CPU has them.

use super::{AeadError, AeadKey, AEAD_TAG_LEN, KEY_LEN, NONCE_LEN};
use aes_gcm::aead::{AeadInPlace, KeyInit};
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
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, in_out)
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
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, in_out, Tag::from_slice(tag))
            .map_err(|_| AeadError)
    }
}
