//! `sweep` end to end, with tiny steps against the embedded server: its sweep report must agree
//! with the run reports of its steps (one real open-loop run each), `report` must render the
//! capacity table and the chart from the saved reports, two sweeps must merge step by step, and
//! `suite --sweep` must add the sweeps of its 256 B and 16 KiB rows. No speed is asserted: which
//! step is within the SLO depends on the machine, so capacities are checked against the steps'
//! own figures, not against numbers.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Mutex, OnceLock};

use common::{fresh_dir, loadgen};
use stcp_loadgen::report::Report;
use stcp_loadgen::suite::schema::{SuiteReport, SUITE_FILE_NAME};
use stcp_loadgen::sweep::schema::{SweepReport, SWEEP_FILE_NAME};
use stcp_loadgen::sweep::search::Phase;
use stcp_proto::Mode;

/// One sweep at a time: two at once on a 2-core machine starve each other's steps.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Options of a tiny sweep: short steps, few of them.
const TINY: &[&str] = &[
    "--payload",
    "256",
    "--clients",
    "4",
    "--start-rate",
    "200",
    "--step-factor",
    "4",
    "--max-steps",
    "3",
    "--refine",
    "1",
    "--step-duration",
    "300ms",
    "--step-warmup",
    "100ms",
    // Generous: on a busy machine a debug build's echo can take seconds.
    "--timeout",
    "30s",
];

struct TinySweep {
    dir: PathBuf,
    output: Output,
}

