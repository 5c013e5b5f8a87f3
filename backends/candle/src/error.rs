//! Errors of the candle backend.

use nnlens_core::CoreError;

/// What can go wrong loading or running a model with candle.
#[derive(Debug, thiserror::Error)]
pub enum CandleError {
    /// The model file could not be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model this backend can use.
    #[error("{label}: not a usable ONNX model: {message}")]
    Invalid {
        /// The file or label.
        label: String,
        /// Why.
        message: String,
    },
    /// An operator (or a form of one) this backend does not implement.
    #[error(
        "{label}: operator {op} of node '{node}' is not supported by the candle backend{detail}"
    )]
    Unsupported {
        /// The file or label.
        label: String,
        /// The operator (with its domain when not the default one).
        op: String,
        /// The node's name (its first output's name when the node has none).
        node: String,
        /// What about it is unsupported (empty when the operator itself is), starting with ": ".
        detail: String,
    },
    /// A node that failed while running (shapes that do not fit, an engine error).
    #[error("{label}: node '{node}' ({op}): {message}")]
    Node {
        /// The file or label.
        label: String,
        /// The node's name.
        node: String,
        /// Its operator.
        op: String,
        /// What went wrong.
        message: String,
    },
    /// candle failed outside a node (inputs, loss, backward pass).
    #[error("{label}: {message}")]
    Engine {
        /// The file or label.
        label: String,
        /// The engine's message.
        message: String,
    },
    /// An error of the core abstractions (unknown layer, wrong shape, bad label...).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<CandleError> for CoreError {
    fn from(e: CandleError) -> Self {
        match e {
            CandleError::Core(core) => core,
            CandleError::Io { path, source } => CoreError::Io { path: path.into(), source },
            other => CoreError::Backend { backend: "candle", message: other.to_string() },
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = CandleError> = std::result::Result<T, E>;
