//! `stcp-loadgen merge`: combines reports of runs made at the same time from several client
//! machines into one report. Histograms are decoded and added, so its percentiles are exact;
//! requests and bytes are sums; the per-second series are added by wall-clock second.
//!
//! Reports are refused when they do not belong together: another workload or server (mode,
//! payload, depth, open or closed loop, churn, target, server key), the same run given twice, or
//! measured intervals that do not overlap.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::hist_codec::HistogramCodecError;
use crate::measurement::{Interval, Measurement};
use crate::report::{ReadReportError, Report, Source, StartTiming, TOOL_NAME};

/// `merge`: reports of runs (or sweeps) made at the same time from several machines.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Reports to combine (written by stcp-loadgen): run reports, directories of run reports
    /// (every run report in them; earlier merges in them are left out), or sweeps (sweep.json
    /// files or their directories), whose steps merge one by one into a merged sweep directory.
    #[arg(required = true, num_args = 1.., value_name = "REPORT.json|DIR|SWEEP")]
    pub reports: Vec<PathBuf>,
    /// Directory for the merged report.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub out: PathBuf,
    /// Also print the merged report on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge")]
    Empty,
    #[error("nothing to merge: {given} hold {found} run report(s); merge needs two or more")]
    TooFew { given: String, found: usize },
    #[error(
        "{first} and {file} do not belong together: their {field} differs ({ours} against \
         {theirs}); only runs of the same workload against the same server merge"
    )]
    Incompatible {
        first: String,
        file: String,
        field: &'static str,
        ours: String,
        theirs: String,
    },
    #[error(
        "{a} and {b} do not belong together: their measured intervals do not overlap ({a}: \
         {a_span}; {b}: {b_span}); only runs made at the same time merge: give every load host \
         the same --start-at"
    )]
    NoOverlap {
        a: String,
        b: String,
        a_span: String,
        b_span: String,
    },
    #[error("{a} and {b} are the same run (host {host}, started {at}): give each run once")]
    SameRun {
        a: String,
        b: String,
        host: String,
        at: String,
    },
    #[error(
        "{file}: its series begins {shift} s after the earliest report's, further than any \
         measured interval lasts: its start section does not match its measured interval"
    )]
    SeriesStart { file: String, shift: u64 },
    #[error("{file}: {source}")]
    Histogram {
        file: String,
        source: HistogramCodecError,
    },
    #[error("{0}")]
    Read(#[from] ReadReportError),
    #[error("cannot read the directory {dir}: {1}", dir = .0.display())]
    Dir(PathBuf, std::io::Error),
}

/// Run reports, each with the file it was read from.
pub type NamedReports = Vec<(PathBuf, Report)>;

