//! `stcp-loadgen --mode tls` end to end, against the tokio-rustls reference echo server
//! (`examples/tokio_tls_echo.rs`, run in this process on loopback): closed loop, open loop and
//! churn (a full TLS 1.3 handshake per connection, close_notify at its end), every echo verified
//! and no error; and a `--server-cert` that is not the server's refused with the cause.

mod common;

#[allow(dead_code)]
#[path = "../examples/tokio_tls_echo.rs"]
mod reference;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;

use common::{fresh_dir, loadgen, only_report};
use stcp_loadgen::run::exit;
use stcp_proto::Mode;

/// Starts the reference server on an ephemeral loopback port; writes its certificate to `cert`.
fn start_reference(cert: &Path) -> SocketAddr {
    let (config, pem) = reference::server_config().expect("the reference's configuration");
    std::fs::write(cert, pem).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            // Runs until the test process ends.
            let _ = reference::serve(listener, tokio_rustls::TlsAcceptor::from(config)).await;
        });
    });
    rx.recv().expect("the reference server's address")
}

fn run(target: SocketAddr, cert: &Path, out: &Path, extra: &[&str]) -> Output {
    loadgen()
        .args([
            "--mode",
            "tls",
            "--target",
            &target.to_string(),
            "--server-cert",
        ])
        .arg(cert)
        .args([
            "--threads",
            "1",
            "--warmup",
            "200ms",
            "--duration",
            "1s",
            "--quiet",
        ])
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("stcp-loadgen runs")
}

#[test]
fn tls_closed_loop_open_loop_and_churn_verify_every_echo() {
    if !common::uring_available() {
        return;
    }
    let dir = fresh_dir("tls");
    let cert = dir.join("reference.crt");
    let target = start_reference(&cert);
    let cases: [(&str, &[&str]); 4] = [
        ("closed", &["--clients", "4", "--payload", "4k"]),
        (
            "large",
            &["--clients", "2", "--payload", "64k", "--depth", "2"],
        ),
        ("open", &["--clients", "4", "--rate", "400"]),
        ("churn", &["--clients", "4", "--requests-per-conn", "3"]),
    ];
    for (name, extra) in cases {
        let out = dir.join(name);
        let output = run(target, &cert, &out, extra);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(exit::OK), "{name}: {stderr}");
        let report = only_report(&out).expect("a report");
        assert_eq!(report.configuration.mode, Mode::Tls);
        let r = &report.results;
        assert!(!report.partial, "{name}: {:?}", report.partial_reason);
        assert_eq!(r.errors_total, 0, "{name}: {:?}", r.errors);
        assert!(r.requests > 0, "{name}: no echo");
        if name == "churn" {
            assert!(r.handshakes > 4, "{name}: {} handshakes", r.handshakes);
            assert!(r.handshakes_per_second > 0.0);
            assert!(r.connections.closed > 0, "{name}: no clean close");
        }
    }
}

#[test]
fn tls_refuses_a_server_whose_certificate_is_not_the_pinned_one() {
    if !common::uring_available() {
        return;
    }
    let dir = fresh_dir("tls-wrong-cert");
    let target = start_reference(&dir.join("reference.crt"));
    // Another certificate, as another server would have.
    let other = dir.join("other.crt");
    let (_, pem) = reference::server_config().unwrap();
    std::fs::write(&other, pem).unwrap();
    let out = dir.join("out");
    let output = run(target, &other, &out, &["--clients", "2"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(exit::PARTIAL), "{stderr}");
    assert!(
        stderr.contains("the TLS handshake with")
            && stderr.contains("is not the one in --server-cert"),
        "{stderr}"
    );
    let report = only_report(&out).expect("a partial report");
    assert_eq!(report.results.errors.handshake, 2);
    assert_eq!(report.results.connections.established, 0);

    // A file without a certificate: refused before any connection, naming the file.
    let output = run(target, &dir.join("reference.crt.missing"), &out, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(exit::CANNOT_START), "{stderr}");
    assert!(stderr.contains("cannot read --server-cert"), "{stderr}");
}
