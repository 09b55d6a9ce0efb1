//! `merge` is exact: the merged report's histogram equals one built from every sample of every
//! merged run, so its percentiles are the percentiles of all requests. It refuses reports that
//! do not belong together, naming both and the field, adds series by wall-clock second, and
//! takes directories.

mod common;

use std::path::PathBuf;

use stcp_loadgen::measurement::{Connections, Interval, Measurement};
use stcp_loadgen::merge::{collect, merge, MergeError};
use stcp_loadgen::report::{Configuration, Environment, Pinning, Report, StartTiming};
use stcp_loadgen::stats::{self, LatencySummary};
use stcp_proto::Mode;

fn configuration(clients: u64) -> Configuration {
    Configuration {
        mode: Mode::Stcp,
        target: "10.0.0.1:7443".into(),
        embedded_server: false,
        payload_bytes: 256,
        clients,
        depth: 1,
        threads: 1,
        rate_per_second: None,
        requests_per_conn: None,
        duration_seconds: 2.0,
        warmup_seconds: 0.0,
        connect_rate_per_second: None,
        timeout_seconds: 5.0,
        max_errors: 0,
        psk: false,
        server_public_key: None,
        suite_cell: None,
        busy_poll_us: 0.0,
        server_busy_poll_us: None,
    }
}

fn environment(host: &str) -> Environment {
    Environment {
        hostname: host.into(),
        kernel: "Linux test".into(),
        cpu_model: "test".into(),
        cores: 2,
        io_backend: "io_uring".into(),
        server_io_backend: None,
        crypto_backend: Some("aws-lc".into()),
        server_crypto_backend: None,
        pinning: Pinning {
            client_cores: vec![Some(1)],
            server_cores: None,
        },
        tool_version: "0.1.0".into(),
        started_at: format!("2026-11-26T13:00:0{}.000Z", host.len()),
        finished_at: "2026-11-26T13:00:10.000Z".into(),
    }
}

/// A measurement of `seconds` seconds whose latencies come from a cheap deterministic generator.
fn measurement(seed: u64, per_second: usize, all: &mut stats::LatencyHistogram) -> Measurement {
    let mut m = Measurement::empty();
    let mut x = seed;
    for _ in 0..2 {
        let mut second = Interval::new(1.0);
        for _ in 0..per_second {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let ns = 5_000 + (x >> 33) % 3_000_000;
            stats::record_ns(&mut second.latency, ns);
            stats::record_ns(all, ns);
        }
        second.requests_per_second = per_second as f64;
        m.latency.add(&second.latency).unwrap();
        m.series.push(second);
    }
    m.measured_seconds = 2.0;
    m.requests_per_second = per_second as f64;
    m.connections = Connections {
        requested: 5,
        established: 5,
        lost: 0,
        closed: 0,
    };
    stats::record_ns(&mut m.handshake, 100_000 + seed);
    m
}

#[test]
fn merged_percentiles_are_those_of_all_samples() {
    let mut all = stats::new_histogram();
    let a = Report::build(
        configuration(5),
        environment("a"),
        &measurement(1, 20_000, &mut all),
        None,
        vec![],
    );
    let b = Report::build(
        configuration(5),
        environment("bb"),
        &measurement(2, 7_000, &mut all),
        None,
        vec![],
    );
    let merged = merge(&[(PathBuf::from("a.json"), a), (PathBuf::from("b.json"), b)]).unwrap();
    let m = merged.measurement().unwrap();
    assert_eq!(m.latency, all);
    assert_eq!(merged.results.latency, LatencySummary::of(&all));
    assert_eq!(merged.results.requests, 54_000);
    assert_eq!(merged.results.requests_per_second, 27_000.0);
    assert_eq!(merged.configuration.clients, 10);
    assert_eq!(merged.results.connections.established, 10);
    assert_eq!(m.handshake.len(), 2);
    assert_eq!(merged.series.len(), 2);
    assert_eq!(merged.series[0].requests, 27_000);
    assert_eq!(merged.sources.len(), 2);
    assert_eq!(merged.environment.started_at, "2026-11-26T13:00:01.000Z");
    // Merging a merge with a third run is still exact.
    let c = Report::build(
        configuration(5),
        environment("c"),
        &measurement(3, 1_000, &mut all),
        None,
        vec![],
    );
    let again = merge(&[
        (PathBuf::from("m.json"), merged),
        (PathBuf::from("c.json"), c),
    ])
    .unwrap();
    assert_eq!(again.measurement().unwrap().latency, all);
    assert_eq!(again.sources.len(), 3);
}

