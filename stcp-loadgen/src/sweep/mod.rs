//! `stcp-loadgen sweep`: latency against offered load, for one payload and connection count, in
//! each of `--modes` interleaved (TCP step, STCP step, ...; TLS too when asked) against one
//! server. Each mode's offered rate is searched ([`search`]): it climbs geometrically, then is
//! refined by bisection near the knee. Every step is a real open-loop run through
//! [`crate::run::measure`], written as a normal run report; the sweep report ([`schema`]) beside
//! them gives each step's achieved rate, percentiles and errors, and each mode's capacity: the
//! highest achieved rate whose p99 stays under `--slo-p99` with no error. [`merge`] combines sweeps made at once from several hosts.

pub mod merge;
pub mod schema;
pub mod search;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use stcp_proto::{CryptoBackend, Mode};
use stcp_server::IoBackend;

use crate::environment;
use crate::render;
use crate::report::size_label;
use crate::run::{self, exit, RunArgs, StartError};
use crate::server_under_test::{ServerUnderTest, TargetArgs};
use crate::suite::matrix::{start_server, Combination};
use crate::summary::latency;
use crate::values::{
    crypto_parser, io_parser, mode_parser, parse_busy_poll, parse_duration, parse_size,
};
use schema::{capacities, SweepConfiguration, SweepReport, SweepStep};
use search::{Phase, Search, SearchArgs, SearchPlan};

/// `sweep`: latency against offered load, TCP and STCP (and TLS when asked).
#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    /// Request payload size (256, 4k, 16k, 64k).
    #[arg(long, value_parser = parse_size, default_value = "256", value_name = "SIZE")]
    pub payload: usize,
    /// Persistent connections of every step.
    #[arg(long, default_value_t = 50, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// Requests in flight per connection at most: a request whose time has come while its
    /// connection has this many waits (its wait counts in its latency).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub depth: u32,
    /// Modes to sweep, comma-separated, in the order their steps interleave.
    #[arg(long, value_parser = mode_parser(), value_delimiter = ',', default_value = "tcp,stcp")]
    pub modes: Vec<Mode>,
    #[command(flatten)]
    pub search: SearchArgs,
    /// Crypto backend (client and embedded server).
    #[arg(long, value_parser = crypto_parser(), default_value = "aws-lc")]
    pub crypto: CryptoBackend,
    /// io backend of the embedded server (not with --target).
    #[arg(long, value_parser = io_parser())]
    pub io: Option<IoBackend>,
    #[command(flatten)]
    pub server: TargetArgs,
    /// Client threads (default: every core the embedded server does not use, else every core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Longest wait for a connect, a handshake or one echo.
    #[arg(long, value_parser = parse_duration, default_value = "5s", value_name = "DURATION")]
    pub timeout: Duration,
    /// Busy poll of the client threads and the embedded server's io_uring workers, as for a run.
    #[arg(long, value_parser = parse_busy_poll, default_value = "off", value_name = "DURATION|off")]
    pub busy_poll: Duration,
    /// Directory for the step reports and sweep.json (default:
    /// results/sweep-PAYLOADxCLIENTS-<UTC start>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print every step's live line each second.
    #[arg(long)]
    pub live: bool,
}

/// Why the sweep could not run or could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("cannot write into {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("{0}")]
    Render(#[from] render::RenderError),
}

impl SweepError {
    pub fn exit_status(&self) -> i32 {
        match self {
            SweepError::Usage(_) => exit::USAGE,
            SweepError::Start(e) => e.exit_status(),
            _ => exit::CANNOT_START,
        }
    }
}

/// One sweep's workload and search, as `sweep` and `suite --sweep` give it.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    pub payload: u64,
    pub clients: u32,
    pub depth: u32,
    pub modes: Vec<Mode>,
    pub plan: SearchPlan,
    pub step_duration: Duration,
    pub step_warmup: Duration,
    pub crypto: CryptoBackend,
    pub threads: Option<u32>,
    pub timeout: Duration,
    pub busy_poll: Duration,
    pub live: bool,
}

