//! The embedded server: with no --target, an stcp-server is started in this process on
//! ephemeral ports of 127.0.0.1 (or the address --listen gives, e.g. ::1), its workers pinned to
//! the first cores and the client threads to the rest, so one command measures a whole loopback
//! setup. It listens for every mode: STCP, raw TCP and TLS (with a fresh self-signed certificate,
//! [`EmbeddedServer::tls_cert_pem`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use stcp_proto::{CryptoBackend, StaticKeypair};
use stcp_server::{Backend, Config, IoBackend, Server, ServerError, ServerHandle, TlsIdentity};

use stcp_proto::Mode;

/// A running embedded server and what the client needs to know about it.
pub struct EmbeddedServer {
    handle: ServerHandle,
    /// Public key to pin (STCP).
    pub public_key: [u8; 32],
    /// Cores the server workers are pinned to.
    pub cores: Vec<usize>,
    /// Cores left for the client threads.
    pub client_cores: Vec<usize>,
    /// The AES-GCM implementation the server seals and opens records with.
    pub crypto: CryptoBackend,
    /// The busy poll its workers were given (the epoll backend has none: see
    /// [`EmbeddedServer::busy_poll_in_force`]).
    pub busy_poll: Duration,
}

/// How the machine's cores are split between the embedded server and the client threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreSplit {
    pub server: Vec<usize>,
    pub client: Vec<usize>,
}

/// Half the cores (at least one) for the server's workers, starting at core 0; the rest for the
/// client threads. On one core both share it.
pub fn split_cores(cores: usize) -> CoreSplit {
    let cores = cores.max(1);
    if cores == 1 {
        return CoreSplit {
            server: vec![0],
            client: vec![0],
        };
    }
    let server = cores / 2;
    CoreSplit {
        server: (0..server).collect(),
        client: (server..cores).collect(),
    }
}

/// Where the embedded server listens unless told otherwise.
pub const DEFAULT_LISTEN: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// What an embedded server is started with.
#[derive(Clone, Copy, Debug)]
pub struct EmbeddedOptions {
    /// Address whose ephemeral ports it listens on (--listen).
    pub listen: IpAddr,
    /// AES-GCM implementation.
    pub crypto: CryptoBackend,
    /// io backend (`Auto`: io_uring, else epoll with a warning).
    pub io: IoBackend,
    /// Pre-shared key, if the run uses one.
    pub psk: Option<[u8; 32]>,
    /// Largest frame payload accepted.
    pub max_frame: usize,
    /// Busy poll of its io_uring workers (zero: off).
    pub busy_poll: Duration,
}

impl EmbeddedOptions {
    /// On 127.0.0.1, no PSK, the default frame limit, no busy poll.
    pub fn new(crypto: CryptoBackend, io: IoBackend) -> EmbeddedOptions {
        EmbeddedOptions {
            listen: DEFAULT_LISTEN,
            crypto,
            io,
            psk: None,
            max_frame: stcp_proto::DEFAULT_MAX_FRAME,
            busy_poll: Duration::ZERO,
        }
    }
}

impl EmbeddedServer {
    /// Starts the server on ephemeral ports of `options.listen` with a fresh keypair (from
    /// `seed`), its workers on `split.server`.
    pub fn start(
        split: &CoreSplit,
        options: &EmbeddedOptions,
        seed: [u8; 32],
    ) -> Result<EmbeddedServer, ServerError> {
        let EmbeddedOptions {
            listen,
            crypto,
            io,
            psk,
            max_frame,
            busy_poll,
        } = *options;
        let server_cores = &split.server;
        let keypair = StaticKeypair::generate(seed);
        let public_key = keypair.public;
        let mut config = Config::ephemeral(keypair);
        config.stcp_listen = Some(SocketAddr::new(listen, 0));
        config.tcp_listen = Some(SocketAddr::new(listen, 0));
        // TLS too, with a fresh self-signed certificate the TLS client pins.
        config.tls_listen = Some(SocketAddr::new(listen, 0));
        config.tls_identity = Some(TlsIdentity::generate()?);
        // Its only clients are this process's connections, which --clients already bounds.
        config.max_conns = usize::MAX;
        // Workers are pinned to cores 0..n, which is what `split_cores` reserved for them.
        config.cores = server_cores.len().max(1);
        config.pin_cores = true;
        config.crypto = crypto;
        config.psk = psk;
        config.io = io;
        config.max_frame = max_frame;
        config.busy_poll = busy_poll;
        let handle = Server::start(config)?;
        Ok(EmbeddedServer {
            handle,
            public_key,
            cores: (0..server_cores.len().max(1)).collect(),
            client_cores: split.client.clone(),
            crypto,
            busy_poll,
        })
    }

    /// The busy poll the workers really use: zero on the epoll backend, which ignores it.
    pub fn busy_poll_in_force(&self) -> Duration {
        match self.handle.backend() {
            Backend::Uring => self.busy_poll,
            Backend::Epoll => Duration::ZERO,
        }
    }

    /// The address to load in `mode`.
    pub fn addr(&self, mode: Mode) -> SocketAddr {
        let addr = match mode {
            Mode::Stcp => self.handle.stcp_addr(),
            Mode::Tcp => self.handle.tcp_addr(),
            Mode::Tls => self.handle.tls_addr(),
        };
        addr.expect("the embedded server listens for every mode")
    }

    /// The certificate its TLS listener presents (PEM), for the TLS client to pin.
    pub fn tls_cert_pem(&self) -> Option<&str> {
        self.handle.tls_cert_pem()
    }

    /// The server's io backend ("io_uring" or "epoll").
    pub fn backend(&self) -> &'static str {
        self.handle.backend().name()
    }

    /// Stops the server and waits for its workers.
    pub fn stop(self) {
        self.handle.stop();
        let _ = self.handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_cores_give_the_server_core_0_and_the_client_core_1() {
        assert_eq!(
            split_cores(2),
            CoreSplit {
                server: vec![0],
                client: vec![1]
            }
        );
        assert_eq!(
            split_cores(1),
            CoreSplit {
                server: vec![0],
                client: vec![0]
            }
        );
        assert_eq!(
            split_cores(8),
            CoreSplit {
                server: vec![0, 1, 2, 3],
                client: vec![4, 5, 6, 7]
            }
        );
    }
}