#[test]
fn different_workloads_do_not_merge() {
    let mut all = stats::new_histogram();
    let a = Report::build(
        configuration(5),
        environment("a"),
        &measurement(1, 10, &mut all),
        None,
        vec![],
    );
    let mut other = configuration(5);
    other.payload_bytes = 4096;
    let b = Report::build(
        other,
        environment("b"),
        &measurement(2, 10, &mut all),
        None,
        vec![],
    );
    assert!(merge(&[(PathBuf::from("a.json"), a), (PathBuf::from("b.json"), b)]).is_err());
}

/// A report of `host` whose measured interval began at Unix second `second` (+ `offset_ms`) and
/// lasted two seconds, with `per_second` requests a second.
fn started(host: &str, second: u64, offset_ms: u64, per_second: usize) -> Report {
    let mut all = stats::new_histogram();
    let mut r = Report::build(
        configuration(5),
        environment(host),
        &measurement(second + offset_ms, per_second, &mut all),
        None,
        vec![],
    );
    let actual = second * 1_000_000_000 + offset_ms * 1_000_000;
    r.start = Some(StartTiming {
        intended_at: None,
        intended_unix_ns: None,
        actual_at: format!("{second}.{offset_ms:03}"),
        actual_unix_ns: actual,
        skew_us: None,
        threads_spread_us: 10.0,
        connecting_seconds: 0.01,
        series_start_unix_s: second + u64::from(offset_ms >= 500),
    });
    r
}

fn named(reports: Vec<Report>) -> Vec<(PathBuf, Report)> {
    reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| (PathBuf::from(format!("host{i}.json")), r))
        .collect()
}

#[test]
fn reports_of_another_workload_or_server_are_refused_naming_both_and_the_field() {
    let base = started("a", 1_000, 0, 10);
    type Change = fn(&mut Configuration);
    let cases: [(&str, Change); 6] = [
        ("payload_bytes", |c| c.payload_bytes = 4096),
        ("mode", |c| c.mode = Mode::Tcp),
        ("target", |c| c.target = "10.0.0.2:7443".into()),
        ("depth", |c| c.depth = 4),
        ("rate_per_second", |c| c.rate_per_second = Some(1000.0)),
        ("server_public_key", |c| {
            c.server_public_key = Some("ab".repeat(32))
        }),
    ];
    for (field, change) in cases {
        let mut other = started("b", 1_000, 0, 10);
        change(&mut other.configuration);
        let e = merge(&named(vec![base.clone(), other])).unwrap_err();
        assert!(
            matches!(&e, MergeError::Incompatible { field: f, .. } if *f == field),
            "{field}: {e}"
        );
        let text = e.to_string();
        assert!(
            text.contains("host0.json") && text.contains("host1.json") && text.contains(field),
            "{text}"
        );
    }
    // Clients per host may differ: they add up.
    let mut more = started("b", 1_000, 0, 10);
    more.configuration.clients = 50;
    let merged = merge(&named(vec![base, more])).unwrap();
    assert_eq!(merged.configuration.clients, 55);
}

