//! A table of grey or colour images: rows of captioned images under column titles (an instance and the
//! examples that explain it, say).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::PlotError;
use crate::common::{NON_FINITE_COLOUR, finite_bounds, text, truncate};
use crate::render::{DrawResult, Figure, Output, render};

/// One image of an [`ImageTable`] with the lines written under it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageCell {
    /// Lines of text under the image (for example `Label: 4 - Prediction: 4`).
    pub caption: Vec<String>,
    /// The pixels, row-major (`pixels[row * width + column]`, or `[(row * width + column) *
    /// 3 + channel]` for colour images); non-finite values are drawn in a mid grey-blue.
    pub pixels: Vec<f64>,
}

/// A table of grey or RGB images, written by [`image_table`]: one row of cells per entry of
/// [`Self::rows`], under [`Self::column_titles`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageTable {
    /// Title drawn above the table.
    pub title: String,
    /// One title per column (may be shorter than the rows: missing titles are blank).
    pub column_titles: Vec<String>,
    /// The rows of cells; rows may differ in length.
    pub rows: Vec<Vec<ImageCell>>,
    /// Image height in pixels of the data.
    pub height: usize,
    /// Image width in pixels of the data.
    pub width: usize,
    /// Channels of each pixel: 1 (grey; 0 means 1 too) or 3 (RGB, each channel mapped through
    /// the same range).
    pub channels: usize,
    /// The value drawn black and the value drawn white; `None` uses the smallest and largest
    /// finite value of all images.
    pub range: Option<(f64, f64)>,
}

/// Draws `table` to `output` (`.png` or `.svg`).
///
/// Every image is drawn 112 pixels on its longest side, in grey from black (the low end of the
/// range) to white. Fails when `height` or `width` is zero, an image does not hold
/// `height * width` values, on an unknown extension, or when the file cannot be written.
pub fn image_table<'a>(output: impl Into<Output<'a>>, table: &ImageTable) -> Result<(), PlotError> {
    render(output, table.check(), table)
}

/// Longest side of a drawn image, in pixels.
const SIDE: f64 = 112.0;
/// Width of a column, in pixels.
const COLUMN: i32 = 200;
/// Height of the figure title band, in pixels.
const HEADER: i32 = 50;
/// Height of one caption line, in pixels.
const LINE: i32 = 17;
/// Margin around the table, in pixels.
const MARGIN: i32 = 16;

impl ImageTable {
    fn check(&self) -> Result<(), String> {
        let (h, w) = (self.height, self.width);
        if h == 0 || w == 0 {
            return Err(format!("images need a non-zero size, got {h}x{w}"));
        }
        let c = self.channel_count();
        if c != 1 && c != 3 {
            return Err(format!("images have 1 (grey) or 3 (RGB) channels, not {c}"));
        }
        let len = h
            .checked_mul(w)
            .and_then(|n| n.checked_mul(c))
            .ok_or_else(|| format!("images of {h}x{w} are too large"))?;
        for (r, row) in self.rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                if cell.pixels.len() != len {
                    return Err(format!(
                        "image at row {r}, column {c} has {} values, expected {h}x{w}x{} = {len}",
                        cell.pixels.len(),
                        self.channel_count()
                    ));
                }
            }
        }
        if let Some((lo, hi)) = self.range
            && !(lo.is_finite() && hi.is_finite() && lo < hi)
        {
            return Err(format!("the grey range [{lo}, {hi}] is not an increasing finite pair"));
        }
        Ok(())
    }

    fn channel_count(&self) -> usize {
        self.channels.max(1)
    }

    fn columns(&self) -> usize {
        self.rows.iter().map(Vec::len).max().unwrap_or(0).max(self.column_titles.len()).max(1)
    }

    fn title_lines(&self) -> usize {
        self.column_titles.iter().map(|t| t.lines().count()).max().unwrap_or(0)
    }

    fn caption_lines(&self) -> usize {
        self.rows.iter().flatten().map(|c| c.caption.len()).max().unwrap_or(0)
    }

    fn image_size(&self) -> (i32, i32) {
        let cell = SIDE / self.height.max(self.width).max(1) as f64;
        let side = |n: usize| (n as f64 * cell).round().max(1.0) as i32;
        (side(self.width), side(self.height))
    }

    fn row_height(&self) -> i32 {
        self.image_size().1 + LINE * self.caption_lines() as i32 + 18
    }

    fn top(&self) -> i32 {
        HEADER + LINE * self.title_lines() as i32 + 8
    }
}

impl Figure for ImageTable {
    fn size(&self) -> (u32, u32) {
        let w = i64::from(COLUMN) * self.columns() as i64 + 2 * i64::from(MARGIN);
        let h = i64::from(self.top())
            + i64::from(self.row_height()) * self.rows.len().max(1) as i64
            + 10;
        (
            u32::try_from(w.max(400)).unwrap_or(u32::MAX),
            u32::try_from(h.max(200)).unwrap_or(u32::MAX),
        )
    }

