//! The command line: `stcp-loadgen [RUN OPTIONS]` runs a load test, `stcp-loadgen merge A.json B.json ...`
//! combines reports. Sizes and durations take human units (`64k`, `1m`; `500ms`, `70s`, `2m`).
//! Only the top of the command line lives here: each command's options are declared beside the
//! code that runs it ([`RunArgs`], [`SuiteArgs`], [`ReportArgs`], [`StreamArgs`], [`MergeArgs`]),
//! so the command line depends on the rest of the crate and nothing depends on it.

use clap::{Parser, Subcommand};

use crate::merge::MergeArgs;
use crate::render::ReportArgs;
use crate::run::RunArgs;
use crate::stream::StreamArgs;
use crate::suite::SuiteArgs;
use crate::sweep::SweepArgs;

const EXAMPLES: &str = "\
Examples:
  stcp-loadgen --payload 64k --clients 5 --duration 70s
      64 KiB echoes over 5 STCP connections against an embedded server on loopback
  stcp-loadgen --payload 256 --clients 50 --mode tcp --duration 10s
      the same measurement over raw framed TCP
  stcp-loadgen --target 10.0.0.2:7443 --server-key stcp-server.key.pub --payload 4k --clients 20
      against a running stcp-server, pinning its public key
  stcp-loadgen --target 127.0.0.1:7445 --mode tls --server-cert stcp-server.crt --clients 10
      TLS 1.3 (rustls, AES-256-GCM, X25519) carrying the same frames, pinning that certificate
  stcp-loadgen --target localhost:7444 --mode tcp --clients 10
      each address localhost resolves to (::1, 127.0.0.1) is tried in turn until one accepts
  stcp-loadgen --listen ::1 --clients 10
      the embedded server on the IPv6 loopback
  stcp-loadgen --payload 256 --clients 10 --rate 20000 --duration 30s
      open loop at 20 000 requests/s in total, latency from each request's intended send time
  stcp-loadgen --requests-per-conn 1 --clients 16 --payload 256 --duration 4s --warmup 1s
      churn: each connection does one echo, closes cleanly and is replaced (handshakes/s, server
      CPU per handshake); --requests-per-conn 0 handshakes and closes without an echo
  stcp-loadgen --requests-per-conn 10 --clients 64 --rate 2000
      open-loop churn: 2000 new connections/s, 10 echoes each, at most 64 at a time
  stcp-loadgen --target 10.0.0.2:7443 --server-key k.pub --clients 50 --start-at 2026-12-02T16:00:00Z
      one of several load hosts given the same start: connect now, measure from 16:00:00 UTC
  stcp-loadgen merge results/a.json results/b.json --out results/
      combine reports from several client machines, with exact percentiles
  stcp-loadgen merge results/cluster --out results/
      every run report in a directory (they must have measured the same workload at the same time)
  stcp-loadgen sweep --payload 256 --clients 50
      latency against offered load, TCP and STCP: each mode's capacity under a p99 of 1 ms

Every connection is an open file, two with the embedded server: the soft limit is raised to the
hard one at start, and a run that still cannot fit is refused with the numbers. RUST_LOG sets the
log level (default warn); logs are coloured only on a terminal, never with NO_COLOR set.

Exit status: 0 when errors stay within --max-errors, 1 when they do not, 2 on bad usage, 3 when
the run was cut short or never got going (Ctrl-C, every connection lost, no connection set up;
the report is written, marked partial), 4 when it could not start (key or PSK file, target,
io_uring, open-file limit, report directory, a --start-at past or missed; no report), 130 on a
second Ctrl-C.";

/// Matched io_uring load generator for STCP, raw TCP and TLS 1.3 echo.
#[derive(Debug, Parser)]
#[command(name = "stcp-loadgen", version, about, after_help = EXAMPLES)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Combine reports of runs (or sweeps) made at the same time from several machines into one.
    Merge(MergeArgs),
    /// Run the seed's table in TCP, STCP (and TLS) mode, interleaved, and write every report and a suite report.
    #[command(after_help = SUITE_EXAMPLES)]
    Suite(SuiteArgs),
    /// Step the offered rate (open loop) in TCP and STCP mode to find each one's capacity under a
    /// p99 SLO; write every step's report and a sweep report.
    #[command(after_help = SWEEP_EXAMPLES)]
    Sweep(SweepArgs),
    /// Render suite, sweep and run reports as Markdown tables and SVG charts.
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Measure one-way bulk TCP throughput over loopback (a physical limit for the echo rows).
    Stream(StreamArgs),
}

