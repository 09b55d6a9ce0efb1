//! The capacity tables of sweeps: per sweep, each mode's capacity under the p99 SLO, the
//! STCP/TCP ratio of capacities and the knee (the last step within the SLO and the first past it);
//! then every step, in the order run.

use std::fmt::Write as _;

use stcp_proto::Mode;

use super::markdown::rps;
use crate::sweep::schema::{ModeCapacity, SweepReport, SweepStep};
use crate::sweep::search::Phase;

fn latency(us: f64) -> String {
    crate::summary::latency(us).replace(" us", " µs")
}

/// `TCP`, `STCP`, `TLS`.
pub fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::Tcp => "TCP",
        Mode::Stcp => "STCP",
        Mode::Tls => "TLS",
    }
}

fn step_of(sweep: &SweepReport, sequence: Option<u64>) -> Option<&SweepStep> {
    sweep.steps.iter().find(|s| Some(s.sequence) == sequence)
}

/// Why a step is past the SLO, briefly: `behind schedule (91.2 %)`, `p99 over the SLO`, `errors`.
pub fn past_because(step: &SweepStep, slo_p99_us: f64) -> String {
    let mut why = Vec::new();
    if step.errors_total > 0 || step.partial {
        why.push("errors".to_string());
    }
    if !step.kept_schedule {
        why.push(format!("behind schedule ({:.1} %)", step.fraction * 100.0));
    }
    if step.latency.p99_us > slo_p99_us {
        why.push("p99 over the SLO".to_string());
    }
    why.join(", ")
}

/// The capacity cell: `98.7k req/s (p99 812 µs)`, or `none within the SLO`.
fn capacity_cell(m: Option<&ModeCapacity>) -> String {
    match m {
        Some(ModeCapacity {
            capacity_per_second: Some(c),
            capacity_p99_us: Some(p99),
            ..
        }) => format!("{} req/s (p99 {})", rps(*c), latency(*p99)),
        Some(_) => "none within the SLO".into(),
        None => "not swept".into(),
    }
}

/// The knee cell: the first step past the capacity, with why.
fn knee_cell(sweep: &SweepReport, m: Option<&ModeCapacity>) -> String {
    let Some(m) = m else {
        return String::new();
    };
    match step_of(sweep, m.first_past_step) {
        Some(s) => format!(
            "next: {} offered, {} achieved, p99 {}: {}",
            rps(s.target_per_second),
            rps(s.achieved_per_second),
            latency(s.latency.p99_us),
            past_because(s, sweep.configuration.slo_p99_us)
        ),
        None => format!("no step past it ({})", m.stopped),
    }
}

