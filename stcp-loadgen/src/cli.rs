//! The command line: `stcp-loadgen [RUN OPTIONS]` runs a load test, `stcp-loadgen merge A.json B.json ...`
//! combines reports. Sizes and durations take human units (`64k`, `1m`; `500ms`, `70s`, `2m`).

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use stcp_proto::{CryptoBackend, Mode};
use stcp_server::{units, IoBackend};

use crate::suite::rows::Row;

const EXAMPLES: &str = "\
Examples:
  stcp-loadgen --payload 64k --clients 5 --duration 70s
      64 KiB echoes over 5 STCP connections against an embedded server on loopback
  stcp-loadgen --payload 256 --clients 50 --mode tcp --duration 10s
      the same measurement over raw framed TCP
  stcp-loadgen --target 10.0.0.2:7443 --server-key stcp-server.key.pub --payload 4k --clients 20
      against a running stcp-server, pinning its public key
  stcp-loadgen --payload 256 --clients 10 --rate 20000 --duration 30s
      open loop at 20 000 requests/s in total, latency from each request's intended send time
  stcp-loadgen merge results/a.json results/b.json --out results/
      combine reports from several client machines, with exact percentiles

Exit status: 0 when errors stay within --max-errors, 1 when they do not, 2 on bad usage,
3 when the run was cut short (Ctrl-C, every connection lost), 4 when it could not start.";

/// Most memory the connections' buffers may take (they are allocated before the load starts).
pub const MAX_BUFFER_BYTES: u64 = 4 << 30;

/// Matched io_uring load generator for STCP and raw TCP echo.
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
    /// Combine reports of runs made at the same time from several machines into one report.
    Merge(MergeArgs),
    /// Run the seed's table in TCP and STCP mode, interleaved, and write every report and a suite report.
    #[command(after_help = SUITE_EXAMPLES)]
    Suite(SuiteArgs),
    /// Render suite and run reports as a Markdown table and SVG charts.
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Measure one-way bulk TCP throughput over loopback (a physical limit for the echo rows).
    Stream(StreamArgs),
}

const SUITE_EXAMPLES: &str = "\
Examples:
  stcp-loadgen suite
      the seed's four rows (256x50, 4kx20, 16kx10, 64kx5), TCP then STCP, 70 s each, embedded server
  stcp-loadgen suite --duration 10s --repeat 3 --rows 256x50,64kx5
      three interleaved TCP/STCP pairs of two rows
  stcp-loadgen suite --crypto aws-lc,rustcrypto --io uring,epoll --duration 20s
      every row for each of the four backend combinations (one embedded server per combination)
  stcp-loadgen suite --target 169.254.77.1:7443 --tcp-target 169.254.77.1:7444 --server-key stcp-server.key.pub
      against a running stcp-server

Every run's report and suite.json (the STCP/TCP ratio per row: median of the pairs, with spread)
go into --out. Exit status: 0 when every run was whole and error-free, 1 when any run had an error
(verify mismatches included), 2 on bad usage, 3 when cut short (Ctrl-C), 4 when a server or a
report could not be started or written.";

const REPORT_EXAMPLES: &str = "\
Examples:
  stcp-loadgen report results/suite-full --out-dir docs/figures
      report.md, throughput.svg, latency.svg, backends.svg, ratio.svg from a suite directory
  stcp-loadgen report results/tcp-256-c50-d1-*.json results/stcp-256-c50-d1-*.json
      the table of loose run reports (TCP and STCP runs pair by start time), on stdout";

