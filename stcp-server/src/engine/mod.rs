//! The two io backends and what their workers share (read-only configuration, the global
//! connection count touched only on accept/close, the stop flag, the counters).

pub mod epoll;
pub mod uring;

use std::{
    io,
    net::TcpListener,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc, Arc,
    },
};

use stcp_proto::Mode;

use crate::{config::Config, stats::Stats};

/// Most server handshake halves (STCP or TLS) a worker computes per loop iteration: the io_uring
/// worker's bounded step (`uring/hello.rs`) and the epoll worker's turn (`epoll.rs`,
/// `handshake_turn`).
pub(crate) const HANDSHAKES_PER_TURN: usize = 4;

/// State shared by every worker. Nothing here is touched on the per-frame hot path except the
/// worker's own counters block.
pub struct Shared {
    /// The server configuration.
    pub config: Config,
    /// stcp-proto's view of it (keys, PSK, crypto provider, max frame).
    pub proto: stcp_proto::ServerConfig,
    /// The TLS listener's rustls configuration, built once and only read.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Set once to stop every worker.
    pub stop: Arc<AtomicBool>,
    /// Connections open over all workers (checked against `max_conns` on accept).
    pub open_conns: AtomicUsize,
    /// Counters, one block per worker.
    pub stats: Arc<Stats>,
}

impl Shared {
    /// Admits one more connection unless `max_conns` are open.
    pub fn admit(&self) -> bool {
        if self.open_conns.fetch_add(1, Ordering::AcqRel) >= self.config.max_conns {
            self.open_conns.fetch_sub(1, Ordering::AcqRel);
            false
        } else {
            true
        }
    }

    /// Releases an admitted connection.
    pub fn release(&self) {
        self.open_conns.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether the server is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// One worker's listeners (any may be absent).
pub struct WorkerListeners {
    /// STCP listener.
    pub stcp: Option<TcpListener>,
    /// Raw TCP listener.
    pub tcp: Option<TcpListener>,
    /// TLS listener.
    pub tls: Option<TcpListener>,
}

impl WorkerListeners {
    /// The listeners with the protocol each speaks.
    pub fn into_vec(self) -> Vec<(Mode, TcpListener)> {
        let mut v = Vec::new();
        if let Some(l) = self.stcp {
            v.push((Mode::Stcp, l));
        }
        if let Some(l) = self.tcp {
            v.push((Mode::Tcp, l));
        }
        if let Some(l) = self.tls {
            v.push((Mode::Tls, l));
        }
        v
    }
}

/// How a worker tells [`crate::Server::start`] that it is set up (or why it could not be), with
/// its own index so an error names the right worker.
pub struct Ready {
    /// This worker's index.
    pub index: usize,
    /// Where the start-up result goes.
    pub tx: mpsc::Sender<(usize, io::Result<()>)>,
}

impl Ready {
    /// Reports this worker's start-up result (the receiver may be gone: nothing to do then).
    pub fn send(&self, result: io::Result<()>) {
        let _ = self.tx.send((self.index, result));
    }
}
