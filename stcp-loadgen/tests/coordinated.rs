//! `--start-at`: two load generator processes given the same start time against one server
//! measure the same interval, and `merge DIR` adds them up; a start already past, or missed
//! while connecting, is refused before any load. No speed is asserted.

mod common;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{fresh_dir, loadgen, only_report};
use stcp_loadgen::report::Report;
use stcp_loadgen::run::exit;
use stcp_server::{Config, Server};

fn unix_ms_in(ahead: Duration) -> u64 {
    (SystemTime::now() + ahead)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Earliest the measured interval may begin before the intended start, in microseconds, over a
/// wait of `waited`: the engine maps the start onto the monotonic clock reading the wall clock
/// first (a pause between the readings makes it late, never early), then sleeps on the monotonic
/// clock. The two clocks drift apart by at most the kernel's largest slew of the wall clock, 500
/// ppm (adjtimex), plus the microsecond rounding of the report: 1 ms covers both over seconds.
fn early_bound_us(waited: Duration) -> f64 {
    waited.as_secs_f64() * 500e-6 * 1e6 + 1_000.0
}

/// The JSON files in `dir`, in name order.
fn json_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn a_start_already_past_is_refused_before_any_load() {
    let dir = fresh_dir("start-past");
    let out = dir.join("out");
    let past = unix_ms_in(Duration::ZERO) - 5_000;
    let output = loadgen()
        .args(["--mode", "tcp", "--duration", "1s", "--quiet"])
        .args(["--start-at", &past.to_string()])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(exit::CANNOT_START));
    let text = stderr(&output);
    assert!(text.contains("is already past (by 5."), "{text}");
    assert_eq!(text.lines().count(), 1, "one message: {text}");
    assert!(json_files(&out).is_empty(), "no report");
    // An RFC 3339 time in the past, the same way.
    let output = loadgen()
        .args([
            "--mode",
            "tcp",
            "--quiet",
            "--start-at",
            "2020-01-01T00:00:00Z",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(exit::CANNOT_START));
    assert!(stderr(&output).contains("already past"));
    // Nearer than the warm-up: too soon, saying what was needed.
    let soon = unix_ms_in(Duration::from_millis(500));
    let output = loadgen()
        .args(["--mode", "tcp", "--quiet", "--warmup", "2s"])
        .args(["--start-at", &soon.to_string()])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(exit::CANNOT_START));
    assert!(
        stderr(&output).contains("the warm-up alone needs 2.000 s"),
        "{}",
        stderr(&output)
    );
    // Malformed: bad usage.
    let output = loadgen()
        .args(["--mode", "tcp", "--start-at", "tomorrow"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(exit::USAGE));
}

#[test]
fn a_start_missed_while_connecting_is_refused_without_load() {
    let dir = fresh_dir("start-missed");
    let out = dir.join("out");
    // Four connections at 1 per second take 3 s to set up; the start is 2 s away (room for the
    // process to start on a busy machine, and still far short of the connecting time).
    let at = unix_ms_in(Duration::from_secs(2));
    let output = loadgen()
        .args(["--mode", "tcp", "--clients", "4", "--threads", "1"])
        .args(["--connect-rate", "1", "--warmup", "0s", "--quiet"])
        .args(["--start-at", &at.to_string()])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(exit::CANNOT_START));
    let text = stderr(&output);
    assert!(
        text.contains("was missed: connecting and handshaking took"),
        "{text}"
    );
    assert!(json_files(&out).is_empty(), "no report");
}

