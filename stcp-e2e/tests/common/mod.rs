//! Helpers shared by the end-to-end tests: the already-built binaries (tests do not run cargo),
//! fresh directories, the one report a load generator wrote, and the loud io_uring skip.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use stcp_loadgen::report::Report;

/// The binary `name` of this workspace: `$<env>` when set, else the one cargo built into this
/// test's target profile directory (`target/<profile>/<name>`, beside `target/<profile>/deps/`
/// that holds the test executable). `cargo test --workspace` builds every binary before any test
/// runs; when it is missing the test fails with one line saying how to build it.
pub fn built_bin(name: &str, env: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env}={} is not a file", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lies in target/<profile>/deps/");
    let bin = profile_dir.join(name);
    assert!(
        bin.is_file(),
        "no {name} binary at {}: build it first with `cargo build -p stcp-server -p stcp-loadgen` \
         (same profile as the tests), or run `cargo test --workspace`, which builds it, or set {env}",
        bin.display()
    );
    bin
}

/// The `stcp-loadgen` binary ($STCP_LOADGEN_BIN, else the built one).
pub fn loadgen_bin() -> PathBuf {
    built_bin("stcp-loadgen", "STCP_LOADGEN_BIN")
}

/// The `stcp-server` binary ($STCP_SERVER_BIN, else the built one).
pub fn server_bin() -> PathBuf {
    built_bin("stcp-server", "STCP_SERVER_BIN")
}

/// A fresh, empty directory under the system temp dir.
pub fn fresh_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "stcp-e2e-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn loadgen() -> Command {
    let mut c = Command::new(loadgen_bin());
    c.env("RUST_LOG", "error");
    c
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

/// Whether this io_uring test can run here. Where io_uring is unavailable it says so on stderr
/// (`SKIPPED: <test>: io_uring unavailable here: <cause>`) and returns false, or panics when
/// `STCP_REQUIRE_IO_URING=1` (CI, which has io_uring, must not skip).
pub fn uring_available() -> bool {
    let thread = std::thread::current();
    stcp_engine::io_uring_or_skip(thread.name().unwrap_or("<unnamed test>"))
}
