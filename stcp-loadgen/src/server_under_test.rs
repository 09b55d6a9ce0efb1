//! The server a load runs against: an stcp-server embedded in this process on loopback (started
//! for one run, or once per backend combination of a suite), or an external one named by its
//! addresses. Either way it says where each mode connects, which key to pin and which cores the
//! client threads get.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use crate::embedded::EmbeddedServer;
use stcp_proto::{KeyFileError, Mode};
use stcp_server::messages::{self, KeyRole};

/// The public key file a local `stcp-server` writes next to its key, used when neither
/// --server-key nor the embedded server gives one.
pub const DEFAULT_SERVER_KEY_FILE: &str = "stcp-server.key.pub";

/// Where the load goes.
pub enum ServerUnderTest {
    /// Started by this process on 127.0.0.1 ephemeral ports, listening for every mode.
    Embedded(Box<EmbeddedServer>),
    /// A server started elsewhere.
    External(ExternalServer),
}

/// A server started elsewhere: the addresses its name resolved to per mode, tried in turn until
/// one accepts (empty: that mode is not served), and the key to pin (None: STCP runs cannot
/// start).
#[derive(Debug, Clone)]
pub struct ExternalServer {
    pub stcp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
    pub public_key: Option<[u8; 32]>,
}

/// Where `suite` and `sweep` find the server under test: a running one named by its addresses, or
/// (without --target) one embedded in this process.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TargetArgs {
    /// STCP address of a running server (with --tcp-target); default: an embedded server.
    #[arg(long, value_name = "HOST:PORT", requires = "tcp_target")]
    pub target: Option<String>,
    /// Raw framed TCP address of that server.
    #[arg(long, value_name = "HOST:PORT", requires = "target")]
    pub tcp_target: Option<String>,
    /// TLS address of that server (TLS runs need it).
    #[arg(long, value_name = "HOST:PORT", requires = "target")]
    pub tls_target: Option<String>,
    /// Public key of the server at --target: a file holding hex, or 64 hex characters
    /// (default: ./stcp-server.key.pub).
    #[arg(long, value_name = "FILE|HEX", requires = "target")]
    pub server_key: Option<String>,
    /// Certificate (PEM) of the server at --tls-target, pinned (default: ./stcp-server.crt).
    #[arg(long, value_name = "FILE", requires = "tls_target")]
    pub server_cert: Option<PathBuf>,
    /// Pre-shared key file, for a server started with --psk (the embedded server then uses it too).
    #[arg(long, value_name = "FILE")]
    pub psk: Option<PathBuf>,
}

impl TargetArgs {
    /// The running server these options name, its names resolved and its key loaded; None when
    /// the server is to be embedded.
    pub fn external(&self) -> Result<Option<ExternalServer>, TargetError> {
        let (Some(stcp), Some(tcp)) = (&self.target, &self.tcp_target) else {
            return Ok(None);
        };
        Ok(Some(ExternalServer {
            stcp: resolve(stcp)?,
            tcp: resolve(tcp)?,
            tls: match &self.tls_target {
                Some(tls) => resolve(tls)?,
                None => Vec::new(),
            },
            public_key: Some(load_server_key(self.server_key.as_deref())?),
        }))
    }
}

/// Why a server cannot be named or its key loaded.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0}: not HOST:PORT: give e.g. 127.0.0.1:7443, [::1]:7443 or localhost:7443")]
    NoPort(String),
    #[error("cannot resolve {target}: {cause}: check the host name, or give an IP address")]
    Resolve { target: String, cause: String },
    #[error("no server key: give --server-key FILE|HEX, or run where stcp-server wrote {DEFAULT_SERVER_KEY_FILE}")]
    NoServerKey,
    #[error("{}", messages::key_file("--server-key", KeyRole::PinnedKey, .1))]
    ServerKey(String, KeyFileError),
}

impl ServerUnderTest {
    /// The addresses to load in `mode`, to try in turn; empty when the server does not serve
    /// that mode.
    pub fn addrs(&self, mode: Mode) -> Vec<SocketAddr> {
        match self {
            ServerUnderTest::Embedded(server) => vec![server.addr(mode)],
            ServerUnderTest::External(server) => match mode {
                Mode::Stcp => server.stcp.clone(),
                Mode::Tcp => server.tcp.clone(),
                Mode::Tls => server.tls.clone(),
            },
        }
    }

    /// The first address to load in `mode`; None when the server does not serve that mode.
    pub fn addr(&self, mode: Mode) -> Option<SocketAddr> {
        self.addrs(mode).first().copied()
    }

    /// The certificate to pin in TLS mode (PEM): the embedded server's; None for an external
    /// server, whose certificate the TLS client's options name.
    pub fn tls_cert_pem(&self) -> Option<&str> {
        match self {
            ServerUnderTest::Embedded(server) => server.tls_cert_pem(),
            ServerUnderTest::External(_) => None,
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

/// Resolves HOST:PORT to every address it names, in the resolver's order (IPv6 and IPv4 alike),
/// without repeats: a run tries them in turn until one accepts.
pub fn resolve(target: &str) -> Result<Vec<SocketAddr>, TargetError> {
    let has_port = target.rsplit_once(':').is_some_and(|(host, port)| {
        // An IPv6 address goes in brackets, or its last group would read as the port.
        let host_ok = !host.is_empty()
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
        host_ok && port.parse::<u16>().is_ok()
    });
    if !has_port {
        return Err(TargetError::NoPort(target.into()));
    }
    let resolve_error = |cause: String| TargetError::Resolve {
        target: target.into(),
        cause,
    };
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in target
        .to_socket_addrs()
        .map_err(|e| resolve_error(e.to_string()))?
    {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(resolve_error("no address".into()));
    }
    Ok(addrs)
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
            stcp: vec!["127.0.0.1:7443".parse().unwrap()],
            tcp: Vec::new(),
            tls: Vec::new(),
            public_key: None,
        });
        assert!(server.addr(Mode::Stcp).is_some());
        assert!(server.addr(Mode::Tcp).is_none());
        assert!(server.public_key().is_none());
        assert!(server.embedded().is_none());
    }

    #[test]
    fn resolve_gives_every_address_and_wants_a_port() {
        assert_eq!(
            resolve("[::1]:7443").unwrap(),
            vec!["[::1]:7443".parse::<SocketAddr>().unwrap()]
        );
        let local = resolve("localhost:7443").unwrap();
        assert!(!local.is_empty() && local.iter().all(|a| a.ip().is_loopback()));
        for bad in ["127.0.0.1", "localhost", ":7443", "127.0.0.1:port", "::1"] {
            let e = resolve(bad).unwrap_err();
            assert!(
                matches!(e, TargetError::NoPort(_)) && e.to_string().contains("[::1]:7443"),
                "{bad}: {e}"
            );
        }
    }
}
