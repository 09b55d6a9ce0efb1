//! Faults of a real `stcp-server` process under load from the real `stcp-loadgen` binary:
//! - SIGKILL mid-run: the load generator notices at once (every connection lost), writes a
//!   partial report, exits non-zero (3), and does not hang;
//! - SIGTERM mid-run: the server sends an authenticated close on every STCP connection and exits
//!   0; the load generator verifies the echoes that came before it, counts a clean end ("server
//!   closed"), zero errors, and exits 3 (partial).

mod common;
mod server_process;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{fresh_dir, loadgen, only_report};
use server_process::ServerProcess;
use stcp_loadgen::run::exit;

/// Longest a load generator may take to stop once its server is gone (its --timeout is 5 s).
const STOP_BOUND: Duration = Duration::from_secs(20);

fn start_load(server: &ServerProcess, mode: &str, clients: &str, out: &std::path::Path) -> Child {
    let mut cmd = loadgen();
    cmd.args(["--mode", mode, "--clients", clients, "--threads", "1"])
        .args(["--payload", "1k", "--duration", "60s", "--warmup", "0s"])
        .args(["--timeout", "5s", "--quiet", "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match mode {
        "stcp" => cmd
            .arg("--target")
            .arg(server.stcp.to_string())
            .arg("--server-key")
            .arg(&server.public_key_file),
        _ => cmd.arg("--target").arg(server.tcp.to_string()),
    };
    cmd.spawn().expect("spawn stcp-loadgen")
}

/// Waits for `child` to exit, at most `bound`; kills it and fails the test if it hangs.
fn wait_bounded(child: &mut Child, bound: Duration, what: &str) -> (i32, String) {
    let t0 = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.code().unwrap_or(-1), err);
        }
        if t0.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {bound:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the server has echoed at least `frames` more frames than now (the loads run).
fn wait_for_load(server: &mut ServerProcess, frames: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let start = server.frames();
    while server.frames() < start + frames {
        assert!(
            Instant::now() < deadline,
            "the load did not get going: {} frames",
            server.frames()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkill_of_the_server_gives_partial_reports_not_a_hang() {
    let dir = fresh_dir("sigkill");
    let mut server = ServerProcess::start(&dir, &[]);
    let (stcp_out, tcp_out) = (dir.join("stcp"), dir.join("tcp"));
    let mut stcp = start_load(&server, "stcp", "3", &stcp_out);
    let mut tcp = start_load(&server, "tcp", "3", &tcp_out);
    wait_for_load(&mut server, 2000);
    let killed_at = Instant::now();
    server.signal(libc::SIGKILL);
    for (child, out, mode) in [(&mut stcp, &stcp_out, "stcp"), (&mut tcp, &tcp_out, "tcp")] {
        let (code, stderr) = wait_bounded(child, STOP_BOUND, mode);
        assert_eq!(code, exit::PARTIAL, "{mode}: stderr:\n{stderr}");
        let report = only_report(out).expect("a report despite the dead server");
        assert!(report.partial, "{mode}");
        assert_eq!(
            report.partial_reason.as_deref(),
            Some("every connection was lost before the end"),
            "{mode}"
        );
        // A killed server cannot close authentically: every connection is an io error.
        assert_eq!(
            report.results.errors.io, 3,
            "{mode}: {:?}",
            report.results.errors
        );
        assert_eq!(report.results.errors.verify, 0, "{mode}");
        assert_eq!(report.results.connections.lost, 3, "{mode}");
        assert!(report.results.requests > 0, "{mode}");
        assert!(report.results.measured_seconds < 30.0, "{mode}");
    }
    eprintln!(
        "both load generators stopped {:?} after SIGKILL",
        killed_at.elapsed()
    );
}

#[test]
fn sigterm_of_the_server_is_a_clean_end_for_the_load_generator() {
    let dir = fresh_dir("sigterm");
    let mut server = ServerProcess::start(&dir, &[]);
    let out = dir.join("stcp");
    let mut stcp = start_load(&server, "stcp", "4", &out);
    wait_for_load(&mut server, 2000);
    let t0 = Instant::now();
    server.signal(libc::SIGTERM);
    let (server_code, server_err) = server.wait_exit(Duration::from_secs(10));
    assert_eq!(server_code, 0, "stcp-server stderr:\n{server_err}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "the server took {:?} to stop",
        t0.elapsed()
    );
    // The server's own summary: every connection ended without an error on its side.
    let summary = server_err
        .lines()
        .find(|l| l.contains("summary:"))
        .unwrap_or_else(|| panic!("no summary line:\n{server_err}"));
    assert!(summary.ends_with("errors: none"), "{summary}");

    let (code, stderr) = wait_bounded(&mut stcp, STOP_BOUND, "stcp-loadgen");
    assert_eq!(code, exit::PARTIAL, "stderr:\n{stderr}");
    let report = only_report(&out).expect("a report after the server stopped");
    assert!(report.partial);
    let reason = report.partial_reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("server closed"), "{reason}");
    // Every echo that came was verified; the authenticated close is not an error.
    assert_eq!(
        report.results.errors_total, 0,
        "{:?}",
        report.results.errors
    );
    assert_eq!(report.results.connections.established, 4);
    assert_eq!(report.results.connections.lost, 0);
    assert!(report.results.requests > 0);
    eprintln!("server stopped cleanly; load generator: {reason}");
}
