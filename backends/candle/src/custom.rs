//! Operators whose gradient candle 0.11.1 gets wrong or differently from the frameworks that
//! train the models, written as candle custom operators with their own backward pass.
//!
//! - **Max pooling**: candle's `MaxPool2d` backward scales the gradient by `1/k^2`, and a
//!   reshape + `max` gives every tied maximum the whole gradient (ties are common: a constant
//!   background gives equal values in a window). Here the gradient goes to the *first* maximum of
//!   each window in row-major order, as TensorFlow and PyTorch do.
//! - **Relu**: candle passes the gradient where the input is `>= 0`; here where it is `> 0`, as
//!   TensorFlow and PyTorch do.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, WithDType};

fn contiguous<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [T]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: input is not contiguous")))?;
    Ok(&s.as_slice::<T>()?[start..end])
}

/// `max(x, 0)` with the gradient passed where `x > 0`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Relu;

impl Relu {
    fn forward<T: WithDType>(x: &[T]) -> Vec<T> {
        let zero = T::zero();
        x.iter().map(|&v| if v > zero { v } else { zero }).collect()
    }
}

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "nnlens-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(_) => CpuStorage::F32(Self::forward(contiguous::<f32>(s, l, "relu")?)),
            CpuStorage::F64(_) => CpuStorage::F64(Self::forward(contiguous::<f64>(s, l, "relu")?)),
            other => candle_core::bail!("relu: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad.contiguous()?, &ReluGrad)?))
    }
}

/// `(x, g) -> g` where `x > 0`, else 0.
struct ReluGrad;

impl ReluGrad {
    fn run<T: WithDType>(x: &[T], g: &[T]) -> candle_core::Result<Vec<T>> {
        if x.len() != g.len() {
            candle_core::bail!("relu grad: {} gradients for {} values", g.len(), x.len());
        }
        let zero = T::zero();
        Ok(x.iter().zip(g).map(|(&x, &g)| if x > zero { g } else { zero }).collect())
    }
}

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "nnlens-relu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(Self::run(
                contiguous::<f32>(s1, l1, "relu grad")?,
                contiguous::<f32>(s2, l2, "relu grad")?,
            )?),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(Self::run(
                contiguous::<f64>(s1, l1, "relu grad")?,
                contiguous::<f64>(s2, l2, "relu grad")?,
            )?),
            (a, b) => candle_core::bail!(
                "relu grad: unsupported dtypes {:?} and {:?}",
                a.dtype(),
                b.dtype()
            ),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Whether `v` is NaN (the only value not equal to itself), for any float type.
#[inline]
#[allow(clippy::eq_op)]
fn is_nan<T: PartialEq + Copy>(v: T) -> bool {
    v != v
}

/// A 2-D max pooling over `[n, c, h, w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MaxPool2d {
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Strides.
    pub strides: [usize; 2],
    /// Dilations.
    pub dilations: [usize; 2],
    /// Padding: top, left, bottom, right (padded positions never win).
    pub pads: [usize; 4],
    /// Whether the output size is rounded up (windows starting in the bottom/right padding are
    /// dropped).
    pub ceil_mode: bool,
}

impl MaxPool2d {
    fn out_len(&self, input: usize, axis: usize) -> candle_core::Result<usize> {
        let extent = (self.kernel[axis] - 1) * self.dilations[axis] + 1;
        let padded = input + self.pads[axis] + self.pads[axis + 2];
        if padded < extent {
            candle_core::bail!(
                "max pool: window of {extent} does not fit in a padded axis of {padded}"
            );
        }
        let span = padded - extent;
        let stride = self.strides[axis];
        let mut n = if self.ceil_mode { span.div_ceil(stride) } else { span / stride } + 1;
        // A window must start inside the input or the leading padding.
        if self.ceil_mode && (n - 1) * stride >= input + self.pads[axis] {
            n -= 1;
        }
        Ok(n)
    }

    /// The output shape for an input shape.
    pub fn output_dims(&self, dims: &[usize]) -> candle_core::Result<[usize; 4]> {
        let [n, c, h, w] = dims else {
            candle_core::bail!("max pool: expected a [n, c, h, w] input, got {dims:?}")
        };
        Ok([*n, *c, self.out_len(*h, 0)?, self.out_len(*w, 1)?])
    }