fn tiny_sweep() -> &'static TinySweep {
    static SWEEP: OnceLock<TinySweep> = OnceLock::new();
    SWEEP.get_or_init(|| {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = fresh_dir("sweep").join("tiny");
        let output = loadgen()
            .arg("sweep")
            .args(TINY)
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap();
        TinySweep { dir, output }
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The capacity a mode's steps give: the highest achieved rate of a step within the SLO.
fn expected_capacity(report: &SweepReport, mode: Mode) -> Option<f64> {
    report
        .steps
        .iter()
        .filter(|s| s.mode == mode && s.within_slo)
        .map(|s| s.achieved_per_second)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
}

#[test]
fn a_sweep_interleaves_the_modes_and_every_step_is_a_run_report() {
    let sweep = tiny_sweep();
    let status = sweep.output.status.code();
    let report = SweepReport::read(&sweep.dir.join(SWEEP_FILE_NAME))
        .unwrap_or_else(|e| panic!("{e}\n{}", stderr(&sweep.output)));
    assert!(!report.partial, "{:?}", report.partial_reason);
    assert_eq!(
        status,
        Some(if report.errors_total == 0 { 0 } else { 1 }),
        "{}",
        stderr(&sweep.output)
    );
    let c = &report.configuration;
    assert_eq!((c.payload_bytes, c.clients, c.depth), (256, 4, 1));
    assert_eq!(c.modes, ["tcp", "stcp"]);
    assert_eq!(c.slo_p99_us, 1000.0);
    assert_eq!(c.p99_ceiling_us, 10_000.0);
    assert!(c.embedded_server);

    // Steps: TCP first, then STCP, alternating while both search; at most --max-steps a mode.
    assert!(report.steps.len() >= 2 && report.steps.len() <= 6);
    assert_eq!(report.steps[0].mode, Mode::Tcp);
    assert_eq!(report.steps[1].mode, Mode::Stcp);
    for mode in [Mode::Tcp, Mode::Stcp] {
        let of: Vec<_> = report.steps.iter().filter(|s| s.mode == mode).collect();
        assert!(!of.is_empty() && of.len() <= 3);
        assert_eq!(of[0].target_per_second, 200.0);
        assert_eq!(of[0].phase, Phase::Climb);
        // Climbing steps go up by --step-factor; a refinement lies between two steps before it.
        for pair in of.windows(2) {
            if pair[1].phase == Phase::Climb {
                assert_eq!(pair[1].target_per_second, pair[0].target_per_second * 4.0);
            }
        }
        let m = report.modes.iter().find(|m| m.mode == mode).unwrap();
        assert_eq!(m.steps, of.len() as u64);
        assert!(!m.stopped.is_empty());
        assert_eq!(m.capacity_per_second, expected_capacity(&report, mode));
    }
    match (report.capacity(Mode::Tcp), report.capacity(Mode::Stcp)) {
        (Some(t), Some(s)) => assert_eq!(report.capacity_ratio, Some(s / t)),
        _ => assert_eq!(report.capacity_ratio, None),
    }

    // Every step is a normal run report: open loop at the step's rate, its figures the step's.
    for (i, step) in report.steps.iter().enumerate() {
        assert_eq!(step.sequence, i as u64 + 1);
        let run = Report::read(&sweep.dir.join(&step.file)).unwrap();
        assert_eq!(run.configuration.mode, step.mode);
        assert_eq!(
            run.configuration.rate_per_second,
            Some(step.target_per_second)
        );
        assert_eq!(run.configuration.clients, 4);
        assert_eq!(run.results.requests_per_second, step.achieved_per_second);
        assert_eq!(run.results.latency, step.latency);
        assert_eq!(run.results.errors_total, step.errors_total);
        let schedule = run.results.schedule.expect("an open loop has a schedule");
        assert_eq!(schedule.kept, step.kept_schedule);
        assert_eq!(
            step.within_slo,
            step.kept_schedule
                && step.latency.p99_us <= 1000.0
                && step.errors_total == 0
                && step.requests > 0
        );
    }

    // The table and the chart beside the reports.
    let md = read(&sweep.dir.join("report.md"));
    assert!(
        md.contains("### Capacity: the highest rate served within the p99 SLO"),
        "{md}"
    );
    assert!(md.contains("| 256 B × 4 connections | 1.00 ms |"), "{md}");
    assert!(sweep.dir.join("sweep.svg").exists());
    assert!(
        !sweep.dir.join("throughput.svg").exists(),
        "no closed-loop rows, no such chart"
    );
    let err = stderr(&sweep.output);
    assert!(
        err.contains("[1] tcp 256x4 climb 200 req/s: achieved"),
        "{err}"
    );
    assert!(err.contains("tcp capacity"), "{err}");
}

#[test]
fn report_renders_the_capacity_table_and_chart_from_the_saved_sweep() {
    let sweep = tiny_sweep();
    let report = SweepReport::read(&sweep.dir.join(SWEEP_FILE_NAME)).unwrap();
    let figures = fresh_dir("sweep-figures");
    let output = loadgen()
        .arg("report")
        .arg(&sweep.dir)
        .arg("--out-dir")
        .arg(&figures)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let md = read(&figures.join("report.md"));
    assert_eq!(md, String::from_utf8_lossy(&output.stdout));
    assert!(
        md.contains("| TCP capacity | STCP capacity | STCP/TCP |"),
        "{md}"
    );
    for step in &report.steps {
        let line = format!(
            "| {} | {} | {} | {:.0} | {:.0} |",
            step.sequence,
            if step.mode == Mode::Tcp {
                "TCP"
            } else {
                "STCP"
            },
            if step.phase == Phase::Climb {
                "climb"
            } else {
                "refine"
            },
            step.target_per_second,
            step.achieved_per_second
        );
        assert!(md.contains(&line), "missing {line:?} in\n{md}");
    }
    let svg = read(&figures.join("sweep.svg"));
    assert!(svg.starts_with("<svg"));
    for text in [
        "Achieved requests/s",
        "log scale",
        "SLO p99 1.00 ms",
        "TCP p99.9",
        "STCP p50",
        "256 B × 4 connections",
    ] {
        assert!(svg.contains(text), "sweep.svg lacks {text:?}");
    }
    for mode in [Mode::Tcp, Mode::Stcp] {
        let label = if mode == Mode::Tcp {
            "TCP capacity"
        } else {
            "STCP capacity"
        };
        // plotters puts a text element's content on a line of its own.
        assert_eq!(
            svg.lines().any(|l| l.starts_with(&format!("{label} "))),
            report.capacity(mode).is_some(),
            "{label} marked only when there is one"
        );
    }
}

#[test]
fn two_sweeps_merge_step_by_step() {
    let sweep = tiny_sweep();
    let report = SweepReport::read(&sweep.dir.join(SWEEP_FILE_NAME)).unwrap();
    let out = fresh_dir("sweep-merge");
    // The same sweep given twice: every step pairs with itself, so rates and counts double.
    let output = loadgen()
        .arg("merge")
        .arg(&sweep.dir)
        .arg(sweep.dir.join(SWEEP_FILE_NAME))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let dirs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let merged = SweepReport::read(&dirs[0].join(SWEEP_FILE_NAME)).unwrap();
    assert_eq!(merged.sources.len(), 2);
    assert_eq!(merged.configuration.clients, 8);
    assert_eq!(merged.steps.len(), report.steps.len());
    for (m, s) in merged.steps.iter().zip(&report.steps) {
        assert_eq!(m.mode, s.mode);
        assert_eq!(m.target_per_second, 2.0 * s.target_per_second);
        assert_eq!(m.requests, 2 * s.requests);
        let run = Report::read(&dirs[0].join(&m.file)).unwrap();
        assert_eq!(run.sources.len(), 2);
        assert_eq!(run.results.requests, m.requests);
    }
    for mode in [Mode::Tcp, Mode::Stcp] {
        assert_eq!(merged.capacity(mode), expected_capacity(&merged, mode));
    }
    assert!(dirs[0].join("sweep.svg").exists());
    // A sweep and a run report do not merge together.
    let output = loadgen()
        .arg("merge")
        .arg(&sweep.dir)
        .arg(sweep.dir.join(&report.steps[0].file))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

#[test]
fn suite_sweep_adds_the_sweeps_of_the_256_b_and_16_kib_rows() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = fresh_dir("suite-sweep").join("s");
    let output = loadgen()
        .args([
            "suite",
            // The sweeps compare TCP and STCP; the suite's TLS runs are not what this tests.
            "--modes",
            "tcp,stcp",
            "--rows",
            "256x2,4kx2",
            "--duration",
            "300ms",
            "--warmup",
            "100ms",
            "--timeout",
            "30s",
            "--sweep",
            "--start-rate",
            "200",
            "--max-steps",
            "1",
            "--step-duration",
            "300ms",
            "--step-warmup",
            "100ms",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let suite = SuiteReport::read(&dir.join(SUITE_FILE_NAME))
        .unwrap_or_else(|e| panic!("{e}\n{}", stderr(&output)));
    assert!(!suite.partial, "{:?}", suite.partial_reason);
    assert!(suite.configuration.sweep);
    assert_eq!(suite.runs.len(), 4);
    // Only the 256 B row is swept (4 KiB is not one of the swept payloads).
    assert_eq!(suite.sweeps.len(), 1);
    let s = &suite.sweeps[0];
    assert_eq!((s.payload_bytes, s.clients), (256, 2));
    let sweep = SweepReport::read(&dir.join(&s.file)).unwrap();
    assert_eq!(sweep.steps.len(), 2, "one step a mode");
    assert_eq!(s.tcp_capacity_per_second, sweep.capacity(Mode::Tcp));
    assert_eq!(s.stcp_capacity_per_second, sweep.capacity(Mode::Stcp));
    assert_eq!(output.status.code(), Some(if suite.ok { 0 } else { 1 }));
    // The suite's table and charts include the capacity table and the sweep chart; `report`
    // finds the sweep through suite.json.
    let md = read(&dir.join("report.md"));
    assert!(
        md.contains("| 256 B | 2 | TCP |") && md.contains("### Capacity"),
        "{md}"
    );
    assert!(dir.join("sweep.svg").exists() && dir.join("throughput.svg").exists());
    let output = loadgen().arg("report").arg(&dir).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("### Capacity"));

    // --sweep without a row to sweep is bad usage.
    let output = loadgen()
        .args(["suite", "--rows", "4kx2", "--sweep", "--out"])
        .arg(fresh_dir("suite-sweep-none"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("256 B and 16 KiB rows"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_sweep_of_a_running_server_includes_tls_with_its_address_and_certificate() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = fresh_dir("sweep-external-tls");
    let (keypair, _) = stcp_proto::load_or_create_keypair(&dir.join("server.key")).unwrap();
    let public: String = keypair.public.iter().map(|b| format!("{b:02x}")).collect();
    let mut config = stcp_server::Config::ephemeral(keypair)
        .with_ephemeral_tls()
        .unwrap();
    config.cores = 1;
    config.pin_cores = false;
    let server = stcp_server::Server::start(config).unwrap();
    let cert = dir.join("server.crt");
    std::fs::write(&cert, server.tls_cert_pem().unwrap()).unwrap();
    let addr = |a: Option<std::net::SocketAddr>| a.unwrap().to_string();
    let tls_target = addr(server.tls_addr());
    let out = dir.join("sweep");
    let output = loadgen()
        .arg("sweep")
        .args(TINY)
        .args(["--modes", "tcp,stcp,tls", "--threads", "1"])
        .args(["--target", &addr(server.stcp_addr())])
        .args(["--tcp-target", &addr(server.tcp_addr())])
        .args(["--tls-target", &tls_target])
        .args(["--server-key", &public, "--server-cert"])
        .arg(&cert)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    server.stop();
    server.join().unwrap();
    let report = SweepReport::read(&out.join(SWEEP_FILE_NAME))
        .unwrap_or_else(|e| panic!("{e}: {}", stderr(&output)));
    assert_eq!(
        report.configuration.tls_target.as_deref(),
        Some(tls_target.as_str())
    );
    assert!(!report.configuration.embedded_server);
    let modes: Vec<Mode> = report.steps.iter().map(|s| s.mode).collect();
    assert_eq!(
        modes[..3],
        [Mode::Tcp, Mode::Stcp, Mode::Tls],
        "{}",
        stderr(&output)
    );
    assert_eq!(report.errors_total, 0, "{}", stderr(&output));
    let tls = &report.steps[2];
    let run = Report::read(&out.join(&tls.file)).unwrap();
    assert_eq!(run.configuration.mode, Mode::Tls);
    assert_eq!(
        run.configuration.target, tls_target,
        "TLS steps go to --tls-target"
    );
    assert!(run.results.requests > 0, "{}", stderr(&output));
}

#[test]
fn a_tls_sweep_of_a_running_server_without_its_tls_address_is_refused_at_once() {
    let output = loadgen()
        .args(["sweep", "--modes", "tcp,tls"])
        .args(["--target", "127.0.0.1:9", "--tcp-target", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(stcp_loadgen::run::exit::USAGE));
    assert!(
        stderr(&output).contains("--tls-target"),
        "{}",
        stderr(&output)
    );
}
