//! `merge` is exact: the merged report's histogram equals one built from every sample of every
//! merged run, so its percentiles are the percentiles of all requests.

mod common;

use std::path::PathBuf;

use stcp_loadgen::measurement::{Connections, Interval, Measurement};
use stcp_loadgen::merge::merge;
use stcp_loadgen::report::{Configuration, Environment, Pinning, Report};
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

#[test]
fn the_merge_command_combines_two_real_runs() {
    let dir = common::fresh_dir("merge");
    let (a_dir, b_dir, m_dir) = (dir.join("a"), dir.join("b"), dir.join("m"));
    let args = [
        "--mode",
        "tcp",
        "--clients",
        "2",
        "--duration",
        "500ms",
        "--warmup",
        "0s",
    ];
    let (_, a) = common::run(&args, &a_dir);
    let (_, b) = common::run(&args, &b_dir);
    let file = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    };
    let output = common::loadgen()
        .arg("merge")
        .arg(file(&a_dir))
        .arg(file(&b_dir))
        .arg("--out")
        .arg(&m_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let merged = common::only_report(&m_dir).unwrap();
    let mut all = a.measurement().unwrap().latency;
    all.add(b.measurement().unwrap().latency).unwrap();
    assert_eq!(merged.measurement().unwrap().latency, all);
    assert_eq!(
        merged.results.requests,
        a.results.requests + b.results.requests
    );
    let name = file(&m_dir)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("merged-tcp-256-c4-d1-"), "{name}");
}
