//! The aws-lc-rs AES-256-GCM backend.

use super::{AeadError, AeadKey, AEAD_TAG_LEN, KEY_LEN, NONCE_LEN};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

struct AwsLcKey(LessSafeKey);

pub(super) fn new_key(key: &[u8; KEY_LEN]) -> Box<dyn AeadKey> {
    // A 32-byte key is always valid for AES-256-GCM.
    let unbound = UnboundKey::new(&AES_256_GCM, key).expect("AES-256-GCM accepts 32-byte keys");
    Box::new(AwsLcKey(LessSafeKey::new(unbound)))
}

impl AeadKey for AwsLcKey {
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
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                in_out,
            )
            .map_err(|_| AeadError)?;
        tag.copy_from_slice(t.as_ref());
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
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                tag,
                in_out,
            )
            .map(|_| ())
            .map_err(|_| AeadError)
    }
}
