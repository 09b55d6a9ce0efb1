//! Helpers shared by the integration tests: run the built binary into a fresh directory and read
//! its report; tiny std::net echo servers that the tests control.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stcp_loadgen::report::Report;

/// A fresh, empty directory under the system temp dir.
pub fn fresh_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "stcp-loadgen-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn loadgen() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stcp-loadgen"));
    c.env("RUST_LOG", "error");
    c
}

/// Runs the binary with `args` writing into `out`; returns its output and the one report written.
pub fn run(args: &[&str], out: &Path) -> (Output, Report) {
    let output = loadgen()
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--quiet")
        .output()
        .unwrap();
    let report = only_report(out).unwrap_or_else(|| {
        panic!(
            "no report in {} (status {:?}), stderr:\n{}",
            out.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

/// The single report in `dir`.
pub fn only_report(dir: &Path) -> Option<Report> {
    let files: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert!(files.len() <= 1, "more than one report: {files:?}");
    Some(Report::read(files.first()?).expect("a valid report"))
}

/// A framed echo server on 127.0.0.1 (thread per connection) that the test controls:
/// it can alter one byte of the `corrupt_nth` echoed frame, and `kill` shuts every connection
/// and the listener down abruptly, like a server process dying.
pub struct TestEchoServer {
    pub addr: String,
    killed: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl TestEchoServer {
    pub fn start(corrupt_nth: Option<usize>) -> TestEchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let killed = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let frames = Arc::new(AtomicUsize::new(0));
        let (k, s) = (killed.clone(), streams.clone());
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !k.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream.set_nodelay(true).unwrap();
                        s.lock().unwrap().push(stream.try_clone().unwrap());
                        let frames = frames.clone();
                        std::thread::spawn(move || echo_frames(stream, frames, corrupt_nth));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TestEchoServer {
            addr,
            killed,
            streams,
        }
    }

    /// Stops accepting and cuts every connection at once.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        for s in self.streams.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for TestEchoServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn echo_frames(mut stream: TcpStream, frames: Arc<AtomicUsize>, corrupt_nth: Option<usize>) {
    let mut header = [0u8; 4];
    let mut payload = Vec::new();
    loop {
        if stream.read_exact(&mut header).is_err() {
            return;
        }
        let len = u32::from_be_bytes(header) as usize;
        if len > 1 << 20 {
            return;
        }
        payload.resize(len, 0);
        if stream.read_exact(&mut payload).is_err() {
            return;
        }
        let n = frames.fetch_add(1, Ordering::SeqCst);
        if Some(n) == corrupt_nth && !payload.is_empty() {
            let at = payload.len() / 2;
            payload[at] ^= 0x01;
        }
        let mut frame = header.to_vec();
        frame.extend_from_slice(&payload);
        if stream.write_all(&frame).is_err() {
            return;
        }
    }
}
