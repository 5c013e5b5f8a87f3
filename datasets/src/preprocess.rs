//! Preprocessing as torchvision does it: `Grayscale` / RGB conversion, `Resize(n)` (shorter
//! side, bilinear with PIL's antialiasing), `CenterCrop(n)`, `ToTensor()` (pixel / 255) and
//! `Normalize(mean, std)`, in that order.
//!
//! Resizing follows Pillow's `Image.resize(..., BILINEAR)` step for step (`Resample.c`): a
//! triangle filter whose support grows with the reduction factor, a horizontal then a vertical
//! pass, and for bytes the same 22-bit fixed-point coefficients and rounding after each pass, so
//! that a resized byte image is Pillow's to the last bit. Float images (NPY arrays of `f32` or
//! `f64`) are resized with the same filter in `f64`, as Pillow's mode `F`.

use serde::{Deserialize, Serialize};

use crate::images::PixelScale;
use crate::store::{Pixels, RawImage};

/// A conversion between grey and RGB, made only when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorConversion {
    /// To one channel: Pillow's `convert('L')` (ITU-R 601-2 luma, `L = R 299/1000 + G 587/1000
    /// + B 114/1000`), as torchvision's `Grayscale()`.
    Gray,
    /// To three channels: grey repeated, as Pillow's `convert('RGB')`.
    Rgb,
}

/// What is done to every image between its source and the model, in this order: colour
/// conversion, resize, centre crop, pixel scale, normalisation.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Preprocess {
    /// Grey to RGB or RGB to grey.
    pub color: Option<ColorConversion>,
    /// Resize so that the shorter side is this long (torchvision's `Resize(n)`).
    pub resize: Option<usize>,
    /// Cut out the centre square of this side (torchvision's `CenterCrop(n)`; zero-padded when
    /// the image is smaller).
    pub center_crop: Option<usize>,
    /// How bytes become values (`unit`: / 255; `raw`: as they are). Float images are taken as
    /// they are.
    pub scale: PixelScale,
    /// Per-channel mean subtracted after scaling (one value for every channel, or one per
    /// channel).
    pub mean: Option<Vec<f32>>,
    /// Per-channel standard deviation divided by after the mean.
    pub std: Option<Vec<f32>>,
}

impl Preprocess {
    /// The shape `[height, width, channels]` an image of `height x width x channels` has after
    /// this preprocessing.
    pub fn output_shape(&self, height: usize, width: usize, channels: usize) -> [usize; 3] {
        let channels = match self.color {
            Some(ColorConversion::Gray) => 1,
            Some(ColorConversion::Rgb) => 3,
            None => channels,
        };
        let (h, w) = match self.resize {
            Some(n) => resized_size(height, width, n),
            None => (height, width),
        };
        match self.center_crop {
            Some(n) => [n, n, channels],
            None => [h, w, channels],
        }
    }

    /// Whether anything changes the pixels' geometry or colour (else images are used as read).
    pub fn is_geometric(&self) -> bool {
        self.color.is_some() || self.resize.is_some() || self.center_crop.is_some()
    }

