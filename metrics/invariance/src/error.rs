//! Errors of the invariance measures.

use nnlens_core::CoreError;

/// What can go wrong measuring invariance.
#[derive(Debug, thiserror::Error)]
pub enum InvarianceError {
    /// A measure, parameter or input that does not make sense (the message says which).
    #[error("{0}")]
    Invalid(String),
    /// An error of the model, dataset or block iterator.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<InvarianceError> for CoreError {
    fn from(e: InvarianceError) -> Self {
        match e {
            InvarianceError::Core(e) => e,
            InvarianceError::Invalid(reason) => {
                CoreError::InvalidParameters { what: "invariance measure".into(), reason }
            }
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = InvarianceError> = std::result::Result<T, E>;
