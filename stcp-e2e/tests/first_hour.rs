//! What a new user meets in the first hour, against the built binaries: each rough edge of
//! issue 15 and each class of message a user can reach (one line naming the cause and what to
//! do, and the documented exit status). Every run is small and bounded in time.

mod common;

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
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
    let status = wait_bounded(&mut child, cmd);
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Waits for `child` (started from `cmd`) to end, killing it after [`BOUND`].
fn wait_bounded(child: &mut Child, cmd: &Command) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
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
fn a_closed_output_pipe_loses_lines_not_the_run() {
    if !common::uring_available() {
        return;
    }
    // `stcp-loadgen ... 2>&1 | head -1`: the reader is gone before most lines are printed.
    // eprintln!/println! would panic (status 101) before the report is written.
    let out = fresh_dir("closed-pipes");
    let mut cmd = loadgen();
    cmd.args(["--mode", "tcp", "--clients", "2", "--threads", "1"])
        .args(["--duration", "300ms", "--warmup", "0s", "--out"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = wait_bounded(&mut child, &cmd);
    assert_eq!(status.code(), Some(exit::OK), "{status:?}");
    let report = only_report(&out).expect("the report is written although nobody reads");
    assert_eq!(report.results.errors_total, 0);
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

/// A loopback port that refuses connections for as long as the returned socket lives: bound, so
/// no other test's listener or connection can take the port, but not listening, so a SYN to it
/// is answered with a reset. (A port bound and closed again could be reused before the run.)
fn refusing_port() -> (socket2::Socket, u16) {
    let addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&addr.into()).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

#[test]
fn a_refused_server_is_one_line_and_no_table_of_zeros() {
    if !common::uring_available() {
        return;
    }
    let (_refusing, port) = refusing_port();
    let target = format!("127.0.0.1:{port}");
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

// ---- 3. Host names and IPv6 -------------------------------------------------------------------

/// Whether this machine has an IPv6 loopback; says why the test skips when it has not.
fn ipv6_loopback(test: &str) -> bool {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIPPED: {test}: no IPv6 loopback here: cannot bind [::1]: {e}");
            false
        }
    }
}

/// The address after `label` in a line.
fn addr_after(line: &str, label: &str) -> Option<std::net::SocketAddr> {
    let rest = &line[line.find(label)? + label.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn ipv6_loopback_end_to_end() {
    if !ipv6_loopback("ipv6_loopback_end_to_end") || !common::uring_available() {
        return;
    }
    // A server process on [::1] only, and a load against it in both modes.
    let dir = fresh_dir("ipv6");
    let key = dir.join("server.key");
    let mut cmd = Command::new(server_bin());
    cmd.args(["--listen", "[::1]:0", "--tcp-listen", "[::1]:0"])
        .args(["--cores", "1", "--no-stats"])
        .arg("--key")
        .arg(&key)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Server(cmd.spawn().expect("spawn stcp-server"));
    let started = read_until(&mut server, "workers on");
    let line = started.lines().find(|l| l.contains("workers on")).unwrap();
    let (stcp, tcp) = (
        addr_after(line, "STCP ").expect("STCP address"),
        addr_after(line, "| TCP ").expect("TCP address"),
    );
    assert!(stcp.is_ipv6() && tcp.is_ipv6(), "{line}");
    let public = dir.join("server.key.pub");
    for (mode, target) in [("stcp", stcp), ("tcp", tcp)] {
        let out = fresh_dir("ipv6-load");
        let mut cmd = loadgen();
        cmd.args(["--target", &target.to_string(), "--mode", mode])
            .args(["--clients", "2", "--threads", "1", "--duration", "500ms"])
            .args(["--warmup", "0s", "--quiet", "--out"])
            .arg(&out);
        if mode == "stcp" {
            cmd.arg("--server-key").arg(&public);
        }
        let output = run_bounded(&mut cmd);
        assert_eq!(
            output.status.code(),
            Some(exit::OK),
            "{mode}: {}",
            text(&output.stderr)
        );
        let report = only_report(&out).unwrap();
        assert_eq!(report.configuration.target, target.to_string());
        assert_eq!(report.results.errors_total, 0);
        assert!(report.results.requests > 0);
    }

    // The embedded server on ::1 (--listen), in STCP mode.
    let out = fresh_dir("ipv6-embedded");
    let output = run_bounded(
        loadgen()
            .args(["--listen", "::1", "--clients", "2", "--duration", "500ms"])
            .args(["--warmup", "0s", "--quiet", "--out"])
            .arg(&out),
    );
    assert_eq!(
        output.status.code(),
        Some(exit::OK),
        "{}",
        text(&output.stderr)
    );
    let report = only_report(&out).unwrap();
    let target: std::net::SocketAddr = report.configuration.target.parse().unwrap();
    assert!(target.ip().is_loopback() && target.is_ipv6(), "{target}");
    assert_eq!(report.results.errors_total, 0);
    assert!(report.results.requests > 0);
}

#[test]
fn a_host_name_is_tried_at_each_of_its_addresses() {
    // The name must resolve to an IPv6 and an IPv4 loopback address for this to say anything.
    let test = "a_host_name_is_tried_at_each_of_its_addresses";
    if !ipv6_loopback(test) || !common::uring_available() {
        return;
    }
    use std::net::ToSocketAddrs;
    let Some(name) = ["localhost", "ip6-localhost", "localhost6"]
        .into_iter()
        .find(|n| {
            let addrs: Vec<_> = format!("{n}:1")
                .to_socket_addrs()
                .map(|a| a.collect())
                .unwrap_or_default();
            addrs.iter().any(|a| a.is_ipv6() && a.ip().is_loopback())
                && addrs.iter().any(|a| a.is_ipv4() && a.ip().is_loopback())
        })
    else {
        eprintln!(
            "SKIPPED: {test}: no host name here resolves to both ::1 and 127.0.0.1 \
             (stcp-loadgen's tests/addresses.rs covers the fallback with addresses)"
        );
        return;
    };
    // A server on [::1] only: whichever family the name lists first, the run gets through.
    let dir = fresh_dir("hostname");
    let mut cmd = Command::new(server_bin());
    cmd.args([
        "--listen",
        "none",
        "--tcp-listen",
        "[::1]:0",
        "--cores",
        "1",
    ])
    .args(["--no-stats", "--key"])
    .arg(dir.join("server.key"))
    .env("RUST_LOG", "error")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut server = Server(cmd.spawn().expect("spawn stcp-server"));
    let started = read_until(&mut server, "workers on");
    let line = started.lines().find(|l| l.contains("workers on")).unwrap();
    let port = addr_after(line, "| TCP ").expect("TCP address").port();
    let out = fresh_dir("hostname-load");
    let output = run_bounded(
        loadgen()
            .args(["--target", &format!("{name}:{port}"), "--mode", "tcp"])
            .args(["--clients", "2", "--threads", "1", "--duration", "500ms"])
            .args(["--warmup", "0s", "--quiet", "--out"])
            .arg(&out),
    );
    assert_eq!(
        output.status.code(),
        Some(exit::OK),
        "{}",
        text(&output.stderr)
    );
    let report = only_report(&out).unwrap();
    assert_eq!(report.configuration.target, format!("[::1]:{port}"));
}

// ---- 6. io_uring refused by a seccomp profile --------------------------------------------------

/// Starts the child under a seccomp filter that answers `io_uring_setup` with EPERM, as a
/// container runtime's default profile does; every other system call is allowed.
fn without_io_uring(cmd: &mut Command) -> &mut Command {
    // SAFETY: the closure runs in the child between fork and exec; it builds the filter on its
    // own stack and makes two prctl calls, both async-signal-safe, allocating nothing.
    unsafe {
        cmd.pre_exec(|| {
            const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
            const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
            const RET_K: u16 = 0x06; // BPF_RET | BPF_K
            let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
            let mut filter = [
                op(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
                op(JEQ_K, 0, 1, libc::SYS_io_uring_setup as u32),
                op(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
                op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
            ];
            let program = libc::sock_fprog {
                len: filter.len() as libc::c_ushort,
                filter: filter.as_mut_ptr(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Whether a seccomp filter can be installed here; says why the test skips when it cannot.
fn seccomp_works(test: &str) -> bool {
    match without_io_uring(&mut Command::new("/bin/true")).status() {
        Ok(s) if s.success() => true,
        other => {
            eprintln!("SKIPPED: {test}: cannot install a seccomp filter here: {other:?}");
            false
        }
    }
}

#[test]
fn io_uring_refused_by_seccomp_names_the_cause_and_the_way_out() {
    if !seccomp_works("io_uring_refused_by_seccomp_names_the_cause_and_the_way_out") {
        return;
    }
    let dir = fresh_dir("seccomp");
    let server = |io: &str| {
        let mut cmd = Command::new(server_bin());
        without_io_uring(&mut cmd)
            .args(["--listen", "127.0.0.1:0", "--tcp-listen", "none"])
            .args(["--cores", "1", "--no-stats", "--io", io, "--key"])
            .arg(dir.join("server.key"))
            .env_remove("RUST_LOG");
        cmd
    };
    // --io uring: refused at start, one line, exit 4.
    let output = run_bounded(&mut server("uring"));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    let errors = lines_of(&stderr, "stcp-server: error:");
    assert_eq!(errors.len(), 1, "{stderr}");
    for part in ["EPERM", "seccomp", "--io epoll"] {
        assert!(errors[0].contains(part), "{part:?} not in {}", errors[0]);
    }
    // --io auto: one warning, then it serves on epoll.
    let mut cmd = server("auto");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut running = Server(cmd.spawn().expect("spawn stcp-server"));
    let started = read_until(&mut running, "workers on");
    assert!(
        started.contains("falling back to epoll") && started.contains("workers on epoll"),
        "{started}"
    );
    drop(running);
    // The load generator needs io_uring: refused before anything starts, one line, exit 4.
    let out = fresh_dir("seccomp-loadgen");
    let output = run_bounded(
        without_io_uring(&mut loadgen())
            .args(["--mode", "tcp", "--duration", "1s", "--out"])
            .arg(&out),
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(exit::CANNOT_START), "{stderr}");
    assert_eq!(
        lines_of(&stderr, "stcp-loadgen:"),
        [
            "stcp-loadgen: io_uring is unavailable here: io_uring_setup was refused with EPERM \
             (a seccomp profile, e.g. a container's, blocks io_uring); the load generator needs \
             it: run on the host, or in a container whose seccomp profile allows the io_uring \
             syscalls"
        ],
        "{stderr}"
    );
    no_report_in(&out);
}

// ---- 2. Colour only on a terminal -------------------------------------------------------------

/// A pseudo-terminal: the child writes to `follower` (its stderr), the test reads `leader`.
struct Pty {
    leader: std::fs::File,
    follower: std::fs::File,
}

fn open_pty() -> std::io::Result<Pty> {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt returns a new descriptor (or -1) that we own from here on; grantpt,
    // unlockpt and ptsname_r only act on it and write into `name`, a buffer of the length given.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let leader = std::fs::File::from_raw_fd(fd);
        let mut name = [0 as libc::c_char; 128];
        if libc::grantpt(fd) != 0
            || libc::unlockpt(fd) != 0
            || libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let path = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_string_lossy()
            .into_owned();
        let follower = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(path)?;
        Ok(Pty { leader, follower })
    }
}

/// Runs `cmd` with its stderr on a terminal until a line contains `marker` (or it exits); kills
/// it and returns what it wrote there.
fn stderr_on_a_terminal(cmd: &mut Command, marker: &str) -> String {
    let pty = open_pty().expect("a pseudo-terminal");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.follower))
        .spawn()
        .expect("spawn");
    let (tx, rx) = std::sync::mpsc::channel();
    let mut leader = pty.leader;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // EIO once every writer is gone.
        while let Ok(n) = leader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !text(&seen).contains(marker) && Instant::now() < deadline {
        if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(50)) {
            seen.extend(bytes);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let seen = text(&seen);
    assert!(
        seen.contains(marker),
        "no {marker:?} on the terminal:\n{seen}"
    );
    seen
}

#[test]
fn logs_are_coloured_only_on_a_terminal_and_never_with_no_color() {
    if open_pty().is_err() {
        eprintln!("SKIPPED: logs_are_coloured_only_on_a_terminal_and_never_with_no_color: no pty");
        return;
    }
    let dir = fresh_dir("colour");
    let server = || {
        let mut cmd = Command::new(server_bin());
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--tcp-listen",
            "none",
            "--cores",
            "1",
        ])
        .args(["--no-stats", "--io", "epoll", "--key"])
        .arg(dir.join("server.key"))
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR");
        cmd
    };
    // An INFO line on a terminal is coloured...
    let on_terminal = stderr_on_a_terminal(&mut server(), "workers on");
    assert!(on_terminal.contains("\x1b["), "{on_terminal:?}");
    // ...not with NO_COLOR set...
    let no_color = stderr_on_a_terminal(server().env("NO_COLOR", "1"), "workers on");
    assert!(no_color.contains("INFO"), "{no_color:?}");
    assert!(!no_color.contains('\x1b'), "{no_color:?}");
    // ...and not into a pipe.
    let mut cmd = server();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut piped = Server(cmd.spawn().unwrap());
    let into_pipe = read_until(&mut piped, "workers on");
    assert!(
        into_pipe.contains("INFO") && !into_pipe.contains('\x1b'),
        "{into_pipe:?}"
    );

    // The load generator the same way (its embedded server logs at INFO).
    if !common::uring_available() {
        return;
    }
    let out = fresh_dir("colour-loadgen");
    let load = || {
        let mut cmd = loadgen();
        cmd.args(["--mode", "tcp", "--duration", "200ms", "--warmup", "0s"])
            .args(["--quiet", "--out"])
            .arg(&out)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR");
        cmd
    };
    let on_terminal = stderr_on_a_terminal(&mut load(), "stcp-server started");
    assert!(on_terminal.contains("\x1b["), "{on_terminal:?}");
    let no_color = stderr_on_a_terminal(load().env("NO_COLOR", "1"), "stcp-server started");
    assert!(!no_color.contains('\x1b'), "{no_color:?}");
    let into_pipe = run_bounded(&mut load());
    let stderr = text(&into_pipe.stderr);
    assert!(
        stderr.contains("stcp-server started") && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
}

// ---- 4. More workers than cores ---------------------------------------------------------------

/// The cores this process may run on (its affinity mask).
fn allowed_cores() -> usize {
    // SAFETY: sched_getaffinity writes the cpu_set_t on this stack frame, of the size given.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 0;
        }
        libc::CPU_COUNT(&set) as usize
    }
}

#[test]
fn more_workers_than_cores_is_said_in_one_warning_line() {
    let cores = allowed_cores();
    assert!(cores > 0);
    let dir = fresh_dir("cores");
    let start = |workers: usize| {
        let mut cmd = Command::new(server_bin());
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--tcp-listen",
            "none",
            "--no-stats",
        ])
        .args(["--io", "epoll", "--cores", &workers.to_string(), "--key"])
        .arg(dir.join("server.key"))
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut server = Server(cmd.spawn().expect("spawn stcp-server"));
        read_until(&mut server, "workers on")
    };
    let over = start(cores * 2);
    let warnings = lines_of(&over, "stcp-server: warning:");
    assert_eq!(
        warnings,
        [format!(
            "stcp-server: warning: --cores {} but only {cores} core(s) are available: starting {} \
             workers, up to 2 pinned to each core (workers beyond {cores} add no throughput)",
            cores * 2,
            cores * 2
        )],
        "{over}"
    );
    assert!(
        over.contains(&format!("{} workers on epoll", cores * 2)),
        "{over}"
    );
    let fits = start(cores);
    assert!(
        lines_of(&fits, "stcp-server: warning:").is_empty(),
        "{fits}"
    );
}

// ---- 6. Every message class: one line, the cause, the way out, the documented status -----------

/// Runs `cmd`, expects exit status `status` and exactly one line of its own on stderr (starting
/// with `prefix`) holding every one of `parts`; returns the line.
fn one_line(cmd: &mut Command, status: i32, prefix: &str, parts: &[&str]) -> String {
    let output = run_bounded(cmd);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(status), "{cmd:?}: {stderr}");
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("stcp-server: public key"))
        .collect();
    assert_eq!(ours.len(), 1, "{cmd:?}: one line wanted:\n{stderr}");
    let line = ours[0];
    assert!(line.starts_with(prefix), "{line}");
    for part in parts {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
    line.to_string()
}

fn server_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new(server_bin());
    cmd.args(["--no-stats", "--io", "epoll", "--cores", "1"])
        .current_dir(dir)
        .env("RUST_LOG", "error");
    cmd
}

#[test]
fn bad_sizes_and_durations_are_usage_errors() {
    let dir = fresh_dir("usage");
    for (args, parts) in [
        (
            &["--payload", "12q"][..],
            &["'12q' for '--payload <SIZE>'", "b, k, m or g", "64k"][..],
        ),
        (
            &["--duration", "soon"],
            &["\"soon\" is not a duration", "500ms, 10s, 2m"],
        ),
        (&["--payload", "1.3"], &["not a whole number of bytes"]),
        (&["--clients", "0"], &["'0' for '--clients <N>'"]),
        (
            &["--clent", "3"],
            &["a similar argument exists: '--clients'"],
        ),
        (&["--rate=-5"], &["--rate -5: give a positive number"]),
        (
            &["--listen", "::1", "--target", "[::1]:1"],
            &["cannot be used with"],
        ),
    ] {
        let mut parts = parts.to_vec();
        if args[0] != "--rate=-5" {
            parts.push("; see stcp-loadgen --help");
        }
        one_line(
            loadgen().args(args).current_dir(&dir),
            exit::USAGE,
            "stcp-loadgen: ",
            &parts,
        );
    }
    for (args, parts) in [
        (
            &["--max-frame", "12q"][..],
            &["'12q' for '--max-frame <SIZE>'", "b, k, m or g"][..],
        ),
        (
            &["--idle-timeout", "soon"],
            &["\"soon\" is not a duration", "or off"],
        ),
        (&["--listen", "127.0.0.1"], &["expected IP:PORT or none"]),
        (
            &["--listen", "none", "--tcp-listen", "none"],
            &["nothing to serve"],
        ),
    ] {
        one_line(server_cmd(&dir).args(args), 2, "stcp-server: ", parts);
    }
}

#[test]
fn key_file_errors_name_the_file_and_what_to_do() {
    use std::os::unix::fs::PermissionsExt;
    let dir = fresh_dir("keys");
    let open_psk = dir.join("open.psk");
    std::fs::write(&open_psk, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&open_psk, std::fs::Permissions::from_mode(0o644)).unwrap();
    let garbage = dir.join("garbage.key");
    std::fs::write(&garbage, "not a key\n").unwrap();
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).unwrap();
    let garbage_pub = dir.join("garbage.pub");
    std::fs::write(&garbage_pub, "not a key\n").unwrap();

    // The server: status 4, could not start.
    for (args, parts) in [
        (
            &["--psk", "missing.psk"][..],
            &["--psk missing.psk: no such file", "stcp-server genpsk"][..],
        ),
        (
            &["--psk", "open.psk"],
            &["permissions 0644", "chmod 600 open.psk"],
        ),
        (
            &["--key", "garbage.key"],
            &["--key garbage.key: not a key file", "stcp-server keygen"],
        ),
        (
            &["--key", "no/such/dir/server.key"],
            &["its directory does not exist"],
        ),
    ] {
        one_line(
            server_cmd(&dir).args(args),
            4,
            "stcp-server: error: ",
            parts,
        );
    }
    // A public key file given as the private key.
    let made = run_bounded(
        Command::new(server_bin())
            .arg("keygen")
            .arg(dir.join("s.key")),
    );
    assert!(made.status.success(), "{}", text(&made.stderr));
    one_line(
        server_cmd(&dir).args(["--key", "s.key.pub"]),
        4,
        "stcp-server: error: ",
        &["looks like a public key file", "without .pub"],
    );
    one_line(
        Command::new(server_bin())
            .arg("keygen")
            .arg(dir.join("s.key"))
            .env("RUST_LOG", "error"),
        4,
        "stcp-server: error: ",
        &["already exists", "never overwritten"],
    );

    // The load generator: status 4, could not start, no report.
    let out = dir.join("out");
    for (args, parts) in [
        (
            &["--target", "127.0.0.1:1", "--server-key", "missing.pub"][..],
            &[
                "--server-key missing.pub: neither a file nor 64 hex digits",
                "<key>.pub",
            ][..],
        ),
        (
            &["--target", "127.0.0.1:1", "--server-key", "garbage.pub"],
            &["--server-key garbage.pub: not a key file"],
        ),
        (
            &["--psk", "open.psk"],
            &["--psk open.psk: permissions 0644", "chmod 600 open.psk"],
        ),
        (
            &["--target", "127.0.0.1", "--mode", "tcp"],
            &["not HOST:PORT", "[::1]:7443"],
        ),
    ] {
        one_line(
            loadgen()
                .args(args)
                .arg("--out")
                .arg(&out)
                .current_dir(&dir),
            exit::CANNOT_START,
            "stcp-loadgen: ",
            parts,
        );
    }
    no_report_in(&out);
}

#[test]
fn a_port_in_use_names_the_option_and_the_way_out() {
    let dir = fresh_dir("port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    one_line(
        server_cmd(&dir).args(["--listen", "127.0.0.1:0", "--tcp-listen", &addr]),
        4,
        "stcp-server: error: ",
        &[
            &format!("cannot listen on {addr} (--tcp-listen): the address is in use"),
            "give --tcp-listen another port (or none)",
        ],
    );
    one_line(
        server_cmd(&dir).args(["--listen", &addr, "--tcp-listen", "none"]),
        4,
        "stcp-server: error: ",
        &["(--listen): the address is in use"],
    );
}

#[test]
fn a_report_directory_that_cannot_be_written_is_refused_before_the_run() {
    if !common::uring_available() {
        return;
    }
    let dir = fresh_dir("out");
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let line = one_line(
        loadgen()
            .args(["--mode", "tcp", "--duration", "1s", "--out"])
            .arg(file.join("reports")),
        exit::CANNOT_START,
        "stcp-loadgen: ",
        &["cannot write the report into", "give --out a directory"],
    );
    assert!(!line.contains("embedded"), "{line}");
}

#[test]
fn every_help_shows_and_the_main_ones_list_the_exit_statuses() {
    for (bin, sub) in [
        (server_bin(), None),
        (server_bin(), Some("keygen")),
        (server_bin(), Some("genpsk")),
        (common::loadgen_bin(), None),
        (common::loadgen_bin(), Some("merge")),
        (common::loadgen_bin(), Some("suite")),
        (common::loadgen_bin(), Some("report")),
        (common::loadgen_bin(), Some("stream")),
    ] {
        let mut cmd = Command::new(&bin);
        cmd.args(sub).arg("--help");
        let output = run_bounded(&mut cmd);
        assert!(output.status.success(), "{cmd:?}");
        let help = text(&output.stdout);
        assert!(help.contains("Usage:"), "{cmd:?}:\n{help}");
        if sub.is_none() {
            assert!(
                help.contains("Exit status: 0")
                    && help.contains("4 when it")
                    && help.contains("NO_COLOR"),
                "{cmd:?}:\n{help}"
            );
        }
    }
}

// ---- 7. TLS beside STCP ------------------------------------------------------------------------

/// The server binary's TLS listener: the certificate and key are created on first start (key
/// 0600), a client pinning that certificate file gets its frames echoed, a key file others may
/// read is refused in one line, and `--ktls` fails at start in one line naming the cause (here:
/// the kernel has no TLS ULP, ENOENT; on a kernel with it, that the hand-over is not built).
#[test]
fn tls_certificate_files_echo_and_the_ktls_line() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = fresh_dir("tls");
    let mut cmd = server_cmd(&dir);
    cmd.args(["--listen", "none", "--tcp-listen", "none"])
        .args(["--tls-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Server(cmd.spawn().expect("spawn stcp-server"));
    let stderr = read_until(&mut server, "workers on");
    assert!(
        stderr.contains("TLS certificate ./stcp-server.crt (created"),
        "{stderr}"
    );
    let key = dir.join("stcp-server-cert.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let line = stderr.lines().find(|l| l.contains("workers on")).unwrap();
    let addr = addr_after(line, "TLS ").expect("the TLS address");
    let pem = std::fs::read_to_string(dir.join("stcp-server.crt")).unwrap();
    let cfg = std::sync::Arc::new(stcp_server::tls::pinned_client_config(&pem).unwrap());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let sock = std::net::TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let mut frame = 5u32.to_be_bytes().to_vec();
    frame.extend(b"hello");
    tls.write_all(&frame).unwrap();
    let mut echo = [0u8; 9];
    tls.read_exact(&mut echo).unwrap();
    assert_eq!(&echo[..], &frame[..]);
    drop(tls);
    drop(server);

    // A second start loads the same files.
    let mut again = Command::new(server_bin());
    again
        .args(["--no-stats", "--io", "epoll", "--cores", "1"])
        .args(["--listen", "none", "--tcp-listen", "none"])
        .args(["--tls-listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Server(again.spawn().expect("spawn stcp-server"));
    let stderr = read_until(&mut server, "workers on");
    assert!(stderr.contains("(loaded;"), "{stderr}");
    drop(server);

    let tls_only = ["--listen", "none", "--tcp-listen", "none", "--tls-listen"];
    // --ktls: one line, the cause, status 4.
    let output = run_bounded(
        server_cmd(&dir)
            .args(tls_only)
            .args(["127.0.0.1:0", "--ktls"]),
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    let errors = lines_of(&stderr, "stcp-server: error:");
    assert_eq!(errors.len(), 1, "{stderr}");
    let no_ulp = errors[0].contains("no TLS ULP")
        && errors[0].contains("TCP_ULP")
        && errors[0].contains("No such file or directory");
    let not_built = errors[0].contains("has the TLS ULP") && errors[0].contains("not built");
    assert!(no_ulp || not_built, "{}", errors[0]);
    // --ktls without a TLS listener is bad usage.
    one_line(
        server_cmd(&dir).arg("--ktls"),
        2,
        "stcp-server: ",
        &["--ktls needs a TLS listener"],
    );
    // A certificate key others may read.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = run_bounded(server_cmd(&dir).args(tls_only).arg("127.0.0.1:0"));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    let errors = lines_of(&stderr, "stcp-server: error:");
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("permissions 0644") && errors[0].contains("chmod 600"),
        "{}",
        errors[0]
    );
}
