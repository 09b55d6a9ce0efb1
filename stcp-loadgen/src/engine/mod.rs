//! The load engine: spreads the connections over io_uring client threads, lets every thread set
//! up its connections, starts the load on all of them at once, gathers each second's share from
//! every thread (live lines), and returns the [`Measurement`] of the whole run.

mod client_thread;
mod connection;
mod settings;
mod socket;
mod start_line;
mod tally;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use stcp_proto::{ClientConfig, Mode};

pub use tally::LoadPhase;

use crate::cpu_time::ThreadCpu;
use crate::errors::SetupFailures;
use crate::measurement::{CpuTime, Interval, Measurement};
use crate::start_at::{self, StartAtError};
use client_thread::ThreadPlan;
use settings::Settings;
use start_line::StartLine;
use tally::{ThreadMessage, ThreadSummary};

/// Bytes of buffers each connection allocates before the load starts for a workload of `mode`,
/// `payload` and `depth`: two out buffers and an in buffer, bounded whatever the payload
/// (requests and echoes stream through them record by record).
pub fn connection_buffer_bytes(mode: Mode, payload: usize, depth: u32) -> u64 {
    settings::buffer_bytes(mode, payload, depth) as u64
}

/// Why a client thread could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The operating system refused a thread.
    #[error("cannot start a client thread: {0}")]
    Spawn(std::io::Error),
    /// The thread's io_uring driver could not be built.
    #[error("io_uring is not available: {0}")]
    Driver(#[from] stcp_engine::DriverError),
}

/// Asked by every client thread once per turn, and by the coordinator: true ends the run early
/// (the command line answers it from its Ctrl-C flag; a library user from anything it likes).
pub type StopHandle = Arc<dyn Fn() -> bool + Send + Sync>;

/// Everything the engine needs to run.
#[derive(Clone)]
pub struct EngineConfig {
    pub target: SocketAddr,
    pub mode: Mode,
    pub payload: usize,
    pub clients: u32,
    pub depth: u32,
    /// Client threads (at most one per connection).
    pub threads: u32,
    /// Open loop: total requests per second; with `requests_per_conn`, new connections per
    /// second.
    pub rate: Option<f64>,
    /// Churn: each connection sends this many requests, closes cleanly and is replaced by a new
    /// one (0: it handshakes and closes). None: connections persist for the whole run.
    pub requests_per_conn: Option<u64>,
    pub warmup: Duration,
    pub duration: Duration,
    /// New connections per second; None: all at once.
    pub connect_rate: Option<f64>,
    pub timeout: Duration,
    /// STCP: the client configuration (server key, PSK, crypto backend).
    pub client_config: Option<ClientConfig>,
    /// TLS: the rustls configuration (pinned certificate) and the server name.
    pub tls: Option<crate::tls::TlsClient>,
    /// Core to pin each client thread to (cycled); empty: no pinning.
    pub client_cores: Vec<usize>,
    /// Busy poll of every client thread's driver: spin on the completion queue for up to this
    /// long before sleeping (zero: off).
    pub busy_poll: Duration,
    /// Name prefix of other threads of this process whose CPU time over the measured interval
    /// is reported (the embedded server's workers).
    pub observe_threads: Option<String>,
    /// `--start-at`: the wall-clock time the measured interval begins at (the warm-up then
    /// begins its length earlier); None: as soon as every connection is set up.
    pub start_at: Option<SystemTime>,
}

impl EngineConfig {
    /// Threads actually used: never more than connections.
    pub fn thread_count(&self) -> u32 {
        self.threads.clamp(1, self.clients.max(1))
    }

    /// The core each client thread is pinned to.
    pub fn thread_cores(&self) -> Vec<Option<usize>> {
        (0..self.thread_count() as usize)
            .map(|t| {
                (!self.client_cores.is_empty())
                    .then(|| self.client_cores[t % self.client_cores.len()])
            })
            .collect()
    }
}

/// What a run produced.
pub struct EngineOutcome {
    pub measurement: Measurement,
    /// Why the run is partial; None when it ran its full length.
    pub partial_reason: Option<String>,
    /// Threads that could not run at all, with the cause.
    pub setup_errors: Vec<SetupError>,
    /// Connections that could not be set up (connect or handshake failed), by cause.
    pub setup_failures: SetupFailures,
    /// Connections the server ended with its authenticated Close record (a stopping server):
    /// clean ends, not errors.
    pub closed_by_server: u64,
    /// Requests in flight on those connections when the server closed them: they got no echo
    /// (not errors either; a stopping server does not answer requests that arrive after it
    /// decided to stop).
    pub unanswered_at_close: u64,
    /// When the measured interval began, by the wall clock.
    pub start: StartOutcome,
    /// `--start-at` could not be kept (connecting took too long): no load was sent.
    pub missed_start: Option<StartAtError>,
}

