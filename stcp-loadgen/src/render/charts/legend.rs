//! Legends: plotters' box inside the plot (for charts with two series and room above them), and
//! a strip under the title with every series (for charts with many), which never covers a line.

use std::error::Error;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::TickedAxis;
use super::{ChartResult, FONT, LABEL_SIZE};

pub(super) fn draw_legend<'a, 'b: 'a, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<TickedAxis, Y>>,
    position: SeriesLabelPosition,
) -> ChartResult {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, LABEL_SIZE))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.5))
        .margin(8)
        .draw()?;
    Ok(())
}

/// How a legend entry shows its series.
#[derive(Clone, Copy)]
pub(super) enum Swatch {
    Line(RGBColor),
    /// A thin line with small points.
    Thin(RGBColor),
    Dashed(RGBColor),
    Bar(RGBColor),
}

pub(super) struct LegendEntry {
    pub label: String,
    pub swatch: Swatch,
}

pub(super) fn entry(label: impl Into<String>, swatch: Swatch) -> LegendEntry {
    LegendEntry {
        label: label.into(),
        swatch,
    }
}

/// Height of one line of a legend strip, pixels.
pub(super) const LEGEND_LINE: i32 = 24;

/// Draws the legend as a strip at the top of `area`, entries in as many equal columns as fit (at
/// most `max_columns`: 2 puts TCP and STCP of one combination on one line), centred; returns the
/// area below it.
pub(super) fn legend_strip<'b>(
    area: &DrawingArea<SVGBackend<'b>, Shift>,
    entries: &[LegendEntry],
    max_columns: usize,
) -> Result<DrawingArea<SVGBackend<'b>, Shift>, Box<dyn Error>> {
    let (width, _) = area.dim_in_pixel();
    let width = width as i32;
    // plotters estimates text as 0.7 em a character; columns are as wide as the longest entry.
    let longest = entries
        .iter()
        .map(|e| e.label.chars().count())
        .max()
        .unwrap_or(0) as i32;
    let column = 40 + longest * (LABEL_SIZE as i32 + 1) * 6 / 10;
    let per_line =
        (width / column.max(1)).clamp(1, entries.len().clamp(1, max_columns.max(1)) as i32);
    let lines = (entries.len() as i32 + per_line - 1) / per_line;
    let (strip, rest) = area.split_vertically(lines * LEGEND_LINE + 14);
    let left = (width - per_line * column) / 2;
    let font = (FONT, LABEL_SIZE + 1)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, e) in entries.iter().enumerate() {
        let (line, col) = (i as i32 / per_line, i as i32 % per_line);
        let (x, y) = (
            left + col * column,
            8 + LEGEND_LINE / 2 + line * LEGEND_LINE,
        );
        match e.swatch {
            Swatch::Line(c) => {
                strip.draw(&PathElement::new(
                    vec![(x, y), (x + 26, y)],
                    c.stroke_width(3),
                ))?;
                strip.draw(&Circle::new((x + 13, y), 4, c.filled()))?;
            }
            Swatch::Thin(c) => {
                strip.draw(&PathElement::new(
                    vec![(x, y), (x + 26, y)],
                    c.stroke_width(1),
                ))?;
                strip.draw(&Circle::new((x + 13, y), 2, c.filled()))?;
            }
            Swatch::Dashed(c) => {
                for dash in 0..3 {
                    let x0 = x + dash * 10;
                    strip.draw(&PathElement::new(
                        vec![(x0, y), (x0 + 6, y)],
                        c.stroke_width(2),
                    ))?;
                }
            }
            Swatch::Bar(c) => {
                strip.draw(&Rectangle::new(
                    [(x + 6, y - 7), (x + 20, y + 7)],
                    c.filled(),
                ))?;
            }
        }
        strip.draw(&Text::new(e.label.clone(), (x + 34, y), font.clone()))?;
    }
    Ok(rest)
}
