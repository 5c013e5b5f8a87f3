//! Matrix products and 2-D convolutions as candle custom operators with their own backward
//! passes, on the `gemm` crate (the one candle uses) called single-threaded.
//!
//! Why not candle's `matmul` and `conv2d`: the parallelism that matters here is across examples
//! (one forward and backward pass each), and candle 0.11.1 asks the operating system for the
//! number of physical cores (parsing `/proc/cpuinfo`) on every matrix product, splits each small
//! product across threads that are already busy, and computes a transposed convolution's
//! gradient with a scalar loop. Measured on the MNIST CNN: 18 ms per example's gradient with
//! candle's operators on one core, a few ms with these.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, WithDType};

/// The element types the products run in.
pub(crate) trait Real: WithDType + 'static {}
impl Real for f32 {}
impl Real for f64 {}

/// A matrix operand: data with its row and column strides.
#[derive(Clone, Copy)]
struct Mat<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

fn check_extent(
    len: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
    what: &str,
) -> candle_core::Result<()> {
    if rows > 0 && cols > 0 && (rows - 1) * rs + (cols - 1) * cs >= len {
        candle_core::bail!("{what}: a {rows} x {cols} operand does not fit in {len} values");
    }
    Ok(())
}

/// `c = a b` (or `c += a b` when `accumulate`) for an `m x k` `a`, a `k x n` `b` and a
/// row-major `m x n` `c`.
fn gemm<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_, T>,
    b: Mat<'_, T>,
    c: &mut [T],
    accumulate: bool,
) -> candle_core::Result<()> {
    check_extent(a.data.len(), m, k, a.rs, a.cs, "matmul lhs")?;
    check_extent(b.data.len(), k, n, b.rs, b.cs, "matmul rhs")?;
    if c.len() < m * n {
        candle_core::bail!("matmul: {} values for a {m} x {n} result", c.len());
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(T::zero());
        }
        return Ok(());
    }
    if k == 1 && b.cs == 1 {
        // An outer product (the weight gradient of a dense layer for one example): the gemm
        // kernels are slow on it, a row-by-row scaled copy is memory speed.
        let brow = &b.data[..n];
        for (i, crow) in c[..m * n].chunks_exact_mut(n).enumerate() {
            let ai = a.data[i * a.rs];
            if accumulate {
                crow.iter_mut().zip(brow).for_each(|(c, &b)| *c += ai * b);
            } else {
                crow.iter_mut().zip(brow).for_each(|(c, &b)| *c = ai * b);
            }
        }
        return Ok(());
    }
    // SAFETY: the extents of `a` and `b` are checked above, `c` holds `m * n` row-major values,
    // and the three slices do not overlap (`c` is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            T::one(),
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
    Ok(())
}

fn slice<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [T]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: operand is not contiguous")))?;
    Ok(&s.as_slice::<T>()?[start..end])
}

/// Runs `f` on the two operands as `f32` or `f64` slices.
fn dispatch2(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    op: &str,
    f32_fn: impl FnOnce(&[f32], &[f32]) -> candle_core::Result<Vec<f32>>,
    f64_fn: impl FnOnce(&[f64], &[f64]) -> candle_core::Result<Vec<f64>>,
) -> candle_core::Result<CpuStorage> {
    match (s1, s2) {
        (CpuStorage::F32(_), CpuStorage::F32(_)) => {
            Ok(CpuStorage::F32(f32_fn(slice(s1, l1, op)?, slice(s2, l2, op)?)?))
        }
        (CpuStorage::F64(_), CpuStorage::F64(_)) => {
            Ok(CpuStorage::F64(f64_fn(slice(s1, l1, op)?, slice(s2, l2, op)?)?))
        }
        (a, b) => {
            candle_core::bail!("{op}: unsupported dtypes {:?} and {:?}", a.dtype(), b.dtype())
        }
    }
}

/// `op(a) op(b)` for 2-D `a` and `b`, where `op` transposes when the flag is set (ONNX `Gemm`'s
/// `transA`/`transB`; `MatMul` is both unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MatMul {
    pub trans_a: bool,
    pub trans_b: bool,
}

