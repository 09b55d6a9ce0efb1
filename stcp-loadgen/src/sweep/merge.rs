//! Merging sweeps made at the same time from several load hosts against one server: the k-th step
//! of each mode is merged across the hosts exactly as `stcp-loadgen merge` merges run reports
//! (histograms added, rates summed), and the capacities are found again from the merged steps.
//! Steps merge only while every host ran the same step (same mode, phase and offered rate); the
//! searches are adaptive, so hosts that judged a step differently go different ways, and the
//! merged sweep then ends that mode there and says so.

use std::path::{Path, PathBuf};

use stcp_proto::Mode;

use super::schema::{
    capacities, ReadSweepError, SweepReport, SweepSource, SweepStep, SWEEP_FILE_NAME,
    SWEEP_TOOL_NAME,
};
use crate::merge::MergeError;
use crate::report::{size_label, ReadReportError, Report};

#[derive(Debug, thiserror::Error)]
pub enum SweepMergeError {
    #[error("{0}")]
    Read(#[from] ReadSweepError),
    #[error("{0}")]
    Run(#[from] ReadReportError),
    #[error("{0}")]
    Merge(#[from] MergeError),
    #[error("{file} swept a different workload ({what}); only sweeps of the same workload and SLO merge")]
    Incompatible { file: String, what: String },
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
}

/// Whether `path` is a sweep report, or a directory holding one.
pub fn is_sweep(path: &Path) -> bool {
    let file = if path.is_dir() {
        path.join(SWEEP_FILE_NAME)
    } else {
        path.to_path_buf()
    };
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("tool").and_then(|t| t.as_str()).map(str::to_string))
        .is_some_and(|t| t == SWEEP_TOOL_NAME)
}

/// A sweep report and its steps' run reports.
struct Loaded {
    file: PathBuf,
    sweep: SweepReport,
    runs: Vec<Report>,
}

fn load(path: &Path) -> Result<Loaded, SweepMergeError> {
    let file = if path.is_dir() {
        path.join(SWEEP_FILE_NAME)
    } else {
        path.to_path_buf()
    };
    let sweep = SweepReport::read(&file)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let runs = sweep
        .steps
        .iter()
        .map(|s| Report::read(&dir.join(&s.file)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Loaded { file, sweep, runs })
}

/// Merges the sweeps at `paths` (sweep.json files or their directories) into a new directory
/// under `out` (merged step reports and sweep.json); returns that directory and the merged sweep.
pub fn merge_sweeps(
    paths: &[PathBuf],
    out: &Path,
    compact_timestamp: &str,
) -> Result<(PathBuf, SweepReport), SweepMergeError> {
    let loaded = paths
        .iter()
        .map(|p| load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(first) = loaded.first() else {
        return Err(MergeError::Empty.into());
    };
    let c = &first.sweep.configuration;
    for l in &loaded[1..] {
        let o = &l.sweep.configuration;
        let same = (c.payload_bytes, c.depth, &c.modes, c.slo_p99_us)
            == (o.payload_bytes, o.depth, &o.modes, o.slo_p99_us);
        if !same {
            return Err(SweepMergeError::Incompatible {
                file: l.file.display().to_string(),
                what: format!(
                    "{}x{} depth {} modes {:?} SLO {} µs against {}x{} depth {} modes {:?} SLO {} µs",
                    size_label(o.payload_bytes),
                    o.clients,
                    o.depth,
                    o.modes,
                    o.slo_p99_us,
                    size_label(c.payload_bytes),
                    c.clients,
                    c.depth,
                    c.modes,
                    c.slo_p99_us
                ),
            });
        }
    }
    let modes: Vec<Mode> = first.sweep.modes.iter().map(|m| m.mode).collect();
    // Per mode, how many leading steps every host ran alike.
    let of_mode = |l: &Loaded, mode: Mode| -> Vec<usize> {
        (0..l.sweep.steps.len())
            .filter(|&i| l.sweep.steps[i].mode == mode)
            .collect()
    };
    let mut notes: Vec<(Mode, String)> = Vec::new();
    let mut common: Vec<(Mode, usize)> = Vec::new();
    for &mode in &modes {
        let lists: Vec<Vec<usize>> = loaded.iter().map(|l| of_mode(l, mode)).collect();
        let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
        let mut k = 0;
        while k < longest {
            let alike = lists.iter().zip(&loaded).all(|(list, l)| {
                list.get(k).is_some_and(|&i| {
                    let (s, f) = (&l.sweep.steps[i], &first.sweep.steps[lists[0][k]]);
                    s.phase == f.phase
                        && (s.target_per_second - f.target_per_second).abs()
                            <= 1e-9 * f.target_per_second.max(1.0)
                })
            });
            if !alike {
                break;
            }
            k += 1;
        }
        if k < longest {
            notes.push((
                mode,
                format!(
                    "the hosts' {} steps differ from step {} on (each host's search went its own \
                     way): only the first {k} merged",
                    mode.name(),
                    k + 1
                ),
            ));
        }
        common.push((mode, k));
    }

    let dir = out.join(format!(
        "sweep-merged-{}x{}-{compact_timestamp}",
        size_label(c.payload_bytes),
        loaded
            .iter()
            .map(|l| l.sweep.configuration.clients)
            .sum::<u64>()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| SweepMergeError::Write(dir.clone(), e))?;
    let mut steps: Vec<SweepStep> = Vec::new();
    let first_lists: Vec<(Mode, Vec<usize>)> =
        modes.iter().map(|&m| (m, of_mode(first, m))).collect();
    for (i, step) in first.sweep.steps.iter().enumerate() {
        let (_, list) = first_lists.iter().find(|(m, _)| *m == step.mode).unwrap();
        let k = list.iter().position(|&j| j == i).unwrap();
        let limit = common
            .iter()
            .find(|(m, _)| *m == step.mode)
            .map_or(0, |c| c.1);
        if k >= limit {
            continue;
        }
        let runs: Vec<(PathBuf, Report)> = loaded
            .iter()
            .map(|l| {
                let j = of_mode(l, step.mode)[k];
                let base = l.file.parent().unwrap_or(Path::new("."));
                (base.join(&l.sweep.steps[j].file), l.runs[j].clone())
            })
            .collect();
        let merged = crate::merge::merge_steps(&runs)?;
        let sequence = steps.len() as u64 + 1;
        let file = format!(
            "{sequence:02}-merged-{}-{}-c{}-r{}.json",
            step.mode.name(),
            size_label(c.payload_bytes),
            merged.configuration.clients,
            merged.configuration.rate_per_second.unwrap_or(0.0).round() as u64
        );
        merged
            .write_as(&dir, &file)
            .map_err(|e| SweepMergeError::Write(dir.join(&file), e))?;
        steps.push(SweepStep::of(
            sequence,
            file,
            step.phase,
            &merged,
            c.slo_p99_us,
        ));
    }

    let stopped = |mode: Mode| {
        let own = first
            .sweep
            .modes
            .iter()
            .find(|m| m.mode == mode)
            .map(|m| m.stopped.clone())
            .unwrap_or_default();
        match notes.iter().find(|(m, _)| *m == mode) {
            Some((_, note)) => note.clone(),
            None => own,
        }
    };
    let (mode_caps, ratio) = capacities(&modes, &steps, c.slo_p99_us, stopped);
    let mut reasons: Vec<String> = loaded
        .iter()
        .filter_map(|l| {
            l.sweep
                .partial_reason
                .as_ref()
                .map(|r| format!("{}: {r}", l.file.display()))
        })
        .collect();
    reasons.extend(notes.into_iter().map(|(_, n)| n));
    let mut configuration = c.clone();
    configuration.clients = loaded.iter().map(|l| l.sweep.configuration.clients).sum();
    configuration.start_rate_per_second = loaded
        .iter()
        .map(|l| l.sweep.configuration.start_rate_per_second)
        .sum();
    let mut environment = first.sweep.environment.clone();
    for l in &loaded {
        let e = &l.sweep.environment;
        if e.started_at < environment.started_at {
            environment.started_at = e.started_at.clone();
        }
        if e.finished_at > environment.finished_at {
            environment.finished_at = e.finished_at.clone();
        }
    }
    let errors_total: u64 = steps.iter().map(|s| s.errors_total).sum();
    let partial_reason = (!reasons.is_empty()).then(|| reasons.join("; "));
    let report = SweepReport {
        schema_version: first.sweep.schema_version,
        tool: SWEEP_TOOL_NAME.into(),
        partial: partial_reason.is_some(),
        ok: partial_reason.is_none() && errors_total == 0,
        partial_reason,
        errors_total,
        configuration,
        environment,
        steps,
        modes: mode_caps,
        capacity_ratio: ratio,
        sources: loaded
            .iter()
            .flat_map(|l| {
                if l.sweep.sources.is_empty() {
                    vec![SweepSource {
                        file: l.file.display().to_string(),
                        hostname: l.sweep.environment.hostname.clone(),
                        started_at: l.sweep.environment.started_at.clone(),
                    }]
                } else {
                    l.sweep.sources.clone()
                }
            })
            .collect(),
    };
    report
        .write_into(&dir)
        .map_err(|e| SweepMergeError::Write(dir.clone(), e))?;
    Ok((dir, report))
}
