//! `stcp-loadgen merge`: combines reports of runs made at the same time from several client
//! machines into one report. Histograms are decoded and added, so its percentiles are exact.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::hist_codec::HistogramCodecError;
use crate::report::{Report, Source};

/// `merge`: reports of runs (or sweeps) made at the same time from several machines.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Reports to combine (written by stcp-loadgen): run reports, or sweeps (sweep.json files or
    /// their directories), whose steps merge one by one into a merged sweep directory.
    #[arg(required = true, num_args = 2.., value_name = "REPORT.json|SWEEP")]
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
    #[error("{file} measured a different workload ({field}: {theirs} instead of {ours}); only runs of the same workload merge")]
    Incompatible {
        file: String,
        field: &'static str,
        ours: String,
        theirs: String,
    },
    #[error("{file}: {source}")]
    Histogram {
        file: String,
        source: HistogramCodecError,
    },
}

/// Merges `reports` (each with the file it came from). The merged configuration is the first
/// report's with clients, threads and rate summed; `sources` lists every run combined.
pub fn merge(reports: &[(PathBuf, Report)]) -> Result<Report, MergeError> {
    let ((_, first), rest) = reports.split_first().ok_or(MergeError::Empty)?;
    let decode = |file: &PathBuf, r: &Report| {
        r.measurement().map_err(|source| MergeError::Histogram {
            file: file.display().to_string(),
            source,
        })
    };
    let mut measurement = decode(&reports[0].0, first)?;
    let mut configuration = first.configuration.clone();
    let mut environment = first.environment.clone();
    let mut reasons: Vec<String> = first.partial_reason.iter().cloned().collect();
    for (file, r) in rest {
        check_same_workload(file, first, r)?;
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
    let sources = reports
        .iter()
        .flat_map(|(file, r)| {
            if r.sources.is_empty() {
                vec![Source {
                    file: file.display().to_string(),
                    hostname: r.environment.hostname.clone(),
                    started_at: r.environment.started_at.clone(),
                    clients: r.configuration.clients,
                    partial: r.partial,
                }]
            } else {
                r.sources.clone()
            }
        })
        .collect();
    let partial_reason = (!reasons.is_empty()).then(|| reasons.join("; "));
    Ok(Report::build(
        configuration,
        environment,
        &measurement,
        partial_reason,
        sources,
    ))
}

fn check_same_workload(file: &Path, a: &Report, b: &Report) -> Result<(), MergeError> {
    let (x, y) = (&a.configuration, &b.configuration);
    let differ = |field: &'static str, ours: String, theirs: String| {
        Err(MergeError::Incompatible {
            file: file.display().to_string(),
            field,
            ours,
            theirs,
        })
    };
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
        return differ(
            "rate_per_second",
            format!("{:?}", x.rate_per_second),
            format!("{:?}", y.rate_per_second),
        );
    }
    Ok(())
}
