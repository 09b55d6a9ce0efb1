//! Latency statistics: the histogram every latency goes into (nanoseconds, 1 µs to 60 s, 3 significant
//! digits), the summary printed and reported from it, and the Little's law check.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Lowest latency the histogram tells apart from zero: 1 µs, in nanoseconds.
pub const LOWEST_DISCERNIBLE_NS: u64 = 1_000;
/// Highest latency tracked: 60 s, in nanoseconds; longer ones are recorded as 60 s.
pub const HIGHEST_TRACKABLE_NS: u64 = 60_000_000_000;
/// Significant decimal digits kept for every value.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Latency histogram, values in nanoseconds.
pub type LatencyHistogram = Histogram<u64>;

/// A new, empty latency histogram with the bounds above.
pub fn new_histogram() -> LatencyHistogram {
    Histogram::new_with_bounds(
        LOWEST_DISCERNIBLE_NS,
        HIGHEST_TRACKABLE_NS,
        SIGNIFICANT_DIGITS,
    )
    .expect("constant histogram bounds are valid")
}

/// Records one latency, clamped to the tracked range (never fails, never allocates).
#[inline]
pub fn record_ns(histogram: &mut LatencyHistogram, nanos: u64) {
    histogram.saturating_record(nanos);
}

/// Percentile summary of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p95_us: f64,
    pub p99_us: f64,
    pub p99_9_us: f64,
    pub max_us: f64,
}

impl LatencySummary {
    /// The summary of no samples.
    pub fn empty() -> LatencySummary {
        LatencySummary::of(&new_histogram())
    }

    pub fn of(histogram: &LatencyHistogram) -> LatencySummary {
        let us = |ns: u64| ns as f64 / 1_000.0;
        if histogram.is_empty() {
            return LatencySummary {
                count: 0,
                min_us: 0.0,
                mean_us: 0.0,
                p50_us: 0.0,
                p90_us: 0.0,
                p95_us: 0.0,
                p99_us: 0.0,
                p99_9_us: 0.0,
                max_us: 0.0,
            };
        }
        LatencySummary {
            count: histogram.len(),
            min_us: us(histogram.min()),
            mean_us: histogram.mean() / 1_000.0,
            p50_us: us(histogram.value_at_quantile(0.50)),
            p90_us: us(histogram.value_at_quantile(0.90)),
            p95_us: us(histogram.value_at_quantile(0.95)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p99_9_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
        }
    }
}

/// Relative disagreement beyond which Little's law flags a run.
pub const LITTLES_LAW_TOLERANCE: f64 = 0.10;

/// Little's law, L = λ·W: requests/s times mean latency is the mean number of requests in flight.
/// In a closed loop that must match clients × depth; a report where it does not has measured
/// something other than what it claims (client-side queueing, think time, a wrong clock).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LittlesLaw {
    /// requests_per_second × mean latency (seconds): the mean number of requests in flight.
    pub rps_times_mean_latency: f64,
    /// clients × depth: requests kept in flight by a closed loop; null in open loop (--rate).
    pub clients_times_depth: Option<f64>,
    /// |L − clients×depth| / clients×depth; null in open loop.
    pub relative_difference: Option<f64>,
    /// false when relative_difference exceeds `tolerance`; null in open loop.
    pub consistent: Option<bool>,
    pub tolerance: f64,
}

impl LittlesLaw {
    pub fn check(
        requests_per_second: f64,
        mean_latency_us: f64,
        closed_loop_in_flight: Option<f64>,
    ) -> LittlesLaw {
        let l = requests_per_second * mean_latency_us / 1e6;
        let relative = closed_loop_in_flight.map(|n| if n > 0.0 { (l - n).abs() / n } else { 0.0 });
        LittlesLaw {
            rps_times_mean_latency: l,
            clients_times_depth: closed_loop_in_flight,
            relative_difference: relative,
            consistent: relative.map(|r| r <= LITTLES_LAW_TOLERANCE),
            tolerance: LITTLES_LAW_TOLERANCE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_percentiles_in_microseconds() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            record_ns(&mut h, us * 1_000);
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_us - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.max_us - 1000.0).abs() < 1.0, "{s:?}");
        assert!((s.mean_us - 500.5).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut h = new_histogram();
        record_ns(&mut h, 10);
        record_ns(&mut h, 3_600_000_000_000);
        assert_eq!(h.len(), 2);
        assert!(h.max() >= HIGHEST_TRACKABLE_NS);
    }

    #[test]
    fn littles_law_flags_the_seeds_64k_row() {
        // The seed: 64 KB, 5 clients, 1.75k RPS, 24.3 ms average: 42.5 in flight, not 5.
        let seed = LittlesLaw::check(1750.0, 24_300.0, Some(5.0));
        assert_eq!(seed.consistent, Some(false));
        let ok = LittlesLaw::check(100_000.0, 49.0, Some(5.0));
        assert_eq!(ok.consistent, Some(true));
        let open = LittlesLaw::check(1000.0, 100.0, None);
        assert_eq!(open.consistent, None);
    }
}
