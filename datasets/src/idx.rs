//! The IDX file format (MNIST's): a 4-byte magic `0 0 type ndims`, `ndims` big-endian `u32`
//! dimensions, then the elements, big-endian. Files may be gzip-compressed.

use std::io::Read;
use std::path::Path;

use crate::{DatasetError, Result};

/// The elements of an IDX file, in their own type.
#[derive(Debug, Clone, PartialEq)]
pub enum IdxData {
    /// Type 0x08.
    U8(Vec<u8>),
    /// Type 0x09.
    I8(Vec<i8>),
    /// Type 0x0B.
    I16(Vec<i16>),
    /// Type 0x0C.
    I32(Vec<i32>),
    /// Type 0x0D.
    F32(Vec<f32>),
    /// Type 0x0E.
    F64(Vec<f64>),
}

/// An IDX array: dimensions and elements (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// The dimensions.
    pub dims: Vec<usize>,
    /// The elements.
    pub data: IdxData,
}

impl IdxArray {
    /// The elements as `f32`.
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            IdxData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::I16(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            IdxData::F32(v) => v.clone(),
            IdxData::F64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Encodes the array as IDX bytes (uncompressed).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (code, mut body): (u8, Vec<u8>) = match &self.data {
            IdxData::U8(v) => (0x08, v.clone()),
            IdxData::I8(v) => (0x09, v.iter().map(|&x| x as u8).collect()),
            IdxData::I16(v) => (0x0B, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
            IdxData::I32(v) => (0x0C, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
            IdxData::F32(v) => (0x0D, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
            IdxData::F64(v) => (0x0E, v.iter().flat_map(|x| x.to_be_bytes()).collect()),
        };
        let mut out = vec![0, 0, code, self.dims.len() as u8];
        for &d in &self.dims {
            out.extend_from_slice(&(d as u32).to_be_bytes());
        }
        out.append(&mut body);
        out
    }
}

/// Reads an IDX file, gzip-compressed or not.
///
/// # Errors
/// [`DatasetError::Io`] when the file cannot be read, [`DatasetError::Format`] when it is not
/// IDX, is truncated, or holds more bytes than its header declares.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = std::fs::read(path)
        .map_err(|source| DatasetError::Io { path: path.to_path_buf(), source })?;
    parse_idx(&bytes, path)
}

/// Parses the bytes of an IDX file (gzip-compressed or not); `path` names it in errors.
///
/// # Errors
/// As [`read_idx`].
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let format = |reason: String| DatasetError::Format { path: path.to_path_buf(), reason };
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
        parse_stream(&mut decoder, &format)
    } else {
        parse_stream(&mut &*bytes, &format)
    }
}

