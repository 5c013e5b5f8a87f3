use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};

use crate::{CoreError, Result};

/// A 2-D matrix of inputs (rows x columns), as `DataSet` of transformational-measures-tf: for a
/// plain dataset the rows are samples and there is one column; for a transformations dataset the
/// rows are samples and the columns transformations. [`Self::transpose`] swaps the two.
pub trait DataSet: Send + Sync {
    /// The number of rows (after any transposition).
    fn height(&self) -> usize;

    /// The number of columns (after any transposition).
    fn width(&self) -> usize;

    /// The shape of one input (e.g. `[28, 28, 1]`).
    fn data_shape(&self) -> &[usize];

    /// The inputs at `rows` x `cols`, as an array `[rows.len(), cols.len(), ...data_shape]`.
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] for an index outside the matrix.
    fn get_matrix(&self, rows: &[usize], cols: &[usize]) -> Result<ArrayD<f32>>;

    /// Swaps rows and columns.
    fn transpose(&mut self);

    /// Whether the dataset is transposed.
    fn is_transposed(&self) -> bool;
}

/// A [`DataSet`] of samples x transformations, as `TransformationsDataSet` of
/// transformational-measures-tf: rows are samples and columns transformations (the other way
/// round once transposed). Transformations come in numbered groups, chosen with
/// [`Self::set_transformation_group`].
pub trait TransformationsDataSet: DataSet {
    /// The number of transformations of the current set.
    fn number_of_transformations(&self) -> usize;

    /// Applies the inverse of transformation `transformation` to one sample's activation tensor
    /// (or input), of shape `[h, w]`, or `[c, h, w]` / `[h, w, c]` with the channel axis given.
    /// The transformation's parameters are adapted to the tensor's spatial size (see the
    /// implementation's documentation).
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] for a transformation index past the end, [`CoreError::Shape`]
    /// for a tensor without two spatial axes.
    fn apply_inverse_transformation(
        &self,
        tensor: ArrayViewD<'_, f32>,
        channel_axis: Option<usize>,
        transformation: usize,
    ) -> Result<ArrayD<f32>>;

    /// Applies transformation `transformation` itself (not its inverse) to one sample's
    /// activation tensor, with the same conventions as [`Self::apply_inverse_transformation`].
    ///
    /// # Errors
    /// As [`Self::apply_inverse_transformation`].
    fn apply_transformation(
        &self,
        tensor: ArrayViewD<'_, f32>,
        channel_axis: Option<usize>,
        transformation: usize,
    ) -> Result<ArrayD<f32>>;

    /// Whether transformation `transformation` is the identity (false past the end).
    fn is_identity(&self, transformation: usize) -> bool;

    /// The number of transformation groups.
    fn number_of_groups(&self) -> usize;

    /// Replaces the transformations by `n` transformations of group `group`.
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] for an unknown group, [`CoreError::InvalidParameters`] for `n`
    /// that the group cannot make (0, say).
    fn set_transformation_group(&mut self, group: usize, n: usize) -> Result<()>;
}

/// Checks every index of `indices` against `len` (for [`DataSet::get_matrix`] implementations).
///
/// # Errors
/// [`CoreError::OutOfRange`] naming `what`.
pub fn check_indices(what: &str, indices: &[usize], len: usize) -> Result<()> {
    match indices.iter().find(|&&i| i >= len) {
        Some(&index) => Err(CoreError::OutOfRange { what: what.to_string(), index, len }),
        None => Ok(()),
    }
}

/// A dataset held in memory as one array `[samples, ...data_shape]`: a `samples x 1` matrix
/// (`1 x samples` when transposed). Labels, where there are any, travel beside it.
#[derive(Debug, Clone)]
pub struct ArrayDataSet {
    data: ArrayD<f32>,
    data_shape: Vec<usize>,
    labels: Option<Vec<usize>>,
    transposed: bool,
}

impl ArrayDataSet {
    /// Wraps `data` (`[samples, ...]`) with optional labels.
    ///
    /// # Errors
    /// [`CoreError::Empty`] for no samples, [`CoreError::Shape`] for a 0-D array or a label count
    /// that is not the sample count.
    pub fn new(data: ArrayD<f32>, labels: Option<Vec<usize>>) -> Result<Self> {
        if data.ndim() == 0 {
            return Err(CoreError::Shape {
                what: "dataset array".into(),
                expected: "[samples, ...]".into(),
                got: "a scalar".into(),
            });
        }
        let samples = data.shape()[0];
        if samples == 0 {
            return Err(CoreError::Empty("the dataset".into()));
        }
        if let Some(labels) = &labels
            && labels.len() != samples
        {
            return Err(CoreError::Shape {
                what: "labels".into(),
                expected: format!("{samples} (one per sample)"),
                got: labels.len().to_string(),
            });
        }
        let data_shape = data.shape()[1..].to_vec();
        Ok(Self {
            data: data.as_standard_layout().into_owned(),
            data_shape,
            labels,
            transposed: false,
        })
    }

    /// The number of samples.
    pub fn samples(&self) -> usize {
        self.data.shape()[0]
    }

    /// The labels, if any.
    pub fn labels(&self) -> Option<&[usize]> {
        self.labels.as_deref()
    }

    /// The whole array `[samples, ...]`.
    pub fn data(&self) -> &ArrayD<f32> {
        &self.data
    }
}

impl DataSet for ArrayDataSet {
    fn height(&self) -> usize {
        if self.transposed { 1 } else { self.samples() }
    }

    fn width(&self) -> usize {
        if self.transposed { self.samples() } else { 1 }
    }

    fn data_shape(&self) -> &[usize] {
        &self.data_shape
    }

    fn get_matrix(&self, rows: &[usize], cols: &[usize]) -> Result<ArrayD<f32>> {
        check_indices("dataset rows", rows, self.height())?;
        check_indices("dataset columns", cols, self.width())?;
        let mut shape = vec![rows.len(), cols.len()];
        shape.extend_from_slice(&self.data_shape);
        let mut out = ArrayD::zeros(IxDyn(&shape));
        for (r, &row) in rows.iter().enumerate() {
            for (c, &col) in cols.iter().enumerate() {
                let sample = if self.transposed { col } else { row };
                out.index_axis_mut(Axis(0), r)
                    .index_axis_mut(Axis(0), c)
                    .assign(&self.data.index_axis(Axis(0), sample));
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn matrix_and_transpose() {
        let data = Array::from_shape_fn(IxDyn(&[4, 2]), |i| (i[0] * 10 + i[1]) as f32);
        let mut ds = ArrayDataSet::new(data, Some(vec![0, 1, 0, 1])).unwrap();
        assert_eq!((ds.height(), ds.width()), (4, 1));
        let m = ds.get_matrix(&[3, 1], &[0]).unwrap();
        assert_eq!(m.shape(), &[2, 1, 2]);
        assert_eq!(m[[0, 0, 1]], 31.0);
        ds.transpose();
        assert!(ds.is_transposed());
        assert_eq!((ds.height(), ds.width()), (1, 4));
        let m = ds.get_matrix(&[0], &[2, 0]).unwrap();
        assert_eq!(m[[0, 0, 0]], 20.0);
        assert!(matches!(ds.get_matrix(&[1], &[0]), Err(CoreError::OutOfRange { .. })));
    }

    #[test]
    fn bad_construction() {
        assert!(matches!(
            ArrayDataSet::new(ArrayD::zeros(IxDyn(&[0, 3])), None),
            Err(CoreError::Empty(_))
        ));
        assert!(ArrayDataSet::new(ArrayD::zeros(IxDyn(&[2, 3])), Some(vec![1])).is_err());
    }
}
