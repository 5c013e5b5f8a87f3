//! NPY arrays of any numeric element type, read as `f32` (or `f64`, exactly).

use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyError, ReadNpyExt};

use crate::{DatasetError, Result};

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| DatasetError::Io { path: path.into(), source })
}

/// Reads an `.npy` file of `f32`, `f64`, signed or unsigned integers or booleans, as `f32`.
///
/// # Errors
/// [`DatasetError::Io`] when the file cannot be read, [`DatasetError::Format`] when it is not an
/// NPY file of a numeric type.
pub fn read_npy_f32(path: &Path) -> Result<ArrayD<f32>> {
    let bytes = read_file(path)?;
    parse_npy_f32(&bytes, path)
}

/// Checks the NPY preamble against the bytes there are: the magic string, a known version and a
/// header length within the file, before ndarray-npy allocates the header it declares (a 14-byte
/// file could declare a 4 GiB header).
fn check_preamble(bytes: &[u8], path: &Path) -> Result<()> {
    let format = |reason: String| DatasetError::Format { path: path.into(), reason };
    let (start, header_len) = preamble(bytes, path)?;
    if header_len > bytes.len() - start {
        return Err(format(format!(
            "not a readable NPY array: truncated: the header declares {header_len} bytes, the file holds {}",
            bytes.len() - start
        )));
    }
    // ndarray-npy's header parser backtracks exponentially on deeply nested brackets (the
    // fuzzer found 58 unclosed `{` taking seconds); no NPY header nests deeper than a structured
    // dtype's `{'descr': [('f', '<f8', (2, 3))]}`.
    if nesting(&bytes[start..start + header_len]) > MAX_HEADER_NESTING {
        return Err(format(format!(
            "not a readable NPY array: the header nests brackets deeper than {MAX_HEADER_NESTING} levels"
        )));
    }
    Ok(())
}

/// Where the header of an NPY file starts and how long it says it is, from the file's first
/// bytes (at least its first 12, where it has them): the magic string and a known version.
///
/// # Errors
/// [`DatasetError::Format`] naming `path` for anything else.
pub(crate) fn preamble(bytes: &[u8], path: &Path) -> Result<(usize, usize)> {
    let format = |reason: String| DatasetError::Format { path: path.into(), reason };
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
        return Err(format("not a readable NPY array: no NPY magic string and version".into()));
    }
    match bytes[6] {
        1 => Ok((10, usize::from(u16::from_le_bytes([bytes[8], bytes[9]])))),
        2 | 3 if bytes.len() >= 12 => {
            Ok((12, u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize))
        }
        2 | 3 => Err(format("not a readable NPY array: truncated preamble".into())),
        v => Err(format(format!("not a readable NPY array: unknown version {v}"))),
    }
}

/// The deepest nesting of NPY header brackets a header may have.
const MAX_HEADER_NESTING: usize = 8;

/// The deepest nesting of `{`, `[` and `(` in a header, outside quoted strings (closing
/// brackets are not matched: only depth counts).
fn nesting(header: &[u8]) -> usize {
    let (mut depth, mut deepest, mut quote) = (0usize, 0usize, None);
    for &b in header {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b'{' | b'[' | b'(') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, b'}' | b']' | b')') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parses the bytes of an `.npy` file as `f32` (see [`read_npy_f32`]).
///
/// # Errors
/// As [`read_npy_f32`].
pub fn parse_npy_f32(bytes: &[u8], path: &Path) -> Result<ArrayD<f32>> {
    check_preamble(bytes, path)?;
    let format = |reason: String| DatasetError::Format { path: path.into(), reason };
    macro_rules! attempt {
        ($t:ty, $conv:expr) => {
            match ArrayD::<$t>::read_npy(bytes) {
                Ok(a) => return Ok(a.mapv($conv)),
                Err(ReadNpyError::WrongDescriptor(_)) => {}
                Err(e) => return Err(format(format!("not a readable NPY array: {e}"))),
            }
        };
    }
    attempt!(f32, |x| x);
    attempt!(f64, |x| x as f32);
    attempt!(u8, f32::from);
    attempt!(i8, f32::from);
    attempt!(u16, f32::from);
    attempt!(i16, f32::from);
    attempt!(u32, |x| x as f32);
    attempt!(i32, |x| x as f32);
    attempt!(u64, |x| x as f32);
    attempt!(i64, |x| x as f32);
    attempt!(bool, |x| if x { 1.0 } else { 0.0 });
    Err(format("NPY element type is not numeric (f32, f64, integers or bool)".into()))
}

