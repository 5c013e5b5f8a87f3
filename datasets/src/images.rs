//! Labelled images as an nnlens [`DataSet`], whatever their source: read, preprocessed and
//! scaled a batch at a time (in parallel), so that memory is bounded by the batch.

use std::ops::Range;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use nnlens_core::{CoreError, DataSet};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::idx::{IdxArray, IdxData};
use crate::preprocess::Preprocess;
use crate::store::{ImageStore, MemoryStore, Pixels, RawImage};
use crate::{DatasetError, Result};

/// How pixel bytes become model inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelScale {
    /// `pixel / 255`, in [0, 1] (Keras and PyTorch models; torchvision's `ToTensor`).
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

/// Labelled images of one size, from any source (IDX, CIFAR, NPY, an image folder), with the
/// preprocessing that makes them model inputs. Images are read and preprocessed when a batch
/// is asked for, in parallel; a subset is a list of rows, not a copy. As a [`DataSet`] it is a
/// `samples x 1` matrix (`1 x samples` transposed) of inputs `[height, width, channels]`.
#[derive(Debug, Clone)]
pub struct ImageDataSet {
    name: String,
    store: Arc<dyn ImageStore>,
    rows: Arc<[usize]>,
    labels: Option<Arc<[usize]>>,
    class_names: Arc<[String]>,
    preprocess: Arc<Preprocess>,
    data_shape: [usize; 3],
    transposed: bool,
}

/// The class names `0`, `1`, ... of `n` classes.
pub fn numbered_classes(n: usize) -> Vec<String> {
    (0..n).map(|c| c.to_string()).collect()
}

impl ImageDataSet {
    /// Builds a dataset of every image of `store`; the first image sets the size.
    pub(crate) fn new(
        name: &str,
        store: Arc<dyn ImageStore>,
        labels: Option<Vec<usize>>,
        class_names: Vec<String>,
        preprocess: Preprocess,
    ) -> Result<Self> {
        let n = store.len();
        if n == 0 {
            return Err(CoreError::Empty(format!("dataset {name}")).into());
        }
        if let Some(labels) = &labels {
            if labels.len() != n {
                return Err(DatasetError::Inconsistent(format!(
                    "{name}: {n} images but {} labels",
                    labels.len()
                )));
            }
            if let Some((row, &l)) =
                labels.iter().enumerate().find(|(_, l)| **l >= class_names.len())
            {
                return Err(DatasetError::Inconsistent(format!(
                    "{name}: label {l} at row {row} is not below {} classes",
                    class_names.len()
                )));
            }
        }
        let mut data = Self {
            name: name.to_string(),
            store,
            rows: (0..n).collect(),
            labels: labels.map(Into::into),
            class_names: class_names.into(),
            preprocess: Arc::new(Preprocess::default()),
            data_shape: [0; 3],
            transposed: false,
        };
        data.set_preprocess(preprocess)?;
        Ok(data)
    }

