/// Errors of transformations, sets and the transformations dataset.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// A parameter that makes no transformation (a zero or non-finite scale, a NaN angle...).
    #[error("invalid transformation: {0}")]
    Invalid(String),
    /// A set specification that does not parse.
    #[error("cannot parse transformation set '{spec}': {reason}")]
    Spec {
        /// The text given.
        spec: String,
        /// What is wrong, and what is expected.
        reason: String,
    },
    /// A map that is not `[h, w]`, `[c, h, w]` or `[h, w, c]`.
    #[error("cannot transform an array of shape {shape:?}: {reason}")]
    Shape {
        /// The shape.
        shape: Vec<usize>,
        /// Why.
        reason: String,
    },
    /// An error of the core abstractions.
    #[error(transparent)]
    Core(#[from] nnlens_core::CoreError),
}

impl From<TransformError> for nnlens_core::CoreError {
    fn from(e: TransformError) -> Self {
        match e {
            TransformError::Core(c) => c,
            TransformError::Shape { shape, reason } => nnlens_core::CoreError::Shape {
                what: "a map to transform".into(),
                expected: "[h, w], [c, h, w] or [h, w, c]".into(),
                got: format!("{shape:?} ({reason})"),
            },
            other => nnlens_core::CoreError::InvalidParameters {
                what: "transformations".into(),
                reason: other.to_string(),
            },
        }
    }
}
