//! The line charts: throughput against payload, and latency percentiles per row.

use std::path::Path;

use plotters::prelude::*;

use super::axis::{latency_tick, log_latency_ticks, TickedAxis};
use super::legend::{entry, legend_strip, LegendEntry, Swatch};
use super::MODES;
use super::{
    colour, grid, series_label, workload_title, workloads, ChartResult, AXIS_DESC_SIZE,
    CAPTION_SIZE, FONT, LABEL_SIZE, SEED_COLOUR, TITLE_SIZE,
};
use crate::render::markdown::{combination_label, combinations};
use crate::render::seed::{seed_row, SEED_SOURCE};
use crate::render::Evaluation;
use crate::suite::schema::{ModeSummary, RowSummary};
use crate::summary::payload_label;

pub(super) fn throughput(evaluation: &Evaluation, path: &Path) -> ChartResult {
    let rows = &evaluation.rows;
    let workloads = workloads(rows);
    let combos = combinations(rows);
    let several = combos.len() > 1;
    let x_of = |payload: u64| (payload.max(1) as f64).log2();
    let xs: Vec<f64> = workloads.iter().map(|(p, _)| x_of(*p)).collect();
    let (x_lo, x_hi) = if xs.is_empty() {
        (7.0, 17.0)
    } else {
        (
            xs.iter().copied().fold(f64::INFINITY, f64::min) - 1.0,
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 1.0,
        )
    };
    let seeds: Vec<(f64, f64)> = workloads
        .iter()
        .filter_map(|(p, c)| seed_row(*p, *c).map(|s| (x_of(*p), s.throughput_mb_per_s)))
        .collect();
    let y_max = rows
        .iter()
        .flat_map(RowSummary::summaries)
        .map(|m| m.throughput_mb_per_s)
        .chain(seeds.iter().map(|s| s.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut key_points = xs.clone();
    key_points.dedup();
    let label_of = |x: &f64| {
        let at: Vec<&(u64, u64)> = workloads
            .iter()
            .filter(|(p, _)| (x_of(*p) - x).abs() < 1e-9)
            .collect();
        match at.first() {
            Some((p, _)) => format!(
                "{} × {}",
                payload_label(*p),
                at.iter()
                    .map(|(_, c)| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => String::new(),
        }
    };

    let mut legend = Vec::new();
    let mut series: Vec<(Vec<(f64, f64)>, RGBColor)> = Vec::new();
    for (i, combination) in combos.iter().enumerate() {
        for (mode, m) in MODES {
            let mut points: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| combination_label(r) == *combination)
                .filter_map(|r| {
                    r.of_mode(m)
                        .map(|m| (x_of(r.payload_bytes), m.throughput_mb_per_s))
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let c = colour(m, i);
            legend.push(entry(
                series_label(mode, combination, several),
                Swatch::Line(c),
            ));
            series.push((points, c));
        }
    }
    if !seeds.is_empty() {
        legend.push(entry(SEED_SOURCE, Swatch::Dashed(SEED_COLOUR)));
    }

    let height = 620 + 24 * combos.len() as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let body = root.titled(
        &format!("Echo throughput against payload: {}", modes_named(rows)),
        (FONT, TITLE_SIZE),
    )?;
    let body = legend_strip(&body, &legend, 2)?;
    let mut chart = ChartBuilder::on(&body)
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(TickedAxis::new(x_lo..x_hi, key_points), 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("Payload per request × connections (log-scale payload axis)")
        .y_desc("Throughput, MB/s (10^6 bytes/s, payload, both directions)")
        .axis_desc_style((FONT, AXIS_DESC_SIZE))
        .label_style((FONT, LABEL_SIZE))
        .x_label_formatter(&label_of)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE)
        .draw()?;
    for (points, c) in &series {
        chart.draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))?;
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 5, c.filled())))?;
    }
    if !seeds.is_empty() {
        chart.draw_series(DashedLineSeries::new(
            seeds.clone(),
            8,
            6,
            SEED_COLOUR.stroke_width(2),
        ))?;
        chart.draw_series(
            seeds
                .iter()
                .map(|p| TriangleMarker::new(*p, 6, SEED_COLOUR.filled())),
        )?;
    }
    root.present()?;
    Ok(())
}

