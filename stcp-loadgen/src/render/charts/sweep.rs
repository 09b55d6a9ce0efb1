//! The hockey-stick chart of sweeps (`sweep.svg`): p50, p99 and p99.9 latency (log scale) against
//! achieved requests/s, one colour per mode, one panel per sweep; the SLO drawn across, and each
//! mode's capacity marked on its p99 line and by a dotted line down to the axis.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use stcp_proto::Mode;

use super::axis::{latency_tick, log_latency_ticks, rps_tick, TickedAxis};
use super::legend::{entry, legend_strip, LegendEntry, Swatch};
use super::{
    colour, grid, ChartResult, AXIS_DESC_SIZE, CAPTION_SIZE, FONT, LABEL_SIZE, TITLE_SIZE,
};
use crate::render::capacity::mode_label;
use crate::render::markdown::rps;
use crate::render::Evaluation;
use crate::summary::latency;
use crate::sweep::schema::{SweepReport, SweepStep};

/// The SLO line's colour.
const SLO_COLOUR: RGBColor = RGBColor(90, 90, 90);

/// Reads one latency figure (µs) of a step.
type Read = fn(&SweepStep) -> f64;

/// The percentiles drawn, how to read each from a step, and how its line looks.
const PERCENTILES: [(&str, Read, Look); 3] = [
    ("p50", |s| s.latency.p50_us, Look::Thin),
    ("p99", |s| s.latency.p99_us, Look::Thick),
    ("p99.9", |s| s.latency.p99_9_us, Look::Dashed),
];

#[derive(Clone, Copy)]
enum Look {
    Thin,
    Thick,
    Dashed,
}

/// The points of one percentile of one mode: (achieved req/s, log10 µs), in the order of the
/// offered rate, so that a step that fell behind its schedule bends the line back.
fn points(steps: &[&SweepStep], read: Read) -> Vec<(f64, f64)> {
    let mut by_offer: Vec<&&SweepStep> = steps.iter().filter(|s| s.latency.count > 0).collect();
    by_offer.sort_by(|a, b| a.target_per_second.total_cmp(&b.target_per_second));
    by_offer
        .iter()
        .map(|s| (s.achieved_per_second, read(s).max(1.0).log10()))
        .collect()
}

pub(super) fn sweep(evaluation: &Evaluation, path: &Path) -> ChartResult {
    let sweeps = &evaluation.sweeps;
    let (grid_rows, grid_cols) = grid(sweeps.len());
    let legend: Vec<LegendEntry> = [Mode::Tcp, Mode::Stcp]
        .iter()
        .flat_map(|&mode| {
            let c = colour(mode, 0);
            PERCENTILES.map(|(name, _, look)| {
                entry(
                    format!("{} {name}", mode_label(mode)),
                    match look {
                        Look::Thin => Swatch::Thin(c),
                        Look::Thick => Swatch::Line(c),
                        Look::Dashed => Swatch::Dashed(c),
                    },
                )
            })
        })
        .chain([entry("SLO (p99)", Swatch::Dashed(SLO_COLOUR))])
        .collect();
    let height = 150 + 520 * grid_rows as u32;
    let width = if grid_cols > 1 { 1400 } else { 1000 };
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let body = root.titled(
        "Latency against load: p50, p99, p99.9 per achieved requests/s (open loop)",
        (FONT, TITLE_SIZE),
    )?;
    let body = legend_strip(&body, &legend, 3)?;
    for (panel, sweep) in body.split_evenly((grid_rows, grid_cols)).iter().zip(sweeps) {
        panel_of(panel, sweep)?;
    }
    root.present()?;
    Ok(())
}

