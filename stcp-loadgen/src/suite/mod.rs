//! `stcp-loadgen suite`: the seed's table, TCP against STCP (and TLS 1.3 where the server has
//! it). For every backend combination (crypto × io) one server is started (or the external one is
//! used); every row then runs in each mode, interleaved (TCP, STCP, TLS, TCP, STCP, TLS ...) so
//! drift of the machine hits all alike, `--repeat` times. Every run writes its own report (through
//! [`crate::run::measure`]); the suite report adds the STCP/TCP and STCP/TLS ratios per row
//! (median of the pairs, with spread).

pub mod aggregate;
pub(crate) mod matrix;
mod pairs;
pub mod rows;
pub mod schema;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use stcp_proto::{CryptoBackend, Mode};
use stcp_server::IoBackend;

use crate::environment;
use crate::render;
use crate::report::Report;
use crate::run::{self, exit, StartError};
use crate::server_under_test::{ServerUnderTest, TargetArgs};
use crate::sweep::search::SearchArgs;
use crate::sweep::{self, SweepContext, SweepSpec};
use crate::values::{crypto_parser, io_parser, mode_parser, parse_busy_poll, parse_duration};
use aggregate::{AggregateError, RunInput};
use matrix::{combinations, describe_server, io_choices, start_server};
use pairs::{run_args, run_combination, Done, Stop};
use rows::Row;
use schema::{RowSpec, SuiteConfiguration, SuiteEnvironment, SuiteReport, SuiteSweep};

/// `suite`: the seed's table, TCP vs STCP, interleaved.
#[derive(Debug, Clone, Args)]
pub struct SuiteArgs {
    /// Workloads as PAYLOADxCLIENTS, comma-separated (default: the seed's four rows and
    /// 1 MiB x 20).
    #[arg(long, value_parser = parse_row, value_delimiter = ',', default_value = rows::DEFAULT_ROWS, value_name = "ROWS")]
    pub rows: Vec<Row>,
    /// Measured interval of every run (the seed measured 70 s).
    #[arg(long, value_parser = parse_duration, default_value = "70s", value_name = "DURATION")]
    pub duration: Duration,
    /// Load applied before each run's measured interval, excluded from every statistic.
    #[arg(long, value_parser = parse_duration, default_value = "2s", value_name = "DURATION")]
    pub warmup: Duration,
    /// Modes to run, comma-separated, interleaved in this order (default: tcp, stcp, and tls
    /// when the server serves it: an external one given --tls-target).
    #[arg(long, value_parser = mode_parser(), value_delimiter = ',', value_name = "MODES")]
    pub modes: Vec<Mode>,
    /// Interleaved TCP/STCP(/TLS) rounds per row and backend combination.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub repeat: u64,
    /// Crypto backends to run, comma-separated (client and embedded server).
    #[arg(long, value_parser = crypto_parser(), value_delimiter = ',', default_value = "aws-lc")]
    pub crypto: Vec<CryptoBackend>,
    /// Embedded server io backends to run, comma-separated (default: auto; not with --target).
    #[arg(long, value_parser = io_parser(), value_delimiter = ',')]
    pub io: Vec<IoBackend>,
    #[command(flatten)]
    pub server: TargetArgs,
    /// Client threads (default: every core the embedded server does not use, else every core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Longest wait for a connect, a handshake or one echo.
    #[arg(long, value_parser = parse_duration, default_value = "5s", value_name = "DURATION")]
    pub timeout: Duration,
    /// Busy poll of the client threads and of the embedded server's io_uring workers in every
    /// run, as for a single run (burns idle CPU; changes what is measured).
    #[arg(long, value_parser = parse_busy_poll, default_value = "off", value_name = "DURATION|off")]
    pub busy_poll: Duration,
    /// Directory for the run reports and suite.json (default: results/suite-<UTC start>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print every run's live line each second.
    #[arg(long)]
    pub live: bool,
    /// After each combination's rows, sweep the offered rate of its 256 B and 16 KiB rows (TCP and
    /// STCP interleaved) for their capacity under --slo-p99, as `stcp-loadgen sweep` does.
    #[arg(long)]
    pub sweep: bool,
    /// How the sweeps search (with --sweep).
    #[command(flatten)]
    pub search: SearchArgs,
}

/// Payloads whose rows `--sweep` sweeps.
pub const SWEPT_PAYLOADS: [u64; 2] = [256, 16 << 10];

fn parse_row(text: &str) -> Result<Row, String> {
    text.parse()
}