/// Reads an `.npy` file of any numeric type as `f64` (`f64` files exactly, so that values
/// computed elsewhere in double precision keep every digit).
///
/// # Errors
/// As [`read_npy_f32`].
pub fn read_npy_f64(path: &Path) -> Result<ArrayD<f64>> {
    let bytes = read_file(path)?;
    parse_npy_f64(&bytes, path)
}

/// Parses the bytes of an `.npy` file as `f64` (see [`read_npy_f64`]).
///
/// # Errors
/// As [`read_npy_f32`].
pub fn parse_npy_f64(bytes: &[u8], path: &Path) -> Result<ArrayD<f64>> {
    check_preamble(bytes, path)?;
    match ArrayD::<f64>::read_npy(bytes) {
        Ok(a) => Ok(a),
        Err(ReadNpyError::WrongDescriptor(_)) => Ok(parse_npy_f32(bytes, path)?.mapv(f64::from)),
        Err(e) => Err(DatasetError::Format {
            path: path.into(),
            reason: format!("not a readable NPY array: {e}"),
        }),
    }
}

/// Reads an `.npy` file of row numbers (or any other counts) exactly: integers of any width
/// as they are, floating-point values only when they are whole and below 2^53 (where `f64`
/// is exact), so that 10^12 is 10^12, not the `f32` nearest to it.
///
/// # Errors
/// As [`read_npy_f32`]; [`DatasetError::Format`] naming the first negative, fractional or
/// non-finite value and its flat index.
pub fn read_npy_indices(path: &Path) -> Result<Vec<u64>> {
    let bytes = read_file(path)?;
    parse_npy_indices(&bytes, path)
}