    /// Images of one size held as bytes, channels last (`pixels` is `n x height x width x
    /// channels`), with labels below the number of class names.
    ///
    /// # Errors
    /// [`DatasetError::Inconsistent`] for a pixel count that is not whole images or labels that
    /// do not fit, [`DatasetError::Core`] (empty) for no images.
    pub fn from_bytes(
        name: &str,
        pixels: Vec<u8>,
        [height, width, channels]: [usize; 3],
        labels: Option<Vec<usize>>,
        class_names: Vec<String>,
        preprocess: Preprocess,
    ) -> Result<Self> {
        let per = height * width * channels;
        if per == 0 || !pixels.len().is_multiple_of(per) {
            return Err(DatasetError::Inconsistent(format!(
                "{name}: {} bytes are not whole {height} x {width} x {channels} images",
                pixels.len()
            )));
        }
        let store = MemoryStore { name: name.to_string(), pixels, height, width, channels };
        Self::new(name, Arc::new(store), labels, class_names, preprocess)
    }

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
        Self::from_bytes(
            name,
            pixels.clone(),
            [rows, cols, 1],
            Some(label_bytes.iter().map(|&l| usize::from(l)).collect()),
            numbered_classes(classes),
            Preprocess { scale, ..Preprocess::default() },
        )
    }

    /// The same images under other preprocessing (the size is that of the first image after
    /// it).
    ///
    /// # Errors
    /// [`DatasetError::Inconsistent`] for a mean or standard deviation that does not fit the
    /// channels, or when the first image cannot be read.
    pub fn with_preprocess(mut self, preprocess: Preprocess) -> Result<Self> {
        self.set_preprocess(preprocess)?;
        Ok(self)
    }

    fn set_preprocess(&mut self, preprocess: Preprocess) -> Result<()> {
        let first = self.store.read(self.rows[0])?;
        let shape = preprocess.output_shape(first.height, first.width, first.channels);
        preprocess
            .check(shape[2])
            .map_err(|m| DatasetError::Inconsistent(format!("{}: {m}", self.name)))?;
        self.data_shape = shape;
        self.preprocess = Arc::new(preprocess);
        Ok(())
    }

    /// The same images and labels with other class names (at least one per label).
    ///
    /// # Errors
    /// [`DatasetError::Inconsistent`] when a label has no name.
    pub fn with_class_names(mut self, names: Vec<String>) -> Result<Self> {
        if let Some(max) = self.labels().iter().max()
            && *max >= names.len()
        {
            return Err(DatasetError::Inconsistent(format!(
                "{}: {} class names, but the labels go up to {max}",
                self.name,
                names.len()
            )));
        }
        self.class_names = names.into();
        Ok(self)
    }

    /// The same images with other labels (one per image).
    ///
    /// # Errors
    /// [`DatasetError::Inconsistent`] for a count that is not the number of images, or a
    /// label past the class names.
    pub fn with_labels(mut self, labels: Vec<usize>) -> Result<Self> {
        if labels.len() != self.len() {
            return Err(DatasetError::Inconsistent(format!(
                "{}: {} images but {} labels",
                self.name,
                self.len(),
                labels.len()
            )));
        }
        self.labels = Some(labels.into());
        Ok(self)
    }

    /// The dataset's name (`fashion-mnist/test`, `folder data/val`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no images (never true for a built dataset).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether the images have labels.
    pub fn has_labels(&self) -> bool {
        self.labels.is_some()
    }

    /// The labels (empty when the source has none: see [`Self::require_labels`]).
    pub fn labels(&self) -> &[usize] {
        self.labels.as_deref().unwrap_or(&[])
    }

    /// The labels, for a computation that needs them.
    ///
    /// # Errors
    /// [`DatasetError::Inconsistent`] naming `what` for a source without labels.
    pub fn require_labels(&self, what: &str) -> Result<&[usize]> {
        self.labels.as_deref().ok_or_else(|| {
            DatasetError::Inconsistent(format!(
                "{what} needs labels, and {} has none (give --labels FILE.npy)",
                self.name
            ))
        })
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.class_names.len()
    }

    /// The class names, by label.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The preprocessing applied to every image.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// `[height, width, channels]` of every input.
    pub fn image_shape(&self) -> [usize; 3] {
        self.data_shape
    }

    /// Image `row` read and put through the geometric and colour steps of the preprocessing,
    /// values not yet scaled (for writing samples).
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] past the end; a file that cannot be read or decoded.
    pub fn raw_image(&self, row: usize) -> Result<RawImage> {
        let i = self.store_row(row)?;
        let image = self.preprocess.transform(self.store.read(i)?);
        self.check_size(&image, i)?;
        Ok(image)
    }

    fn check_size(&self, image: &RawImage, i: usize) -> Result<()> {
        let got = [image.height, image.width, image.channels];
        if got != self.data_shape {
            let [h, w, c] = self.data_shape;
            return Err(DatasetError::Inconsistent(format!(
                "{}: {} x {} x {} (height x width x channels) after preprocessing, but the dataset's images are {h} x {w} x {c}: images of several sizes need --resize N and --center-crop N",
                self.store.describe(i),
                got[0],
                got[1],
                got[2]
            )));
        }
        Ok(())
    }

    /// The images of store indices `indices`, read, preprocessed and scaled in parallel, as an
    /// array `[...leading, height, width, channels]` (`leading` multiplies to the count).
    fn read(&self, indices: &[usize], leading: &[usize]) -> nnlens_core::Result<ArrayD<f32>> {
        let per: usize = self.data_shape.iter().product();
        let mut values = vec![0f32; indices.len() * per];
        values.par_chunks_mut(per).zip(indices.par_iter()).try_for_each(|(chunk, &i)| {
            let image = self.preprocess.transform(self.store.read(i)?);
            self.check_size(&image, i)?;
            self.preprocess.values_into(&image, chunk);
            Ok::<_, DatasetError>(())
        })?;
        let shape: Vec<usize> = leading.iter().chain(&self.data_shape).copied().collect();
        ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| CoreError::DataSet(e.to_string()))
    }

    fn store_row(&self, row: usize) -> nnlens_core::Result<usize> {
        self.rows.get(row).copied().ok_or_else(|| CoreError::OutOfRange {
            what: format!("images of {}", self.name),
            index: row,
            len: self.len(),
        })
    }

    /// The images of rows `rows`, in that order, as `f32` `[rows.len(), height, width,
    /// channels]`, preprocessed and scaled.
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] for a row past the end; an image that cannot be read.
    pub fn images(&self, rows: &[usize]) -> nnlens_core::Result<ArrayD<f32>> {
        let indices =
            rows.iter().map(|&r| self.store_row(r)).collect::<nnlens_core::Result<Vec<_>>>()?;
        self.read(&indices, &[rows.len()])
    }

    /// The images of `range` as `f32` `[len, height, width, channels]`, preprocessed and
    /// scaled.
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] for a range past the end; an image that cannot be read.
    pub fn batch(&self, range: Range<usize>) -> nnlens_core::Result<ArrayD<f32>> {
        if range.end > self.len() || range.start > range.end {
            return Err(CoreError::OutOfRange {
                what: format!("images of {}", self.name),
                index: range.end,
                len: self.len(),
            });
        }
        self.images(&range.collect::<Vec<_>>())
    }

    /// The images at `indices`, in that order, as a new dataset (a view: nothing is copied).
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] for an index past the end, [`CoreError::Empty`] for none.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if indices.is_empty() {
            return Err(CoreError::Empty(format!("the subset of {}", self.name)).into());
        }
        let rows =
            indices.iter().map(|&i| self.store_row(i)).collect::<nnlens_core::Result<Vec<_>>>()?;
        Ok(Self {
            rows: rows.into(),
            labels: self.labels.as_ref().map(|l| indices.iter().map(|&i| l[i]).collect()),
            transposed: false,
            ..self.clone()
        })
    }

    /// The images and labels as IDX arrays (for writing a sample of a grey byte dataset).
    ///
    /// # Errors
    /// [`DatasetError::Inconsistent`] for images that are not one channel of bytes, or no
    /// labels.
    pub fn to_idx(&self) -> Result<(IdxArray, IdxArray)> {
        let [h, w, c] = self.data_shape;
        let labels = self.require_labels("an IDX sample")?;
        if c != 1 || !self.store.is_u8() {
            return Err(DatasetError::Inconsistent(format!(
                "IDX holds grey byte images; {} has {c} channels{}: write a folder or NPY instead",
                self.name,
                if self.store.is_u8() { "" } else { " of floats" }
            )));
        }
        if labels.iter().any(|&l| l > 255) {
            return Err(DatasetError::Inconsistent(
                "IDX labels are bytes: a label is above 255".into(),
            ));
        }
        let pixels = self.bytes()?;
        Ok((
            IdxArray { dims: vec![self.len(), h, w], data: IdxData::U8(pixels) },
            IdxArray {
                dims: vec![self.len()],
                data: IdxData::U8(labels.iter().map(|&l| l as u8).collect()),
            },
        ))
    }

    /// Every image's bytes after the geometric and colour steps of the preprocessing, one
    /// image after another (`len x height x width x channels`), for writing samples.
    ///
    /// # Errors
    /// [`DatasetError::Inconsistent`] for a source of floats; an image that cannot be read.
    pub fn bytes(&self) -> Result<Vec<u8>> {
        if !self.store.is_u8() {
            return Err(DatasetError::Inconsistent(format!(
                "{} holds floats, not bytes",
                self.name
            )));
        }
        let mut pixels = Vec::with_capacity(self.len() * self.data_shape.iter().product::<usize>());
        for row in 0..self.len() {
            match self.raw_image(row)?.pixels {
                Pixels::U8(v) => pixels.extend(v),
                Pixels::F32(_) => unreachable!("byte stores give bytes"),
            }
        }
        Ok(pixels)
    }

    /// Whether the source's values are bytes (else floats).
    pub fn is_bytes(&self) -> bool {
        self.store.is_u8()
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
        let mut indices = Vec::with_capacity(rows.len() * cols.len());
        for &r in rows {
            for &c in cols {
                indices.push(self.store_row(if self.transposed { c } else { r })?);
            }
        }
        self.read(&indices, &[rows.len(), cols.len()])
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
        assert_eq!(
            s.to_idx().unwrap().0.data,
            IdxData::U8(vec![160, 180, 200, 220, 0, 20, 40, 60])
        );
        assert_eq!(s.subset(&[1]).unwrap().labels(), &[1]);
        assert!(d.subset(&[3]).is_err());
        d.transpose();
        let m = d.get_matrix(&[0], &[1, 2]).unwrap();
        assert_eq!(m.shape(), &[1, 2, 2, 2, 1]);
        assert!((m[[0, 1, 0, 0, 0]] - 160.0 / 255.0).abs() < 1e-7);
        assert!(d.get_matrix(&[1], &[0]).is_err());
    }

    #[test]
    fn rgb_preprocessing_and_names() {
        // Two 4 x 6 RGB images.
        let pixels: Vec<u8> = (0..2 * 4 * 6 * 3).map(|i| (i * 5 % 256) as u8).collect();
        let d = ImageDataSet::from_bytes(
            "rgb",
            pixels,
            [4, 6, 3],
            Some(vec![1, 0]),
            vec!["cat".into(), "dog".into()],
            Preprocess::default(),
        )
        .unwrap();
        assert_eq!(d.data_shape(), &[4, 6, 3]);
        assert_eq!(d.class_names()[d.labels()[0]], "dog");
        let p = Preprocess {
            resize: Some(2),
            center_crop: Some(2),
            mean: Some(vec![0.5]),
            std: Some(vec![0.25, 0.5, 1.0]),
            ..Preprocess::default()
        };
        let d = d.with_preprocess(p).unwrap();
        assert_eq!(d.data_shape(), &[2, 2, 3]);
        let b = d.batch(0..2).unwrap();
        assert_eq!(b.shape(), &[2, 2, 2, 3]);
        let raw = d.raw_image(1).unwrap();
        let Pixels::U8(v) = raw.pixels else { panic!() };
        assert_eq!(b[[1, 0, 1, 2]], (f32::from(v[5]) / 255.0 - 0.5) / 1.0);
        assert!(d.to_idx().is_err(), "three channels are not IDX");
        assert!(d.clone().with_class_names(vec!["a".into()]).is_err());
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