impl MatMul {
    /// `(m, k, n)` of the product, checking that the inner dimensions agree.
    fn dims(&self, a: &[usize], b: &[usize]) -> candle_core::Result<(usize, usize, usize)> {
        let (&[a0, a1], &[b0, b1]) = (a, b) else {
            candle_core::bail!("matmul: 2-D operands needed, got {a:?} and {b:?}")
        };
        let (m, k) = if self.trans_a { (a1, a0) } else { (a0, a1) };
        let (k2, n) = if self.trans_b { (b1, b0) } else { (b0, b1) };
        if k != k2 {
            candle_core::bail!(
                "matmul: inner dimensions differ: {a:?}{} x {b:?}{}",
                if self.trans_a { "^T" } else { "" },
                if self.trans_b { "^T" } else { "" }
            );
        }
        Ok((m, k, n))
    }

    fn run<T: Real>(
        &self,
        a: &[T],
        b: &[T],
        (m, k, n): (usize, usize, usize),
    ) -> candle_core::Result<Vec<T>> {
        // Stored shapes: a is m x k (or k x m), b is k x n (or n x k), row-major.
        let am = if self.trans_a {
            Mat { data: a, rs: 1, cs: m }
        } else {
            Mat { data: a, rs: k, cs: 1 }
        };
        let bm = if self.trans_b {
            Mat { data: b, rs: 1, cs: k }
        } else {
            Mat { data: b, rs: n, cs: 1 }
        };
        let mut c = vec![T::zero(); m * n];
        gemm(m, n, k, am, bm, &mut c, false)?;
        Ok(c)
    }

    /// Applies the operator (differentiable).
    pub fn apply(self, a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        a.contiguous()?.apply_op2(&b.contiguous()?, self)
    }
}

impl CustomOp2 for MatMul {
    fn name(&self) -> &'static str {
        "nnlens-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = self.dims(l1.dims(), l2.dims())?;
        let out = dispatch2(
            s1,
            l1,
            s2,
            l2,
            "matmul",
            |a, b| self.run(a, b, dims),
            |a, b| self.run(a, b, dims),
        )?;
        Ok((out, Shape::from((dims.0, dims.2))))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let mm = |ta: bool, tb: bool, x: &Tensor, y: &Tensor| {
            x.contiguous()?.apply_op2_no_bwd(&y.contiguous()?, &MatMul { trans_a: ta, trans_b: tb })
        };
        // C = op(A) op(B): dop(A) = dC op(B)^T, dop(B) = op(A)^T dC.
        let da = if !a.track_op() {
            None
        } else if self.trans_a {
            Some(mm(self.trans_b, true, b, &g)?)
        } else {
            Some(mm(false, !self.trans_b, &g, b)?)
        };
        let db = if !b.track_op() {
            None
        } else if self.trans_b {
            Some(mm(true, self.trans_a, &g, a)?)
        } else {
            Some(mm(!self.trans_a, false, a, &g)?)
        };
        Ok((da, db))
    }
}

/// A 2-D convolution (one group) of `x [n, c, h, w]` with `w [m, c, kh, kw]`, any strides,
/// dilations and (asymmetric) zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conv2d {
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// Top, left, bottom, right.
    pub pads: [usize; 4],
}

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct ConvDims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    m: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
}

impl ConvDims {
    /// Rows of the unfolded input (`c kh kw`).
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Output positions (`oh ow`).
    fn p(&self) -> usize {
        self.oh * self.ow
    }
}

impl Conv2d {
    fn dims(&self, x: &[usize], w: &[usize]) -> candle_core::Result<ConvDims> {
        let (&[n, c, h, wd], &[m, c2, kh, kw]) = (x, w) else {
            candle_core::bail!(
                "conv: [n, c, h, w] input and [m, c, kh, kw] weights needed, got {x:?} and {w:?}"
            )
        };
        if c != c2 {
            candle_core::bail!("conv: input {x:?} has {c} channels, weights {w:?} expect {c2}");
        }
        let out = |size: usize, k: usize, a: usize| -> candle_core::Result<usize> {
            let extent = (k - 1) * self.dilations[a] + 1;
            let padded = size + self.pads[a] + self.pads[a + 2];
            if k == 0 || padded < extent {
                candle_core::bail!(
                    "conv: a kernel of {k} does not fit in a padded axis of {padded}"
                );
            }
            Ok((padded - extent) / self.strides[a] + 1)
        };
        Ok(ConvDims { n, c, h, w: wd, m, kh, kw, oh: out(h, kh, 0)?, ow: out(wd, kw, 1)? })
    }