/// When the measured interval began, by the wall clock of each client thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOutcome {
    /// The first and the last client thread to enter the measured interval; None when none did.
    pub threads: Option<(SystemTime, SystemTime)>,
    /// From the engine's start to every connection set up (connect and handshake).
    pub connecting: Duration,
}

/// Why a run is partial when the server closed every connection with an authenticated close.
pub const SERVER_CLOSED: &str = "server closed";

/// Extra time, beyond every configured bound, after which the coordinator stops waiting.
const WATCHDOG_GRACE: Duration = Duration::from_secs(10);

/// Runs the load. `live` is called once per completed second with its merged interval.
pub fn run(
    config: &EngineConfig,
    stop: StopHandle,
    live: &mut dyn FnMut(LoadPhase, u32, &Interval),
) -> EngineOutcome {
    let threads = config.thread_count() as usize;
    let cores = config.thread_cores();
    let start = Arc::new(StartLine::default());
    let (tx, rx) = mpsc::channel::<ThreadMessage>();
    let client_config = config.client_config.clone().map(Arc::new);
    let connect_epoch = Instant::now();
    let connect_spacing = config
        .connect_rate
        .map_or(Duration::ZERO, |r| Duration::from_secs_f64(1.0 / r));
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::with_capacity(threads);
    let mut spawn_errors = Vec::new();
    for (thread, core) in cores.iter().enumerate() {
        let conn_ids: Vec<u32> = (0..config.clients)
            .filter(|c| *c as usize % threads == thread)
            .collect();
        let thread_rate = config
            .rate
            .map(|r| r * conn_ids.len() as f64 / f64::from(config.clients));
        let plan = ThreadPlan {
            settings: Settings::new(
                config.mode,
                config.payload,
                config.depth,
                config.timeout,
                thread_rate,
                conn_ids.len(),
                config.requests_per_conn,
            ),
            conn_ids,
            core: core.and_then(|c| core_ids.iter().copied().find(|id| id.id == c)),
            target: config.target,
            busy_poll: config.busy_poll,
            client_config: client_config.clone(),
            tls: config.tls.clone(),
            connect_epoch,
            connect_spacing,
            warmup: config.warmup,
            duration: config.duration,
            stop: stop.clone(),
        };
        let (start, tx) = (start.clone(), tx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("loadgen-{thread}"))
            .spawn(move || client_thread::run(plan, start, tx));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => spawn_errors.push(SetupError::Spawn(e)),
        }
    }
    drop(tx);

    // Connect phase: bounded by the ramp plus one timeout for connect and one for the handshake
    // (the threads enforce it); the load starts on all threads at once when all are ready.
    while start.ready.load(Ordering::SeqCst) < handles.len() {
        if stop() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let connecting = connect_epoch.elapsed();
    let mut missed_start = None;
    let load_start = match config.start_at {
        None => Instant::now() + Duration::from_millis(1),
        Some(at) => {
            // The wall clock first: a pause between the two readings then makes the start late,
            // never early.
            let wall = SystemTime::now();
            let now = Instant::now();
            match start_at::wait_before_load(at, wall, config.warmup, connecting) {
                Ok(wait) => now + wait,
                Err(missed) => {
                    missed_start = Some(missed);
                    now
                }
            }
        }
    };
    if missed_start.is_some() {
        // No load: the threads close their connections and finish.
        start.stop.store(true, Ordering::SeqCst);
    } else {
        let _ = start.load_start.set(load_start);
    }
    let measure_start = load_start + config.warmup;
    let end = measure_start + config.duration;
    let watchdog = end + config.timeout * 2 + WATCHDOG_GRACE;

    let mut collector = Collector::new(handles.len());
    collector.setup_errors = spawn_errors;
    let mut interrupted_at = None;
    let mut last_finish = load_start;
    let mut observed = config.observe_threads.as_deref().map(ThreadWatch::new);
    while collector.running > 0 {
        let now = Instant::now();
        if interrupted_at.is_none() && stop() {
            interrupted_at = Some(now);
        }
        if now > watchdog {
            start.stop.store(true, Ordering::Relaxed);
            break;
        }
        if let Some(watch) = observed.as_mut() {
            watch.sample(now, measure_start, end.min(interrupted_at.unwrap_or(end)));
        }
        let next_sample = observed
            .as_ref()
            .and_then(|w| w.next_sample(measure_start, end));
        let wait = next_sample.map_or(Duration::from_millis(50), |at| {
            at.saturating_duration_since(now)
                .clamp(Duration::from_micros(100), Duration::from_millis(50))
        });
        match rx.recv_timeout(wait) {
            Ok(ThreadMessage::Second {
                phase,
                index,
                interval,
            }) => collector.second(phase, index, interval),
            Ok(ThreadMessage::Finished { summary }) => {
                last_finish = Instant::now();
                collector.finished(*summary);
            }
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        }
        collector.publish_complete_seconds(config, live);
    }
    // A run that ended early: the observed threads' time until now.
    if let Some(watch) = observed.as_mut() {
        watch.sample(Instant::now(), measure_start, Instant::now());
    }
    let watchdog_fired = collector.running > 0;
    if !watchdog_fired {
        for handle in handles {
            let _ = handle.join();
        }
    }

    // How long the measured interval really lasted, and why it was cut short if it was.
    // Ctrl-C after the measured interval (while draining) does not cut anything short.
    let interrupted_at = interrupted_at.filter(|at| *at < end);
    // A missed start measured nothing.
    let cut_at = missed_start
        .as_ref()
        .map(|_| measure_start)
        .or(interrupted_at)
        .or((last_finish < end).then_some(last_finish));
    let measured = match cut_at {
        Some(at) => at
            .saturating_duration_since(measure_start)
            .min(config.duration),
        None => config.duration,
    };
    let partial_reason = if let Some(missed) = &missed_start {
        Some(missed.to_string())
    } else if watchdog_fired {
        Some("client threads did not finish in time".to_string())
    } else if interrupted_at.is_some() {
        Some("interrupted".to_string())
    } else if collector.established == 0 {
        Some("no connection could be set up".to_string())
    } else if cut_at.is_some() && collector.closed_by_server > 0 {
        Some(match collector.unanswered {
            0 => SERVER_CLOSED.to_string(),
            n => format!("{SERVER_CLOSED} ({n} requests in flight got no echo)"),
        })
    } else if cut_at.is_some() {
        Some("every connection was lost before the end".to_string())
    } else {
        None
    };
    let setup_errors = std::mem::take(&mut collector.setup_errors);
    let setup_failures = std::mem::take(&mut collector.setup_failures);
    let (closed_by_server, unanswered_at_close) =
        (collector.closed_by_server, collector.unanswered);
    let entered: Vec<SystemTime> = collector
        .summaries
        .iter()
        .filter_map(|s| s.measured_from)
        .collect();
    let start_outcome = StartOutcome {
        threads: entered
            .iter()
            .min()
            .copied()
            .zip(entered.iter().max().copied()),
        connecting,
    };
    let mut measurement = collector.into_measurement(measured);
    measurement.server_cpu = observed.and_then(|w| w.used()).map(|cpu| CpuTime {
        user_seconds: cpu.user.as_secs_f64(),
        system_seconds: cpu.system.as_secs_f64(),
        waited_seconds: cpu.waited.as_secs_f64(),
    });
    EngineOutcome {
        measurement,
        partial_reason,
        setup_errors,
        setup_failures,
        closed_by_server,
        unanswered_at_close,
        start: start_outcome,
        missed_start,
    }
}

