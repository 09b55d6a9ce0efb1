//! A load test from the command line to the report: picks the target (or starts the embedded
//! server), loads keys, runs the engine with a live line per second, writes the JSON report,
//! prints the summary, and decides the exit status. [`measure`] is the part `suite` reuses: one
//! load test against a server already running, giving its report.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::Args;
use stcp_proto::{ClientConfig, CryptoBackend, Mode};
use stcp_server::fd_limit::{self, FdLimit};
use stcp_server::messages::{self, KeyRole};
use stcp_server::IoBackend;

use crate::descriptors::{FdBudget, FdShortage};
use crate::embedded::{self, EmbeddedOptions, EmbeddedServer};
use crate::engine::{self, EngineConfig, LoadPhase};
use crate::environment;
use crate::measurement::Interval;
use crate::report::{self, Configuration, Environment, Pinning, Report, SuiteCell};
use crate::server_under_test::{
    load_server_key, resolve, ExternalServer, ServerUnderTest, TargetError,
};
use crate::summary;
use crate::values::{
    crypto_parser, io_parser, mode_parser, parse_busy_poll, parse_duration, parse_listen_ip,
    parse_size,
};

pub use crate::server_under_test::DEFAULT_SERVER_KEY_FILE;

/// Exit statuses (also listed in `--help` and the README).
pub mod exit {
    /// The run was whole and its errors within --max-errors.
    pub const OK: i32 = 0;
    /// More errors than --max-errors.
    pub const TOO_MANY_ERRORS: i32 = 1;
    /// Bad usage: an unknown option, a malformed value, options that contradict each other.
    pub const USAGE: i32 = 2;
    /// Cut short or never under way: Ctrl-C, every connection lost, no connection set up. The
    /// report is written, marked partial.
    pub const PARTIAL: i32 = 3;
    /// Could not start: a key file, the target, io_uring, the open-file limit, the report
    /// directory. No report.
    pub const CANNOT_START: i32 = 4;
}

