//! The bar charts: requests/s per backend combination, and the STCP/TCP ratio per row.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{rps_tick, TickedAxis};
use super::legend::{draw_legend, entry, legend_strip, Swatch};
use super::MODES;
use super::{
    colour, grid, workload_title, workloads, ChartResult, AXIS_DESC_SIZE, CAPTION_SIZE, FONT,
    LABEL_SIZE, TITLE_SIZE,
};
use crate::render::markdown::{combination_label, combinations};
use crate::render::Evaluation;
use crate::suite::schema::ModeSummary;
use crate::suite::schema::RowSummary;
use stcp_proto::Mode;

/// Centre of bar `j` of `n` in group `i` (groups one unit apart, bars filling 0.8 of a unit).
pub(super) fn bar_centre(i: usize, j: usize, n: usize) -> f64 {
    i as f64 - 0.4 + (j as f64 + 0.5) * 0.8 / n as f64
}

/// A bar from 0 to `height`, `width` wide around `centre`.
pub(super) fn bar(centre: f64, width: f64, height: f64, c: RGBColor) -> Rectangle<(f64, f64)> {
    Rectangle::new(
        [(centre - width / 2.0, 0.0), (centre + width / 2.0, height)],
        c.filled(),
    )
}

/// A min–max whisker at `centre`.
pub(super) fn whisker(centre: f64, width: f64, lo: f64, hi: f64) -> Vec<PathElement<(f64, f64)>> {
    let style = BLACK.stroke_width(2);
    let cap = width / 4.0;
    vec![
        PathElement::new(vec![(centre, lo), (centre, hi)], style),
        PathElement::new(vec![(centre - cap, lo), (centre + cap, lo)], style),
        PathElement::new(vec![(centre - cap, hi), (centre + cap, hi)], style),
    ]
}

pub(super) fn label_above(text: String, at: (f64, f64)) -> Text<'static, (f64, f64), String> {
    Text::new(
        text,
        at,
        (FONT, LABEL_SIZE)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom)),
    )
}

pub(super) fn spread(m: &ModeSummary) -> (f64, f64) {
    let v = &m.requests_per_second_runs;
    (
        v.iter().copied().fold(f64::INFINITY, f64::min),
        v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

pub(super) fn backends(evaluation: &Evaluation, path: &Path) -> ChartResult {
    let rows = &evaluation.rows;
    let workloads = workloads(rows);
    let combos = combinations(rows);
    // Several combinations need the whole width for their labels: one panel per line then.
    let (grid_rows, grid_cols) = if combos.len() > 2 {
        (workloads.len().max(1), 1)
    } else {
        grid(workloads.len())
    };
    let height = 80 + 420 * grid_rows as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let body = root.titled(
        "Requests/s per backend combination (crypto / server io), TCP and STCP",
        (FONT, TITLE_SIZE),
    )?;
    let key_points: Vec<f64> = (0..combos.len()).map(|i| i as f64).collect();
    for (panel, (payload, clients)) in body
        .split_evenly((grid_rows, grid_cols))
        .iter()
        .zip(&workloads)
    {
        let of = |combination: &str| {
            rows.iter().find(|r| {
                r.payload_bytes == *payload
                    && r.clients == *clients
                    && combination_label(r) == combination
            })
        };
        let y_max = combos
            .iter()
            .filter_map(|c| of(c))
            .flat_map(RowSummary::summaries)
            .map(|m| spread(m).1.max(m.requests_per_second))
            .fold(1.0f64, f64::max)
            * 1.45;
        let mut chart = ChartBuilder::on(panel)
            .caption(workload_title(*payload, *clients), (FONT, CAPTION_SIZE))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(
                TickedAxis::new(-0.6..combos.len() as f64 - 0.4, key_points.clone()),
                0.0..y_max,
            )?;
        chart
            .configure_mesh()
            .x_desc("Backend combination (crypto / server io); whiskers: slowest and fastest run")
            .y_desc("Requests/s")
            .axis_desc_style((FONT, AXIS_DESC_SIZE))
            .label_style((FONT, LABEL_SIZE))
            .x_label_formatter(&|x| combos.get(x.round() as usize).cloned().unwrap_or_default())
            .y_label_formatter(&|v| rps_tick(*v))
            .disable_x_mesh()
            .light_line_style(WHITE)
            .draw()?;
        let drawn: Vec<(&str, Mode)> = MODES
            .into_iter()
            .filter(|(_, m)| rows.iter().any(|r| r.of_mode(*m).is_some()))
            .collect();
        let n = drawn.len().max(1);
        let width = 0.8 / n as f64 * 0.85;
        for (j, (mode, m)) in drawn.into_iter().enumerate() {
            let c = colour(m, 0);
            let bars: Vec<Rectangle<(f64, f64)>> = combos
                .iter()
                .enumerate()
                .filter_map(|(i, combination)| {
                    let s = of(combination).and_then(|r| r.of_mode(m))?;
                    Some(bar(bar_centre(i, j, n), width, s.requests_per_second, c))
                })
                .collect();
            chart
                .draw_series(bars)?
                .label(mode)
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], c.filled()));
            for (i, combination) in combos.iter().enumerate() {
                let Some(s) = of(combination).and_then(|r| r.of_mode(m)) else {
                    continue;
                };
                if s.runs > 1 {
                    let (lo, hi) = spread(s);
                    chart.draw_series(whisker(bar_centre(i, j, n), width, lo, hi))?;
                }
            }
        }
        for (i, combination) in combos.iter().enumerate() {
            let Some(row) = of(combination) else { continue };
            let (Some(ratio), Some(top)) = (
                &row.ratio,
                row.summaries()
                    .map(|m| spread(m).1.max(m.requests_per_second))
                    .reduce(f64::max),
            ) else {
                continue;
            };
            let tls = row
                .stcp_tls_ratio
                .as_ref()
                .map(|r| format!(", STCP/TLS {:.3}", r.median))
                .unwrap_or_default();
            chart.draw_series(std::iter::once(label_above(
                format!("STCP/TCP {:.3}{tls}", ratio.median),
                (i as f64, top + y_max * 0.02),
            )))?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    }
    root.present()?;
    Ok(())
}

