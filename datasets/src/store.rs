//! Where the images of a dataset live, read one image at a time: bytes in memory (IDX, a CIFAR
//! tarball), fixed-size records of a file (extracted CIFAR), rows of an NPY file, or the image
//! files of a folder. Nothing but the memory stores holds more than the image asked for.

use std::fmt::Debug;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{DatasetError, Result};

/// The pixel values of one image, channels last (`[height, width, channels]`, row-major).
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    /// Bytes (0..255), scaled by the dataset's pixel scale.
    U8(Vec<u8>),
    /// Values as they are (floating-point NPY arrays).
    F32(Vec<f32>),
}

impl Pixels {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            Pixels::U8(v) => v.len(),
            Pixels::F32(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One image as read from its source, before any preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub struct RawImage {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels (1 grey, 3 RGB).
    pub channels: usize,
    /// `height x width x channels` values.
    pub pixels: Pixels,
}

/// A source of images, read one at a time by index (from any thread).
pub(crate) trait ImageStore: Send + Sync + Debug {
    /// The number of images.
    fn len(&self) -> usize;
    /// Image `index`, decoded, channels last.
    fn read(&self, index: usize) -> Result<RawImage>;
    /// Where image `index` comes from, for errors (`cat/001.png`, `X.npy row 5`).
    fn describe(&self, index: usize) -> String;
    /// Whether the values are bytes (else floats).
    fn is_u8(&self) -> bool {
        true
    }
}

/// Images of one size held as bytes, channels last (IDX files; a CIFAR tarball, converted).
#[derive(Debug)]
pub(crate) struct MemoryStore {
    pub name: String,
    pub pixels: Vec<u8>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl MemoryStore {
    fn per(&self) -> usize {
        self.height * self.width * self.channels
    }
}

impl ImageStore for MemoryStore {
    fn len(&self) -> usize {
        self.pixels.len() / self.per().max(1)
    }

    fn read(&self, index: usize) -> Result<RawImage> {
        let per = self.per();
        let bytes = self.pixels.get(index * per..(index + 1) * per).ok_or_else(|| {
            nnlens_core::CoreError::OutOfRange {
                what: format!("images of {}", self.name),
                index,
                len: self.len(),
            }
        })?;
        Ok(RawImage {
            height: self.height,
            width: self.width,
            channels: self.channels,
            pixels: Pixels::U8(bytes.to_vec()),
        })
    }

    fn describe(&self, index: usize) -> String {
        format!("{} image {index}", self.name)
    }
}

/// Channels-first planes (`[c, h, w]`, as CIFAR records hold them) as channels last.
pub(crate) fn planes_to_hwc(planes: &[u8], channels: usize, pixels: usize) -> Vec<u8> {
    let mut out = vec![0u8; planes.len()];
    for c in 0..channels {
        for (p, &v) in planes[c * pixels..(c + 1) * pixels].iter().enumerate() {
            out[p * channels + c] = v;
        }
    }
    out
}

/// Images as fixed-size records of files, read by position (extracted CIFAR batches): each
/// record is `header` bytes then `channels x height x width` bytes, channels first.
#[derive(Debug)]
pub(crate) struct RecordStore {
    /// Each file, opened, with its path and its number of records.
    pub files: Vec<(PathBuf, File, usize)>,
    pub header: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl RecordStore {
    fn record(&self) -> usize {
        self.header + self.height * self.width * self.channels
    }

    /// The file and record number of image `index`.
    fn locate(&self, mut index: usize) -> Option<(&Path, &File, usize)> {
        for (path, file, n) in &self.files {
            if index < *n {
                return Some((path, file, index));
            }
            index -= n;
        }
        None
    }
}

impl ImageStore for RecordStore {
    fn len(&self) -> usize {
        self.files.iter().map(|f| f.2).sum()
    }

    fn read(&self, index: usize) -> Result<RawImage> {
        let (path, file, record) =
            self.locate(index).ok_or_else(|| nnlens_core::CoreError::OutOfRange {
                what: "CIFAR records".into(),
                index,
                len: self.len(),
            })?;
        let size = self.record();
        let mut bytes = vec![0u8; size - self.header];
        file.read_exact_at(&mut bytes, (record * size + self.header) as u64)
            .map_err(|source| DatasetError::Io { path: path.into(), source })?;
        let pixels = planes_to_hwc(&bytes, self.channels, self.height * self.width);
        Ok(RawImage {
            height: self.height,
            width: self.width,
            channels: self.channels,
            pixels: Pixels::U8(pixels),
        })
    }

    fn describe(&self, index: usize) -> String {
        match self.locate(index) {
            Some((path, _, record)) => format!("{} record {record}", path.display()),
            None => format!("record {index}"),
        }
    }
}