/// Name prefix of the embedded server's worker threads (their CPU time is reported).
const EMBEDDED_SERVER_THREADS: &str = "stcp-worker";

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Target(#[from] TargetError),
    #[error("the server does not serve {0} mode: give its address")]
    NoAddress(&'static str),
    #[error("{}", messages::key_file("--psk", KeyRole::Psk, .1))]
    Psk(PathBuf, stcp_proto::KeyFileError),
    #[error("cannot start the embedded server: {0}")]
    EmbeddedServer(stcp_server::ServerError),
    #[error(
        "cannot write the report into {dir}: {1}: give --out a directory this user can write to",
        dir = .0.display()
    )]
    Report(PathBuf, std::io::Error),
    #[error(
        "io_uring is unavailable here: {cause}; the load generator needs it: {remedy}",
        cause = .0,
        remedy = messages::uring_remedy(.0)
    )]
    Uring(stcp_engine::Unavailable),
    #[error("{0}")]
    Descriptors(#[from] FdShortage),
    #[error("{0}")]
    StartAt(#[from] crate::start_at::StartAtError),
    #[error("{0}")]
    Certificate(#[from] crate::tls::CertFileError),
}

impl StartError {
    pub fn exit_status(&self) -> i32 {
        match self {
            StartError::Usage(_) => exit::USAGE,
            _ => exit::CANNOT_START,
        }
    }
}

/// Most memory the connections' buffers may take (they are allocated before the load starts).
pub const MAX_BUFFER_BYTES: u64 = 4 << 30;

/// The run options: `stcp-loadgen [RUN OPTIONS]`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Server address HOST:PORT (every address a host name resolves to is tried in turn);
    /// without it an embedded stcp-server is started (see --listen).
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// Address the embedded server listens on: an IP of this machine (127.0.0.1, ::1 for IPv6);
    /// its ports are chosen by the system.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1", value_parser = parse_listen_ip, conflicts_with = "target")]
    pub listen: IpAddr,
    /// Protocol: encrypted STCP, plain framed TCP, or TLS 1.3 (rustls: AES-256-GCM, X25519)
    /// carrying the plain frames.
    #[arg(long, value_parser = mode_parser(), default_value = "stcp")]
    pub mode: Mode,
    /// The server's public key: a file holding hex, or 64 hex characters.
    /// Default: the embedded server's key, else ./stcp-server.key.pub written by a local stcp-server.
    #[arg(long, value_name = "FILE|HEX")]
    pub server_key: Option<String>,
    /// TLS: the server's certificate (PEM), pinned: the server must present exactly this
    /// certificate. Default: ./stcp-server.crt written by a local stcp-server.
    #[arg(long, value_name = "FILE")]
    pub server_cert: Option<PathBuf>,
    /// Pre-shared key file (32 bytes, hex); needed when the server was started with --psk.
    #[arg(long, value_name = "FILE")]
    pub psk: Option<PathBuf>,
    /// Crypto backend for the client side (and the embedded server).
    #[arg(long, value_parser = crypto_parser(), default_value = "aws-lc")]
    pub crypto: CryptoBackend,
    /// io backend of the embedded server (no effect with --target).
    #[arg(long, value_parser = io_parser(), default_value = "auto")]
    pub io: IoBackend,
    /// Request payload size: 256, 4k, 64k, 1m, 1g (k, m and g are KiB, MiB and GiB).
    #[arg(long, value_parser = parse_size, default_value = "256", value_name = "SIZE")]
    pub payload: usize,
    /// Largest frame payload: the embedded server accepts frames up to it, and the client accepts
    /// echoes up to it (against --target, the server's own --max-frame applies). At least
    /// --payload; at most 4 GiB - 1.
    #[arg(long, value_parser = parse_size, default_value = "16m", value_name = "SIZE")]
    pub max_frame: usize,
    /// Persistent connections; each is an open file (two with the embedded server).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// Requests in flight per connection.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub depth: u32,
    /// Client threads (default: every core the embedded server does not use, else every core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Open loop: R requests/s in total; latency is measured from each request's intended send time.
    /// With --requests-per-conn, R new connections/s in total (connect latency from each one's
    /// intended start).
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Churn: each connection sends N requests, closes cleanly (STCP: its Close record), and a
    /// new connection connects and handshakes in its place; 0 handshakes and closes without an
    /// echo. --clients connections at a time (closed loop), or --rate new ones per second.
    #[arg(long, value_name = "N")]
    pub requests_per_conn: Option<u64>,
    /// Measured interval.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub duration: Duration,
    /// Load applied before the measured interval, excluded from every statistic.
    #[arg(long, value_parser = parse_duration, default_value = "2s", value_name = "DURATION")]
    pub warmup: Duration,
    /// New connections per second while connecting (default: as fast as possible).
    #[arg(long, value_name = "PER_SECOND", allow_negative_numbers = true)]
    pub connect_rate: Option<f64>,
    /// Longest wait for a connect, a handshake or one echo.
    #[arg(long, value_parser = parse_duration, default_value = "5s", value_name = "DURATION")]
    pub timeout: Duration,
    /// Before sleeping for completions, every client thread (and, without --target, every
    /// io_uring worker of the embedded server) spins on its completion queue for up to this long
    /// (50us, 200us). It burns idle CPU to skip the wake-up of a sleeping thread, so it changes
    /// what is measured; the report records it.
    #[arg(long, value_parser = parse_busy_poll, default_value = "off", value_name = "DURATION|off")]
    pub busy_poll: Duration,
    /// Coordinated start: connect and handshake at once, then begin the warm-up so that the
    /// measured interval begins exactly at TIME (RFC 3339, 2026-12-02T16:00:00Z, or Unix
    /// milliseconds). Give every load host the same TIME, a few seconds ahead, and merge their
    /// reports. A TIME already past, or too near to connect and warm up, is refused before any
    /// load. The report records the intended start, the real one and the skew.
    #[arg(long, value_parser = crate::start_at::parse, value_name = "TIME")]
    pub start_at: Option<SystemTime>,
    /// Errors tolerated before the exit status says failure.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_errors: u64,
    /// Directory for the JSON report.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub out: PathBuf,
    /// Also print the JSON report on stdout.
    #[arg(long)]
    pub json: bool,
    /// Do not print the live line every second.
    #[arg(long)]
    pub quiet: bool,
}

impl RunArgs {
    /// Checks that clap cannot express; returns a message naming the option at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_frame > stcp_proto::MAX_FRAME_LEN {
            return Err(format!(
                "--max-frame {} is larger than a frame header can announce ({} bytes)",
                self.max_frame,
                stcp_proto::MAX_FRAME_LEN
            ));
        }
        if self.payload > self.max_frame {
            return Err(format!(
                "--payload {} is larger than --max-frame {}: raise --max-frame (the server must \
                 accept such frames too)",
                self.payload, self.max_frame
            ));
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!(
                    "--rate {rate}: give a positive number of requests per second"
                ));
            }
        }
        if let Some(rate) = self.connect_rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!(
                    "--connect-rate {rate}: give a positive number of connections per second"
                ));
            }
        }
        if self.duration.is_zero() {
            return Err("--duration must be longer than zero".into());
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be longer than zero".into());
        }
        // Every connection keeps two send buffers and one receive buffer, each of at most `depth`
        // requests and at most a fixed window (requests and echoes stream through them).
        let buffers = u64::from(self.clients)
            * engine::connection_buffer_bytes(self.mode, self.payload, self.depth);
        if buffers > MAX_BUFFER_BYTES {
            return Err(format!(
                "--clients {} x --depth {} x --payload {} needs {} MiB of buffers, more than the {} MiB allowed: \
                 lower one of them",
                self.clients,
                self.depth,
                self.payload,
                buffers >> 20,
                MAX_BUFFER_BYTES >> 20
            ));
        }
        if self.mode != Mode::Stcp && (self.psk.is_some() || self.server_key.is_some()) {
            return Err("--psk and --server-key apply to --mode stcp only".into());
        }
        if self.mode != Mode::Tls && self.server_cert.is_some() {
            return Err("--server-cert applies to --mode tls only".into());
        }
        Ok(())
    }
}