    /// Checks the mean and standard deviation against `channels`.
    ///
    /// # Errors
    /// A message naming the flag, for a count that is neither 1 nor `channels`, or a standard
    /// deviation that is not positive.
    pub fn check(&self, channels: usize) -> std::result::Result<(), String> {
        for (flag, values) in [("--mean", &self.mean), ("--std", &self.std)] {
            if let Some(v) = values {
                if v.len() != 1 && v.len() != channels {
                    return Err(format!(
                        "{flag} has {} values; give 1 or one per channel ({channels})",
                        v.len()
                    ));
                }
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(format!("{flag} has a value that is not a finite number"));
                }
            }
        }
        if let Some(std) = &self.std
            && std.iter().any(|&s| s <= 0.0)
        {
            return Err("--std values must be greater than 0".into());
        }
        if self.resize == Some(0) || self.center_crop == Some(0) {
            return Err("--resize and --center-crop must be at least 1".into());
        }
        Ok(())
    }

    /// The geometric and colour steps (conversion, resize, crop) on one image, values unchanged
    /// otherwise.
    pub fn transform(&self, image: RawImage) -> RawImage {
        let image = match self.color {
            Some(c) => convert_color(image, c),
            None => image,
        };
        let image = match self.resize {
            Some(n) => {
                let (h, w) = resized_size(image.height, image.width, n);
                resize_bilinear(image, h, w)
            }
            None => image,
        };
        match self.center_crop {
            Some(n) => center_crop(image, n),
            None => image,
        }
    }

    /// Writes the model's values of a transformed image into `out` (as long as its pixels):
    /// scaled, then normalised.
    pub fn values_into(&self, image: &RawImage, out: &mut [f32]) {
        match &image.pixels {
            Pixels::U8(p) => out.iter_mut().zip(p).for_each(|(o, &v)| *o = self.scale.apply(v)),
            Pixels::F32(p) => out.copy_from_slice(p),
        }
        let c = image.channels;
        let pick = |v: &Option<Vec<f32>>, ch: usize, default: f32| match v {
            Some(v) if v.len() == 1 => v[0],
            Some(v) => v[ch],
            None => default,
        };
        if self.mean.is_some() || self.std.is_some() {
            let mean: Vec<f32> = (0..c).map(|ch| pick(&self.mean, ch, 0.0)).collect();
            let std: Vec<f32> = (0..c).map(|ch| pick(&self.std, ch, 1.0)).collect();
            for pixel in out.chunks_exact_mut(c) {
                for ((v, m), s) in pixel.iter_mut().zip(&mean).zip(&std) {
                    *v = (*v - m) / s;
                }
            }
        }
    }
}

/// torchvision's output size of `Resize(n)` for an image of `height x width`: the shorter side
/// becomes `n` and the longer `int(n * long / short)` (truncated, as Python's `int`).
pub fn resized_size(height: usize, width: usize, n: usize) -> (usize, usize) {
    if height == 0 || width == 0 {
        return (height, width);
    }
    let (short, long) = if width <= height { (width, height) } else { (height, width) };
    let new_long = (n as f64 * long as f64 / short as f64) as usize;
    if width <= height { (new_long, n) } else { (n, new_long) }
}

/// Python's `round` (half to even) of a non-negative or negative half-integer grid value.
fn round_half_even(x: f64) -> i64 {
    let floor = x.floor();
    let f = floor as i64;
    match (x - floor).partial_cmp(&0.5) {
        Some(std::cmp::Ordering::Greater) => f + 1,
        Some(std::cmp::Ordering::Equal) if f % 2 != 0 => f + 1,
        _ => f,
    }
}

/// torchvision's `CenterCrop(n)`: zero padding where the image is smaller (left/top get the
/// smaller half), then the window at `round((size - n) / 2)` (Python's rounding).
pub fn center_crop(image: RawImage, n: usize) -> RawImage {
    let image = pad_to(image, n, n);
    let (h, w, c) = (image.height, image.width, image.channels);
    if h == n && w == n {
        return image;
    }
    let top = round_half_even((h - n) as f64 / 2.0) as usize;
    let left = round_half_even((w - n) as f64 / 2.0) as usize;
    fn cut<T: Copy>(v: &[T], w: usize, c: usize, top: usize, left: usize, n: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(n * n * c);
        for y in top..top + n {
            out.extend_from_slice(&v[(y * w + left) * c..(y * w + left + n) * c]);
        }
        out
    }
    let pixels = match &image.pixels {
        Pixels::U8(v) => Pixels::U8(cut(v, w, c, top, left, n)),
        Pixels::F32(v) => Pixels::F32(cut(v, w, c, top, left, n)),
    };
    RawImage { height: n, width: n, channels: c, pixels }
}