/// `suite`: the seed's table, TCP vs STCP, interleaved.
#[derive(Debug, Clone, Args)]
pub struct SuiteArgs {
    /// Workloads as PAYLOADxCLIENTS, comma-separated (default: the seed's four rows).
    #[arg(long, value_parser = parse_row, value_delimiter = ',', default_value = crate::suite::rows::SEED_ROWS, value_name = "ROWS")]
    pub rows: Vec<Row>,
    /// Measured interval of every run (the seed measured 70 s).
    #[arg(long, value_parser = parse_duration, default_value = "70s", value_name = "DURATION")]
    pub duration: Duration,
    /// Load applied before each run's measured interval, excluded from every statistic.
    #[arg(long, value_parser = parse_duration, default_value = "2s", value_name = "DURATION")]
    pub warmup: Duration,
    /// Interleaved TCP/STCP pairs per row and backend combination.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub repeat: u64,
    /// Crypto backends to run, comma-separated (client and embedded server).
    #[arg(long, value_parser = crypto_parser(), value_delimiter = ',', default_value = "aws-lc")]
    pub crypto: Vec<CryptoBackend>,
    /// Embedded server io backends to run, comma-separated (default: auto; not with --target).
    #[arg(long, value_parser = io_parser(), value_delimiter = ',')]
    pub io: Vec<IoBackend>,
    /// STCP address of a running server (with --tcp-target); default: an embedded server.
    #[arg(long, value_name = "HOST:PORT", requires = "tcp_target")]
    pub target: Option<String>,
    /// Raw framed TCP address of that server.
    #[arg(long, value_name = "HOST:PORT", requires = "target")]
    pub tcp_target: Option<String>,
    /// Public key of the server at --target: a file holding hex, or 64 hex characters
    /// (default: ./stcp-server.key.pub).
    #[arg(long, value_name = "FILE|HEX", requires = "target")]
    pub server_key: Option<String>,
    /// Pre-shared key file, for a server started with --psk (the embedded server then uses it too).
    #[arg(long, value_name = "FILE")]
    pub psk: Option<PathBuf>,
    /// Client threads (default: every core the embedded server does not use, else every core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Longest wait for a connect, a handshake or one echo.
    #[arg(long, value_parser = parse_duration, default_value = "5s", value_name = "DURATION")]
    pub timeout: Duration,
    /// Directory for the run reports and suite.json (default: results/suite-<UTC start>/).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print every run's live line each second.
    #[arg(long)]
    pub live: bool,
}

/// `report`: the table and the charts.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Suite directories, suite.json files and run reports.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub inputs: Vec<PathBuf>,
    /// Directory for report.md and the SVG charts (created if missing); without it only the
    /// Markdown is printed.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Do not print the Markdown on stdout.
    #[arg(long)]
    pub quiet: bool,
}

/// `stream`: one-way bulk TCP over loopback.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// Measured interval.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub duration: Duration,
    /// Streaming before the measured interval, not counted.
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    pub warmup: Duration,
    /// Bytes per write(2) and read(2) (iperf3's default is 128k).
    #[arg(long, value_parser = parse_size, default_value = "128k", value_name = "SIZE")]
    pub chunk: usize,
    /// Core for the receiving thread (default: the first core allowed).
    #[arg(long)]
    pub receiver_core: Option<usize>,
    /// Core for the sending thread (default: the last core allowed).
    #[arg(long)]
    pub sender_core: Option<usize>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Do not print a line every second.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Server address HOST:PORT; without it an embedded stcp-server is started on 127.0.0.1.
    #[arg(long, value_name = "HOST:PORT")]
    pub target: Option<String>,
    /// Protocol: encrypted STCP or plain framed TCP.
    #[arg(long, value_parser = mode_parser(), default_value = "stcp")]
    pub mode: Mode,
    /// The server's public key: a file holding hex, or 64 hex characters.
    /// Default: the embedded server's key, else ./stcp-server.key.pub written by a local stcp-server.
    #[arg(long, value_name = "FILE|HEX")]
    pub server_key: Option<String>,
    /// Pre-shared key file (32 bytes, hex); needed when the server was started with --psk.
    #[arg(long, value_name = "FILE")]
    pub psk: Option<PathBuf>,
    /// Crypto backend for the client side (and the embedded server).
    #[arg(long, value_parser = crypto_parser(), default_value = "aws-lc")]
    pub crypto: CryptoBackend,
    /// io backend of the embedded server (no effect with --target).
    #[arg(long, value_parser = io_parser(), default_value = "auto")]
    pub io: IoBackend,
    /// Request payload size (bytes; k, m suffixes are KiB, MiB).
    #[arg(long, value_parser = parse_size, default_value = "256", value_name = "SIZE")]
    pub payload: usize,
    /// Persistent connections.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub depth: u32,
    /// Client threads (default: every core the embedded server does not use, else every core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Open loop: R requests/s in total; latency is measured from each request's intended send time.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Measured interval.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub duration: Duration,
    /// Load applied before the measured interval, excluded from every statistic.
    #[arg(long, value_parser = parse_duration, default_value = "2s", value_name = "DURATION")]
    pub warmup: Duration,
    /// New connections per second while connecting (default: as fast as possible).
    #[arg(long, value_name = "PER_SECOND")]
    pub connect_rate: Option<f64>,
    /// Longest wait for a connect, a handshake or one echo.
    #[arg(long, value_parser = parse_duration, default_value = "5s", value_name = "DURATION")]
    pub timeout: Duration,
    /// Errors tolerated before the exit status says failure.
    #[arg(long, default_value_t = 0)]
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

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Reports to combine (written by stcp-loadgen).
    #[arg(required = true, num_args = 2.., value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    /// Directory for the merged report.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub out: PathBuf,
    /// Also print the merged report on stdout.
    #[arg(long)]
    pub json: bool,
}