/// Runs a load test (`stcp-loadgen [RUN OPTIONS]`); returns the exit status.
pub fn run(args: &RunArgs) -> Result<i32, StartError> {
    args.validate().map_err(StartError::Usage)?;
    if let Some(at) = args.start_at {
        crate::start_at::check_ahead(at, SystemTime::now(), args.warmup)?;
    }
    let limit = prepare_process();
    // Everything that can stop the run is checked before the first connection.
    stcp_engine::probe().map_err(StartError::Uring)?;
    std::fs::create_dir_all(&args.out).map_err(|e| StartError::Report(args.out.clone(), e))?;
    let psk = load_psk(args.psk.as_deref())?;
    let split = embedded::split_cores(environment::cores());
    check_descriptors(
        limit,
        args.clients,
        args.threads,
        args.target.is_none().then_some(&split),
    )?;

    // The server: the one given, or an embedded one on its own cores.
    let server = match &args.target {
        Some(t) => {
            let addrs = resolve(t)?;
            let (mut stcp, mut tcp, mut tls) = (Vec::new(), Vec::new(), Vec::new());
            match args.mode {
                Mode::Stcp => stcp = addrs,
                Mode::Tcp => tcp = addrs,
                Mode::Tls => tls = addrs,
            }
            let public_key = match args.mode {
                Mode::Stcp => Some(load_server_key(args.server_key.as_deref())?),
                Mode::Tcp | Mode::Tls => None,
            };
            ServerUnderTest::External(ExternalServer {
                stcp,
                tcp,
                tls,
                public_key,
            })
        }
        None => {
            let server = start_embedded(&EmbeddedOptions {
                listen: args.listen,
                psk,
                max_frame: args.max_frame,
                busy_poll: args.busy_poll,
                ..EmbeddedOptions::new(args.crypto, args.io)
            })?;
            let server = ServerUnderTest::Embedded(Box::new(server));
            let Some(addr) = server.addr(args.mode) else {
                server.stop();
                return Err(StartError::NoAddress(args.mode.name()));
            };
            let ServerUnderTest::Embedded(server) = server else {
                unreachable!("embedded above")
            };
            crate::stderr_line!(
                "stcp-loadgen: no --target given: started an embedded stcp-server ({}{}) on {} ({} mode), \
                 server on core(s) {:?}, client threads on core(s) {:?}",
                server.backend(),
                match (args.busy_poll.is_zero(), server.busy_poll_in_force().is_zero()) {
                    (false, true) => ", --busy-poll ignored by epoll".to_string(),
                    _ => busy_poll_label(server.busy_poll_in_force()),
                },
                addr,
                args.mode.name(),
                server.cores,
                server.client_cores
            );
            ServerUnderTest::Embedded(server)
        }
    };
    let measured = measure(args, &server, psk, None);
    server.stop();
    let measured = measured?;
    let report = measured.report;
    let path = report
        .write_into(&args.out, &environment::compact_utc(measured.started_unix))
        .map_err(|e| StartError::Report(args.out.clone(), e))?;
    print_outcome(&report, &path, args.json);
    Ok(exit_status(&report, args.max_errors))
}

