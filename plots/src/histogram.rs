//! Grids of histograms.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::PlotError;
use crate::common::{BAR_COLOUR, draw_note, finite_bounds, fmt_num, padded, text, truncate};
use crate::render::{DrawResult, Figure, Output, render};

/// Most bins a histogram may have.
const MAX_BINS: usize = 10_000;
/// Histograms per row of the grid.
const PANELS_PER_ROW: usize = 5;

/// Draws one histogram of `bins` equal-width bins per `(name, values)` panel, in a grid of up
/// to five per row under `title`, to `output` (`.png` or `.svg`).
///
/// Each histogram spans the finite values of its panel (non-finite ones are ignored) and is
/// titled with its name. Fails when `bins` is 0 or above 10 000, on an unknown extension,
/// or when the file cannot be written.
pub fn histograms<'a>(
    output: impl Into<Output<'a>>,
    title: &str,
    panels: &[(String, Vec<f64>)],
    bins: usize,
) -> Result<(), PlotError> {
    let check = if (1..=MAX_BINS).contains(&bins) {
        Ok(())
    } else {
        Err(format!("a histogram needs between 1 and {MAX_BINS} bins, got {bins}"))
    };
    render(output, check, &Histograms { title, panels, bins })
}

/// The figure drawn by [`histograms`].
struct Histograms<'a> {
    title: &'a str,
    panels: &'a [(String, Vec<f64>)],
    bins: usize,
}

impl Histograms<'_> {
    /// Columns and rows of the grid.
    fn grid(&self) -> (usize, usize) {
        let cols = self.panels.len().clamp(1, PANELS_PER_ROW);
        (cols, self.panels.len().div_ceil(cols).max(1))
    }
}

/// Bin counts of the finite `values` over `lo..=hi`, in `bins` equal bins.
fn bin_counts(values: &[f64], lo: f64, hi: f64, bins: usize) -> Vec<u64> {
    let mut counts = vec![0; bins];
    // Halving keeps the width finite for values near f64::MAX.
    let half_width = (hi / 2.0 - lo / 2.0) / bins as f64;
    for &v in values.iter().filter(|v| v.is_finite()) {
        let position = (v / 2.0 - lo / 2.0) / half_width;
        let bin = if position.is_finite() { position.max(0.0) as usize } else { 0 };
        counts[bin.min(bins - 1)] += 1;
    }
    counts
}

impl Figure for Histograms<'_> {
    fn size(&self) -> (u32, u32) {
        let (cols, rows) = self.grid();
        let w = (cols as u64 * 300).max(1000);
        let h = (rows as u64 * 260 + 50).max(600);
        (u32::try_from(w).unwrap_or(u32::MAX), u32::try_from(h).unwrap_or(u32::MAX))
    }

    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let body = root.titled(self.title, text(24.0))?;
        if self.panels.is_empty() {
            let (w, h) = body.dim_in_pixel();
            return draw_note(&body, "no panels", (w as i32 / 2, h as i32 / 2));
        }
        let (cols, rows) = self.grid();
        for (area, (name, values)) in body.split_evenly((rows, cols)).iter().zip(self.panels) {
            draw_panel(area, name, values, self.bins)?;
        }
        Ok(())
    }
}

/// Draws the histogram of one panel on `area`.
fn draw_panel<DB>(
    area: &DrawingArea<DB, Shift>,
    name: &str,
    values: &[f64],
    bins: usize,
) -> DrawResult
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let bounds = finite_bounds(values.iter().copied());
    let (lo, hi) = bounds.map_or((0.0, 1.0), |(lo, hi)| padded(lo, hi, 0.0));
    let counts = bounds.map(|_| bin_counts(values, lo, hi, bins)).unwrap_or_default();
    let highest = counts.iter().copied().max().unwrap_or(0);
    let y_top = highest + (highest / 10).max(1);

    let caption = truncate(name, 40);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, text(15.0))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(50)
        .build_cartesian_2d(lo..hi, 0..y_top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(5)
        .y_labels(5)
        .y_max_light_lines(1)
        .x_label_formatter(&|v| fmt_num(*v))
        .label_style(text(11.0))
        .draw()?;
    let width = (hi - lo) / bins as f64;
    chart.draw_series(counts.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, &n)| {
        let left = lo + width * i as f64;
        Rectangle::new([(left, 0), (left + width, n)], BAR_COLOUR.filled())
    }))?;
    if bounds.is_none() {
        let (xs, ys) = chart.plotting_area().get_pixel_range();
        let (bx, by) = area.get_base_pixel();
        let centre = ((xs.start + xs.end) / 2 - bx, (ys.start + ys.end) / 2 - by);
        draw_note(area, "no finite values", centre)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cover_every_finite_value() {
        let counts = bin_counts(&[0.0, 0.5, 1.0, f64::NAN, 0.25], 0.0, 1.0, 4);
        assert_eq!(counts, vec![1, 1, 1, 1]);
        let counts = bin_counts(&[-f64::MAX, f64::MAX], -f64::MAX, f64::MAX, 3);
        assert_eq!(counts, vec![1, 0, 1]);
        let (lo, hi) = padded(2.0, 2.0, 0.0);
        assert_eq!(bin_counts(&[2.0, 2.0], lo, hi, 5), vec![0, 0, 2, 0, 0]);
    }
}