/// The two modes of a pair, in the order they run (and that the sweeps compare).
pub const PAIR_ORDER: [Mode; 2] = [Mode::Tcp, Mode::Stcp];

/// Every mode, in the order a round runs them.
pub const ROUND_ORDER: [Mode; 3] = [Mode::Tcp, Mode::Stcp, Mode::Tls];

/// The modes a round runs against `server`: --modes, else every mode it serves.
pub(crate) fn round_modes(args: &SuiteArgs, server: &ServerUnderTest) -> Vec<Mode> {
    if !args.modes.is_empty() {
        return args.modes.clone();
    }
    ROUND_ORDER
        .into_iter()
        .filter(|m| server.addr(*m).is_some())
        .collect()
}

/// Why the suite could not run or could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("cannot write into {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("{0}")]
    Aggregate(#[from] AggregateError),
}

impl SuiteError {
    pub fn exit_status(&self) -> i32 {
        match self {
            SuiteError::Usage(_) => exit::USAGE,
            SuiteError::Start(e) => e.exit_status(),
            _ => exit::CANNOT_START,
        }
    }
}

/// Runs the suite; returns the exit status.
pub fn run(args: &SuiteArgs) -> i32 {
    match run_suite(args) {
        Ok(status) => status,
        Err(e) => {
            crate::stderr_line!("stcp-loadgen suite: {e}");
            e.exit_status()
        }
    }
}

