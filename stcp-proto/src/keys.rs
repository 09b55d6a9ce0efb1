//! Static X25519 keypairs and the files that hold them.
//!
//! File format (see `docs/PROTOCOL.md`): a private key file holds the 32-byte
//! X25519 private key as 64 lowercase hex digits and a newline, mode 0600; the
//! public key file beside it (`<private>.pub`) holds the public key the same
//! way. A PSK file holds 32 random bytes as 64 hex digits, mode 0600. Like
//! ssh, a secret file that group or others may read is refused.

use crate::crypto::CryptoBackend;
use crate::resolver::SeededResolver;
use snow::params::DHChoice;
use snow::resolvers::CryptoResolver;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A static X25519 keypair.
#[derive(Clone)]
pub struct StaticKeypair {
    /// The private scalar. Never printed.
    pub private: [u8; 32],
    /// The public key clients pin.
    pub public: [u8; 32],
}

impl std::fmt::Debug for StaticKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKeypair")
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

impl StaticKeypair {
    /// Generates a keypair from 32 bytes of caller-supplied randomness.
    pub fn generate(rng_seed: [u8; 32]) -> Self {
        let resolver = SeededResolver::new(rng_seed, CryptoBackend::AwsLc);
        let mut rng = resolver.resolve_rng().expect("seeded rng");
        let mut dh = resolver
            .resolve_dh(&DHChoice::Curve25519)
            .expect("snow provides X25519");
        dh.generate(&mut *rng)
            .expect("the seeded rng never fails, and X25519 takes any 32 bytes");
        let mut private = [0u8; 32];
        private.copy_from_slice(dh.privkey());
        Self::from_private(private)
    }

    /// The keypair whose private half is `private`.
    pub fn from_private(private: [u8; 32]) -> Self {
        let mut dh = SeededResolver::new([0; 32], CryptoBackend::AwsLc)
            .resolve_dh(&DHChoice::Curve25519)
            .expect("snow provides X25519");
        dh.set(&private);
        let mut public = [0u8; 32];
        public.copy_from_slice(dh.pubkey());
        StaticKeypair { private, public }
    }

    /// The public key as 64 hex digits.
    pub fn public_hex(&self) -> String {
        hex::encode(self.public)
    }
}

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A secret file is readable by group or others.
    #[error(
        "{path}: permissions {mode:04o} are too open; a secret key file must not be readable by \
         others (run: chmod 600 {path})"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    /// The file does not hold 64 hex digits.
    #[error("{path}: not a key file: {reason}")]
    Malformed { path: PathBuf, reason: String },
    /// `keygen` refuses to overwrite a key.
    #[error("{path}: already exists; refusing to overwrite a key")]
    AlreadyExists { path: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parse_hex32(text: &str, path: &Path) -> Result<[u8; 32], KeyFileError> {
    let text = text.trim();
    let bytes = hex::decode(text).map_err(|e| KeyFileError::Malformed {
        path: path.to_path_buf(),
        reason: format!("expected 64 hex digits: {e}"),
    })?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| KeyFileError::Malformed {
            path: path.to_path_buf(),
            reason: format!("expected 32 bytes, found {}", b.len()),
        })
}

/// Reads a secret file (private key or PSK), refusing one that group or
/// others may read.
fn read_secret(path: &Path) -> Result<[u8; 32], KeyFileError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    parse_hex32(&text, path)
}

fn write_new(path: &Path, mode: u32, text: &str) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::AlreadyExists {
                    path: path.to_path_buf(),
                }
            } else {
                KeyFileError::Io {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })?;
    file.write_all(text.as_bytes()).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// Where the public key of private key file `private_path` lives: `<path>.pub`.
pub fn public_key_path(private_path: &Path) -> PathBuf {
    let mut s = private_path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

fn write_public(private_path: &Path, keypair: &StaticKeypair) -> Result<(), KeyFileError> {
    let path = public_key_path(private_path);
    fs::write(&path, format!("{}\n", keypair.public_hex())).map_err(io_err(&path))
}

/// Creates a new keypair at `path` (mode 0600; refuses to overwrite) and its
/// public key at `<path>.pub`. `rng_seed` must be fresh OS randomness.
pub fn write_new_keypair(path: &Path, rng_seed: [u8; 32]) -> Result<StaticKeypair, KeyFileError> {
    let keypair = StaticKeypair::generate(rng_seed);
    write_new(path, 0o600, &format!("{}\n", hex::encode(keypair.private)))?;
    write_public(path, &keypair)?;
    Ok(keypair)
}

/// Loads the keypair at `path`, checking its permissions.
pub fn load_keypair(path: &Path) -> Result<StaticKeypair, KeyFileError> {
    Ok(StaticKeypair::from_private(read_secret(path)?))
}

/// Loads the keypair at `path`, or creates it with OS randomness when absent.
/// Either way `<path>.pub` is (re)written. Returns the keypair and whether it
/// was created.
pub fn load_or_create_keypair(path: &Path) -> Result<(StaticKeypair, bool), KeyFileError> {
    match fs::metadata(path) {
        Ok(_) => {
            let keypair = load_keypair(path)?;
            write_public(path, &keypair)?;
            Ok((keypair, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::getrandom(&mut seed).map_err(|e| KeyFileError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(e),
            })?;
            Ok((write_new_keypair(path, seed)?, true))
        }
        Err(e) => Err(io_err(path)(e)),
    }
}

/// A server public key given as a file holding 64 hex digits, or as the 64
/// hex digits themselves.
pub fn load_public_key(path_or_hex: &str) -> Result<[u8; 32], KeyFileError> {
    let path = Path::new(path_or_hex);
    if path_or_hex.len() == 64
        && path_or_hex.bytes().all(|b| b.is_ascii_hexdigit())
        && !path.exists()
    {
        return parse_hex32(path_or_hex, Path::new("<hex>"));
    }
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    parse_hex32(&text, path)
}

/// Loads a pre-shared key file (64 hex digits, mode 0600).
pub fn load_psk(path: &Path) -> Result<[u8; 32], KeyFileError> {
    read_secret(path)
}

/// Creates a new PSK file (mode 0600; refuses to overwrite) from `random`.
pub fn write_new_psk(path: &Path, random: [u8; 32]) -> Result<(), KeyFileError> {
    write_new(path, 0o600, &format!("{}\n", hex::encode(random)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stcp-keys-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir.join("server.key")
    }

    #[test]
    fn create_then_load() {
        let path = tmp("create");
        let (kp, created) = load_or_create_keypair(&path).unwrap();
        assert!(created);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (again, created) = load_or_create_keypair(&path).unwrap();
        assert!(!created);
        assert_eq!(again.public, kp.public);
        let pub_hex = fs::read_to_string(public_key_path(&path)).unwrap();
        assert_eq!(pub_hex.trim(), kp.public_hex());
        assert_eq!(
            load_public_key(public_key_path(&path).to_str().unwrap()).unwrap(),
            kp.public
        );
        assert_eq!(load_public_key(&kp.public_hex()).unwrap(), kp.public);
        assert!(matches!(
            write_new_keypair(&path, [1; 32]),
            Err(KeyFileError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn world_readable_private_key_is_refused() {
        let path = tmp("open");
        write_new_keypair(&path, [5; 32]).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_keypair(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::TooOpen { mode: 0o644, .. }));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn generation_is_deterministic_in_its_seed() {
        assert_eq!(
            StaticKeypair::generate([1; 32]).public,
            StaticKeypair::generate([1; 32]).public
        );
        assert_ne!(
            StaticKeypair::generate([1; 32]).public,
            StaticKeypair::generate([2; 32]).public
        );
    }
}
