//! Axes plotters does not give as needed: a linear axis with exactly the ticks asked for
//! (categories, the rows' payloads, 1-2-5 latency decades), and the tick labels of the charts.

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;

/// A linear axis whose ticks are exactly the given points (the rows' payloads, the categories),
/// so that every tick has a label and no label falls between two of them.
#[derive(Clone)]
pub(super) struct TickedAxis {
    linear: RangedCoordf64,
    ticks: Vec<f64>,
}

impl TickedAxis {
    pub(super) fn new(range: Range<f64>, ticks: Vec<f64>) -> TickedAxis {
        TickedAxis {
            linear: range.into(),
            ticks,
        }
    }
}

impl Ranged for TickedAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.linear.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.linear.range()
    }
}

impl ValueFormatter<f64> for TickedAxis {
    fn format(value: &f64) -> String {
        value.to_string()
    }
}

/// Ticks of a log-scale latency axis between `lo_us` and `hi_us`: 1-2-5 steps per decade (one
/// per decade past four decades), as log10 of microseconds.
pub(super) fn log_latency_ticks(lo_us: f64, hi_us: f64) -> Vec<f64> {
    let (lo, hi) = (lo_us.max(1e-3).log10(), hi_us.max(1e-3).log10());
    let steps: &[f64] = if hi - lo > 4.0 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let mut ticks = Vec::new();
    for decade in lo.floor() as i32..=hi.ceil() as i32 {
        for m in steps {
            let t = (m * 10f64.powi(decade)).log10();
            if t >= lo && t <= hi {
                ticks.push(t);
            }
        }
    }
    ticks
}

/// A latency tick label from log10 of microseconds: `50 µs`, `1 ms`, `20 ms`, `2 s`.
pub(super) fn latency_tick(log_us: f64) -> String {
    let us = 10f64.powf(log_us);
    let (value, unit) = if us >= 1e6 {
        (us / 1e6, "s")
    } else if us >= 1e3 {
        (us / 1e3, "ms")
    } else {
        (us, "µs")
    };
    let digits = if value < 1.0 { 1 } else { 0 };
    format!("{value:.digits$} {unit}")
}
/// Requests/s on an axis: `0`, `500`, `20k`, `1.5k`.
pub(super) fn rps_tick(v: f64) -> String {
    if v >= 1_000.0 {
        let k = v / 1e3;
        if (k - k.round()).abs() < 1e-9 {
            format!("{k:.0}k")
        } else {
            format!("{k:.1}k")
        }
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_ticks_step_one_two_five_within_the_range() {
        let labels: Vec<String> = log_latency_ticks(80.0, 12_000.0)
            .into_iter()
            .map(latency_tick)
            .collect();
        assert_eq!(
            labels,
            ["100 µs", "200 µs", "500 µs", "1 ms", "2 ms", "5 ms", "10 ms"]
        );
        // Past four decades, one tick a decade.
        assert_eq!(log_latency_ticks(1.0, 1e6).len(), 7);
    }

    #[test]
    fn rps_ticks_read_in_thousands() {
        assert_eq!(rps_tick(0.0), "0");
        assert_eq!(rps_tick(500.0), "500");
        assert_eq!(rps_tick(20_000.0), "20k");
        assert_eq!(rps_tick(1_500.0), "1.5k");
    }

    #[test]
    fn a_ticked_axis_has_exactly_its_ticks() {
        let axis = TickedAxis::new(-0.5..3.5, vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(axis.range(), -0.5..3.5);
        assert!(axis.map(&0.0, (0, 400)) < axis.map(&1.0, (0, 400)));
    }
}
