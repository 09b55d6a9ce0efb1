//! Starting and stopping a server: listeners are bound before any worker starts (so bind errors
//! and the chosen ephemeral ports are known when [`Server::start`] returns), then one worker
//! thread per core is started on the chosen io backend.

use std::{
    net::{SocketAddr, TcpListener},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc, Arc,
    },
    thread,
    time::Instant,
};

use crate::{
    config::{Config, IoBackend},
    engine::{self, Shared, WorkerListeners},
    errors::ServerError,
    listener::bind_reuseport,
    metrics::{self, MetricsThread, ServerInfo},
    stats::{spawn_reporter, Stats, StatsSnapshot},
};

/// The io backend a running server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// io_uring.
    Uring,
    /// epoll (tokio).
    Epoll,
}

impl Backend {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "io_uring",
            Backend::Epoll => "epoll",
        }
    }
}

/// Entry point: `Server::start(config)`.
pub struct Server;

/// A running server: its addresses, counters, and the means to stop it. Dropping the handle
/// stops the server and waits for it.
pub struct ServerHandle {
    stcp_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    /// The TLS listener's address and certificate (PEM), boxed: most servers have none.
    tls: Option<Box<(SocketAddr, String)>>,
    backend: Backend,
    workers: Vec<thread::JoinHandle<std::io::Result<()>>>,
    reporter: Option<thread::JoinHandle<()>>,
    /// Stopped once the workers are done (it serves during their drain).
    metrics: Option<MetricsThread>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    started: Instant,
}

/// A cloneable, thread-safe way to stop a server (e.g. from a signal-handling thread).
#[derive(Clone)]
pub struct Stopper(Arc<AtomicBool>);

impl Stopper {
    /// Asks every worker to stop: stop accepting, close connections gracefully, exit.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Server {
    /// Binds the listeners and starts the workers. Returns once every worker is ready.
    pub fn start(config: Config) -> Result<ServerHandle, ServerError> {
        if config.stcp_listen.is_none()
            && config.tcp_listen.is_none()
            && config.tls_listen.is_none()
        {
            return Err(ServerError::NoListener);
        }
        let tls = match (config.tls_listen, &config.tls_identity) {
            (None, _) => None,
            (Some(_), None) => return Err(ServerError::NoTlsIdentity),
            (Some(_), Some(id)) => {
                if config.ktls {
                    // Once, here: not per connection. Where the kernel has the ULP, the hand-over
                    // itself is not built: refused too, naming that.
                    crate::tls::probe_ktls()?;
                    return Err(crate::tls::KtlsUnavailable::NotBuilt.into());
                }
                let cfg = crate::tls::server_config(id, config.ktls)
                    .map_err(|e| ServerError::Tls(Box::new(e)))?;
                Some(Arc::new(cfg))
            }
        };
        let tls_cert_pem = tls
            .as_ref()
            .and(config.tls_identity.as_ref())
            .map(|id| id.cert_pem().to_string());
        let backend = match config.io {
            IoBackend::Epoll => Backend::Epoll,
            IoBackend::Uring => {
                stcp_engine::probe()?;
                Backend::Uring
            }
            IoBackend::Auto => match stcp_engine::probe() {
                Ok(_) => Backend::Uring,
                Err(cause) => {
                    tracing::warn!("io_uring unavailable ({cause}); falling back to epoll");
                    Backend::Epoll
                }
            },
        };
        let n = config.worker_count().max(1);
        let bind = |addr: Option<SocketAddr>| -> Result<(Vec<Option<_>>, Option<SocketAddr>), ServerError> {
            match addr {
                None => Ok(((0..n).map(|_| None).collect(), None)),
                Some(a) => {
                    let (ls, bound) =
                        bind_reuseport(a, n).map_err(|source| ServerError::Listen { addr: a, source })?;
                    Ok((ls.into_iter().map(Some).collect(), Some(bound)))
                }
            }
        };
        let (stcp_ls, stcp_addr) = bind(config.stcp_listen)?;
        let (tcp_ls, tcp_addr) = bind(config.tcp_listen)?;
        let (tls_ls, tls_addr) = bind(config.tls_listen)?;
        let (metrics_listener, metrics_addr) = match config.metrics_listen {
            None => (None, None),
            Some(addr) => {
                let bound = TcpListener::bind(addr).and_then(|l| {
                    let local = l.local_addr()?;
                    Ok((l, local))
                });
                let (l, local) =
                    bound.map_err(|source| ServerError::MetricsListen { addr, source })?;
                (Some(l), Some(local))
            }
        };
        let crypto = config.crypto;

        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::new(n));
        let mut proto = stcp_proto::ServerConfig::new(config.keypair.clone());
        proto.psk = config.psk;
        proto.crypto = config.crypto.provider();
        proto.max_frame = config.max_frame;
        let shared = Arc::new(Shared {
            proto,
            tls,
            stop: stop.clone(),
            open_conns: AtomicUsize::new(0),
            stats: stats.clone(),
            config,
        });

