//! The values of a [`TensorProto`], whichever field holds them.

use crate::OnnxError;
use crate::proto::{TensorProto, elem};

fn err(t: &TensorProto, message: String) -> OnnxError {
    OnnxError::Tensor { name: t.name.clone(), message }
}

/// The dimensions of a tensor.
///
/// # Errors
/// [`OnnxError::Tensor`] for a negative dimension.
pub fn tensor_dims(t: &TensorProto) -> Result<Vec<usize>, OnnxError> {
    t.dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| err(t, format!("negative dimension {d}"))))
        .collect()
}

fn expected_len(t: &TensorProto) -> Result<usize, OnnxError> {
    tensor_dims(t)?
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| err(t, format!("has dimensions {:?} whose product overflows", t.dims)))
}

fn check_len<T>(t: &TensorProto, values: Vec<T>) -> Result<Vec<T>, OnnxError> {
    let n = expected_len(t)?;
    if values.len() != n {
        return Err(err(
            t,
            format!("holds {} values but its dimensions {:?} need {n}", values.len(), t.dims),
        ));
    }
    Ok(values)
}

fn check_location(t: &TensorProto) -> Result<(), OnnxError> {
    if t.data_location == crate::EXTERNAL {
        let file = crate::external_location(t).map(|l| l.location).unwrap_or_default();
        return Err(err(
            t,
            format!(
                "has its values in the external file '{file}', which was not read: load the \
                 model from its file (nnlens_onnx::read_model_file)"
            ),
        ));
    }
    Ok(())
}

fn raw<const N: usize, T>(t: &TensorProto, f: impl Fn([u8; N]) -> T) -> Result<Vec<T>, OnnxError> {
    if !t.raw_data.len().is_multiple_of(N) {
        return Err(err(
            t,
            format!(
                "raw_data of {} bytes is not a whole number of {N}-byte values",
                t.raw_data.len()
            ),
        ));
    }
    Ok(t.raw_data
        .chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunks_exact gives N bytes")))
        .collect())
}

/// The values of a floating-point tensor (FLOAT, DOUBLE, FLOAT16, BFLOAT16) as `f64`
/// (exact for all of them).
///
/// # Errors
/// [`OnnxError::Tensor`] for another element type, values in an external file, or a number of
/// values that does not match the dimensions.
pub fn float_values(t: &TensorProto) -> Result<Vec<f64>, OnnxError> {
    check_location(t)?;
    let has_raw = !t.raw_data.is_empty();
    let values = match t.data_type {
        elem::FLOAT if has_raw => raw::<4, _>(t, |b| f64::from(f32::from_le_bytes(b)))?,
        elem::FLOAT => t.float_data.iter().map(|&v| f64::from(v)).collect(),
        elem::DOUBLE if has_raw => raw::<8, _>(t, f64::from_le_bytes)?,
        elem::DOUBLE => t.double_data.clone(),
        elem::FLOAT16 if has_raw => raw::<2, _>(t, |b| f16_to_f64(u16::from_le_bytes(b)))?,
        elem::FLOAT16 => t.int32_data.iter().map(|&v| f16_to_f64(v as u16)).collect(),
        elem::BFLOAT16 if has_raw => raw::<2, _>(t, |b| bf16_to_f64(u16::from_le_bytes(b)))?,
        elem::BFLOAT16 => t.int32_data.iter().map(|&v| bf16_to_f64(v as u16)).collect(),
        other => {
            return Err(err(t, format!("is {}, not a floating-point tensor", elem::name(other))));
        }
    };
    check_len(t, values)
}

