//! From run reports to the suite's rows: groups runs by row (payload, clients) and backend
//! combination (crypto, io), adds each mode's runs together (histograms added, so percentiles are
//! exact over all requests), pairs TCP and STCP runs (and TLS and STCP runs), and takes the median
//! STCP/TCP (and STCP/TLS) ratio of the pairs. `suite` and `report` both use it, so the two always agree.

use crate::errors::ErrorCounts;
use crate::hist_codec::{self, HistogramCodecError};
use crate::report::{throughput_mb_per_s, Report};
use crate::stats::{self, LatencySummary};
use crate::suite::schema::{ModeSummary, RatioSummary, RowSummary};
use stcp_proto::Mode;

/// The combination name given to runs against a server this tool did not start, when the run
/// does not say otherwise.
pub const EXTERNAL: &str = "external";

#[derive(Debug, thiserror::Error)]
#[error("{file}: {source}")]
pub struct AggregateError {
    pub file: String,
    pub source: HistogramCodecError,
}

/// A run report and the file it came from (for error messages).
pub struct RunInput<'a> {
    pub file: String,
    pub report: &'a Report,
}

/// The backend combination (crypto, io) a run belongs to: its suite cell when the suite made it;
/// otherwise the embedded server's backends, or "external" for both against another server.
pub fn combination_of(report: &Report) -> (String, String) {
    if let Some(cell) = &report.configuration.suite_cell {
        return (cell.crypto.clone(), cell.io.clone());
    }
    let env = &report.environment;
    if !report.configuration.embedded_server {
        return (EXTERNAL.into(), EXTERNAL.into());
    }
    let crypto = env
        .server_crypto_backend
        .clone()
        .or_else(|| env.crypto_backend.clone())
        .unwrap_or_else(|| "unknown".into());
    let io = env
        .server_io_backend
        .clone()
        .unwrap_or_else(|| "unknown".into());
    (crypto, io)
}

/// Median of `values` (mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Median, min, max and every value of the pairs' ratios; None without a pair.
pub fn ratio_summary(pairs: Vec<f64>) -> Option<RatioSummary> {
    if pairs.is_empty() {
        return None;
    }
    Some(RatioSummary {
        median: median(&pairs),
        min: pairs.iter().copied().fold(f64::INFINITY, f64::min),
        max: pairs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        pairs,
    })
}