/// Gathers the threads' messages into one measurement.
struct Collector {
    running: usize,
    seconds: BTreeMap<(u8, u32), (Interval, usize)>,
    measured: Vec<Interval>,
    summaries: Vec<ThreadSummary>,
    established: u64,
    closed_by_server: u64,
    unanswered: u64,
    setup_errors: Vec<SetupError>,
    setup_failures: SetupFailures,
}

fn phase_key(phase: LoadPhase) -> u8 {
    match phase {
        LoadPhase::Warmup => 0,
        LoadPhase::Measured => 1,
    }
}

impl Collector {
    fn new(threads: usize) -> Collector {
        Collector {
            running: threads,
            seconds: BTreeMap::new(),
            measured: Vec::new(),
            summaries: Vec::new(),
            established: 0,
            closed_by_server: 0,
            unanswered: 0,
            setup_errors: Vec::new(),
            setup_failures: SetupFailures::default(),
        }
    }

    fn second(&mut self, phase: LoadPhase, index: u32, interval: Interval) {
        let entry = self
            .seconds
            .entry((phase_key(phase), index))
            .or_insert_with(|| (Interval::new(1.0), 0));
        entry.0.add_same_run(&interval);
        entry.1 += 1;
        if phase == LoadPhase::Measured {
            if self.measured.len() <= index as usize {
                self.measured
                    .resize_with(index as usize + 1, || Interval::new(1.0));
            }
            self.measured[index as usize].add_same_run(&interval);
        }
    }