/// The run reports named by `paths`: files as given, and every run report in each directory (in
/// name order). Files in a directory that are not run reports (suite.json, sweep.json, other
/// tools' JSON) and earlier merges are left out, each with a note.
pub fn collect(paths: &[PathBuf]) -> Result<(NamedReports, Vec<String>), MergeError> {
    let mut reports = Vec::new();
    let mut notes = Vec::new();
    for path in paths {
        if !path.is_dir() {
            reports.push((path.clone(), Report::read(path)?));
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| MergeError::Dir(path.clone(), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            let tool = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .map(|v| {
                    let tool = v.get("tool").and_then(|t| t.as_str()).map(str::to_string);
                    let merged = v
                        .get("sources")
                        .and_then(|s| s.as_array())
                        .is_some_and(|s| !s.is_empty());
                    (tool, merged)
                });
            match tool {
                Some((Some(tool), false)) if tool == TOOL_NAME => {
                    reports.push((file.clone(), Report::read(&file)?));
                }
                Some((Some(tool), true)) if tool == TOOL_NAME => notes.push(format!(
                    "left out {}: it is already a merge (name it to merge it again)",
                    file.display()
                )),
                _ => notes.push(format!("left out {}: not a run report", file.display())),
            }
        }
    }
    if reports.len() < 2 {
        return Err(MergeError::TooFew {
            given: paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            found: reports.len(),
        });
    }
    Ok((reports, notes))
}

/// Merges `reports` (each with the file it came from) of runs made at the same time. The merged
/// configuration is the first report's with clients, threads and rate summed; `sources` lists
/// every run combined. Refused: another workload or server, the same run twice, measured
/// intervals that do not overlap. Series are added by wall-clock second when every report
/// records its start ([`Report::start`]), else second by second from each one's first.
pub fn merge(reports: &[(PathBuf, Report)]) -> Result<Report, MergeError> {
    merge_with(reports, true)
}

/// Merges the k-th steps of sweeps run from several hosts: the same workload and server, but
/// each host's sweep ran on its own clock, so neither overlap nor wall-clock seconds are asked
/// for; series are added second by second from each step's first.
pub fn merge_steps(reports: &[(PathBuf, Report)]) -> Result<Report, MergeError> {
    merge_with(reports, false)
}

fn merge_with(reports: &[(PathBuf, Report)], concurrent: bool) -> Result<Report, MergeError> {
    let ((first_file, first), rest) = reports.split_first().ok_or(MergeError::Empty)?;
    for (file, r) in rest {
        check_same_workload(first_file, file, first, r)?;
    }
    let starts: Option<Vec<&StartTiming>> = reports.iter().map(|(_, r)| r.start.as_ref()).collect();
    if concurrent {
        check_distinct_runs(reports)?;
        if let Some(starts) = &starts {
            check_overlap(reports, starts)?;
        }
    }
    // Wall-clock alignment: each series is shifted by its first second's distance from the
    // earliest one.
    let base = starts
        .as_ref()
        .filter(|_| concurrent)
        .and_then(|s| s.iter().map(|t| t.series_start_unix_s).min());
    // Overlapping intervals begin within the longest of them of each other: a series shifted
    // further comes from a start section that does not match its report (and would pad the
    // merged series without bound).
    let longest = reports
        .iter()
        .map(|(_, r)| r.results.measured_seconds.max(0.0).ceil() as u64)
        .max()
        .unwrap_or(0);
    if let Some(base) = base {
        for (file, r) in reports {
            let shift = r
                .start
                .as_ref()
                .map_or(0, |s| s.series_start_unix_s.saturating_sub(base));
            if shift > longest + 1 {
                return Err(MergeError::SeriesStart {
                    file: file.display().to_string(),
                    shift,
                });
            }
        }
    }
    let decode = |file: &PathBuf, r: &Report| -> Result<Measurement, MergeError> {
        let mut m = r.measurement().map_err(|source| MergeError::Histogram {
            file: file.display().to_string(),
            source,
        })?;
        if let (Some(base), Some(start)) = (base, &r.start) {
            let shift = start.series_start_unix_s.saturating_sub(base) as usize;
            m.series
                .splice(0..0, (0..shift).map(|_| Interval::new(1.0)));
        }
        Ok(m)
    };
    let mut measurement = decode(first_file, first)?;
    let mut configuration = first.configuration.clone();
    let mut environment = first.environment.clone();
    let mut reasons: Vec<String> = first.partial_reason.iter().cloned().collect();
    for (file, r) in rest {
        measurement.add_concurrent_run(&decode(file, r)?);
        configuration.clients += r.configuration.clients;
        configuration.threads += r.configuration.threads;
        configuration.rate_per_second = configuration
            .rate_per_second
            .zip(r.configuration.rate_per_second)
            .map(|(a, b)| a + b);
        if r.environment.started_at < environment.started_at {
            environment.started_at = r.environment.started_at.clone();
        }
        if r.environment.finished_at > environment.finished_at {
            environment.finished_at = r.environment.finished_at.clone();
        }
        reasons.extend(r.partial_reason.iter().cloned());
    }
    let sources = reports.iter().flat_map(|(f, r)| runs_of(f, r)).collect();
    let partial_reason = (!reasons.is_empty()).then(|| reasons.join("; "));
    let mut merged = Report::build(
        configuration,
        environment,
        &measurement,
        partial_reason,
        sources,
    );
    merged.start = starts.and_then(|s| merged_start(&s, base));
    Ok(merged)
}

/// The runs a report stands for: itself, or the sources of a merge.
fn runs_of(file: &Path, r: &Report) -> Vec<Source> {
    if !r.sources.is_empty() {
        return r.sources.clone();
    }
    vec![Source {
        file: file.display().to_string(),
        hostname: r.environment.hostname.clone(),
        started_at: r.environment.started_at.clone(),
        clients: r.configuration.clients,
        partial: r.partial,
        start: r.start.clone(),
        measured_seconds: r.results.measured_seconds,
        requests: r.results.requests,
    }]
}

/// The start of a merge: the earliest real start, the same intended start if every source had
/// it, the skew of largest magnitude, the spread from the first thread of any source to the last
/// thread of any source.
fn merged_start(starts: &[&StartTiming], base: Option<u64>) -> Option<StartTiming> {
    let first = starts.iter().min_by_key(|s| s.actual_unix_ns)?;
    let intended = starts[0]
        .intended_unix_ns
        .filter(|at| starts.iter().all(|s| s.intended_unix_ns == Some(*at)));
    let last_thread_ns = starts
        .iter()
        .map(|s| s.actual_unix_ns as f64 + s.threads_spread_us * 1e3)
        .fold(f64::MIN, f64::max);
    Some(StartTiming {
        intended_at: intended.and(starts[0].intended_at.clone()),
        intended_unix_ns: intended,
        actual_at: first.actual_at.clone(),
        actual_unix_ns: first.actual_unix_ns,
        skew_us: starts
            .iter()
            .filter_map(|s| s.skew_us)
            .max_by(|a, b| a.abs().total_cmp(&b.abs())),
        threads_spread_us: (last_thread_ns - first.actual_unix_ns as f64) / 1e3,
        connecting_seconds: starts
            .iter()
            .map(|s| s.connecting_seconds)
            .fold(0.0, f64::max),
        series_start_unix_s: base.unwrap_or(first.series_start_unix_s),
    })
}

/// Refuses a run given twice (directly, or inside a merge given too).
fn check_distinct_runs(reports: &[(PathBuf, Report)]) -> Result<(), MergeError> {
    let mut seen: Vec<(String, String, String)> = Vec::new();
    for (file, r) in reports {
        for run in runs_of(file, r) {
            let at = run
                .start
                .as_ref()
                .map_or(run.started_at.clone(), |s| s.actual_unix_ns.to_string());
            let file = file.display().to_string();
            if let Some((other, _, _)) = seen
                .iter()
                .find(|(_, host, when)| *host == run.hostname && *when == at)
            {
                return Err(MergeError::SameRun {
                    a: other.clone(),
                    b: file,
                    host: run.hostname,
                    at: run.started_at,
                });
            }
            seen.push((file, run.hostname, at));
        }
    }
    Ok(())
}

/// Refuses measured intervals with no instant in common: the report that began last against the
/// one that ended first.
fn check_overlap(reports: &[(PathBuf, Report)], starts: &[&StartTiming]) -> Result<(), MergeError> {
    let span = |i: usize| {
        let s = starts[i];
        (
            s.actual_unix_ns,
            s.end_unix_ns(reports[i].1.results.measured_seconds),
        )
    };
    let latest_start = (0..reports.len()).max_by_key(|&i| span(i).0).unwrap_or(0);
    let earliest_end = (0..reports.len()).min_by_key(|&i| span(i).1).unwrap_or(0);
    if span(latest_start).0 < span(earliest_end).1 {
        return Ok(());
    }
    let label = |i: usize| {
        let (from, to) = span(i);
        format!(
            "measured {} to {}",
            crate::start_at::label(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(from)),
            crate::start_at::label(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(to))
        )
    };
    Err(MergeError::NoOverlap {
        a: reports[earliest_end].0.display().to_string(),
        b: reports[latest_start].0.display().to_string(),
        a_span: label(earliest_end),
        b_span: label(latest_start),
    })
}

fn check_same_workload(
    first_file: &Path,
    file: &Path,
    a: &Report,
    b: &Report,
) -> Result<(), MergeError> {
    let (x, y) = (&a.configuration, &b.configuration);
    let differ = |field: &'static str, ours: String, theirs: String| {
        Err(MergeError::Incompatible {
            first: first_file.display().to_string(),
            file: file.display().to_string(),
            field,
            ours,
            theirs,
        })
    };
    let or_none = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    if x.mode != y.mode {
        return differ("mode", x.mode.name().into(), y.mode.name().into());
    }
    if x.payload_bytes != y.payload_bytes {
        return differ(
            "payload_bytes",
            x.payload_bytes.to_string(),
            y.payload_bytes.to_string(),
        );
    }
    if x.depth != y.depth {
        return differ("depth", x.depth.to_string(), y.depth.to_string());
    }
    if x.rate_per_second.is_some() != y.rate_per_second.is_some() {
        let kind = |r: Option<f64>| match r {
            Some(r) => format!("open loop at {r}/s"),
            None => "closed loop".into(),
        };
        return differ(
            "rate_per_second",
            kind(x.rate_per_second),
            kind(y.rate_per_second),
        );
    }
    if x.requests_per_conn != y.requests_per_conn {
        return differ(
            "requests_per_conn",
            or_none(x.requests_per_conn.map(|n| n.to_string())),
            or_none(y.requests_per_conn.map(|n| n.to_string())),
        );
    }
    if x.target != y.target {
        return differ("target", x.target.clone(), y.target.clone());
    }
    if x.server_public_key != y.server_public_key {
        return differ(
            "server_public_key",
            or_none(x.server_public_key.clone()),
            or_none(y.server_public_key.clone()),
        );
    }
    Ok(())
}
