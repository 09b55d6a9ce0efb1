//! What a [`crate::Server`] is started with: listeners, cores, keys, limits and the io backend.

use std::{net::SocketAddr, str::FromStr, time::Duration};

use stcp_proto::{CryptoBackend, StaticKeypair, DEFAULT_MAX_FRAME};

use crate::tls::TlsIdentity;

/// Default [`Config::conn_buffer_limit`]: 64 KiB of buffers per connection.
pub const DEFAULT_CONN_BUFFER_LIMIT: usize = 64 << 10;

/// Which io backend serves connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoBackend {
    /// io_uring when the probe says it works, otherwise epoll with one warning line.
    #[default]
    Auto,
    /// io_uring or fail, naming the cause.
    Uring,
    /// epoll through tokio, a current-thread runtime per core.
    Epoll,
}

impl IoBackend {
    /// Every backend, default first.
    pub const ALL: [IoBackend; 3] = [IoBackend::Auto, IoBackend::Uring, IoBackend::Epoll];

    /// The name users type.
    pub fn name(self) -> &'static str {
        match self {
            IoBackend::Auto => "auto",
            IoBackend::Uring => "uring",
            IoBackend::Epoll => "epoll",
        }
    }
}

impl FromStr for IoBackend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(IoBackend::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(IoBackend::Uring),
            "epoll" => Ok(IoBackend::Epoll),
            other => Err(format!(
                "unknown io backend '{other}': expected auto, uring or epoll"
            )),
        }
    }
}

impl std::fmt::Display for IoBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Server configuration. [`Config::new`] gives the defaults the binary uses.
#[derive(Clone, Debug)]
pub struct Config {
    /// STCP listener address (`None`: no STCP listener). Port 0 picks an ephemeral port.
    pub stcp_listen: Option<SocketAddr>,
    /// Raw framed TCP listener address (`None`: none).
    pub tcp_listen: Option<SocketAddr>,
    /// TLS 1.3 listener address (`None`: none, the default). Needs [`Config::tls_identity`].
    pub tls_listen: Option<SocketAddr>,
    /// The certificate and key the TLS listener presents ([`TlsIdentity::load_or_create`] reads
    /// or makes the binary's; [`TlsIdentity::generate`] makes a fresh one for embedding).
    pub tls_identity: Option<TlsIdentity>,
    /// TLS: after each handshake, hand the traffic keys to the kernel (kTLS). The server refuses
    /// to start when the kernel has no TLS ULP.
    pub ktls: bool,
    /// Worker threads, one per core (0: every core).
    pub cores: usize,
    /// Pin worker `i` to core `i` (modulo the cores present).
    pub pin_cores: bool,
    /// The server's static keypair (clients pin its public half).
    pub keypair: StaticKeypair,
    /// With a pre-shared key, only clients holding it complete the handshake.
    pub psk: Option<[u8; 32]>,
    /// AES-GCM implementation for records.
    pub crypto: CryptoBackend,
    /// io backend.
    pub io: IoBackend,
    /// Most connections open at once over all workers; more are accepted and closed at once.
    pub max_conns: usize,
    /// Largest frame payload accepted from a client (STCP records and raw TCP frames).
    pub max_frame: usize,
    /// A client must finish its handshake within this time.
    pub handshake_timeout: Duration,
    /// Close a connection with no traffic for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Print a stats line to stderr at this interval (`None`: no stats thread).
    pub stats_interval: Option<Duration>,
    /// io_uring: size of each provided receive buffer.
    pub ring_buf_size: usize,
    /// io_uring: number of provided receive buffers per worker (power of two, <= 32768).
    pub ring_bufs: u16,
    /// Per connection: once its buffers (received records and echoes not yet sent, counted in
    /// bytes received, and the record being reassembled) hold more than this many bytes, stop
    /// reading from the connection until they are down to half (a client that does not read
    /// its echoes cannot make the server buffer without bound, whatever its frames' length).
    pub conn_buffer_limit: usize,
    /// On stop: how long to wait for close records and queued echoes to drain before closing
    /// connections abortively.
    pub close_grace: Duration,
    /// io_uring: before sleeping for completions, each worker spins on its completion queue for
    /// up to this long (`Duration::ZERO`: off, the default). It keeps the worker's core busy while
    /// idle, trading CPU for the wake-up of a sleeping thread. The epoll backend ignores it.
    pub busy_poll: Duration,
    /// Most handshakes per second each worker computes for one source address (IPv6: one /64),
    /// as a token bucket with bursts of the same size (`None`: no limit, the default). A hello
    /// over the limit closes its connection unanswered, counted as `handshake_rate_limited`.
    pub handshake_rate_per_ip: Option<u32>,
    /// Serve Prometheus metrics over HTTP at `/metrics` on this address, from a thread of its
    /// own (`None`: no metrics endpoint, the default). Port 0 picks an ephemeral port
    /// ([`crate::ServerHandle::metrics_addr`]).
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// Defaults: STCP on 127.0.0.1:7443, TCP on 127.0.0.1:7444, no TLS listener, every core, 10000 connections,
    /// 16 MiB frames, 10 s handshake timeout, 300 s idle timeout, 64 KiB of buffers per
    /// connection, no stats thread, no busy poll, no metrics endpoint.
    pub fn new(keypair: StaticKeypair) -> Config {
        Config {
            stcp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 7443))),
            tcp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 7444))),
            tls_listen: None,
            tls_identity: None,
            ktls: false,
            cores: 0,
            pin_cores: true,
            keypair,
            psk: None,
            crypto: CryptoBackend::default(),
            io: IoBackend::Auto,
            max_conns: 10_000,
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(300)),
            stats_interval: None,
            ring_buf_size: 32 * 1024,
            ring_bufs: 1024,
            conn_buffer_limit: DEFAULT_CONN_BUFFER_LIMIT,
            close_grace: Duration::from_millis(500),
            busy_poll: Duration::ZERO,
            handshake_rate_per_ip: None,
            metrics_listen: None,
        }
    }

    /// A configuration for tests and embedding: the STCP and TCP listeners on 127.0.0.1 with
    /// ephemeral ports (no TLS listener: see [`Config::with_ephemeral_tls`]).
    pub fn ephemeral(keypair: StaticKeypair) -> Config {
        Config {
            stcp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            tcp_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Config::new(keypair)
        }
    }

    /// Adds a TLS listener on 127.0.0.1 with an ephemeral port and a freshly generated
    /// certificate (for tests and embedding; clients pin `ServerHandle::tls_cert_pem`).
    pub fn with_ephemeral_tls(mut self) -> Result<Config, crate::tls::CertFileError> {
        self.tls_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        self.tls_identity = Some(TlsIdentity::generate()?);
        Ok(self)
    }

    /// Worker count this configuration resolves to on this machine.
    pub fn worker_count(&self) -> usize {
        if self.cores > 0 {
            self.cores
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}
