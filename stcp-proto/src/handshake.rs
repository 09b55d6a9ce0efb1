//! The handshake: Noise_NK_25519_AESGCM_SHA256, or Noise_NKpsk2_25519_AESGCM_SHA256
//! when a pre-shared key is configured, run by the `snow` crate with the
//! primitives of the configured crypto backend (`resolver.rs`).
//!
//! Two messages, each one frame (4-byte length, at most [`HANDSHAKE_MAX_LEN`]):
//! - client hello: `"STCP" | version | pattern | 0x0000 | Noise message 1 (-> e, es)`
//! - server reply: `Noise message 2 (<- e, ee[, psk])`
//!
//! The 8-byte cleartext prefix is also the start of the Noise prologue, so a
//! peer of another version fails cleanly on the prefix, and a prefix altered
//! in transit fails authentication. The split keys leave snow
//! (`risky-raw-split`) and go into our own [`RecordSealer`]/[`RecordOpener`].

use crate::codec::{frame_header, FRAME_HEADER_LEN};
use crate::config::{ClientConfig, ServerConfig};
use crate::record::{RecordOpener, RecordSealer};
use crate::resolver::SeededResolver;
use crate::Error;
use snow::{Builder, HandshakeState};

pub use crate::codec::{handshake_frame_len, HANDSHAKE_MAX_LEN};
/// The first bytes of every client hello.
pub const MAGIC: [u8; 4] = *b"STCP";
/// The protocol version this library speaks.
pub const VERSION: u8 = 2;
/// Length of the client hello's cleartext prefix.
pub const HELLO_PREFIX_LEN: usize = 8;
/// Pattern byte: Noise_NK_25519_AESGCM_SHA256.
pub const PATTERN_NK: u8 = 0;
/// Pattern byte: Noise_NKpsk2_25519_AESGCM_SHA256.
pub const PATTERN_NKPSK2: u8 = 1;

const NOISE_NK: &str = "Noise_NK_25519_AESGCM_SHA256";
const NOISE_NKPSK2: &str = "Noise_NKpsk2_25519_AESGCM_SHA256";
const PROLOGUE_LABEL: &[u8] = b"STCP handshake prologue";
/// A Noise message of this handshake: an ephemeral key and an empty
/// encrypted payload's tag.
const NOISE_MESSAGE_LEN: usize = 32 + 16;

/// The result of a handshake: both directions' record keys.
pub struct Session {
    /// Seals what this side sends.
    pub sealer: RecordSealer,
    /// Opens what the peer sends.
    pub opener: RecordOpener,
    /// The Noise handshake hash, identical on both sides (channel binding).
    pub handshake_hash: [u8; 32],
}

fn hello_prefix(pattern: u8) -> [u8; HELLO_PREFIX_LEN] {
    [
        MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, pattern, 0, 0,
    ]
}

fn prologue(prefix: &[u8; HELLO_PREFIX_LEN]) -> Vec<u8> {
    let mut p = Vec::with_capacity(PROLOGUE_LABEL.len() + HELLO_PREFIX_LEN);
    p.extend_from_slice(PROLOGUE_LABEL);
    p.extend_from_slice(prefix);
    p
}

fn noise_name(pattern: u8) -> &'static str {
    if pattern == PATTERN_NKPSK2 {
        NOISE_NKPSK2
    } else {
        NOISE_NK
    }
}

/// snow's error for a message that failed to authenticate, or was malformed.
fn noise_error(e: snow::Error) -> Error {
    match e {
        snow::Error::Decrypt => Error::HandshakeAuthFailed,
        _ => Error::BadHandshake,
    }
}

fn split_session(
    hs: &mut HandshakeState,
    initiator: bool,
    crypto: &'static crate::CryptoProvider,
    max_frame: usize,
) -> Session {
    let mut handshake_hash = [0u8; 32];
    handshake_hash.copy_from_slice(&hs.get_handshake_hash()[..32]);
    let (mut i2r, mut r2i) = hs.dangerously_get_raw_split();
    let session = if initiator {
        Session {
            sealer: RecordSealer::new(crypto, &i2r),
            opener: RecordOpener::new(crypto, &r2i, max_frame),
            handshake_hash,
        }
    } else {
        Session {
            sealer: RecordSealer::new(crypto, &r2i),
            opener: RecordOpener::new(crypto, &i2r, max_frame),
            handshake_hash,
        }
    };
    i2r.fill(0);
    r2i.fill(0);
    session
}

/// The client's half of a handshake in progress.
pub struct ClientHandshake {
    noise: HandshakeState,
    crypto: &'static crate::CryptoProvider,
    max_frame: usize,
}

impl ClientHandshake {
    /// Starts a handshake with the server `config` pins. Returns the
    /// handshake and the whole first frame to send (header included).
    /// `rng_seed` seeds the ephemeral key: pass fresh OS randomness, or a
    /// fixed value in tests.
    pub fn start(config: &ClientConfig, rng_seed: [u8; 32]) -> Result<(Self, Vec<u8>), Error> {
        let pattern = if config.psk.is_some() {
            PATTERN_NKPSK2
        } else {
            PATTERN_NK
        };
        let prefix = hello_prefix(pattern);
        let prologue = prologue(&prefix);
        let params = noise_name(pattern).parse().map_err(noise_error)?;
        let resolver = SeededResolver::new(rng_seed, config.crypto.backend);
        let mut builder = Builder::with_resolver(params, Box::new(resolver))
            .prologue(&prologue)
            .map_err(noise_error)?
            .remote_public_key(&config.server_public)
            .map_err(noise_error)?;
        if let Some(psk) = &config.psk {
            builder = builder.psk(2, psk).map_err(noise_error)?;
        }
        let mut noise = builder.build_initiator().map_err(noise_error)?;
        let mut frame = vec![0u8; FRAME_HEADER_LEN + HELLO_PREFIX_LEN + NOISE_MESSAGE_LEN];
        let body = &mut frame[FRAME_HEADER_LEN..];
        body[..HELLO_PREFIX_LEN].copy_from_slice(&prefix);
        let n = noise
            .write_message(&[], &mut body[HELLO_PREFIX_LEN..])
            .map_err(noise_error)?;
        debug_assert_eq!(n, NOISE_MESSAGE_LEN);
        frame[..FRAME_HEADER_LEN].copy_from_slice(&frame_header(HELLO_PREFIX_LEN + n));
        Ok((
            ClientHandshake {
                noise,
                crypto: config.crypto,
                max_frame: config.max_frame,
            },
            frame,
        ))
    }

