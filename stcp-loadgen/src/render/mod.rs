//! `stcp-loadgen report`: reads suite reports, suite directories, sweep reports and run reports,
//! and renders what people look at: a Markdown table in the seed's columns with TCP and STCP side
//! by side, the STCP/TCP ratio and the seed's figure, the capacity table of sweeps
//! ([`markdown`]), and SVG charts ([`charts`]).

pub mod capacity;
pub mod charts;
pub mod markdown;
pub mod seed;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::report::{ReadReportError, Report, TOOL_NAME};
use crate::run::exit;
use crate::suite::aggregate::{self, AggregateError, RunInput};
use crate::suite::schema::{
    ReadSuiteError, RowSummary, SuiteEnvironment, SuiteReport, SUITE_FILE_NAME, SUITE_TOOL_NAME,
};
use crate::sweep::schema::{
    ReadSweepError, SweepReport, SweepStep, SWEEP_FILE_NAME, SWEEP_TOOL_NAME,
};

/// Everything the table and the charts show.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Machine and time span; None when nothing says.
    pub environment: Option<SuiteEnvironment>,
    /// One line per distinct setup: where the server and the client threads ran.
    pub setups: Vec<String>,
    /// Interleaved pairs per row (the most any row has).
    pub pairs: u64,
    /// Rows of persistent connections (the seed's kind): the main tables and the charts.
    pub rows: Vec<RowSummary>,
    /// Churn rows (`256x16n1`): the handshake table.
    pub handshake_rows: Vec<RowSummary>,
    /// Sweeps of latency against offered load: the capacity table and chart.
    pub sweeps: Vec<SweepReport>,
    /// Partial suites and runs, errors: what a reader must know before trusting the table.
    pub warnings: Vec<String>,
}

