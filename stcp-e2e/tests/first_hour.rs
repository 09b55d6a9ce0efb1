//! What a new user meets in the first hour, against the built binaries: each rough edge of
//! issue 15 and each class of message a user can reach (one line naming the cause and what to
//! do, and the documented exit status). Every run is small and bounded in time.

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{fresh_dir, loadgen, only_report, server_bin};
use stcp_loadgen::run::exit;

/// Longest any command here may run.
const BOUND: Duration = Duration::from_secs(60);

/// Runs `cmd` to its end (killing it after [`BOUND`]) and returns what it printed.
fn run_bounded(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = pipe_reader(child.stdout.take());
    let err = pipe_reader(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn pipe_reader(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        bytes
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The stderr lines of `out` that start with `prefix` (the binary's own messages).
fn lines_of<'a>(stderr: &'a str, prefix: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// Starts the child with an open-file limit of `soft`/`hard`.
fn with_nofile(cmd: &mut Command, soft: u64, hard: u64) -> &mut Command {
    // SAFETY: the closure runs in the child between fork and exec and only calls setrlimit,
    // which is async-signal-safe, on a value on its own stack.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

fn no_report_in(dir: &Path) {
    assert!(only_report(dir).is_none(), "a report in {}", dir.display());
}

/// A server process killed when the test ends, its stderr kept.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---- 1. File descriptors ----------------------------------------------------------------------

#[test]
fn a_run_that_cannot_fit_the_open_file_limit_is_refused_before_connecting() {
    if !common::uring_available() {
        return;
    }
    let out = fresh_dir("nofile-refused");
    let output = run_bounded(
        with_nofile(&mut loadgen(), 128, 128)
            .args(["--mode", "tcp", "--clients", "100", "--duration", "1s"])
            .arg("--out")
            .arg(&out),
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(exit::CANNOT_START), "{stderr}");
    let ours = lines_of(&stderr, "stcp-loadgen:");
    assert_eq!(ours.len(), 1, "one line: {stderr}");
    let line = ours[0];
    for part in [
        "--clients 100 needs about",
        "100 client sockets + 100 for the embedded server's side",
        "but the limit is 128 (hard limit 128)",
        "ulimit -n",
        "or fewer",
        "--target",
    ] {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
    assert!(!stderr.contains("started an embedded"), "{stderr}");
    no_report_in(&out);
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    if !common::uring_available() {
        return;
    }
    // 150 clients need about 340 descriptors with the embedded server: over the soft limit,
    // under the hard one.
    let out = fresh_dir("nofile-raised");
    let output = run_bounded(
        with_nofile(&mut loadgen(), 64, 1024)
            .args(["--mode", "tcp", "--clients", "150", "--threads", "1"])
            .args(["--duration", "500ms", "--warmup", "0s", "--quiet", "--out"])
            .arg(&out),
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(exit::OK), "{stderr}");
    let report = only_report(&out).expect("a report");
    assert_eq!(report.results.connections.established, 150);
    assert_eq!(
        report.results.errors_total, 0,
        "{:?}",
        report.results.errors
    );
}

#[test]
fn the_server_warns_when_the_limit_cannot_hold_max_conns() {
    let dir = fresh_dir("nofile-server");
    let mut cmd = Command::new(server_bin());
    with_nofile(&mut cmd, 200, 200)
        .args(["--listen", "127.0.0.1:0", "--tcp-listen", "none"])
        .args([
            "--cores",
            "1",
            "--max-conns",
            "10000",
            "--no-stats",
            "--io",
            "epoll",
        ])
        .arg("--key")
        .arg(dir.join("server.key"))
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Server(cmd.spawn().expect("spawn stcp-server"));
    let stderr = read_until(&mut server, "workers on");
    let warnings = lines_of(&stderr, "stcp-server: warning:");
    assert_eq!(warnings.len(), 1, "{stderr}");
    for part in [
        "--max-conns 10000 needs about",
        "the limit is 200 (hard limit 200)",
        "beyond about",
        "ulimit -n",
        "lower --max-conns",
    ] {
        assert!(
            warnings[0].contains(part),
            "{part:?} not in {}",
            warnings[0]
        );
    }
}

/// Reads the server's stderr until a line contains `marker` (it started); returns all of it.
fn read_until(server: &mut Server, marker: &str) -> String {
    use std::io::BufRead;
    let stderr = server.0.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut all = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                all.push_str(&line);
                all.push('\n');
                if line.contains(marker) {
                    return all;
                }
            }
            Err(_) => panic!("no line with {marker:?}; stderr so far:\n{all}"),
        }
    }
}

// ---- 5. A refused or absent server ------------------------------------------------------------

/// A loopback port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_refused_server_is_one_line_and_no_table_of_zeros() {
    if !common::uring_available() {
        return;
    }
    let target = format!("127.0.0.1:{}", closed_port());
    let key = "11".repeat(32);
    for (mode, json) in [("tcp", false), ("stcp", true)] {
        let out = fresh_dir("refused");
        let mut cmd = loadgen();
        cmd.env_remove("RUST_LOG")
            .args(["--target", &target, "--mode", mode, "--clients", "20"])
            .args([
                "--threads",
                "2",
                "--duration",
                "1s",
                "--warmup",
                "0s",
                "--out",
            ])
            .arg(&out);
        if mode == "stcp" {
            cmd.args(["--server-key", &key]);
        }
        if json {
            cmd.arg("--json");
        }
        let output = run_bounded(&mut cmd);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert_eq!(output.status.code(), Some(exit::PARTIAL), "{stderr}");
        let expected =
            format!("stcp-loadgen: connection refused by {target}: is stcp-server running there?");
        assert_eq!(
            stderr
                .lines()
                .filter(|l| l.contains("connection refused"))
                .collect::<Vec<_>>(),
            [expected.as_str()],
            "the cause once, nothing per connection:\n{stderr}"
        );
        assert!(!stderr.contains("WARN"), "{stderr}");
        let human = if json { &stderr } else { &stdout };
        assert!(
            !human.contains("| Payload") && !human.contains("0.0 us"),
            "no table of zeros:\n{human}"
        );
        assert!(
            human.contains("PARTIAL RUN: no connection could be set up"),
            "{human}"
        );
        let report = only_report(&out).expect("the partial report is still written");
        assert!(report.partial);
        assert_eq!(report.results.errors.connect, 20);
        assert_eq!(report.results.connections.established, 0);
        if json {
            let printed: stcp_loadgen::report::Report =
                serde_json::from_str(&stdout).expect("the JSON report on stdout");
            assert_eq!(printed, report);
        }
    }
}