/// Pads with zeros to at least `th x tw` as torchvision's `center_crop` does.
fn pad_to(image: RawImage, th: usize, tw: usize) -> RawImage {
    let (h, w, c) = (image.height, image.width, image.channels);
    if h >= th && w >= tw {
        return image;
    }
    let (left, right) = if tw > w { ((tw - w) / 2, (tw - w).div_ceil(2)) } else { (0, 0) };
    let (top, bottom) = if th > h { ((th - h) / 2, (th - h).div_ceil(2)) } else { (0, 0) };
    let (nh, nw) = (h + top + bottom, w + left + right);
    fn pad<T: Copy + Default>(v: &[T], s: [usize; 7]) -> Vec<T> {
        let [h, w, c, top, left, nh, nw] = s;
        let mut out = vec![T::default(); nh * nw * c];
        for y in 0..h {
            let dst = ((y + top) * nw + left) * c;
            out[dst..dst + w * c].copy_from_slice(&v[y * w * c..(y + 1) * w * c]);
        }
        out
    }
    let s = [h, w, c, top, left, nh, nw];
    let pixels = match &image.pixels {
        Pixels::U8(v) => Pixels::U8(pad(v, s)),
        Pixels::F32(v) => Pixels::F32(pad(v, s)),
    };
    RawImage { height: nh, width: nw, channels: c, pixels }
}

/// Grey to RGB (repeated) or RGB to grey (Pillow's integer luma for bytes).
pub fn convert_color(image: RawImage, to: ColorConversion) -> RawImage {
    let c = image.channels;
    let pixels = match (to, &image.pixels) {
        (ColorConversion::Gray, _) if c == 1 => return image,
        (ColorConversion::Rgb, _) if c == 3 => return image,
        (ColorConversion::Gray, Pixels::U8(v)) => Pixels::U8(
            v.chunks_exact(c)
                .map(|p| {
                    let l =
                        u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471;
                    ((l + 0x8000) >> 16) as u8
                })
                .collect(),
        ),
        (ColorConversion::Gray, Pixels::F32(v)) => Pixels::F32(
            v.chunks_exact(c).map(|p| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]).collect(),
        ),
        (ColorConversion::Rgb, Pixels::U8(v)) => {
            Pixels::U8(v.chunks_exact(c).flat_map(|p| [p[0]; 3]).collect())
        }
        (ColorConversion::Rgb, Pixels::F32(v)) => {
            Pixels::F32(v.chunks_exact(c).flat_map(|p| [p[0]; 3]).collect())
        }
    };
    let channels = if to == ColorConversion::Gray { 1 } else { 3 };
    RawImage { height: image.height, width: image.width, channels, pixels }
}

/// Pillow's bilinear filter coefficients for resampling `in_size` values to `out_size`: for
/// each output, the first input and the normalised weights (`precompute_coeffs`).
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the bilinear filter's support is 1
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut k: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = ((x as f64 - center + 0.5) / filterscale).abs();
                    if t < 1.0 { 1.0 - t } else { 0.0 }
                })
                .collect();
            let sum: f64 = k.iter().sum();
            if sum != 0.0 {
                k.iter_mut().for_each(|w| *w /= sum);
            }
            (xmin, k)
        })
        .collect()
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The coefficients as Pillow's 8-bit fixed point (`normalize_coeffs_8bpc`).
fn fixed(k: &[f64]) -> Vec<i32> {
    let one = f64::from(1u32 << PRECISION_BITS);
    k.iter()
        .map(|&w| if w < 0.0 { (-0.5 + w * one) as i32 } else { (0.5 + w * one) as i32 })
        .collect()
}

#[inline]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resamples along one axis: `lines` lines of `len` pixels of `c` channels, where consecutive
/// pixels of a line are `step` apart and consecutive lines `line_step` apart.
struct Axis {
    lines: usize,
    line_step: usize,
    step: usize,
}

fn resample_u8(
    v: &[u8],
    c: usize,
    axis: &Axis,
    coeffs: &[(usize, Vec<f64>)],
    out_axis: &Axis,
) -> Vec<u8> {
    let fixed: Vec<(usize, Vec<i32>)> = coeffs.iter().map(|(x, k)| (*x, fixed(k))).collect();
    let mut out = vec![0u8; axis.lines * fixed.len() * c];
    for line in 0..axis.lines {
        for (o, (xmin, k)) in fixed.iter().enumerate() {
            for ch in 0..c {
                let mut ss: i32 = 1 << (PRECISION_BITS - 1);
                for (j, &w) in k.iter().enumerate() {
                    ss += i32::from(v[line * axis.line_step + (xmin + j) * axis.step + ch]) * w;
                }
                out[line * out_axis.line_step + o * out_axis.step + ch] = clip8(ss);
            }
        }
    }
    out
}