const SUITE_EXAMPLES: &str = "\
Examples:
  stcp-loadgen suite
      the seed's four rows (256x50, 4kx20, 16kx10, 64kx5) and 1mx20, TCP, STCP then TLS, 70 s each,
      embedded server
  stcp-loadgen suite --duration 10s --repeat 3 --rows 256x50,64kx5
      three interleaved TCP/STCP pairs of two rows
  stcp-loadgen suite --crypto aws-lc,rustcrypto --io uring,epoll --duration 20s
      every row for each of the four backend combinations (one embedded server per combination)
  stcp-loadgen suite --target 169.254.77.1:7443 --tcp-target 169.254.77.1:7444 --server-key stcp-server.key.pub
      against a running stcp-server
  stcp-loadgen suite --target H:7443 --tcp-target H:7444 --tls-target H:7445 --server-cert stcp-server.crt
      TCP, STCP and TLS rounds against a running server, the STCP/TLS ratio beside STCP/TCP

Every run's report and suite.json (the STCP/TCP ratio per row: median of the pairs, with spread)
go into --out. Exit status: 0 when every run was whole and error-free, 1 when any run had an error
(verify mismatches included), 2 on bad usage, 3 when cut short (Ctrl-C), 4 when a server or a
report could not be started or written.";

const SWEEP_EXAMPLES: &str = "\
Examples:
  stcp-loadgen sweep --payload 256 --clients 50
      TCP and STCP interleaved against an embedded server, from 1000 req/s doubling while the
      schedule is kept, then 4 bisection steps near the knee; capacity under p99 1 ms
  stcp-loadgen sweep --payload 16k --clients 10 --slo-p99 2ms --step-duration 5s
      a larger payload, a looser SLO, longer steps
  stcp-loadgen sweep --target 10.0.0.2:7443 --tcp-target 10.0.0.2:7444 --server-key k.pub
      against a running stcp-server (run it from several hosts at once and merge the sweeps)
  stcp-loadgen report results/sweep-256x50-20261202T130000Z --out-dir docs/figures
      the capacity table and sweep.svg again from the saved reports

