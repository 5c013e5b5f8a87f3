//! The values flowing through a graph: floating-point tensors on candle (differentiable) and
//! small integer tensors on the host (shapes, indices, labels).

use candle_core::{DType, Device, Tensor};

/// An integer tensor kept on the host: shape arithmetic and labels, never differentiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ints {
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<i64>,
}

impl Ints {
    /// A tensor, checking that the values fill the shape.
    pub fn new(shape: Vec<usize>, data: Vec<i64>) -> Result<Self, String> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(format!("{} values for shape {shape:?}", data.len()));
        }
        Ok(Self { shape, data })
    }

    /// A 1-D tensor.
    pub fn vector(data: Vec<i64>) -> Self {
        Self { shape: vec![data.len()], data }
    }
}

/// A value of the graph.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A floating-point tensor in the model's compute precision.
    Float(Tensor),
    /// An integer (or boolean) tensor.
    Int(Ints),
}

impl Value {
    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        match self {
            Value::Float(t) => t.dims(),
            Value::Int(i) => &i.shape,
        }
    }

    /// The floating-point tensor, or an error naming `what`.
    pub fn float(&self, what: &str) -> Result<&Tensor, String> {
        match self {
            Value::Float(t) => Ok(t),
            Value::Int(_) => Err(format!("{what} is an integer tensor; a float tensor is needed")),
        }
    }

    /// The integer tensor, or an error naming `what`.
    pub fn int(&self, what: &str) -> Result<&Ints, String> {
        match self {
            Value::Int(i) => Ok(i),
            Value::Float(_) => {
                Err(format!("{what} is a float tensor; an integer tensor is needed"))
            }
        }
    }

    /// The value as a float tensor of `dtype` (integers converted).
    pub fn to_float(&self, dtype: DType) -> Result<Tensor, String> {
        match self {
            Value::Float(t) => Ok(t.clone()),
            Value::Int(i) => {
                let data: Vec<f64> = i.data.iter().map(|&v| v as f64).collect();
                Tensor::from_vec(data, i.shape.clone(), &Device::Cpu)
                    .and_then(|t| t.to_dtype(dtype))
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// Numpy-style broadcasting of two shapes.
pub(crate) fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// Element-wise `f` of two integer tensors with broadcasting.
pub(crate) fn int_binary(
    a: &Ints,
    b: &Ints,
    f: impl Fn(i64, i64) -> Result<i64, String>,
) -> Result<Ints, String> {
    let shape = broadcast_shapes(&a.shape, &b.shape)?;
    let n: usize = shape.iter().product();
    let index = |src: &Ints, flat: usize| -> usize {
        // Walk the output index from the last axis, mapping to the source (size-1 axes repeat).
        let mut rem = flat;
        let mut idx = 0;
        let mut stride = 1;
        let offset = shape.len() - src.shape.len();
        for axis in (0..shape.len()).rev() {
            let coord = rem % shape[axis];
            rem /= shape[axis];
            if axis >= offset {
                let d = src.shape[axis - offset];
                if d != 1 {
                    idx += coord * stride;
                }
                stride *= d;
            }
        }
        idx
    };
    let data =
        (0..n).map(|i| f(a.data[index(a, i)], b.data[index(b, i)])).collect::<Result<_, _>>()?;
    Ints::new(shape, data)
}

/// Normalises a possibly negative axis for a tensor of `rank` axes.
pub(crate) fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if (0..r).contains(&v) {
        Ok(v as usize)
    } else {
        Err(format!("axis {a} is outside a tensor of rank {rank}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_broadcasting() {
        let a = Ints::new(vec![2, 1], vec![1, 2]).unwrap();
        let b = Ints::vector(vec![10, 20, 30]);
        let c = int_binary(&a, &b, |x, y| Ok(x * y)).unwrap();
        assert_eq!(c.shape, [2, 3]);
        assert_eq!(c.data, [10, 20, 30, 20, 40, 60]);
        assert!(broadcast_shapes(&[2, 3], &[4]).is_err());
        assert_eq!(axis(-1, 3).unwrap(), 2);
        assert!(axis(3, 3).is_err());
    }
}