impl SweepSpec {
    /// The run options of one step against the server `context` names. TLS steps against a
    /// running server connect by `--tls-target`'s name (sent as the server name, as a single run
    /// would) and pin `--server-cert`; every other step goes to the server under test's address.
    pub fn run_args(&self, context: &SweepContext, mode: Mode, rate: f64) -> RunArgs {
        let tls = mode == Mode::Tls;
        RunArgs {
            target: context.tls_target.clone().filter(|_| tls),
            listen: crate::embedded::DEFAULT_LISTEN,
            mode,
            server_key: None,
            server_cert: context.server_cert.clone().filter(|_| tls),
            psk: None,
            crypto: self.crypto,
            io: IoBackend::Auto,
            payload: self.payload as usize,
            max_frame: stcp_proto::DEFAULT_MAX_FRAME.max(self.payload as usize),
            clients: self.clients,
            depth: self.depth,
            threads: self.threads,
            rate: Some(rate),
            requests_per_conn: None,
            duration: self.step_duration,
            warmup: self.step_warmup,
            connect_rate: None,
            timeout: self.timeout,
            busy_poll: self.busy_poll,
            start_at: None,
            max_errors: 0,
            out: PathBuf::new(),
            json: false,
            quiet: !self.live,
        }
    }

    /// `256x50`.
    pub fn label(&self) -> String {
        format!("{}x{}", size_label(self.payload), self.clients)
    }
}

/// Runs `stcp-loadgen sweep`; returns the exit status.
pub fn command(args: &SweepArgs) -> i32 {
    match run_command(args) {
        Ok(status) => status,
        Err(e) => {
            crate::stderr_line!("stcp-loadgen sweep: {e}");
            e.exit_status()
        }
    }
}

fn run_command(args: &SweepArgs) -> Result<i32, SweepError> {
    let spec = SweepSpec {
        payload: args.payload as u64,
        clients: args.clients,
        depth: args.depth,
        modes: crate::suite::matrix::dedup(&args.modes),
        plan: args.search.plan().map_err(SweepError::Usage)?,
        step_duration: args.search.step_duration,
        step_warmup: args.search.step_warmup,
        crypto: args.crypto,
        threads: args.threads,
        timeout: args.timeout,
        busy_poll: args.busy_poll,
        live: args.live,
    };
    let mut context = SweepContext {
        target: args.server.target.clone(),
        tcp_target: args.server.tcp_target.clone(),
        tls_target: args.server.tls_target.clone(),
        server_cert: args.server.server_cert.clone(),
        io: args
            .io
            .or(Some(IoBackend::Auto))
            .filter(|_| args.server.target.is_none()),
        psk: None,
    };
    if args.server.target.is_some() && args.io.is_some() {
        return Err(SweepError::Usage(
            "--io chooses the embedded server's io backend; it does not apply with --target".into(),
        ));
    }
    if args.server.target.is_some()
        && args.server.tls_target.is_none()
        && spec.modes.contains(&Mode::Tls)
    {
        return Err(SweepError::Usage(
            "--modes tls against a running server needs its TLS address: give --tls-target \
             HOST:PORT (and --server-cert FILE), or leave tls out of --modes"
                .into(),
        ));
    }
    for &mode in &spec.modes {
        spec.run_args(&context, mode, spec.plan.start_rate)
            .validate()
            .map_err(SweepError::Usage)?;
    }
    let limit = run::prepare_process();
    let psk = run::load_psk(args.server.psk.as_deref())?;
    context.psk = psk;
    let split = crate::embedded::split_cores(environment::cores());
    run::check_descriptors(
        limit,
        args.clients,
        args.threads,
        args.server.target.is_none().then_some(&split),
    )?;
    let external = args.server.external().map_err(StartError::from)?;
    let (started, _) = environment::now_unix();
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("results").join(format!(
            "sweep-{}-{}",
            spec.label(),
            environment::compact_utc(started)
        ))
    });
    let combination = match external {
        Some(_) => Combination::External {
            crypto: args.crypto,
        },
        None => Combination::Embedded {
            crypto: args.crypto,
            io: args.io.unwrap_or(IoBackend::Auto),
        },
    };
    let server = start_server(
        combination,
        external.as_ref(),
        psk,
        spec.payload as usize,
        args.busy_poll,
    )?;
    let swept = sweep(&spec, &server, &context, &out);
    server.stop();
    let report = swept?;
    let path = out.join(schema::SWEEP_FILE_NAME);
    let text = render_beside(&report, &out)?;
    crate::stdout_text!("{text}");
    crate::stdout_line!("sweep report: {}", path.display());
    Ok(exit_status(&report))
}

/// Where a sweep runs, beside its spec: the server's addresses as given (recorded in the report),
/// the certificate TLS steps pin, the embedded server's io backend and the PSK.
pub struct SweepContext {
    pub target: Option<String>,
    pub tcp_target: Option<String>,
    pub tls_target: Option<String>,
    pub server_cert: Option<PathBuf>,
    pub io: Option<IoBackend>,
    pub psk: Option<[u8; 32]>,
}

