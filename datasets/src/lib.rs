//! # nnlens-datasets
//!
//! The data nnlens measures models on, whatever its source, named on the command line the same
//! way everywhere ([`source`]):
//!
//! - [`idx`]: the IDX format of MNIST and Fashion-MNIST (raw or gzip, every IDX element type),
//!   with clear errors for truncated or oversized files;
//! - [`catalog`]: MNIST and Fashion-MNIST by their official file names, read from a directory
//!   or downloaded into a cache with checksums ([`download`]);
//! - [`cifar`]: CIFAR-10 and CIFAR-100 in their official binary format, from the tarball or its
//!   extracted files;
//! - [`folder`]: image folders in torchvision's `ImageFolder` layout (PNG, JPEG, BMP, PNM);
//! - [`npy_images`]: NPY arrays of images `(N, H, W[, C])` or `(N, C, H, W)`, read by row;
//! - [`preprocess`]: torchvision's `Resize`, `CenterCrop`, `ToTensor`, `Normalize` and colour
//!   conversions, Pillow's bilinear resize to the bit;
//! - [`ImageDataSet`]: labelled images as an nnlens [`DataSet`](nnlens_core::DataSet), read and
//!   preprocessed a batch at a time, in parallel;
//! - [`write`](mod@write): samples of any source as image folders or NPY arrays;
//! - [`npy`]: NPY arrays of any numeric type, as `f32`;
//! - [`table`]: tables of numbers (CSV with a header, or NPY) as `f64` matrices.
#![warn(missing_docs)]

pub mod catalog;
pub mod cifar;
pub mod download;
mod error;
mod files;
pub mod folder;
pub mod idx;
mod images;
pub mod npy;
pub mod npy_images;
pub mod preprocess;
pub mod source;
mod store;
pub mod table;
pub mod turbojpeg;
pub mod write;

pub use catalog::{Checksum, DatasetSpec, FileSpec, Split, dataset_spec, datasets, load_split};
pub use error::DatasetError;
pub use images::{ImageDataSet, PixelScale, numbered_classes};
pub use preprocess::{ColorConversion, Preprocess};
pub use source::{DataRequest, DataSource, OpenedData, open};
pub use store::{Pixels, RawImage};

/// `Result` with the dataset error type.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
