//! `--rate` is an open loop: requests leave on schedule whatever the latency, so the measured
//! request rate matches the one asked for.

mod common;

use common::{fresh_dir, run};

#[test]
fn rate_holds_within_two_percent() {
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
            "4s",
            "--warmup",
            "500ms",
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
    let off = (r.requests_per_second - rate).abs() / rate;
    assert!(
        off <= 0.02,
        "asked {rate}/s, measured {}/s",
        r.requests_per_second
    );
    assert_eq!(report.configuration.rate_per_second, Some(rate));
    assert_eq!(
        r.littles_law.consistent, None,
        "closed-loop check does not apply"
    );
    assert!(report.sources.is_empty());
}