fn panel_of<'b>(
    panel: &DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    sweep: &SweepReport,
) -> ChartResult {
    let slo = sweep.configuration.slo_p99_us;
    let values: Vec<f64> = sweep
        .steps
        .iter()
        .filter(|s| s.latency.count > 0)
        .flat_map(|s| PERCENTILES.map(|(_, read, _)| read(s)))
        .chain([slo])
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min) / 1.5;
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max) * 2.0;
    let x_max = sweep
        .steps
        .iter()
        .map(|s| s.achieved_per_second)
        .fold(1.0f64, f64::max)
        * 1.08;
    let mut chart = ChartBuilder::on(panel)
        .caption(
            format!(
                "{}, SLO p99 {}",
                sweep.workload(),
                latency(slo).replace(" us", " µs")
            ),
            (FONT, CAPTION_SIZE),
        )
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d(
            0.0..x_max,
            TickedAxis::new(lo.log10()..hi.log10(), log_latency_ticks(lo, hi)),
        )?;
    chart
        .configure_mesh()
        .x_desc("Achieved requests/s")
        .y_desc("Latency from intended send (log scale)")
        .axis_desc_style((FONT, AXIS_DESC_SIZE))
        .label_style((FONT, LABEL_SIZE))
        .x_label_formatter(&|v| rps_tick(*v))
        .y_label_formatter(&|v| latency_tick(*v))
        .light_line_style(WHITE)
        .draw()?;

    // The SLO across the whole width.
    chart.draw_series(DashedLineSeries::new(
        vec![(0.0, slo.log10()), (x_max, slo.log10())],
        10,
        6,
        SLO_COLOUR.stroke_width(2),
    ))?;
    let label_font = |c: RGBColor, h: HPos| {
        (FONT, LABEL_SIZE)
            .into_font()
            .color(&c)
            .pos(Pos::new(h, VPos::Bottom))
    };
    chart.draw_series(std::iter::once(Text::new(
        format!("SLO p99 {}", latency(slo).replace(" us", " µs")),
        (x_max * 0.99, slo.log10()),
        label_font(SLO_COLOUR, HPos::Right),
    )))?;

    let modes: Vec<Mode> = sweep.modes.iter().map(|m| m.mode).collect();
    for (k, &mode) in modes.iter().enumerate() {
        let c = colour(mode, 0);
        let steps: Vec<&SweepStep> = sweep.steps.iter().filter(|s| s.mode == mode).collect();
        for (_, read, look) in PERCENTILES {
            let pts = points(&steps, read);
            match look {
                Look::Thin => {
                    chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(1)))?;
                    chart.draw_series(pts.iter().map(|p| Circle::new(*p, 2, c.filled())))?;
                }
                Look::Thick => {
                    chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(3)))?;
                    chart.draw_series(pts.iter().map(|p| Circle::new(*p, 4, c.filled())))?;
                }
                Look::Dashed => {
                    chart.draw_series(DashedLineSeries::new(
                        pts.clone(),
                        7,
                        5,
                        c.stroke_width(2),
                    ))?;
                    chart
                        .draw_series(pts.iter().map(|p| TriangleMarker::new(*p, 4, c.filled())))?;
                }
            }
        }
        // The capacity: a ring on its p99 point, a dotted line down, and its figure.
        let capacity = sweep.modes.iter().find(|m| m.mode == mode);
        if let Some((cap, p99)) =
            capacity.and_then(|m| m.capacity_per_second.zip(m.capacity_p99_us))
        {
            let y = p99.max(1.0).log10();
            chart.draw_series(std::iter::once(Circle::new((cap, y), 9, c.stroke_width(2))))?;
            let bottom = lo.log10();
            let dots: Vec<PathElement<(f64, f64)>> = (0..24)
                .filter(|i| i % 2 == 0)
                .map(|i| {
                    let at = |j: f64| bottom + (y - bottom) * j / 24.0;
                    PathElement::new(
                        vec![(cap, at(i as f64)), (cap, at(i as f64 + 1.0))],
                        c.stroke_width(2),
                    )
                })
                .collect();
            chart.draw_series(dots)?;
            // Labels stacked near the top, right-aligned so they stay inside the plot.
            let top = hi.log10() - (hi.log10() - lo.log10()) * (0.06 + 0.07 * k as f64);
            chart.draw_series(std::iter::once(Text::new(
                format!("{} capacity {} req/s", mode_label(mode), rps(cap)),
                (cap, top),
                label_font(
                    c,
                    if cap > x_max * 0.6 {
                        HPos::Right
                    } else {
                        HPos::Left
                    },
                ),
            )))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_follow_the_offered_rate_and_read_achieved_rates() {
        let mk = |target: f64, achieved: f64, p99: f64| {
            let mut h = crate::stats::new_histogram();
            crate::stats::record_ns(&mut h, (p99 * 1000.0) as u64);
            SweepStep {
                sequence: 1,
                file: String::new(),
                mode: Mode::Tcp,
                phase: crate::sweep::search::Phase::Climb,
                target_per_second: target,
                achieved_per_second: achieved,
                fraction: achieved / target,
                kept_schedule: achieved >= 0.99 * target,
                busy_side: None,
                latency: crate::stats::LatencySummary::of(&h),
                requests: 1,
                errors_total: 0,
                partial: false,
                within_slo: false,
            }
        };
        let steps = [
            mk(4000.0, 3000.0, 50_000.0),
            mk(1000.0, 1000.0, 100.0),
            mk(2000.0, 2000.0, 200.0),
        ];
        let refs: Vec<&SweepStep> = steps.iter().collect();
        let pts = points(&refs, |s| s.latency.p99_us);
        let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
        assert_eq!(xs, [1000.0, 2000.0, 3000.0]);
        assert!(pts[2].1 > pts[1].1);
    }
}
