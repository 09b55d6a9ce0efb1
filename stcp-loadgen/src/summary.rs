//! Human output: the live line printed every second on stderr (like iperf3) and the end summary in
//! the seed's table columns (Payload, Clients, Throughput, RPS, Avg latency, p99 latency, Errors).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use crate::errors::{ErrorKind, SetupFailure, SetupFailures};
use crate::render::capacity::mode_label as capacity_label;
use crate::report::{size_label, Report};
use stcp_proto::Mode;

/// One live line: `[ 12s] 98213 req/s  50.28 MB/s  p99 81.4 us  errors 0`.
pub fn live_line(
    label: &str,
    requests_per_second: f64,
    mb_per_s: f64,
    p99_us: f64,
    errors: u64,
    handshakes_per_second: Option<f64>,
) -> String {
    let mut line = format!(
        "[{label:>6}] {:>9} req/s  {:>9.2} MB/s  p99 {:>10}  errors {errors}",
        format!("{requests_per_second:.0}"),
        mb_per_s,
        latency(p99_us)
    );
    if let Some(hs) = handshakes_per_second {
        line.push_str(&format!("  {hs:.0} handshakes/s"));
    }
    line
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

/// A figure that means something only when `meaningful`: otherwise `n/a` (a latency or a CPU
/// cost per request with no request, say), never a 0 that reads like a measurement.
fn or_na(meaningful: bool, figure: impl FnOnce() -> String) -> String {
    if meaningful {
        figure()
    } else {
        "n/a".into()
    }
}

/// A duration as typed on the command line: `0s`, `5s`, `500ms`, `1.250s`.
pub fn duration_label(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) && d.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// One line for connections that could not be set up for cause `f` against `target`: what
/// happened and what to check (`timeout` is --timeout).
pub fn setup_cause(f: &SetupFailure, mode: Mode, target: SocketAddr, timeout: Duration) -> String {
    let protocol = capacity_label(mode);
    let t = duration_label(timeout);
    match (f.kind, f.errno) {
        (ErrorKind::Connect, Some(libc::ECONNREFUSED)) => {
            format!("connection refused by {target}: is stcp-server running there?")
        }
        (ErrorKind::Connect, Some(libc::ETIMEDOUT)) => format!(
            "no answer from {target} within --timeout {t}: is the address right, and is nothing \
             (a firewall) dropping the connection?"
        ),
        (ErrorKind::Connect, Some(libc::EHOSTUNREACH | libc::ENETUNREACH)) => {
            format!("{target} is unreachable: check the address and the route to it")
        }
        (ErrorKind::Connect, Some(libc::EMFILE | libc::ENFILE)) => "cannot open more sockets: \
             too many open files: raise the limit (ulimit -n) or use fewer --clients"
            .into(),
        (ErrorKind::Connect, Some(libc::EADDRNOTAVAIL)) => format!(
            "no local port left to connect to {target}: use fewer --clients, or widen \
             net.ipv4.ip_local_port_range"
        ),
        (ErrorKind::Connect, Some(libc::EAFNOSUPPORT)) => {
            format!("cannot connect to {target}: this machine does not support its address family")
        }
        (ErrorKind::Connect, _) => format!("cannot connect to {target}: {}", f.why),
        (ErrorKind::Handshake, Some(libc::ETIMEDOUT)) => format!(
            "the {protocol} handshake with {target} did not finish within --timeout {t}: is that \
             a {protocol} port (not a TCP one)?"
        ),
        (_, _) => format!("the {protocol} handshake with {target} failed: {}", f.why),
    }
}

/// One line per cause of connections that could not be set up against the addresses `tried`
/// (the last one is the run's): alone when no connection was `established` (with every address
/// tried when there were several), else with how many of the `clients` failed so.
pub fn setup_failure_lines(
    failures: &SetupFailures,
    mode: Mode,
    established: u64,
    clients: u32,
    timeout: Duration,
    tried: &[SocketAddr],
) -> Vec<String> {
    let Some(&target) = tried.last() else {
        return Vec::new();
    };
    let every = tried
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    failures
        .sorted()
        .into_iter()
        .map(|cause| {
            let line = setup_cause(cause, mode, target, timeout);
            match (established, tried.len()) {
                (0, 1) => line,
                (0, _) => format!("{line} (tried {every})"),
                _ => format!(
                    "{} of {clients} connections could not be set up: {line}",
                    cause.count
                ),
            }
        })
        .collect()
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

/// Little's law in an open loop, in plain words: requests/s × mean latency is how many requests
/// were waiting on average, from their intended send time; at most `limit` (connections × depth)
/// can be on the wire, so any more were queued behind the schedule, not yet sent.
fn open_loop_littles_law(waiting: f64, limit: u64) -> String {
    let on_wire = limit as f64;
    if waiting > on_wire * (1.0 + crate::stats::LITTLES_LAW_TOLERANCE) {
        format!(
            "Little's law: on average {waiting:.0} requests were waiting for their echo, counted \
             from their intended send time; at most {limit} (connections x depth) can be on the \
             wire, so about {:.0} were queued behind the schedule, not yet sent",
            waiting - on_wire
        )
    } else {
        format!(
            "Little's law: on average {waiting:.2} requests were in flight (requests/s x mean \
             latency), within the {limit} that connections x depth allow"
        )
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
    // Latencies of no request, and CPU per request of none, mean nothing: they read n/a.
    let any = r.latency.count > 0;
    let lat = |us: f64| or_na(any, || latency(us));
    let _ = writeln!(
        out,
        "| {} | {} | {:.1} MB/s | {} | {} | {} | {} |",
        payload_label(c.payload_bytes),
        c.clients,
        r.throughput_mb_per_s,
        rps(r.requests_per_second),
        lat(r.latency.mean_us),
        lat(r.latency.p99_us),
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
        lat(l.p50_us),
        lat(l.p90_us),
        lat(l.p95_us),
        lat(l.p99_9_us),
        lat(l.max_us)
    );
    let h = &r.handshake_latency;
    let shook = h.count > 0;
    let hs = |us: f64| or_na(shook, || latency(us));
    match c.requests_per_conn {
        None => {
            let _ = writeln!(
                out,
                "handshakes: {} of {} connections, p50 {}  p99 {}  max {}",
                r.connections.established,
                r.connections.requested,
                hs(h.p50_us),
                hs(h.p99_us),
                hs(h.max_us)
            );
        }
        Some(n) => {
            let _ = writeln!(
                out,
                "churn: {n} request(s) per connection, {} handshakes in the measured interval = \
                 {:.0} handshakes/s; {} connections set up in all, {} closed cleanly",
                r.handshakes,
                r.handshakes_per_second,
                r.connections.established,
                r.connections.closed
            );
            let k = &r.connect_latency;
            let cn = |us: f64| or_na(k.count > 0, || latency(us));
            let _ = writeln!(
                out,
                "connect latency: p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                cn(k.p50_us),
                cn(k.p90_us),
                cn(k.p99_us),
                cn(k.p99_9_us),
                cn(k.max_us)
            );
            let _ = writeln!(
                out,
                "handshake latency (connect start to set up): p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                hs(h.p50_us),
                hs(h.p90_us),
                hs(h.p99_us),
                hs(h.p99_9_us),
                hs(h.max_us)
            );
        }
    }
    let e = &r.errors;
    let _ = writeln!(
        out,
        "errors: connect {} handshake {} io {} timeout {} verify {}",
        e.connect, e.handshake, e.io, e.timeout, e.verify
    );
    if let Some(start) = &report.start {
        if let (Some(intended), Some(skew)) = (&start.intended_at, start.skew_us) {
            let _ = writeln!(
                out,
                "start: --start-at {intended}, measured from {} (skew {skew:+.0} us, client threads \
                 within {:.0} us)",
                start.actual_at, start.threads_spread_us
            );
        }
    }
    if !report.sources.is_empty() {
        let hosts: Vec<&str> = report.sources.iter().map(|s| s.hostname.as_str()).collect();
        let _ = writeln!(
            out,
            "merged: {} runs ({})",
            report.sources.len(),
            hosts.join(", ")
        );
    }
    let ll = &r.littles_law;
    match (ll.clients_times_depth, ll.consistent) {
        _ if !any => {
            let _ = writeln!(out, "Little's law: n/a (no request completed)");
        }
        _ if c.requests_per_conn.is_some() => {
            let _ = writeln!(
                out,
                "Little's law: RPS x mean latency = {:.2} in flight (churn: connections spend part of their life connecting)",
                ll.rps_times_mean_latency
            );
        }
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
            let limit = r
                .schedule
                .map_or(c.clients * c.depth, |s| s.in_flight_limit);
            let _ = writeln!(
                out,
                "{}",
                open_loop_littles_law(ll.rps_times_mean_latency, limit)
            );
        }
    }
    if let Some(schedule) = &r.schedule {
        let _ = writeln!(out, "{}", schedule.line());
        if let Some(behind) = schedule.behind_line() {
            let _ = writeln!(out, "{behind}");
        }
    }
    let timed = r.measured_seconds > 0.0;
    let churn = c.requests_per_conn.is_some();
    let cpu_line = |who: &str, cpu: &crate::report::CpuUse| {
        let per_handshake = if churn {
            format!(
                "{} us per handshake, ",
                or_na(r.handshakes > 0, || format!(
                    "{:.2}",
                    cpu.cpu_us_per_handshake
                ))
            )
        } else {
            String::new()
        };
        format!(
            "{who} CPU: {per_handshake}{} us per request, {} cores busy (user {:.2} s, system {:.2} s; \
             ready but waiting for a CPU {:.2} s)",
            or_na(any, || format!("{:.2}", cpu.cpu_us_per_request)),
            or_na(timed, || format!("{:.2}", cpu.cores_busy)),
            cpu.user_seconds,
            cpu.system_seconds,
            cpu.waited_seconds
        )
    };
    let _ = writeln!(out, "{}", cpu_line("load generator", &r.loadgen_cpu));
    if let Some(cpu) = &r.server_cpu {
        let _ = writeln!(out, "{}", cpu_line("embedded server", cpu));
    }
    if let Some(reason) = &report.partial_reason {
        let _ = writeln!(out, "PARTIAL RUN: {reason}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report of `requests` requests over `seconds`, one connection set up of `clients`.
    fn report(requests: u64, seconds: f64) -> Report {
        use crate::measurement::{Connections, CpuTime, Measurement};
        use crate::report::{Configuration, Environment, Pinning};
        let mut m = Measurement::empty();
        crate::stats::record_ns(&mut m.handshake, 300_000);
        for _ in 0..requests {
            crate::stats::record_ns(&mut m.latency, 50_000);
        }
        m.measured_seconds = seconds;
        m.connections = Connections {
            requested: 2,
            established: 1,
            lost: 1,
            closed: 0,
        };
        m.cpu = CpuTime {
            user_seconds: 0.1,
            system_seconds: 0.1,
            waited_seconds: 0.0,
        };
        m.server_cpu = Some(CpuTime::default());
        let configuration = Configuration {
            mode: stcp_proto::Mode::Tcp,
            target: "127.0.0.1:7444".into(),
            embedded_server: true,
            payload_bytes: 64,
            clients: 2,
            depth: 1,
            threads: 1,
            rate_per_second: None,
            requests_per_conn: None,
            duration_seconds: 1.0,
            warmup_seconds: 0.0,
            connect_rate_per_second: None,
            timeout_seconds: 5.0,
            max_errors: 0,
            psk: false,
            server_public_key: None,
            suite_cell: None,
            busy_poll_us: 0.0,
            server_busy_poll_us: Some(0.0),
        };
        let environment = Environment {
            hostname: "h".into(),
            kernel: "k".into(),
            cpu_model: "c".into(),
            cores: 2,
            io_backend: "io_uring".into(),
            server_io_backend: Some("io_uring".into()),
            crypto_backend: None,
            server_crypto_backend: None,
            pinning: Pinning {
                client_cores: vec![Some(1)],
                server_cores: Some(vec![0]),
            },
            tool_version: "0".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
        };
        Report::build(configuration, environment, &m, None, Vec::new())
    }

    #[test]
    fn figures_of_no_request_read_n_a_not_zero() {
        let table = table(&report(0, 1.0));
        assert!(
            table.contains("embedded server CPU: n/a us per request, 0.00 cores busy")
                && table.contains("load generator CPU: n/a us per request, 0.20 cores busy")
                && table.contains("p50 n/a")
                && table.contains("| n/a | n/a |")
                && table.contains("Little's law: n/a")
                && table.contains("handshakes: 1 of 2 connections, p50 300.0 us"),
            "{table}"
        );
        assert!(!table.contains(" 0.0 us"), "{table}");
        let table = summary_of_no_time();
        assert!(table.contains("n/a cores busy"), "{table}");
        let table = super::table(&report(10, 1.0));
        assert!(
            !table.contains("n/a") && table.contains("20000.00 us per request"),
            "{table}"
        );
    }

    fn summary_of_no_time() -> String {
        table(&report(0, 0.0))
    }

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
    fn open_loop_littles_law_speaks_of_queued_requests() {
        let queued = open_loop_littles_law(227_522.63, 50);
        assert!(
            queued.contains("227523 requests were waiting")
                && queued.contains("at most 50 (connections x depth)")
                && queued.contains("about 227473 were queued behind the schedule, not yet sent"),
            "{queued}"
        );
        assert!(!queued.contains("in flight"), "{queued}");
        let fine = open_loop_littles_law(12.5, 50);
        assert!(fine.contains("12.50 requests were in flight"), "{fine}");
    }

    #[test]
    fn littles_law_verdicts_say_which_way() {
        assert_eq!(littles_law_verdict(true, 4.9, 5.0), "consistent");
        assert!(littles_law_verdict(false, 4.0, 5.0).contains("20% of the time"));
        assert!(littles_law_verdict(false, 42.5, 5.0).contains("more in flight"));
    }

    #[test]
    fn durations_read_as_typed() {
        assert_eq!(duration_label(Duration::ZERO), "0s");
        assert_eq!(duration_label(Duration::from_secs(5)), "5s");
        assert_eq!(duration_label(Duration::from_millis(500)), "500ms");
        assert_eq!(duration_label(Duration::from_millis(1250)), "1.250s");
    }

    #[test]
    fn setup_causes_name_the_target_and_what_to_check() {
        let target: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let failure = |kind, errno, why: &str| SetupFailure {
            kind,
            errno,
            why: why.into(),
            count: 1,
        };
        let t = Duration::from_secs(5);
        assert_eq!(
            setup_cause(
                &failure(
                    ErrorKind::Connect,
                    Some(libc::ECONNREFUSED),
                    "connection refused"
                ),
                Mode::Stcp,
                target,
                t
            ),
            "connection refused by 127.0.0.1:1: is stcp-server running there?"
        );
        let timed_out = setup_cause(
            &failure(
                ErrorKind::Connect,
                Some(libc::ETIMEDOUT),
                "connect timed out",
            ),
            Mode::Stcp,
            target,
            t,
        );
        assert!(timed_out.contains("within --timeout 5s"), "{timed_out}");
        let fds = setup_cause(
            &failure(
                ErrorKind::Connect,
                Some(libc::EMFILE),
                "too many open files",
            ),
            Mode::Stcp,
            target,
            t,
        );
        assert!(fds.contains("ulimit -n"), "{fds}");
        let hs = setup_cause(
            &failure(
                ErrorKind::Handshake,
                None,
                "the server closed the connection",
            ),
            Mode::Stcp,
            target,
            t,
        );
        assert_eq!(
            hs,
            "the STCP handshake with 127.0.0.1:1 failed: the server closed the connection"
        );
    }

    #[test]
    fn setup_failures_read_once_per_cause_with_the_addresses_tried() {
        let mut failures = SetupFailures::default();
        for _ in 0..3 {
            failures.record(
                ErrorKind::Connect,
                Some(libc::ECONNREFUSED),
                "connection refused",
            );
        }
        let v6: SocketAddr = "[::1]:7444".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:7444".parse().unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(
            setup_failure_lines(&failures, Mode::Stcp, 0, 3, t, &[v4]),
            ["connection refused by 127.0.0.1:7444: is stcp-server running there?"]
        );
        assert_eq!(
            setup_failure_lines(&failures, Mode::Stcp, 0, 3, t, &[v6, v4]),
            [
                "connection refused by 127.0.0.1:7444: is stcp-server running there? \
                 (tried [::1]:7444, 127.0.0.1:7444)"
            ]
        );
        assert_eq!(
            setup_failure_lines(&failures, Mode::Stcp, 7, 10, t, &[v4]),
            [
                "3 of 10 connections could not be set up: connection refused by \
                 127.0.0.1:7444: is stcp-server running there?"
            ]
        );
        assert!(
            setup_failure_lines(&SetupFailures::default(), Mode::Stcp, 0, 3, t, &[v4]).is_empty()
        );
    }

    #[test]
    fn live_line_names_every_figure() {
        let line = live_line("3s", 12345.4, 6.32, 81.4, 0, None);
        assert!(
            line.contains("12345 req/s") && line.contains("6.32 MB/s") && line.contains("81.4 us"),
            "{line}"
        );
        assert!(!line.contains("handshakes"), "{line}");
        let line = live_line("3s", 12345.4, 6.32, 81.4, 0, Some(9876.4));
        assert!(line.ends_with("9876 handshakes/s"), "{line}");
    }
}
