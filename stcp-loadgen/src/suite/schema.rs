//! The suite report (`suite.json`): its schema, versioned apart from the run report's and
//! documented field by field in docs/REPORT.md; how it is written and read back.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::errors::ErrorCounts;
use crate::stats::LatencySummary;
use stcp_proto::Mode;

/// Version of the suite report schema; raised on every change that is not a pure addition.
pub const SUITE_SCHEMA_VERSION: u32 = 1;
/// The `tool` field of a suite report.
pub const SUITE_TOOL_NAME: &str = "stcp-loadgen-suite";
/// File name of the suite report inside the suite's directory.
pub const SUITE_FILE_NAME: &str = "suite.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteReport {
    pub schema_version: u32,
    pub tool: String,
    /// True when the suite did not run every planned run (Ctrl-C, a server that would not start).
    pub partial: bool,
    pub partial_reason: Option<String>,
    /// True when every planned run ran whole with no error of any kind.
    pub ok: bool,
    /// Errors of all runs together (every kind, verify mismatches included).
    pub errors_total: u64,
    pub configuration: SuiteConfiguration,
    pub environment: SuiteEnvironment,
    /// Every run, in the order run.
    pub runs: Vec<SuiteRun>,
    /// Per row and backend combination: TCP and STCP side by side and their ratio.
    pub rows: Vec<RowSummary>,
    /// With `--sweep`: the sweeps of the 256 B and 16 KiB rows (empty without, and in suites
    /// written before this field existed).
    #[serde(default)]
    pub sweeps: Vec<SuiteSweep>,
}

/// A sweep made by `suite --sweep`: where its report is, and its capacities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteSweep {
    /// Its sweep.json, relative to the suite report's directory.
    pub file: String,
    pub payload_bytes: u64,
    pub clients: u64,
    pub crypto: String,
    pub io: String,
    pub tcp_capacity_per_second: Option<f64>,
    pub stcp_capacity_per_second: Option<f64>,
    pub capacity_ratio: Option<f64>,
    pub partial: bool,
    pub errors_total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteConfiguration {
    /// The workloads, in the order given (`--rows`).
    pub rows: Vec<RowSpec>,
    /// Interleaved TCP/STCP pairs per row and combination (`--repeat`).
    pub repeat: u64,
    pub duration_seconds: f64,
    pub warmup_seconds: f64,
    pub timeout_seconds: f64,
    /// Requests in flight per connection (always 1: the seed's closed loop).
    pub depth: u64,
    /// Crypto backends asked for (`--crypto`).
    pub crypto: Vec<String>,
    /// Server io backends asked for (`--io`: "auto", "uring", "epoll"); empty with --target.
    pub io: Vec<String>,
    pub embedded_server: bool,
    /// `--target` (STCP) and `--tcp-target`; null for the embedded server.
    pub target: Option<String>,
    pub tcp_target: Option<String>,
    /// The TLS address of that server, when TLS rows ran against it.
    #[serde(default)]
    pub tls_target: Option<String>,
    /// The modes of every round, in the order they ran (absent in suites before TLS: tcp, stcp).
    #[serde(default)]
    pub modes: Vec<String>,
    pub psk: bool,
    /// Runs planned: rows × 2 modes × repeat × combinations.
    pub planned_runs: u64,
    /// `--busy-poll` of every run, microseconds (0: off, and in suites written before this field
    /// existed). Each run's report has the values in force on both sides.
    #[serde(default)]
    pub busy_poll_us: f64,
    /// `--sweep`: whether the 256 B and 16 KiB rows were also swept (false in suites written
    /// before this field existed).
    #[serde(default)]
    pub sweep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowSpec {
    pub payload_bytes: u64,
    pub clients: u64,
    /// Churn rows: requests per connection; null for persistent connections (and in suites
    /// written before this field existed).
    #[serde(default)]
    pub requests_per_conn: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteEnvironment {
    pub hostname: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cores: u64,
    /// The load generator's io: "io_uring".
    pub client_io_backend: String,
    pub tool_version: String,
    pub started_at: String,
    pub finished_at: String,
}

/// One run of the suite, as it appears in `runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteRun {
    /// 1-based position in the order run.
    pub sequence: u64,
    /// The run's JSON report, relative to the suite report's directory.
    pub file: String,
    #[serde(with = "crate::report::mode_name")]
    pub mode: Mode,
    pub payload_bytes: u64,
    pub clients: u64,
    /// Churn rows: requests per connection; null otherwise.
    #[serde(default)]
    pub requests_per_conn: Option<u64>,
    pub crypto: String,
    /// "io_uring", "epoll" (the embedded server's), or "external".
    pub io: String,
    /// 1-based pair index within its row and combination.
    pub pair: u64,
    pub requests_per_second: f64,
    /// Connections set up per second in the measured interval (churn rows; 0 otherwise).
    #[serde(default)]
    pub handshakes_per_second: f64,
    pub throughput_mb_per_s: f64,
    pub errors_total: u64,
    pub partial: bool,
    /// The run's own exit status (0: whole and no error).
    pub exit_status: i32,
}

/// One row of one backend combination: TCP and STCP over all their runs, and the ratio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowSummary {
    pub payload_bytes: u64,
    pub clients: u64,
    /// Churn rows: requests per connection; null for persistent connections.
    #[serde(default)]
    pub requests_per_conn: Option<u64>,
    pub crypto: String,
    pub io: String,
    /// Measured interval of each run (the first run's, they are alike in a suite).
    pub duration_seconds: f64,
    pub warmup_seconds: f64,
    /// Null when no run of that mode is present.
    pub tcp: Option<ModeSummary>,
    pub stcp: Option<ModeSummary>,
    /// TLS 1.3 runs (absent in suites without them).
    #[serde(default)]
    pub tls: Option<ModeSummary>,
    /// STCP requests/s ÷ TCP requests/s over the whole pairs (churn rows: handshakes/s, that is
    /// connections/s); null when there is none.
    pub ratio: Option<RatioSummary>,
    /// STCP requests/s ÷ TLS requests/s, STCP and TLS runs paired in order the same way (churn
    /// rows: handshakes/s); null (or absent) without TLS runs.
    #[serde(default)]
    pub stcp_tls_ratio: Option<RatioSummary>,
}

