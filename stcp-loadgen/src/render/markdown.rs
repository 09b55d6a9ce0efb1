//! The Markdown tables: per backend combination, the seed's columns (Payload, Clients, Throughput,
//! RPS, Avg latency, p99 latency, Errors) for TCP, STCP and the seed's published row, with the
//! STCP/TCP requests/s ratio; then latency percentiles and CPU per request; then the ratio of
//! every combination side by side when there are several; then the handshake rows (churn):
//! connections per second and CPU per handshake on each side.

use std::fmt::Write as _;

use super::seed::{seed_row, SEED_SOURCE};
use super::Evaluation;
use crate::suite::schema::{ModeSummary, RatioSummary, RowSummary};
use crate::summary::payload_label;

/// A latency given in microseconds, in the unit that reads best (`81.4 µs`, `24.30 ms`).
fn latency(us: f64) -> String {
    crate::summary::latency(us).replace(" us", " µs")
}

/// A figure of latency summary `of`: `n/a` when it holds no request (not a 0 that reads like a
/// measurement).
fn latency_of(of: &crate::stats::LatencySummary, us: f64) -> String {
    if of.count == 0 {
        "n/a".into()
    } else {
        latency(us)
    }
}

/// Requests/s with three significant digits: `950`, `1.75k`, `6.80k`, `95.1k`, `123k`.
pub fn rps(value: f64) -> String {
    if value >= 100_000.0 {
        format!("{:.0}k", value / 1e3)
    } else if value >= 10_000.0 {
        format!("{:.1}k", value / 1e3)
    } else if value >= 1_000.0 {
        format!("{:.2}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// `0.931`, or `**0.931** (0.920–0.940 over 3 pairs)`.
/// The STCP/TCP and STCP/TLS cells of a mode's line: filled on the STCP line only.
fn ratio_cells(name: &str, row: &RowSummary) -> (String, String) {
    if name != "STCP" {
        return (String::new(), String::new());
    }
    (
        row.ratio.as_ref().map(ratio_cell).unwrap_or_default(),
        row.stcp_tls_ratio
            .as_ref()
            .map(ratio_cell)
            .unwrap_or_default(),
    )
}

pub fn ratio_cell(ratio: &RatioSummary) -> String {
    if ratio.pairs.len() == 1 {
        format!("{:.3}", ratio.median)
    } else {
        format!(
            "**{:.3}** ({:.3}–{:.3} over {} pairs)",
            ratio.median,
            ratio.min,
            ratio.max,
            ratio.pairs.len()
        )
    }
}

/// "aws-lc / io_uring".
pub fn combination_label(row: &RowSummary) -> String {
    format!("{} / {}", row.crypto, row.io)
}

/// The combinations in the order their rows come.
pub fn combinations(rows: &[RowSummary]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for row in rows {
        let label = combination_label(row);
        if !out.contains(&label) {
            out.push(label);
        }
    }
    out
}

fn errors_cell(m: &ModeSummary) -> String {
    let e = &m.errors;
    let mut cell = m.errors_total.to_string();
    if m.errors_total > 0 {
        let kinds: Vec<String> = [
            ("connect", e.connect),
            ("handshake", e.handshake),
            ("io", e.io),
            ("timeout", e.timeout),
            ("verify", e.verify),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
        let _ = write!(cell, " ({})", kinds.join(", "));
    }
    if m.partial_runs > 0 {
        let _ = write!(cell, ", {} partial run(s)", m.partial_runs);
    }
    cell
}

fn seconds(values: impl Iterator<Item = f64>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for v in values {
        let s = format!("{v} s");
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    seen.join(" / ")
}

/// The whole document: a header saying where and how it ran, then the tables.
pub fn document(evaluation: &Evaluation) -> String {
    let mut out = String::new();
    let rows = &evaluation.rows;
    let _ = writeln!(out, "## STCP vs raw TCP echo\n");
    if let Some(e) = &evaluation.environment {
        let _ = writeln!(
            out,
            "- Machine: {}, {} core(s), {} (host {})",
            e.cpu_model, e.cores, e.kernel, e.hostname
        );
        let _ = writeln!(
            out,
            "- Runs: {} to {}, stcp-loadgen {} (client io: {})",
            e.started_at, e.finished_at, e.tool_version, e.client_io_backend
        );
    }
    if !rows.is_empty() {
        let _ = writeln!(
            out,
            "- Each run: {} warm-up, then {} measured; closed loop, one request in flight per \
             connection (as the seed); TCP and STCP runs interleaved, {} pair(s) per row",
            seconds(rows.iter().map(|r| r.warmup_seconds)),
            seconds(rows.iter().map(|r| r.duration_seconds)),
            evaluation.pairs
        );
    }
    for setup in &evaluation.setups {
        let _ = writeln!(out, "- Setup: {setup}");
    }
    if !rows.is_empty() {
        let _ = writeln!(
            out,
            "- Throughput is payload × 2 × RPS / 10^6 (both directions, as the seed counts). RPS and \
             latencies are over all runs of a mode (histograms added); STCP/TCP is the median of the \
             pairs' requests/s ratios (min–max). The seed's rows are its published figures \
             ({SEED_SOURCE})."
        );
    }
    if !evaluation.sweeps.is_empty() {
        let _ = writeln!(
            out,
            "- Sweeps: open loop, each step a run at one offered rate, TCP and STCP steps \
             interleaved; latency from each request's intended send time (queueing counts). A step \
             is within the SLO when it achieved at least 99 % of its offered rate, its p99 is at \
             most the SLO and it had no error; a mode's capacity is the highest achieved rate of \
             such a step."
        );
    }
    for warning in &evaluation.warnings {
        let _ = writeln!(out, "- **Warning:** {warning}");
    }
    let _ = writeln!(out);

    for combination in combinations(rows) {
        let of: Vec<&RowSummary> = rows
            .iter()
            .filter(|r| combination_label(r) == combination)
            .collect();
        let _ = writeln!(out, "### {combination}\n");
        main_table(&mut out, &of);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "#### Latency percentiles and CPU per request ({combination})\n"
        );
        detail_table(&mut out, &of);
        let _ = writeln!(out);
    }
    if combinations(rows).len() > 1 {
        ratio_matrix(&mut out, rows);
    }
    if !evaluation.handshake_rows.is_empty() {
        handshake_table(&mut out, &evaluation.handshake_rows);
    }
    super::capacity::section(&mut out, &evaluation.sweeps);
    out
}

/// Churn rows: each connection connects, handshakes (STCP), does its requests and closes, and
/// is replaced. Handshakes/s is new connections per second; the ratio compares them.
fn handshake_table(out: &mut String, rows: &[RowSummary]) {
    let _ = writeln!(
        out,
        "### Handshakes: connect, handshake, N echoes, close (churn)\n"
    );
    let _ = writeln!(
        out,
        "| Backends | Payload | Clients | Requests/conn | Mode | Handshakes/s | Server CPU/handshake | Load generator CPU/handshake | p99 echo latency | Errors | Handshakes/s STCP/TCP | Handshakes/s STCP/TLS |"
    );
    let _ = writeln!(
        out,
        "|:---------|--------:|--------:|--------------:|:-----|-------------:|--------------------:|----------------------------:|-----------------:|-------:|:----------------------|:----------------------|"
    );
    for row in rows {
        for (name, mode) in row.modes() {
            let Some(m) = mode else { continue };
            let (ratio, tls_ratio) = ratio_cells(name, row);
            let shook = m.handshakes_per_second > 0.0;
            let per_handshake = |us: Option<f64>| match us {
                Some(us) if shook => format!("{us:.1} µs"),
                _ => "n/a".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {name} | {} | {} | {} | {} | {} | {ratio} | {tls_ratio} |",
                combination_label(row),
                payload_label(row.payload_bytes),
                row.clients,
                row.requests_per_conn.unwrap_or(0),
                rps(m.handshakes_per_second),
                per_handshake(m.server_cpu_us_per_handshake),
                per_handshake(Some(m.loadgen_cpu_us_per_handshake)),
                latency_of(&m.latency, m.latency.p99_us),
                errors_cell(m),
            );
        }
    }
    let _ = writeln!(out);
}

fn main_table(out: &mut String, rows: &[&RowSummary]) {
    let _ = writeln!(
        out,
        "| Payload | Clients | Mode | Throughput | RPS | Avg latency | p99 latency | Errors | RPS STCP/TCP | RPS STCP/TLS |"
    );
    let _ = writeln!(
        out,
        "|--------:|--------:|:-----|-----------:|----:|------------:|------------:|-------:|:-------------|:-------------|"
    );
    for row in rows {
        let payload = payload_label(row.payload_bytes);
        for (name, mode) in row.modes() {
            let Some(m) = mode else { continue };
            let (ratio, tls_ratio) = ratio_cells(name, row);
            let _ = writeln!(
                out,
                "| {payload} | {} | {name} | {:.1} MB/s | {} | {} | {} | {} | {ratio} | {tls_ratio} |",
                row.clients,
                m.throughput_mb_per_s,
                rps(m.requests_per_second),
                latency_of(&m.latency, m.latency.mean_us),
                latency_of(&m.latency, m.latency.p99_us),
                errors_cell(m),
            );
        }
        if let Some(s) = seed_row(row.payload_bytes, row.clients) {
            let _ = writeln!(
                out,
                "| {payload} | {} | *seed* | *{}* | *{}* | *{}* | *{}* | *{}* | | |",
                row.clients, s.throughput, s.rps, s.avg_latency, s.p99_latency, s.errors
            );
        }
    }
}

fn detail_table(out: &mut String, rows: &[&RowSummary]) {
    let _ = writeln!(
        out,
        "| Payload | Clients | Mode | Requests | p50 | p90 | p99 | p99.9 | max | Load generator CPU/request | Server CPU/request |"
    );
    let _ = writeln!(
        out,
        "|--------:|--------:|:-----|---------:|----:|----:|----:|------:|----:|---------------------------:|-------------------:|"
    );
    for row in rows {
        for (name, mode) in row.modes() {
            let Some(m) = mode else { continue };
            let l = &m.latency;
            let _ = writeln!(
                out,
                "| {} | {} | {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
                payload_label(row.payload_bytes),
                row.clients,
                m.requests,
                latency_of(l, l.p50_us),
                latency_of(l, l.p90_us),
                latency_of(l, l.p99_us),
                latency_of(l, l.p99_9_us),
                latency_of(l, l.max_us),
                per_request(m, Some(m.loadgen_cpu_us_per_request)),
                per_request(m, m.server_cpu_us_per_request),
            );
        }
    }
}

/// CPU per request: `n/a` with no request, or no figure (an external server's).
fn per_request(m: &ModeSummary, us: Option<f64>) -> String {
    match us {
        Some(us) if m.requests > 0 => format!("{us:.2} µs"),
        _ => "n/a".into(),
    }
}

fn ratio_matrix(out: &mut String, rows: &[RowSummary]) {
    let combos = combinations(rows);
    let _ = writeln!(out, "### STCP/TCP requests/s by backend combination\n");
    let _ = writeln!(out, "| Payload | Clients | {} |", combos.join(" | "));
    let _ = writeln!(
        out,
        "|--------:|--------:|{}",
        combos.iter().map(|_| ":---|").collect::<String>()
    );
    let mut workloads: Vec<(u64, u64)> =
        rows.iter().map(|r| (r.payload_bytes, r.clients)).collect();
    workloads.sort_unstable();
    workloads.dedup();
    for (payload, clients) in workloads {
        let cells: Vec<String> = combos
            .iter()
            .map(|c| {
                rows.iter()
                    .find(|r| {
                        r.payload_bytes == payload
                            && r.clients == clients
                            && combination_label(r) == *c
                    })
                    .and_then(|r| r.ratio.as_ref())
                    .map_or("–".to_string(), ratio_cell)
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} | {clients} | {} |",
            payload_label(payload),
            cells.join(" | ")
        );
    }
    let _ = writeln!(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorCounts;
    use crate::stats::{new_histogram, record_ns, LatencySummary};

    fn mode(rps: f64, mean_ms: u64) -> ModeSummary {
        let mut h = new_histogram();
        for _ in 0..10 {
            record_ns(&mut h, mean_ms * 1_000_000);
        }
        ModeSummary {
            runs: 1,
            partial_runs: 0,
            requests: (rps * 70.0) as u64,
            measured_seconds: 70.0,
            requests_per_second: rps,
            requests_per_second_runs: vec![rps],
            throughput_mb_per_s: crate::report::throughput_mb_per_s(256, rps),
            latency: LatencySummary::of(&h),
            errors: ErrorCounts::default(),
            errors_total: 0,
            loadgen_cpu_us_per_request: 3.0,
            server_cpu_us_per_request: None,
            handshakes_per_second: 0.0,
            loadgen_cpu_us_per_handshake: 0.0,
            server_cpu_us_per_handshake: None,
        }
    }

    fn row(clients: u64) -> RowSummary {
        RowSummary {
            payload_bytes: 256,
            clients,
            requests_per_conn: None,
            crypto: "aws-lc".into(),
            io: "io_uring".into(),
            duration_seconds: 70.0,
            warmup_seconds: 2.0,
            tcp: Some(mode(100_000.0, 1)),
            stcp: Some(mode(90_000.0, 2)),
            tls: None,
            ratio: crate::suite::aggregate::ratio_summary(vec![0.9]),
            stcp_tls_ratio: None,
        }
    }

    #[test]
    fn a_seed_workload_gets_the_seeds_row_beside_it() {
        let evaluation = Evaluation {
            environment: None,
            setups: Vec::new(),
            pairs: 1,
            rows: vec![row(50), row(8)],
            handshake_rows: Vec::new(),
            sweeps: Vec::new(),
            warnings: vec!["a warning".into()],
        };
        let md = document(&evaluation);
        assert!(md.contains(
            "| 256 B | 50 | *seed* | *~8.8 MB/s* | *~8.5k* | *~5 ms* | *<10 ms* | *0* | |"
        ));
        assert_eq!(md.matches("*seed*").count(), 1, "only 256x50 is the seed's");
        assert!(
            md.contains("| 256 B | 50 | TCP | 51.2 MB/s | 100k | 1.00 ms |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| 256 B | 50 | STCP | 46.1 MB/s | 90.0k | 2.00 ms | 2.00 ms | 0 | 0.900 |"
            ),
            "{md}"
        );
        assert!(md.contains("- **Warning:** a warning"));
        assert!(md.contains("2 s warm-up, then 70 s measured"), "{md}");
    }

    #[test]
    fn a_mode_without_requests_reads_n_a_not_zero() {
        let mut empty = mode(0.0, 1);
        empty.requests = 0;
        empty.latency = LatencySummary::of(&new_histogram());
        empty.loadgen_cpu_us_per_request = 0.0;
        let mut r = row(50);
        r.stcp = Some(empty);
        let mut out = String::new();
        main_table(&mut out, &[&r]);
        detail_table(&mut out, &[&r]);
        assert!(
            out.contains("| 256 B | 50 | STCP | 0.0 MB/s | 0 | n/a | n/a |"),
            "{out}"
        );
        assert!(
            out.contains("| STCP | 0 | n/a | n/a | n/a | n/a | n/a | n/a | n/a |"),
            "{out}"
        );
        assert!(!out.contains("0.0 µs"), "{out}");
    }

    #[test]
    fn rps_keeps_three_significant_digits() {
        assert_eq!(rps(950.4), "950");
        assert_eq!(rps(1750.0), "1.75k");
        assert_eq!(rps(95_123.0), "95.1k");
        assert_eq!(rps(123_456.0), "123k");
    }

    #[test]
    fn ratio_cells_show_the_spread_when_there_are_pairs() {
        let one = RatioSummary {
            median: 0.93,
            min: 0.93,
            max: 0.93,
            pairs: vec![0.93],
        };
        assert_eq!(ratio_cell(&one), "0.930");
        let three = RatioSummary {
            median: 0.9,
            min: 0.8,
            max: 0.95,
            pairs: vec![0.9, 0.8, 0.95],
        };
        assert_eq!(ratio_cell(&three), "**0.900** (0.800–0.950 over 3 pairs)");
    }

    #[test]
    fn churn_rows_get_the_handshake_table() {
        let mut churn = row(16);
        churn.requests_per_conn = Some(1);
        let mut tcp = mode(9_000.0, 1);
        tcp.handshakes_per_second = 9_000.0;
        tcp.server_cpu_us_per_handshake = Some(40.0);
        tcp.loadgen_cpu_us_per_handshake = 50.0;
        let mut stcp = mode(4_500.0, 2);
        stcp.handshakes_per_second = 4_500.0;
        stcp.server_cpu_us_per_handshake = Some(90.5);
        stcp.loadgen_cpu_us_per_handshake = 100.0;
        churn.tcp = Some(tcp);
        churn.stcp = Some(stcp);
        churn.ratio = crate::suite::aggregate::ratio_summary(vec![0.5]);
        let evaluation = Evaluation {
            environment: None,
            setups: Vec::new(),
            pairs: 1,
            rows: vec![row(50)],
            handshake_rows: vec![churn],
            sweeps: Vec::new(),
            warnings: Vec::new(),
        };
        let md = document(&evaluation);
        assert!(md.contains("### Handshakes"), "{md}");
        assert!(
            md.contains(
                "| aws-lc / io_uring | 256 B | 16 | 1 | STCP | 4.50k | 90.5 µs | 100.0 µs |"
            ),
            "{md}"
        );
        assert!(md.contains("| 0.500 |"), "{md}");
    }
}