fn resample_f32(
    v: &[f32],
    c: usize,
    axis: &Axis,
    coeffs: &[(usize, Vec<f64>)],
    out_axis: &Axis,
) -> Vec<f32> {
    let mut out = vec![0f32; axis.lines * coeffs.len() * c];
    for line in 0..axis.lines {
        for (o, (xmin, k)) in coeffs.iter().enumerate() {
            for ch in 0..c {
                let mut ss = 0.0f64;
                for (j, &w) in k.iter().enumerate() {
                    ss += f64::from(v[line * axis.line_step + (xmin + j) * axis.step + ch]) * w;
                }
                out[line * out_axis.line_step + o * out_axis.step + ch] = ss as f32;
            }
        }
    }
    out
}

/// Pillow's `resize((width, height), BILINEAR)`: a horizontal pass, then a vertical one, each
/// only where the size changes.
pub fn resize_bilinear(image: RawImage, height: usize, width: usize) -> RawImage {
    let RawImage { height: h, width: w, channels: c, mut pixels } = image;
    if w != width {
        let coeffs = coefficients(w, width);
        let from = Axis { lines: h, line_step: w * c, step: c };
        let to = Axis { lines: h, line_step: width * c, step: c };
        pixels = match &pixels {
            Pixels::U8(v) => Pixels::U8(resample_u8(v, c, &from, &coeffs, &to)),
            Pixels::F32(v) => Pixels::F32(resample_f32(v, c, &from, &coeffs, &to)),
        };
    }
    if h != height {
        let coeffs = coefficients(h, height);
        let from = Axis { lines: width, line_step: c, step: width * c };
        let to = Axis { lines: width, line_step: c, step: width * c };
        pixels = match &pixels {
            Pixels::U8(v) => Pixels::U8(resample_u8(v, c, &from, &coeffs, &to)),
            Pixels::F32(v) => Pixels::F32(resample_f32(v, c, &from, &coeffs, &to)),
        };
    }
    RawImage { height, width, channels: c, pixels }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gray(h: usize, w: usize, v: Vec<u8>) -> RawImage {
        RawImage { height: h, width: w, channels: 1, pixels: Pixels::U8(v) }
    }

    #[test]
    fn sizes_as_torchvision() {
        // Resize(256) of 500 x 375 (w x h): 341 x 256; of 240 x 320: 256 x 341.
        assert_eq!(resized_size(375, 500, 256), (256, 341));
        assert_eq!(resized_size(320, 240, 256), (341, 256));
        assert_eq!(resized_size(32, 32, 16), (16, 16));
        // Python's round: (257 - 224) / 2 = 16.5 -> 16; (259 - 224) / 2 = 17.5 -> 18.
        assert_eq!(round_half_even(16.5), 16);
        assert_eq!(round_half_even(17.5), 18);
        assert_eq!(round_half_even(3.2), 3);
        assert_eq!(round_half_even(3.7), 4);
    }

    #[test]
    fn halving_averages_pairs() {
        // Halving with the triangle filter of support 2: each output is a weighted mean of
        // four inputs, weights 1/8, 3/8, 3/8, 1/8 (clipped and renormalised at the border).
        let row = gray(1, 8, vec![0, 80, 160, 240, 0, 80, 160, 240]);
        let out = resize_bilinear(row, 1, 4);
        let Pixels::U8(v) = out.pixels else { panic!() };
        // Output 1 (centre 3.0): inputs 1..5 with weights 1/8, 3/8, 3/8, 1/8 of 80,160,240,0.
        let expected: f64 = (80.0 + 3.0 * 160.0 + 3.0 * 240.0 + 0.0) / 8.0;
        assert_eq!(v[1], (expected + 0.5).floor() as u8);
        // Output 0 (centre 1.0): inputs 0..3 with weights 3/8, 3/8, 1/8 renormalised by 7/8.
        let expected0: f64 = (3.0 * 0.0 + 3.0 * 80.0 + 160.0) / 7.0;
        assert_eq!(v[0], (expected0 + 0.5).floor() as u8);
    }

    #[test]
    fn crop_and_pad() {
        let img = gray(3, 4, (0..12).collect());
        let c = center_crop(img.clone(), 2);
        // top = round(0.5) = 0, left = round(1.0) = 1.
        assert_eq!(c.pixels, Pixels::U8(vec![1, 2, 5, 6]));
        let p = center_crop(img, 5);
        assert_eq!((p.height, p.width), (5, 5));
        let Pixels::U8(v) = p.pixels else { panic!() };
        // Rows: one of zeros on top and one below; columns: none on the left (the smaller
        // half of 1), one on the right.
        assert_eq!(&v[..5], &[0; 5]);
        assert_eq!(&v[5..10], &[0, 1, 2, 3, 0]);
    }

    #[test]
    fn luma_as_pillow() {
        let rgb = RawImage {
            height: 1,
            width: 2,
            channels: 3,
            pixels: Pixels::U8(vec![255, 0, 0, 10, 200, 30]),
        };
        let g = convert_color(rgb, ColorConversion::Gray);
        // Pillow: (255*19595 + 0x8000) >> 16 = 76; (10*19595 + 200*38470 + 30*7471 + 0x8000) >> 16 = 124.
        assert_eq!(g.pixels, Pixels::U8(vec![76, 124]));
        assert_eq!(
            convert_color(g, ColorConversion::Rgb).pixels,
            Pixels::U8(vec![76, 76, 76, 124, 124, 124])
        );
    }

    #[test]
    fn normalises_per_channel() {
        let p = Preprocess {
            mean: Some(vec![0.5, 0.0]),
            std: Some(vec![0.5, 2.0]),
            ..Default::default()
        };
        let img = RawImage { height: 1, width: 1, channels: 2, pixels: Pixels::U8(vec![255, 51]) };
        let mut out = [0.0; 2];
        p.values_into(&img, &mut out);
        assert_eq!(out, [(1.0 - 0.5) / 0.5, (51.0f32 / 255.0) / 2.0]);
        assert!(p.check(3).is_err() && p.check(2).is_ok());
    }

    proptest! {
        /// A constant image stays constant through any resize (the weights sum to one), and
        /// bytes and floats agree to rounding.
        #[test]
        fn resizing_keeps_constants(h in 1usize..40, w in 1usize..40, oh in 1usize..40, ow in 1usize..40, v in 0u8..=255) {
            let out = resize_bilinear(gray(h, w, vec![v; h * w]), oh, ow);
            prop_assert_eq!(out.pixels, Pixels::U8(vec![v; oh * ow]));
            let f = RawImage { height: h, width: w, channels: 1, pixels: Pixels::F32(vec![f32::from(v); h * w]) };
            let Pixels::F32(out) = resize_bilinear(f, oh, ow).pixels else { panic!() };
            prop_assert!(out.iter().all(|x| (x - f32::from(v)).abs() < 1e-3));
        }

        /// Bytes and floats give the same image to within the two roundings of the byte path.
        #[test]
        fn bytes_follow_floats(h in 2usize..24, w in 2usize..24, oh in 1usize..24, ow in 1usize..24, seed in 0u64..1000) {
            let v: Vec<u8> = (0..h * w).map(|i| ((i as u64 * 2654435761 + seed) % 256) as u8).collect();
            let Pixels::U8(b) = resize_bilinear(gray(h, w, v.clone()), oh, ow).pixels else { panic!() };
            let f = RawImage { height: h, width: w, channels: 1, pixels: Pixels::F32(v.iter().map(|&x| f32::from(x)).collect()) };
            let Pixels::F32(fl) = resize_bilinear(f, oh, ow).pixels else { panic!() };
            for (x, y) in b.iter().zip(&fl) {
                prop_assert!((f32::from(*x) - y).abs() <= 1.0 + 1e-3, "{} vs {}", x, y);
            }
        }
    }
}