pub(super) fn ratio(evaluation: &Evaluation, path: &Path) -> ChartResult {
    let rows = &evaluation.rows;
    let workloads = workloads(rows);
    let combos = combinations(rows);
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let body = root.titled(
        "STCP requests/s as a fraction of TCP's, per row",
        (FONT, TITLE_SIZE),
    )?;
    let mut legend = vec![entry("1.0: as fast as TCP", Swatch::Dashed(BLACK))];
    legend.extend(
        combos
            .iter()
            .enumerate()
            .map(|(j, c)| entry(c.clone(), Swatch::Bar(colour(Mode::Stcp, j)))),
    );
    let body = legend_strip(&body, &legend, usize::MAX)?;
    let y_max = rows
        .iter()
        .filter_map(|r| r.ratio.as_ref().map(|q| q.max))
        .fold(1.0f64, f64::max)
        * 1.15;
    let key_points: Vec<f64> = (0..workloads.len()).map(|i| i as f64).collect();
    let mut chart = ChartBuilder::on(&body)
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(
            TickedAxis::new(-0.6..workloads.len() as f64 - 0.4, key_points),
            0.0..y_max,
        )?;
    chart
        .configure_mesh()
        .x_desc("Payload per request × connections; bars: median of the pairs, whiskers: min–max")
        .y_desc("STCP requests/s ÷ TCP requests/s")
        .axis_desc_style((FONT, AXIS_DESC_SIZE))
        .label_style((FONT, LABEL_SIZE))
        .x_label_formatter(&|x| {
            workloads
                .get(x.round() as usize)
                .map(|(p, c)| workload_title(*p, *c))
                .unwrap_or_default()
        })
        .y_label_formatter(&|v| format!("{v:.1}"))
        .disable_x_mesh()
        .light_line_style(WHITE)
        .draw()?;
    chart.draw_series(DashedLineSeries::new(
        vec![(-0.6, 1.0), (workloads.len() as f64 - 0.4, 1.0)],
        6,
        4,
        BLACK.stroke_width(1),
    ))?;
    let n = combos.len().max(1);
    let width = 0.8 / n as f64 * 0.85;
    for (j, combination) in combos.iter().enumerate() {
        let c = colour(Mode::Stcp, j);
        let mut bars = Vec::new();
        let mut whiskers = Vec::new();
        let mut labels = Vec::new();
        for (i, (payload, clients)) in workloads.iter().enumerate() {
            let Some(q) = rows
                .iter()
                .find(|r| {
                    r.payload_bytes == *payload
                        && r.clients == *clients
                        && combination_label(r) == *combination
                })
                .and_then(|r| r.ratio.as_ref())
            else {
                continue;
            };
            let centre = bar_centre(i, j, n);
            bars.push(bar(centre, width, q.median, c));
            if q.pairs.len() > 1 {
                whiskers.extend(whisker(centre, width, q.min, q.max));
            }
            labels.push(label_above(
                format!("{:.3}", q.median),
                (centre, q.max + y_max * 0.01),
            ));
        }
        chart.draw_series(bars)?;
        chart.draw_series(whiskers)?;
        chart.draw_series(labels)?;
    }
    root.present()?;
    Ok(())
}
