//! Samples x transformations.

use std::collections::HashMap;

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};
use nnlens_core::{CoreError, DataSet, TransformationsDataSet, check_indices};

use crate::{
    Resample, Result, SEED_GROUPS, TransformError, Transformation, TransformationSet, seed_group,
};

/// Any dataset of samples (a `samples x 1` [`DataSet`] of images `[h, w]` or `[h, w, c]`)
/// crossed with a [`TransformationSet`]: row `i`, column `j` is sample `i` under transformation
/// `j` (the other way round once transposed). Images are transformed when a block asks for
/// them, so nothing the size of samples x transformations is ever held.
#[derive(Debug, Clone)]
pub struct ImageTransformationsDataSet<D: DataSet> {
    base: D,
    set: TransformationSet,
    resample: Resample,
    transposed: bool,
    data_shape: Vec<usize>,
}

impl<D: DataSet> ImageTransformationsDataSet<D> {
    /// Crosses `base` with `set`, resampling with `resample`.
    ///
    /// # Errors
    /// [`TransformError::Shape`] when the base's inputs are not images, [`TransformError::Invalid`]
    /// when the base is not one column of samples or the set is empty.
    pub fn new(base: D, set: TransformationSet, resample: Resample) -> Result<Self> {
        if base.width() != 1 || base.is_transposed() {
            return Err(TransformError::Invalid(format!(
                "the base dataset must be one column of samples (it is {} x {})",
                base.height(),
                base.width()
            )));
        }
        if set.is_empty() {
            return Err(TransformError::Invalid(format!(
                "transformation set '{}' is empty",
                set.spec
            )));
        }
        let data_shape = base.data_shape().to_vec();
        let channel_axis = (data_shape.len() == 3).then_some(2);
        crate::Layout::of(&data_shape, channel_axis)?;
        Ok(Self { base, set, resample, transposed: false, data_shape })
    }

    /// The transformations.
    pub fn set(&self) -> &TransformationSet {
        &self.set
    }

    /// Replaces the transformations.
    ///
    /// # Errors
    /// [`TransformError::Invalid`] for an empty set.
    pub fn set_transformations(&mut self, set: TransformationSet) -> Result<()> {
        if set.is_empty() {
            return Err(TransformError::Invalid(format!(
                "transformation set '{}' is empty",
                set.spec
            )));
        }
        self.set = set;
        Ok(())
    }

    /// The base dataset.
    pub fn base(&self) -> &D {
        &self.base
    }

    /// The number of samples.
    pub fn samples(&self) -> usize {
        self.base.height()
    }

    /// `[height, width]` of the images.
    pub fn image_size(&self) -> [usize; 2] {
        [self.data_shape[0], self.data_shape[1]]
    }

    /// Transformation `transformation` (or its inverse) rescaled to `tensor`'s spatial size and
    /// applied to it.
    fn apply_adapted(
        &self,
        tensor: ArrayViewD<'_, f32>,
        channel_axis: Option<usize>,
        transformation: usize,
        inverse: bool,
    ) -> nnlens_core::Result<ArrayD<f32>> {
        let t = self.set.get(transformation).ok_or(CoreError::OutOfRange {
            what: "transformations".into(),
            index: transformation,
            len: self.set.len(),
        })?;
        let map_size = match crate::Layout::of(tensor.shape(), channel_axis)? {
            crate::Layout::Chw => [tensor.shape()[1], tensor.shape()[2]],
            _ => [tensor.shape()[0], tensor.shape()[1]],
        };
        let t = if inverse { t.inverse() } else { t.clone() };
        Ok(t.rescaled(self.image_size(), map_size).apply(tensor, channel_axis, self.resample)?)
    }

    fn image_channel_axis(&self) -> Option<usize> {
        (self.data_shape.len() == 3).then_some(2)
    }
}

impl<D: DataSet> DataSet for ImageTransformationsDataSet<D> {
    fn height(&self) -> usize {
        if self.transposed { self.set.len() } else { self.samples() }
    }

    fn width(&self) -> usize {
        if self.transposed { self.samples() } else { self.set.len() }
    }

    fn data_shape(&self) -> &[usize] {
        &self.data_shape
    }

    fn get_matrix(&self, rows: &[usize], cols: &[usize]) -> nnlens_core::Result<ArrayD<f32>> {
        check_indices("rows", rows, self.height())?;
        check_indices("columns", cols, self.width())?;
        let pair = |r: usize, c: usize| if self.transposed { (c, r) } else { (r, c) };
        // Every sample the block needs, fetched from the base in one call (which may read and
        // decode them in parallel), each once.
        let mut samples: Vec<usize> = Vec::new();
        for &r in rows {
            for &c in cols {
                let (sample, _) = pair(r, c);
                if !samples.contains(&sample) {
                    samples.push(sample);
                }
            }
        }
        let fetched = self.base.get_matrix(&samples, &[0])?;
        let images: HashMap<usize, ArrayD<f32>> = samples
            .iter()
            .enumerate()
            .map(|(i, &sample)| {
                (sample, fetched.index_axis(Axis(0), i).index_axis(Axis(0), 0).to_owned())
            })
            .collect();
        let mut shape = vec![rows.len(), cols.len()];
        shape.extend_from_slice(&self.data_shape);
        let mut out = ArrayD::zeros(IxDyn(&shape));
        for (i, &r) in rows.iter().enumerate() {
            for (j, &c) in cols.iter().enumerate() {
                let (sample, t) = pair(r, c);
                let transformation = &self.set.transformations[t];
                let image = &images[&sample];
                let mut slot = out.index_axis_mut(Axis(0), i);
                let mut slot = slot.index_axis_mut(Axis(0), j);
                if transformation.is_identity() {
                    slot.assign(image);
                } else {
                    slot.assign(&transformation.apply(
                        image.view(),
                        self.image_channel_axis(),
                        self.resample,
                    )?);
                }
            }
        }
        Ok(out)
    }