fn parse_stream(r: &mut dyn Read, format: &dyn Fn(String) -> DatasetError) -> Result<IdxArray> {
    let io = |e: std::io::Error| format(format!("cannot decompress or read: {e}"));
    let mut magic = [0u8; 4];
    read_exact_or(r, &mut magic, "the 4-byte IDX header").map_err(|e| match e {
        Short::Io(e) => io(e),
        Short::Eof(what) => format(format!("truncated: file ends inside {what}")),
    })?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(format(format!(
            "not an IDX file (magic bytes {:02x} {:02x}, expected 00 00)",
            magic[0], magic[1]
        )));
    }
    let (type_code, ndims) = (magic[2], magic[3] as usize);
    let size = match type_code {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        other => return Err(format(format!("unknown IDX element type 0x{other:02x}"))),
    };
    let mut dims_bytes = vec![0u8; 4 * ndims];
    read_exact_or(r, &mut dims_bytes, "the dimensions").map_err(|e| match e {
        Short::Io(e) => io(e),
        Short::Eof(what) => format(format!("truncated: file ends inside {what}")),
    })?;
    let dims: Vec<usize> = dims_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(size, |acc: usize, &d| acc.checked_mul(d))
        .ok_or_else(|| format(format!("dimensions {dims:?} overflow")))?;
    let mut body = Vec::with_capacity(expected.min(64 << 20));
    r.take(expected as u64).read_to_end(&mut body).map_err(io)?;
    if body.len() < expected {
        return Err(format(format!(
            "truncated: header declares {dims:?} ({expected} bytes of data), file holds {}",
            body.len()
        )));
    }
    let mut extra = 0u64;
    let mut buf = [0u8; 8192];
    loop {
        let n = r.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        extra += n as u64;
    }
    if extra > 0 {
        return Err(format(format!(
            "oversized: {extra} bytes after the {expected} bytes of data that header {dims:?} declares"
        )));
    }
    let data = match type_code {
        0x08 => IdxData::U8(body),
        0x09 => IdxData::I8(body.into_iter().map(|b| b as i8).collect()),
        0x0B => {
            IdxData::I16(body.chunks_exact(2).map(|c| i16::from_be_bytes([c[0], c[1]])).collect())
        }
        0x0C => IdxData::I32(
            body.chunks_exact(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect(),
        ),
        0x0D => IdxData::F32(
            body.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect(),
        ),
        _ => IdxData::F64(
            body.chunks_exact(8)
                .map(|c| f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
    };
    Ok(IdxArray { dims, data })
}

enum Short {
    Io(std::io::Error),
    Eof(&'static str),
}

fn read_exact_or(r: &mut dyn Read, buf: &mut [u8], what: &'static str) -> Result<(), Short> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Err(Short::Eof(what)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Short::Io(e)),
        }
    }
    Ok(())
}

/// Gzip-compresses bytes (for writing IDX `.gz` files).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> &'static Path {
        Path::new("test.idx")
    }

    #[test]
    fn every_element_type_round_trips() {
        let arrays = [
            IdxArray { dims: vec![2, 3], data: IdxData::U8(vec![0, 1, 2, 253, 254, 255]) },
            IdxArray { dims: vec![3], data: IdxData::I8(vec![-128, 0, 127]) },
            IdxArray { dims: vec![2], data: IdxData::I16(vec![-300, 300]) },
            IdxArray { dims: vec![1, 2], data: IdxData::I32(vec![-70000, 70000]) },
            IdxArray { dims: vec![2], data: IdxData::F32(vec![-1.5, 3.25]) },
            IdxArray { dims: vec![2, 1, 1], data: IdxData::F64(vec![1e-300, -2.0]) },
        ];
        for a in arrays {
            assert_eq!(parse_idx(&a.to_bytes(), p()).unwrap(), a);
            assert_eq!(parse_idx(&gzip(&a.to_bytes()), p()).unwrap(), a);
        }
    }

    #[test]
    fn known_bytes_by_hand() {
        // 0x0B (i16), 1 dim of 2: 0x0102 = 258, 0xFFFE = -2.
        let bytes = [0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE];
        let a = parse_idx(&bytes, p()).unwrap();
        assert_eq!(a.data, IdxData::I16(vec![258, -2]));
        assert_eq!(a.to_f32(), vec![258.0, -2.0]);
    }

    #[test]
    fn truncated_and_oversized_files_are_errors() {
        let a = IdxArray { dims: vec![2, 2], data: IdxData::U8(vec![1, 2, 3, 4]) };
        let bytes = a.to_bytes();
        let e = parse_idx(&bytes[..bytes.len() - 1], p()).unwrap_err().to_string();
        assert!(e.contains("truncated") && e.contains("test.idx"), "{e}");
        let e = parse_idx(&gzip(&bytes[..6]), p()).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let mut long = bytes.clone();
        long.push(9);
        let e = parse_idx(&long, p()).unwrap_err().to_string();
        assert!(e.contains("oversized"), "{e}");
        let e = parse_idx(&[1, 2, 3, 4, 5], p()).unwrap_err().to_string();
        assert!(e.contains("not an IDX file"), "{e}");
        let e = parse_idx(&[0, 0, 0x07, 1, 0, 0, 0, 0], p()).unwrap_err().to_string();
        assert!(e.contains("element type"), "{e}");
        // A gzip stream cut in the middle.
        let gz = gzip(&IdxArray { dims: vec![100], data: IdxData::U8(vec![7; 100]) }.to_bytes());
        assert!(parse_idx(&gz[..gz.len() / 2], p()).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_idx(&bytes, p());
        }

        #[test]
        fn u8_arrays_round_trip(dims in proptest::collection::vec(1usize..5, 1..4), seed in any::<u8>()) {
            let n: usize = dims.iter().product();
            let data: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
            let a = IdxArray { dims, data: IdxData::U8(data) };
            prop_assert_eq!(parse_idx(&a.to_bytes(), p()).unwrap(), a);
        }
    }
}
