//! A steady load for the hostile matrix: an stcp-loadgen process keeping persistent, verified
//! echo traffic on a server, stopped with SIGINT (its Ctrl-C) to collect its report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use stcp_loadgen::report::Report;
use stcp_loadgen::run::exit;

use crate::common::{loadgen, only_report};

/// Longest wait for the load generator to stop after Ctrl-C.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running load generator (killed if the test fails before `finish`).
pub struct SteadyLoad {
    child: Option<Child>,
    out: PathBuf,
    stderr: PathBuf,
}

impl SteadyLoad {
    /// Starts `clients` connections of `mode` to `target` (STCP: `keys` = server key hex and PSK
    /// file), `payload` bytes a request, writing its report into a directory in `dir`.
    pub fn start(
        mode: &str,
        clients: u64,
        target: SocketAddr,
        keys: Option<(&str, &Path)>,
        payload: &str,
        dir: &Path,
    ) -> SteadyLoad {
        let out = dir.join(format!("steady-{mode}"));
        let stderr = dir.join(format!("steady-{mode}.stderr"));
        let mut cmd = loadgen();
        cmd.env("RUST_LOG", "warn")
            .args(["--mode", mode, "--target", &target.to_string()])
            .args(["--payload", payload, "--clients", &clients.to_string()])
            .args(["--threads", "1", "--duration", "600s", "--warmup", "0s"])
            .args(["--timeout", "30s", "--quiet", "--out"])
            .arg(&out);
        if let Some((key, psk)) = keys {
            cmd.args(["--server-key", key]).arg("--psk").arg(psk);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn stcp-loadgen");
        SteadyLoad {
            child: Some(child),
            out,
            stderr,
        }
    }

    /// Ctrl-C, then its report (partial: interrupted).
    pub fn finish(mut self) -> Report {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) on our own child's pid, not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let t0 = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if t0.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the steady load did not stop after Ctrl-C");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        assert_eq!(status.code(), Some(exit::PARTIAL), "steady load:\n{stderr}");
        only_report(&self.out).unwrap_or_else(|| panic!("no report; stderr:\n{stderr}"))
    }
}

impl Drop for SteadyLoad {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
