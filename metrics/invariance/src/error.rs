//! Errors of the invariance measures.

use nnlens_core::CoreError;

/// What can go wrong measuring invariance.
#[derive(Debug, thiserror::Error)]
pub enum InvarianceError {
    /// A measure, parameter or input that does not make sense (the message says which).
    #[error("{0}")]
    Invalid(String),
    /// An activation that is NaN or infinite: the model (or the activation file) gives
    /// values no measure can use, often a sign of corrupted weights.
    #[error(
        "layer {layer}: activation {value} for sample {sample}, transformation {transformation} \
         (the model gives non-finite values: are its weights intact?)"
    )]
    NonFinite {
        /// The layer.
        layer: String,
        /// The sample (row of the samples x transformations matrix).
        sample: usize,
        /// The transformation (column).
        transformation: usize,
        /// The value.
        value: f64,
    },
    /// An error of the model, dataset or block iterator.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<InvarianceError> for CoreError {
    fn from(e: InvarianceError) -> Self {
        match e {
            InvarianceError::Core(e) => e,
            e @ InvarianceError::NonFinite { .. } => {
                CoreError::InvalidParameters { what: "activations".into(), reason: e.to_string() }
            }
            InvarianceError::Invalid(reason) => {
                CoreError::InvalidParameters { what: "invariance measure".into(), reason }
            }
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = InvarianceError> = std::result::Result<T, E>;
