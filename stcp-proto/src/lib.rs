//! The STCP protocol as a sans-IO library.
//!
//! Bytes go in, events and bytes come out; time and randomness are passed in by
//! the caller. Nothing here opens a socket, starts a thread or reads a clock, so
//! the server, the load generator, the fuzzers and the tests all drive the same
//! state machines. The wire format is specified in `docs/PROTOCOL.md`.
//!
//! Layers, bottom up:
//! - [`frame`]: 4-byte big-endian length + payload; raw TCP mode is exactly this.
//! - [`crypto`]: the AES-256-GCM provider abstraction and its two backends.
//! - [`record`]: encrypted records (one application frame = one record), their
//!   per-direction counters, rekeying and the authenticated close.
//! - [`handshake`]: the Noise NK / NKpsk2 handshake that produces a [`Session`].
//! - [`connection`]: a buffered state machine tying the layers together, for
//!   tests, fuzzers and simple drivers; fast drivers use the layers directly.
//! - [`keys`]: static keypair generation and key files.

pub mod config;
pub mod connection;
pub mod crypto;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod keys;
pub mod record;
mod resolver;

pub use config::{ClientConfig, ServerConfig};
pub use connection::{Connection, Event, Mode};
pub use crypto::{AeadKey, CryptoBackend, CryptoProvider, AWS_LC, RUSTCRYPTO};
pub use error::Error;
pub use frame::{frame_len, FrameDecoder, DEFAULT_MAX_FRAME, FRAME_HEADER_LEN};
pub use handshake::{ClientHandshake, ServerHandshake, Session, HANDSHAKE_MAX_LEN};
pub use keys::{
    load_keypair, load_or_create_keypair, load_psk, load_public_key, public_key_path, KeyFileError,
    StaticKeypair,
};
pub use record::{
    open_batch, seal_batch, write_record_header, CipherState, RecordHeader, RecordOpener,
    RecordSealer, RecordType, RekeyPolicy, RECORD_HEADER_LEN, RECORD_OVERHEAD, TAG_LEN,
};
