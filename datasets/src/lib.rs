//! # nnlens-datasets
//!
//! The data nnlens measures models on:
//!
//! - [`idx`]: the IDX format of MNIST and Fashion-MNIST (raw or gzip, every IDX element type),
//!   with clear errors for truncated or oversized files;
//! - [`catalog`]: MNIST and Fashion-MNIST by their official file names, read from a directory
//!   or downloaded into a cache with SHA-256 checks ([`download`]);
//! - [`npy`]: NPY arrays of any numeric type, as `f32`;
//! - [`table`]: tables of numbers (CSV with a header, or NPY) as `f64` matrices;
//! - [`ImageDataSet`]: labelled images as an nnlens [`DataSet`](nnlens_core::DataSet).
#![warn(missing_docs)]

pub mod catalog;
pub mod download;
mod error;
mod files;
pub mod idx;
mod images;
pub mod npy;
pub mod table;

pub use catalog::{DatasetSpec, FileSpec, Split, dataset_spec, datasets, load_split};
pub use error::DatasetError;
pub use images::{ImageDataSet, PixelScale};

/// `Result` with the dataset error type.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