        let cores = if shared.config.pin_cores {
            core_affinity::get_core_ids().unwrap_or_default()
        } else {
            Vec::new()
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut workers = Vec::with_capacity(n);
        for (i, ((stcp, tcp), tls)) in stcp_ls.into_iter().zip(tcp_ls).zip(tls_ls).enumerate() {
            let shared = shared.clone();
            let ready = engine::Ready {
                index: i,
                tx: ready_tx.clone(),
            };
            let core = (!cores.is_empty()).then(|| cores[i % cores.len()]);
            let listeners = WorkerListeners { stcp, tcp, tls };
            let spawned = thread::Builder::new()
                .name(format!("stcp-worker-{i}"))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    match backend {
                        Backend::Uring => engine::uring::run_worker(i, shared, listeners, ready),
                        Backend::Epoll => engine::epoll::run_worker(i, shared, listeners, ready),
                    }
                });
            match spawned {
                Ok(h) => workers.push(h),
                Err(source) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(ServerError::Worker { worker: i, source });
                }
            }
        }
        drop(ready_tx);
        let mut failure = None;
        for _ in 0..n {
            match ready_rx.recv() {
                Ok((_, Ok(()))) => {}
                Ok((worker, Err(source))) => {
                    failure = failure.or(Some(ServerError::Worker { worker, source }))
                }
                Err(_) => {
                    // Every sender is gone before all reported: a worker died during set-up.
                    let worker = workers.iter().position(|w| w.is_finished()).unwrap_or(0);
                    failure = failure.or(Some(ServerError::WorkerPanicked(worker)));
                    break;
                }
            }
        }
        let reporter = match shared.config.stats_interval {
            Some(every) if failure.is_none() => {
                spawn_reporter(stats.clone(), every, stop.clone()).ok()
            }
            _ => None,
        };
        let metrics = match metrics_listener {
            Some(listener) if failure.is_none() => {
                let info = ServerInfo {
                    io: backend,
                    crypto,
                };
                let registry = metrics::registry(stats.clone(), info);
                match MetricsThread::spawn(listener, registry) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        failure = Some(ServerError::MetricsThread(e));
                        None
                    }
                }
            }
            _ => None,
        };
        let handle = ServerHandle {
            stcp_addr,
            tcp_addr,
            metrics_addr,
            tls: tls_addr.zip(tls_cert_pem).map(Box::new),
            backend,
            workers,
            reporter,
            metrics,
            stop,
            stats,
            started: Instant::now(),
        };
        match failure {
            Some(e) => {
                drop(handle);
                Err(e)
            }
            None => {
                tracing::info!(
                    backend = backend.name(),
                    workers = n,
                    stcp = ?stcp_addr,
                    tcp = ?tcp_addr,
                    metrics = ?metrics_addr,
                    tls = ?tls_addr,
                    "stcp-server started"
                );
                Ok(handle)
            }
        }
    }
}

impl ServerHandle {
    /// Bound address of the STCP listener.
    pub fn stcp_addr(&self) -> Option<SocketAddr> {
        self.stcp_addr
    }

    /// Bound address of the raw TCP listener.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// Bound address of the metrics endpoint (`http://ADDR/metrics`), when
    /// [`Config::metrics_listen`] asked for one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Bound address of the TLS listener.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|t| t.0)
    }

    /// The certificate the TLS listener presents, in PEM (clients pin it); `None` without a TLS
    /// listener.
    pub fn tls_cert_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.1.as_str())
    }

    /// The io backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Counters summed over every worker.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Time since the server started.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// A handle that can stop the server from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop.clone())
    }

    /// Asks the server to stop (non-blocking; see [`ServerHandle::join`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for every worker to finish (after [`ServerHandle::stop`], or a signal handler's
    /// [`Stopper::stop`]) and returns the final counters.
    pub fn join(mut self) -> Result<StatsSnapshot, ServerError> {
        self.join_inner()
    }

    /// Stops the server and waits for it: [`ServerHandle::stop`] then [`ServerHandle::join`].
    pub fn shutdown(self) -> Result<StatsSnapshot, ServerError> {
        self.stop();
        self.join()
    }

    fn join_inner(&mut self) -> Result<StatsSnapshot, ServerError> {
        let mut result = Ok(());
        for (i, w) in self.workers.drain(..).enumerate() {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    result = result.and(Err(ServerError::Worker { worker: i, source }))
                }
                Err(_) => result = result.and(Err(ServerError::WorkerPanicked(i))),
            }
        }
        // Workers are done: stop the reporter and the metrics thread too (a scrape in progress
        // ends within metrics::REQUEST_DEADLINE and RESPONSE_DEADLINE).
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reporter.take() {
            if r.join().is_err() {
                result = result.and(Err(ServerError::ReporterPanicked));
            }
        }
        if let Some(m) = self.metrics.take() {
            m.stop();
        }
        result.map(|()| self.stats.snapshot())
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
        let _ = self.join_inner();
    }
}
