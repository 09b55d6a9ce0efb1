//! Runs that go wrong must say so: a server that alters one byte produces verify errors and a
//! failing exit status; a server that dies mid-run, or Ctrl-C, gives a partial report quickly,
//! never a hang; a wrong server key fails the handshakes.

mod common;

use std::time::{Duration, Instant};

use common::{fresh_dir, loadgen, only_report, run, TestEchoServer};
use stcp_loadgen::run::exit;

#[test]
fn one_corrupted_byte_is_a_verify_error_and_a_failing_exit() {
    let server = TestEchoServer::start(Some(50));
    let out = fresh_dir("corrupt");
    let (output, report) = run(
        &[
            "--target",
            &server.addr,
            "--mode",
            "tcp",
            "--payload",
            "300",
            "--clients",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "0s",
        ],
        &out,
    );
    assert_eq!(output.status.code(), Some(exit::TOO_MANY_ERRORS));
    assert_eq!(
        report.results.errors.verify, 1,
        "{:?}",
        report.results.errors
    );
    assert_eq!(report.results.errors_total, 1);
    assert_eq!(report.results.connections.lost, 1);
    assert!(
        !report.partial,
        "one connection is left, so the run is whole"
    );
    // --max-errors lets the same failure pass.
    let server = TestEchoServer::start(Some(50));
    let out = fresh_dir("corrupt-allowed");
    let (output, report) = run(
        &[
            "--target",
            &server.addr,
            "--mode",
            "tcp",
            "--payload",
            "300",
            "--clients",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--max-errors",
            "1",
        ],
        &out,
    );
    assert_eq!(report.results.errors.verify, 1);
    assert_eq!(output.status.code(), Some(exit::OK));
}

#[test]
fn a_server_killed_mid_run_gives_a_partial_report_not_a_hang() {
    let server = TestEchoServer::start(None);
    let out = fresh_dir("killed");
    let mut child = loadgen()
        .args([
            "--target",
            &server.addr,
            "--mode",
            "tcp",
            "--clients",
            "3",
            "--duration",
            "30s",
            "--warmup",
            "0s",
        ])
        .args(["--quiet", "--out"])
        .arg(&out)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(25) {
            let _ = child.kill();
            panic!("the load generator hung after its server died");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(exit::PARTIAL));
    let report = only_report(&out).expect("a report despite the dead server");
    assert!(report.partial);
    assert_eq!(
        report.partial_reason.as_deref(),
        Some("every connection was lost before the end")
    );
    assert_eq!(report.results.errors.io, 3, "{:?}", report.results.errors);
    assert!(report.results.requests > 0);
    assert!(
        report.results.measured_seconds < 10.0,
        "{}",
        report.results.measured_seconds
    );
}

#[test]
fn ctrl_c_writes_a_partial_report_and_exits_non_zero() {
    let out = fresh_dir("sigint");
    let child = loadgen()
        .args([
            "--mode",
            "tcp",
            "--clients",
            "2",
            "--duration",
            "30s",
            "--warmup",
            "0s",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    let sent = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "took {:?} to stop",
        sent.elapsed()
    );
    assert_eq!(output.status.code(), Some(exit::PARTIAL));
    let report = only_report(&out).expect("a report after Ctrl-C");
    assert!(report.partial);
    assert_eq!(report.partial_reason.as_deref(), Some("interrupted"));
    assert!(report.results.requests > 0);
    assert!(report.results.measured_seconds < 29.0);
}

#[test]
fn a_wrong_server_key_fails_every_handshake() {
    let out = fresh_dir("wrongkey");
    let wrong = "11".repeat(32);
    let (output, report) = run(
        &[
            "--server-key",
            &wrong,
            "--clients",
            "2",
            "--duration",
            "500ms",
            "--warmup",
            "0s",
            "--timeout",
            "2s",
        ],
        &out,
    );
    // The embedded server is used, but the client pins another key: no session can be set up.
    assert_eq!(output.status.code(), Some(exit::PARTIAL));
    assert_eq!(
        report.results.errors.handshake, 2,
        "{:?}",
        report.results.errors
    );
    assert_eq!(report.results.connections.established, 0);
    assert_eq!(
        report.partial_reason.as_deref(),
        Some("no connection could be set up")
    );
}

#[test]
fn nothing_listening_is_a_connect_error() {
    // Bind then drop: the port is very likely closed for the moment of the test.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = fresh_dir("refused");
    let target = format!("127.0.0.1:{port}");
    let (output, report) = run(
        &[
            "--target",
            &target,
            "--mode",
            "tcp",
            "--clients",
            "2",
            "--duration",
            "500ms",
            "--warmup",
            "0s",
        ],
        &out,
    );
    assert_eq!(output.status.code(), Some(exit::PARTIAL));
    assert_eq!(report.results.errors.connect, 2);
}
