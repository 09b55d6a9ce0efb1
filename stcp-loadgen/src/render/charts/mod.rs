//! The SVG charts (plotters' SVG backend: text is written as SVG text, no font files needed):
//! - `throughput.svg`: MB/s against payload (log scale) for TCP and STCP, with the seed's figures;
//! - `latency.svg`: p50, p90, p99, p99.9 per row, TCP against STCP, one panel per row;
//! - `backends.svg`: requests/s per backend combination (crypto × io), one panel per row, with
//!   the spread of the runs and the STCP/TCP ratio above each pair of bars;
//! - `ratio.svg`: the STCP/TCP ratio per row and combination, median with min–max;
//! - `sweep.svg`: p50, p99, p99.9 against achieved requests/s for each sweep, TCP and STCP, with
//!   the SLO and each mode's capacity (only when there are sweeps).
//!
//! The first four are drawn only when there are closed-loop rows.
//!
//! Charts with many series carry one legend strip under their title rather than a box inside the
//! plot, so that no legend ever covers a line or a bar.

mod axis;
mod bars;
mod legend;
mod lines;
mod sweep;

use std::error::Error;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::{Evaluation, RenderError};
use crate::suite::schema::RowSummary;
use crate::summary::payload_label;

pub const THROUGHPUT_SVG: &str = "throughput.svg";
pub const LATENCY_SVG: &str = "latency.svg";
pub const BACKENDS_SVG: &str = "backends.svg";
pub const RATIO_SVG: &str = "ratio.svg";
pub const SWEEP_SVG: &str = "sweep.svg";

const FONT: &str = "sans-serif";
const TITLE_SIZE: u32 = 24;
const CAPTION_SIZE: u32 = 19;
const AXIS_DESC_SIZE: u32 = 16;
const LABEL_SIZE: u32 = 14;

/// TCP series colours, one per backend combination (blues, greens, greys).
const TCP_COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(23, 190, 207),
    RGBColor(44, 160, 44),
    RGBColor(127, 127, 127),
];
/// STCP series colours (reds, oranges, purples, browns).
const STCP_COLOURS: [RGBColor; 4] = [
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
/// TLS series colours (greens and olives, darker than TCP's).
const TLS_COLOURS: [RGBColor; 4] = [
    RGBColor(0, 128, 64),
    RGBColor(188, 189, 34),
    RGBColor(0, 90, 120),
    RGBColor(90, 110, 40),
];
/// The modes a chart draws, in order, with their names.
const MODES: [(&str, stcp_proto::Mode); 3] = [
    ("TCP", stcp_proto::Mode::Tcp),
    ("STCP", stcp_proto::Mode::Stcp),
    ("TLS", stcp_proto::Mode::Tls),
];
const SEED_COLOUR: RGBColor = RGBColor(90, 90, 90);

type ChartResult = Result<(), Box<dyn Error>>;
/// Draws one chart of an evaluation into an SVG file.
type DrawChart = fn(&Evaluation, &Path) -> ChartResult;

/// Writes every chart into `dir`; returns the paths written.
pub fn write_all(evaluation: &Evaluation, dir: &Path) -> Result<Vec<PathBuf>, RenderError> {
    let mut charts: Vec<(&str, DrawChart)> = Vec::new();
    if !evaluation.rows.is_empty() {
        charts.extend([
            (THROUGHPUT_SVG, lines::throughput as DrawChart),
            (LATENCY_SVG, lines::latency),
            (BACKENDS_SVG, bars::backends),
            (RATIO_SVG, bars::ratio),
        ]);
    }
    if !evaluation.sweeps.is_empty() {
        charts.push((SWEEP_SVG, sweep::sweep));
    }
    let mut written = Vec::new();
    for (name, draw) in charts {
        let path = dir.join(name);
        draw(evaluation, &path).map_err(|e| RenderError::Chart(path.clone(), e.to_string()))?;
        written.push(path);
    }
    Ok(written)
}

fn colour(mode: stcp_proto::Mode, combination: usize) -> RGBColor {
    let palette = match mode {
        stcp_proto::Mode::Stcp => &STCP_COLOURS,
        stcp_proto::Mode::Tcp => &TCP_COLOURS,
        stcp_proto::Mode::Tls => &TLS_COLOURS,
    };
    palette[combination % palette.len()]
}

/// "TCP", or "TCP (aws-lc / io_uring)" when there are several combinations.
fn series_label(mode: &str, combination: &str, several: bool) -> String {
    if several {
        format!("{mode} ({combination})")
    } else {
        mode.to_string()
    }
}

/// The workloads (payload, clients) in payload order.
fn workloads(rows: &[RowSummary]) -> Vec<(u64, u64)> {
    let mut w: Vec<(u64, u64)> = rows.iter().map(|r| (r.payload_bytes, r.clients)).collect();
    w.sort_unstable();
    w.dedup();
    w
}

fn workload_title(payload: u64, clients: u64) -> String {
    format!("{} × {clients} connections", payload_label(payload))
}

/// A panel grid for `n` panels: up to two columns.
fn grid(n: usize) -> (usize, usize) {
    let cols = n.clamp(1, 2);
    (n.div_ceil(cols).max(1), cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_go_two_to_a_line() {
        assert_eq!(grid(1), (1, 1));
        assert_eq!(grid(2), (1, 2));
        assert_eq!(grid(3), (2, 2));
        assert_eq!(grid(4), (2, 2));
        assert_eq!(grid(5), (3, 2));
    }

    #[test]
    fn one_combination_labels_series_by_mode_only() {
        assert_eq!(series_label("TCP", "aws-lc / io_uring", false), "TCP");
        assert_eq!(
            series_label("STCP", "aws-lc / epoll", true),
            "STCP (aws-lc / epoll)"
        );
        assert_ne!(
            colour(stcp_proto::Mode::Tcp, 0),
            colour(stcp_proto::Mode::Stcp, 0)
        );
        assert_ne!(
            colour(stcp_proto::Mode::Tls, 0),
            colour(stcp_proto::Mode::Stcp, 0)
        );
    }
}