impl RowSummary {
    /// The summary of `mode`'s runs, if the row has any.
    pub fn of_mode(&self, mode: stcp_proto::Mode) -> Option<&ModeSummary> {
        match mode {
            stcp_proto::Mode::Tcp => self.tcp.as_ref(),
            stcp_proto::Mode::Stcp => self.stcp.as_ref(),
            stcp_proto::Mode::Tls => self.tls.as_ref(),
        }
    }

    /// Every mode's summary the row has.
    pub fn summaries(&self) -> impl Iterator<Item = &ModeSummary> {
        [&self.tcp, &self.stcp, &self.tls].into_iter().flatten()
    }

    /// The modes of the row with their names, in the order they run (absent ones are None).
    pub fn modes(&self) -> [(&'static str, Option<&ModeSummary>); 3] {
        [
            ("TCP", self.tcp.as_ref()),
            ("STCP", self.stcp.as_ref()),
            ("TLS", self.tls.as_ref()),
        ]
    }
}

/// All runs of one mode of one row and combination together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeSummary {
    pub runs: u64,
    /// Runs cut short.
    pub partial_runs: u64,
    /// Requests completed in all runs' measured intervals.
    pub requests: u64,
    pub measured_seconds: f64,
    /// requests ÷ measured_seconds over all runs.
    pub requests_per_second: f64,
    /// Each run's requests/s, in pair order.
    pub requests_per_second_runs: Vec<f64>,
    /// payload × 2 × requests_per_second ÷ 10^6 (as the seed counts).
    pub throughput_mb_per_s: f64,
    /// From the runs' latency histograms added together (exact over all requests).
    pub latency: LatencySummary,
    pub errors: ErrorCounts,
    pub errors_total: u64,
    /// Load generator CPU (user + system) per request, µs, over all runs.
    pub loadgen_cpu_us_per_request: f64,
    /// Embedded server CPU per request, µs; null with an external server.
    pub server_cpu_us_per_request: Option<f64>,
    /// Connections set up in all runs' measured intervals ÷ measured_seconds (churn rows).
    #[serde(default)]
    pub handshakes_per_second: f64,
    /// Load generator CPU per handshake, µs, over all runs (churn rows; 0 without handshakes).
    #[serde(default)]
    pub loadgen_cpu_us_per_handshake: f64,
    /// Embedded server CPU per handshake, µs; null with an external server.
    #[serde(default)]
    pub server_cpu_us_per_handshake: Option<f64>,
}

/// The STCP/TCP requests/s ratio of each whole pair, and its median and spread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioSummary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// One ratio per pair, in pair order.
    pub pairs: Vec<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadSuiteError {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0} is not a stcp-loadgen suite report: {1}")]
    Json(PathBuf, serde_json::Error),
    #[error("{0} was written by {1} with schema version {2}; this build reads {SUITE_TOOL_NAME} schema version {SUITE_SCHEMA_VERSION}")]
    Schema(PathBuf, String, u32),
}

impl SuiteReport {
    /// Writes (or rewrites) `dir/suite.json`; returns its path.
    pub fn write_into(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join(SUITE_FILE_NAME);
        let mut json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        json.push(b'\n');
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&json)?;
        Ok(path)
    }

    pub fn read(path: &Path) -> Result<SuiteReport, ReadSuiteError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ReadSuiteError::Io(path.to_path_buf(), e))?;
        Self::parse(path, &text)
    }

    /// Parses the text of `path` as a suite report.
    pub fn parse(path: &Path, text: &str) -> Result<SuiteReport, ReadSuiteError> {
        let report: SuiteReport =
            serde_json::from_str(text).map_err(|e| ReadSuiteError::Json(path.to_path_buf(), e))?;
        if report.schema_version != SUITE_SCHEMA_VERSION || report.tool != SUITE_TOOL_NAME {
            return Err(ReadSuiteError::Schema(
                path.to_path_buf(),
                report.tool,
                report.schema_version,
            ));
        }
        Ok(report)
    }
}
