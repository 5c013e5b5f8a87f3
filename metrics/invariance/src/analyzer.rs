//! The seed package's `Analyzer`: for every transformation group of a dataset, a measure and the
//! model's accuracy on the transformed samples, to see how the two relate.

use nnlens_core::{Evaluation, Model, TransformationsDataSet, conform_input};
use serde::{Deserialize, Serialize};

use crate::result::nonfinite;
use crate::{InvarianceError, MeasureResult, MeasureSpec, ModelSource, Result};

/// One transformation group's measure and accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyzerRow {
    /// The group.
    pub group: usize,
    /// Transformations in it.
    pub transformations: usize,
    /// The measure's model total.
    #[serde(with = "nonfinite::f64")]
    pub measure: f64,
    /// Accuracy on every sample under every transformation of the group.
    pub accuracy: f64,
    /// Mean cross-entropy on the same.
    pub loss: f64,
    /// The full measure result.
    pub result: MeasureResult,
}

/// Runs a measure on every transformation group (see the module docs). Works on a copy of the
/// dataset: the caller's dataset keeps its transformations and orientation.
pub struct Analyzer<'a, D: TransformationsDataSet + Clone> {
    model: &'a dyn Model,
    dataset: &'a D,
    labels: &'a [usize],
    spec: MeasureSpec,
    batch_size: usize,
}

impl<D: TransformationsDataSet + Clone> std::fmt::Debug for Analyzer<'_, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("spec", &self.spec)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl<'a, D: TransformationsDataSet + Clone> Analyzer<'a, D> {
    /// The Analyzer of `spec` for `model` on `dataset`, whose samples have `labels`.
    ///
    /// # Errors
    /// [`InvarianceError::Invalid`] when there is not one label per sample.
    pub fn new(
        model: &'a dyn Model,
        dataset: &'a D,
        labels: &'a [usize],
        spec: MeasureSpec,
    ) -> Result<Self> {
        let samples = if dataset.is_transposed() { dataset.width() } else { dataset.height() };
        if labels.len() != samples {
            return Err(InvarianceError::Invalid(format!(
                "{} labels for {samples} samples",
                labels.len()
            )));
        }
        Ok(Self { model, dataset, labels, spec, batch_size: nnlens_core::DEFAULT_BATCH_SIZE })
    }

    /// Inputs per model call.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Runs every group with `n` transformations each; `progress(group)` is called before each.
    ///
    /// # Errors
    /// A group that cannot make `n` transformations, and the measure's and model's errors.
    pub fn run(&self, n: usize, mut progress: impl FnMut(usize)) -> Result<Vec<AnalyzerRow>> {
        let mut dataset = self.dataset.clone();
        if dataset.is_transposed() {
            dataset.transpose();
        }
        let mut rows = Vec::with_capacity(dataset.number_of_groups());
        for group in 0..dataset.number_of_groups() {
            progress(group);
            dataset.set_transformation_group(group, n)?;
            let result = {
                let mut source =
                    ModelSource::new(self.model, &mut dataset).with_batch_size(self.batch_size);
                crate::compute(&self.spec, &mut source)?
            };
            let evaluation = self.evaluate(&dataset)?;
            rows.push(AnalyzerRow {
                group,
                transformations: dataset.number_of_transformations(),
                measure: result.total,
                accuracy: evaluation.accuracy(),
                loss: evaluation.loss(),
                result,
            });
        }
        Ok(rows)
    }

    /// Loss and accuracy over every cell of the samples x transformations matrix.
    fn evaluate(&self, dataset: &D) -> Result<Evaluation> {
        let (height, width) = (dataset.height(), dataset.width());
        let rows_per_batch = (self.batch_size / width).max(1);
        let columns: Vec<usize> = (0..width).collect();
        let mut total = Evaluation::default();
        for start in (0..height).step_by(rows_per_batch) {
            let rows: Vec<usize> = (start..(start + rows_per_batch).min(height)).collect();
            let x = dataset.get_matrix(&rows, &columns)?;
            let shape = x.shape().to_vec();
            let x = x
                .into_shape_with_order([vec![rows.len() * width], shape[2..].to_vec()].concat())
                .map_err(|e| InvarianceError::Invalid(format!("inputs: {e}")))?;
            let x = conform_input(x, &self.model.structure().input)?;
            let labels: Vec<usize> =
                rows.iter().flat_map(|&r| std::iter::repeat_n(self.labels[r], width)).collect();
            total.merge(&self.model.evaluate(x.view(), &labels)?);
        }
        Ok(total)
    }
}
