//! Errors of the linearity measure.

use nnlens_core::CoreError;

/// What can go wrong measuring linearity.
#[derive(Debug, thiserror::Error)]
pub enum LinearityError {
    /// A parameter or input that does not make sense (the message says which).
    #[error("{0}")]
    Invalid(String),
    /// An error of the model or of the data.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<LinearityError> for CoreError {
    fn from(e: LinearityError) -> Self {
        match e {
            LinearityError::Core(e) => e,
            LinearityError::Invalid(reason) => {
                CoreError::InvalidParameters { what: "linearity measure".into(), reason }
            }
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = LinearityError> = std::result::Result<T, E>;

/// An [`LinearityError::Invalid`] from a formatted message.
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::LinearityError::Invalid(format!($($arg)*)) };
}
pub(crate) use invalid;
