//! Heatmaps: labelled rows of cells, and grids of small images.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::common::{NON_FINITE_COLOUR, Scale, draw_colour_bar, draw_note, text, truncate};
use crate::render::{DrawResult, Figure, Output, render};
use crate::{ColourScale, PlotError};

/// A heatmap: one row of coloured cells per label, written by [`heatmap`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Heatmap {
    /// Title drawn above the heatmap.
    pub title: String,
    /// Description of the x axis (the column index).
    pub x_label: String,
    /// One `(label, values)` row each, drawn top to bottom. Rows may differ in length: a
    /// shorter row just ends. Non-finite values are drawn grey.
    pub rows: Vec<(String, Vec<f64>)>,
    /// How values map to colours.
    pub scale: ColourScale,
}

/// Draws `map` to `output` (`.png` or `.svg`), with a colour bar showing the range of values.
///
/// The figure is 1000 pixels wide and at least 600 high (taller for many rows). Fails on an
/// unknown extension or when the file cannot be written.
pub fn heatmap<'a>(output: impl Into<Output<'a>>, map: &Heatmap) -> Result<(), PlotError> {
    render(output, Ok(()), map)
}

/// Draws `panels` as a grid of small `height` x `width` images (five per row), each titled
/// with its name and stored row-major (`values[row * width + column]`), to `output`.
///
/// All panels share one colour scale (symmetric around zero for
/// [`ColourScale::Diverging`]), shown by a single colour bar; non-finite values are grey.
/// Fails when `height` or `width` is zero or a panel does not hold `height * width` values,
/// on an unknown extension, or when the file cannot be written.
pub fn image_heatmaps<'a>(
    output: impl Into<Output<'a>>,
    title: &str,
    panels: &[(String, Vec<f64>)],
    height: usize,
    width: usize,
    scale: ColourScale,
) -> Result<(), PlotError> {
    let grid = ImageGrid { title, panels, height, width, scale };
    render(output, grid.check(), &grid)
}

/// Room on the right of a figure for the colour bar and its labels, in pixels.
const COLOUR_BAR_AREA: u32 = 130;
/// Longest row label, in characters, before it is cut.
const MAX_ROW_LABEL_CHARS: usize = 30;

impl Figure for Heatmap {
    fn size(&self) -> (u32, u32) {
        let rows = u32::try_from(self.rows.len()).unwrap_or(u32::MAX);
        (1000, rows.saturating_mul(18).saturating_add(170).clamp(600, 4000))
    }

    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let values = || self.rows.iter().flat_map(|(_, row)| row.iter().copied());
        let scale = Scale::new(self.scale, values());
        let non_finite = values().any(|v| !v.is_finite());
        let colour = |v: f64| scale.map_or(NON_FINITE_COLOUR, |s| s.colour(v));
        let nrows = self.rows.len();
        let ncols = self.rows.iter().map(|(_, row)| row.len()).max().unwrap_or(0);

        let body = root.margin(8, 0, 0, 0).titled(&self.title, text(24.0))?;
        let (body_width, _) = body.dim_in_pixel();
        let (main, _) = body.split_horizontally(body_width.saturating_sub(COLOUR_BAR_AREA));
        let labels: Vec<String> =
            self.rows.iter().map(|(label, _)| truncate(label, MAX_ROW_LABEL_CHARS)).collect();
        let label_style = text(13.0).pos(Pos::new(HPos::Right, VPos::Center));
        let mut widest = 0;
        for label in &labels {
            widest = widest.max(root.estimate_text_size(label, &label_style)?.0);
        }

        let y_top = nrows.max(1) as f64;
        let mut chart = ChartBuilder::on(&main)
            .margin(10)
            .x_label_area_size(50)
            .y_label_area_size((widest + 14).min(300))
            .build_cartesian_2d(0..ncols.max(1) as i32, 0.0..y_top)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .y_labels(0)
            .x_desc(self.x_label.as_str())
            .label_style(text(13.0))
            .axis_desc_style(text(15.0))
            .draw()?;
        chart.draw_series(self.rows.iter().enumerate().flat_map(|(r, (_, row))| {
            let top = y_top - r as f64;
            row.iter().enumerate().map(move |(c, &v)| {
                let c = c as i32;
                Rectangle::new([(c, top), (c + 1, top - 1.0)], colour(v).filled())
            })
        }))?;

        let (xs, ys) = chart.plotting_area().get_pixel_range();
        // Write every label when rows are at least 11 pixels high, else every k-th.
        let row_height = f64::from(ys.end - ys.start) / nrows.max(1) as f64;
        let stride = (11.0 / row_height.max(1e-3)).ceil().max(1.0) as usize;
        for (r, label) in labels.iter().enumerate().step_by(stride) {
            let (x, y) = chart.backend_coord(&(0, y_top - r as f64 - 0.5));
            root.draw_text(label, &label_style, (x - 6, y))?;
        }
        if nrows == 0 || ncols == 0 {
            draw_note(root, "no data", ((xs.start + xs.end) / 2, (ys.start + ys.end) / 2))?;
        }
        let (width, _) = root.dim_in_pixel();
        let bar_x = width as i32 - COLOUR_BAR_AREA as i32 + 20;
        draw_colour_bar(root, scale.as_ref(), non_finite, bar_x, (ys.start, ys.end))
    }
}

/// The figure drawn by [`image_heatmaps`].
struct ImageGrid<'a> {
    title: &'a str,
    panels: &'a [(String, Vec<f64>)],
    height: usize,
    width: usize,
    scale: ColourScale,
}