    /// For every output value, the flat index of the input value it takes: the first maximum
    /// of its window in row-major order (a NaN wins and is never beaten).
    fn argmax<T: WithDType>(&self, x: &[T], dims: &[usize]) -> candle_core::Result<Vec<usize>> {
        let [n, c, oh, ow] = self.output_dims(dims)?;
        let (h, w) = (dims[2], dims[3]);
        if x.len() != n * c * h * w {
            candle_core::bail!("max pool: {} values for an input {dims:?}", x.len());
        }
        let mut out = Vec::with_capacity(n * c * oh * ow);
        let simple = self.pads == [0; 4] && self.dilations == [1, 1];
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.strides;
        for plane in 0..n * c {
            let base = plane * h * w;
            for oy in 0..oh {
                for ox in 0..ow {
                    let best = if simple {
                        // Every window lies inside the input.
                        let (y0, x0) = (oy * sh, ox * sw);
                        let mut bi = base + y0 * w + x0;
                        let mut bv = x[bi];
                        for ky in 0..kh {
                            let row = base + (y0 + ky) * w + x0;
                            for (kx, &v) in x[row..row + kw].iter().enumerate() {
                                if v > bv || (is_nan(v) && !is_nan(bv)) {
                                    bv = v;
                                    bi = row + kx;
                                }
                            }
                        }
                        Some(bi)
                    } else {
                        self.window_argmax(x, base, (h, w), (oy, ox))
                    };
                    let i = best.ok_or_else(|| {
                        candle_core::Error::Msg(
                            "max pool: a window lies entirely in the padding".into(),
                        )
                    })?;
                    out.push(i);
                }
            }
        }
        Ok(out)
    }

