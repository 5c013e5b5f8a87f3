//! Helpers shared by the figures: text styles, number formatting, axis ranges, colours.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::ColourScale;
use crate::render::{DrawResult, FONT};

/// Values beyond this magnitude are clamped when choosing axis ranges, so that every range
/// and its padding stay finite.
const LIMIT: f64 = 1e300;

/// Fill colour of bars, histograms.
pub(crate) const BAR_COLOUR: RGBColor = RGBColor(31, 119, 180);
/// Fill colour of a highlighted bar.
pub(crate) const HIGHLIGHT_COLOUR: RGBColor = RGBColor(214, 39, 40);
/// Fill colour of non-finite heatmap cells.
pub(crate) const NON_FINITE_COLOUR: RGBColor = RGBColor(160, 160, 160);
/// Colour of notes such as "no data".
pub(crate) const NOTE_COLOUR: RGBColor = RGBColor(110, 110, 110);

/// Black text of the given pixel size in the embedded font.
pub(crate) fn text(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// Formats a number compactly: four significant digits, scientific notation outside
/// `1e-3..1e5`, no trailing zeros.
pub(crate) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".to_owned();
    }
    let magnitude = v.abs();
    if !(1e-3..1e5).contains(&magnitude) {
        return format!("{v:.2e}");
    }
    let decimals = (3 - magnitude.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

/// Shortens `s` to at most `max_chars` characters, ending with an ellipsis when cut.
pub(crate) fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max_chars.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Smallest and largest finite value, if there is any.
pub(crate) fn finite_bounds(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A finite, non-empty axis range around `lo..=hi` (both finite) with a margin of `frac` of
/// the span on each side. A degenerate range (a single value) is widened by 10% of its
/// magnitude, or by 1 around zero.
pub(crate) fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let (lo, hi) = (lo.clamp(-LIMIT, LIMIT), hi.clamp(-LIMIT, LIMIT));
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    let span = hi - lo;
    let magnitude = lo.abs().max(hi.abs());
    if span == 0.0 || span <= magnitude * 1e-9 {
        let pad = if magnitude > 0.0 { magnitude * 0.1 } else { 1.0 };
        let mid = lo / 2.0 + hi / 2.0;
        (mid - pad, mid + pad)
    } else {
        (lo - span * frac, hi + span * frac)
    }
}

/// Draws `note` centred on the pixel `(x, y)` of `area`, in grey.
/// The chart of an x-y figure (lines, scatter): `title` above, the x range `x` and y range `y`,
/// a mesh with 10 x and 8 y labels, and the axis descriptions.
pub(crate) fn xy_chart<'a, DB>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    (x_label, y_label): (&str, &str),
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> Result<XyChart<'a, DB>, Box<dyn std::error::Error>>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(root)
        .caption(title, text(24.0))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_labels(10)
        .max_light_lines(1)
        .y_labels(8)
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(text(13.0))
        .axis_desc_style(text(15.0))
        .draw()?;
    Ok(chart)
}

/// What [`xy_chart`] returns.
pub(crate) type XyChart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

pub(crate) fn draw_note<DB>(
    area: &DrawingArea<DB, Shift>,
    note: &str,
    (x, y): (i32, i32),
) -> DrawResult
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    let style =
        (FONT, 18.0).into_font().color(&NOTE_COLOUR).pos(Pos::new(HPos::Center, VPos::Center));
    area.draw_text(note, &style, (x, y))?;
    Ok(())
}

/// Maps values to colours under a [`ColourScale`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    kind: ColourScale,
    /// Value mapped to the low end of the colour map.
    pub lo: f64,
    /// Value mapped to the high end of the colour map.
    pub hi: f64,
}

/// Blue-white-red stops of the diverging map (ColorBrewer RdBu, reversed).
const DIVERGING: [(u8, u8, u8); 5] =
    [(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)];

impl Scale {
    /// The scale over the finite `values`, or `None` when none is finite.
    pub(crate) fn new(kind: ColourScale, values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let (lo, hi) = finite_bounds(values)?;
        Some(match kind {
            ColourScale::Sequential => Scale { kind, lo, hi },
            ColourScale::Diverging => {
                let m = lo.abs().max(hi.abs());
                Scale { kind, lo: -m, hi: m }
            }
        })
    }

    /// Position of `v` along the colour map, in `0..=1` (0.5 when the range is a point).
    fn position(&self, v: f64) -> f64 {
        let t = if self.hi > self.lo {
            // Halving first keeps the arithmetic finite for values near f64::MAX.
            (v / 2.0 - self.lo / 2.0) / (self.hi / 2.0 - self.lo / 2.0)
        } else {
            0.5
        };
        if t.is_nan() { 0.5 } else { t.clamp(0.0, 1.0) }
    }

    /// Colour of `v`; grey when `v` is not finite.
    pub(crate) fn colour(&self, v: f64) -> RGBColor {
        if !v.is_finite() {
            return NON_FINITE_COLOUR;
        }
        self.colour_at(self.position(v))
    }

    /// Colour at position `t` (in `0..=1`) along the colour map.
    fn colour_at(&self, t: f64) -> RGBColor {
        match self.kind {
            ColourScale::Sequential => ViridisRGB::get_color(t),
            ColourScale::Diverging => {
                let x = t * (DIVERGING.len() - 1) as f64;
                let i = (x.floor() as usize).min(DIVERGING.len() - 2);
                let f = x - i as f64;
                let (a, b) = (DIVERGING[i], DIVERGING[i + 1]);
                let mix =
                    |p: u8, q: u8| (f64::from(p) + (f64::from(q) - f64::from(p)) * f).round() as u8;
                RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
            }
        }
    }
}