    fn draw<DB>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let (width, _) = root.dim_in_pixel();
        let centre = text(22.0).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw_text(&self.title, &centre, (width as i32 / 2, 12))?;

        let (lo, hi) = self
            .range
            .or_else(|| {
                finite_bounds(self.rows.iter().flatten().flat_map(|c| c.pixels.iter().copied()))
            })
            .unwrap_or((0.0, 1.0));
        let span = if hi > lo { hi - lo } else { 1.0 };
        let level = |v: f64| (((v - lo) / span).clamp(0.0, 1.0) * 255.0).round() as u8;
        let colour = |p: &[f64]| {
            if !p.iter().all(|v| v.is_finite()) {
                return NON_FINITE_COLOUR;
            }
            match p {
                [r, g, b] => RGBColor(level(*r), level(*g), level(*b)),
                _ => RGBColor(level(p[0]), level(p[0]), level(p[0])),
            }
        };
        let channels = self.channel_count();

        let label = text(14.0).pos(Pos::new(HPos::Center, VPos::Top));
        let bold = text(14.0).color(&RGBColor(20, 20, 90)).pos(Pos::new(HPos::Center, VPos::Top));
        for (c, title) in self.column_titles.iter().enumerate() {
            let x = MARGIN + c as i32 * COLUMN + COLUMN / 2;
            for (l, line) in title.lines().enumerate() {
                root.draw_text(&truncate(line, 28), &bold, (x, HEADER + l as i32 * LINE))?;
            }
        }
        let (iw, ih) = self.image_size();
        let cell = SIDE / self.height.max(self.width).max(1) as f64;
        let edge = |n: usize| (n as f64 * cell).round() as i32;
        for (r, row) in self.rows.iter().enumerate() {
            let oy = self.top() + r as i32 * self.row_height();
            for (c, image) in row.iter().enumerate() {
                let x0 = MARGIN + c as i32 * COLUMN + (COLUMN - iw) / 2;
                for py in 0..self.height {
                    let (top, bottom) = (oy + edge(py), oy + edge(py + 1));
                    for px in 0..self.width {
                        let at = (py * self.width + px) * channels;
                        let v = &image.pixels[at..at + channels];
                        let (left, right) = (x0 + edge(px), x0 + edge(px + 1));
                        root.draw(&Rectangle::new(
                            [(left, top), (right, bottom)],
                            colour(v).filled(),
                        ))?;
                    }
                }
                let frame = RGBColor(90, 90, 90).stroke_width(1);
                root.draw(&Rectangle::new([(x0 - 1, oy - 1), (x0 + iw, oy + ih)], frame))?;
                let x = MARGIN + c as i32 * COLUMN + COLUMN / 2;
                for (l, line) in image.caption.iter().enumerate() {
                    root.draw_text(
                        &truncate(line, 28),
                        &label,
                        (x, oy + ih + 4 + l as i32 * LINE),
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(v: f64) -> ImageCell {
        ImageCell { caption: vec!["Label: 1".into(), "Prediction: 1".into()], pixels: vec![v; 4] }
    }

    #[test]
    fn tables_are_drawn_and_bad_input_refused() {
        let dir = std::env::temp_dir().join(format!("nnlens-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let table = ImageTable {
            title: "t".into(),
            column_titles: vec!["instance".into(), "1st most\nsimilar".into()],
            rows: vec![vec![cell(0.0), cell(1.0)], vec![cell(f64::NAN)]],
            height: 2,
            width: 2,
            channels: 1,
            range: None,
        };
        for ext in ["png", "svg"] {
            let path = dir.join(format!("t.{ext}"));
            image_table(&path, &table).unwrap();
            assert!(std::fs::metadata(&path).unwrap().len() > 100);
        }
        let mut bad = table.clone();
        bad.rows[0][1].pixels.pop();
        let e = image_table(&dir.join("b.png"), &bad).unwrap_err().to_string();
        assert!(e.contains("row 0, column 1"), "{e}");
        let mut bad = table.clone();
        bad.range = Some((1.0, 1.0));
        assert!(image_table(&dir.join("b.png"), &bad).is_err());
        // RGB: three values a pixel, each channel through the range.
        let mut rgb = table.clone();
        rgb.channels = 3;
        rgb.rows = vec![vec![ImageCell { caption: vec![], pixels: [0.0, 0.5, 1.0].repeat(4) }]];
        image_table(&dir.join("rgb.png"), &rgb).unwrap();
        rgb.rows[0][0].pixels.truncate(4);
        let e = image_table(&dir.join("b.png"), &rgb).unwrap_err().to_string();
        assert!(e.contains("2x2x3"), "{e}");
        let mut bad = table;
        bad.channels = 2;
        assert!(image_table(&dir.join("b.png"), &bad).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
