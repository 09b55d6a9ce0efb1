//! The server a load runs against: an stcp-server embedded in this process on loopback (started
//! for one run, or once per backend combination of a suite), or an external one named by its
//! addresses. Either way it says where each mode connects, which key to pin and which cores the
//! client threads get.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use crate::embedded::EmbeddedServer;
use stcp_proto::Mode;

/// The public key file a local `stcp-server` writes next to its key, used when neither
/// --server-key nor the embedded server gives one.
pub const DEFAULT_SERVER_KEY_FILE: &str = "stcp-server.key.pub";

/// Where the load goes.
pub enum ServerUnderTest {
    /// Started by this process on 127.0.0.1 ephemeral ports, listening for both modes.
    Embedded(EmbeddedServer),
    /// A server started elsewhere.
    External(ExternalServer),
}

/// A server started elsewhere: its address per mode (None: that mode is not served) and the key
/// to pin (None: STCP runs cannot start).
pub struct ExternalServer {
    pub stcp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub public_key: Option<[u8; 32]>,
}

/// Why a server cannot be named or its key loaded.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    #[error("no server key: give --server-key FILE|HEX, or run where stcp-server wrote {DEFAULT_SERVER_KEY_FILE}")]
    NoServerKey,
    #[error("--server-key {0}: {1}")]
    ServerKey(String, stcp_proto::KeyFileError),
}

impl ServerUnderTest {
    /// The address to load in `mode`; None when the server does not serve that mode.
    pub fn addr(&self, mode: Mode) -> Option<SocketAddr> {
        match self {
            ServerUnderTest::Embedded(server) => Some(server.addr(mode)),
            ServerUnderTest::External(server) => match mode {
                Mode::Stcp => server.stcp,
                Mode::Tcp => server.tcp,
            },
        }
    }

    /// The server's static public key, to pin in STCP mode.
    pub fn public_key(&self) -> Option<[u8; 32]> {
        match self {
            ServerUnderTest::Embedded(server) => Some(server.public_key),
            ServerUnderTest::External(server) => server.public_key,
        }
    }

    /// Cores for the client threads: those the embedded server left free, or, against an external
    /// server, every core this process may run on (its affinity mask, so `taskset` is honoured).
    pub fn client_cores(&self) -> Vec<usize> {
        match self {
            ServerUnderTest::Embedded(server) => server.client_cores.clone(),
            ServerUnderTest::External(_) => allowed_cores(),
        }
    }

    pub fn embedded(&self) -> Option<&EmbeddedServer> {
        match self {
            ServerUnderTest::Embedded(server) => Some(server),
            ServerUnderTest::External(_) => None,
        }
    }

    /// Stops an embedded server and waits for its workers; nothing to do for an external one.
    pub fn stop(self) {
        if let ServerUnderTest::Embedded(server) = self {
            server.stop();
        }
    }
}

/// Resolves HOST:PORT to its first address.
pub fn resolve(target: &str) -> Result<SocketAddr, TargetError> {
    target
        .to_socket_addrs()
        .map_err(|e| TargetError::Resolve(target.into(), e.to_string()))?
        .next()
        .ok_or_else(|| TargetError::Resolve(target.into(), "no address".into()))
}

/// The key to pin for an external server: --server-key (a file holding hex, or hex), else the
/// key file a local stcp-server wrote in the working directory.
pub fn load_server_key(server_key: Option<&str>) -> Result<[u8; 32], TargetError> {
    match server_key {
        Some(key) => {
            stcp_proto::load_public_key(key).map_err(|e| TargetError::ServerKey(key.to_string(), e))
        }
        None => {
            if !Path::new(DEFAULT_SERVER_KEY_FILE).exists() {
                return Err(TargetError::NoServerKey);
            }
            stcp_proto::load_public_key(DEFAULT_SERVER_KEY_FILE)
                .map_err(|e| TargetError::ServerKey(DEFAULT_SERVER_KEY_FILE.into(), e))
        }
    }
}

/// The cores in this process's affinity mask, in order (every core when it cannot be read).
pub fn allowed_cores() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    if ids.is_empty() {
        (0..crate::environment::cores()).collect()
    } else {
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_cores_are_real_core_ids() {
        let cores = allowed_cores();
        assert!(!cores.is_empty());
        assert_eq!(cores.len(), crate::environment::cores());
    }

    #[test]
    fn an_external_server_serves_only_the_modes_it_names() {
        let server = ServerUnderTest::External(ExternalServer {
            stcp: Some("127.0.0.1:7443".parse().unwrap()),
            tcp: None,
            public_key: None,
        });
        assert!(server.addr(Mode::Stcp).is_some());
        assert!(server.addr(Mode::Tcp).is_none());
        assert!(server.public_key().is_none());
        assert!(server.embedded().is_none());
    }
}
