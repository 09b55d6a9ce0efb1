//! The `stcp-server` binary: key files, keygen, --help, and SIGTERM (authenticated close on every
//! STCP connection, exit 0 within a second or two).

mod common;

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::*;
use stcp_proto::{CryptoBackend, Event};

const BIN: &str = env!("CARGO_BIN_EXE_stcp-server");

fn tmp_dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("stcp-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Kills the child if a test fails half way.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn addr_after(line: &str, label: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(label)? + label.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn start_binary(
    dir: &std::path::Path,
    io: &str,
) -> (Guard, SocketAddr, SocketAddr, mpsc::Receiver<String>) {
    let child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tcp-listen",
            "127.0.0.1:0",
            "--cores",
            "2",
            "--no-stats",
        ])
        .args(["--io", io])
        .arg("--key")
        .arg(dir.join("server.key"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stcp-server");
    let mut guard = Guard(child);
    let stderr = guard.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("startup line");
        if let (Some(stcp), Some(tcp)) = (addr_after(&line, "STCP "), addr_after(&line, "| TCP ")) {
            return (guard, stcp, tcp, rx);
        }
    }
}

fn sigterm_closes_every_connection_and_exits_0(io: &str) {
    let dir = tmp_dir(&format!("sigterm-{io}"));
    let (mut guard, stcp, tcp, lines) = start_binary(&dir, io);
    let key = dir.join("server.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let public = stcp_proto::load_public_key(dir.join("server.key.pub").to_str().unwrap()).unwrap();

    let cfg = client_config(public, None, CryptoBackend::AwsLc);
    let mut clients: Vec<_> = (0..3)
        .map(|_| StcpClient::connect(stcp, &cfg).expect("handshake"))
        .collect();
    for c in &mut clients {
        c.send(b"hello").unwrap();
        assert_eq!(c.recv_frame().unwrap(), b"hello");
    }
    let mut t = tcp_connect(tcp);
    t.write_all(&frame(b"raw")).unwrap();
    assert_eq!(read_tcp_frame(&mut t).unwrap(), b"raw");

    let t0 = Instant::now();
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(guard.0.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    for c in &mut clients {
        assert_eq!(
            c.next_event().unwrap(),
            Event::Closed,
            "no authenticated close"
        );
        assert!(closed_by_peer(&mut c.stream));
    }
    assert!(closed_by_peer(&mut t));
    let status = loop {
        if let Some(s) = guard.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "still running {:?} after SIGTERM",
            t0.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = t0.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("summary:")),
        "no summary in {rest:?}"
    );
}

#[test]
fn sigterm_uring() {
    if uring_ok(stcp_server::IoBackend::Uring) {
        sigterm_closes_every_connection_and_exits_0("uring");
    }
}

#[test]
fn sigterm_epoll() {
    sigterm_closes_every_connection_and_exits_0("epoll");
}

#[test]
fn keygen_writes_a_private_key_0600_and_prints_the_public_key() {
    let dir = tmp_dir("keygen");
    let path = dir.join("k");
    let out = Command::new(BIN).arg("keygen").arg(&path).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let public = std::fs::read_to_string(dir.join("k.pub")).unwrap();
    assert_eq!(printed.trim(), public.trim());
    assert_eq!(printed.trim().len(), 64);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Refuses to overwrite.
    assert!(!Command::new(BIN)
        .arg("keygen")
        .arg(&path)
        .output()
        .unwrap()
        .status
        .success());
}

#[test]
fn help_shows_examples_and_bad_flags_fail() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("Examples:") && help.contains("--tcp-listen"),
        "{help}"
    );
    let bad = Command::new(BIN)
        .args(["--max-frame", "12q"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown unit"));
}

#[test]
fn sigterm_stops_the_server_even_when_its_stderr_is_gone() {
    let dir = tmp_dir("stderr-gone");
    // --stats: a stats line a second keeps meeting the closed pipe before the signal comes.
    let child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--tcp-listen",
            "none",
            "--cores",
            "1",
        ])
        .args(["--stats", "--io", "epoll", "--key"])
        .arg(dir.join("server.key"))
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stcp-server");
    let mut guard = Guard(child);
    let mut stderr = BufReader::new(guard.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("workers on") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no start line");
    }
    // Nobody reads the server's stderr any more: its next lines (stats, then the exit summary)
    // meet a closed pipe.
    drop(stderr);
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(guard.0.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let t0 = Instant::now();
    while guard.0.try_wait().unwrap().is_none() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "SIGTERM did not stop a server whose stderr is closed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // A lost stats line or summary is no failure: no panic (status 101; a panicking stats
    // thread would make the exit status an error too), a clean stop.
    let status = guard.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn metrics_flag_serves_prometheus_text_until_sigterm() {
    let dir = tmp_dir("metrics");
    let child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--tcp-listen", "127.0.0.1:0"])
        .args(["--metrics", "127.0.0.1:0", "--cores", "1", "--no-stats"])
        .args(["--io", "epoll", "--key"])
        .arg(dir.join("server.key"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stcp-server");
    let mut guard = Guard(child);
    let mut stderr = BufReader::new(guard.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("workers on") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no start line");
    }
    // "... | metrics http://127.0.0.1:PORT/metrics"
    let metrics: SocketAddr = line
        .split("metrics http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no metrics address in {line:?}"));
    let tcp = addr_after(&line, "| TCP ").expect("TCP address");
    let mut t = tcp_connect(tcp);
    t.write_all(&frame(b"counted")).unwrap();
    assert_eq!(read_tcp_frame(&mut t).unwrap(), b"counted");

    // The worker counts the frame once its echo is written, which the client may see first:
    // scrape until the count shows (bounded).
    let deadline = Instant::now() + IO_TIMEOUT;
    let answer = loop {
        let mut s = std::net::TcpStream::connect(metrics).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut s, &mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        if answer.contains("\nstcp_frames_echoed_total{worker=\"0\"} 1\n") {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "the echo is not counted: {answer}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(answer.contains("io_backend=\"epoll\""), "{answer}");
    drop(t);

    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(guard.0.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            break status;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "still running");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
    assert!(
        std::net::TcpStream::connect(metrics).is_err(),
        "metrics served after exit"
    );

    // One port for two listeners is refused as bad usage.
    let clash = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:17443",
            "--metrics",
            "127.0.0.1:17443",
        ])
        .arg("--key")
        .arg(dir.join("server.key"))
        .output()
        .unwrap();
    assert_eq!(clash.status.code(), Some(2), "{clash:?}");
    assert!(
        String::from_utf8_lossy(&clash.stderr).contains("--listen and --metrics are both"),
        "{clash:?}"
    );
}
