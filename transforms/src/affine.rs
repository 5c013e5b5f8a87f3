//! Affine transformations of images and maps, applied as one resampling.

use ndarray::{ArrayD, ArrayViewD, IxDyn};
use serde::{Deserialize, Serialize};

use crate::{Result, TransformError};

/// How values between pixels are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Interpolation {
    /// The nearest pixel.
    Nearest,
    /// Bilinear interpolation of the four nearest pixels (exact on images that are affine
    /// functions of the coordinates).
    #[default]
    Bilinear,
}

/// What is read outside the image.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum Fill {
    /// A constant value.
    Constant(f32),
    /// The nearest edge pixel (edge values repeated; Keras' `fill_mode='nearest'`, PyTorch's
    /// `padding_mode='border'`).
    #[default]
    Edge,
}

/// Interpolation and fill of a resampling.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Resample {
    /// Interpolation.
    pub interpolation: Interpolation,
    /// Fill outside the image.
    pub fill: Fill,
}

/// The layout of a map: where its channels are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// `[h, w]`: one channel.
    Hw,
    /// `[h, w, c]`: channels last.
    Hwc,
    /// `[c, h, w]`: channels first.
    Chw,
}

impl Layout {
    /// The layout of an array of `shape` whose channel axis is `channel_axis`.
    ///
    /// # Errors
    /// [`TransformError::Shape`] unless the shape is `[h, w]` (no channel axis) or 3-D with the
    /// channel axis first or last.
    pub fn of(shape: &[usize], channel_axis: Option<usize>) -> Result<Layout> {
        match (shape.len(), channel_axis) {
            (2, None) => Ok(Layout::Hw),
            (3, Some(0)) => Ok(Layout::Chw),
            (3, Some(2)) => Ok(Layout::Hwc),
            (3, None) => Err(TransformError::Shape {
                shape: shape.to_vec(),
                reason: "a 3-D map needs its channel axis".into(),
            }),
            _ => Err(TransformError::Shape {
                shape: shape.to_vec(),
                reason: "need [h, w], or [c, h, w] / [h, w, c] with the channel axis first or last"
                    .into(),
            }),
        }
    }

    /// `(channels, height, width)` of an array of this layout.
    fn dims(self, shape: &[usize]) -> (usize, usize, usize) {
        match self {
            Layout::Hw => (1, shape[0], shape[1]),
            Layout::Hwc => (shape[2], shape[0], shape[1]),
            Layout::Chw => (shape[0], shape[1], shape[2]),
        }
    }

    /// Flat index of (channel, row, column) in a standard-layout array of this layout.
    #[inline]
    fn index(self, (c, h, w): (usize, usize, usize), ch: usize, y: usize, x: usize) -> usize {
        match self {
            Layout::Hw => y * w + x,
            Layout::Hwc => (y * w + x) * c + ch,
            Layout::Chw => (ch * h + y) * w + x,
        }
    }
}

/// An affine map of the plane about the image centre: `p' = A p + t`, with `p` in pixels
/// relative to the centre (x right, y down). See the crate docs for the conventions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transformation {
    /// A readable name (`rotation(90)`, `translation(2,0) > scale(1.1,1.1)`).
    pub name: String,
    /// The linear part `A`, row-major.
    pub matrix: [[f64; 2]; 2],
    /// The translation `t` (dx, dy), in pixels of the images the transformation is made for.
    pub translation: [f64; 2],
}

fn finite(what: &str, values: &[f64]) -> Result<()> {
    if values.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(TransformError::Invalid(format!("{what} {values:?} is not finite")))
    }
}

/// `(cos, sin)` of an angle in degrees, exact for multiples of 90 degrees.
fn cos_sin_degrees(degrees: f64) -> (f64, f64) {
    let r = degrees.rem_euclid(360.0);
    match r {
        0.0 => (1.0, 0.0),
        90.0 => (0.0, 1.0),
        180.0 => (-1.0, 0.0),
        270.0 => (0.0, -1.0),
        _ => {
            let rad = r.to_radians();
            (rad.cos(), rad.sin())
        }
    }
}