/// 0 when the sweep ran whole with no error in any step; 3 when it was cut short; 1 when a step
/// had errors.
pub fn exit_status(report: &SweepReport) -> i32 {
    if report.partial {
        exit::PARTIAL
    } else if report.errors_total > 0 {
        exit::TOO_MANY_ERRORS
    } else {
        exit::OK
    }
}

/// Writes the capacity table (`report.md`) and the chart beside `report`'s sweep.json in `dir`;
/// returns the Markdown.
pub fn render_beside(report: &SweepReport, dir: &Path) -> Result<String, SweepError> {
    let evaluation = render::Evaluation::of_sweeps(vec![report.clone()]);
    let text = render::markdown::document(&evaluation);
    for p in render::write_outputs(&evaluation, &text, dir)? {
        crate::stderr_line!("stcp-loadgen sweep: wrote {}", p.display());
    }
    Ok(text)
}

/// Runs the sweep of `spec` against `server`, writing every step's run report and then sweep.json
/// into `out`; returns the sweep report (partial when a step could not start or Ctrl-C came).
pub fn sweep(
    spec: &SweepSpec,
    server: &ServerUnderTest,
    context: &SweepContext,
    out: &Path,
) -> Result<SweepReport, SweepError> {
    if out.join(schema::SWEEP_FILE_NAME).exists() {
        return Err(SweepError::Usage(format!(
            "{} already holds a sweep: give another --out",
            out.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| SweepError::Write(out.to_path_buf(), e))?;
    let (started_secs, started_nanos) = environment::now_unix();
    let plan = spec.plan;
    let per_step = spec.step_warmup + spec.step_duration;
    crate::stderr_line!(
        "stcp-loadgen sweep: {} ({}), depth {}, from {:.0} req/s x{} a step, then {} bisection \
         step(s); SLO p99 {}, ceiling {}; {:?} warm-up + {:?} measured a step, at most {} steps a \
         mode (about {:.0} s each); reports into {}",
        spec.label(),
        spec.modes
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(" and "),
        spec.depth,
        plan.start_rate,
        plan.step_factor,
        plan.refine_steps,
        latency(plan.slo_p99_us),
        latency(plan.p99_ceiling_us),
        spec.step_warmup,
        spec.step_duration,
        plan.max_steps,
        per_step.as_secs_f64(),
        out.display()
    );
    let mut searches: Vec<(Mode, Search)> =
        spec.modes.iter().map(|&m| (m, Search::new(plan))).collect();
    let mut steps: Vec<SweepStep> = Vec::new();
    let mut partial_reason: Option<String> = None;
    'sweep: loop {
        let mut any = false;
        for (mode, search) in searches.iter_mut() {
            let Some((phase, rate)) = search.next() else {
                continue;
            };
            any = true;
            if crate::interrupt::interrupted() {
                partial_reason = Some("interrupted".into());
                break 'sweep;
            }
            let sequence = steps.len() as u64 + 1;
            let step = match run_step(spec, server, context, out, sequence, *mode, phase, rate) {
                Ok(step) => step,
                Err(e) => {
                    partial_reason = Some(format!("step {sequence} could not start: {e}"));
                    break 'sweep;
                }
            };
            search.record(step.result());
            if let Some(stop) = search.stopped() {
                crate::stderr_line!(
                    "stcp-loadgen sweep: {} done after {} step(s): {}",
                    mode.name(),
                    search.steps(),
                    stop.describe(plan.p99_ceiling_us)
                );
            }
            let interrupted = step.partial && crate::interrupt::interrupted();
            steps.push(step);
            if interrupted {
                partial_reason = Some("interrupted".into());
                break 'sweep;
            }
        }
        if !any {
            break;
        }
    }
    let (finished_secs, finished_nanos) = environment::now_unix();
    let stopped = |mode: Mode| {
        let search = searches.iter().find(|(m, _)| *m == mode).map(|(_, s)| s);
        match (search.and_then(Search::stopped), &partial_reason) {
            (Some(stop), _) => stop.describe(plan.p99_ceiling_us),
            (None, Some(why)) => format!("cut short: {why}"),
            (None, None) => "not run".into(),
        }
    };
    let (modes, capacity_ratio) = capacities(&spec.modes, &steps, plan.slo_p99_us, stopped);
    let errors_total = steps.iter().map(|s| s.errors_total).sum();
    let uname = environment::uname();
    let report = SweepReport {
        schema_version: schema::SWEEP_SCHEMA_VERSION,
        tool: schema::SWEEP_TOOL_NAME.into(),
        partial: partial_reason.is_some(),
        ok: partial_reason.is_none() && errors_total == 0,
        partial_reason,
        errors_total,
        configuration: SweepConfiguration {
            payload_bytes: spec.payload,
            clients: u64::from(spec.clients),
            depth: u64::from(spec.depth),
            modes: spec.modes.iter().map(|m| m.name().to_string()).collect(),
            slo_p99_us: plan.slo_p99_us,
            p99_ceiling_us: plan.p99_ceiling_us,
            start_rate_per_second: plan.start_rate,
            step_factor: plan.step_factor,
            refine_steps: plan.refine_steps,
            max_steps: plan.max_steps,
            max_rate_per_second: plan.max_rate,
            schedule_tolerance: crate::schedule::SCHEDULE_TOLERANCE,
            duration_seconds: spec.step_duration.as_secs_f64(),
            warmup_seconds: spec.step_warmup.as_secs_f64(),
            timeout_seconds: spec.timeout.as_secs_f64(),
            crypto: spec.crypto.name().to_string(),
            io: context.io.map(|io| io.name().to_string()),
            embedded_server: server.embedded().is_some(),
            target: context.target.clone(),
            tcp_target: context.tcp_target.clone(),
            tls_target: context.tls_target.clone(),
            psk: context.psk.is_some(),
            busy_poll_us: spec.busy_poll.as_secs_f64() * 1e6,
        },
        environment: crate::suite::schema::SuiteEnvironment {
            hostname: uname.hostname,
            kernel: uname.kernel,
            cpu_model: environment::cpu_model(),
            cores: environment::cores() as u64,
            client_io_backend: "io_uring".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            started_at: environment::rfc3339(started_secs, started_nanos),
            finished_at: environment::rfc3339(finished_secs, finished_nanos),
        },
        steps,
        modes,
        capacity_ratio,
        sources: Vec::new(),
    };
    report
        .write_into(out)
        .map_err(|e| SweepError::Write(out.to_path_buf(), e))?;
    for m in &report.modes {
        crate::stderr_line!(
            "stcp-loadgen sweep: {} capacity {} ({})",
            m.mode.name(),
            m.capacity_per_second
                .map_or("none: no step within the SLO".into(), |c| format!(
                    "{c:.0} req/s"
                )),
            m.stopped
        );
    }
    Ok(report)
}

/// One step: a real open-loop run at `rate`, its report written into `out`.
#[allow(clippy::too_many_arguments)]
fn run_step(
    spec: &SweepSpec,
    server: &ServerUnderTest,
    context: &SweepContext,
    out: &Path,
    sequence: u64,
    mode: Mode,
    phase: Phase,
    rate: f64,
) -> Result<SweepStep, StartError> {
    let phase_name = match phase {
        Phase::Climb => "climb",
        Phase::Refine => "refine",
    };
    let label = format!(
        "[{sequence}] {} {} {phase_name} {rate:.0} req/s",
        mode.name(),
        spec.label()
    );
    let measured = run::measure(
        &spec.run_args(context, mode, rate),
        server,
        context.psk.filter(|_| mode == Mode::Stcp),
        None,
    )?;
    let report = measured.report;
    let file = format!(
        "{sequence:02}-{}-{}-c{}-r{}.json",
        mode.name(),
        size_label(spec.payload),
        spec.clients,
        rate.round() as u64
    );
    report
        .write_as(out, &file)
        .map_err(|e| StartError::Report(out.to_path_buf(), e))?;
    let step = SweepStep::of(sequence, file, phase, &report, spec.plan.slo_p99_us);
    let l = &step.latency;
    crate::stderr_line!(
        "{label}: achieved {:.0} ({:.1} %)  p50 {}  p99 {}  p99.9 {}  errors {}  {}{}",
        step.achieved_per_second,
        step.fraction * 100.0,
        latency(l.p50_us),
        latency(l.p99_us),
        latency(l.p99_9_us),
        step.errors_total,
        if step.within_slo {
            "within the SLO"
        } else {
            "PAST the SLO"
        },
        report
            .results
            .schedule
            .and_then(|s| s.behind_line())
            .map(|line| format!("\n    {line}"))
            .unwrap_or_default()
    );
    Ok(step)
}
