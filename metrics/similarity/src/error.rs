//! Errors of the gradient similarity.

use nnlens_core::CoreError;

/// What can go wrong explaining by gradient similarity.
#[derive(Debug, thiserror::Error)]
pub enum SimilarityError {
    /// A parameter or input that does not make sense (the message says which).
    #[error("{0}")]
    Invalid(String),
    /// `explain` before `fit`.
    #[error("the explainer has no reference set: call fit first")]
    NotFitted,
    /// An error of the model or of the data.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<SimilarityError> for CoreError {
    fn from(e: SimilarityError) -> Self {
        match e {
            SimilarityError::Core(e) => e,
            other => CoreError::InvalidParameters {
                what: "gradient similarity".into(),
                reason: other.to_string(),
            },
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = SimilarityError> = std::result::Result<T, E>;

/// A [`SimilarityError::Invalid`] from a formatted message.
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::SimilarityError::Invalid(format!($($arg)*)) };
}
pub(crate) use invalid;