/// The capacity section: one table over all sweeps, then each sweep's steps.
pub fn section(out: &mut String, sweeps: &[SweepReport]) {
    if sweeps.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "### Capacity: the highest rate served within the p99 SLO\n"
    );
    let _ = writeln!(
        out,
        "| Workload | SLO p99 | TCP capacity | STCP capacity | STCP/TCP | TCP knee | STCP knee |"
    );
    let _ = writeln!(
        out,
        "|:---------|--------:|-------------:|--------------:|---------:|:---------|:----------|"
    );
    for sweep in sweeps {
        let of = |mode: Mode| sweep.modes.iter().find(|m| m.mode == mode);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            sweep.workload(),
            latency(sweep.configuration.slo_p99_us),
            capacity_cell(of(Mode::Tcp)),
            capacity_cell(of(Mode::Stcp)),
            sweep
                .capacity_ratio
                .map_or("–".to_string(), |r| format!("{r:.3}")),
            knee_cell(sweep, of(Mode::Tcp)),
            knee_cell(sweep, of(Mode::Stcp)),
        );
    }
    let _ = writeln!(out);
    for sweep in sweeps {
        let c = &sweep.configuration;
        let _ = writeln!(
            out,
            "#### Steps of the sweep of {} ({} s warm-up + {} s measured a step, open loop)\n",
            sweep.workload(),
            c.warmup_seconds,
            c.duration_seconds
        );
        let _ = writeln!(
            out,
            "| # | Mode | Phase | Offered req/s | Achieved req/s | Achieved % | p50 | p99 | p99.9 | Errors | Within SLO |"
        );
        let _ = writeln!(
            out,
            "|--:|:-----|:------|--------------:|---------------:|-----------:|----:|----:|------:|-------:|:-----------|"
        );
        for s in &sweep.steps {
            let l = &s.latency;
            let none = l.count == 0;
            let lat = |us: f64| if none { "n/a".into() } else { latency(us) };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {:.0} | {:.1} % | {} | {} | {} | {} | {} |",
                s.sequence,
                mode_label(s.mode),
                match s.phase {
                    Phase::Climb => "climb",
                    Phase::Refine => "refine",
                },
                s.target_per_second,
                s.achieved_per_second,
                s.fraction * 100.0,
                lat(l.p50_us),
                lat(l.p99_us),
                lat(l.p99_9_us),
                s.errors_total,
                if s.within_slo {
                    "yes".to_string()
                } else {
                    format!("no: {}", past_because(s, c.slo_p99_us))
                }
            );
        }
        let _ = writeln!(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, record_ns, LatencySummary};
    use crate::suite::schema::SuiteEnvironment;
    use crate::sweep::schema::{capacities, SweepConfiguration};

    pub(crate) fn step(seq: u64, mode: Mode, target: f64, achieved: f64, p99_us: u64) -> SweepStep {
        let mut h = new_histogram();
        for _ in 0..100 {
            record_ns(&mut h, p99_us * 1000);
        }
        let latency = LatencySummary::of(&h);
        let kept = achieved >= target * 0.99;
        SweepStep {
            sequence: seq,
            file: format!("{seq:02}.json"),
            mode,
            phase: Phase::Climb,
            target_per_second: target,
            achieved_per_second: achieved,
            fraction: achieved / target,
            kept_schedule: kept,
            busy_side: None,
            latency,
            requests: 100,
            errors_total: 0,
            partial: false,
            within_slo: kept && latency.p99_us <= 1000.0,
        }
    }

    pub(crate) fn sweep(steps: Vec<SweepStep>) -> SweepReport {
        let modes = [Mode::Tcp, Mode::Stcp];
        let (modes, ratio) = capacities(&modes, &steps, 1000.0, |_| "stopped".into());
        SweepReport {
            schema_version: 1,
            tool: "stcp-loadgen-sweep".into(),
            partial: false,
            partial_reason: None,
            ok: true,
            errors_total: 0,
            configuration: SweepConfiguration {
                payload_bytes: 256,
                clients: 50,
                depth: 1,
                modes: vec!["tcp".into(), "stcp".into()],
                slo_p99_us: 1000.0,
                p99_ceiling_us: 10_000.0,
                start_rate_per_second: 1000.0,
                step_factor: 2.0,
                refine_steps: 4,
                max_steps: 24,
                max_rate_per_second: 1e7,
                schedule_tolerance: 0.01,
                duration_seconds: 2.0,
                warmup_seconds: 0.5,
                timeout_seconds: 5.0,
                crypto: "aws-lc".into(),
                io: Some("auto".into()),
                embedded_server: true,
                target: None,
                tcp_target: None,
                tls_target: None,
                psk: false,
                busy_poll_us: 0.0,
            },
            environment: SuiteEnvironment {
                hostname: "h".into(),
                kernel: "k".into(),
                cpu_model: "c".into(),
                cores: 2,
                client_io_backend: "io_uring".into(),
                tool_version: "0".into(),
                started_at: "2026-12-02T12:00:00Z".into(),
                finished_at: "2026-12-02T12:01:00Z".into(),
            },
            steps,
            modes,
            capacity_ratio: ratio,
            sources: Vec::new(),
        }
    }

    #[test]
    fn the_capacity_table_gives_both_modes_their_ratio_and_the_knee() {
        let s = sweep(vec![
            step(1, Mode::Tcp, 1000.0, 1000.0, 100),
            step(2, Mode::Stcp, 1000.0, 1000.0, 150),
            step(3, Mode::Tcp, 2000.0, 2000.0, 300),
            step(4, Mode::Stcp, 2000.0, 1700.0, 40_000),
        ]);
        assert_eq!(s.capacity(Mode::Tcp), Some(2000.0));
        assert_eq!(s.capacity(Mode::Stcp), Some(1000.0));
        let mut out = String::new();
        section(&mut out, &[s]);
        assert!(
            out.contains(
                "| 256 B × 50 connections | 1.00 ms | 2.00k req/s (p99 300.0 µs) | 1.00k req/s (p99 150.0 µs) | 0.500 |"
            ),
            "{out}"
        );
        assert!(out.contains("no step past it (stopped)"), "{out}");
        assert!(
            out.contains("next: 2.00k offered, 1.70k achieved, p99 40.01 ms: behind schedule (85.0 %), p99 over the SLO"),
            "{out}"
        );
        assert!(
            out.contains("| 4 | STCP | climb | 2000 | 1700 | 85.0 % |"),
            "{out}"
        );
    }
}
