//! Bar charts.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::PlotError;
use crate::common::{
    BAR_COLOUR, HIGHLIGHT_COLOUR, draw_note, finite_bounds, fmt_num, padded, text, truncate,
};
use crate::render::{DrawResult, Figure, Output, render};

/// A bar chart: one bar per category, written by [`bar_chart`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarChart {
    /// Title drawn above the chart.
    pub title: String,
    /// Description of the y axis.
    pub y_label: String,
    /// Category names, one per value, written under the bars (rotated when they do not fit).
    pub labels: Vec<String>,
    /// Bar heights. A non-finite value draws no bar, and its label gets " (nan)", " (inf)" or
    /// " (-inf)" appended.
    pub values: Vec<f64>,
    /// Index of a bar drawn in another colour (red instead of blue), if any.
    pub highlight: Option<usize>,
}

/// Draws `chart` to `output` (`.png` or `.svg`, 1000x600 pixels).
///
/// The y axis spans zero and every finite value, with a margin. Fails when `labels` and
/// `values` differ in length, on an unknown extension, or when the file cannot be written.
pub fn bar_chart<'a>(output: impl Into<Output<'a>>, chart: &BarChart) -> Result<(), PlotError> {
    let check = if chart.labels.len() == chart.values.len() {
        Ok(())
    } else {
        Err(format!(
            "a bar chart needs one label per value, got {} labels for {} values",
            chart.labels.len(),
            chart.values.len()
        ))
    };
    render(output, check, chart)
}

/// Longest category label, in characters, before it is cut.
const MAX_LABEL_CHARS: usize = 32;
const MARGIN: u32 = 15;
const Y_AREA: u32 = 80;

/// The label written under a bar: the name, marked when the value is not finite.
fn category_label(name: &str, value: f64) -> String {
    let name = truncate(name, MAX_LABEL_CHARS);
    if value.is_nan() {
        format!("{name} (nan)")
    } else if value == f64::INFINITY {
        format!("{name} (inf)")
    } else if value == f64::NEG_INFINITY {
        format!("{name} (-inf)")
    } else {
        name
    }
}

/// The y range: zero and every finite value, with a 5% margin away from zero.
fn value_range(values: &[f64]) -> (f64, f64) {
    let (lo, hi) = finite_bounds(values.iter().copied().chain([0.0])).unwrap_or((0.0, 0.0));
    let (a, b) = padded(lo, hi, 0.05);
    let a = if lo >= 0.0 { 0.0 } else { a };
    let b = if hi <= 0.0 { 0.0 } else { b };
    if a < b { (a, b) } else { (0.0, 1.0) }
}

impl Figure for BarChart {
    fn size(&self) -> (u32, u32) {
        (1000, 600)
    }

    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let n = self.values.len();
        let labels: Vec<String> =
            self.labels.iter().zip(&self.values).map(|(l, &v)| category_label(l, v)).collect();
        let label_style = text(if n > 15 { 12.0 } else { 14.0 });
        let mut widest = 0;
        for label in &labels {
            widest = widest.max(root.estimate_text_size(label, &label_style)?.0);
        }
        let (width, height) = root.dim_in_pixel();
        let slot = f64::from(width.saturating_sub(Y_AREA + 2 * MARGIN)) / n.max(1) as f64;
        let rotate = f64::from(widest) > 0.9 * slot;
        let x_area = if rotate { (widest + 16).min(height * 2 / 5) } else { 36 };

        let (y0, y1) = value_range(&self.values);
        let x_end = n.max(1) as f64 - 0.5;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, text(24.0))
            .margin(MARGIN)
            .x_label_area_size(x_area)
            .y_label_area_size(Y_AREA)
            .build_cartesian_2d(-0.5..x_end, y0..y1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(8)
            .y_max_light_lines(1)
            // A tick at zero computed as a sum of steps prints as 0, not -5.55e-17.
            .y_label_formatter(&|v| fmt_num(if v.abs() < (y1 - y0) * 1e-9 { 0.0 } else { *v }))
            .y_desc(self.y_label.as_str())
            .label_style(text(13.0))
            .axis_desc_style(text(15.0))
            .draw()?;

        let colour =
            |i: usize| if self.highlight == Some(i) { HIGHLIGHT_COLOUR } else { BAR_COLOUR };
        chart.draw_series(self.values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(
            |(i, &v)| {
                let x = i as f64;
                Rectangle::new([(x - 0.4, 0.0), (x + 0.4, v.clamp(y0, y1))], colour(i).filled())
            },
        ))?;
        if y0 < 0.0 {
            chart.draw_series([PathElement::new(vec![(-0.5, 0.0), (x_end, 0.0)], BLACK)])?;
        }

        let anchor = if rotate {
            Pos::new(HPos::Right, VPos::Center)
        } else {
            Pos::new(HPos::Center, VPos::Top)
        };
        for (i, label) in labels.iter().enumerate() {
            let mut style = label_style.pos(anchor);
            if self.highlight == Some(i) {
                style = style.color(&HIGHLIGHT_COLOUR);
            }
            if rotate {
                style = style.transform(FontTransform::Rotate270);
            }
            let (x, y) = chart.backend_coord(&(i as f64, y0));
            root.draw_text(label, &style, (x, y + 6))?;
        }
        if n == 0 {
            let (xs, ys) = chart.plotting_area().get_pixel_range();
            draw_note(root, "no data", ((xs.start + xs.end) / 2, (ys.start + ys.end) / 2))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_mark_non_finite_values() {
        assert_eq!(category_label("a", 1.0), "a");
        assert_eq!(category_label("a", f64::NAN), "a (nan)");
        assert_eq!(category_label("a", f64::INFINITY), "a (inf)");
        assert_eq!(category_label("a", f64::NEG_INFINITY), "a (-inf)");
    }

    #[test]
    fn value_range_includes_zero() {
        assert_eq!(value_range(&[]), (0.0, 1.0));
        assert_eq!(value_range(&[0.0, 0.0]), (0.0, 1.0));
        assert_eq!(value_range(&[2.0, f64::NAN]), (0.0, 2.1));
        assert_eq!(value_range(&[-2.0]), (-2.1, 0.0));
        let (a, b) = value_range(&[-1.0, 1.0]);
        assert!(a < -1.0 && b > 1.0);
    }
}
