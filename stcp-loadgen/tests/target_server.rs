//! With --target, in STCP mode and no --server-key, the key a local stcp-server wrote
//! (`./stcp-server.key.pub`) is pinned; without that file the run refuses to start.

mod common;

use common::{fresh_dir, loadgen, only_report};
use stcp_loadgen::run::exit;
use stcp_server::{Config, Server};

#[test]
fn pins_the_key_file_a_local_server_wrote() {
    let dir = fresh_dir("keyfile");
    let (keypair, created) =
        stcp_proto::load_or_create_keypair(&dir.join("stcp-server.key")).unwrap();
    assert!(created);
    let mut config = Config::ephemeral(keypair);
    config.cores = 1;
    config.pin_cores = false;
    let server = Server::start(config).unwrap();
    let target = server.stcp_addr().unwrap().to_string();
    let output = loadgen()
        .current_dir(&dir)
        .args([
            "--target",
            &target,
            "--clients",
            "2",
            "--duration",
            "500ms",
            "--warmup",
            "0s",
            "--quiet",
        ])
        .args(["--out", "out"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = only_report(&dir.join("out")).unwrap();
    assert!(!report.configuration.embedded_server);
    assert_eq!(report.environment.pinning.server_cores, None);
    assert_eq!(report.results.server_cpu, None);
    assert_eq!(report.configuration.busy_poll_us, 0.0);
    assert_eq!(
        report.configuration.server_busy_poll_us, None,
        "an external server's busy poll is not known"
    );
    assert_eq!(report.results.errors_total, 0);
    assert!(report.results.requests > 0);

    // Elsewhere, with no key file and no --server-key, there is nothing to pin.
    let elsewhere = fresh_dir("nokey");
    let output = loadgen()
        .current_dir(&elsewhere)
        .args([
            "--target",
            &target,
            "--duration",
            "500ms",
            "--quiet",
            "--out",
            "out",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(exit::CANNOT_START));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--server-key"));
    server.stop();
    server.join().unwrap();
}
