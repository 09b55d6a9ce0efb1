//! A real `stcp-server` process for fault tests: the already-built binary (tests do not run
//! cargo), started on ephemeral loopback ports, its stderr collected, signalled, and killed if a
//! test fails half way.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::server_bin;

/// A running `stcp-server` process.
pub struct ServerProcess {
    child: Child,
    pub stcp: SocketAddr,
    pub tcp: SocketAddr,
    /// `<key>.pub`, which the load generator pins with --server-key.
    pub public_key_file: PathBuf,
    /// Every stderr line so far.
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

fn addr_after(line: &str, label: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(label)? + label.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

impl ServerProcess {
    /// Starts the server with a key in `dir`, 2 workers, a stats line every second, and `extra`
    /// arguments; returns once it printed its addresses.
    pub fn start(dir: &Path, extra: &[&str]) -> ServerProcess {
        let key = dir.join("server.key");
        let mut child = Command::new(server_bin())
            .args(["--listen", "127.0.0.1:0", "--tcp-listen", "127.0.0.1:0"])
            .args(["--cores", "2", "--stats"])
            .arg("--key")
            .arg(&key)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stcp-server");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut server = ServerProcess {
            child,
            stcp: SocketAddr::from(([0, 0, 0, 0], 0)),
            tcp: SocketAddr::from(([0, 0, 0, 0], 0)),
            public_key_file: PathBuf::from(format!("{}.pub", key.display())),
            lines,
            reader: Some(reader),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = server
                .lines
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| Some((addr_after(l, "STCP ")?, addr_after(l, "| TCP ")?)));
            if let Some((stcp, tcp)) = found {
                server.stcp = stcp;
                server.tcp = tcp;
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("stcp-server exited at start ({status}): {:?}", server.lines);
            }
            assert!(Instant::now() < deadline, "stcp-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Frames echoed so far, as the once-a-second stats lines tell (sum of their rates).
    pub fn frames(&self) -> u64 {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| {
                let before = &l[..l.find(" frames/s")?];
                before.rsplit(' ').next()?.parse::<f64>().ok()
            })
            .sum::<f64>() as u64
    }

    /// Sends `signal` to the server process.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(r, 0, "kill({signal})");
    }

    /// Waits (at most `bound`) for the server to exit; returns its exit code and stderr.
    pub fn wait_exit(&mut self, bound: Duration) -> (i32, String) {
        let t0 = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                t0.elapsed() < bound,
                "stcp-server did not exit within {bound:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let text = self.lines.lock().unwrap().join("\n");
        (status.code().unwrap_or(-1), text)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