/// Draws a vertical colour bar on `root` (pixel coordinates) between `top` and `bottom`,
/// `x` being its left edge, with the extreme values (and the middle one) written beside it.
/// `scale` is `None` when no value is finite. `non_finite` adds a note on the grey cells.
pub(crate) fn draw_colour_bar<DB>(
    root: &DrawingArea<DB, Shift>,
    scale: Option<&Scale>,
    non_finite: bool,
    x: i32,
    (top, bottom): (i32, i32),
) -> DrawResult
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    const WIDTH: i32 = 18;
    let bottom = bottom.max(top + 20);
    let label = text(13.0).pos(Pos::new(HPos::Left, VPos::Center));
    match scale {
        Some(scale) => {
            let height = bottom - top;
            let step = 2;
            let mut y = top;
            while y < bottom {
                let t = 1.0 - f64::from(y - top) / f64::from(height);
                let y1 = (y + step).min(bottom);
                root.draw(&Rectangle::new([(x, y), (x + WIDTH, y1)], scale.colour_at(t).filled()))?;
                y = y1;
            }
            root.draw(&Rectangle::new([(x, top), (x + WIDTH, bottom)], BLACK.stroke_width(1)))?;
            let mid = scale.lo / 2.0 + scale.hi / 2.0;
            for (value, y) in [(scale.hi, top), (mid, (top + bottom) / 2), (scale.lo, bottom)] {
                root.draw(&PathElement::new([(x + WIDTH, y), (x + WIDTH + 4, y)], BLACK))?;
                root.draw_text(&fmt_num(value), &label, (x + WIDTH + 7, y))?;
            }
        }
        None => {
            root.draw(&Rectangle::new(
                [(x, top), (x + WIDTH, bottom)],
                NON_FINITE_COLOUR.filled(),
            ))?;
            root.draw_text("no finite", &label, (x + WIDTH + 7, (top + bottom) / 2 - 8))?;
            root.draw_text("values", &label, (x + WIDTH + 7, (top + bottom) / 2 + 8))?;
        }
    }
    if non_finite && scale.is_some() {
        let swatch_y = bottom + 22;
        root.draw(&Rectangle::new(
            [(x, swatch_y - 7), (x + WIDTH, swatch_y + 7)],
            NON_FINITE_COLOUR.filled(),
        ))?;
        root.draw_text("nan/inf", &label, (x + WIDTH + 7, swatch_y))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_compact() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(-0.0), "0");
        assert_eq!(fmt_num(0.30000000000000004), "0.3");
        assert_eq!(fmt_num(12.5), "12.5");
        assert_eq!(fmt_num(1234.5678), "1235");
        assert_eq!(fmt_num(-0.012345), "-0.01235");
        assert_eq!(fmt_num(1e6), "1.00e6");
        assert_eq!(fmt_num(f64::NAN), "NaN");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("éééééé", 4), "ééé…");
    }

    #[test]
    fn padded_ranges_are_finite_and_non_empty() {
        for (lo, hi) in [
            (0.0, 0.0),
            (5.0, 5.0),
            (-3.0, -3.0),
            (1e-320, 1e-320),
            (f64::MAX, f64::MAX),
            (-f64::MAX, f64::MAX),
            (1.0, 1.0 + 1e-14),
            (0.0, 10.0),
        ] {
            let (a, b) = padded(lo, hi, 0.05);
            assert!(a.is_finite() && b.is_finite() && a < b && (b - a).is_finite(), "{lo} {hi}");
        }
        assert_eq!(padded(0.0, 10.0, 0.05), (-0.5, 10.5));
    }

    #[test]
    fn scales_map_to_their_ends() {
        let seq = Scale::new(ColourScale::Sequential, [1.0, f64::NAN, 3.0]).unwrap();
        assert_eq!((seq.lo, seq.hi), (1.0, 3.0));
        assert_eq!(seq.colour(1.0), ViridisRGB::get_color(0.0));
        assert_eq!(seq.colour(3.0), ViridisRGB::get_color(1.0));
        assert_eq!(seq.colour(f64::INFINITY), NON_FINITE_COLOUR);

        let div = Scale::new(ColourScale::Diverging, [-1.0, 4.0]).unwrap();
        assert_eq!((div.lo, div.hi), (-4.0, 4.0));
        assert_eq!(div.colour(0.0), RGBColor(247, 247, 247));
        assert_eq!(div.colour(4.0), RGBColor(178, 24, 43));
        assert_eq!(div.colour(-4.0), RGBColor(33, 102, 172));

        let flat = Scale::new(ColourScale::Sequential, [2.0, 2.0]).unwrap();
        assert_eq!(flat.colour(2.0), ViridisRGB::get_color(0.5));
        let huge = Scale::new(ColourScale::Sequential, [-f64::MAX, f64::MAX]).unwrap();
        assert_eq!(huge.colour(f64::MAX), ViridisRGB::get_color(1.0));
        assert!(Scale::new(ColourScale::Diverging, [f64::NAN]).is_none());
    }
}
