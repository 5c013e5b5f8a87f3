//! Line charts with optional confidence bands.

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::PlotError;
use crate::common::{draw_note, finite_bounds, padded, text, xy_chart};
use crate::render::{DrawResult, Figure, Output, render};

/// One curve of a [`LineChart`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// `(x, y)` points, drawn in order; points with a non-finite coordinate are skipped.
    pub points: Vec<(f64, f64)>,
    /// `(low, high)` for each point: a shaded band (a confidence interval), or empty for none.
    pub band: Vec<(f64, f64)>,
}

/// Curves over a shared x axis, written by [`line_chart`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineChart {
    /// Title drawn above the plot.
    pub title: String,
    /// Description of the x axis.
    pub x_label: String,
    /// Description of the y axis.
    pub y_label: String,
    /// The curves, each in its own colour with a legend entry.
    pub series: Vec<Series>,
}

/// Draws `chart` to `output` (`.png` or `.svg`, 1000x600 pixels): one coloured line per series
/// with its band shaded, and a legend. With no finite point the axes are drawn empty with a
/// note. Fails on an unknown extension or when the file cannot be written.
pub fn line_chart<'a>(output: impl Into<Output<'a>>, chart: &LineChart) -> Result<(), PlotError> {
    render(output, Ok(()), chart)
}

impl Figure for LineChart {
    fn size(&self) -> (u32, u32) {
        (1000, 600)
    }

    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let finite = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite();
        let xs =
            self.series.iter().flat_map(|s| s.points.iter().filter(|p| finite(p)).map(|p| p.0));
        let ys = self.series.iter().flat_map(|s| {
            s.points
                .iter()
                .filter(|p| finite(p))
                .map(|p| p.1)
                .chain(s.band.iter().filter(|b| finite(b)).flat_map(|b| [b.0, b.1]))
        });
        let range =
            |bounds: Option<(f64, f64)>| bounds.map_or((0.0, 1.0), |(lo, hi)| padded(lo, hi, 0.05));
        let (x0, x1) = range(finite_bounds(xs));
        let (y0, y1) = range(finite_bounds(ys));
        let mut chart =
            xy_chart(root, &self.title, (&self.x_label, &self.y_label), (x0, x1), (y0, y1))?;
        let mut any = false;
        for (i, s) in self.series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            let points: Vec<(f64, f64)> = s.points.iter().copied().filter(finite).collect();
            any |= !points.is_empty();
            if s.band.len() == s.points.len() && !s.band.is_empty() {
                let upper = s.points.iter().zip(&s.band).filter(|(p, b)| finite(p) && finite(b));
                let mut polygon: Vec<(f64, f64)> = upper.clone().map(|(p, b)| (p.0, b.1)).collect();
                polygon.extend(upper.rev().map(|(p, b)| (p.0, b.0)));
                chart.draw_series(std::iter::once(Polygon::new(
                    polygon,
                    colour.mix(0.2).filled(),
                )))?;
            }
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        if self.series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .label_font(text(12.0))
                .draw()?;
        }
        if !any {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_curves_bands_and_empty_charts() {
        let dir = tempfile::tempdir().unwrap();
        let chart = LineChart {
            title: "t".into(),
            x_label: "tau".into(),
            y_label: "influence".into(),
            series: vec![
                Series {
                    name: "a".into(),
                    points: vec![(-1.0, 0.2), (0.0, 0.5), (1.0, 0.9)],
                    band: vec![(0.1, 0.3), (0.4, 0.6), (0.8, 1.0)],
                },
                Series {
                    name: "b".into(),
                    points: vec![(-1.0, f64::NAN), (1.0, 0.1)],
                    band: vec![],
                },
            ],
        };
        for ext in ["png", "svg"] {
            let p = dir.path().join(format!("c.{ext}"));
            line_chart(&p, &chart).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() > 1000);
        }
        line_chart(&dir.path().join("e.png"), &LineChart::default()).unwrap();
        assert!(line_chart(&dir.path().join("e.bmp"), &chart).is_err());
    }
}