/// What every command that loads a server does first: Ctrl-C sets a flag (the run then ends
/// early, partial), and the soft open-file limit is raised to the hard one for many
/// connections. Returns the limit now in force (None when it cannot be read).
pub fn prepare_process() -> Option<FdLimit> {
    crate::interrupt::install();
    fd_limit::raise_to_hard().ok()
}

/// Refuses a run whose connections cannot fit under the open-file `limit`: `clients` sockets,
/// one ring per client thread (`threads`, default one per core), and with the server embedded
/// (`embedded`: how the cores are split) its side of every connection and its workers.
pub fn check_descriptors(
    limit: Option<FdLimit>,
    clients: u32,
    threads: Option<u32>,
    embedded: Option<&embedded::CoreSplit>,
) -> Result<(), StartError> {
    let Some(limit) = limit else {
        return Ok(());
    };
    let client_threads = threads
        .map(|t| t as usize)
        .or(embedded.map(|split| split.client.len()))
        .unwrap_or_else(environment::cores)
        .clamp(1, clients.max(1) as usize);
    let budget = FdBudget {
        clients: u64::from(clients),
        threads: client_threads as u64,
        embedded_workers: embedded.map(|split| split.server.len().max(1) as u64),
    };
    Ok(budget.check(limit)?)
}

/// Reads --psk.
pub fn load_psk(path: Option<&Path>) -> Result<Option<[u8; 32]>, StartError> {
    path.map(|p| stcp_proto::load_psk(p).map_err(|e| StartError::Psk(p.to_path_buf(), e)))
        .transpose()
}

/// Starts an embedded server with `options` on half the cores (see [`embedded::split_cores`]).
pub fn start_embedded(options: &EmbeddedOptions) -> Result<EmbeddedServer, StartError> {
    let split = embedded::split_cores(environment::cores());
    EmbeddedServer::start(&split, options, crate::entropy::random_seed())
        .map_err(StartError::EmbeddedServer)
}

/// `", busy poll 50µs"` when on, nothing when off.
pub fn busy_poll_label(busy_poll: Duration) -> String {
    if busy_poll.is_zero() {
        String::new()
    } else {
        format!(", busy poll {busy_poll:?}")
    }
}