    /// The input position read by output `o` and kernel offset `k` on axis `a`, if inside.
    #[inline]
    fn source(&self, o: usize, k: usize, a: usize, size: usize) -> Option<usize> {
        (o * self.strides[a] + k * self.dilations[a])
            .checked_sub(self.pads[a])
            .filter(|&i| i < size)
    }

    /// Unfolds one image `[c, h, w]` into `cols [c kh kw, oh ow]`.
    fn im2col<T: Real>(&self, x: &[T], d: &ConvDims, cols: &mut [T]) {
        let p = d.p();
        for c in 0..d.c {
            for ky in 0..d.kh {
                for kx in 0..d.kw {
                    let row = &mut cols[((c * d.kh + ky) * d.kw + kx) * p..][..p];
                    for oy in 0..d.oh {
                        let dst = &mut row[oy * d.ow..(oy + 1) * d.ow];
                        match self.source(oy, ky, 0, d.h) {
                            None => dst.fill(T::zero()),
                            Some(iy) => {
                                let src = &x[(c * d.h + iy) * d.w..][..d.w];
                                for (ox, v) in dst.iter_mut().enumerate() {
                                    *v =
                                        self.source(ox, kx, 1, d.w).map_or(T::zero(), |ix| src[ix]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Folds `cols [c kh kw, oh ow]` back into one image `[c, h, w]`, adding.
    fn col2im<T: Real>(&self, cols: &[T], d: &ConvDims, x: &mut [T]) {
        let p = d.p();
        for c in 0..d.c {
            for ky in 0..d.kh {
                for kx in 0..d.kw {
                    let row = &cols[((c * d.kh + ky) * d.kw + kx) * p..][..p];
                    for oy in 0..d.oh {
                        let Some(iy) = self.source(oy, ky, 0, d.h) else { continue };
                        let dst = &mut x[(c * d.h + iy) * d.w..][..d.w];
                        for (ox, &v) in row[oy * d.ow..(oy + 1) * d.ow].iter().enumerate() {
                            if let Some(ix) = self.source(ox, kx, 1, d.w) {
                                dst[ix] += v;
                            }
                        }
                    }
                }
            }
        }
    }

    fn forward<T: Real>(&self, x: &[T], w: &[T], d: &ConvDims) -> candle_core::Result<Vec<T>> {
        let (k, p) = (d.k(), d.p());
        let mut cols = vec![T::zero(); k * p];
        let mut out = vec![T::zero(); d.n * d.m * p];
        for i in 0..d.n {
            self.im2col(&x[i * d.c * d.h * d.w..][..d.c * d.h * d.w], d, &mut cols);
            gemm(
                d.m,
                p,
                k,
                Mat { data: w, rs: k, cs: 1 },
                Mat { data: &cols, rs: p, cs: 1 },
                &mut out[i * d.m * p..][..d.m * p],
                false,
            )?;
        }
        Ok(out)
    }

    /// The weights' gradient `sum_i g_i cols_i^T`.
    fn grad_kernel<T: Real>(&self, x: &[T], g: &[T], d: &ConvDims) -> candle_core::Result<Vec<T>> {
        let (k, p) = (d.k(), d.p());
        let mut cols = vec![T::zero(); k * p];
        let mut dw = vec![T::zero(); d.m * k];
        for i in 0..d.n {
            self.im2col(&x[i * d.c * d.h * d.w..][..d.c * d.h * d.w], d, &mut cols);
            gemm(
                d.m,
                k,
                p,
                Mat { data: &g[i * d.m * p..][..d.m * p], rs: p, cs: 1 },
                Mat { data: &cols, rs: 1, cs: p },
                &mut dw,
                i > 0,
            )?;
        }
        Ok(dw)
    }

    /// The input's gradient: `col2im(w^T g_i)` per image.
    fn grad_input<T: Real>(&self, w: &[T], g: &[T], d: &ConvDims) -> candle_core::Result<Vec<T>> {
        let (k, p) = (d.k(), d.p());
        let mut cols = vec![T::zero(); k * p];
        let mut dx = vec![T::zero(); d.n * d.c * d.h * d.w];
        for i in 0..d.n {
            gemm(
                k,
                p,
                d.m,
                Mat { data: w, rs: 1, cs: k },
                Mat { data: &g[i * d.m * p..][..d.m * p], rs: p, cs: 1 },
                &mut cols,
                false,
            )?;
            self.col2im(&cols, d, &mut dx[i * d.c * d.h * d.w..][..d.c * d.h * d.w]);
        }
        Ok(dx)
    }

    /// Applies the operator (differentiable).
    pub fn apply(self, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op2(&w.contiguous()?, self)
    }
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "nnlens-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.dims(l1.dims(), l2.dims())?;
        let out = dispatch2(
            s1,
            l1,
            s2,
            l2,
            "conv",
            |x, w| self.forward(x, w, &d),
            |x, w| self.forward(x, w, &d),
        )?;
        Ok((out, Shape::from((d.n, d.m, d.oh, d.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let dx = if x.track_op() {
            Some(
                w.contiguous()?
                    .apply_op2_no_bwd(&g, &ConvGradInput { conv: *self, x: x.dims().to_vec() })?,
            )
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(
                x.contiguous()?
                    .apply_op2_no_bwd(&g, &ConvGradKernel { conv: *self, w: w.dims().to_vec() })?,
            )
        } else {
            None
        };
        Ok((dx, dw))
    }
}

/// `(w, g) -> dx` of [`Conv2d`].
struct ConvGradInput {
    conv: Conv2d,
    x: Vec<usize>,
}

impl CustomOp2 for ConvGradInput {
    fn name(&self) -> &'static str {
        "nnlens-conv2d-grad-input"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.conv.dims(&self.x, l1.dims())?;
        if l2.dims() != [d.n, d.m, d.oh, d.ow] {
            candle_core::bail!(
                "conv grad: gradient {:?} for an output [{}, {}, {}, {}]",
                l2.dims(),
                d.n,
                d.m,
                d.oh,
                d.ow
            );
        }
        let c = &self.conv;
        let out = dispatch2(
            s1,
            l1,
            s2,
            l2,
            "conv grad",
            |w, g| c.grad_input(w, g, &d),
            |w, g| c.grad_input(w, g, &d),
        )?;
        Ok((out, Shape::from(self.x.clone())))
    }
}

/// `(x, g) -> dw` of [`Conv2d`].
struct ConvGradKernel {
    conv: Conv2d,
    w: Vec<usize>,
}

impl CustomOp2 for ConvGradKernel {
    fn name(&self) -> &'static str {
        "nnlens-conv2d-grad-kernel"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.conv.dims(l1.dims(), &self.w)?;
        if l2.dims() != [d.n, d.m, d.oh, d.ow] {
            candle_core::bail!(
                "conv grad: gradient {:?} for an output [{}, {}, {}, {}]",
                l2.dims(),
                d.n,
                d.m,
                d.oh,
                d.ow
            );
        }
        let c = &self.conv;
        let out = dispatch2(
            s1,
            l1,
            s2,
            l2,
            "conv grad",
            |x, g| c.grad_kernel(x, g, &d),
            |x, g| c.grad_kernel(x, g, &d),
        )?;
        Ok((out, Shape::from(self.w.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn lcg(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
            })
            .collect()
    }

    /// The convolution written as four nested loops.
    fn naive_conv(
        x: &[f64],
        xd: [usize; 4],
        w: &[f64],
        wd: [usize; 4],
        c: &Conv2d,
    ) -> (Vec<f64>, [usize; 4]) {
        let d = c.dims(&xd, &wd).unwrap();
        let mut out = vec![0.0; d.n * d.m * d.oh * d.ow];
        for n in 0..d.n {
            for m in 0..d.m {
                for oy in 0..d.oh {
                    for ox in 0..d.ow {
                        let mut s = 0.0;
                        for ch in 0..d.c {
                            for ky in 0..d.kh {
                                for kx in 0..d.kw {
                                    if let (Some(iy), Some(ix)) =
                                        (c.source(oy, ky, 0, d.h), c.source(ox, kx, 1, d.w))
                                    {
                                        s += x[((n * d.c + ch) * d.h + iy) * d.w + ix]
                                            * w[((m * d.c + ch) * d.kh + ky) * d.kw + kx];
                                    }
                                }
                            }
                        }
                        out[((n * d.m + m) * d.oh + oy) * d.ow + ox] = s;
                    }
                }
            }
        }
        (out, [d.n, d.m, d.oh, d.ow])
    }

    #[test]
    fn conv_matches_loops_and_its_gradients_are_adjoint() {
        for conv in [
            Conv2d { strides: [1, 1], dilations: [1, 1], pads: [0, 0, 1, 1] },
            Conv2d { strides: [2, 1], dilations: [1, 2], pads: [1, 2, 0, 1] },
        ] {
            let (xd, wd) = ([2, 3, 7, 6], [4, 3, 2, 3]);
            let x = lcg(xd.iter().product(), 1);
            let w = lcg(wd.iter().product(), 2);
            let (expected, od) = naive_conv(&x, xd, &w, wd, &conv);
            let xv = Var::from_vec(x.clone(), xd.to_vec(), &Device::Cpu).unwrap();
            let wv = Var::from_vec(w.clone(), wd.to_vec(), &Device::Cpu).unwrap();
            let y = conv.apply(xv.as_tensor(), wv.as_tensor()).unwrap();
            assert_eq!(y.dims(), od);
            let got = y.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for (a, b) in got.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-12);
            }
            // <g, conv(x, w)> is bilinear: its gradients are the adjoint operators, checked
            // against the loops by linearity (d/dx_i = conv(e_i, w) . g).
            let g = lcg(expected.len(), 3);
            let gt = Tensor::from_vec(g.clone(), od.to_vec(), &Device::Cpu).unwrap();
            let grads = y.mul(&gt).unwrap().sum_all().unwrap().backward().unwrap();
            let dx =
                grads.get(xv.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let dw =
                grads.get(wv.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            for i in (0..x.len()).step_by(7) {
                let mut e = vec![0.0; x.len()];
                e[i] = 1.0;
                let (col, _) = naive_conv(&e, xd, &w, wd, &conv);
                let expected: f64 = col.iter().zip(&g).map(|(a, b)| a * b).sum();
                assert!((dx[i] - expected).abs() < 1e-12, "dx[{i}]");
            }
            for i in 0..w.len() {
                let mut e = vec![0.0; w.len()];
                e[i] = 1.0;
                let (col, _) = naive_conv(&x, xd, &e, wd, &conv);
                let expected: f64 = col.iter().zip(&g).map(|(a, b)| a * b).sum();
                assert!((dw[i] - expected).abs() < 1e-12, "dw[{i}]");
            }
        }
    }

    #[test]
    fn matmul_with_transposes_and_gradients() {
        let a = lcg(6, 4); // 2 x 3 (or 3 x 2 transposed)
        let b = lcg(12, 5); // 3 x 4 (or 4 x 3 transposed)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let ad = if ta { (3, 2) } else { (2, 3) };
            let bd = if tb { (4, 3) } else { (3, 4) };
            let av = Var::from_vec(a.clone(), ad, &Device::Cpu).unwrap();
            let bv = Var::from_vec(b.clone(), bd, &Device::Cpu).unwrap();
            let y =
                MatMul { trans_a: ta, trans_b: tb }.apply(av.as_tensor(), bv.as_tensor()).unwrap();
            let at = if ta { av.as_tensor().t().unwrap() } else { av.as_tensor().clone() };
            let bt = if tb { bv.as_tensor().t().unwrap() } else { bv.as_tensor().clone() };
            let reference = at.matmul(&bt).unwrap();
            let diff = (y.clone() - &reference)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!(diff < 1e-14);
            let g = Tensor::from_vec(lcg(8, 6), (2, 4), &Device::Cpu).unwrap();
            let ours = y.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
            let theirs = reference.mul(&g).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&av, &bv] {
                let d = (ours.get(v.as_tensor()).unwrap() - theirs.get(v.as_tensor()).unwrap())
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                assert!(d < 1e-14, "({ta}, {tb})");
            }
        }
        assert!(
            MatMul { trans_a: false, trans_b: false }
                .apply(
                    &Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
                    &Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap()
                )
                .is_err()
        );
    }
}
