//! The crypto provider abstraction: AES-256-GCM keys from one of two backends,
//! chosen once at configuration time (the shape of rustls's `CryptoProvider`).
//!
//! - [`AWS_LC`]: aws-lc-rs, the default; assembly AES-GCM with AES-NI/VAES.
//! - [`RUSTCRYPTO`]: the pure-Rust `aes-gcm` crate (>= 0.10.3, RUSTSEC-2023-0096).
//!
//! Both backends are compiled in; a [`CryptoBackend`] names one at run time.
//! The backend also chooses the handshake's primitives: aws-lc's X25519,
//! AES-256-GCM and SHA-256 for [`AWS_LC`], snow's pure-Rust defaults for
//! [`RUSTCRYPTO`] (see `resolver.rs`).

mod aws_lc;
pub(crate) mod noise_aws_lc;
mod rustcrypto;

use std::fmt;
use std::str::FromStr;

/// AES-256-GCM key length.
pub const KEY_LEN: usize = 32;
/// AES-GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub const AEAD_TAG_LEN: usize = 16;

/// Authentication failed, or the backend refused the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AeadError;

/// One AES-256-GCM key, ready to seal and open in place.
pub trait AeadKey: Send + Sync {
    /// Encrypts `in_out` in place and writes the tag over `tag`.
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &mut [u8; AEAD_TAG_LEN],
    ) -> Result<(), AeadError>;

    /// Checks `tag` and decrypts `in_out` in place. On failure `in_out` holds
    /// unspecified bytes and must be discarded.
    fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; AEAD_TAG_LEN],
    ) -> Result<(), AeadError>;
}

/// A set of crypto implementations, chosen at configuration time.
pub struct CryptoProvider {
    /// The name users type (`--crypto aws-lc`).
    pub name: &'static str,
    /// Which backend this is.
    pub backend: CryptoBackend,
    /// Builds an AES-256-GCM key.
    pub aes256gcm: fn(&[u8; KEY_LEN]) -> Box<dyn AeadKey>,
}

impl fmt::Debug for CryptoProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoProvider")
            .field("name", &self.name)
            .finish()
    }
}

/// aws-lc-rs: the default backend.
pub static AWS_LC: CryptoProvider = CryptoProvider {
    name: "aws-lc",
    backend: CryptoBackend::AwsLc,
    aes256gcm: aws_lc::new_key,
};

/// RustCrypto's `aes-gcm`: pure Rust.
pub static RUSTCRYPTO: CryptoProvider = CryptoProvider {
    name: "rustcrypto",
    backend: CryptoBackend::RustCrypto,
    aes256gcm: rustcrypto::new_key,
};

/// The name of a crypto backend, as chosen on a command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum CryptoBackend {
    /// aws-lc-rs.
    #[default]
    AwsLc,
    /// RustCrypto `aes-gcm`.
    RustCrypto,
}

impl CryptoBackend {
    /// Every backend, default first.
    pub const ALL: [CryptoBackend; 2] = [CryptoBackend::AwsLc, CryptoBackend::RustCrypto];

    /// The provider implementing this backend.
    pub fn provider(self) -> &'static CryptoProvider {
        match self {
            CryptoBackend::AwsLc => &AWS_LC,
            CryptoBackend::RustCrypto => &RUSTCRYPTO,
        }
    }

    /// The name users type.
    pub fn name(self) -> &'static str {
        self.provider().name
    }
}

impl fmt::Display for CryptoBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CryptoBackend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aws-lc" | "awslc" | "aws-lc-rs" => Ok(CryptoBackend::AwsLc),
            "rustcrypto" | "rust-crypto" | "aes-gcm" => Ok(CryptoBackend::RustCrypto),
            other => Err(format!(
                "unknown crypto backend '{other}': expected aws-lc or rustcrypto"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_agree_with_each_other() {
        let key = [7u8; KEY_LEN];
        let nonce = [1u8; NONCE_LEN];
        let a = (AWS_LC.aes256gcm)(&key);
        let b = (RUSTCRYPTO.aes256gcm)(&key);
        for len in [0usize, 1, 15, 16, 17, 255, 4096, 65536 + 3] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut x = plain.clone();
            let mut tx = [0u8; AEAD_TAG_LEN];
            a.seal_in_place(&nonce, b"hdr", &mut x, &mut tx).unwrap();
            let mut y = plain.clone();
            let mut ty = [0u8; AEAD_TAG_LEN];
            b.seal_in_place(&nonce, b"hdr", &mut y, &mut ty).unwrap();
            assert_eq!(x, y);
            assert_eq!(tx, ty);
            b.open_in_place(&nonce, b"hdr", &mut x, &tx).unwrap();
            assert_eq!(x, plain);
            assert!(a.open_in_place(&nonce, b"hdX", &mut y, &ty).is_err());
        }
    }

    #[test]
    fn names_parse() {
        for b in CryptoBackend::ALL {
            assert_eq!(b.name().parse::<CryptoBackend>(), Ok(b));
        }
        assert!("des".parse::<CryptoBackend>().is_err());
    }
}
