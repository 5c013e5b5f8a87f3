use std::path::PathBuf;

/// Errors of the core abstractions. Backends and datasets have their own error types and
/// convert into this one at the [`crate::Model`] / [`crate::DataSet`] seam.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A layer name that the model does not have.
    #[error("unknown layer '{name}'; the model's layers are: {known}")]
    UnknownLayer {
        /// The name asked for.
        name: String,
        /// The known layer names, comma separated.
        known: String,
    },
    /// An array whose shape is not the one expected.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    Shape {
        /// What was being checked.
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape received.
        got: String,
    },
    /// An index outside a dataset, a block or a layer.
    #[error("index out of range for {what}: {index} >= {len}")]
    OutOfRange {
        /// What was being indexed.
        what: String,
        /// The index asked for.
        index: usize,
        /// The number of elements.
        len: usize,
    },
    /// An input that is empty where data is needed.
    #[error("{0} is empty")]
    Empty(String),
    /// A value that is not finite where finite values are required.
    #[error("{what} contains a non-finite value ({value}) at flat index {index}")]
    NonFinite {
        /// What was checked.
        what: String,
        /// The offending value.
        value: f32,
        /// Its flat (row-major) index.
        index: usize,
    },
    /// A label outside the model's classes.
    #[error("label {label} at row {row} is outside the model's {classes} classes")]
    Label {
        /// The label.
        label: usize,
        /// The row it is in.
        row: usize,
        /// The number of classes of the output.
        classes: usize,
    },
    /// A metric or backend name that is not registered.
    #[error("unknown {kind} '{name}'; registered: {known}")]
    NotRegistered {
        /// "metric" or "backend".
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The registered names.
        known: String,
    },
    /// A backend asked for gradients that gives none.
    #[error("backend '{backend}' gives no gradients; the backends that do: {capable}")]
    NoGradients {
        /// The backend asked for.
        backend: String,
        /// The registered backends that give gradients.
        capable: String,
    },
    /// Parameters that do not describe a valid configuration.
    #[error("invalid parameters for {what}: {reason}")]
    InvalidParameters {
        /// The metric or component.
        what: String,
        /// Why.
        reason: String,
    },
    /// A backend that is compiled in but cannot run here.
    #[error("backend '{name}' is not usable: {reason}")]
    BackendUnavailable {
        /// The backend.
        name: String,
        /// Why, and how to fix it.
        reason: String,
    },
    /// A file that could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An error reported by a backend engine (loading or running a model).
    #[error("{backend}: {message}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// The engine's message, with its context chain.
        message: String,
    },
    /// An error reported by a dataset source.
    #[error("dataset: {0}")]
    DataSet(String),
}