fn run_suite(args: &SuiteArgs) -> Result<i32, SuiteError> {
    rows::check_rows(&args.rows).map_err(SuiteError::Usage)?;
    if args.server.target.is_some() && !args.io.is_empty() {
        return Err(SuiteError::Usage(
            "--io chooses the embedded server's io backend; it does not apply with --target".into(),
        ));
    }
    if args.duration.is_zero() {
        return Err(SuiteError::Usage(
            "--duration must be longer than zero".into(),
        ));
    }
    let combinations = combinations(args);
    let swept = swept_rows(args)?;
    for row in &args.rows {
        let modes = if args.modes.is_empty() {
            &ROUND_ORDER[..]
        } else {
            &args.modes[..]
        };
        for &mode in modes {
            run_args(args, *row, mode, args.crypto[0])
                .validate()
                .map_err(|e| SuiteError::Usage(format!("row {row}: {e}")))?;
        }
    }
    let limit = run::prepare_process();
    let psk = run::load_psk(args.server.psk.as_deref())?;
    let most_clients = args.rows.iter().map(|r| r.clients).max().unwrap_or(1);
    let split = crate::embedded::split_cores(environment::cores());
    run::check_descriptors(
        limit,
        most_clients,
        args.threads,
        args.server.target.is_none().then_some(&split),
    )?;
    let external = args.server.external().map_err(StartError::from)?;

    let (started_secs, started_nanos) = environment::now_unix();
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("results").join(format!("suite-{}", environment::compact_utc(started_secs)))
    });
    if out.join(schema::SUITE_FILE_NAME).exists() {
        return Err(SuiteError::Usage(format!(
            "{} already holds a suite: give another --out",
            out.display()
        )));
    }
    std::fs::create_dir_all(&out).map_err(|e| SuiteError::Write(out.clone(), e))?;

    // The modes of every round: what the first server serves (all combinations' servers are
    // alike), unless --modes says.
    let largest_payload = args.rows.iter().map(|r| r.payload_bytes).max().unwrap_or(0);
    let mut first_server = Some(start_server(
        combinations[0],
        external.as_ref(),
        psk,
        largest_payload as usize,
        args.busy_poll,
    )?);
    let modes = round_modes(args, first_server.as_ref().expect("started above"));
    let planned =
        args.rows.len() as u64 * modes.len() as u64 * args.repeat * combinations.len() as u64;
    let per_run = args.warmup + args.duration + Duration::from_millis(500);
    crate::stderr_line!(
        "stcp-loadgen suite: {} row(s) x {} modes ({}) x {} round(s) x {} backend combination(s) = {planned} runs \
         of {:?} warm-up + {:?} measured, about {}; reports into {}",
        args.rows.len(),
        modes.len(),
        modes.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
        args.repeat,
        combinations.len(),
        args.warmup,
        args.duration,
        human_duration(per_run * planned as u32),
        out.display()
    );

    if !swept.is_empty() {
        crate::stderr_line!(
            "stcp-loadgen suite: then the sweeps of {} per combination, each up to {} steps a mode \
             of {:?} warm-up + {:?} measured",
            swept
                .iter()
                .map(|s| s.label())
                .collect::<Vec<_>>()
                .join(" and "),
            args.search.max_steps,
            args.search.step_warmup,
            args.search.step_duration
        );
    }
    let mut done: Vec<Done> = Vec::new();
    let mut sweeps: Vec<(SuiteSweep, crate::sweep::schema::SweepReport)> = Vec::new();
    let mut stop: Option<Stop> = None;
    let width = planned.to_string().len().max(2);
    for combination in &combinations {
        let started = match first_server.take() {
            Some(server) => Ok(server),
            None => start_server(
                *combination,
                external.as_ref(),
                psk,
                largest_payload as usize,
                args.busy_poll,
            ),
        };
        let server = match started {
            Ok(s) => s,
            Err(e) => {
                stop = Some(Stop {
                    reason: format!("a server could not be started: {e}"),
                    failure: Some(e),
                });
                break;
            }
        };
        let cell = (
            combination.crypto().name().to_string(),
            match &server {
                ServerUnderTest::Embedded(s) => s.backend().to_string(),
                ServerUnderTest::External(_) => aggregate::EXTERNAL.to_string(),
            },
        );
        describe_server(&server, &cell);
        let mut outcome = run_combination(
            args,
            *combination,
            &server,
            psk,
            &cell,
            (&out, width, planned, &modes),
            &mut done,
        );
        if outcome.is_ok() {
            outcome = sweep_combination(
                &swept,
                combination.crypto(),
                &server,
                (args, psk, &cell),
                &out,
                &mut sweeps,
            );
        }
        server.stop();
        if let Err(s) = outcome {
            stop = Some(s);
            break;
        }
    }

    let (finished_secs, finished_nanos) = environment::now_unix();
    let inputs: Vec<RunInput<'_>> = done
        .iter()
        .map(|d| RunInput {
            file: d.run.file.clone(),
            report: &d.report,
        })
        .collect();
    let rows = aggregate::summarize(&inputs)?;
    let errors_total = done.iter().map(|d| d.run.errors_total).sum();
    let all_clean = done.iter().all(|d| d.run.exit_status == exit::OK)
        && sweeps
            .iter()
            .all(|(s, _)| !s.partial && s.errors_total == 0);
    let uname = environment::uname();
    let suite = SuiteReport {
        schema_version: schema::SUITE_SCHEMA_VERSION,
        tool: schema::SUITE_TOOL_NAME.into(),
        partial: stop.is_some(),
        partial_reason: stop.as_ref().map(|s| s.reason.clone()),
        ok: stop.is_none() && all_clean,
        errors_total,
        configuration: configuration(args, psk.is_some(), planned, &modes),
        environment: SuiteEnvironment {
            hostname: uname.hostname,
            kernel: uname.kernel,
            cpu_model: environment::cpu_model(),
            cores: environment::cores() as u64,
            client_io_backend: "io_uring".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            started_at: environment::rfc3339(started_secs, started_nanos),
            finished_at: environment::rfc3339(finished_secs, finished_nanos),
        },
        runs: done.iter().map(|d| d.run.clone()).collect(),
        rows,
        sweeps: sweeps.iter().map(|(s, _)| s.clone()).collect(),
    };
    let path = suite
        .write_into(&out)
        .map_err(|e| SuiteError::Write(out.clone(), e))?;
    let reports: Vec<&Report> = done.iter().map(|d| &d.report).collect();
    let evaluation = render::Evaluation::of_suite(
        &suite,
        &reports,
        sweeps.into_iter().map(|(_, report)| report).collect(),
    );
    let text = render::markdown::document(&evaluation);
    crate::stdout_text!("{text}");
    crate::stdout_line!("suite report: {}", path.display());
    // The table and charts beside the reports, so one command reproduces both.
    match render::write_outputs(&evaluation, &text, &out) {
        Ok(written) => {
            for p in written {
                crate::stderr_line!("stcp-loadgen suite: wrote {}", p.display());
            }
        }
        Err(e) => crate::stderr_line!("stcp-loadgen suite: table and charts not written: {e}"),
    }

    let status = match exit_status(stop.as_ref(), &done) {
        exit::OK if !suite.ok => exit::TOO_MANY_ERRORS,
        status => status,
    };
    if status != exit::OK {
        crate::stderr_line!(
            "stcp-loadgen suite: FAILED: {} error(s) over {} run(s), {} partial (see {})",
            errors_total,
            done.len(),
            done.iter().filter(|d| d.run.partial).count(),
            path.display()
        );
    }
    Ok(status)
}