    fn transpose(&mut self) {
        self.transposed = !self.transposed;
    }

    fn is_transposed(&self) -> bool {
        self.transposed
    }
}

impl<D: DataSet> TransformationsDataSet for ImageTransformationsDataSet<D> {
    fn number_of_transformations(&self) -> usize {
        self.set.len()
    }

    /// Inverts transformation `transformation` on `tensor`, adapted to the tensor's spatial size
    /// ([`crate::Transformation::rescaled`] from the images' size).
    fn apply_inverse_transformation(
        &self,
        tensor: ArrayViewD<'_, f32>,
        channel_axis: Option<usize>,
        transformation: usize,
    ) -> nnlens_core::Result<ArrayD<f32>> {
        self.apply_adapted(tensor, channel_axis, transformation, true)
    }

    /// Applies transformation `transformation` to `tensor`, adapted to the tensor's spatial size.
    fn apply_transformation(
        &self,
        tensor: ArrayViewD<'_, f32>,
        channel_axis: Option<usize>,
        transformation: usize,
    ) -> nnlens_core::Result<ArrayD<f32>> {
        self.apply_adapted(tensor, channel_axis, transformation, false)
    }

    fn is_identity(&self, transformation: usize) -> bool {
        self.set.get(transformation).is_some_and(Transformation::is_identity)
    }

    fn number_of_groups(&self) -> usize {
        SEED_GROUPS
    }

    fn set_transformation_group(&mut self, group: usize, n: usize) -> nnlens_core::Result<()> {
        let [h, w] = self.image_size();
        self.set = seed_group(group, n, h, w)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Transformation;
    use ndarray::Array;
    use nnlens_core::ArrayDataSet;

    fn base() -> ArrayDataSet {
        let data =
            Array::from_shape_fn(IxDyn(&[3, 6, 6, 1]), |i| (i[0] * 100 + i[1] * 6 + i[2]) as f32);
        ArrayDataSet::new(data, None).unwrap()
    }

    #[test]
    fn rows_are_samples_and_columns_transformations() {
        let set = TransformationSet::parse("identity+rotation:90+translation:dx=1").unwrap();
        let mut ds = ImageTransformationsDataSet::new(base(), set, Resample::default()).unwrap();
        assert_eq!((ds.height(), ds.width()), (3, 3));
        let m = ds.get_matrix(&[2, 0], &[0, 1, 2]).unwrap();
        assert_eq!(m.shape(), &[2, 3, 6, 6, 1]);
        assert_eq!(m[[0, 0, 1, 2, 0]], 208.0);
        // rot90: out[i][j] = in[j][5 - i]
        assert_eq!(m[[1, 1, 1, 2, 0]], (2 * 6 + 4) as f32);
        assert_eq!(m[[1, 2, 0, 0, 0]], 0.0, "edge repeated");
        assert_eq!(m[[1, 2, 0, 3, 0]], 2.0);
        ds.transpose();
        assert_eq!((ds.height(), ds.width()), (3, 3));
        let t = ds.get_matrix(&[1], &[2]).unwrap();
        assert_eq!(
            t.index_axis(Axis(0), 0).index_axis(Axis(0), 0),
            m.index_axis(Axis(0), 0).index_axis(Axis(0), 1)
        );
        assert!(ds.get_matrix(&[3], &[0]).is_err());
    }

    #[test]
    fn inverse_on_maps_of_another_size() {
        let set = TransformationSet::parse("translation:dx=2").unwrap();
        let ds = ImageTransformationsDataSet::new(base(), set, Resample::default()).unwrap();
        // A 3 x 3 map of a 6 x 6 image: the 2-pixel shift is a 1-pixel shift there.
        let map = Array::from_shape_fn(IxDyn(&[2, 3, 3]), |i| (i[0] * 9 + i[1] * 3 + i[2]) as f32);
        let back = ds.apply_inverse_transformation(map.view(), Some(0), 0).unwrap();
        assert_eq!(back[[1, 1, 0]], map[[1, 1, 1]]);
        assert_eq!(back[[1, 1, 2]], map[[1, 1, 2]], "edge repeated");
        let expected = Transformation::translation(-1.0, 0.0)
            .unwrap()
            .apply(map.view(), Some(0), Resample::default())
            .unwrap();
        assert_eq!(back, expected);
        assert!(ds.apply_inverse_transformation(map.view(), Some(0), 1).is_err());
        assert!(ds.apply_inverse_transformation(map.view(), Some(1), 0).is_err());
    }

    #[test]
    fn groups_replace_the_set() {
        let mut ds = ImageTransformationsDataSet::new(
            base(),
            TransformationSet::parse("identity").unwrap(),
            Resample::default(),
        )
        .unwrap();
        assert_eq!(ds.number_of_groups(), 7);
        ds.set_transformation_group(1, 4).unwrap();
        assert_eq!(ds.number_of_transformations(), 4);
        assert_eq!(ds.width(), 4);
        assert!(ds.set_transformation_group(9, 4).is_err());
        let not_a_column = {
            let mut b = base();
            b.transpose();
            b
        };
        assert!(
            ImageTransformationsDataSet::new(
                not_a_column,
                TransformationSet::parse("identity").unwrap(),
                Resample::default()
            )
            .is_err()
        );
    }
}
