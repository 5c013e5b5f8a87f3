use std::path::PathBuf;

/// Errors reading, fetching or checking data.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// A file that could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file that is not valid in its format.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A required file that is not there.
    #[error("missing {what}: {path} does not exist{hint}")]
    Missing {
        /// What the file is.
        what: String,
        /// Where it was looked for.
        path: PathBuf,
        /// How to get it (may be empty).
        hint: String,
    },
    /// A download that failed.
    #[error("download of {url} failed: {reason}")]
    Download {
        /// The address.
        url: String,
        /// Why.
        reason: String,
    },
    /// Content whose checksum is not the expected one.
    #[error("checksum mismatch for {what}: expected SHA-256 {expected}, got {got}")]
    Checksum {
        /// The file.
        what: String,
        /// The expected digest.
        expected: String,
        /// The digest of what was received.
        got: String,
    },
    /// A table (CSV or NPY) that cannot be read: `label` names it (`--table data.csv`), and the
    /// reason says where and what is wrong, in one line.
    #[error("{label}: {reason}")]
    Table {
        /// What was read: the flag and the file.
        label: String,
        /// Where (record and line, for CSV) and what is wrong.
        reason: String,
    },
    /// Two files that do not belong together (image and label counts, say).
    #[error("{0}")]
    Inconsistent(String),
    /// A dataset or split name that is not known.
    #[error("unknown {kind} '{name}'; known: {known}")]
    Unknown {
        /// "dataset" or "split".
        kind: &'static str,
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// An error of the core abstractions.
    #[error(transparent)]
    Core(#[from] nnlens_core::CoreError),
}

impl From<DatasetError> for nnlens_core::CoreError {
    fn from(e: DatasetError) -> Self {
        match e {
            DatasetError::Core(core) => core,
            other => nnlens_core::CoreError::DataSet(other.to_string()),
        }
    }
}
