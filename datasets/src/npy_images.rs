//! NPY arrays of images, `(N, H, W)`, `(N, H, W, C)` or `(N, C, H, W)` of `u8`, `f32` or
//! `f64`, read one row at a time by position: an array of 50,000 images is never read whole.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::store::{ImageStore, Pixels, RawImage};
use crate::{DatasetError, Result};

/// The element type of an image array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageDtype {
    /// `uint8`: pixel bytes, scaled as the dataset's pixel scale says.
    U8,
    /// `float32`: values as they are.
    F32,
    /// `float64`: values as they are (rounded to `f32`).
    F64,
}

impl ImageDtype {
    fn size(self) -> usize {
        match self {
            ImageDtype::U8 => 1,
            ImageDtype::F32 => 4,
            ImageDtype::F64 => 8,
        }
    }
}

/// Where an image array keeps its channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageLayout {
    /// `(N, H, W)`: grey.
    Nhw,
    /// `(N, H, W, C)`: channels last.
    Nhwc,
    /// `(N, C, H, W)`: channels first (PyTorch's).
    Nchw,
}

/// The header of an NPY file of images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyImagesHeader {
    /// Element type.
    pub dtype: ImageDtype,
    /// Layout.
    pub layout: ImageLayout,
    /// Number of images.
    pub len: usize,
    /// `[height, width, channels]` of every image.
    pub shape: [usize; 3],
    /// Where the data starts.
    pub offset: u64,
}

fn format(path: &Path, reason: impl Into<String>) -> DatasetError {
    DatasetError::Format { path: path.into(), reason: reason.into() }
}

/// The value of `key` in an NPY header dictionary (`'descr': '<f4'` -> `'<f4'`).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