/// A duration in microseconds, as reports write busy polls.
fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A finished load test: its report (not yet written) and when it started.
pub struct Measured {
    pub report: Report,
    /// Unix seconds at the start, for the report's file name.
    pub started_unix: u64,
}

/// Runs one load test of `args` (mode, payload, clients, durations, crypto...) against `server`
/// and builds its report; `suite_cell` tags a run made by `stcp-loadgen suite`. Live lines go to
/// stderr unless `args.quiet`.
pub fn measure(
    args: &RunArgs,
    server: &ServerUnderTest,
    psk: Option<[u8; 32]>,
    suite_cell: Option<SuiteCell>,
) -> Result<Measured, StartError> {
    let (mut started_secs, mut started_nanos) = environment::now_unix();
    let cores = environment::cores();
    let backend = args.crypto;
    let targets = server.addrs(args.mode);
    let target = *targets
        .first()
        .ok_or(StartError::NoAddress(args.mode.name()))?;
    let embedded = server.embedded();
    let tls = match args.mode {
        Mode::Tls => Some(tls_client(args, server, target)?),
        Mode::Stcp | Mode::Tcp => None,
    };
    let server_public = match args.mode {
        Mode::Tcp | Mode::Tls => None,
        Mode::Stcp => Some(match &args.server_key {
            Some(key) => load_server_key(Some(key))?,
            None => server.public_key().ok_or(TargetError::NoServerKey)?,
        }),
    };
    let client_config = server_public.map(|key| {
        let mut c = ClientConfig::new(key);
        c.psk = psk;
        c.crypto = backend.provider();
        c.max_frame = args.max_frame;
        c
    });
    let client_cores = server.client_cores();
    let threads = args.threads.unwrap_or(client_cores.len() as u32).max(1);
    let engine_config = EngineConfig {
        target,
        mode: args.mode,
        payload: args.payload,
        clients: args.clients,
        depth: args.depth,
        threads,
        rate: args.rate,
        requests_per_conn: args.requests_per_conn,
        warmup: args.warmup,
        duration: args.duration,
        connect_rate: args.connect_rate,
        timeout: args.timeout,
        client_config,
        tls,
        client_cores,
        busy_poll: args.busy_poll,
        observe_threads: embedded.map(|_| EMBEDDED_SERVER_THREADS.to_string()),
        start_at: args.start_at,
    };
    if !args.quiet {
        crate::stderr_line!(
            "stcp-loadgen: {} {} x {} connections, depth {}, {} thread(s){}, {}{}warm-up {}, measuring {}{}",
            args.mode.name(),
            report::size_label(args.payload as u64),
            args.clients,
            args.depth,
            engine_config.thread_count(),
            busy_poll_label(args.busy_poll),
            args.requests_per_conn
                .map(|n| format!("churn {n} request(s) per connection, "))
                .unwrap_or_default(),
            match (args.rate, args.requests_per_conn) {
                (Some(r), Some(_)) => format!("open loop {r} connections/s, "),
                (Some(r), None) => format!("open loop {r} req/s, "),
                (None, _) => String::new(),
            },
            summary::duration_label(args.warmup),
            summary::duration_label(args.duration),
            args.start_at
                .map(|at| format!(" from {}", crate::start_at::label(at)))
                .unwrap_or_default()
        );
    }

    let payload = args.payload as u64;
    let quiet = args.quiet;
    let churn = args.requests_per_conn.is_some();
    let rate = args.rate;
    let mut live = |phase: LoadPhase, index: u32, interval: &Interval| {
        if quiet {
            return;
        }
        let label = match phase {
            LoadPhase::Warmup => format!("w{}s", index + 1),
            LoadPhase::Measured => format!("{}s", index + 1),
        };
        let p99 = crate::stats::LatencySummary::of(&interval.latency).p99_us;
        let rps = interval.requests_per_second;
        let mb = report::throughput_mb_per_s(payload, rps);
        let hs = churn.then(|| {
            if interval.seconds > 0.0 {
                interval.handshakes as f64 / interval.seconds
            } else {
                0.0
            }
        });
        // With churn, an open loop's rate counts new connections.
        let target = rate
            .map(|r| crate::schedule::live_suffix(r, hs.unwrap_or(rps)))
            .unwrap_or_default();
        crate::stderr_line!(
            "{}{target}",
            summary::live_line(&label, rps, mb, p99, interval.errors, hs)
        );
    };
    // The target's addresses in turn: the next one only when no connection got through to the
    // one before (a host name whose first address has no server, e.g. localhost's ::1 against a
    // server on 127.0.0.1).
    let mut engine_config = engine_config;
    let mut tried: Vec<SocketAddr> = Vec::new();
    let outcome = loop {
        let outcome = engine::run(
            &engine_config,
            std::sync::Arc::new(crate::interrupt::interrupted),
            &mut live,
        );
        let next = targets.get(tried.len() + 1).copied();
        let cause = outcome.setup_failures.sorted().first().copied().cloned();
        match (next, cause) {
            (Some(next), Some(cause))
                if outcome.measurement.connections.established == 0
                    && outcome.missed_start.is_none()
                    && outcome.setup_failures.only_connect()
                    && !crate::interrupt::interrupted() =>
            {
                crate::stderr_line!(
                    "stcp-loadgen: {}: {}; trying {next}",
                    engine_config.target,
                    cause.why
                );
                tried.push(engine_config.target);
                engine_config.target = next;
                (started_secs, started_nanos) = environment::now_unix();
            }
            _ => break outcome,
        }
    };
    if let Some(missed) = outcome.missed_start {
        return Err(missed.into());
    }
    let target = engine_config.target;
    tried.push(target);
    let mut shown = Vec::new();
    for why in &outcome.setup_errors {
        let line = why.to_string();
        if !shown.contains(&line) {
            crate::stderr_line!("stcp-loadgen: {line}");
            shown.push(line);
        }
    }
    report_setup_failures(&outcome, args, &tried);

    let (finished_secs, finished_nanos) = environment::now_unix();
    let uname = environment::uname();
    let configuration = Configuration {
        mode: args.mode,
        target: target.to_string(),
        embedded_server: embedded.is_some(),
        payload_bytes: payload,
        clients: u64::from(args.clients),
        depth: u64::from(args.depth),
        threads: u64::from(engine_config.thread_count()),
        rate_per_second: args.rate,
        requests_per_conn: args.requests_per_conn,
        duration_seconds: args.duration.as_secs_f64(),
        warmup_seconds: args.warmup.as_secs_f64(),
        connect_rate_per_second: args.connect_rate,
        timeout_seconds: args.timeout.as_secs_f64(),
        max_errors: args.max_errors,
        psk: psk.is_some(),
        server_public_key: server_public.map(hex),
        suite_cell,
        busy_poll_us: micros(args.busy_poll),
        server_busy_poll_us: embedded.map(|s| micros(s.busy_poll_in_force())),
    };
    let environment = Environment {
        hostname: uname.hostname,
        kernel: uname.kernel,
        cpu_model: environment::cpu_model(),
        cores: cores as u64,
        io_backend: "io_uring".into(),
        server_io_backend: embedded.map(|s| s.backend().to_string()),
        crypto_backend: (args.mode == Mode::Stcp).then(|| backend.name().to_string()),
        server_crypto_backend: embedded.map(|s| s.crypto.name().to_string()),
        pinning: Pinning {
            client_cores: engine_config
                .thread_cores()
                .into_iter()
                .map(|c| c.map(|c| c as u64))
                .collect(),
            server_cores: embedded.map(|s| s.cores.iter().map(|&c| c as u64).collect()),
        },
        tool_version: env!("CARGO_PKG_VERSION").into(),
        started_at: environment::rfc3339(started_secs, started_nanos),
        finished_at: environment::rfc3339(finished_secs, finished_nanos),
    };
    let mut report = Report::build(
        configuration,
        environment,
        &outcome.measurement,
        outcome.partial_reason,
        Vec::new(),
    );
    report.start = start_timing(args.start_at, &outcome.start);
    Ok(Measured {
        report,
        started_unix: started_secs,
    })
}

