use std::ops::Range;

use ndarray::{ArrayD, IxDyn};
use nnlens_core::{CoreError, DataSet};

use crate::idx::{IdxArray, IdxData};
use crate::{DatasetError, Result};

/// How pixel bytes become model inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PixelScale {
    /// `pixel / 255`, in [0, 1] (Keras and PyTorch models).
    #[default]
    Unit,
    /// The raw value, in [0, 255] (scikit-learn's MNIST pipelines).
    Raw,
}

impl PixelScale {
    /// The divisor of every pixel. A division in `f32`, as `x.astype('float32') / 255` and
    /// PyTorch's `ToTensor` compute it (multiplying by `1/255` differs in the last bit for a
    /// third of the pixel values).
    fn divisor(self) -> f32 {
        match self {
            PixelScale::Unit => 255.0,
            PixelScale::Raw => 1.0,
        }
    }

    /// A pixel byte as the model sees it.
    #[inline]
    pub fn apply(self, pixel: u8) -> f32 {
        f32::from(pixel) / self.divisor()
    }
}

/// Labelled grey images held as bytes (a quarter of the memory of `f32`), converted per batch.
/// As a [`DataSet`] it is a `samples x 1` matrix (`1 x samples` transposed) of inputs of shape
/// `[rows, cols, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDataSet {
    name: String,
    rows: usize,
    cols: usize,
    pixels: Vec<u8>,
    labels: Vec<usize>,
    classes: usize,
    scale: PixelScale,
    data_shape: [usize; 3],
    transposed: bool,
}

impl ImageDataSet {
    /// Builds a dataset from an IDX image array `[n, rows, cols]` of bytes and an IDX label
    /// vector `[n]` of bytes with values below `classes`.
    ///
    /// # Errors
    /// [`DatasetError::Inconsistent`] when the arrays do not fit together,
    /// [`DatasetError::Core`] (empty) for no images.
    pub fn from_idx(
        name: &str,
        images: &IdxArray,
        labels: &IdxArray,
        scale: PixelScale,
        classes: usize,
    ) -> Result<Self> {
        let bad = |m: String| DatasetError::Inconsistent(format!("{name}: {m}"));
        let IdxData::U8(pixels) = &images.data else {
            return Err(bad("images must be unsigned bytes (IDX type 0x08)".into()));
        };
        let [n, rows, cols] = images.dims[..] else {
            return Err(bad(format!("images must be [n, rows, cols], got {:?}", images.dims)));
        };
        let IdxData::U8(label_bytes) = &labels.data else {
            return Err(bad("labels must be unsigned bytes (IDX type 0x08)".into()));
        };
        if labels.dims != [n] {
            return Err(bad(format!("{n} images but labels of shape {:?}", labels.dims)));
        }
        if n == 0 {
            return Err(CoreError::Empty(format!("dataset {name}")).into());
        }
        if let Some((row, &l)) =
            label_bytes.iter().enumerate().find(|(_, l)| **l as usize >= classes)
        {
            return Err(bad(format!("label {l} at row {row} is not below {classes} classes")));
        }
        Ok(Self {
            name: name.to_string(),
            rows,
            cols,
            pixels: pixels.clone(),
            labels: label_bytes.iter().map(|&l| l as usize).collect(),
            classes,
            scale,
            data_shape: [rows, cols, 1],
            transposed: false,
        })
    }

    /// The dataset's name (`fashion-mnist/test`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images (never true for a built dataset).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The images of `range` as `f32` `[len, rows, cols, 1]`, scaled.
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] for a range past the end.
    pub fn batch(&self, range: Range<usize>) -> nnlens_core::Result<ArrayD<f32>> {
        if range.end > self.len() || range.start > range.end {
            return Err(CoreError::OutOfRange {
                what: format!("images of {}", self.name),
                index: range.end,
                len: self.len(),
            });
        }
        let per = self.rows * self.cols;
        let scale = self.scale;
        let values: Vec<f32> = self.pixels[range.start * per..range.end * per]
            .iter()
            .map(|&p| scale.apply(p))
            .collect();
        ArrayD::from_shape_vec(IxDyn(&[range.len(), self.rows, self.cols, 1]), values)
            .map_err(|e| CoreError::DataSet(e.to_string()))
    }

    /// The images at `indices`, in that order, as a new dataset.
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] for an index past the end, [`CoreError::Empty`] for none.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if indices.is_empty() {
            return Err(CoreError::Empty(format!("the subset of {}", self.name)).into());
        }
        if let Some(&index) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(
                CoreError::OutOfRange { what: self.name.clone(), index, len: self.len() }.into()
            );
        }
        let per = self.rows * self.cols;
        let mut pixels = Vec::with_capacity(indices.len() * per);
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * per..(i + 1) * per]);
        }
        Ok(Self {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            transposed: false,
            name: self.name.clone(),
            ..*self
        })
    }

    /// The images and labels as IDX arrays (for writing a sample of a dataset).
    pub fn to_idx(&self) -> (IdxArray, IdxArray) {
        (
            IdxArray {
                dims: vec![self.len(), self.rows, self.cols],
                data: IdxData::U8(self.pixels.clone()),
            },
            IdxArray {
                dims: vec![self.len()],
                data: IdxData::U8(self.labels.iter().map(|&l| l as u8).collect()),
            },
        )
    }
}

