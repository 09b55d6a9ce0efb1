//! The sweep report (`sweep.json`): its schema, versioned apart from the run and suite reports'
//! and documented field by field in docs/REPORT.md; how a step is read from its run report, how
//! capacities are derived from the steps, and how the report is written and read back.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use stcp_proto::Mode;

use super::search::{self, Phase, StepResult};
use crate::report::Report;
use crate::schedule::BusySide;
use crate::stats::LatencySummary;
use crate::suite::schema::SuiteEnvironment;

/// Version of the sweep report schema; raised on every change that is not a pure addition.
pub const SWEEP_SCHEMA_VERSION: u32 = 1;
/// The `tool` field of a sweep report.
pub const SWEEP_TOOL_NAME: &str = "stcp-loadgen-sweep";
/// File name of the sweep report inside the sweep's directory.
pub const SWEEP_FILE_NAME: &str = "sweep.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    pub schema_version: u32,
    pub tool: String,
    /// True when the sweep stopped before its searches were over (Ctrl-C, a step that could not
    /// start), or a merge whose sources' steps diverged.
    pub partial: bool,
    pub partial_reason: Option<String>,
    /// True when the sweep ran whole and no step had an error.
    pub ok: bool,
    /// Errors of all steps together.
    pub errors_total: u64,
    pub configuration: SweepConfiguration,
    pub environment: SuiteEnvironment,
    /// Every step, in the order run.
    pub steps: Vec<SweepStep>,
    /// Per mode: its capacity and the knee.
    pub modes: Vec<ModeCapacity>,
    /// STCP capacity ÷ TCP capacity; null unless both modes have one.
    pub capacity_ratio: Option<f64>,
    /// For a merged sweep: the sweep reports combined. Empty for a single sweep.
    #[serde(default)]
    pub sources: Vec<SweepSource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepConfiguration {
    pub payload_bytes: u64,
    pub clients: u64,
    pub depth: u64,
    /// The modes searched, in the order their steps interleave.
    pub modes: Vec<String>,
    /// `--slo-p99`, µs.
    pub slo_p99_us: f64,
    /// `--p99-ceiling`, µs.
    pub p99_ceiling_us: f64,
    pub start_rate_per_second: f64,
    pub step_factor: f64,
    pub refine_steps: u32,
    pub max_steps: u32,
    pub max_rate_per_second: f64,
    /// A step kept its schedule when it achieved at least 1 − this of its target (`0.01`).
    pub schedule_tolerance: f64,
    /// Of every step.
    pub duration_seconds: f64,
    pub warmup_seconds: f64,
    pub timeout_seconds: f64,
    pub crypto: String,
    /// The embedded server's io backend asked for; null with --target.
    pub io: Option<String>,
    pub embedded_server: bool,
    pub target: Option<String>,
    pub tcp_target: Option<String>,
    /// Absent in sweeps written before TLS could be swept against a running server.
    #[serde(default)]
    pub tls_target: Option<String>,
    pub psk: bool,
    pub busy_poll_us: f64,
}

/// One step: a real run at one offered rate, summarised from its run report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepStep {
    /// 1-based position in the order run (both modes together).
    pub sequence: u64,
    /// The step's run report, relative to the sweep report's directory.
    pub file: String,
    #[serde(with = "crate::report::mode_name")]
    pub mode: Mode,
    pub phase: Phase,
    /// Offered rate, requests/s (`--rate` of the run; a merge: summed).
    pub target_per_second: f64,
    /// Requests completed per second of the measured interval.
    pub achieved_per_second: f64,
    /// achieved ÷ target.
    pub fraction: f64,
    pub kept_schedule: bool,
    /// Which side held the step back when it fell behind; null when it kept its schedule.
    pub busy_side: Option<BusySide>,
    /// Request latency from each request's intended send time.
    pub latency: LatencySummary,
    pub requests: u64,
    pub errors_total: u64,
    pub partial: bool,
    /// Kept its schedule, p99 at most the SLO, no error, whole.
    pub within_slo: bool,
}

/// One mode's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeCapacity {
    #[serde(with = "crate::report::mode_name")]
    pub mode: Mode,
    pub steps: u64,
    /// Highest achieved requests/s of a step within the SLO; null when none was.
    pub capacity_per_second: Option<f64>,
    /// That step's `sequence`.
    pub capacity_step: Option<u64>,
    /// That step's p99, µs.
    pub capacity_p99_us: Option<f64>,
    /// The step of the lowest offered rate above the capacity step that was not within the SLO
    /// (the knee lies between the two); null when no step passed it.
    pub first_past_step: Option<u64>,
    /// Why the mode's search ended.
    pub stopped: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSource {
    pub file: String,
    pub hostname: String,
    pub started_at: String,
}