/// The report's start timing: `intended` (--start-at) against the client threads' entries into
/// the measured interval; None when no thread entered it.
pub fn start_timing(
    intended: Option<SystemTime>,
    outcome: &engine::StartOutcome,
) -> Option<report::StartTiming> {
    use crate::start_at::{label, micros_between, unix, unix_ns};
    let (first, last) = outcome.threads?;
    let anchor = unix(intended.unwrap_or(first));
    Some(report::StartTiming {
        intended_at: intended.map(label),
        intended_unix_ns: intended.map(unix_ns),
        actual_at: label(first),
        actual_unix_ns: unix_ns(first),
        skew_us: intended.map(|at| micros_between(first, at)),
        threads_spread_us: micros_between(last, first),
        connecting_seconds: outcome.connecting.as_secs_f64(),
        series_start_unix_s: anchor.as_secs() + u64::from(anchor.subsec_nanos() >= 500_000_000),
    })
}

/// TLS: the client configuration pinning --server-cert (default ./stcp-server.crt), asking for
/// the host of --target (SNI for a name, none for an IP address) or for the address loaded.
fn tls_client(
    args: &RunArgs,
    server: &ServerUnderTest,
    target: SocketAddr,
) -> Result<crate::tls::TlsClient, StartError> {
    let certificate = match server.tls_cert_pem() {
        // The embedded server's own certificate, handed over in memory.
        Some(pem) => crate::tls::certificate_from_pem(pem)?,
        None => {
            let path = args
                .server_cert
                .clone()
                .unwrap_or_else(|| PathBuf::from(crate::tls::DEFAULT_SERVER_CERT_FILE));
            crate::tls::load_certificate(&path)?
        }
    };
    let host = match (&args.target, server) {
        (Some(t), ServerUnderTest::External(_)) => crate::tls::host_of(t).to_string(),
        _ => target.ip().to_string(),
    };
    Ok(crate::tls::TlsClient::new(certificate, &host)?)
}