    /// Finishes the handshake with the server's reply (the frame's payload,
    /// without its 4-byte header).
    pub fn finish(mut self, frame_payload: &[u8]) -> Result<Session, Error> {
        if frame_payload.len() != NOISE_MESSAGE_LEN {
            return Err(Error::BadHandshake);
        }
        let mut payload = [0u8; NOISE_MESSAGE_LEN];
        self.noise
            .read_message(frame_payload, &mut payload)
            .map_err(noise_error)?;
        if !self.noise.is_handshake_finished() {
            return Err(Error::BadHandshake);
        }
        Ok(split_session(
            &mut self.noise,
            true,
            self.crypto,
            self.max_frame,
        ))
    }
}

/// The server's side of a handshake. NK is one round trip, so the server
/// handles the whole handshake in one call.
pub struct ServerHandshake;

impl ServerHandshake {
    /// Answers a client hello (`frame_payload`: the frame without its 4-byte
    /// header). Writes the whole reply frame, header included, into `reply`
    /// (cleared first) and returns the session. `rng_seed` seeds the
    /// ephemeral key.
    pub fn accept(
        config: &ServerConfig,
        rng_seed: [u8; 32],
        frame_payload: &[u8],
        reply: &mut Vec<u8>,
    ) -> Result<Session, Error> {
        let prefix = Self::check_prefix(config, frame_payload)?;
        let pattern = prefix[5];
        let prologue = prologue(&prefix);
        let params = noise_name(pattern).parse().map_err(noise_error)?;
        let resolver = SeededResolver::new(rng_seed, config.crypto.backend);
        let mut builder = Builder::with_resolver(params, Box::new(resolver))
            .prologue(&prologue)
            .map_err(noise_error)?
            .local_private_key(&config.keypair.private)
            .map_err(noise_error)?;
        if let Some(psk) = &config.psk {
            builder = builder.psk(2, psk).map_err(noise_error)?;
        }
        let mut noise = builder.build_responder().map_err(noise_error)?;
        let message = &frame_payload[HELLO_PREFIX_LEN..];
        if message.len() != NOISE_MESSAGE_LEN {
            return Err(Error::BadHandshake);
        }
        let mut payload = [0u8; NOISE_MESSAGE_LEN];
        noise
            .read_message(message, &mut payload)
            .map_err(noise_error)?;
        reply.clear();
        reply.resize(FRAME_HEADER_LEN + NOISE_MESSAGE_LEN, 0);
        let n = noise
            .write_message(&[], &mut reply[FRAME_HEADER_LEN..])
            .map_err(noise_error)?;
        debug_assert_eq!(n, NOISE_MESSAGE_LEN);
        reply[..FRAME_HEADER_LEN].copy_from_slice(&frame_header(n));
        if !noise.is_handshake_finished() {
            return Err(Error::BadHandshake);
        }
        Ok(split_session(
            &mut noise,
            false,
            config.crypto,
            config.max_frame,
        ))
    }

    /// The checks [`ServerHandshake::accept`] makes before any Diffie-Hellman: magic, version,
    /// pattern against the server's PSK, reserved bytes, message length. A server can refuse
    /// a malformed hello with the same error `accept` would give, before it spends (or
    /// budgets, or rate-limits) a handshake on it.
    pub fn check_hello(config: &ServerConfig, frame_payload: &[u8]) -> Result<(), Error> {
        Self::check_prefix(config, frame_payload)?;
        if frame_payload.len() != HELLO_PREFIX_LEN + NOISE_MESSAGE_LEN {
            return Err(Error::BadHandshake);
        }
        Ok(())
    }

    fn check_prefix(config: &ServerConfig, hello: &[u8]) -> Result<[u8; HELLO_PREFIX_LEN], Error> {
        if hello.len() < MAGIC.len() || hello[..MAGIC.len()] != MAGIC {
            return Err(Error::NotStcp);
        }
        if hello.len() < HELLO_PREFIX_LEN {
            return Err(Error::BadHandshake);
        }
        let version = hello[4];
        if version != VERSION {
            return Err(Error::VersionMismatch {
                got: version,
                ours: VERSION,
            });
        }
        let pattern = hello[5];
        match (pattern, config.psk.is_some()) {
            (PATTERN_NK, false) | (PATTERN_NKPSK2, true) => {}
            (PATTERN_NK, true) => return Err(Error::PskRequired),
            (PATTERN_NKPSK2, false) => return Err(Error::PskNotConfigured),
            (other, _) => return Err(Error::UnknownPattern(other)),
        }
        if hello[6] != 0 || hello[7] != 0 {
            return Err(Error::BadHandshake);
        }
        let mut prefix = [0u8; HELLO_PREFIX_LEN];
        prefix.copy_from_slice(&hello[..HELLO_PREFIX_LEN]);
        Ok(prefix)
    }
}