pub(super) const PERCENTILES: [&str; 4] = ["p50", "p90", "p99", "p99.9"];

/// "TCP and STCP", or "TCP, STCP and TLS" when the rows have TLS runs.
fn modes_named(rows: &[RowSummary]) -> &'static str {
    if rows.iter().any(|r| r.tls.is_some()) {
        "TCP, STCP and TLS"
    } else {
        "TCP and STCP"
    }
}

pub(super) fn percentiles(m: &ModeSummary) -> [f64; 4] {
    let l = &m.latency;
    [l.p50_us, l.p90_us, l.p99_us, l.p99_9_us]
}

pub(super) fn latency(evaluation: &Evaluation, path: &Path) -> ChartResult {
    let rows = &evaluation.rows;
    let workloads = workloads(rows);
    let (grid_rows, grid_cols) = grid(workloads.len());
    let height = 110 + 420 * grid_rows as u32 + 24 * combinations(rows).len() as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let body = root.titled(
        &format!(
            "Request latency percentiles per row: {} (log scale)",
            modes_named(rows)
        ),
        (FONT, TITLE_SIZE),
    )?;
    let combos = combinations(rows);
    let several = combos.len() > 1;
    let legend: Vec<LegendEntry> = combos
        .iter()
        .enumerate()
        .flat_map(|(i, combination)| {
            MODES
                .into_iter()
                .filter(|(_, m)| rows.iter().any(|r| r.of_mode(*m).is_some()))
                .map(move |(mode, m)| {
                    entry(
                        series_label(mode, combination, several),
                        Swatch::Line(colour(m, i)),
                    )
                })
        })
        .collect();
    let body = legend_strip(&body, &legend, 2)?;
    for (panel, (payload, clients)) in body
        .split_evenly((grid_rows, grid_cols))
        .iter()
        .zip(&workloads)
    {
        let of: Vec<&RowSummary> = rows
            .iter()
            .filter(|r| r.payload_bytes == *payload && r.clients == *clients)
            .collect();
        let values: Vec<f64> = of
            .iter()
            .flat_map(|r| r.summaries())
            .flat_map(percentiles)
            .filter(|v| *v > 0.0)
            .collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if values.is_empty() {
            (1.0, 1000.0)
        } else {
            // Room below the lowest point, and above the highest for the legend.
            (lo / 1.5, hi * 1.5)
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(workload_title(*payload, *clients), (FONT, CAPTION_SIZE))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(
                TickedAxis::new(-0.3..3.3, vec![0.0, 1.0, 2.0, 3.0]),
                TickedAxis::new(lo.log10()..hi.log10(), log_latency_ticks(lo, hi)),
            )?;
        chart
            .configure_mesh()
            .x_desc("Percentile")
            .y_desc("Latency (log scale)")
            .axis_desc_style((FONT, AXIS_DESC_SIZE))
            .label_style((FONT, LABEL_SIZE))
            .x_label_formatter(&|x| {
                PERCENTILES
                    .get(x.round() as usize)
                    .map_or(String::new(), |s| s.to_string())
            })
            .y_label_formatter(&|v| latency_tick(*v))
            .draw()?;
        for (i, combination) in combos.iter().enumerate() {
            let Some(row) = of.iter().find(|r| combination_label(r) == *combination) else {
                continue;
            };
            for (_, mode) in MODES {
                let Some(m) = row.of_mode(mode) else { continue };
                let points: Vec<(f64, f64)> = percentiles(m)
                    .iter()
                    .enumerate()
                    .filter(|(_, us)| **us > 0.0)
                    .map(|(k, us)| (k as f64, us.log10()))
                    .collect();
                let c = colour(mode, i);
                chart.draw_series(LineSeries::new(points.clone(), c.stroke_width(3)))?;
                chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, c.filled())))?;
            }
        }
    }
    root.present()?;
    Ok(())
}
