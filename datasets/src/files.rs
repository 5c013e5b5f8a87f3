//! The files datasets are made of, as the catalog lists them and the downloader fetches them.

/// The published checksum of an official file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// SHA-256, hex.
    Sha256(&'static str),
    /// MD5, hex (all that CIFAR's authors publish).
    Md5(&'static str),
}

impl Checksum {
    /// The expected digest, hex.
    pub fn expected(&self) -> &'static str {
        match self {
            Checksum::Sha256(d) | Checksum::Md5(d) => d,
        }
    }

    /// `SHA-256` or `MD5`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Sha256(_) => "SHA-256",
            Checksum::Md5(_) => "MD5",
        }
    }
}

/// A file of a dataset: its official name and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    /// The official file name (`train-images-idx3-ubyte.gz`).
    pub name: &'static str,
    /// The official file's checksum.
    pub checksum: Checksum,
}