impl DataSet for ImageDataSet {
    fn height(&self) -> usize {
        if self.transposed { 1 } else { self.len() }
    }

    fn width(&self) -> usize {
        if self.transposed { self.len() } else { 1 }
    }

    fn data_shape(&self) -> &[usize] {
        &self.data_shape
    }

    fn get_matrix(&self, rows: &[usize], cols: &[usize]) -> nnlens_core::Result<ArrayD<f32>> {
        nnlens_core::check_indices(&format!("{} rows", self.name), rows, self.height())?;
        nnlens_core::check_indices(&format!("{} columns", self.name), cols, self.width())?;
        let per = self.rows * self.cols;
        let scale = self.scale;
        let mut values = Vec::with_capacity(rows.len() * cols.len() * per);
        for &r in rows {
            for &c in cols {
                let i = if self.transposed { c } else { r };
                values.extend(self.pixels[i * per..(i + 1) * per].iter().map(|&p| scale.apply(p)));
            }
        }
        ArrayD::from_shape_vec(IxDyn(&[rows.len(), cols.len(), self.rows, self.cols, 1]), values)
            .map_err(|e| CoreError::DataSet(e.to_string()))
    }

    fn transpose(&mut self) {
        self.transposed = !self.transposed;
    }

    fn is_transposed(&self) -> bool {
        self.transposed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ImageDataSet {
        let images =
            IdxArray { dims: vec![3, 2, 2], data: IdxData::U8((0..12).map(|i| i * 20).collect()) };
        let labels = IdxArray { dims: vec![3], data: IdxData::U8(vec![1, 0, 2]) };
        ImageDataSet::from_idx("t", &images, &labels, PixelScale::Unit, 3).unwrap()
    }

    #[test]
    fn batches_scale_pixels() {
        let d = small();
        let b = d.batch(1..3).unwrap();
        assert_eq!(b.shape(), &[2, 2, 2, 1]);
        assert!((b[[0, 0, 1, 0]] - 100.0 / 255.0).abs() < 1e-7);
        assert!(d.batch(2..4).is_err());
    }

    #[test]
    fn subset_and_matrix() {
        let mut d = small();
        let s = d.subset(&[2, 0]).unwrap();
        assert_eq!(s.labels(), &[2, 1]);
        assert_eq!(s.to_idx().0.data, IdxData::U8(vec![160, 180, 200, 220, 0, 20, 40, 60]));
        assert!(d.subset(&[3]).is_err());
        d.transpose();
        let m = d.get_matrix(&[0], &[1, 2]).unwrap();
        assert_eq!(m.shape(), &[1, 2, 2, 2, 1]);
        assert!((m[[0, 1, 0, 0, 0]] - 160.0 / 255.0).abs() < 1e-7);
        assert!(d.get_matrix(&[1], &[0]).is_err());
    }

    #[test]
    fn inconsistent_files_are_errors() {
        let images = IdxArray { dims: vec![2, 2, 2], data: IdxData::U8(vec![0; 8]) };
        let labels = IdxArray { dims: vec![3], data: IdxData::U8(vec![0; 3]) };
        let e = ImageDataSet::from_idx("t", &images, &labels, PixelScale::Unit, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2 images"), "{e}");
        let labels = IdxArray { dims: vec![2], data: IdxData::U8(vec![0, 12]) };
        assert!(ImageDataSet::from_idx("t", &images, &labels, PixelScale::Unit, 10).is_err());
    }
}