/// The sweeps `--sweep` asks for: one per persistent row of 256 B or 16 KiB (not the churn
/// rows, whose rate would count connections), with the search options.
fn swept_rows(args: &SuiteArgs) -> Result<Vec<SweepSpec>, SuiteError> {
    if !args.sweep {
        return Ok(Vec::new());
    }
    let plan = args.search.plan().map_err(SuiteError::Usage)?;
    let specs: Vec<SweepSpec> = args
        .rows
        .iter()
        .filter(|r| SWEPT_PAYLOADS.contains(&r.payload_bytes) && r.requests_per_conn.is_none())
        .map(|r| SweepSpec {
            payload: r.payload_bytes,
            clients: r.clients,
            depth: 1,
            modes: PAIR_ORDER.to_vec(),
            plan,
            step_duration: args.search.step_duration,
            step_warmup: args.search.step_warmup,
            crypto: args.crypto[0],
            threads: args.threads,
            timeout: args.timeout,
            busy_poll: args.busy_poll,
            live: args.live,
        })
        .collect();
    if specs.is_empty() {
        return Err(SuiteError::Usage(
            "--sweep sweeps the 256 B and 16 KiB rows, and --rows has neither".into(),
        ));
    }
    Ok(specs)
}

/// The sweeps of one backend combination against its server, each into its own directory under
/// `out`; stops at the first that cannot run or is interrupted.
fn sweep_combination(
    specs: &[SweepSpec],
    crypto: stcp_proto::CryptoBackend,
    server: &ServerUnderTest,
    (args, psk, (crypto_name, io)): (&SuiteArgs, Option<[u8; 32]>, &(String, String)),
    out: &std::path::Path,
    sweeps: &mut Vec<(SuiteSweep, crate::sweep::schema::SweepReport)>,
) -> Result<(), Stop> {
    for spec in specs {
        let spec = SweepSpec {
            crypto,
            ..spec.clone()
        };
        let dir_name = format!("sweep-{}-{crypto_name}-{io}", spec.label());
        let context = SweepContext {
            target: args.server.target.clone(),
            tcp_target: args.server.tcp_target.clone(),
            tls_target: args.server.tls_target.clone(),
            server_cert: args.server.server_cert.clone(),
            io: server.embedded().map(|_| IoBackend::Auto),
            psk,
        };
        let report = sweep::sweep(&spec, server, &context, &out.join(&dir_name)).map_err(|e| {
            let reason = format!("the sweep of {} could not run: {e}", spec.label());
            match e {
                sweep::SweepError::Start(failure) => Stop {
                    reason,
                    failure: Some(failure),
                },
                _ => Stop {
                    reason,
                    failure: None,
                },
            }
        })?;
        let interrupted = report.partial_reason.as_deref() == Some("interrupted");
        sweeps.push((
            SuiteSweep {
                file: format!("{dir_name}/{}", sweep::schema::SWEEP_FILE_NAME),
                payload_bytes: spec.payload,
                clients: u64::from(spec.clients),
                crypto: crypto_name.clone(),
                io: io.clone(),
                tcp_capacity_per_second: report.capacity(Mode::Tcp),
                stcp_capacity_per_second: report.capacity(Mode::Stcp),
                capacity_ratio: report.capacity_ratio,
                partial: report.partial,
                errors_total: report.errors_total,
            },
            report,
        ));
        if interrupted {
            return Err(Stop {
                reason: "interrupted".into(),
                failure: None,
            });
        }
    }
    Ok(())
}

/// What was asked for, as the suite report records it.
fn configuration(args: &SuiteArgs, psk: bool, planned: u64, modes: &[Mode]) -> SuiteConfiguration {
    SuiteConfiguration {
        rows: args
            .rows
            .iter()
            .map(|r| RowSpec {
                payload_bytes: r.payload_bytes,
                clients: u64::from(r.clients),
                requests_per_conn: r.requests_per_conn,
            })
            .collect(),
        repeat: args.repeat,
        duration_seconds: args.duration.as_secs_f64(),
        warmup_seconds: args.warmup.as_secs_f64(),
        timeout_seconds: args.timeout.as_secs_f64(),
        depth: 1,
        crypto: args.crypto.iter().map(|c| c.name().to_string()).collect(),
        io: if args.server.target.is_some() {
            Vec::new()
        } else {
            io_choices(args)
                .iter()
                .map(|i| i.name().to_string())
                .collect()
        },
        embedded_server: args.server.target.is_none(),
        target: args.server.target.clone(),
        tcp_target: args.server.tcp_target.clone(),
        tls_target: args.server.tls_target.clone(),
        modes: modes.iter().map(|m| m.name().to_string()).collect(),
        psk,
        planned_runs: planned,
        busy_poll_us: args.busy_poll.as_secs_f64() * 1e6,
        sweep: args.sweep,
    }
}