impl SweepStep {
    /// The step that `report` (written as `file`) measured, judged against `slo_p99_us`.
    pub fn of(
        sequence: u64,
        file: String,
        phase: Phase,
        report: &Report,
        slo_p99_us: f64,
    ) -> SweepStep {
        let r = &report.results;
        let target = report.configuration.rate_per_second.unwrap_or(0.0);
        let schedule = r.schedule;
        let mut step = SweepStep {
            sequence,
            file,
            mode: report.configuration.mode,
            phase,
            target_per_second: target,
            achieved_per_second: r.requests_per_second,
            fraction: schedule.map_or(0.0, |s| s.fraction),
            kept_schedule: schedule.is_some_and(|s| s.kept),
            busy_side: schedule.and_then(|s| s.busy_side),
            latency: r.latency,
            requests: r.requests,
            errors_total: r.errors_total,
            partial: report.partial,
            within_slo: false,
        };
        step.within_slo = step.result().within_slo(slo_p99_us);
        step
    }

    /// What the search reads of this step.
    pub fn result(&self) -> StepResult {
        StepResult {
            target_per_second: self.target_per_second,
            achieved_per_second: self.achieved_per_second,
            kept_schedule: self.kept_schedule,
            p99_us: self.latency.p99_us,
            requests: self.requests,
            errors: self.errors_total,
            partial: self.partial,
        }
    }
}

/// Each mode's capacity from `steps` (in the order run), with `stopped` saying why each mode's
/// search ended; and the STCP/TCP ratio of the capacities.
pub fn capacities(
    modes: &[Mode],
    steps: &[SweepStep],
    slo_p99_us: f64,
    stopped: impl Fn(Mode) -> String,
) -> (Vec<ModeCapacity>, Option<f64>) {
    let out: Vec<ModeCapacity> = modes
        .iter()
        .map(|&mode| {
            let of: Vec<&SweepStep> = steps.iter().filter(|s| s.mode == mode).collect();
            let results: Vec<StepResult> = of.iter().map(|s| s.result()).collect();
            let cap = search::capacity(&results, slo_p99_us);
            ModeCapacity {
                mode,
                steps: of.len() as u64,
                capacity_per_second: cap.map(|c| c.per_second),
                capacity_step: cap.map(|c| of[c.step].sequence),
                capacity_p99_us: cap.map(|c| of[c.step].latency.p99_us),
                first_past_step: cap.and_then(|c| c.first_past).map(|i| of[i].sequence),
                stopped: stopped(mode),
            }
        })
        .collect();
    let of = |mode: Mode| {
        out.iter()
            .find(|m| m.mode == mode)
            .and_then(|m| m.capacity_per_second)
    };
    let ratio = match (of(Mode::Tcp), of(Mode::Stcp)) {
        (Some(tcp), Some(stcp)) if tcp > 0.0 => Some(stcp / tcp),
        _ => None,
    };
    (out, ratio)
}

#[derive(Debug, thiserror::Error)]
pub enum ReadSweepError {
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0} is not a stcp-loadgen sweep report: {1}")]
    Json(PathBuf, serde_json::Error),
    #[error("{0} was written by {1} with schema version {2}; this build reads {SWEEP_TOOL_NAME} schema version {SWEEP_SCHEMA_VERSION}")]
    Schema(PathBuf, String, u32),
}

impl SweepReport {
    /// Writes (or rewrites) `dir/sweep.json`; returns its path.
    pub fn write_into(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join(SWEEP_FILE_NAME);
        let mut json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        json.push(b'\n');
        std::fs::File::create(&path)?.write_all(&json)?;
        Ok(path)
    }

    pub fn read(path: &Path) -> Result<SweepReport, ReadSweepError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ReadSweepError::Io(path.to_path_buf(), e))?;
        Self::parse(path, &text)
    }

    /// Parses the text of `path` as a sweep report.
    pub fn parse(path: &Path, text: &str) -> Result<SweepReport, ReadSweepError> {
        let report: SweepReport =
            serde_json::from_str(text).map_err(|e| ReadSweepError::Json(path.to_path_buf(), e))?;
        if report.schema_version != SWEEP_SCHEMA_VERSION || report.tool != SWEEP_TOOL_NAME {
            return Err(ReadSweepError::Schema(
                path.to_path_buf(),
                report.tool,
                report.schema_version,
            ));
        }
        Ok(report)
    }

    /// The capacity of `mode`, if it has one.
    pub fn capacity(&self, mode: Mode) -> Option<f64> {
        self.modes
            .iter()
            .find(|m| m.mode == mode)
            .and_then(|m| m.capacity_per_second)
    }

    /// `256 B × 50 connections, depth 1`.
    pub fn workload(&self) -> String {
        let c = &self.configuration;
        format!(
            "{} × {} connections{}",
            crate::summary::payload_label(c.payload_bytes),
            c.clients,
            if c.depth == 1 {
                String::new()
            } else {
                format!(", depth {}", c.depth)
            }
        )
    }
}
