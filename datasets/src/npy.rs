//! NPY arrays of any numeric element type, read as `f32` (or `f64`, exactly).

use std::path::Path;

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyError, ReadNpyExt};

use crate::{DatasetError, Result};

/// Reads an `.npy` file of `f32`, `f64`, signed or unsigned integers or booleans, as `f32`.
///
/// # Errors
/// [`DatasetError::Io`] when the file cannot be read, [`DatasetError::Format`] when it is not an
/// NPY file of a numeric type.
pub fn read_npy_f32(path: &Path) -> Result<ArrayD<f32>> {
    let bytes =
        std::fs::read(path).map_err(|source| DatasetError::Io { path: path.into(), source })?;
    parse_npy_f32(&bytes, path)
}

/// Checks the NPY preamble against the bytes there are: the magic string, a known version and a
/// header length within the file, before ndarray-npy allocates the header it declares (a 14-byte
/// file could declare a 4 GiB header).
fn check_preamble(bytes: &[u8], path: &Path) -> Result<()> {
    let format = |reason: String| DatasetError::Format { path: path.into(), reason };
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
        return Err(format("not a readable NPY array: no NPY magic string and version".into()));
    }
    let (start, header_len) = match bytes[6] {
        1 => (10, usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))),
        2 | 3 if bytes.len() >= 12 => {
            (12, u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize)
        }
        2 | 3 => return Err(format("not a readable NPY array: truncated preamble".into())),
        v => return Err(format(format!("not a readable NPY array: unknown version {v}"))),
    };
    if header_len > bytes.len() - start {
        return Err(format(format!(
            "not a readable NPY array: truncated: the header declares {header_len} bytes, the file holds {}",
            bytes.len() - start
        )));
    }
    Ok(())
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
    let bytes =
        std::fs::read(path).map_err(|source| DatasetError::Io { path: path.into(), source })?;
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
}