    /// The argmax of one window with padding or dilation.
    fn window_argmax<T: WithDType>(
        &self,
        x: &[T],
        base: usize,
        (h, w): (usize, usize),
        (oy, ox): (usize, usize),
    ) -> Option<usize> {
        let mut best: Option<(usize, T)> = None;
        for ky in 0..self.kernel[0] {
            let y = (oy * self.strides[0] + ky * self.dilations[0]).checked_sub(self.pads[0]);
            let Some(y) = y.filter(|&y| y < h) else { continue };
            for kx in 0..self.kernel[1] {
                let xx = (ox * self.strides[1] + kx * self.dilations[1]).checked_sub(self.pads[1]);
                let Some(xx) = xx.filter(|&v| v < w) else { continue };
                let i = base + y * w + xx;
                let v = x[i];
                let better = match best {
                    None => true,
                    Some((_, b)) => v > b || (is_nan(v) && !is_nan(b)),
                };
                if better {
                    best = Some((i, v));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    /// Applies the pooling (differentiable): the argmax found by the forward pass is kept for
    /// the backward pass.
    pub fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1(MaxPoolOp { pool: self, argmax: std::sync::OnceLock::new() })
    }
}

fn gather<T: WithDType>(x: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| x[i]).collect()
}

fn scatter<T: WithDType>(len: usize, idx: &[usize], grad: &[T]) -> candle_core::Result<Vec<T>> {
    if idx.len() != grad.len() {
        candle_core::bail!("max pool backward: {} gradients for {} outputs", grad.len(), idx.len());
    }
    let mut dx = vec![T::zero(); len];
    for (&i, &g) in idx.iter().zip(grad) {
        dx[i] += g;
    }
    Ok(dx)
}

/// One application of a [`MaxPool2d`], holding the argmax of its forward pass.
struct MaxPoolOp {
    pool: MaxPool2d,
    argmax: std::sync::OnceLock<std::sync::Arc<Vec<usize>>>,
}

impl CustomOp1 for MaxPoolOp {
    fn name(&self) -> &'static str {
        "nnlens-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l.dims();
        let (out, idx) = match s {
            CpuStorage::F32(_) => {
                let x = contiguous::<f32>(s, l, "max pool")?;
                let idx = self.pool.argmax(x, dims)?;
                (CpuStorage::F32(gather(x, &idx)), idx)
            }
            CpuStorage::F64(_) => {
                let x = contiguous::<f64>(s, l, "max pool")?;
                let idx = self.pool.argmax(x, dims)?;
                (CpuStorage::F64(gather(x, &idx)), idx)
            }
            other => candle_core::bail!("max pool: unsupported dtype {:?}", other.dtype()),
        };
        // A second forward of the same application cannot happen; keep the first.
        let _ = self.argmax.set(std::sync::Arc::new(idx));
        Ok((out, Shape::from(self.pool.output_dims(dims)?.to_vec())))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let arg = arg.contiguous()?;
        let argmax = self.argmax.get().cloned();
        Ok(Some(arg.apply_op2_no_bwd(&grad, &MaxPoolGrad { pool: self.pool, argmax })?))
    }
}

/// The gradient of a max pooling with respect to its input: `(input, output gradient) ->
/// input gradient`, each output's gradient going to its window's argmax.
struct MaxPoolGrad {
    pool: MaxPool2d,
    /// The forward pass's argmax, when it kept it (else recomputed from the input).
    argmax: Option<std::sync::Arc<Vec<usize>>>,
}

impl MaxPoolGrad {
    fn run<T: WithDType>(&self, x: &[T], dims: &[usize], g: &[T]) -> candle_core::Result<Vec<T>> {
        match &self.argmax {
            Some(idx) => scatter(x.len(), idx, g),
            None => scatter(x.len(), &self.pool.argmax(x, dims)?, g),
        }
    }
}

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "nnlens-max-pool2d-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l1.dims();
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => CpuStorage::F32(self.run(
                contiguous::<f32>(s1, l1, "max pool grad")?,
                dims,
                contiguous::<f32>(s2, l2, "max pool grad")?,
            )?),
            (CpuStorage::F64(_), CpuStorage::F64(_)) => CpuStorage::F64(self.run(
                contiguous::<f64>(s1, l1, "max pool grad")?,
                dims,
                contiguous::<f64>(s2, l2, "max pool grad")?,
            )?),
            (a, b) => candle_core::bail!(
                "max pool grad: unsupported dtypes {:?} and {:?}",
                a.dtype(),
                b.dtype()
            ),
        };
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn pool(kernel: usize, stride: usize, pads: [usize; 4], ceil_mode: bool) -> MaxPool2d {
        MaxPool2d { kernel: [kernel; 2], strides: [stride; 2], dilations: [1; 2], pads, ceil_mode }
    }

    #[test]
    fn max_pool_values_and_first_max_gradient() {
        // One 4x4 plane; the top-left window is all 1 (a tie), the others have a unique max.
        let x: Vec<f64> = vec![
            1., 1., 0., 5., //
            1., 1., 2., 3., //
            9., 0., 4., 4., //
            0., 8., 4., 7.,
        ];
        let v = Var::from_vec(x, (1, 1, 4, 4), &Device::Cpu).unwrap();
        let y = pool(2, 2, [0; 4], false).apply(v.as_tensor()).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f64>().unwrap(), [1., 5., 9., 7.]);
        let w = Tensor::new(&[1.0f64, 10., 100., 1000.], &Device::Cpu).unwrap();
        let loss = y.flatten_all().unwrap().mul(&w).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let g = g.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        // The tie gives its gradient to the first element only, the other windows to their max.
        assert_eq!(g, [1., 0., 0., 10., 0., 0., 0., 0., 100., 0., 0., 0., 0., 0., 0., 1000.]);
    }

    #[test]
    fn max_pool_padding_strides_and_ceil_mode() {
        let p = pool(3, 2, [1, 1, 1, 1], false);
        assert_eq!(p.output_dims(&[2, 3, 5, 5]).unwrap(), [2, 3, 3, 3]);
        let c = pool(2, 2, [0; 4], true);
        assert_eq!(c.output_dims(&[1, 1, 5, 5]).unwrap(), [1, 1, 3, 3]);
        let f = pool(2, 2, [0; 4], false);
        assert_eq!(f.output_dims(&[1, 1, 5, 5]).unwrap(), [1, 1, 2, 2]);
        // Padding never wins, even over negative values.
        let x = Tensor::new(&[[[[-1.0f32, -2.], [-3., -4.]]]], &Device::Cpu).unwrap();
        let y = pool(2, 1, [1, 1, 0, 0], false).apply(&x).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [-1., -1., -1., -1.]);
        assert!(pool(4, 1, [0; 4], false).output_dims(&[1, 1, 3, 3]).is_err());
    }

    #[test]
    fn relu_gradient_is_zero_at_zero() {
        let v = Var::from_vec(vec![-1.0f64, 0.0, 2.0], 3, &Device::Cpu).unwrap();
        let y = v.as_tensor().apply_op1(Relu).unwrap();
        assert_eq!(y.to_vec1::<f64>().unwrap(), [0., 0., 2.]);
        let g = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(g.get(v.as_tensor()).unwrap().to_vec1::<f64>().unwrap(), [0., 0., 1.]);
    }
}