#[test]
fn a_near_start_is_kept_and_its_skew_recorded() {
    let dir = fresh_dir("start-near");
    let lead = Duration::from_secs(3);
    let at = unix_ms_in(lead);
    let (output, report) = common::run(
        &[
            "--mode",
            "tcp",
            "--clients",
            "2",
            "--warmup",
            "500ms",
            "--duration",
            "1s",
            "--start-at",
            &at.to_string(),
        ],
        &dir,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let start = report.start.expect("a start timing");
    assert_eq!(start.intended_unix_ns, Some(at * 1_000_000));
    let skew = start.skew_us.expect("the skew is recorded");
    let from_times = (i128::from(start.actual_unix_ns) - i128::from(at) * 1_000_000) as f64 / 1e3;
    assert!(
        (skew - from_times).abs() < 0.01,
        "{skew} against {from_times}"
    );
    assert!(
        skew >= -early_bound_us(lead),
        "the measured interval began {skew} µs before --start-at"
    );
    assert_eq!(
        start.series_start_unix_s,
        at / 1000 + u64::from(at % 1000 >= 500)
    );
    assert!(start.connecting_seconds > 0.0);
    assert_eq!(report.results.errors_total, 0);
}

/// Starts a load generator process against `target` at `at`, writing into `out`.
fn spawn_generator(target: &str, key: &Path, at: u64, out: &Path) -> Child {
    loadgen()
        .args(["--target", target, "--server-key"])
        .arg(key)
        .args(["--clients", "2", "--threads", "1", "--warmup", "500ms"])
        .args(["--duration", "2s", "--quiet", "--start-at", &at.to_string()])
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_generators_with_one_start_merge_into_their_sum() {
    let dir = fresh_dir("coordinated");
    let (keypair, _) = stcp_proto::load_or_create_keypair(&dir.join("server.key")).unwrap();
    let mut config = Config::ephemeral(keypair);
    config.cores = 1;
    config.pin_cores = false;
    let server = Server::start(config).unwrap();
    let target = server.stcp_addr().unwrap().to_string();
    let key = dir.join("server.key.pub");
    let parts = dir.join("parts");
    let at = unix_ms_in(Duration::from_secs(4));
    let children: Vec<Child> = (0..2)
        .map(|_| spawn_generator(&target, &key, at, &parts))
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let files = json_files(&parts);
    assert_eq!(files.len(), 2, "{files:?}");
    let parts_read: Vec<Report> = files.iter().map(|f| Report::read(f).unwrap()).collect();

    let merged_dir = dir.join("merged");
    let output = loadgen()
        .arg("merge")
        .arg(&parts)
        .arg("--out")
        .arg(&merged_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    server.stop();
    server.join().unwrap();
    let merged = only_report(&merged_dir).unwrap();
    let name = json_files(&merged_dir)[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("merged-stcp-256-c4-d1-"), "{name}");

    // Requests and bytes are the sums; latency comes from the added histograms.
    let sum = |f: fn(&Report) -> u64| parts_read.iter().map(f).sum::<u64>();
    assert_eq!(merged.results.requests, sum(|r| r.results.requests));
    assert_eq!(merged.results.bytes_sent, sum(|r| r.results.bytes_sent));
    assert_eq!(
        merged.results.bytes_received,
        sum(|r| r.results.bytes_received)
    );
    let mut all = parts_read[0].measurement().unwrap().latency;
    all.add(parts_read[1].measurement().unwrap().latency)
        .unwrap();
    assert_eq!(merged.measurement().unwrap().latency, all);
    assert_eq!(
        merged.results.latency.p99_us,
        all.value_at_quantile(0.99) as f64 / 1e3
    );
    // Both measured from the same intended start, so their series cover the same seconds and
    // add second by second.
    for r in &parts_read {
        let start = r.start.as_ref().unwrap();
        assert_eq!(start.intended_unix_ns, Some(at * 1_000_000));
        assert!(start.skew_us.is_some());
    }
    let merged_start = merged.start.as_ref().unwrap();
    assert_eq!(merged_start.intended_unix_ns, Some(at * 1_000_000));
    assert_eq!(merged.series.len(), 2);
    for (i, second) in merged.series.iter().enumerate() {
        let parts_sum: u64 = parts_read.iter().map(|r| r.series[i].requests).sum();
        assert_eq!(second.requests, parts_sum, "second {}", i + 1);
    }
    // The sources name every host and file.
    assert_eq!(merged.sources.len(), 2);
    for (source, file) in merged.sources.iter().zip(&files) {
        assert_eq!(source.file, file.display().to_string());
        assert!(!source.hostname.is_empty());
    }
}
