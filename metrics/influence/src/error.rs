//! Errors of the influence and performance explanations.

use nnlens_core::CoreError;

/// What can go wrong explaining a model by entropic re-weighting.
///
/// Problems that concern a single (feature, target) pair, such as a target outside the range of
/// the feature, are not errors of the whole computation: they are reported as
/// [`Issue`](crate::Issue)s in the results, with `NaN` values for that pair.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InfluenceError {
    /// An input without rows, columns or values where some are needed.
    #[error("{what} is empty")]
    Empty {
        /// What is empty, in words.
        what: String,
    },
    /// Two inputs that do not describe the same rows.
    #[error("row count mismatch: the features have {features} rows but {what} has {got}")]
    RowMismatch {
        /// The other input (predictions, labels, targets, masks).
        what: String,
        /// Rows of the feature matrix.
        features: usize,
        /// Rows of the other input.
        got: usize,
    },
    /// An input whose shape is not the one expected.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    Shape {
        /// What was checked.
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape received.
        got: String,
    },
    /// A NaN or infinite value in an input.
    #[error("{what}: non-finite value ({value}) at row {row}, column {column}")]
    NonFinite {
        /// The input.
        what: String,
        /// The row of the value.
        row: usize,
        /// The column of the value.
        column: usize,
        /// The value.
        value: f64,
    },
    /// A class label that the predictions do not have.
    #[error("label {label} at row {row} is outside the {classes} classes of the predictions")]
    Label {
        /// The label.
        label: usize,
        /// Its row.
        row: usize,
        /// The number of classes.
        classes: usize,
    },
    /// A parameter outside its domain, or an unknown parameter.
    #[error("invalid parameter '{name}': {reason}")]
    Parameter {
        /// The parameter.
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Results that cannot be merged (different taus, classes, options or rows).
    #[error("cannot merge: {0}")]
    Merge(String),
}

impl InfluenceError {
    /// A [`InfluenceError::Parameter`] error.
    pub fn parameter(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Parameter { name: name.into(), reason: reason.into() }
    }
}

impl From<InfluenceError> for CoreError {
    fn from(e: InfluenceError) -> Self {
        match e {
            InfluenceError::Empty { what } => CoreError::Empty(what),
            InfluenceError::RowMismatch { what, features, got } => CoreError::Shape {
                what,
                expected: format!("{features} rows (as the features)"),
                got: format!("{got} rows"),
            },
            InfluenceError::Shape { what, expected, got } => {
                CoreError::Shape { what, expected, got }
            }
            InfluenceError::Label { label, row, classes } => {
                CoreError::Label { label, row, classes }
            }
            e @ (InfluenceError::NonFinite { .. }
            | InfluenceError::Parameter { .. }
            | InfluenceError::Merge(_)) => CoreError::InvalidParameters {
                what: "influence/performance".into(),
                reason: e.to_string(),
            },
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = InfluenceError> = std::result::Result<T, E>;