impl RunArgs {
    /// Checks that clap cannot express; returns a message naming the option at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.payload > stcp_proto::DEFAULT_MAX_FRAME {
            return Err(format!(
                "--payload {} is larger than the largest frame a server accepts by default ({} bytes)",
                self.payload,
                stcp_proto::DEFAULT_MAX_FRAME
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
        // Every connection keeps two send buffers and one receive buffer of `depth` requests.
        let per_request = self.payload as u64 + stcp_proto::RECORD_OVERHEAD as u64;
        let buffers = u64::from(self.clients) * u64::from(self.depth) * per_request * 3;
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
        if self.mode == Mode::Tcp && (self.psk.is_some() || self.server_key.is_some()) {
            return Err("--psk and --server-key apply to --mode stcp only".into());
        }
        Ok(())
    }
}

/// `--mode`: parses into [`stcp_proto::Mode`], listing its values (with their meaning) in --help.
fn mode_parser() -> impl TypedValueParser<Value = Mode> {
    choice([
        PossibleValue::new(Mode::Stcp.name()).help("Noise handshake, then encrypted records"),
        PossibleValue::new(Mode::Tcp.name())
            .help("Plain length-prefixed frames (4-byte big-endian length + payload)"),
    ])
}

/// `--crypto`: parses into [`stcp_proto::CryptoBackend`], listing every backend in --help.
fn crypto_parser() -> impl TypedValueParser<Value = CryptoBackend> {
    choice(CryptoBackend::ALL.map(|b| PossibleValue::new(b.name())))
}

/// `--io`: parses into [`stcp_server::IoBackend`], listing its values (with their meaning) in
/// --help.
fn io_parser() -> impl TypedValueParser<Value = IoBackend> {
    choice(IoBackend::ALL.map(|io| {
        PossibleValue::new(io.name()).help(match io {
            IoBackend::Auto => "io_uring where it works, else epoll with a warning",
            IoBackend::Uring => "io_uring, or fail naming the cause",
            IoBackend::Epoll => "epoll (tokio), a current-thread runtime per core",
        })
    }))
}

/// A value among `values` (shown by --help and in errors), parsed with the type's `FromStr`.
fn choice<T>(values: impl IntoIterator<Item = PossibleValue>) -> impl TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(values).try_map(|name| name.parse::<T>())
}

fn parse_size(text: &str) -> Result<usize, String> {
    units::parse_size(text).map_err(|e| e.to_string())
}

fn parse_row(text: &str) -> Result<Row, String> {
    text.parse()
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    units::parse_duration(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
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
    }

    #[test]
    fn choices_parse_into_the_one_declaration_and_help_lists_them() {
        for mode in [Mode::Stcp, Mode::Tcp] {
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
        let suite = match parse(&["suite", "--crypto", "aws-lc,rustcrypto", "--io", "uring,epoll"])
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
            "[possible values: stcp, tcp]",
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
        let cli = parse(&["--payload", "16m", "--clients", "100", "--depth", "8"]).unwrap();
        assert!(cli.run.validate().unwrap_err().contains("MiB of buffers"));
    }
}
