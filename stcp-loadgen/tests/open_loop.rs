//! `--rate` is an open loop: requests leave on schedule whatever the latency. This test checks
//! what does not depend on timing: the run succeeds and its report says it was an open loop at
//! the rate asked (latency from each request's intended send time, so the closed-loop Little's
//! law check does not apply). Whether the achieved rate is within 2 % of the target is a timing
//! question, checked by the smoke step of `.ci/run`, not by `cargo test`.

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
}