/// Groups `runs` into rows: combinations in the order first seen, rows by payload then clients.
pub fn summarize(runs: &[RunInput<'_>]) -> Result<Vec<RowSummary>, AggregateError> {
    let mut combinations: Vec<(String, String)> = Vec::new();
    for run in runs {
        let c = combination_of(run.report);
        if !combinations.contains(&c) {
            combinations.push(c);
        }
    }
    let mut keys: Vec<(usize, u64, u64, Option<u64>)> = Vec::new();
    for run in runs {
        let c = combination_of(run.report);
        let index = combinations.iter().position(|x| *x == c).unwrap_or(0);
        let key = (
            index,
            run.report.configuration.payload_bytes,
            run.report.configuration.clients,
            run.report.configuration.requests_per_conn,
        );
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.sort_unstable();
    keys.into_iter()
        .map(|(index, payload, clients, per_conn)| {
            let (crypto, io) = &combinations[index];
            let of_row: Vec<&RunInput<'_>> = runs
                .iter()
                .filter(|r| {
                    let c = &r.report.configuration;
                    c.payload_bytes == payload
                        && c.clients == clients
                        && c.requests_per_conn == per_conn
                        && combination_of(r.report) == (crypto.clone(), io.clone())
                })
                .collect();
            summarize_row((payload, clients, per_conn), crypto, io, &of_row)
        })
        .collect()
}

/// The order in which runs of one mode pair up: by suite pair index, else by start time.
fn pair_order(runs: &mut [&RunInput<'_>]) {
    runs.sort_by(|a, b| {
        let key = |r: &RunInput<'_>| {
            (
                r.report.configuration.suite_cell.as_ref().map(|c| c.pair),
                r.report.environment.started_at.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// The rate a row's STCP/TCP ratio compares: connections per second for a churn row, requests
/// per second otherwise.
fn compared_rate(report: &crate::report::Report) -> f64 {
    match report.configuration.requests_per_conn {
        Some(_) => report.results.handshakes_per_second,
        None => report.results.requests_per_second,
    }
}

fn summarize_row(
    (payload, clients, requests_per_conn): (u64, u64, Option<u64>),
    crypto: &str,
    io: &str,
    runs: &[&RunInput<'_>],
) -> Result<RowSummary, AggregateError> {
    let of_mode = |mode: Mode| {
        let mut v: Vec<&RunInput<'_>> = runs
            .iter()
            .copied()
            .filter(|r| r.report.configuration.mode == mode)
            .collect();
        pair_order(&mut v);
        v
    };
    let tcp_runs = of_mode(Mode::Tcp);
    let stcp_runs = of_mode(Mode::Stcp);
    let tls_runs = of_mode(Mode::Tls);
    let ratios = |base: &[&RunInput<'_>]| -> Vec<f64> {
        base.iter()
            .zip(&stcp_runs)
            .filter(|(t, s)| {
                !t.report.partial && !s.report.partial && compared_rate(t.report) > 0.0
            })
            .map(|(t, s)| compared_rate(s.report) / compared_rate(t.report))
            .collect()
    };
    let pairs = ratios(&tcp_runs);
    let tls_pairs = ratios(&tls_runs);
    let first = runs.first().map(|r| &r.report.configuration);
    Ok(RowSummary {
        payload_bytes: payload,
        clients,
        requests_per_conn,
        crypto: crypto.to_string(),
        io: io.to_string(),
        duration_seconds: first.map_or(0.0, |c| c.duration_seconds),
        warmup_seconds: first.map_or(0.0, |c| c.warmup_seconds),
        tcp: mode_summary(payload, &tcp_runs)?,
        stcp: mode_summary(payload, &stcp_runs)?,
        tls: mode_summary(payload, &tls_runs)?,
        ratio: ratio_summary(pairs),
        stcp_tls_ratio: ratio_summary(tls_pairs),
    })
}

fn mode_summary(
    payload: u64,
    runs: &[&RunInput<'_>],
) -> Result<Option<ModeSummary>, AggregateError> {
    if runs.is_empty() {
        return Ok(None);
    }
    let mut latency = stats::new_histogram();
    let mut errors = ErrorCounts::default();
    let (mut requests, mut seconds, mut partial_runs) = (0u64, 0.0f64, 0u64);
    let mut handshakes = 0u64;
    let (mut loadgen_cpu, mut server_cpu, mut server_cpu_known) = (0.0f64, 0.0f64, true);
    for run in runs {
        let r = &run.report.results;
        let h = hist_codec::decode(&run.report.histograms.latency).map_err(|source| {
            AggregateError {
                file: run.file.clone(),
                source,
            }
        })?;
        latency
            .add(&h)
            .expect("histograms of one schema share bounds");
        errors.add(&r.errors);
        requests += r.requests;
        handshakes += r.handshakes;
        seconds += r.measured_seconds;
        partial_runs += u64::from(run.report.partial);
        loadgen_cpu += r.loadgen_cpu.user_seconds + r.loadgen_cpu.system_seconds;
        match &r.server_cpu {
            Some(c) => server_cpu += c.user_seconds + c.system_seconds,
            None => server_cpu_known = false,
        }
    }
    let per_request = |cpu: f64| {
        if requests > 0 {
            cpu / requests as f64 * 1e6
        } else {
            0.0
        }
    };
    let per_handshake = |cpu: f64| {
        if handshakes > 0 {
            cpu / handshakes as f64 * 1e6
        } else {
            0.0
        }
    };
    let rps = if seconds > 0.0 {
        requests as f64 / seconds
    } else {
        0.0
    };
    Ok(Some(ModeSummary {
        runs: runs.len() as u64,
        partial_runs,
        requests,
        measured_seconds: seconds,
        requests_per_second: rps,
        requests_per_second_runs: runs
            .iter()
            .map(|r| r.report.results.requests_per_second)
            .collect(),
        throughput_mb_per_s: throughput_mb_per_s(payload, rps),
        latency: LatencySummary::of(&latency),
        errors_total: errors.total(),
        errors,
        loadgen_cpu_us_per_request: per_request(loadgen_cpu),
        server_cpu_us_per_request: server_cpu_known.then(|| per_request(server_cpu)),
        handshakes_per_second: if seconds > 0.0 {
            handshakes as f64 / seconds
        } else {
            0.0
        },
        loadgen_cpu_us_per_handshake: per_handshake(loadgen_cpu),
        server_cpu_us_per_handshake: server_cpu_known.then(|| per_handshake(server_cpu)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[0.7]), 0.7);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn ratio_summary_keeps_every_pair_and_its_spread() {
        let r = ratio_summary(vec![0.9, 0.8, 0.95]).unwrap();
        assert_eq!((r.median, r.min, r.max), (0.9, 0.8, 0.95));
        assert_eq!(r.pairs, vec![0.9, 0.8, 0.95]);
        assert!(ratio_summary(Vec::new()).is_none());
    }
}
