//! Scatter plots.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::PlotError;
use crate::common::{draw_note, finite_bounds, padded, text, xy_chart};
use crate::render::{DrawResult, Figure, Output, render};

/// A scatter plot of annotated points, written by [`scatter`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scatter {
    /// Title drawn above the plot.
    pub title: String,
    /// Description of the x axis.
    pub x_label: String,
    /// Description of the y axis.
    pub y_label: String,
    /// `(x, y, annotation)` for each point; the annotation is written next to the point.
    /// Points with a non-finite coordinate are skipped.
    pub points: Vec<(f64, f64, String)>,
}

/// Draws `plot` to `output` (`.png` or `.svg`, 1000x600 pixels) as red circles with their
/// annotations.
///
/// Axis ranges follow the finite points, with a margin; a single point or equal coordinates
/// get a padded range, and with no finite point at all the axes are drawn empty with a note.
/// Fails on an unknown extension or when the file cannot be written.
pub fn scatter<'a>(output: impl Into<Output<'a>>, plot: &Scatter) -> Result<(), PlotError> {
    render(output, Ok(()), plot)
}

impl Figure for Scatter {
    fn size(&self) -> (u32, u32) {
        (1000, 600)
    }

    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let points: Vec<&(f64, f64, String)> =
            self.points.iter().filter(|(x, y, _)| x.is_finite() && y.is_finite()).collect();
        let range =
            |bounds: Option<(f64, f64)>| bounds.map_or((0.0, 1.0), |(lo, hi)| padded(lo, hi, 0.08));
        let (x0, x1) = range(finite_bounds(points.iter().map(|p| p.0)));
        let (y0, y1) = range(finite_bounds(points.iter().map(|p| p.1)));

        let mut chart =
            xy_chart(root, &self.title, (&self.x_label, &self.y_label), (x0, x1), (y0, y1))?;

        let note_style = text(12.0).pos(Pos::new(HPos::Left, VPos::Bottom));
        chart.draw_series(points.iter().map(|(x, y, label)| {
            // Only values beyond ±1e300 lie outside the ranges; pin them to the border.
            EmptyElement::at((x.clamp(x0, x1), y.clamp(y0, y1)))
                + Circle::new((0, 0), 5, RED.filled())
                + Text::new(label.clone(), (7, -4), note_style.clone())
        }))?;
        if points.is_empty() {
            let (xs, ys) = chart.plotting_area().get_pixel_range();
            draw_note(
                root,
                "no finite points",
                ((xs.start + xs.end) / 2, (ys.start + ys.end) / 2),
            )?;
        }
        Ok(())
    }
}
