//! What each side of a connection is configured with.

use crate::codec::DEFAULT_MAX_FRAME;
use crate::crypto::{CryptoProvider, AWS_LC};
use crate::keys::StaticKeypair;

/// A server's configuration.
#[derive(Clone)]
pub struct ServerConfig {
    /// The server's static X25519 keypair; clients pin its public half.
    pub keypair: StaticKeypair,
    /// With a pre-shared key the server accepts only NKpsk2 handshakes made
    /// with the same key.
    pub psk: Option<[u8; 32]>,
    /// The record layer's AES-256-GCM implementation.
    pub crypto: &'static CryptoProvider,
    /// Largest frame payload accepted from a client.
    pub max_frame: usize,
}

impl ServerConfig {
    /// A configuration with the default backend, no PSK and the default frame limit.
    pub fn new(keypair: StaticKeypair) -> Self {
        ServerConfig {
            keypair,
            psk: None,
            crypto: &AWS_LC,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

/// A client's configuration.
#[derive(Clone)]
pub struct ClientConfig {
    /// The server's static public key, pinned: a server without its private
    /// half cannot complete the handshake.
    pub server_public: [u8; 32],
    /// The pre-shared key, when the server requires one.
    pub psk: Option<[u8; 32]>,
    /// The record layer's AES-256-GCM implementation.
    pub crypto: &'static CryptoProvider,
    /// Largest frame payload accepted from the server.
    pub max_frame: usize,
}

impl ClientConfig {
    /// A configuration pinning `server_public`, with the default backend, no
    /// PSK and the default frame limit.
    pub fn new(server_public: [u8; 32]) -> Self {
        ClientConfig {
            server_public,
            psk: None,
            crypto: &AWS_LC,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}