    fn finished(&mut self, mut summary: ThreadSummary) {
        self.running -= 1;
        self.established += summary.established;
        self.closed_by_server += summary.closed_by_server;
        self.unanswered += summary.unanswered;
        if let Some(why) = summary.setup_error.take() {
            self.setup_errors.push(why);
        }
        self.setup_failures.add(&summary.setup_failures);
        self.summaries.push(summary);
    }

    /// Calls `live` for every second all running threads have reported, in order.
    fn publish_complete_seconds(
        &mut self,
        config: &EngineConfig,
        live: &mut dyn FnMut(LoadPhase, u32, &Interval),
    ) {
        let ready: Vec<(u8, u32)> = self
            .seconds
            .iter()
            .filter(|(_, (_, n))| *n >= self.running)
            .map(|(k, _)| *k)
            .collect();
        for key in ready {
            if let Some((interval, _)) = self.seconds.remove(&key) {
                let phase = if key.0 == 0 {
                    LoadPhase::Warmup
                } else {
                    LoadPhase::Measured
                };
                let seconds = match phase {
                    LoadPhase::Warmup => {
                        (config.warmup.as_secs_f64() - f64::from(key.1)).clamp(0.0, 1.0)
                    }
                    LoadPhase::Measured => {
                        (config.duration.as_secs_f64() - f64::from(key.1)).clamp(0.0, 1.0)
                    }
                };
                let mut shown = Interval::new(seconds);
                shown.add_same_run(&interval);
                live(phase, key.1, &shown);
            }
        }
    }

    fn into_measurement(self, measured: Duration) -> Measurement {
        let measured_seconds = measured.as_secs_f64();
        let mut m = Measurement::empty();
        m.measured_seconds = measured_seconds;
        let whole_seconds = measured_seconds.ceil() as usize;
        let mut measured_series = self.measured;
        measured_series.resize_with(whole_seconds.max(measured_series.len()), || {
            Interval::new(1.0)
        });
        for (i, interval) in measured_series.into_iter().enumerate().take(whole_seconds) {
            let mut second = Interval::new((measured_seconds - i as f64).clamp(0.0, 1.0));
            second.add_same_run(&interval);
            m.latency.add(&second.latency).expect("same bounds");
            m.bytes_sent += second.bytes_sent;
            m.bytes_received += second.bytes_received;
            m.handshakes += second.handshakes;
            m.series.push(second);
        }
        let mut cpu = ThreadCpu::default();
        for s in &self.summaries {
            m.handshake.add(&s.handshake).expect("same bounds");
            m.connect.add(&s.connect).expect("same bounds");
            m.errors.add(&s.errors);
            m.connections.requested += s.requested;
            m.connections.established += s.established;
            m.connections.lost += s.lost;
            m.connections.closed += s.closed;
            cpu.user += s.cpu.user;
            cpu.system += s.cpu.system;
            cpu.waited += s.cpu.waited;
        }
        m.cpu = CpuTime {
            user_seconds: cpu.user.as_secs_f64(),
            system_seconds: cpu.system.as_secs_f64(),
            waited_seconds: cpu.waited.as_secs_f64(),
        };
        m.requests_per_second = if measured_seconds > 0.0 {
            m.requests() as f64 / measured_seconds
        } else {
            0.0
        };
        m
    }
}

/// CPU time of other threads of this process (by name prefix) over the measured interval.
struct ThreadWatch {
    prefix: String,
    at_start: Option<ThreadCpu>,
    used: Option<ThreadCpu>,
}

impl ThreadWatch {
    fn new(prefix: &str) -> ThreadWatch {
        ThreadWatch {
            prefix: prefix.to_string(),
            at_start: None,
            used: None,
        }
    }

    /// Takes the start sample once `now` reaches `start`, and the end sample once it reaches `end`.
    fn sample(&mut self, now: Instant, start: Instant, end: Instant) {
        if self.at_start.is_none() && now >= start {
            self.at_start = Some(crate::cpu_time::threads_named(&self.prefix));
        }
        if let (Some(first), None) = (self.at_start, self.used) {
            if now >= end {
                self.used = Some(crate::cpu_time::threads_named(&self.prefix).since(first));
            }
        }
    }

    fn next_sample(&self, start: Instant, end: Instant) -> Option<Instant> {
        match (self.at_start, self.used) {
            (None, _) => Some(start),
            (Some(_), None) => Some(end),
            _ => None,
        }
    }

    fn used(&self) -> Option<ThreadCpu> {
        self.used
    }
}