A step is within the SLO when it achieved at least 99 % of its offered rate, its p99 (from each
request's intended send time) is at most --slo-p99, and it had no error. A mode stops climbing when
a step falls behind its schedule, passes --p99-ceiling or has errors. Every step's run report,
sweep.json, report.md and sweep.svg go into --out. Exit status: 0 when the sweep ran whole and no
step had an error, 1 when a step had errors, 2 on bad usage, 3 when cut short (Ctrl-C), 4 when the
server or a report could not be started or written.";

const REPORT_EXAMPLES: &str = "\
Examples:
  stcp-loadgen report results/suite-full --out-dir docs/figures
      report.md, throughput.svg, latency.svg, backends.svg, ratio.svg from a suite directory
      (and sweep.svg with the capacity table when the suite ran with --sweep)
  stcp-loadgen report results/tcp-256-c50-d1-*.json results/stcp-256-c50-d1-*.json
      the table of loose run reports (TCP and STCP runs pair by start time), on stdout";

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use stcp_proto::{CryptoBackend, Mode};
    use stcp_server::IoBackend;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("stcp-loadgen").chain(args.iter().copied()))
    }

    #[test]
    fn the_cards_command_line_parses() {
        let cli = parse(&["--payload", "64k", "--clients", "5", "--duration", "70s"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.payload, 65536);
        assert_eq!(cli.run.clients, 5);
        assert_eq!(cli.run.duration, Duration::from_secs(70));
        assert_eq!(cli.run.depth, 1);
        assert_eq!(cli.run.mode, Mode::Stcp);
        assert!(cli.run.validate().is_ok());
    }

    #[test]
    fn merge_is_a_subcommand() {
        let cli = parse(&["merge", "a.json", "b.json"]).unwrap();
        match cli.command {
            Some(Command::Merge(m)) => assert_eq!(m.reports.len(), 2),
            _ => panic!("merge not recognised"),
        }
        // One directory is enough (it holds the reports); none is not.
        assert!(parse(&["merge", "results/cluster"]).is_ok());
        assert!(parse(&["merge"]).is_err());
    }

    #[test]
    fn start_at_takes_rfc3339_and_unix_milliseconds() {
        let a = parse(&["--start-at", "2026-12-02T16:00:00Z"]).unwrap();
        let b = parse(&["--start-at", "1796227200000"]).unwrap();
        assert!(a.run.start_at.is_some());
        assert_eq!(a.run.start_at, b.run.start_at);
        assert!(parse(&["--start-at", "16:00"]).is_err());
        assert!(parse(&[]).unwrap().run.start_at.is_none());
    }

    #[test]
    fn choices_parse_into_the_one_declaration_and_help_lists_them() {
        for mode in [Mode::Stcp, Mode::Tcp, Mode::Tls] {
            assert_eq!(parse(&["--mode", mode.name()]).unwrap().run.mode, mode);
        }
        for crypto in CryptoBackend::ALL {
            assert_eq!(
                parse(&["--crypto", crypto.name()]).unwrap().run.crypto,
                crypto
            );
        }
        for io in IoBackend::ALL {
            assert_eq!(parse(&["--io", io.name()]).unwrap().run.io, io);
        }
        let suite = match parse(&[
            "suite",
            "--crypto",
            "aws-lc,rustcrypto",
            "--io",
            "uring,epoll",
        ])
        .unwrap()
        .command
        {
            Some(Command::Suite(s)) => s,
            _ => panic!("suite not recognised"),
        };
        assert_eq!(suite.crypto, CryptoBackend::ALL);
        assert_eq!(suite.io, [IoBackend::Uring, IoBackend::Epoll]);
        assert!(parse(&["--mode", "udp"]).is_err());
        assert!(parse(&["--io", "kqueue"]).is_err());

        use clap::CommandFactory;
        let help = Cli::command().render_help().to_string();
        for values in [
            "[possible values: stcp, tcp, tls]",
            "[possible values: aws-lc, rustcrypto]",
            "[possible values: auto, uring, epoll]",
        ] {
            assert!(help.contains(values), "--help lacks {values}:\n{help}");
        }
    }

    #[test]
    fn bad_units_and_values_are_refused() {
        assert!(parse(&["--payload", "64q"]).is_err());
        assert!(parse(&["--duration", "soon"]).is_err());
        assert!(parse(&["--clients", "0"]).is_err());
        let cli = parse(&["--rate=-5"]).unwrap();
        assert!(cli.run.validate().is_err());
        let cli = parse(&["--mode", "tcp", "--psk", "x"]).unwrap();
        assert!(cli.run.validate().is_err());
        let cli = parse(&["--payload", "64k", "--clients", "100000", "--depth", "8"]).unwrap();
        assert!(cli.run.validate().unwrap_err().contains("MiB of buffers"));
        // Buffers do not grow with the payload: a thousand 16 MiB streams fit.
        let cli = parse(&["--payload", "16m", "--clients", "1000", "--depth", "8"]).unwrap();
        assert!(cli.run.validate().is_ok());
    }

    #[test]
    fn a_payload_above_the_frame_limit_needs_max_frame() {
        let cli = parse(&["--payload", "1g"]).unwrap();
        assert_eq!(cli.run.payload, 1 << 30);
        assert_eq!(cli.run.max_frame, stcp_proto::DEFAULT_MAX_FRAME);
        assert!(cli.run.validate().unwrap_err().contains("--max-frame"));
        let cli = parse(&["--payload", "1g", "--max-frame", "1g"]).unwrap();
        assert_eq!(cli.run.max_frame, 1 << 30);
        assert!(cli.run.validate().is_ok());
        let cli = parse(&["--payload", "1k", "--max-frame", "4g"]).unwrap();
        assert!(cli.run.validate().unwrap_err().contains("--max-frame"));
    }
}