fn fmt_num(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

impl Transformation {
    /// The identity.
    pub fn identity() -> Self {
        Self { name: "identity".into(), matrix: [[1.0, 0.0], [0.0, 1.0]], translation: [0.0, 0.0] }
    }

    /// Rotation by `degrees` about the centre, counter-clockwise as displayed.
    ///
    /// # Errors
    /// [`TransformError::Invalid`] for a non-finite angle.
    pub fn rotation(degrees: f64) -> Result<Self> {
        finite("rotation angle", &[degrees])?;
        let (c, s) = cos_sin_degrees(degrees);
        Ok(Self {
            name: format!("rotation({})", fmt_num(degrees)),
            matrix: [[c, s], [-s, c]],
            translation: [0.0, 0.0],
        })
    }

    /// Translation moving the content `dx` pixels right and `dy` pixels down.
    ///
    /// # Errors
    /// [`TransformError::Invalid`] for non-finite values.
    pub fn translation(dx: f64, dy: f64) -> Result<Self> {
        finite("translation", &[dx, dy])?;
        Ok(Self {
            name: format!("translation({},{})", fmt_num(dx), fmt_num(dy)),
            matrix: [[1.0, 0.0], [0.0, 1.0]],
            translation: [dx, dy],
        })
    }

    /// Scaling by `sx` horizontally and `sy` vertically about the centre (2 enlarges).
    ///
    /// # Errors
    /// [`TransformError::Invalid`] for a zero or non-finite factor (not invertible).
    pub fn scale(sx: f64, sy: f64) -> Result<Self> {
        finite("scale", &[sx, sy])?;
        if sx == 0.0 || sy == 0.0 {
            return Err(TransformError::Invalid(format!("scale ({sx}, {sy}) is not invertible")));
        }
        Ok(Self {
            name: format!("scale({},{})", fmt_num(sx), fmt_num(sy)),
            matrix: [[sx, 0.0], [0.0, sy]],
            translation: [0.0, 0.0],
        })
    }

    /// Mirror left-right.
    pub fn flip_horizontal() -> Self {
        Self { name: "hflip".into(), matrix: [[-1.0, 0.0], [0.0, 1.0]], translation: [0.0, 0.0] }
    }

    /// Mirror top-bottom.
    pub fn flip_vertical() -> Self {
        Self { name: "vflip".into(), matrix: [[1.0, 0.0], [0.0, -1.0]], translation: [0.0, 0.0] }
    }

    /// `self`, then `next`: one affine map (`A = A₂A₁`, `t = A₂t₁ + t₂`).
    pub fn then(&self, next: &Transformation) -> Transformation {
        let (a, b) = (&self.matrix, &next.matrix);
        let matrix = [
            [b[0][0] * a[0][0] + b[0][1] * a[1][0], b[0][0] * a[0][1] + b[0][1] * a[1][1]],
            [b[1][0] * a[0][0] + b[1][1] * a[1][0], b[1][0] * a[0][1] + b[1][1] * a[1][1]],
        ];
        let t = self.translation;
        let translation = [
            b[0][0] * t[0] + b[0][1] * t[1] + next.translation[0],
            b[1][0] * t[0] + b[1][1] * t[1] + next.translation[1],
        ];
        let name = match (self.is_identity(), next.is_identity()) {
            (true, _) => next.name.clone(),
            (false, true) => self.name.clone(),
            _ => format!("{} > {}", self.name, next.name),
        };
        Transformation { name, matrix, translation }
    }

    /// Whether this is exactly the identity.
    pub fn is_identity(&self) -> bool {
        self.matrix == [[1.0, 0.0], [0.0, 1.0]] && self.translation == [0.0, 0.0]
    }

    fn inverse_matrix(&self) -> [[f64; 2]; 2] {
        let m = &self.matrix;
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        // Constructors only make invertible maps, and products of invertible maps are.
        [[m[1][1] / det, -m[0][1] / det], [-m[1][0] / det, m[0][0] / det]]
    }

    /// The true inverse map: `A⁻¹`, `-A⁻¹t` (for compositions too).
    pub fn inverse(&self) -> Transformation {
        let inv = self.inverse_matrix();
        let t = self.translation;
        Transformation {
            name: if self.is_identity() {
                self.name.clone()
            } else {
                format!("inverse({})", self.name)
            },
            matrix: inv,
            translation: [
                -(inv[0][0] * t[0] + inv[0][1] * t[1]),
                -(inv[1][0] * t[0] + inv[1][1] * t[1]),
            ],
        }
    }

    /// The same transformation for maps of size `to` (height, width) when it was made for
    /// images of size `from`: the translation scales with the size, per axis; the linear part
    /// is kept.
    pub fn rescaled(&self, from: [usize; 2], to: [usize; 2]) -> Transformation {
        if from == to {
            return self.clone();
        }
        let mut t = self.clone();
        t.translation[0] *= to[1] as f64 / from[1].max(1) as f64;
        t.translation[1] *= to[0] as f64 / from[0].max(1) as f64;
        t
    }

    /// Where the pixel position (x, y) of an image of `height` x `width` goes.
    pub fn map_point(&self, x: f64, y: f64, height: usize, width: usize) -> (f64, f64) {
        let (cx, cy) = ((width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0);
        let (px, py) = (x - cx, y - cy);
        let m = &self.matrix;
        (
            m[0][0] * px + m[0][1] * py + self.translation[0] + cx,
            m[1][0] * px + m[1][1] * py + self.translation[1] + cy,
        )
    }

    /// Applies the transformation to `map` (`[h, w]`, or `[c, h, w]` / `[h, w, c]` with
    /// `channel_axis` 0 / 2), in one resampling: output pixel `q` reads the input at `T⁻¹(q)`.
    ///
    /// # Errors
    /// [`TransformError::Shape`] for another shape.
    pub fn apply(
        &self,
        map: ArrayViewD<'_, f32>,
        channel_axis: Option<usize>,
        resample: Resample,
    ) -> Result<ArrayD<f32>> {
        let layout = Layout::of(map.shape(), channel_axis)?;
        let dims = layout.dims(map.shape());
        let (channels, h, w) = dims;
        let src = map.as_standard_layout();
        let src = src.as_slice().unwrap_or(&[]);
        let mut out = vec![0f32; src.len()];
        if out.is_empty() {
            return Ok(ArrayD::from_shape_vec(IxDyn(map.shape()), out).unwrap_or_default());
        }
        let inv = self.inverse_matrix();
        let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
        let fetch = |ch: usize, ix: i64, iy: i64| -> f32 {
            if ix >= 0 && iy >= 0 && (ix as usize) < w && (iy as usize) < h {
                src[layout.index(dims, ch, iy as usize, ix as usize)]
            } else {
                match resample.fill {
                    Fill::Constant(v) => v,
                    Fill::Edge => {
                        let x = ix.clamp(0, w as i64 - 1) as usize;
                        let y = iy.clamp(0, h as i64 - 1) as usize;
                        src[layout.index(dims, ch, y, x)]
                    }
                }
            }
        };
        let snap = |v: f64| {
            let r = v.round();
            if (v - r).abs() < 1e-9 { r } else { v }
        };
        for y in 0..h {
            for x in 0..w {
                let px = x as f64 - cx - self.translation[0];
                let py = y as f64 - cy - self.translation[1];
                let sx = snap(inv[0][0] * px + inv[0][1] * py + cx);
                let sy = snap(inv[1][0] * px + inv[1][1] * py + cy);
                match resample.interpolation {
                    Interpolation::Nearest => {
                        let (ix, iy) = (sx.round() as i64, sy.round() as i64);
                        for ch in 0..channels {
                            out[layout.index(dims, ch, y, x)] = fetch(ch, ix, iy);
                        }
                    }
                    Interpolation::Bilinear => {
                        let (x0, y0) = (sx.floor(), sy.floor());
                        let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
                        let (ix, iy) = (x0 as i64, y0 as i64);
                        for ch in 0..channels {
                            // Zero weights are skipped, so samples on pixel centres are exact.
                            let row = |yy: i64| {
                                let a = fetch(ch, ix, yy);
                                if fx == 0.0 {
                                    a
                                } else {
                                    a * (1.0 - fx) + fetch(ch, ix + 1, yy) * fx
                                }
                            };
                            let top = row(iy);
                            let v =
                                if fy == 0.0 { top } else { top * (1.0 - fy) + row(iy + 1) * fy };
                            out[layout.index(dims, ch, y, x)] = v;
                        }
                    }
                }
            }
        }
        ArrayD::from_shape_vec(IxDyn(map.shape()), out).map_err(|e| TransformError::Shape {
            shape: map.shape().to_vec(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, Array2, Axis};
    use proptest::prelude::*;

    fn image(h: usize, w: usize) -> ArrayD<f32> {
        Array::from_shape_fn(IxDyn(&[h, w]), |i| ((i[0] * 31 + i[1] * 17) % 23) as f32).into_dyn()
    }

    fn edge() -> Resample {
        Resample { interpolation: Interpolation::Bilinear, fill: Fill::Edge }
    }

    #[test]
    fn integer_translation_is_an_exact_shift_with_edge_values_repeated() {
        let img = image(6, 7);
        for (dx, dy) in [(2i64, 0i64), (0, -1), (-3, 2), (1, 1)] {
            let t = Transformation::translation(dx as f64, dy as f64).unwrap();
            for interpolation in [Interpolation::Bilinear, Interpolation::Nearest] {
                let out = t
                    .apply(img.view(), None, Resample { interpolation, fill: Fill::Edge })
                    .unwrap();
                for y in 0..6i64 {
                    for x in 0..7i64 {
                        let sy = (y - dy).clamp(0, 5) as usize;
                        let sx = (x - dx).clamp(0, 6) as usize;
                        assert_eq!(
                            out[[y as usize, x as usize]],
                            img[[sy, sx]],
                            "({dx},{dy}) at ({x},{y})"
                        );
                    }
                }
            }
        }
        let zero = Resample { interpolation: Interpolation::Bilinear, fill: Fill::Constant(-1.0) };
        let out =
            Transformation::translation(1.0, 0.0).unwrap().apply(img.view(), None, zero).unwrap();
        assert!(out.index_axis(Axis(1), 0).iter().all(|&v| v == -1.0));
        assert_eq!(out[[3, 4]], img[[3, 3]]);
    }

    /// numpy.rot90 (counter-clockwise): out[i][j] = in[j][n - 1 - i].
    fn rot90(a: &Array2<f32>) -> Array2<f32> {
        let n = a.nrows();
        Array2::from_shape_fn((n, n), |(i, j)| a[[j, n - 1 - i]])
    }

    #[test]
    fn quarter_turns_are_transposes_and_flips_exactly() {
        for n in [5, 6] {
            let img = image(n, n).into_dimensionality::<ndarray::Ix2>().unwrap();
            let mut expected = img.clone();
            for k in 1..4 {
                expected = rot90(&expected);
                for interpolation in [Interpolation::Bilinear, Interpolation::Nearest] {
                    let r = Resample { interpolation, fill: Fill::Constant(f32::NAN) };
                    let out = Transformation::rotation(90.0 * k as f64)
                        .unwrap()
                        .apply(img.view().into_dyn(), None, r)
                        .unwrap();
                    assert_eq!(out, expected.clone().into_dyn(), "{k} quarter turns, n = {n}");
                }
            }
            let minus = Transformation::rotation(-90.0)
                .unwrap()
                .apply(img.view().into_dyn(), None, edge())
                .unwrap();
            assert_eq!(minus, expected.into_dyn());
        }
    }

    #[test]
    fn flips_reverse_axes_and_layouts_agree() {
        let chw =
            Array::from_shape_fn(IxDyn(&[3, 4, 5]), |i| (i[0] * 100 + i[1] * 10 + i[2]) as f32);
        let out = Transformation::flip_horizontal().apply(chw.view(), Some(0), edge()).unwrap();
        assert_eq!(out[[2, 1, 0]], 214.0);
        let hwc = chw.view().permuted_axes(IxDyn(&[1, 2, 0])).as_standard_layout().into_owned();
        let t = Transformation::rotation(33.0)
            .unwrap()
            .then(&Transformation::translation(0.5, -1.0).unwrap());
        let a = t.apply(chw.view(), Some(0), edge()).unwrap();
        let b = t.apply(hwc.view(), Some(2), edge()).unwrap();
        assert_eq!(a.view().permuted_axes(IxDyn(&[1, 2, 0])), b.view());
        let v = Transformation::flip_vertical().apply(chw.view(), Some(0), edge()).unwrap();
        assert_eq!(v[[1, 0, 2]], 132.0);
        assert!(Transformation::identity().apply(chw.view(), None, edge()).is_err());
        assert!(Transformation::identity().apply(chw.view(), Some(1), edge()).is_err());
    }

    #[test]
    fn invalid_parameters_are_errors() {
        assert!(Transformation::scale(0.0, 1.0).is_err());
        assert!(Transformation::rotation(f64::NAN).is_err());
        assert!(Transformation::translation(f64::INFINITY, 0.0).is_err());
    }

    #[test]
    fn rescaling_moves_translations_with_the_map_size() {
        let t = Transformation::translation(2.0, -4.0)
            .unwrap()
            .then(&Transformation::rotation(90.0).unwrap());
        let r = t.rescaled([28, 28], [14, 7]);
        assert_eq!(r.matrix, t.matrix);
        assert_eq!(r.translation, [t.translation[0] / 4.0, t.translation[1] / 2.0]);
    }

    fn close(a: &[[f64; 2]; 2], b: &[[f64; 2]; 2]) -> bool {
        a.iter().flatten().zip(b.iter().flatten()).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    /// Builds a transformation from drawn parameters: a composition of up to four kinds.
    fn drawn(angle: f64, s: f64, dx: f64, dy: f64, kind: u8) -> Transformation {
        let r = Transformation::rotation(angle).unwrap();
        let sc = Transformation::scale(s, 2.0 - s).unwrap();
        let t = Transformation::translation(dx, dy).unwrap();
        match kind % 4 {
            0 => r,
            1 => sc,
            2 => t,
            _ => r.then(&sc).then(&t),
        }
    }

    proptest! {
        #[test]
        fn two_rotations_are_one(a in -360.0f64..360.0, b in -360.0f64..360.0) {
            let two = Transformation::rotation(a).unwrap().then(&Transformation::rotation(b).unwrap());
            let one = Transformation::rotation(a + b).unwrap();
            prop_assert!(close(&two.matrix, &one.matrix));
            let img = image(9, 9);
            let (x, y) = (two.apply(img.view(), None, edge()).unwrap(), one.apply(img.view(), None, edge()).unwrap());
            for (p, q) in x.iter().zip(y.iter()) {
                prop_assert!((p - q).abs() < 1e-4);
            }
        }

        #[test]
        fn inverse_is_the_matrix_inverse(angle in -180.0f64..180.0, s in 0.8f64..1.25, dx in -3.0f64..3.0, dy in -3.0f64..3.0, kind in 0u8..4) {
            let t = drawn(angle, s, dx, dy, kind);
            let id = t.then(&t.inverse());
            prop_assert!(close(&id.matrix, &[[1.0, 0.0], [0.0, 1.0]]));
            prop_assert!(id.translation.iter().all(|v| v.abs() < 1e-9));
        }

        /// On an image that is an affine function of the coordinates (which bilinear
        /// interpolation reproduces exactly), the inverse undoes the transformation on every
        /// pixel whose samples stayed inside the image.
        #[test]
        fn inverse_after_transformation_is_the_identity_inside(
            angle in -180.0f64..180.0, s in 0.8f64..1.25, dx in -3.0f64..3.0, dy in -3.0f64..3.0,
            kind in 0u8..4, a in -1.0f32..1.0, b in -1.0f32..1.0,
        ) {
            let (h, w) = (24usize, 20usize);
            let img = Array::from_shape_fn(IxDyn(&[h, w]), |i| 0.5 + a * i[1] as f32 / w as f32 + b * i[0] as f32 / h as f32);
            let t = drawn(angle, s, dx, dy, kind);
            let back = t.inverse().apply(t.apply(img.view(), None, edge()).unwrap().view(), None, edge()).unwrap();
            let inside = |x: f64, y: f64| x >= 0.0 && y >= 0.0 && x <= (w - 1) as f64 && y <= (h - 1) as f64;
            let inv = t.inverse();
            let mut checked = 0;
            for y in 0..h {
                for x in 0..w {
                    // The second resampling reads T(q); its four neighbours were made from T⁻¹(n).
                    let (tx, ty) = t.map_point(x as f64, y as f64, h, w);
                    let neighbours = [(tx.floor(), ty.floor()), (tx.floor() + 1.0, ty.floor()), (tx.floor(), ty.floor() + 1.0), (tx.floor() + 1.0, ty.floor() + 1.0)];
                    let ok = inside(tx, ty) && neighbours.iter().all(|&(nx, ny)| {
                        let nx = nx.min((w - 1) as f64);
                        let ny = ny.min((h - 1) as f64);
                        let (sx, sy) = inv.map_point(nx, ny, h, w);
                        inside(sx, sy)
                    });
                    if ok {
                        checked += 1;
                        prop_assert!((back[[y, x]] - img[[y, x]]).abs() < 1e-5, "at ({}, {}): {} vs {}", x, y, back[[y, x]], img[[y, x]]);
                    }
                }
            }
            prop_assert!(checked > 0);
        }
    }
}