#[test]
fn intervals_that_do_not_overlap_and_runs_given_twice_are_refused() {
    let a = started("a", 1_000, 0, 10);
    // Measured 1000.0 to 1002.0 against 1002.0 to 1004.0: they only touch.
    let later = started("b", 1_002, 0, 10);
    let e = merge(&named(vec![a.clone(), later])).unwrap_err();
    assert!(matches!(e, MergeError::NoOverlap { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("host0.json") && text.contains("host1.json") && text.contains("--start-at"),
        "{text}"
    );
    // Half a second apart, they overlap.
    assert!(merge(&named(vec![a.clone(), started("b", 1_001, 500, 10)])).is_ok());
    // A series start that does not match the measured interval is refused, not padded.
    let mut odd = started("b", 1_000, 0, 10);
    odd.start.as_mut().unwrap().series_start_unix_s = u64::MAX;
    let e = merge(&named(vec![a.clone(), odd])).unwrap_err();
    assert!(matches!(e, MergeError::SeriesStart { .. }), "{e}");
    let e = merge(&named(vec![a.clone(), a.clone()])).unwrap_err();
    assert!(matches!(e, MergeError::SameRun { .. }), "{e}");
    // Also when the run is inside a merge given beside it.
    let ab = merge(&named(vec![a.clone(), started("b", 1_000, 0, 10)])).unwrap();
    let e = merge(&named(vec![ab, a])).unwrap_err();
    assert!(matches!(e, MergeError::SameRun { .. }), "{e}");
}

#[test]
fn series_add_by_wall_clock_second() {
    // a covers seconds 1000 and 1001, b (one second later) 1001 and 1002.
    let a = started("a", 1_000, 0, 100);
    let b = started("b", 1_001, 0, 7);
    let merged = merge(&named(vec![b.clone(), a.clone()])).unwrap();
    let requests: Vec<u64> = merged.series.iter().map(|s| s.requests).collect();
    assert_eq!(requests, [100, 107, 7]);
    assert_eq!(
        merged.series[1].bytes_sent,
        a.series[1].bytes_sent + b.series[0].bytes_sent
    );
    let start = merged.start.clone().unwrap();
    assert_eq!(start.series_start_unix_s, 1_000);
    assert_eq!(start.actual_unix_ns, 1_000_000_000_000);
    assert_eq!(start.threads_spread_us, 1_000_010.0);
    assert_eq!(
        merged.results.requests,
        a.results.requests + b.results.requests
    );
    // Each second's histogram is the sum of that second's histograms.
    let mut second = a.measurement().unwrap().series[1].latency.clone();
    second
        .add(&b.measurement().unwrap().series[0].latency)
        .unwrap();
    assert_eq!(merged.measurement().unwrap().series[1].latency, second);
    // The sources carry each run's own start and requests.
    assert_eq!(merged.sources[0].hostname, "b");
    assert_eq!(merged.sources[1].requests, a.results.requests);
    assert_eq!(merged.sources[1].start, a.start);
}

#[test]
fn a_directory_gives_every_run_report_in_it_and_leaves_out_the_rest() {
    let dir = common::fresh_dir("merge-dir");
    let a = started("a", 1_000, 0, 10);
    let b = started("b", 1_000, 0, 20);
    a.write_as(&dir, "a.json").unwrap();
    b.write_as(&dir, "b.json").unwrap();
    let merged = merge(&named(vec![a.clone(), b.clone()])).unwrap();
    merged.write_as(&dir, "merged-x.json").unwrap();
    std::fs::write(dir.join("suite.json"), r#"{"tool": "stcp-loadgen suite"}"#).unwrap();
    std::fs::write(dir.join("notes.txt"), "not json").unwrap();
    let (reports, notes) = collect(std::slice::from_ref(&dir)).unwrap();
    let names: Vec<String> = reports
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a.json", "b.json"]);
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes
        .iter()
        .any(|n| n.contains("merged-x.json") && n.contains("already a merge")));
    assert!(notes.iter().any(|n| n.contains("suite.json")));
    // One report alone is nothing to merge.
    let lone = common::fresh_dir("merge-lone");
    a.write_as(&lone, "a.json").unwrap();
    assert!(matches!(
        collect(&[lone]),
        Err(MergeError::TooFew { found: 1, .. })
    ));
}

#[test]
fn the_merge_command_refuses_a_directory_of_reports_that_do_not_belong_together() {
    let dir = common::fresh_dir("merge-refused");
    let a = started("a", 1_000, 0, 10);
    let mut b = started("b", 1_000, 0, 10);
    b.configuration.payload_bytes = 4096;
    a.write_as(&dir, "host-a.json").unwrap();
    b.write_as(&dir, "host-b.json").unwrap();
    let out = dir.join("merged");
    let output = common::loadgen()
        .arg("merge")
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(stcp_loadgen::run::exit::CANNOT_START)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("host-a.json")
            && stderr.contains("host-b.json")
            && stderr.contains("payload_bytes differs (256 against 4096)"),
        "{stderr}"
    );
    assert!(!out.exists(), "no merged report");
}
