//! `suite` and `report` end to end: a real tiny suite (two rows, one of them the seed's, two
//! interleaved pairs, short runs) against the embedded server; its suite report must agree with its run
//! reports, and `report` must render the table and every chart from it. A suite whose TCP server
//! alters a byte must fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Mutex, OnceLock};

use common::{fresh_dir, loadgen, TestEchoServer};
use stcp_loadgen::report::Report;
use stcp_loadgen::run::exit;
use stcp_loadgen::suite::schema::{SuiteReport, SUITE_FILE_NAME};
use stcp_proto::Mode;
use stcp_server::{Config, Server};

/// One suite at a time: two suites at once on a 2-core machine starve each other's runs.
static ONE_SUITE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The tiny suite every test here reads: run once.
struct TinySuite {
    dir: PathBuf,
    output: Output,
}

fn tiny_suite() -> &'static TinySuite {
    static SUITE: OnceLock<TinySuite> = OnceLock::new();
    SUITE.get_or_init(|| {
        let _one = ONE_SUITE_AT_A_TIME
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let dir = fresh_dir("suite").join("tiny");
        let output = loadgen()
            .args([
                "suite",
                "--rows",
                "256x8,64kx5",
                "--duration",
                "500ms",
                "--warmup",
                "200ms",
                "--repeat",
                "2",
                // Generous: on a busy machine a debug build's echo can take seconds.
                "--timeout",
                "30s",
                "--out",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        TinySuite { dir, output }
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_suite_interleaves_tcp_stcp_and_tls_and_its_ratios_come_from_its_runs() {
    let suite = tiny_suite();
    assert!(suite.output.status.success(), "{}", stderr(&suite.output));
    let report = SuiteReport::read(&suite.dir.join(SUITE_FILE_NAME)).unwrap();
    assert!(report.ok && !report.partial, "{:?}", report.partial_reason);
    assert_eq!(report.errors_total, 0);
    // The embedded server serves every mode, so the suite runs all three by default.
    assert_eq!(report.configuration.planned_runs, 12);
    assert_eq!(report.runs.len(), 12);
    // One command gives the table and the charts: they sit beside the reports.
    let table = std::fs::read_to_string(suite.dir.join("report.md")).unwrap();
    assert!(table.contains("| 64 KiB | 5 | STCP |"), "{table}");
    for chart in ["throughput.svg", "latency.svg", "backends.svg", "ratio.svg"] {
        assert!(suite.dir.join(chart).exists(), "{chart} not written");
    }

    // Order: pair 1 of every row, then pair 2; TCP, STCP, then TLS within each.
    let order: Vec<(u64, u64, Mode)> = report
        .runs
        .iter()
        .map(|r| (r.pair, r.payload_bytes, r.mode))
        .collect();
    assert_eq!(
        order,
        [
            (1, 256, Mode::Tcp),
            (1, 256, Mode::Stcp),
            (1, 256, Mode::Tls),
            (1, 65536, Mode::Tcp),
            (1, 65536, Mode::Stcp),
            (1, 65536, Mode::Tls),
            (2, 256, Mode::Tcp),
            (2, 256, Mode::Stcp),
            (2, 256, Mode::Tls),
            (2, 65536, Mode::Tcp),
            (2, 65536, Mode::Stcp),
            (2, 65536, Mode::Tls),
        ]
    );

    // Every run's report is there and tagged with its place in the suite.
    let runs: Vec<Report> = report
        .runs
        .iter()
        .map(|r| Report::read(&suite.dir.join(&r.file)).unwrap())
        .collect();
    for (line, run) in report.runs.iter().zip(&runs) {
        let cell = run.configuration.suite_cell.as_ref().unwrap();
        assert_eq!((cell.sequence, cell.pair), (line.sequence, line.pair));
        assert_eq!(run.configuration.mode, line.mode);
        assert_eq!(run.results.requests_per_second, line.requests_per_second);
        assert_eq!(run.results.errors_total, 0);
        assert!(!run.partial);
        assert_eq!(
            run.environment.server_crypto_backend.as_deref(),
            Some("aws-lc")
        );
    }
    // No speed is asserted: on a starved machine one short run may even complete nothing, but
    // the suite as a whole does work.
    assert!(runs.iter().map(|r| r.results.requests).sum::<u64>() > 0);

    // Per row: the ratio of each pair, from the run reports (a pair whose TCP run completed
    // nothing has none), and their median.
    assert_eq!(report.rows.len(), 2);
    for row in &report.rows {
        let of = |mode: Mode, pair: u64| {
            runs.iter()
                .find(|r| {
                    r.configuration.payload_bytes == row.payload_bytes
                        && r.configuration.mode == mode
                        && r.configuration.suite_cell.as_ref().unwrap().pair == pair
                })
                .unwrap()
        };
        let expected: Vec<f64> = (1..=2)
            .filter(|pair| of(Mode::Tcp, *pair).results.requests_per_second > 0.0)
            .map(|pair| {
                of(Mode::Stcp, pair).results.requests_per_second
                    / of(Mode::Tcp, pair).results.requests_per_second
            })
            .collect();
        match (&row.ratio, expected.len()) {
            (None, 0) => {}
            (Some(ratio), n) if n > 0 => {
                assert_eq!(ratio.pairs, expected);
                let mut sorted = expected.clone();
                sorted.sort_by(f64::total_cmp);
                let median = (sorted[(n - 1) / 2] + sorted[n / 2]) / 2.0;
                assert!((ratio.median - median).abs() < 1e-12);
                assert_eq!((ratio.min, ratio.max), (sorted[0], sorted[n - 1]));
            }
            (ratio, _) => panic!("ratio {ratio:?}, pairs {expected:?}"),
        }
        let tcp = row.tcp.as_ref().unwrap();
        assert_eq!(tcp.runs, 2);
        assert_eq!(
            tcp.requests,
            of(Mode::Tcp, 1).results.requests + of(Mode::Tcp, 2).results.requests
        );
        assert_eq!(tcp.latency.count, tcp.requests);
        assert_eq!(
            tcp.requests_per_second_runs,
            [
                of(Mode::Tcp, 1).results.requests_per_second,
                of(Mode::Tcp, 2).results.requests_per_second
            ]
        );
        assert_eq!(row.io, "io_uring");
    }

    let err = stderr(&suite.output);
    assert!(err.contains("[1/12] tcp 256x8"), "{err}");
    assert!(err.contains("[11/12] stcp 64kx5"), "{err}");
    assert!(err.contains("[12/12] tls 64kx5"), "{err}");
    let out = String::from_utf8_lossy(&suite.output.stdout);
    assert!(out.contains("| 64 KiB | 5 | STCP |"), "{out}");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn report_renders_the_table_and_every_chart_of_a_suite() {
    let suite = tiny_suite();
    assert!(suite.output.status.success(), "{}", stderr(&suite.output));
    let figures = suite.dir.join("figures");
    let output = loadgen()
        .arg("report")
        .arg(&suite.dir)
        .arg("--out-dir")
        .arg(&figures)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    let md = read(&figures.join("report.md"));
    assert_eq!(md, String::from_utf8_lossy(&output.stdout));
    for expected in [
        "| Payload | Clients | Mode | Throughput | RPS | Avg latency | p99 latency | Errors | RPS STCP/TCP |",
        "| 256 B | 8 | TCP |",
        "| 256 B | 8 | STCP |",
        "| 64 KiB | 5 | TCP |",
        "| 64 KiB | 5 | *seed* | *229.4 MB/s* | *1.75k* | *24.3 ms* | *27.2 ms* | *0* |",
        "### aws-lc / io_uring",
    ] {
        assert!(md.contains(expected), "missing {expected:?} in\n{md}");
    }
    let report = SuiteReport::read(&suite.dir.join(SUITE_FILE_NAME)).unwrap();
    for row in &report.rows {
        if let Some(ratio) = &row.ratio {
            let cell = stcp_loadgen::render::markdown::ratio_cell(ratio);
            assert!(
                md.contains(&format!("| {cell} |")),
                "missing {cell} in\n{md}"
            );
        }
    }

    let charts = [
        (
            "throughput.svg",
            &[
                "Throughput, MB/s",
                "Payload per request",
                "256 B × 8",
                "64 KiB × 5",
                "seed:",
            ][..],
        ),
        (
            "latency.svg",
            &[
                "Latency (log scale)",
                "p99.9",
                "256 B × 8 connections",
                "STCP",
            ][..],
        ),
        (
            "backends.svg",
            &["Requests/s", "aws-lc / io_uring", "STCP/TCP"][..],
        ),
        (
            "ratio.svg",
            &["TCP requests/s", "64 KiB × 5 connections"][..],
        ),
    ];
    for (file, texts) in charts {
        let svg = read(&figures.join(file));
        assert!(svg.starts_with("<svg"), "{file} is not an SVG");
        for text in texts {
            assert!(svg.contains(text), "{file} lacks {text:?}");
        }
    }

    // The same rows from the loose run reports of one pair, without the suite report.
    let pair: Vec<PathBuf> = report.runs[..2]
        .iter()
        .map(|r| suite.dir.join(&r.file))
        .collect();
    let output = loadgen().arg("report").args(&pair).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let md = String::from_utf8_lossy(&output.stdout);
    assert!(
        md.contains("| 256 B | 8 | TCP |") && md.contains("| 256 B | 8 | STCP |"),
        "{md}"
    );
    if report.runs[0].requests_per_second > 0.0 {
        let ratio = report.runs[1].requests_per_second / report.runs[0].requests_per_second;
        assert!(
            md.contains(&format!("| {ratio:.3} |")),
            "ratio {ratio:.3} missing in\n{md}"
        );
    }
    assert!(!md.contains("64 KiB"), "{md}");
}

#[test]
fn a_suite_whose_tcp_server_alters_a_byte_fails() {
    // STCP: a real stcp-server; TCP: an echo server that flips one byte of its first echo.
    let (keypair, _) =
        stcp_proto::load_or_create_keypair(&fresh_dir("suite-key").join("k")).unwrap();
    let public: String = keypair.public.iter().map(|b| format!("{b:02x}")).collect();
    let mut config = Config::ephemeral(keypair);
    config.cores = 1;
    config.pin_cores = false;
    let server = Server::start(config).unwrap();
    let corrupting = TestEchoServer::start(Some(0));
    let dir = fresh_dir("suite-corrupt");
    let _one = ONE_SUITE_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let output = loadgen()
        .args([
            "suite",
            "--rows",
            "300x2",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--timeout",
            "30s",
            "--target",
            &server.stcp_addr().unwrap().to_string(),
            "--tcp-target",
            &corrupting.addr,
            "--server-key",
            &public,
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    server.stop();
    server.join().unwrap();
    assert_eq!(
        output.status.code(),
        Some(exit::TOO_MANY_ERRORS),
        "{}",
        stderr(&output)
    );
    let report = SuiteReport::read(&dir.join(SUITE_FILE_NAME)).unwrap();
    assert!(!report.ok);
    assert_eq!(
        report.runs.len(),
        2,
        "the suite goes on after a failing run"
    );
    let tcp = report.rows[0].tcp.as_ref().unwrap();
    assert_eq!(tcp.errors.verify, 1, "{:?}", tcp.errors);
    assert_eq!(report.rows[0].stcp.as_ref().unwrap().errors_total, 0);
    assert_eq!(report.rows[0].io, "external");
    assert!(stderr(&output).contains("FAILED"));
}
