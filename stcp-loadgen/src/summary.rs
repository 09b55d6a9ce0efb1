//! Human output: the live line printed every second on stderr (like iperf3) and the end summary in
//! the seed's table columns (Payload, Clients, Throughput, RPS, Avg latency, p99 latency, Errors).

use std::fmt::Write as _;

use crate::report::{size_label, Report};

/// One live line: `[ 12s] 98213 req/s  50.28 MB/s  p99 81.4 us  errors 0`.
pub fn live_line(
    label: &str,
    requests_per_second: f64,
    mb_per_s: f64,
    p99_us: f64,
    errors: u64,
) -> String {
    format!(
        "[{label:>6}] {:>9} req/s  {:>9.2} MB/s  p99 {:>10}  errors {errors}",
        format!("{requests_per_second:.0}"),
        mb_per_s,
        latency(p99_us)
    )
}

/// A latency given in microseconds, in the unit that reads best.
pub fn latency(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{us:.1} us")
    }
}

/// `256 B`, `4 KiB`, `64 KiB`, `1 MiB`: a payload size as the tables show it.
pub fn payload_label(bytes: u64) -> String {
    let label = size_label(bytes);
    match label.strip_suffix('k') {
        Some(n) => format!("{n} KiB"),
        None => match label.strip_suffix('m') {
            Some(n) => format!("{n} MiB"),
            None => format!("{label} B"),
        },
    }
}

/// Requests/s as the tables show them: `8500`, `95.1k`.
pub fn rps(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.1}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// What a Little's law disagreement means in a closed loop.
fn littles_law_verdict(consistent: bool, in_flight: f64, expected: f64) -> String {
    if consistent {
        "consistent".into()
    } else if in_flight < expected {
        format!(
            "DISAGREE: connections had no request in flight {:.0}% of the time \
             (client-side work between an echo and the next request is not in the latency)",
            (1.0 - in_flight / expected) * 100.0
        )
    } else {
        "DISAGREE: more in flight than the connections allow, so the latency or the rate is wrong"
            .into()
    }
}

/// The end summary: the seed's table with one row, then the details a reader needs to trust it.
pub fn table(report: &Report) -> String {
    let c = &report.configuration;
    let r = &report.results;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| Payload Size | Clients | Throughput | RPS | Avg Latency | p99 Latency | Errors |"
    );
    let _ = writeln!(
        out,
        "|-------------:|--------:|-----------:|----:|------------:|------------:|-------:|"
    );
    let _ = writeln!(
        out,
        "| {} | {} | {:.1} MB/s | {} | {} | {} | {} |",
        payload_label(c.payload_bytes),
        c.clients,
        r.throughput_mb_per_s,
        rps(r.requests_per_second),
        latency(r.latency.mean_us),
        latency(r.latency.p99_us),
        r.errors_total
    );
    let l = &r.latency;
    let _ = writeln!(
        out,
        "{} {} x{} depth {}, {:.2} s measured, {} requests: p50 {}  p90 {}  p95 {}  p99.9 {}  max {}",
        c.mode.name(),
        payload_label(c.payload_bytes),
        c.clients,
        c.depth,
        r.measured_seconds,
        r.requests,
        latency(l.p50_us),
        latency(l.p90_us),
        latency(l.p95_us),
        latency(l.p99_9_us),
        latency(l.max_us)
    );
    let h = &r.handshake_latency;
    let _ = writeln!(
        out,
        "handshakes: {} of {} connections, p50 {}  p99 {}  max {}",
        r.connections.established,
        r.connections.requested,
        latency(h.p50_us),
        latency(h.p99_us),
        latency(h.max_us)
    );
    let e = &r.errors;
    let _ = writeln!(
        out,
        "errors: connect {} handshake {} io {} timeout {} verify {}",
        e.connect, e.handshake, e.io, e.timeout, e.verify
    );
    let ll = &r.littles_law;
    match (ll.clients_times_depth, ll.consistent) {
        (Some(n), Some(ok)) => {
            let _ = writeln!(
                out,
                "Little's law: RPS x mean latency = {:.2} in flight vs connections x depth = {:.0}: {}",
                ll.rps_times_mean_latency,
                n,
                littles_law_verdict(ok, ll.rps_times_mean_latency, n)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "Little's law: RPS x mean latency = {:.2} in flight (open loop: includes time queued behind the schedule)",
                ll.rps_times_mean_latency
            );
        }
    }
    let cpu = &r.loadgen_cpu;
    let _ = writeln!(
        out,
        "load generator CPU: {:.2} us per request, {:.2} cores busy (user {:.2} s, system {:.2} s)",
        cpu.cpu_us_per_request, cpu.cores_busy, cpu.user_seconds, cpu.system_seconds
    );
    if let Some(cpu) = &r.server_cpu {
        let _ = writeln!(
            out,
            "embedded server CPU: {:.2} us per request, {:.2} cores busy (user {:.2} s, system {:.2} s)",
            cpu.cpu_us_per_request, cpu.cores_busy, cpu.user_seconds, cpu.system_seconds
        );
    }
    if let Some(reason) = &report.partial_reason {
        let _ = writeln!(out, "PARTIAL RUN: {reason}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_pick_a_readable_unit() {
        assert_eq!(latency(81.44), "81.4 us");
        assert_eq!(latency(24_300.0), "24.30 ms");
        assert_eq!(latency(2_500_000.0), "2.50 s");
    }

    #[test]
    fn payload_labels_match_the_seed_table() {
        assert_eq!(payload_label(256), "256 B");
        assert_eq!(payload_label(65536), "64 KiB");
    }

    #[test]
    fn littles_law_verdicts_say_which_way() {
        assert_eq!(littles_law_verdict(true, 4.9, 5.0), "consistent");
        assert!(littles_law_verdict(false, 4.0, 5.0).contains("20% of the time"));
        assert!(littles_law_verdict(false, 42.5, 5.0).contains("more in flight"));
    }

    #[test]
    fn live_line_names_every_figure() {
        let line = live_line("3s", 12345.4, 6.32, 81.4, 0);
        assert!(
            line.contains("12345 req/s") && line.contains("6.32 MB/s") && line.contains("81.4 us"),
            "{line}"
        );
    }
}
