//! `--rate` is an open loop: requests leave on schedule whatever the latency. These tests check
//! what does not depend on timing: the run succeeds and its report says it was an open loop at
//! the rate asked, with the achieved rate and its fraction of the target (latency from each
//! request's intended send time, so the closed-loop Little's law check does not apply); and a rate
//! no machine reaches is reported as behind schedule, naming the busy side. Whether the achieved
//! rate is within 2 % of a reachable target is a timing question, checked by the smoke step of
//! `.ci/run`, not by `cargo test`.

mod common;

use common::{fresh_dir, run};

#[test]
fn open_loop_reports_its_rate_and_no_closed_loop_check() {
    let out = fresh_dir("rate");
    let rate = 3000.0;
    let (output, report) = run(
        &[
            "--mode",
            "tcp",
            "--payload",
            "256",
            "--clients",
            "4",
            "--depth",
            "8",
            "--rate",
            "3000",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--timeout",
            "10s",
        ],
        &out,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let r = &report.results;
    assert!(!report.partial, "{:?}", report.partial_reason);
    assert!(r.requests > 0, "no request completed");
    assert_eq!(r.errors_total, 0, "{:?}", r.errors);
    assert_eq!(report.configuration.rate_per_second, Some(rate));
    assert_eq!(
        r.littles_law.consistent, None,
        "closed-loop check does not apply"
    );
    assert!(report.sources.is_empty());
    let schedule = r.schedule.expect("an open loop reports its schedule");
    assert_eq!(schedule.target_per_second, rate);
    assert_eq!(schedule.achieved_per_second, r.requests_per_second);
    assert_eq!(schedule.fraction, r.requests_per_second / rate);
    assert_eq!(schedule.kept, schedule.fraction >= 0.99);
    assert_eq!(schedule.busy_side.is_some(), !schedule.kept);
    assert_eq!(schedule.in_flight_limit, 4 * 8);
}

#[test]
fn a_rate_beyond_reach_is_reported_behind_schedule_with_the_busy_side() {
    let out = fresh_dir("rate-impossible");
    // Fifty million requests/s over two connections, one request in flight each: no machine
    // keeps that schedule.
    let (output, report) = run(
        &[
            "--mode",
            "tcp",
            "--payload",
            "256",
            "--clients",
            "2",
            "--rate",
            "50000000",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--timeout",
            "30s",
        ],
        &out,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let schedule = report.results.schedule.expect("open loop");
    assert!(!schedule.kept && schedule.fraction < 0.99, "{schedule:?}");
    assert!(schedule.busy_side.is_some());
    assert!(
        stdout.contains("open loop: target 50000000 req/s, achieved"),
        "{stdout}"
    );
    let behind: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("BEHIND SCHEDULE: achieved"))
        .collect();
    assert_eq!(behind.len(), 1, "one plain line:\n{stdout}");
    assert!(
        behind[0].contains("of the 50000000 req/s asked"),
        "{stdout}"
    );
    assert!(
        behind[0].contains("busy side")
            || behind[0].contains("neither side")
            || behind[0].contains("other work"),
        "{stdout}"
    );
    // Little's law speaks of requests waiting, not of an impossible number in flight.
    let littles = stdout
        .lines()
        .find(|l| l.starts_with("Little's law:"))
        .unwrap();
    assert!(littles.contains("requests were"), "{littles}");
}
