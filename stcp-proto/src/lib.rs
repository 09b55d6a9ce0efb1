//! The STCP protocol as a sans-IO library.
//!
//! Bytes go in, events and bytes come out; time and randomness are passed in by
//! the caller. Nothing here opens a socket, starts a thread or reads a clock, so
//! the server, the load generator, the fuzzers and the tests all drive the same
//! state machines. The wire format is specified in `docs/PROTOCOL.md`.
//!
//! Layers, bottom up:
//! - [`codec`]: the one reader of peer bytes: unit headers (handshake frames,
//!   records, plain frames) with every limit checked, and the incremental
//!   zero-copy [`Decoder`]. Raw TCP mode is exactly its plain frames.
//! - [`crypto`]: the AES-256-GCM provider abstraction and its two backends.
//! - [`record`]: encrypted records (a frame is one or more records of at most
//!   16 KiB), the rules that tie them into frames, their
//!   per-direction counters, rekeying and the authenticated close.
//! - [`handshake`]: the Noise NK / NKpsk2 handshake that produces a [`Session`].
//! - [`connection`]: a buffered state machine tying the layers together, for
//!   tests, fuzzers and simple drivers; fast drivers use the layers directly.
//! - [`keys`]: static keypair generation and key files.

pub mod codec;
pub mod config;
pub mod connection;
pub mod crypto;
pub mod error;
pub mod handshake;
pub mod keys;
pub mod record;
mod resolver;

pub use codec::{
    frame_len, frame_records, sealed_frame_len, Codec, Decoded, Decoder, FrameSequence,
    FrameStream, Framing, Split, StreamError, BEGIN_HEADER_LEN, DEFAULT_MAX_FRAME,
    FRAME_HEADER_LEN, MAX_FRAME_LEN, MAX_RECORD_LEN, MAX_RECORD_PAYLOAD,
};
pub use config::{ClientConfig, ServerConfig};
pub use connection::{Connection, Event, Mode};
pub use crypto::{AeadKey, CryptoBackend, CryptoProvider, AWS_LC, RUSTCRYPTO};
pub use error::Error;
pub use handshake::{ClientHandshake, ServerHandshake, Session, HANDSHAKE_MAX_LEN};
pub use keys::{
    load_keypair, load_or_create_keypair, load_psk, load_public_key, public_key_path, KeyFileError,
    StaticKeypair,
};
pub use record::{
    open_batch, seal_batch, write_record_header, CipherState, RecordHeader, RecordOpener,
    RecordSealer, RecordType, RekeyPolicy, RECORD_HEADER_LEN, RECORD_OVERHEAD, TAG_LEN,
};

/// Plain frames: the old home of the frame header functions, kept so existing
/// paths (`stcp_proto::frame::FRAME_HEADER_LEN`...) still work. They live in
/// [`codec`]; decode with [`codec::Decoder`] and [`codec::Framing::Frames`].
pub mod frame {
    pub use crate::codec::{frame_header, frame_len, DEFAULT_MAX_FRAME, FRAME_HEADER_LEN};
}