/// Images per row of the grid.
const PANELS_PER_ROW: usize = 5;
/// Longest side of a drawn image, in pixels.
const IMAGE_SIDE: f64 = 168.0;
/// Height of the figure title band, in pixels.
const HEADER: i32 = 56;
/// Height of a panel title band, in pixels.
const PANEL_TITLE: i32 = 24;
/// Margin left of the first column, in pixels.
const LEFT: i32 = 20;

impl ImageGrid<'_> {
    /// Checks that every panel holds a `height` x `width` image.
    fn check(&self) -> Result<(), String> {
        let (height, width) = (self.height, self.width);
        if height == 0 || width == 0 {
            return Err(format!("image panels need a non-zero size, got {height}x{width}"));
        }
        let len = height
            .checked_mul(width)
            .ok_or_else(|| format!("image panels of {height}x{width} are too large"))?;
        for (name, values) in self.panels {
            if values.len() != len {
                return Err(format!(
                    "panel {name:?} has {} values, expected {height}x{width} = {len}",
                    values.len()
                ));
            }
        }
        Ok(())
    }

    /// Side of one image cell, in (fractional) pixels.
    fn cell(&self) -> f64 {
        IMAGE_SIDE / self.height.max(self.width).max(1) as f64
    }

    /// Size of a drawn image, in pixels.
    fn image_size(&self) -> (i32, i32) {
        let side = |n: usize| (n as f64 * self.cell()).round().max(1.0) as i32;
        (side(self.width), side(self.height))
    }

    /// Size of one panel (title, image and spacing), in pixels.
    fn panel_size(&self) -> (i32, i32) {
        let (w, h) = self.image_size();
        (w.max(150) + 20, h + PANEL_TITLE + 20)
    }

    /// Columns and rows of the grid.
    fn grid(&self) -> (usize, usize) {
        let cols = self.panels.len().clamp(1, PANELS_PER_ROW);
        (cols, self.panels.len().div_ceil(cols).max(1))
    }
}

impl Figure for ImageGrid<'_> {
    fn size(&self) -> (u32, u32) {
        let (cols, rows) = self.grid();
        let (pw, ph) = self.panel_size();
        let (pw, ph) = (u64::from(pw.unsigned_abs()), u64::from(ph.unsigned_abs()));
        let w = (cols as u64 * pw + LEFT as u64 + u64::from(COLOUR_BAR_AREA)).max(600);
        let h = (HEADER as u64 + rows as u64 * ph + 20).max(320);
        (u32::try_from(w).unwrap_or(u32::MAX), u32::try_from(h).unwrap_or(u32::MAX))
    }

    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let (width, height) = root.dim_in_pixel();
        let (width, height) = (width as i32, height as i32);
        let title_style = text(24.0).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw_text(self.title, &title_style, (width / 2, 14))?;

        let values = || self.panels.iter().flat_map(|(_, v)| v.iter().copied());
        let scale = Scale::new(self.scale, values());
        let non_finite = values().any(|v| !v.is_finite());
        let colour = |v: f64| scale.map_or(NON_FINITE_COLOUR, |s| s.colour(v));

        let (cols, _) = self.grid();
        let (pw, ph) = self.panel_size();
        let (iw, ih) = self.image_size();
        let cell = self.cell();
        let edge = |n: usize| (n as f64 * cell).round() as i32;
        let name_style = text(14.0).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, (name, values)) in self.panels.iter().enumerate() {
            let ox = LEFT + (i % cols) as i32 * pw;
            let oy = HEADER + (i / cols) as i32 * ph;
            let name = fit(root, name, &name_style, pw - 10)?;
            root.draw_text(&name, &name_style, (ox + (pw - 20) / 2, oy))?;
            let (x0, y0) = (ox + (pw - 20 - iw) / 2, oy + PANEL_TITLE);
            for r in 0..self.height {
                let (top, bottom) = (y0 + edge(r), y0 + edge(r + 1));
                for c in 0..self.width {
                    let v = values[r * self.width + c];
                    let (left, right) = (x0 + edge(c), x0 + edge(c + 1));
                    root.draw(&Rectangle::new([(left, top), (right, bottom)], colour(v).filled()))?;
                }
            }
            let frame = RGBColor(90, 90, 90).stroke_width(1);
            root.draw(&Rectangle::new([(x0 - 1, y0 - 1), (x0 + iw, y0 + ih)], frame))?;
        }
        if self.panels.is_empty() {
            draw_note(root, "no panels", ((width - COLOUR_BAR_AREA as i32) / 2, height / 2))?;
        }
        let top = HEADER + PANEL_TITLE;
        let bottom = (height - if non_finite { 60 } else { 30 }).max(top + 150);
        let bar_x = width - COLOUR_BAR_AREA as i32 + 20;
        draw_colour_bar(root, scale.as_ref(), non_finite, bar_x, (top, bottom))
    }
}

/// `label`, cut until it is at most `max_width` pixels wide in `style`.
fn fit<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    label: &str,
    style: &TextStyle,
    max_width: i32,
) -> Result<String, DrawingAreaErrorKind<DB::ErrorType>> {
    let max_width = max_width.max(0).unsigned_abs();
    let mut chars = label.chars().count().min(60);
    let mut fitted = truncate(label, chars);
    while chars > 1 && area.estimate_text_size(&fitted, style)?.0 > max_width {
        chars -= 1;
        fitted = truncate(label, chars);
    }
    Ok(fitted)
}