/// The suite's exit status: a run or server that could not start, then Ctrl-C or a partial run,
/// then any error in any run, else 0.
fn exit_status(stop: Option<&Stop>, done: &[Done]) -> i32 {
    match stop {
        Some(Stop {
            failure: Some(e), ..
        }) => {
            crate::stderr_line!("stcp-loadgen suite: stopped: {e}");
            e.exit_status()
        }
        Some(s) => {
            crate::stderr_line!("stcp-loadgen suite: stopped: {}", s.reason);
            exit::PARTIAL
        }
        None if done.iter().any(|d| d.run.partial) => exit::PARTIAL,
        None if done.iter().any(|d| d.run.exit_status != exit::OK) => exit::TOO_MANY_ERRORS,
        None => exit::OK,
    }
}

/// "about 12 min", "about 40 s".
fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 90.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{s:.0} s")
    }
}

#[cfg(test)]
mod tests {
    use super::matrix::Combination;
    use super::rows::Row;
    use super::*;
    use clap::Parser;
    use stcp_proto::CryptoBackend;
    use stcp_server::IoBackend;

    fn suite_args(extra: &[&str]) -> SuiteArgs {
        let cli = crate::cli::Cli::try_parse_from(
            ["stcp-loadgen", "suite"]
                .iter()
                .chain(extra.iter())
                .copied(),
        )
        .unwrap();
        match cli.command {
            Some(crate::cli::Command::Suite(s)) => s,
            _ => panic!("suite not recognised"),
        }
    }

    #[test]
    fn defaults_are_the_seeds_table_for_seventy_seconds() {
        let args = suite_args(&[]);
        let rows: Vec<String> = args.rows.iter().map(Row::to_string).collect();
        assert_eq!(
            rows,
            ["256x50", "4kx20", "16kx10", "64kx5", "1mx20", "256x16n1"]
        );
        assert_eq!(args.duration, Duration::from_secs(70));
        assert_eq!(args.warmup, Duration::from_secs(2));
        assert_eq!(args.repeat, 1);
        assert_eq!(combinations(&args).len(), 1);
        assert_eq!(args.busy_poll, Duration::ZERO);
    }

    #[test]
    fn busy_poll_reaches_every_run() {
        let args = suite_args(&["--busy-poll", "50us"]);
        assert_eq!(args.busy_poll, Duration::from_micros(50));
        for row in &args.rows {
            for mode in PAIR_ORDER {
                let r = run_args(&args, *row, mode, CryptoBackend::AwsLc);
                assert_eq!(r.busy_poll, Duration::from_micros(50));
            }
        }
        assert_eq!(
            configuration(&args, false, 8, &PAIR_ORDER).busy_poll_us,
            50.0
        );
    }

    #[test]
    fn the_matrix_is_crypto_by_io() {
        let args = suite_args(&[
            "--crypto",
            "aws-lc,rustcrypto",
            "--io",
            "uring,epoll",
            "--rows",
            "256x50,64kx5",
        ]);
        assert_eq!(args.rows.len(), 2);
        let c = combinations(&args);
        assert_eq!(c.len(), 4);
        assert!(matches!(
            c[1],
            Combination::Embedded {
                crypto: CryptoBackend::AwsLc,
                io: IoBackend::Epoll
            }
        ));
    }

    #[test]
    fn targets_come_in_pairs_and_exclude_io() {
        let cli = |extra: &[&str]| {
            crate::cli::Cli::try_parse_from(
                ["stcp-loadgen", "suite"]
                    .iter()
                    .chain(extra.iter())
                    .copied(),
            )
        };
        assert!(cli(&["--target", "127.0.0.1:1"]).is_err());
        assert!(cli(&["--server-key", "k.pub"]).is_err());
        let args = suite_args(&[
            "--target",
            "127.0.0.1:1",
            "--tcp-target",
            "127.0.0.1:2",
            "--io",
            "epoll",
        ]);
        assert!(matches!(run_suite(&args), Err(SuiteError::Usage(_))));
    }

    #[test]
    fn every_row_of_the_seed_is_a_valid_run_in_both_modes() {
        let args = suite_args(&[]);
        for row in &args.rows {
            for mode in PAIR_ORDER {
                let r = run_args(&args, *row, mode, CryptoBackend::AwsLc);
                assert!(r.validate().is_ok(), "{row} {mode:?}");
                assert_eq!(r.mode, mode);
                assert_eq!(u64::from(r.clients), u64::from(row.clients));
            }
        }
    }
}