/// The values of an integer or boolean tensor as `i64`.
///
/// # Errors
/// [`OnnxError::Tensor`] for another element type, a UINT64 value above `i64::MAX`, values in
/// an external file, or a number of values that does not match the dimensions.
pub fn int_values(t: &TensorProto) -> Result<Vec<i64>, OnnxError> {
    check_location(t)?;
    let has_raw = !t.raw_data.is_empty();
    let from_u64 = |v: u64| i64::try_from(v).map_err(|_| err(t, format!("value {v} exceeds i64")));
    let values = match t.data_type {
        elem::INT64 if has_raw => raw::<8, _>(t, i64::from_le_bytes)?,
        elem::INT64 => t.int64_data.clone(),
        elem::INT32 if has_raw => raw::<4, _>(t, |b| i64::from(i32::from_le_bytes(b)))?,
        elem::INT16 if has_raw => raw::<2, _>(t, |b| i64::from(i16::from_le_bytes(b)))?,
        elem::UINT16 if has_raw => raw::<2, _>(t, |b| i64::from(u16::from_le_bytes(b)))?,
        elem::INT8 if has_raw => raw::<1, _>(t, |b| i64::from(b[0] as i8))?,
        elem::UINT8 | elem::BOOL if has_raw => raw::<1, _>(t, |b| i64::from(b[0]))?,
        elem::INT32 | elem::INT16 | elem::INT8 | elem::UINT16 | elem::UINT8 | elem::BOOL => {
            t.int32_data.iter().map(|&v| i64::from(v)).collect()
        }
        elem::UINT32 if has_raw => raw::<4, _>(t, |b| i64::from(u32::from_le_bytes(b)))?,
        elem::UINT64 if has_raw => raw::<8, _>(t, u64::from_le_bytes)?
            .into_iter()
            .map(from_u64)
            .collect::<Result<_, _>>()?,
        elem::UINT32 | elem::UINT64 => {
            t.uint64_data.iter().map(|&v| from_u64(v)).collect::<Result<_, _>>()?
        }
        other => return Err(err(t, format!("is {}, not an integer tensor", elem::name(other)))),
    };
    check_len(t, values)
}

fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let mantissa = f64::from(bits & 0x3ff);
    sign * match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + mantissa / 1024.0) * 2f64.powi(e - 15),
    }
}

fn bf16_to_f64(bits: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(bits) << 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_storage_of_floats_decodes() {
        let typed = TensorProto::from_f32("a", &[2], vec![1.5, -2.0]);
        assert_eq!(float_values(&typed).unwrap(), [1.5, -2.0]);
        let mut raw = TensorProto::from_f32("a", &[2], vec![]);
        raw.raw_data = [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat();
        assert_eq!(float_values(&raw).unwrap(), [1.5, -2.0]);
        let double = TensorProto::from_f64("d", &[1], vec![0.1]);
        assert_eq!(float_values(&double).unwrap(), [0.1]);
        let mut half =
            TensorProto { data_type: elem::FLOAT16, dims: vec![3], ..Default::default() };
        half.raw_data = [0x3c00u16, 0xc000, 0x0001].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(float_values(&half).unwrap(), [1.0, -2.0, 2f64.powi(-24)]);
    }

    #[test]
    fn integers_decode_and_mismatches_are_errors() {
        let t = TensorProto::from_i64("s", &[2], vec![-1, 784]);
        assert_eq!(int_values(&t).unwrap(), [-1, 784]);
        let mut raw = TensorProto { data_type: elem::INT32, dims: vec![2], ..Default::default() };
        raw.raw_data = [7i32.to_le_bytes(), (-3i32).to_le_bytes()].concat();
        assert_eq!(int_values(&raw).unwrap(), [7, -3]);
        let short = TensorProto::from_f32("w", &[3], vec![1.0]);
        let e = float_values(&short).unwrap_err().to_string();
        assert!(e.contains("'w'") && e.contains("need 3"), "{e}");
        assert!(int_values(&short).unwrap_err().to_string().contains("not an integer"));
        let mut odd = TensorProto::from_f32("o", &[1], vec![]);
        odd.raw_data = vec![1, 2, 3];
        assert!(float_values(&odd).unwrap_err().to_string().contains("raw_data"));
        // Dimensions whose product overflows are an error, not an overflow panic.
        let huge = TensorProto::from_f32("h", &[1 << 40, 1 << 40], vec![1.0]);
        assert!(float_values(&huge).unwrap_err().to_string().contains("overflows"));
        let mut ext = TensorProto::from_f32("e", &[1], vec![1.0]);
        ext.data_location = 1;
        assert!(float_values(&ext).unwrap_err().to_string().contains("external"));
    }
}