/// Why `report` cannot render.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Run(#[from] ReadReportError),
    #[error("{0}")]
    Suite(#[from] ReadSuiteError),
    #[error("{0}")]
    Sweep(#[from] ReadSweepError),
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0} is neither a stcp-loadgen run report nor a suite or sweep report")]
    Unknown(PathBuf),
    #[error("{0}: no suite.json, sweep.json or report in it")]
    EmptyDirectory(PathBuf),
    #[error("{0}")]
    Aggregate(#[from] AggregateError),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("chart {0}: {1}")]
    Chart(PathBuf, String),
}

/// What the inputs held.
#[derive(Default)]
pub struct Inputs {
    pub suites: Vec<(PathBuf, SuiteReport)>,
    pub runs: Vec<(PathBuf, Report)>,
    /// Suites whose run reports could not all be found: their stored rows are used.
    pub suites_without_runs: Vec<(PathBuf, SuiteReport)>,
    /// Sweep reports, their steps read again from their run reports when those are all there.
    pub sweeps: Vec<(PathBuf, SweepReport)>,
}

/// `report`: the table and the charts.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Suite and sweep directories, suite.json and sweep.json files, and run reports.
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

/// Runs `stcp-loadgen report`; returns the exit status.
pub fn command(args: &ReportArgs) -> i32 {
    match render(args) {
        Ok(()) => exit::OK,
        Err(e) => {
            crate::stderr_line!("stcp-loadgen report: {e}");
            exit::CANNOT_START
        }
    }
}

fn render(args: &ReportArgs) -> Result<(), RenderError> {
    let inputs = load(&args.inputs)?;
    let evaluation = Evaluation::of_inputs(&inputs)?;
    let text = markdown::document(&evaluation);
    if !args.quiet {
        crate::stdout_text!("{text}");
    }
    if let Some(dir) = &args.out_dir {
        for path in write_outputs(&evaluation, &text, dir)? {
            crate::stderr_line!("stcp-loadgen report: wrote {}", path.display());
        }
    }
    Ok(())
}

/// Writes `report.md` (the Markdown `text` of `evaluation`) and the SVG charts into `dir`,
/// creating it if missing. Returns the files written.
pub fn write_outputs(
    evaluation: &Evaluation,
    text: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>, RenderError> {
    std::fs::create_dir_all(dir).map_err(|e| RenderError::Write(dir.to_path_buf(), e))?;
    let md = dir.join("report.md");
    std::fs::write(&md, text).map_err(|e| RenderError::Write(md.clone(), e))?;
    let mut written = vec![md];
    written.extend(charts::write_all(evaluation, dir)?);
    Ok(written)
}

/// Reads every input: a directory stands for its suite.json or sweep.json, or else every report in
/// it; a suite report brings its run reports (named relative to it) when they are all there, and
/// the sweeps it made (in directories beside them); a sweep report brings its steps' run reports.
pub fn load(paths: &[PathBuf]) -> Result<Inputs, RenderError> {
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        if path.is_dir() {
            let suite = path.join(SUITE_FILE_NAME);
            let sweep = path.join(SWEEP_FILE_NAME);
            if suite.exists() {
                files.push(suite);
            } else if sweep.exists() {
                files.push(sweep);
            } else {
                let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                    .map_err(|e| RenderError::Io(path.clone(), e))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect();
                if found.is_empty() {
                    return Err(RenderError::EmptyDirectory(path.clone()));
                }
                found.sort();
                files.extend(found);
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut inputs = Inputs::default();
    for file in files {
        let key = file.canonicalize().unwrap_or_else(|_| file.clone());
        if !seen.insert(key) {
            continue;
        }
        let text = std::fs::read_to_string(&file).map_err(|e| RenderError::Io(file.clone(), e))?;
        let tool = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("tool").and_then(|t| t.as_str()).map(str::to_string));
        match tool.as_deref() {
            Some(SUITE_TOOL_NAME) => {
                let suite = SuiteReport::parse(&file, &text)?;
                let dir = file.parent().unwrap_or(Path::new("."));
                let run_files: Vec<PathBuf> =
                    suite.runs.iter().map(|r| dir.join(&r.file)).collect();
                if run_files.iter().all(|f| f.exists()) {
                    for f in run_files {
                        let key = f.canonicalize().unwrap_or_else(|_| f.clone());
                        if seen.insert(key) {
                            let report = Report::read(&f)?;
                            inputs.runs.push((f, report));
                        }
                    }
                    for sweep in &suite.sweeps {
                        let sweep_file = dir.join(&sweep.file);
                        let key = sweep_file
                            .canonicalize()
                            .unwrap_or_else(|_| sweep_file.clone());
                        if seen.insert(key) {
                            inputs.sweeps.push(read_sweep(&sweep_file)?);
                        }
                    }
                    inputs.suites.push((file, suite));
                } else {
                    inputs.suites_without_runs.push((file, suite));
                }
            }
            Some(SWEEP_TOOL_NAME) => inputs.sweeps.push(read_sweep(&file)?),
            Some(TOOL_NAME) => {
                let report = Report::read(&file)?;
                inputs.runs.push((file, report));
            }
            _ => return Err(RenderError::Unknown(file)),
        }
    }
    Ok(inputs)
}

/// Reads a sweep report; when every step's run report is beside it, its steps are read again
/// from them (so the table and the chart come from the runs themselves).
fn read_sweep(file: &Path) -> Result<(PathBuf, SweepReport), RenderError> {
    let mut sweep = SweepReport::read(file)?;
    let dir = file.parent().unwrap_or(Path::new("."));
    if sweep.steps.iter().all(|s| dir.join(&s.file).exists()) {
        let slo = sweep.configuration.slo_p99_us;
        let steps = sweep
            .steps
            .iter()
            .map(|s| {
                let run = Report::read(&dir.join(&s.file))?;
                Ok(SweepStep::of(
                    s.sequence,
                    s.file.clone(),
                    s.phase,
                    &run,
                    slo,
                ))
            })
            .collect::<Result<Vec<_>, RenderError>>()?;
        let modes: Vec<stcp_proto::Mode> = sweep.modes.iter().map(|m| m.mode).collect();
        let stopped: Vec<(stcp_proto::Mode, String)> = sweep
            .modes
            .iter()
            .map(|m| (m.mode, m.stopped.clone()))
            .collect();
        let (capacities, ratio) = crate::sweep::schema::capacities(&modes, &steps, slo, |mode| {
            stopped
                .iter()
                .find(|(m, _)| *m == mode)
                .map(|(_, s)| s.clone())
                .unwrap_or_default()
        });
        sweep.steps = steps;
        sweep.modes = capacities;
        sweep.capacity_ratio = ratio;
    }
    Ok((file.to_path_buf(), sweep))
}

impl Evaluation {
    /// What `sweep` writes beside its reports: the capacity table and chart of its sweeps.
    pub fn of_sweeps(sweeps: Vec<SweepReport>) -> Evaluation {
        let mut warnings = Vec::new();
        for sweep in &sweeps {
            sweep_warnings(sweep, &mut warnings);
        }
        Evaluation {
            environment: sweeps.first().map(|s| s.environment.clone()),
            setups: Vec::new(),
            pairs: 0,
            rows: Vec::new(),
            handshake_rows: Vec::new(),
            sweeps,
            warnings,
        }
    }

    /// What `suite` prints at its end: its own rows, with the setup read from its run reports.
    pub fn of_suite(
        suite: &SuiteReport,
        reports: &[&Report],
        sweeps: Vec<SweepReport>,
    ) -> Evaluation {
        let mut warnings = Vec::new();
        suite_warnings(suite, &mut warnings);
        let (handshake_rows, rows) = split_churn(suite.rows.clone());
        for sweep in &sweeps {
            sweep_warnings(sweep, &mut warnings);
        }
        Evaluation {
            environment: Some(suite.environment.clone()),
            setups: setups(reports.iter().copied()),
            pairs: pairs(&suite.rows),
            rows,
            handshake_rows,
            sweeps,
            warnings,
        }
    }

    /// What `report` renders: every run aggregated afresh, plus the stored rows of suites whose
    /// runs are missing.
    pub fn of_inputs(inputs: &Inputs) -> Result<Evaluation, RenderError> {
        let run_inputs: Vec<RunInput<'_>> = inputs
            .runs
            .iter()
            .map(|(path, report)| RunInput {
                file: path.display().to_string(),
                report,
            })
            .collect();
        let mut rows = aggregate::summarize(&run_inputs)?;
        let mut warnings = Vec::new();
        for (path, suite) in &inputs.suites_without_runs {
            warnings.push(format!(
                "{}: its run reports are not all there; its stored figures are shown",
                path.display()
            ));
            rows.extend(suite.rows.iter().cloned());
        }
        for (_, suite) in inputs.suites.iter().chain(&inputs.suites_without_runs) {
            suite_warnings(suite, &mut warnings);
        }
        for (path, report) in &inputs.runs {
            if let Some(why) = &report.partial_reason {
                warnings.push(format!("{}: partial run ({why})", path.display()));
            }
        }
        for (_, sweep) in &inputs.sweeps {
            sweep_warnings(sweep, &mut warnings);
        }
        let environment = inputs
            .suites
            .iter()
            .chain(&inputs.suites_without_runs)
            .map(|(_, s)| s.environment.clone())
            .next()
            .or_else(|| {
                inputs
                    .runs
                    .first()
                    .map(|(_, r)| environment_of(&inputs.runs, r))
            })
            .or_else(|| inputs.sweeps.first().map(|(_, s)| s.environment.clone()));
        let pairs = pairs(&rows);
        let (handshake_rows, rows) = split_churn(rows);
        Ok(Evaluation {
            environment,
            setups: setups(inputs.runs.iter().map(|(_, r)| r)),
            pairs,
            rows,
            handshake_rows,
            sweeps: inputs.sweeps.iter().map(|(_, s)| s.clone()).collect(),
            warnings,
        })
    }
}

/// Churn rows apart from the rest: (churn, persistent).
fn split_churn(rows: Vec<RowSummary>) -> (Vec<RowSummary>, Vec<RowSummary>) {
    rows.into_iter()
        .partition(|r| r.requests_per_conn.is_some())
}

fn sweep_warnings(sweep: &SweepReport, warnings: &mut Vec<String>) {
    if let Some(why) = &sweep.partial_reason {
        warnings.push(format!(
            "the sweep of {} started {} is partial: {why}",
            sweep.workload(),
            sweep.environment.started_at
        ));
    }
    if sweep.errors_total > 0 {
        warnings.push(format!(
            "the sweep of {} started {} had {} error(s) in its steps",
            sweep.workload(),
            sweep.environment.started_at,
            sweep.errors_total
        ));
    }
}

fn suite_warnings(suite: &SuiteReport, warnings: &mut Vec<String>) {
    if let Some(why) = &suite.partial_reason {
        warnings.push(format!(
            "the suite started {} is partial: {why} ({} of {} runs)",
            suite.environment.started_at,
            suite.runs.len(),
            suite.configuration.planned_runs
        ));
    }
    if suite.errors_total > 0 {
        warnings.push(format!(
            "the suite started {} had {} error(s): see the Errors column",
            suite.environment.started_at, suite.errors_total
        ));
    }
}

/// The environment of loose run reports: the first one's machine, the span of them all.
fn environment_of(runs: &[(PathBuf, Report)], first: &Report) -> SuiteEnvironment {
    let e = &first.environment;
    SuiteEnvironment {
        hostname: e.hostname.clone(),
        kernel: e.kernel.clone(),
        cpu_model: e.cpu_model.clone(),
        cores: e.cores,
        client_io_backend: e.io_backend.clone(),
        tool_version: e.tool_version.clone(),
        started_at: runs
            .iter()
            .map(|(_, r)| r.environment.started_at.clone())
            .min()
            .unwrap_or_default(),
        finished_at: runs
            .iter()
            .map(|(_, r)| r.environment.finished_at.clone())
            .max()
            .unwrap_or_default(),
    }
}

fn pairs(rows: &[RowSummary]) -> u64 {
    rows.iter()
        .map(|r| {
            let n =
                |m: &Option<crate::suite::schema::ModeSummary>| m.as_ref().map_or(0, |m| m.runs);
            n(&r.tcp).max(n(&r.stcp))
        })
        .max()
        .unwrap_or(0)
}

/// `", busy poll 50 µs"` for a busy poll in microseconds, nothing when off (or not known).
fn busy_poll_note(us: Option<f64>) -> String {
    match us {
        Some(us) if us > 0.0 => format!(", busy poll {us} µs"),
        _ => String::new(),
    }
}

/// Where the server and the client threads ran, one line per distinct setup.
fn setups<'a>(reports: impl Iterator<Item = &'a Report>) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for r in reports {
        let e = &r.environment;
        let c = &r.configuration;
        let clients = e
            .pinning
            .client_cores
            .iter()
            .map(|c| c.map_or("unpinned".to_string(), |c| c.to_string()))
            .collect::<Vec<_>>()
            .join(", ");
        let server = match (&e.server_io_backend, &e.pinning.server_cores) {
            (Some(io), Some(cores)) => format!(
                "embedded stcp-server ({io}, {}{}) with workers pinned to core(s) {}",
                e.server_crypto_backend.as_deref().unwrap_or("?"),
                busy_poll_note(c.server_busy_poll_us),
                cores
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => "external stcp-server".to_string(),
        };
        let line = format!(
            "{server}; {} load generator thread(s) ({}{}) pinned to core(s) {clients}",
            c.threads,
            e.io_backend,
            busy_poll_note(Some(c.busy_poll_us))
        );
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    lines
}
