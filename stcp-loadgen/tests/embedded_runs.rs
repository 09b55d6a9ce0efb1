//! Whole runs of the binary against the embedded server, in both modes: every figure in the
//! report must hang together (requests, series, histograms, errors), and the report must
//! round-trip through its JSON schema.

mod common;

use common::{fresh_dir, run};
use stcp_loadgen::report::{Report, SCHEMA_VERSION};

fn check_clean_run(report: &Report, mode: &str, clients: u64, depth: u64) {
    let c = &report.configuration;
    let r = &report.results;
    assert_eq!(report.schema_version, SCHEMA_VERSION);
    assert!(!report.partial, "{:?}", report.partial_reason);
    assert_eq!(c.mode.name(), mode);
    assert!(c.embedded_server);
    assert_eq!((c.clients, c.depth), (clients, depth));
    assert_eq!(r.errors_total, 0, "{:?}", r.errors);
    assert_eq!(r.connections.established, clients);
    assert_eq!(r.handshake_latency.count, clients);
    assert!(r.requests > 0);
    // The series adds up to the totals.
    assert_eq!(
        report.series.iter().map(|s| s.requests).sum::<u64>(),
        r.requests
    );
    assert_eq!(
        report.series.iter().map(|s| s.bytes_sent).sum::<u64>(),
        r.bytes_sent
    );
    // Every request and its echo went over the wire at least once.
    let wire = (c.payload_bytes + if mode == "stcp" { 20 } else { 4 }) * r.requests;
    assert!(r.bytes_received >= wire, "{} < {wire}", r.bytes_received);
    assert!((r.requests_per_second - r.requests as f64 / r.measured_seconds).abs() < 1e-6);
    let mb = c.payload_bytes as f64 * 2.0 * r.requests_per_second / 1e6;
    assert!((r.throughput_mb_per_s - mb).abs() < 1e-9);
    assert!(r.latency.p50_us <= r.latency.p99_us && r.latency.p99_us <= r.latency.max_us);
    assert!(r.loadgen_cpu.cpu_us_per_request > 0.0);
    assert!(
        r.server_cpu.is_some(),
        "the embedded server's CPU is reported"
    );
    assert_eq!(
        report.environment.pinning.client_cores.len() as u64,
        c.threads
    );
    assert!(report.environment.pinning.server_cores.is_some());
    // The histograms decode to exactly the summary.
    let m = report.measurement().unwrap();
    assert_eq!(m.latency.len(), r.requests);
    assert_eq!(m.handshake.len(), clients);
}

#[test]
fn stcp_run_against_the_embedded_server() {
    let out = fresh_dir("stcp");
    let (output, report) = run(
        &[
            "--payload",
            "4k",
            "--clients",
            "3",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
        ],
        &out,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    check_clean_run(&report, "stcp", 3, 1);
    assert_eq!(report.environment.crypto_backend.as_deref(), Some("aws-lc"));
    assert!(report.configuration.server_public_key.is_some());
    assert_eq!(report.configuration.busy_poll_us, 0.0, "busy poll is off");
    assert_eq!(report.configuration.server_busy_poll_us, Some(0.0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("embedded stcp-server"), "{stderr}");
    let name = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    assert!(
        name.to_string_lossy().starts_with("stcp-4k-c3-d1-"),
        "{name:?}"
    );
}

#[test]
fn busy_poll_on_both_sides_of_an_embedded_run_is_recorded() {
    let out = fresh_dir("busy-poll");
    let (output, report) = run(
        &[
            "--payload",
            "16k",
            "--clients",
            "2",
            "--busy-poll",
            "50us",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
        ],
        &out,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    check_clean_run(&report, "stcp", 2, 1);
    let c = &report.configuration;
    assert_eq!(c.busy_poll_us, 50.0);
    // One flag covers both sides; an epoll server (no io_uring here) has no busy poll.
    let server = match report.environment.server_io_backend.as_deref() {
        Some("io_uring") => 50.0,
        _ => 0.0,
    };
    assert_eq!(c.server_busy_poll_us, Some(server));
    assert!(stderr.contains("busy poll 50"), "{stderr}");
}

#[test]
fn tcp_run_with_pipelining_over_two_threads() {
    let out = fresh_dir("tcp");
    let (output, report) = run(
        &[
            "--mode",
            "tcp",
            "--payload",
            "1000",
            "--clients",
            "4",
            "--depth",
            "4",
            "--threads",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "0s",
        ],
        &out,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    check_clean_run(&report, "tcp", 4, 4);
    assert_eq!(report.configuration.threads, 2);
    assert_eq!(report.environment.crypto_backend, None);
}

#[test]
fn stcp_with_rustcrypto_and_a_psk() {
    let out = fresh_dir("psk");
    let psk = out.join("psk");
    stcp_proto::keys::write_new_psk(&psk, [0xab; 32]).unwrap();
    let report_dir = out.join("r");
    let (output, report) = run(
        &[
            "--crypto",
            "rustcrypto",
            "--psk",
            psk.to_str().unwrap(),
            "--payload",
            "64k",
            "--clients",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "0s",
        ],
        &report_dir,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    check_clean_run(&report, "stcp", 2, 1);
    assert!(report.configuration.psk);
    assert_eq!(
        report.environment.crypto_backend.as_deref(),
        Some("rustcrypto")
    );
}

#[test]
fn json_output_round_trips_through_the_schema() {
    let out = fresh_dir("json");
    let output = common::loadgen()
        .args([
            "--mode",
            "tcp",
            "--clients",
            "2",
            "--duration",
            "500ms",
            "--warmup",
            "0s",
            "--json",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Report = serde_json::from_slice(&output.stdout).expect("stdout is the report");
    let written = common::only_report(&out).unwrap();
    assert_eq!(printed, written);
    let again: Report = serde_json::from_str(&serde_json::to_string(&written).unwrap()).unwrap();
    assert_eq!(again, written);
    // Rebuilding the report from its own measurement gives the same report.
    let rebuilt = Report::build(
        written.configuration.clone(),
        written.environment.clone(),
        &written.measurement().unwrap(),
        written.partial_reason.clone(),
        Vec::new(),
    );
    assert_eq!(rebuilt, written);
}
