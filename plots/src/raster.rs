//! The PNG drawing backend: plotters' bitmap backend with its own text rendering.
//!
//! plotters 0.3.7 draws `ab_glyph` text without the glyphs' side bearings, so letters run
//! into each other. This backend delegates everything to [`BitMapBackend`] except text,
//! which it lays out and rasterises with `ab_glyph` directly, in the embedded font.

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};
use plotters::prelude::BitMapBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// A bitmap backend over an RGB buffer that draws text with correct glyph placement.
pub(crate) struct Raster<'a> {
    inner: BitMapBackend<'a>,
    font: FontRef<'static>,
}

/// One line of text laid out at the origin: glyphs on a baseline `ascent` below the top.
struct Layout {
    glyphs: Vec<ab_glyph::Glyph>,
    width: f32,
    height: f32,
}

impl<'a> Raster<'a> {
    /// Draws into `buffer` (`width * height * 3` bytes of RGB) with `font` for all text.
    pub(crate) fn new(buffer: &'a mut [u8], size: (u32, u32), font: FontRef<'static>) -> Self {
        Raster { inner: BitMapBackend::with_buffer(buffer, size), font }
    }

    fn layout(&self, text: &str, size: f64) -> Layout {
        let scale = PxScale::from(size.max(0.0) as f32);
        let font = self.font.as_scaled(scale);
        let mut glyphs = Vec::with_capacity(text.len());
        let mut caret = 0.0;
        let mut previous: Option<GlyphId> = None;
        for c in text.chars().filter(|c| !c.is_control()) {
            let id = font.glyph_id(c);
            if let Some(previous) = previous {
                caret += font.kern(previous, id);
            }
            glyphs.push(id.with_scale_and_position(scale, point(caret, font.ascent())));
            caret += font.h_advance(id);
            previous = Some(id);
        }
        Layout { glyphs, width: caret, height: font.ascent() - font.descent() }
    }
}

type Result<T, E> = std::result::Result<T, DrawingErrorKind<E>>;
type Error<'a> = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

impl<'a> DrawingBackend for Raster<'a> {
    type ErrorType = Error<'a>;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), Self::ErrorType> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), Self::ErrorType> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), Self::ErrorType> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), Self::ErrorType> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Self::ErrorType> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Self::ErrorType> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Self::ErrorType> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Self::ErrorType> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), Self::ErrorType> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), Self::ErrorType> {
        let layout = self.layout(text, style.size());
        Ok((layout.width.ceil() as u32, layout.height.ceil() as u32))
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), Self::ErrorType> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let layout = self.layout(text, style.size());
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -layout.width / 2.0,
            HPos::Right => -layout.width,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -layout.height / 2.0,
            VPos::Bottom => -layout.height,
        };
        let (dx, dy) = (dx.round() as i32, dy.round() as i32);
        let mut coverage = Vec::new();
        for glyph in layout.glyphs {
            if let Some(outline) = self.font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                let (x0, y0) = (bounds.min.x as i32, bounds.min.y as i32);
                outline.draw(|x, y, c| coverage.push((x0 + x as i32, y0 + y as i32, c)));
            }
        }
        let transform = style.transform();
        for (x, y, c) in coverage {
            let (x, y) = transform.transform(x + dx, y + dy);
            let alpha = color.alpha * f64::from(c.clamp(0.0, 1.0));
            self.inner
                .draw_pixel((pos.0 + x, pos.1 + y), BackendColor { alpha, rgb: color.rgb })?;
        }
        Ok(())
    }
}