/// Parses the bytes of an `.npy` file of row numbers (see [`read_npy_indices`]).
///
/// # Errors
/// As [`read_npy_indices`].
pub fn parse_npy_indices(bytes: &[u8], path: &Path) -> Result<Vec<u64>> {
    check_preamble(bytes, path)?;
    let format = |reason: String| DatasetError::Format { path: path.into(), reason };
    let bad = |i: usize, v: &dyn std::fmt::Display| {
        format(format!("value {v} at index {i} is not a row number (a whole number >= 0)"))
    };
    macro_rules! whole {
        ($t:ty) => {
            match ArrayD::<$t>::read_npy(bytes) {
                Ok(a) => {
                    return a
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| u64::try_from(v).map_err(|_| bad(i, &v)))
                        .collect();
                }
                Err(ReadNpyError::WrongDescriptor(_)) => {}
                Err(e) => return Err(format(format!("not a readable NPY array: {e}"))),
            }
        };
    }
    whole!(u64);
    whole!(i64);
    whole!(u32);
    whole!(i32);
    whole!(u16);
    whole!(i16);
    whole!(u8);
    whole!(i8);
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    let floats = match ArrayD::<f64>::read_npy(bytes) {
        Ok(a) => a,
        Err(ReadNpyError::WrongDescriptor(_)) => match ArrayD::<f32>::read_npy(bytes) {
            Ok(a) => a.mapv(f64::from),
            Err(ReadNpyError::WrongDescriptor(_)) => {
                return Err(format("NPY element type is not numeric (integers or floats)".into()));
            }
            Err(e) => return Err(format(format!("not a readable NPY array: {e}"))),
        },
        Err(e) => return Err(format(format!("not a readable NPY array: {e}"))),
    };
    floats
        .iter()
        .enumerate()
        .map(
            |(i, &v)| {
                if v >= 0.0 && v.fract() == 0.0 && v < EXACT {
                    Ok(v as u64)
                } else {
                    Err(bad(i, &v))
                }
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};
    use ndarray_npy::WriteNpyExt;

    fn bytes_of<T: ndarray_npy::WritableElement>(a: &Array2<T>) -> Vec<u8> {
        let mut v = Vec::new();
        a.write_npy(&mut v).unwrap();
        v
    }

    #[test]
    fn deeply_nested_headers_are_refused_at_once() {
        // The fuzzer's input (table target): a shape of 58 unclosed braces.
        let mut header = b"{'descr': '<f8', 'fortran_order': False, 'shape': ".to_vec();
        header.extend([b'{'; 58]);
        header.extend(b"10 \n");
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(&header);
        bytes.extend([0u8; 80]);
        let e = parse_npy_f64(&bytes, Path::new("n.npy")).unwrap_err().to_string();
        assert!(e.contains("n.npy") && e.contains("nests"), "{e}");
        // Brackets in a quoted field name do not count; a real structured header passes.
        assert_eq!(nesting(b"{'descr': [('(((((((((', '<f8', (2, 3))], 'shape': (1,), }"), 4);
    }

    #[test]
    fn numeric_types_become_f32() {
        let p = Path::new("a.npy");
        let u = array![[0u8, 255], [7, 9]];
        assert_eq!(
            parse_npy_f32(&bytes_of(&u), p).unwrap().into_raw_vec_and_offset().0,
            vec![0.0, 255.0, 7.0, 9.0]
        );
        let d = array![[0.5f64, -1.25]];
        assert_eq!(parse_npy_f32(&bytes_of(&d), p).unwrap().shape(), &[1, 2]);
        let i = array![[-3i64]];
        assert_eq!(parse_npy_f32(&bytes_of(&i), p).unwrap()[[0, 0]], -3.0);
    }

    #[test]
    fn f64_is_read_exactly() {
        let d = array![[0.1f64, -1.0 / 3.0]];
        let got = parse_npy_f64(&bytes_of(&d), Path::new("a.npy")).unwrap();
        assert_eq!(got.into_raw_vec_and_offset().0, vec![0.1, -1.0 / 3.0]);
        let u = array![[3u8]];
        assert_eq!(parse_npy_f64(&bytes_of(&u), Path::new("a.npy")).unwrap()[[0, 0]], 3.0);
    }

    #[test]
    fn a_header_longer_than_the_file_is_an_error_not_an_allocation() {
        // Found by the npy fuzz target: version 3 declaring a 2 GiB header in 14 bytes made
        // ndarray-npy allocate it (out of memory).
        let bytes = b"\x93NUMPY\x03\x00\x76\x01\x27\x80\x27\x55";
        for e in [
            parse_npy_f32(bytes, Path::new("big.npy")).unwrap_err(),
            parse_npy_f64(bytes, Path::new("big.npy")).unwrap_err(),
            parse_npy_indices(bytes, Path::new("big.npy")).unwrap_err(),
        ] {
            let e = e.to_string();
            assert!(e.contains("big.npy") && e.contains("truncated"), "{e}");
        }
        let e = parse_npy_f32(b"\x93NUMPY\x07\x00\x00\x00", Path::new("v.npy")).unwrap_err();
        assert!(e.to_string().contains("version 7"), "{e}");
    }

    #[test]
    fn garbage_is_an_error() {
        let e = parse_npy_f32(b"\x93NUMPY garbage", Path::new("bad.npy")).unwrap_err().to_string();
        assert!(e.contains("bad.npy"), "{e}");
    }

    #[test]
    fn indices_are_read_exactly() {
        let path = Path::new("rows.npy");
        let npy = |write: &dyn Fn(&mut Vec<u8>)| {
            let mut v = Vec::new();
            write(&mut v);
            v
        };
        let big = npy(&|v| array![1_000_000_000_000i64, 0, 7].write_npy(v).unwrap());
        assert_eq!(parse_npy_indices(&big, path).unwrap(), [1_000_000_000_000, 0, 7]);
        let small = npy(&|v| array![[3u8, 4], [5, 6]].write_npy(v).unwrap());
        assert_eq!(parse_npy_indices(&small, path).unwrap(), [3, 4, 5, 6]);
        let floats = npy(&|v| array![2.0f64, 1e12].write_npy(v).unwrap());
        assert_eq!(parse_npy_indices(&floats, path).unwrap(), [2, 1_000_000_000_000]);
        for (bytes, needle) in [
            (npy(&|v| array![1i32, -4].write_npy(v).unwrap()), "value -4 at index 1"),
            (npy(&|v| array![1.5f32].write_npy(v).unwrap()), "value 1.5 at index 0"),
            (npy(&|v| array![f64::NAN].write_npy(v).unwrap()), "NaN"),
            (npy(&|v| array![1e17f64].write_npy(v).unwrap()), "index 0"),
            (b"not npy".to_vec(), "rows.npy"),
        ] {
            let e = parse_npy_indices(&bytes, path).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("rows.npy"), "{e}");
        }
    }
}