/// Prints each cause of connections that could not be set up once (see
/// [`summary::setup_failure_lines`]).
fn report_setup_failures(outcome: &engine::EngineOutcome, args: &RunArgs, tried: &[SocketAddr]) {
    for line in summary::setup_failure_lines(
        &outcome.setup_failures,
        args.mode,
        outcome.measurement.connections.established,
        args.clients,
        args.timeout,
        tried,
    ) {
        crate::stderr_line!("stcp-loadgen: {line}");
    }
}

/// Prints the summary (stdout, or stderr when stdout carries the JSON) and the report. With no
/// connection set up there are no figures, only the partial report.
pub fn print_outcome(report: &Report, path: &Path, json: bool) {
    let connections = &report.results.connections;
    let table = if connections.established == 0 && connections.requested > 0 {
        format!(
            "PARTIAL RUN: {}\n",
            report
                .partial_reason
                .as_deref()
                .unwrap_or("no connection could be set up")
        )
    } else {
        summary::table(report)
    };
    if json {
        crate::stderr_text!("{table}");
        crate::stderr_line!("report: {}", path.display());
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut out, report);
        let _ = writeln!(out);
    } else {
        crate::stdout_text!("{table}");
        crate::stdout_line!("report: {}", path.display());
    }
}

/// 0 when the run was whole and its errors within --max-errors.
pub fn exit_status(report: &Report, max_errors: u64) -> i32 {
    if report.partial {
        exit::PARTIAL
    } else if report.results.errors_total > max_errors {
        exit::TOO_MANY_ERRORS
    } else {
        exit::OK
    }
}

fn hex(key: [u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}
