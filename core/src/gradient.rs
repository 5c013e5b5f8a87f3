//! Models that give gradients of a loss with respect to their own parameters, kept apart from
//! [`Model`](crate::Model) so that inference-only backends stay simple.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD};
use serde::{Deserialize, Serialize};

use crate::{ModelStructure, Result};

/// One trainable tensor of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    /// Its name in the model file (an ONNX initializer's name).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
}

impl Parameter {
    /// The number of scalars.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no scalars.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The loss whose gradient is taken, per example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Categorical cross-entropy of the model's output taken as probabilities (a softmax
    /// output): `-log p[y]`, with `dL/dlogits = p - onehot(y)` through the softmax, no clipping.
    CrossEntropyFromProbabilities,
    /// Categorical cross-entropy of the model's output taken as logits: `-log softmax(z)[y]`.
    CrossEntropyFromLogits,
    /// Mean squared error of the output against real-valued targets (regression):
    /// `mean_k (out_k - t_k)^2`.
    MeanSquaredError,
}

/// What the loss compares the output with.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// Class labels, one per example (cross-entropy losses).
    Classes(&'a [usize]),
    /// Real targets `[examples, outputs]` (mean squared error).
    Values(ArrayView2<'a, f32>),
}

impl Targets<'_> {
    /// The number of examples the targets are for.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(c) => c.len(),
            Targets::Values(v) => v.nrows(),
        }
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A model that gives per-example gradients of a loss with respect to every parameter.
///
/// Gradients are flattened in the order of [`GradModel::parameters`], each tensor row-major;
/// dot products and cosines of gradients do not depend on that order, as long as every
/// gradient uses the same one.
pub trait GradModel: Send + Sync {
    /// The backend's name (`candle`, ...).
    fn backend(&self) -> &'static str;

    /// The model's input and layers.
    fn structure(&self) -> &ModelStructure;

    /// The trainable tensors, in the order of the flattened gradients.
    fn parameters(&self) -> &[Parameter];

    /// The total number of trainable scalars (the length of one flattened gradient).
    fn parameter_count(&self) -> usize {
        self.parameters().iter().map(Parameter::len).sum()
    }

    /// The model's output for a batch (`[batch, ...input shape]`).
    ///
    /// # Errors
    /// A batch of the wrong shape, or an engine error.
    fn output(&self, x: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>>;

    /// The gradient of `loss` for each example of the batch, flattened:
    /// `[batch, parameter_count]`.
    ///
    /// # Errors
    /// A batch of the wrong shape, targets of another length than the batch, a label outside
    /// the output's classes, a loss that does not fit the targets, or an engine error.
    fn per_example_gradients(
        &self,
        x: ArrayViewD<'_, f32>,
        targets: Targets<'_>,
        loss: Loss,
    ) -> Result<Array2<f32>>;
}
