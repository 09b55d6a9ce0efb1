//! One backend combination's share of the suite: every row's interleaved TCP/STCP pairs against
//! one server, each run through [`crate::run::measure`], its report written, a progress line on
//! stderr.

use std::path::{Path, PathBuf};

use super::matrix::Combination;
use super::rows::Row;
use super::schema::SuiteRun;
use stcp_proto::{CryptoBackend, Mode};
use stcp_server::IoBackend;

use super::SuiteArgs;
use crate::report::{size_label, Report, SuiteCell};
use crate::run::RunArgs;
use crate::run::{self, StartError};
use crate::server_under_test::ServerUnderTest;
use crate::summary::latency;

/// A run done: its line in the suite report and its report.
pub(super) struct Done {
    pub run: SuiteRun,
    pub report: Report,
}

/// Why the suite stopped before its last run.
pub(super) struct Stop {
    pub reason: String,
    pub failure: Option<StartError>,
}

/// The run options of one run of the suite.
pub(super) fn run_args(args: &SuiteArgs, row: Row, mode: Mode, crypto: CryptoBackend) -> RunArgs {
    let stcp = mode == Mode::Stcp;
    RunArgs {
        target: match mode {
            Mode::Stcp => args.server.target.clone(),
            Mode::Tcp => args.server.tcp_target.clone(),
            Mode::Tls => args.server.tls_target.clone(),
        },
        listen: crate::embedded::DEFAULT_LISTEN,
        mode,
        server_key: None,
        server_cert: args
            .server
            .server_cert
            .clone()
            .filter(|_| mode == Mode::Tls),
        psk: args.server.psk.clone().filter(|_| stcp),
        crypto,
        io: IoBackend::Auto,
        payload: row.payload_bytes as usize,
        max_frame: stcp_proto::DEFAULT_MAX_FRAME,
        clients: row.clients,
        depth: 1,
        threads: args.threads,
        rate: None,
        requests_per_conn: row.requests_per_conn,
        duration: args.duration,
        warmup: args.warmup,
        connect_rate: None,
        timeout: args.timeout,
        busy_poll: args.busy_poll,
        start_at: None,
        max_errors: 0,
        out: PathBuf::new(),
        json: false,
        quiet: !args.live,
    }
}

/// Every pair of every row against one server, in order; stops at the first run that cannot
/// start or is interrupted.
pub(super) fn run_combination(
    args: &SuiteArgs,
    combination: Combination,
    server: &ServerUnderTest,
    psk: Option<[u8; 32]>,
    (crypto, io): &(String, String),
    (out, width, planned, modes): (&Path, usize, u64, &[Mode]),
    done: &mut Vec<Done>,
) -> Result<(), Stop> {
    for pair in 1..=args.repeat {
        for row in &args.rows {
            let (mut tcp_rps, mut stcp_rps) = (None, None);
            for &mode in modes {
                if crate::interrupt::interrupted() {
                    return Err(Stop {
                        reason: "interrupted".into(),
                        failure: None,
                    });
                }
                let sequence = done.len() as u64 + 1;
                let label = format!(
                    "[{sequence}/{planned}] {} {row} ({crypto}, {io}, pair {pair}/{})",
                    mode.name(),
                    args.repeat
                );
                crate::stderr_line!("{label} ...");
                let cell = SuiteCell {
                    crypto: crypto.clone(),
                    io: io.clone(),
                    pair,
                    sequence,
                };
                let measured = run::measure(
                    &run_args(args, *row, mode, combination.crypto()),
                    server,
                    psk.filter(|_| mode == Mode::Stcp),
                    Some(cell),
                )
                .map_err(|e| Stop {
                    reason: format!("run {sequence} could not start: {e}"),
                    failure: Some(e),
                })?;
                let report = measured.report;
                let file = format!(
                    "{sequence:0width$}-{}-{}-c{}{}-{crypto}-{io}-pair{pair}.json",
                    mode.name(),
                    size_label(row.payload_bytes),
                    row.clients,
                    row.requests_per_conn
                        .map(|n| format!("-n{n}"))
                        .unwrap_or_default()
                );
                report.write_as(out, &file).map_err(|e| {
                    let failure = StartError::Report(out.to_path_buf(), e);
                    Stop {
                        reason: failure.to_string(),
                        failure: Some(failure),
                    }
                })?;
                let r = &report.results;
                // A churn row compares connections per second, the others requests per second.
                let churn = row.requests_per_conn.is_some();
                let rate = if churn {
                    r.handshakes_per_second
                } else {
                    r.requests_per_second
                };
                let ratio = match (mode, tcp_rps, stcp_rps) {
                    (Mode::Stcp, Some(t), _) if t > 0.0 => {
                        format!("  STCP/TCP {:.3}", rate / t)
                    }
                    (Mode::Tls, _, Some(s)) if rate > 0.0 => {
                        format!("  STCP/TLS {:.3}", s / rate)
                    }
                    _ => String::new(),
                };
                let handshakes = if churn {
                    format!("{:.0} handshakes/s  ", r.handshakes_per_second)
                } else {
                    String::new()
                };
                crate::stderr_line!(
                    "{label}: {handshakes}{:.0} req/s  {:.2} MB/s  avg {}  p99 {}  errors {}{}{ratio}  -> {file}",
                    r.requests_per_second,
                    r.throughput_mb_per_s,
                    latency(r.latency.mean_us),
                    latency(r.latency.p99_us),
                    r.errors_total,
                    report
                        .partial_reason
                        .as_ref()
                        .map(|why| format!("  PARTIAL: {why}"))
                        .unwrap_or_default()
                );
                match mode {
                    Mode::Tcp => tcp_rps = Some(rate),
                    Mode::Stcp => stcp_rps = Some(rate),
                    Mode::Tls => {}
                }
                let interrupted = report.partial_reason.as_deref() == Some("interrupted");
                done.push(Done {
                    run: SuiteRun {
                        sequence,
                        file,
                        mode,
                        payload_bytes: row.payload_bytes,
                        clients: u64::from(row.clients),
                        requests_per_conn: row.requests_per_conn,
                        crypto: crypto.clone(),
                        io: io.clone(),
                        pair,
                        requests_per_second: r.requests_per_second,
                        handshakes_per_second: r.handshakes_per_second,
                        throughput_mb_per_s: r.throughput_mb_per_s,
                        errors_total: r.errors_total,
                        partial: report.partial,
                        exit_status: run::exit_status(&report, 0),
                    },
                    report,
                });
                if interrupted {
                    return Err(Stop {
                        reason: "interrupted".into(),
                        failure: None,
                    });
                }
            }
        }
    }
    Ok(())
}
