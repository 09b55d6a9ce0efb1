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
    // (The start timing is the engine's clock readings, not part of the measurement.)
    let mut rebuilt = Report::build(
        written.configuration.clone(),
        written.environment.clone(),
        &written.measurement().unwrap(),
        written.partial_reason.clone(),
        Vec::new(),
    );
    assert!(written.start.is_some());
    rebuilt.start = written.start.clone();
    assert_eq!(rebuilt, written);
}

/// Churn: every connection does its requests, closes cleanly and is replaced; the report counts
/// the handshakes of the measured interval, both latency histograms and the server's CPU per
/// handshake, and no error (the server takes every close as a clean one).
fn check_churn(report: &Report, mode: &str, clients: u64, per_conn: u64) {
    let c = &report.configuration;
    let r = &report.results;
    assert!(!report.partial, "{:?}", report.partial_reason);
    assert_eq!(c.mode.name(), mode);
    assert_eq!(c.requests_per_conn, Some(per_conn));
    assert_eq!(r.errors_total, 0, "{:?}", r.errors);
    assert!(
        r.handshakes > clients,
        "connections were replaced: {} handshakes",
        r.handshakes
    );
    assert!((r.handshakes_per_second - r.handshakes as f64 / r.measured_seconds).abs() < 1e-6);
    assert_eq!(
        report.series.iter().map(|s| s.handshakes).sum::<u64>(),
        r.handshakes
    );
    // Every connection set up was closed cleanly or still open at the end (at most one per slot).
    let open_at_end = r.connections.established - r.connections.closed;
    assert!(open_at_end <= clients, "{:?}", r.connections);
    assert_eq!(r.connections.lost, 0);
    // Connected: every connection set up, and any still handshaking at the end.
    let connected = r.connect_latency.count;
    assert!(
        connected >= r.connections.established && connected <= r.connections.established + clients,
        "{connected} connected, {:?}",
        r.connections
    );
    assert_eq!(r.handshake_latency.count, r.connections.established);
    assert!(r.connect_latency.p50_us <= r.handshake_latency.p50_us);
    // Each connection's requests: N per closed connection, give or take those open at the end.
    let closed = r.connections.closed;
    if per_conn == 0 {
        assert_eq!(r.requests, 0);
    } else {
        assert!(r.requests > 0);
        assert!(
            r.requests <= (closed + clients) * per_conn,
            "{} requests",
            r.requests
        );
    }
    let server = r.server_cpu.expect("embedded server CPU");
    assert!(server.cpu_us_per_handshake > 0.0);
    let m = report.measurement().unwrap();
    assert_eq!(m.connect.len(), connected);
    assert_eq!(m.handshakes, r.handshakes);
}

fn churn_run(name: &str, args: &[&str]) -> (std::process::Output, Report) {
    let out = fresh_dir(name);
    let mut all = vec!["--payload", "256", "--duration", "1s", "--warmup", "200ms"];
    all.extend_from_slice(args);
    let (output, report) = run(&all, &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // The embedded server logs every connection it counts as failed: a churn run has none,
    // its last connections included (they finish their handshake and close too).
    assert!(!stderr.contains("connection failed"), "{stderr}");
    (output, report)
}

#[test]
fn stcp_churn_one_request_per_connection() {
    let (output, report) = churn_run(
        "churn-stcp",
        &["--requests-per-conn", "1", "--clients", "4"],
    );
    check_churn(&report, "stcp", 4, 1);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("handshakes/s") && stdout.contains("us per handshake"),
        "{stdout}"
    );
}

#[test]
fn tcp_churn_with_pipelined_requests() {
    let (_, report) = churn_run(
        "churn-tcp",
        &[
            "--mode",
            "tcp",
            "--requests-per-conn",
            "5",
            "--depth",
            "2",
            "--clients",
            "3",
        ],
    );
    check_churn(&report, "tcp", 3, 5);
}

#[test]
fn stcp_churn_without_an_echo() {
    let (_, report) = churn_run(
        "churn-zero",
        &["--requests-per-conn", "0", "--clients", "2"],
    );
    check_churn(&report, "stcp", 2, 0);
}

#[test]
fn open_loop_churn_counts_new_connections_per_second() {
    let (_, report) = churn_run(
        "churn-open",
        &[
            "--requests-per-conn",
            "2",
            "--clients",
            "8",
            "--rate",
            "300",
        ],
    );
    check_churn(&report, "stcp", 8, 2);
    let r = &report.results;
    // The schedule bounds the connections from above: 300/s over the measured second, plus
    // at most one per slot carried over from the warm-up.
    assert!(
        r.handshakes <= 300 + 8,
        "{} handshakes at 300 connections/s",
        r.handshakes
    );
}