/// Parses the header of an NPY file of images.
///
/// # Errors
/// [`DatasetError::Format`] naming the file for anything that is not a little-endian C-order
/// array of `u8`, `f32` or `f64` images, or for a file shorter than its header says.
pub fn read_npy_images_header(path: &Path) -> Result<NpyImagesHeader> {
    let mut file =
        File::open(path).map_err(|source| DatasetError::Io { path: path.into(), source })?;
    let file_len =
        file.metadata().map_err(|source| DatasetError::Io { path: path.into(), source })?.len();
    let mut pre = [0u8; 12];
    let got =
        file.read(&mut pre).map_err(|source| DatasetError::Io { path: path.into(), source })?;
    let (start, header_len) = crate::npy::preamble(&pre[..got], path)?;
    let (start, header_len) = (start as u64, header_len as u64);
    if header_len > 1 << 20 || start + header_len > file_len {
        return Err(format(path, "not a readable NPY array: truncated header"));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact_at(&mut header, start)
        .map_err(|source| DatasetError::Io { path: path.into(), source })?;
    let header = String::from_utf8_lossy(&header);
    let descr =
        dict_value(&header, "descr").ok_or_else(|| format(path, "NPY header has no 'descr'"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let dtype = match descr {
        "|u1" | "<u1" | "u1" => ImageDtype::U8,
        "<f4" => ImageDtype::F32,
        "<f8" => ImageDtype::F64,
        other => {
            return Err(format(
                path,
                format!(
                    "element type '{other}': images must be uint8, float32 or float64 (little-endian)"
                ),
            ));
        }
    };
    if dict_value(&header, "fortran_order") == Some("True") {
        return Err(format(
            path,
            "the array is in Fortran order; save it in C order (np.ascontiguousarray)",
        ));
    }
    let shape_text =
        dict_value(&header, "shape").ok_or_else(|| format(path, "NPY header has no 'shape'"))?;
    let dims: Vec<usize> = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format(path, format!("bad shape {shape_text}"))))
        .collect::<Result<_>>()?;
    let (layout, len, shape) = match dims[..] {
        [n, h, w] => (ImageLayout::Nhw, n, [h, w, 1]),
        [n, h, w, c] if c == 1 || c == 3 => (ImageLayout::Nhwc, n, [h, w, c]),
        [n, c, h, w] if c == 1 || c == 3 => (ImageLayout::Nchw, n, [h, w, c]),
        _ => {
            return Err(format(
                path,
                format!(
                    "shape {shape_text}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with 1 or 3 channels"
                ),
            ));
        }
    };
    if len == 0 || shape.contains(&0) {
        return Err(format(path, format!("shape {shape_text} holds no images")));
    }
    let per = shape.iter().product::<usize>();
    let data_bytes = (len as u128) * (per as u128) * (dtype.size() as u128);
    let offset = start + header_len;
    if u128::from(file_len - offset) < data_bytes {
        return Err(format(
            path,
            format!(
                "truncated: shape {shape_text} needs {data_bytes} bytes of data, the file holds {}",
                file_len - offset
            ),
        ));
    }
    Ok(NpyImagesHeader { dtype, layout, len, shape, offset })
}

/// The images of an NPY file, read by row.
#[derive(Debug)]
pub(crate) struct NpyStore {
    pub path: PathBuf,
    pub file: File,
    pub header: NpyImagesHeader,
}

impl NpyStore {
    pub fn open(path: &Path) -> Result<Self> {
        let header = read_npy_images_header(path)?;
        let file =
            File::open(path).map_err(|source| DatasetError::Io { path: path.into(), source })?;
        Ok(Self { path: path.into(), file, header })
    }
}

impl ImageStore for NpyStore {
    fn len(&self) -> usize {
        self.header.len
    }

    fn is_u8(&self) -> bool {
        self.header.dtype == ImageDtype::U8
    }

    fn read(&self, index: usize) -> Result<RawImage> {
        let h = &self.header;
        if index >= h.len {
            return Err(nnlens_core::CoreError::OutOfRange {
                what: format!("images of {}", self.path.display()),
                index,
                len: h.len,
            }
            .into());
        }
        let [height, width, channels] = h.shape;
        let per = height * width * channels;
        let mut bytes = vec![0u8; per * h.dtype.size()];
        self.file
            .read_exact_at(&mut bytes, h.offset + (index * per * h.dtype.size()) as u64)
            .map_err(|source| DatasetError::Io { path: self.path.clone(), source })?;
        let reorder = |i: usize| -> usize {
            // The source index of channels-last value `i`.
            if h.layout == ImageLayout::Nchw {
                let (p, c) = (i / channels, i % channels);
                c * height * width + p
            } else {
                i
            }
        };
        let pixels = match h.dtype {
            ImageDtype::U8 => Pixels::U8((0..per).map(|i| bytes[reorder(i)]).collect()),
            ImageDtype::F32 => Pixels::F32(
                (0..per)
                    .map(|i| {
                        let j = reorder(i) * 4;
                        f32::from_le_bytes([bytes[j], bytes[j + 1], bytes[j + 2], bytes[j + 3]])
                    })
                    .collect(),
            ),
            ImageDtype::F64 => Pixels::F32(
                (0..per)
                    .map(|i| {
                        let j = reorder(i) * 8;
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&bytes[j..j + 8]);
                        f64::from_le_bytes(b) as f32
                    })
                    .collect(),
            ),
        };
        Ok(RawImage { height, width, channels, pixels })
    }

    fn describe(&self, index: usize) -> String {
        format!("{} row {index}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, Array4};
    use ndarray_npy::WriteNpyExt;

    fn write<T: ndarray_npy::WritableElement, D: ndarray::Dimension>(
        dir: &Path,
        name: &str,
        a: &ndarray::Array<T, D>,
    ) -> PathBuf {
        let p = dir.join(name);
        a.write_npy(File::create(&p).unwrap()).unwrap();
        p
    }

    #[test]
    fn layouts_and_types() {
        let dir = tempfile::tempdir().unwrap();
        let nhwc = Array4::from_shape_fn((2, 4, 5, 3), |(n, y, x, c)| {
            (n * 100 + y * 15 + x * 3 + c) as u8
        });
        let nchw = nhwc.clone().permuted_axes([0, 3, 1, 2]).as_standard_layout().into_owned();
        let a = NpyStore::open(&write(dir.path(), "a.npy", &nhwc)).unwrap();
        let b = NpyStore::open(&write(dir.path(), "b.npy", &nchw)).unwrap();
        assert_eq!(a.header.layout, ImageLayout::Nhwc);
        assert_eq!(b.header.layout, ImageLayout::Nchw);
        assert_eq!(a.header.shape, [4, 5, 3]);
        assert_eq!(a.read(1).unwrap(), b.read(1).unwrap());
        let floats = nhwc.mapv(|v| f64::from(v) / 255.0);
        let f = NpyStore::open(&write(dir.path(), "f.npy", &floats)).unwrap();
        let Pixels::F32(v) = f.read(1).unwrap().pixels else { panic!() };
        assert_eq!(v[5], (f64::from(nhwc[[1, 0, 1, 2]]) / 255.0) as f32);
        let grey = Array3::<f32>::zeros((4, 5, 6));
        let g = NpyStore::open(&write(dir.path(), "g.npy", &grey)).unwrap();
        assert_eq!((g.header.layout, g.header.shape, g.len()), (ImageLayout::Nhw, [5, 6, 1], 4));
    }

    #[test]
    fn bad_arrays_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let rank2 = ndarray::Array2::<u8>::zeros((3, 4));
        let e =
            read_npy_images_header(&write(dir.path(), "r.npy", &rank2)).unwrap_err().to_string();
        assert!(e.contains("r.npy") && e.contains("(N, H, W)"), "{e}");
        let ints = Array3::<i32>::zeros((2, 3, 3));
        let e = read_npy_images_header(&write(dir.path(), "i.npy", &ints)).unwrap_err().to_string();
        assert!(e.contains("i.npy") && e.contains("uint8, float32 or float64"), "{e}");
        let p = write(dir.path(), "t.npy", &Array3::<u8>::zeros((10, 8, 8)));
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        let e = read_npy_images_header(&p).unwrap_err().to_string();
        assert!(e.contains("t.npy") && e.contains("truncated"), "{e}");
        std::fs::write(&p, b"hello").unwrap();
        assert!(read_npy_images_header(&p).unwrap_err().to_string().contains("NPY"));
    }
}
