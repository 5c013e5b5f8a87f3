//! The files datasets are made of, as the catalog lists them and the downloader fetches them.

/// A file of a dataset: its official name and SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    /// The official file name (`train-images-idx3-ubyte.gz`).
    pub name: &'static str,
    /// SHA-256 of the official file, hex.
    pub sha256: &'static str,
}
