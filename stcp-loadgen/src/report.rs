//! The JSON report: its schema (versioned, documented field by field in docs/REPORT.md), how it
//! is built from a [`Measurement`], read back into one, named and written.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::errors::ErrorCounts;
use crate::hist_codec::{self, HistogramCodecError};
use crate::measurement::{Connections, CpuTime, Interval, Measurement};
use crate::schedule::{CoreShare, Schedule};
use crate::stats::{LatencySummary, LittlesLaw};
use stcp_proto::Mode;

/// Version of the report schema; raised on every change that is not a pure addition.
pub const SCHEMA_VERSION: u32 = 1;
/// The `tool` field of every report this crate writes.
pub const TOOL_NAME: &str = "stcp-loadgen";

/// `mode` in reports: the name users type (`"stcp"`, `"tcp"`), through `stcp_proto::Mode`'s
/// `Display` and `FromStr` (stcp-proto has no serde).
pub(crate) mod mode_name {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use stcp_proto::Mode;

    pub fn serialize<S: Serializer>(mode: &Mode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(mode.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(D::Error::custom)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Tagged(#[serde(with = "super")] Mode);

        #[test]
        fn modes_are_written_and_read_by_name() {
            for (mode, json) in [(Mode::Stcp, "\"stcp\""), (Mode::Tcp, "\"tcp\"")] {
                assert_eq!(serde_json::to_string(&Tagged(mode)).unwrap(), json);
                assert_eq!(serde_json::from_str::<Tagged>(json).unwrap(), Tagged(mode));
            }
            assert!(serde_json::from_str::<Tagged>("\"udp\"").is_err());
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: String,
    /// True when the run was cut short (Ctrl-C, every connection lost) or a merged report was.
    pub partial: bool,
    /// Why the run was cut short; null when it was not.
    pub partial_reason: Option<String>,
    pub configuration: Configuration,
    pub environment: Environment,
    pub results: Results,
    pub series: Vec<SecondSample>,
    pub histograms: Histograms,
    /// For a merged report: the reports combined. Empty for a single run.
    #[serde(default)]
    pub sources: Vec<Source>,
    /// When the measured interval began: intended (`--start-at`) and real, by the wall clock.
    /// Null when it never began (no connection, or cut short in the warm-up), and in reports
    /// written before this field existed.
    #[serde(default)]
    pub start: Option<StartTiming>,
}

/// When the measured interval began (see docs/REPORT.md). In a merged report: the earliest real
/// start of its sources, the skew of largest magnitude among them, and the spread over every
/// source's threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartTiming {
    /// `--start-at`, RFC 3339 UTC with milliseconds; null without it (in a merge: unless every
    /// source had the same).
    pub intended_at: Option<String>,
    /// The same, nanoseconds since the Unix epoch.
    pub intended_unix_ns: Option<u64>,
    /// When the first client thread entered the measured interval, by its wall clock.
    pub actual_at: String,
    /// The same, nanoseconds since the Unix epoch.
    pub actual_unix_ns: u64,
    /// actual - intended in microseconds (positive: late); null without --start-at.
    pub skew_us: Option<f64>,
    /// Last client thread's entry into the measured interval minus the first one's, microseconds.
    pub threads_spread_us: f64,
    /// From the start of the load engine to every connection set up (connect and handshake),
    /// seconds: the least a --start-at must lie ahead, with the warm-up.
    pub connecting_seconds: f64,
    /// The Unix second `series[0]` covers: the intended start (else the real one) rounded to the
    /// nearest second. `series[i]` covers second `series_start_unix_s + i`; `merge` adds series
    /// by it.
    pub series_start_unix_s: u64,
}

impl StartTiming {
    /// The end of the measured interval, nanoseconds since the Unix epoch.
    pub fn end_unix_ns(&self, measured_seconds: f64) -> u64 {
        self.actual_unix_ns
            .saturating_add((measured_seconds.max(0.0) * 1e9) as u64)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Configuration {
    #[serde(with = "mode_name")]
    pub mode: Mode,
    /// Address connected to (HOST:PORT as given, or the embedded server's address).
    pub target: String,
    pub embedded_server: bool,
    pub payload_bytes: u64,
    pub clients: u64,
    pub depth: u64,
    pub threads: u64,
    /// Open-loop total request rate (--rate); null for a closed loop. With `requests_per_conn`
    /// it counts new connections per second.
    pub rate_per_second: Option<f64>,
    /// Churn (--requests-per-conn): requests each connection sends before it closes and a new
    /// one takes its place; null for persistent connections (and in reports written before this
    /// field existed).
    #[serde(default)]
    pub requests_per_conn: Option<u64>,
    pub duration_seconds: f64,
    pub warmup_seconds: f64,
    pub connect_rate_per_second: Option<f64>,
    pub timeout_seconds: f64,
    pub max_errors: u64,
    /// Whether a pre-shared key was used (the key itself is never written).
    pub psk: bool,
    /// Hex of the server public key pinned; null in TCP mode.
    pub server_public_key: Option<String>,
    /// For a run made by `stcp-loadgen suite`: which cell of its matrix it belongs to; null
    /// otherwise (and in reports written before this field existed).
    #[serde(default)]
    pub suite_cell: Option<SuiteCell>,
    /// Busy poll of the client threads (`--busy-poll`), microseconds; 0: off (and in reports
    /// written before this field existed, when there was none).
    #[serde(default)]
    pub busy_poll_us: f64,
    /// Busy poll of the embedded server's workers, microseconds (0: off, or the epoll backend,
    /// which has none); null with --target (and in reports written before this field existed).
    #[serde(default)]
    pub server_busy_poll_us: Option<f64>,
}

/// Where a run of `stcp-loadgen suite` sits in the suite: its backend combination and which of
/// the interleaved TCP/STCP pairs of its row it is part of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteCell {
    /// Crypto backend of the combination ("aws-lc", "rustcrypto"): the client's, and the
    /// embedded server's (in TCP mode no record is sealed, but the run still belongs here).
    pub crypto: String,
    /// The server's io backend ("io_uring", "epoll"), or "external" with --target.
    pub io: String,
    /// 1-based index of the TCP/STCP pair within its row and combination.
    pub pair: u64,
    /// 1-based position of this run in the suite's order.
    pub sequence: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub hostname: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cores: u64,
    /// The load generator's io backend: "io_uring".
    pub io_backend: String,
    /// The embedded server's io backend ("io_uring" or "epoll"); null with --target.
    pub server_io_backend: Option<String>,
    /// Client-side crypto provider name; null in TCP mode.
    pub crypto_backend: Option<String>,
    /// The embedded server's crypto provider (in both modes); null with --target (and in reports
    /// written before this field existed).
    #[serde(default)]
    pub server_crypto_backend: Option<String>,
    pub pinning: Pinning,
    pub tool_version: String,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinning {
    /// Core of each client thread (null entry: not pinned).
    pub client_cores: Vec<Option<u64>>,
    /// Cores of the embedded server's workers; null when the server is not embedded.
    pub server_cores: Option<Vec<u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub measured_seconds: f64,
    pub requests: u64,
    pub requests_per_second: f64,
    /// payload × 2 × requests_per_second / 10^6 (both directions, as the seed counts).
    pub throughput_mb_per_s: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub latency: LatencySummary,
    /// Connect start to connection set up (STCP: handshake done; TCP: connected), every
    /// connection of the run.
    pub handshake_latency: LatencySummary,
    /// Connect start to connect completed, every connection of the run (absent in reports
    /// written before this field existed).
    #[serde(default = "LatencySummary::empty")]
    pub connect_latency: LatencySummary,
    /// Connections set up within the measured interval (churn: its handshakes).
    #[serde(default)]
    pub handshakes: u64,
    /// handshakes / measured_seconds.
    #[serde(default)]
    pub handshakes_per_second: f64,
    pub errors: ErrorCounts,
    pub errors_total: u64,
    pub connections: Connections,
    pub littles_law: LittlesLaw,
    /// CPU the load generator's client threads used over the measured interval.
    pub loadgen_cpu: CpuUse,
    /// CPU the embedded server's workers used over the measured interval; null with --target.
    pub server_cpu: Option<CpuUse>,
    /// Open loop: the rate asked for against the rate achieved, and which side was busy when the
    /// run fell behind; null in a closed loop (and in reports written before this field existed).
    #[serde(default)]
    pub schedule: Option<Schedule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    pub user_seconds: f64,
    pub system_seconds: f64,
    /// (user + system) / requests, in microseconds.
    pub cpu_us_per_request: f64,
    /// (user + system) / handshakes (those completed within the measured interval), in
    /// microseconds; 0 when none was (and in reports written before this field existed).
    #[serde(default)]
    pub cpu_us_per_handshake: f64,
    /// (user + system) / measured_seconds: how many cores the client threads kept busy.
    pub cores_busy: f64,
    /// Time the threads were ready to run but waited for a CPU, summed over the threads (0 in
    /// reports written before this field existed).
    #[serde(default)]
    pub waited_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondSample {
    /// 1 for the first second of the measured interval.
    pub second: u64,
    pub seconds: f64,
    pub requests: u64,
    pub requests_per_second: f64,
    pub throughput_mb_per_s: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub p99_us: f64,
    pub errors: u64,
    /// Connections set up in this second.
    #[serde(default)]
    pub handshakes: u64,
    /// This second's latency histogram, HdrHistogram V2 compressed, base64.
    pub histogram: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// Request latency over the measured interval, nanoseconds, HdrHistogram V2 compressed, base64.
    pub latency: String,
    /// Handshake latency of every connection, same encoding.
    pub handshake: String,
    /// Connect latency of every connection, same encoding (absent in reports written before
    /// this field existed).
    #[serde(default)]
    pub connect: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub file: String,
    pub hostname: String,
    pub started_at: String,
    pub clients: u64,
    pub partial: bool,
    /// That run's start timing (null for runs written before it existed).
    #[serde(default)]
    pub start: Option<StartTiming>,
    /// That run's measured interval, seconds (0 for runs written before it was listed).
    #[serde(default)]
    pub measured_seconds: f64,
    /// That run's requests (0 for runs written before it was listed).
    #[serde(default)]
    pub requests: u64,
}

/// Throughput as the seed counts it: payload × 2 × requests/s, in 10^6 bytes per second.
pub fn throughput_mb_per_s(payload_bytes: u64, requests_per_second: f64) -> f64 {
    payload_bytes as f64 * 2.0 * requests_per_second / 1e6
}

impl Report {
    /// Builds a report; every figure in it is derived from `m`.
    pub fn build(
        configuration: Configuration,
        environment: Environment,
        m: &Measurement,
        partial_reason: Option<String>,
        sources: Vec<Source>,
    ) -> Report {
        let payload = configuration.payload_bytes;
        let latency = LatencySummary::of(&m.latency);
        // Little's law holds for persistent connections in a closed loop only: with churn a
        // connection spends part of its life connecting, with no request in flight.
        let closed_loop_in_flight = (configuration.rate_per_second.is_none()
            && configuration.requests_per_conn.is_none())
        .then(|| (m.connections.established * configuration.depth) as f64);
        let cpu_use = |cpu: &CpuTime| {
            let total = cpu.total_seconds();
            CpuUse {
                user_seconds: cpu.user_seconds,
                system_seconds: cpu.system_seconds,
                cpu_us_per_request: if m.requests() > 0 {
                    total / m.requests() as f64 * 1e6
                } else {
                    0.0
                },
                cpu_us_per_handshake: if m.handshakes > 0 {
                    total / m.handshakes as f64 * 1e6
                } else {
                    0.0
                },
                cores_busy: if m.measured_seconds > 0.0 {
                    total / m.measured_seconds
                } else {
                    0.0
                },
                waited_seconds: cpu.waited_seconds,
            }
        };
        let loadgen_cpu = cpu_use(&m.cpu);
        let server_cpu = m.server_cpu.as_ref().map(cpu_use);
        // An open loop's schedule, when something was measured to judge it by.
        let measured = m.measured_seconds > 0.0;
        let schedule = configuration
            .rate_per_second
            .filter(|_| measured)
            .map(|target| {
                let (client_cores, server_cores) =
                    side_cores(&configuration, &environment, !sources.is_empty());
                // Each side's share of its cores it kept busy, and the share it spent ready to run
                // but waiting for a CPU.
                let shares = |cpu: &CpuUse, cores: f64| {
                    let waiting = if m.measured_seconds > 0.0 {
                        cpu.waited_seconds / m.measured_seconds / cores
                    } else {
                        0.0
                    };
                    CoreShare {
                        busy: cpu.cores_busy / cores,
                        waiting,
                    }
                };
                // With churn, the rate counts new connections: judge it by the handshakes.
                let achieved = if configuration.requests_per_conn.is_some() {
                    m.handshakes_per_second()
                } else {
                    m.requests_per_second
                };
                Schedule::of(
                    target,
                    achieved,
                    shares(&loadgen_cpu, client_cores),
                    server_cpu.map(|s| shares(&s, server_cores)),
                    m.connections.established * configuration.depth,
                )
            });
        let results = Results {
            measured_seconds: m.measured_seconds,
            requests: m.requests(),
            requests_per_second: m.requests_per_second,
            throughput_mb_per_s: throughput_mb_per_s(payload, m.requests_per_second),
            bytes_sent: m.bytes_sent,
            bytes_received: m.bytes_received,
            latency,
            handshake_latency: LatencySummary::of(&m.handshake),
            connect_latency: LatencySummary::of(&m.connect),
            handshakes: m.handshakes,
            handshakes_per_second: m.handshakes_per_second(),
            errors: m.errors,
            errors_total: m.errors.total(),
            connections: m.connections,
            littles_law: LittlesLaw::check(
                m.requests_per_second,
                latency.mean_us,
                closed_loop_in_flight,
            ),
            loadgen_cpu,
            server_cpu,
            schedule,
        };
        let series = m
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| SecondSample {
                second: i as u64 + 1,
                seconds: s.seconds,
                requests: s.requests(),
                requests_per_second: s.requests_per_second,
                throughput_mb_per_s: throughput_mb_per_s(payload, s.requests_per_second),
                bytes_sent: s.bytes_sent,
                bytes_received: s.bytes_received,
                p99_us: LatencySummary::of(&s.latency).p99_us,
                errors: s.errors,
                handshakes: s.handshakes,
                histogram: hist_codec::encode(&s.latency),
            })
            .collect();
        Report {
            schema_version: SCHEMA_VERSION,
            tool: TOOL_NAME.to_string(),
            partial: partial_reason.is_some(),
            partial_reason,
            configuration,
            environment,
            results,
            series,
            histograms: Histograms {
                latency: hist_codec::encode(&m.latency),
                handshake: hist_codec::encode(&m.handshake),
                connect: Some(hist_codec::encode(&m.connect)),
            },
            sources,
            start: None,
        }
    }

    /// The measurement this report was built from (histograms decoded exactly).
    pub fn measurement(&self) -> Result<Measurement, HistogramCodecError> {
        let series = self
            .series
            .iter()
            .map(|s| {
                Ok(Interval {
                    seconds: s.seconds,
                    latency: hist_codec::decode(&s.histogram)?,
                    bytes_sent: s.bytes_sent,
                    bytes_received: s.bytes_received,
                    errors: s.errors,
                    handshakes: s.handshakes,
                    requests_per_second: s.requests_per_second,
                })
            })
            .collect::<Result<Vec<_>, HistogramCodecError>>()?;
        let r = &self.results;
        Ok(Measurement {
            measured_seconds: r.measured_seconds,
            latency: hist_codec::decode(&self.histograms.latency)?,
            handshake: hist_codec::decode(&self.histograms.handshake)?,
            connect: match &self.histograms.connect {
                Some(h) => hist_codec::decode(h)?,
                None => crate::stats::new_histogram(),
            },
            handshakes: r.handshakes,
            requests_per_second: r.requests_per_second,
            bytes_sent: r.bytes_sent,
            bytes_received: r.bytes_received,
            errors: r.errors,
            connections: r.connections,
            cpu: CpuTime {
                user_seconds: r.loadgen_cpu.user_seconds,
                system_seconds: r.loadgen_cpu.system_seconds,
                waited_seconds: r.loadgen_cpu.waited_seconds,
            },
            server_cpu: r.server_cpu.map(|c| CpuTime {
                user_seconds: c.user_seconds,
                system_seconds: c.system_seconds,
                waited_seconds: c.waited_seconds,
            }),
            series,
        })
    }

    /// The file name that says what ran: `stcp-64k-c5-d1-20261126T132600Z.json`
    /// (`-r20000` is added for an open loop, `merged-` put in front for a merge).
    pub fn file_name(&self, compact_timestamp: &str) -> String {
        let c = &self.configuration;
        let mut name = String::new();
        if !self.sources.is_empty() {
            name.push_str("merged-");
        }
        name.push_str(&format!(
            "{}-{}-c{}-d{}",
            c.mode.name(),
            size_label(c.payload_bytes),
            c.clients,
            c.depth
        ));
        if let Some(rate) = c.rate_per_second {
            name.push_str(&format!("-r{}", rate.round() as u64));
        }
        if let Some(n) = c.requests_per_conn {
            name.push_str(&format!("-n{n}"));
        }
        name.push('-');
        name.push_str(compact_timestamp);
        name.push_str(".json");
        name
    }

    /// Writes the report into `dir` (created if missing) under [`Report::file_name`], never
    /// overwriting an existing file; returns the path written.
    pub fn write_into(&self, dir: &Path, compact_timestamp: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let base = self.file_name(compact_timestamp);
        let stem = base.trim_end_matches(".json");
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        for n in 1..1000 {
            let path = if n == 1 {
                dir.join(&base)
            } else {
                dir.join(format!("{stem}-{n}.json"))
            };
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(&json)?;
                    f.write_all(b"\n")?;
                    return Ok(path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other(format!(
            "{} and 998 variants already exist",
            dir.join(base).display()
        )))
    }

    /// Writes the report into `dir` (created if missing) as `file_name`, refusing to overwrite an
    /// existing file; returns the path written.
    pub fn write_as(&self, dir: &Path, file_name: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(file_name);
        let mut json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        json.push(b'\n');
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?
            .write_all(&json)?;
        Ok(path)
    }

    pub fn read(path: &Path) -> Result<Report, ReadReportError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ReadReportError::Io(path.to_path_buf(), e))?;
        let report: Report = serde_json::from_str(&text)
            .map_err(|e| ReadReportError::Json(path.to_path_buf(), e))?;
        if report.schema_version != SCHEMA_VERSION || report.tool != TOOL_NAME {
            return Err(ReadReportError::Schema(
                path.to_path_buf(),
                report.tool,
                report.schema_version,
            ));
        }
        Ok(report)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadReportError {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0} is not a stcp-loadgen report: {1}")]
    Json(PathBuf, serde_json::Error),
    #[error("{0} was written by {1} with schema version {2}; this build reads stcp-loadgen schema version {SCHEMA_VERSION}")]
    Schema(PathBuf, String, u32),
}

/// The cores each side had, as divisors of its `cores_busy`: the client threads' cores (the
/// distinct cores they were pinned to, at most one per thread; in a merge, one per thread of every
/// source), and the embedded server's workers' cores (its pinned cores, else every core).
fn side_cores(c: &Configuration, e: &Environment, merged: bool) -> (f64, f64) {
    let threads = c.threads.max(1);
    let client = if merged {
        threads
    } else {
        let mut pinned: Vec<u64> = e.pinning.client_cores.iter().flatten().copied().collect();
        pinned.sort_unstable();
        pinned.dedup();
        let all_pinned = e.pinning.client_cores.iter().all(Option::is_some);
        let cores = if all_pinned && !pinned.is_empty() {
            pinned.len() as u64
        } else {
            e.cores.max(1)
        };
        threads.min(cores)
    };
    let server = match &e.pinning.server_cores {
        Some(cores) if !cores.is_empty() => cores.len() as u64,
        _ => e.cores.max(1),
    };
    (client as f64, server as f64)
}

/// `256`, `4k`, `64k`, `1m`: the size as given on the command line.
pub fn size_label(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{}m", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{}k", bytes >> 10)
    } else {
        bytes.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_labels_read_like_the_command_line() {
        assert_eq!(size_label(256), "256");
        assert_eq!(size_label(4096), "4k");
        assert_eq!(size_label(65536), "64k");
        assert_eq!(size_label(1 << 20), "1m");
        assert_eq!(size_label(1000), "1000");
    }

    #[test]
    fn throughput_counts_both_directions_in_decimal_megabytes() {
        // The seed's 4 KB row: 6.8k RPS x 4096 B x 2 = 55.7 MB/s.
        assert!((throughput_mb_per_s(4096, 6800.0) - 55.7).abs() < 0.05);
    }
}
