//! Two operators nnlens runs in place of tract's own, where tract's are far from the memory
//! bound on the small CNNs researchers measure (`nnlens bench --profile`, fashion_cnn, one
//! thread, batch 8, per input):
//!
//! - a 2x2 max pool of stride 2 on channels-first images (every Keras `MaxPooling2D()`):
//!   tract's vectorised 2x2 path is for stride 1 only, stride 2 walks every output with bounds
//!   checks (230 us for 64 x 28 x 28, about 50 times its memory traffic);
//! - a convolution whose dot products are short (`Cin * kh * kw <= 16`, a first layer on
//!   grey or RGB images): tract's packed matrix product pays a kernel call per tile for 4
//!   multiply-adds (407 us for conv_1's 200,704 multiply-adds);
//! - any other stride-1 convolution with a kernel larger than 1x1 and at least
//!   [`TAP_CONV_MIN_PIXELS`] output pixels per image ([`TapConv`]): tract
//!   writes its patch matrix first (`Im2col`, 53 of 207 us per input on fashion_cnn, conv_2);
//!   one matrix product per kernel tap reads the padded input where it lies (conv_2 and its
//!   im2col 139 -> 91 us per input, 207 -> 154 us for the whole model).
//!
//! [`rewrite`] swaps them into a decluttered graph before tract optimises it. The max pool
//! gives bitwise tract's values (a maximum is exact; NaN is skipped as tract skips it); the
//! convolutions sum the same products in another order (the short one without fused
//! multiply-adds), so they differ from tract's in the last bits of f32 only.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::{as_op, op_as_typed_op, op_out_of_plan};

/// Largest `Cin * kh * kw` that [`SmallConv`] takes over from tract's matrix product.
pub const SMALL_CONV_MAX_DOT: usize = 16;

/// Replaces, in a typed graph with concrete shapes, every 2x2 stride-2 channels-first f32 max
/// pool by [`MaxPool2x2`], every f32 channels-first convolution with short dot products by
/// [`SmallConv`] and every other one of stride 1, a kernel larger than 1x1 and at least
/// [`TAP_CONV_MIN_PIXELS`] output pixels by [`TapConv`]; returns how many nodes it replaced. Node ids and outlets are kept, so the
/// graph's outputs (the layers a run asked for) are unchanged.
///
/// # Errors
/// The graph's facts cannot be read.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in 0..model.nodes.len() {
        let new_op: Option<Box<dyn TypedOp>> = {
            let node = &model.nodes[id];
            let inputs = model.node_input_facts(id)?;
            if let Some(pool) = node.op_as::<MaxPool>() {
                MaxPool2x2::replacing(pool, &inputs).map(|op| Box::new(op) as _)
            } else if let Some(conv) = node.op_as::<Conv>() {
                match SmallConv::replacing(conv, &inputs) {
                    Some(small) if small.dot_len(&inputs) <= SMALL_CONV_MAX_DOT => {
                        Some(Box::new(small) as _)
                    }
                    Some(conv) if TapConv::takes(&conv) => Some(Box::new(TapConv(conv)) as _),
                    _ => None,
                }
            } else {
                None
            }
        };
        if let Some(op) = new_op {
            model.node_mut(id).op = op;
            replaced += 1;
        }
    }
    Ok(replaced)
}

/// The concrete shape of an f32 fact of rank 4, or `None`.
fn f32_nchw(fact: &TypedFact) -> Option<[usize; 4]> {
    if fact.datum_type != f32::datum_type() || !fact.is_plain() {
        return None;
    }
    let shape = fact.shape.as_concrete()?;
    <[usize; 4]>::try_from(shape).ok()
}

/// A 2x2 max pool of stride 2 without padding on `(N, C, H, W)` f32 images: the maximum of
/// each 2x2 block (an odd last row or column is dropped, as ONNX's floor rounding does).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaxPool2x2;

impl MaxPool2x2 {
    fn replacing(pool: &MaxPool, inputs: &[&TypedFact]) -> Option<MaxPool2x2> {
        let spec = &pool.pool_spec;
        let no_padding = match &spec.padding {
            PaddingSpec::Valid => true,
            PaddingSpec::Explicit(before, after)
            | PaddingSpec::ExplicitOnnxPool(before, after, false) => {
                before.iter().chain(after.iter()).all(|&p| p == 0)
            }
            _ => false,
        };
        let ok = pool.with_index_outputs.is_none()
            && spec.data_format == DataFormat::NCHW
            && spec.kernel_shape[..] == [2, 2]
            && spec.strides()[..] == [2, 2]
            && spec.dilations()[..] == [1, 1]
            && no_padding
            && inputs.len() == 1
            && f32_nchw(inputs[0]).is_some_and(|[_, _, h, w]| h >= 2 && w >= 2);
        ok.then_some(MaxPool2x2)
    }

    fn output_shape([n, c, h, w]: [usize; 4]) -> [usize; 4] {
        [n, c, h / 2, w / 2]
    }
}

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "nnlens.MaxPool2x2".into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool2x2 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape: [usize; 4] = input.shape().try_into().map_err(|_| {
            format_err!("MaxPool2x2 expects a rank-4 input, got {:?}", input.shape())
        })?;
        let [_, _, h, w] = shape;
        let out_shape = Self::output_shape(shape);
        let plain = input.try_as_plain_ram()?;
        let x = plain.as_slice::<f32>()?;
        // SAFETY: every value is written below (each output of each plane).
        let mut output = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        {
            let mut out_plain = output.try_as_plain_ram_mut()?;
            let out = out_plain.as_slice_mut::<f32>()?;
            max_pool_2x2(x, out, h, w);
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for MaxPool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let shape = f32_nchw(inputs[0]).ok_or_else(|| format_err!("MaxPool2x2 needs f32 NCHW"))?;
        Ok(tvec!(f32::fact(Self::output_shape(shape))))
    }

    as_op!();
}

/// The 2x2 stride-2 maxima of the `h x w` planes of `x` into the `(h/2) x (w/2)` planes of
/// `out`, folded as tract folds a pool: from `f32::MIN`, skipping NaN.
pub fn max_pool_2x2(x: &[f32], out: &mut [f32], h: usize, w: usize) {
    let (oh, ow) = (h / 2, w / 2);
    if oh == 0 || ow == 0 {
        return;
    }
    for (plane, out_plane) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow)) {
        for (oy, out_row) in out_plane.chunks_exact_mut(ow).enumerate() {
            let row0 = &plane[2 * oy * w..2 * oy * w + 2 * ow];
            let row1 = &plane[(2 * oy + 1) * w..(2 * oy + 1) * w + 2 * ow];
            for ((o, a), b) in
                out_row.iter_mut().zip(row0.chunks_exact(2)).zip(row1.chunks_exact(2))
            {
                *o = f32::MIN.max(a[0]).max(a[1]).max(b[0]).max(b[1]);
            }
        }
    }
}

/// A convolution of `(N, Cin, H, W)` f32 images by an OIHW kernel (one group) whose dot
/// products have at most [`SMALL_CONV_MAX_DOT`] terms, done directly: each output plane adds
/// each tap's weight times the shifted input rows, and the bias last, as tract's product does.
/// Inputs: the images, the constant kernel `(Cout, Cin, kh, kw)` and the constant bias (`Cout`
/// values, or one for every channel).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmallConv {
    /// `(N, Cout, OH, OW)`.
    output: [usize; 4],
    strides: [usize; 2],
    dilations: [usize; 2],
    /// Padding before the first row and column.
    pad: [usize; 2],
    /// `(kh, kw)`.
    kernel: [usize; 2],
}

impl SmallConv {
    fn replacing(conv: &Conv, inputs: &[&TypedFact]) -> Option<SmallConv> {
        let spec = &conv.pool_spec;
        if conv.q_params.is_some()
            || conv.group != 1
            || conv.kernel_fmt != KernelFormat::OIHW
            || spec.data_format != DataFormat::NCHW
            || spec.kernel_shape.len() != 2
            || inputs.len() != 3
        {
            return None;
        }
        let [n, cin, h, w] = f32_nchw(inputs[0])?;
        let kernel = inputs[1];
        let bias = inputs[2];
        let [cout, kcin, kh, kw] = f32_nchw(kernel)?;
        if kcin != cin || cin != spec.input_channels || cout != spec.output_channels {
            return None;
        }
        if [kh, kw] != spec.kernel_shape[..] {
            return None;
        }
        // Constant weights only: a kernel computed by the graph stays with tract.
        kernel.konst.as_ref()?;
        let bias_len = bias.shape.as_concrete()?.iter().product::<usize>();
        if bias.datum_type != f32::datum_type()
            || bias.konst.is_none()
            || !(bias_len == cout || bias_len == 1)
        {
            return None;
        }
        let padding = spec.computed_padding(&[h, w]);
        let output = [n, cout, padding[0].convoluted, padding[1].convoluted];
        let strides = spec.strides();
        let dilations = spec.dilations();
        Some(SmallConv {
            output,
            strides: [strides[0], strides[1]],
            dilations: [dilations[0], dilations[1]],
            pad: [padding[0].pad_before, padding[1].pad_before],
            kernel: [kh, kw],
        })
    }

    /// Terms of each dot product (`Cin * kh * kw`) for the inputs the operator was made for.
    fn dot_len(&self, inputs: &[&TypedFact]) -> usize {
        f32_nchw(inputs[0])
            .map_or(usize::MAX, |[_, cin, _, _]| cin * self.kernel[0] * self.kernel[1])
    }

    /// The geometry of the zero-padded planes both convolutions read: `(ph, pw)`, every row and
    /// column any output reads, plus one spare row so that a stride-1 tap's contiguous run of
    /// `oh * pw` values may overrun the last row's used columns.
    fn padded_plane(&self, w: usize) -> (usize, usize) {
        let [_, _, oh, ow] = self.output;
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.strides;
        let [dh, dw] = self.dilations;
        let ph = (oh - 1) * sh + (kh - 1) * dh + 2;
        let pw = ((ow - 1) * sw + (kw - 1) * dw + 1).max(self.pad[1] + w);
        (ph, pw)
    }

    /// Copies each channel of `image` (`cin` planes of `h x w`) into its zero-padded plane of
    /// `padded` (`ph x pw`, whose padding is already zero): rows past the last that an output
    /// reads are left out.
    fn pad_image(
        &self,
        image: &[f32],
        [h, w]: [usize; 2],
        padded: &mut [f32],
        (ph, pw): (usize, usize),
    ) {
        let [pt, pl] = self.pad;
        for (channel, plane) in image.chunks_exact(h * w).zip(padded.chunks_exact_mut(ph * pw)) {
            for (y, row) in channel.chunks_exact(w).enumerate() {
                if pt + y < ph {
                    let start = (pt + y) * pw + pl;
                    let end = (start + w).min((pt + y + 1) * pw);
                    plane[start..end].copy_from_slice(&row[..end - start]);
                }
            }
        }
    }

    /// Convolves `x` (`n` images of `cin x h x w`) by `weights` into `out` (`n x cout x oh x
    /// ow`), adding `bias` (`cout` values, or one for all), with the widest vectors this CPU
    /// has. The arithmetic is the same whatever the vectors (no fused multiply-add), so so are
    /// the results.
    fn convolve(
        &self,
        x: &[f32],
        dims: [usize; 3],
        weights: &[f32],
        bias: &[f32],
        out: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F.
                return unsafe { self.convolve_avx512(x, dims, weights, bias, out) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                return unsafe { self.convolve_avx2(x, dims, weights, bias, out) };
            }
        }
        self.convolve_any(x, dims, weights, bias, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn convolve_avx512(
        &self,
        x: &[f32],
        dims: [usize; 3],
        weights: &[f32],
        bias: &[f32],
        out: &mut [f32],
    ) {
        self.convolve_any(x, dims, weights, bias, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn convolve_avx2(
        &self,
        x: &[f32],
        dims: [usize; 3],
        weights: &[f32],
        bias: &[f32],
        out: &mut [f32],
    ) {
        self.convolve_any(x, dims, weights, bias, out)
    }

    /// [`Self::convolve`] for any CPU; inlined into each vector width's copy.
    ///
    /// Each channel of an image is copied once into a zero-padded plane of width `pw`; each
    /// output plane is accumulated `oh x pw` wide, so that at stride 1 a tap is one
    /// multiply-add over a contiguous run (`acc[q] += w * padded[q + ky * dh * pw + kx * dw]`),
    /// and its first `ow` columns of every row are the output. Larger strides read every
    /// `sw`-th column of the padded rows.
    #[inline(always)]
    fn convolve_any(
        &self,
        x: &[f32],
        [cin, h, w]: [usize; 3],
        weights: &[f32],
        bias: &[f32],
        out: &mut [f32],
    ) {
        let [_, cout, oh, ow] = self.output;
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.strides;
        let [dh, dw] = self.dilations;
        if oh == 0 || ow == 0 {
            return;
        }
        let (ph, pw) = self.padded_plane(w);
        let acc_width = if sw == 1 { pw } else { ow };
        let mut padded = vec![0.0f32; cin * ph * pw];
        let mut acc = vec![0.0f32; oh * acc_width];
        for (image, out_image) in
            x.chunks_exact(cin * h * w).zip(out.chunks_exact_mut(cout * oh * ow))
        {
            self.pad_image(image, [h, w], &mut padded, (ph, pw));
            for (co, out_plane) in out_image.chunks_exact_mut(oh * ow).enumerate() {
                acc.fill(0.0);
                let taps = &weights[co * cin * kh * kw..(co + 1) * cin * kh * kw];
                for (ci, plane) in padded.chunks_exact(ph * pw).enumerate() {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let weight = taps[(ci * kh + ky) * kw + kx];
                            let offset = ky * dh * pw + kx * dw;
                            if sw == 1 && sh == 1 {
                                let run = &plane[offset..offset + oh * pw];
                                for (a, &v) in acc.iter_mut().zip(run) {
                                    *a += weight * v;
                                }
                            } else {
                                for (oy, acc_row) in acc.chunks_exact_mut(acc_width).enumerate() {
                                    let row = &plane[oy * sh * pw + offset..];
                                    for (ox, a) in acc_row[..ow].iter_mut().enumerate() {
                                        *a += weight * row[ox * sw];
                                    }
                                }
                            }
                        }
                    }
                }
                add_bias_rows(
                    out_plane,
                    &acc,
                    [ow, acc_width],
                    if bias.len() == 1 { bias[0] } else { bias[co] },
                );
            }
        }
    }
}

/// Writes an output plane (rows of `ow`) from the first `ow` values of each `acc_width`-wide
/// row of `acc`, plus the channel's bias `b`: the bias last, as tract's product adds it.
fn add_bias_rows(out_plane: &mut [f32], acc: &[f32], [ow, acc_width]: [usize; 2], b: f32) {
    for (out_row, acc_row) in out_plane.chunks_exact_mut(ow).zip(acc.chunks_exact(acc_width)) {
        for (o, &a) in out_row.iter_mut().zip(acc_row) {
            *o = a + b;
        }
    }
}

impl Op for SmallConv {
    fn name(&self) -> StaticName {
        "nnlens.SmallConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "kernel {:?} strides {:?} dilations {:?} pad {:?} -> {:?}",
            self.kernel, self.strides, self.dilations, self.pad, self.output
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for SmallConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        eval_convolution("SmallConv", self, inputs, |x, dims, k, b, out| {
            self.convolve(x, dims, k, b, out)
        })
    }
}

/// Runs a convolution of `conv`'s geometry on its three inputs (images, kernel, bias), after
/// checking them against what it was planned for: `convolve(x, [cin, h, w], kernel, bias,
/// out)` must write every value of `out`.
fn eval_convolution(
    name: &str,
    conv: &SmallConv,
    inputs: TVec<TValue>,
    convolve: impl FnOnce(&[f32], [usize; 3], &[f32], &[f32], &mut [f32]),
) -> TractResult<TVec<TValue>> {
    let (input, kernel, bias) = args_3!(inputs);
    let [n, cin, h, w]: [usize; 4] = input
        .shape()
        .try_into()
        .map_err(|_| format_err!("{name} expects a rank-4 input, got {:?}", input.shape()))?;
    ensure!(n == conv.output[0], "{name} planned for {} images, got {n}", conv.output[0]);
    let [cout, kh, kw] = [conv.output[1], conv.kernel[0], conv.kernel[1]];
    ensure!(
        kernel.shape() == [cout, cin, kh, kw],
        "{name} planned for a kernel of {:?}, got {:?}",
        [cout, cin, kh, kw],
        kernel.shape()
    );
    ensure!(bias.len() == cout || bias.len() == 1, "{name}: {} bias values", bias.len());
    let x_plain = input.try_as_plain_ram()?;
    let k_plain = kernel.try_as_plain_ram()?;
    let b_plain = bias.try_as_plain_ram()?;
    let (x, k, b) =
        (x_plain.as_slice::<f32>()?, k_plain.as_slice::<f32>()?, b_plain.as_slice::<f32>()?);
    // SAFETY: `convolve` writes every value (each output row of each plane).
    let mut output = unsafe { Tensor::uninitialized::<f32>(&conv.output)? };
    {
        let mut out_plain = output.try_as_plain_ram_mut()?;
        convolve(x, [cin, h, w], k, b, out_plain.as_slice_mut::<f32>()?);
    }
    Ok(tvec!(output.into_tvalue()))
}

impl TypedOp for SmallConv {
    fn output_facts(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(self.output)))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let [_, cin, _, _] =
            f32_nchw(inputs[0]).ok_or_else(|| format_err!("SmallConv needs f32 NCHW"))?;
        let products =
            self.output.iter().product::<usize>() * cin * self.kernel[0] * self.kernel[1];
        Ok(tvec!((Cost::FMA(f32::datum_type()), products.to_dim())))
    }

    as_op!();
}

/// A stride-1 convolution of `(N, Cin, H, W)` f32 images by a constant OIHW kernel (one group)
/// with long dot products, as one matrix product per tap instead of tract's im2col and one
/// product: each image is copied once into zero-padded planes of width `pw`, and for each tap
/// `(ky, kx)` the `Cout x Cin` matrix of its weights multiplies the `Cin x (oh * pw)` matrix
/// that starts `ky * dh * pw + kx * dw` values into the planes, summed into an `oh * pw` wide
/// output; the first `ow` columns of each row, plus the bias, are the output. No patch matrix
/// is written (tract's `Im2col` took a quarter of fashion_cnn's time), and the products run in
/// the `gemm` crate's kernels (fused multiply-adds, sums in another order than tract's: the
/// last bits of f32 differ).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TapConv(SmallConv);

/// Fewest output pixels per image for which [`TapConv`] takes over from tract: each of its
/// products packs its tap's weights again (tract packs them once, when it plans), which pays
/// for itself over enough columns only (ResNet-18 on 32 x 32 images, whose last stages are 2 x
/// 2 and 1 x 1 pixels, ran 3 times slower with every stride-1 convolution taken).
pub const TAP_CONV_MIN_PIXELS: usize = 64;

impl TapConv {
    /// Whether a convolution is one [`TapConv`] runs faster than tract: stride 1, a kernel
    /// larger than 1x1 (a 1x1 one is a plain product in tract, without im2col) and at least
    /// [`TAP_CONV_MIN_PIXELS`] output pixels per image.
    fn takes(conv: &SmallConv) -> bool {
        let [_, _, oh, ow] = conv.output;
        conv.strides == [1, 1] && conv.kernel != [1, 1] && oh * ow >= TAP_CONV_MIN_PIXELS
    }

    /// Convolves `x` (`n` images of `cin x h x w`) by `weights` into `out`, as
    /// [`SmallConv::convolve`] does (see the type's docs for how).
    fn convolve(
        &self,
        x: &[f32],
        [cin, h, w]: [usize; 3],
        weights: &[f32],
        bias: &[f32],
        out: &mut [f32],
    ) {
        let conv = &self.0;
        let [_, cout, oh, ow] = conv.output;
        let [kh, kw] = conv.kernel;
        let [dh, dw] = conv.dilations;
        if oh == 0 || ow == 0 {
            return;
        }
        let (ph, pw) = conv.padded_plane(w);
        let mut padded = vec![0.0f32; cin * ph * pw];
        let mut acc = vec![0.0f32; cout * oh * pw];
        let run = oh * pw;
        for (image, out_image) in
            x.chunks_exact(cin * h * w).zip(out.chunks_exact_mut(cout * oh * ow))
        {
            conv.pad_image(image, [h, w], &mut padded, (ph, pw));
            for ky in 0..kh {
                for kx in 0..kw {
                    let tap = ky * kw + kx;
                    let offset = ky * dh * pw + kx * dw;
                    // SAFETY: acc holds cout rows of `run` values; the weights of tap (ky, kx)
                    // are at co * cin * kh * kw + ci * kh * kw + tap < weights.len() (checked by
                    // eval); the right operand's row ci is the run of `run` values from
                    // ci * ph * pw + offset, inside plane ci as offset + run <= ph * pw
                    // (padded_plane keeps a spare row). Nothing overlaps acc.
                    unsafe {
                        gemm::gemm(
                            cout,
                            run,
                            cin,
                            acc.as_mut_ptr(),
                            1,
                            run as isize,
                            tap > 0,
                            weights.as_ptr().add(tap),
                            (kh * kw) as isize,
                            (cin * kh * kw) as isize,
                            padded.as_ptr().add(offset),
                            1,
                            (ph * pw) as isize,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                }
            }
            for (co, (out_plane, acc_plane)) in
                out_image.chunks_exact_mut(oh * ow).zip(acc.chunks_exact(run)).enumerate()
            {
                add_bias_rows(
                    out_plane,
                    acc_plane,
                    [ow, pw],
                    if bias.len() == 1 { bias[0] } else { bias[co] },
                );
            }
        }
    }
}

impl Op for TapConv {
    fn name(&self) -> StaticName {
        "nnlens.TapConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        self.0.info()
    }

    op_as_typed_op!();
}

impl EvalOp for TapConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        eval_convolution("TapConv", &self.0, inputs, |x, dims, k, b, out| {
            self.convolve(x, dims, k, b, out)
        })
    }
}

impl TypedOp for TapConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        self.0.cost(inputs)
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tract_onnx::tract_core::ops::cnn::PoolSpec;

    /// Runs a one-operator graph with tract's own kernels, and with nnlens's when `ours`
    /// (asserting that the operator was replaced).
    fn run(model: &TypedModel, x: &Tensor, ours: bool) -> Tensor {
        let mut model = model.clone();
        let replaced = if ours { rewrite(&mut model).unwrap() } else { 0 };
        assert_eq!(replaced, usize::from(ours));
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let mut outputs = plan.run(tvec!(x.clone().into_tvalue())).unwrap();
        outputs.remove(0).into_tensor()
    }

    fn tensor(shape: &[usize], values: Vec<f32>) -> Tensor {
        tract_ndarray::ArrayD::from_shape_vec(shape, values).unwrap().into()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec()
    }

    fn pool_model(shape: [usize; 4]) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).unwrap();
        let spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![2, 2],
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: Some(tvec![2, 2]),
            input_channels: shape[1],
            output_channels: shape[1],
        };
        let y = model
            .wire_node("pool", MaxPool { pool_spec: spec, with_index_outputs: None }, &[x])
            .unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_model(
        x: [usize; 4],
        cout: usize,
        kernel: [usize; 2],
        strides: [usize; 2],
        dilations: [usize; 2],
        pad_before: [usize; 2],
        pad_after: [usize; 2],
        weights: Tensor,
        bias: Tensor,
    ) -> TypedModel {
        let mut model = TypedModel::default();
        let input = model.add_source("x", f32::fact(x)).unwrap();
        let k = model.add_const("k", weights).unwrap();
        let b = model.add_const("b", bias).unwrap();
        let spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![kernel[0], kernel[1]],
            padding: PaddingSpec::Explicit(
                tvec![pad_before[0], pad_before[1]],
                tvec![pad_after[0], pad_after[1]],
            ),
            dilations: Some(tvec![dilations[0], dilations[1]]),
            strides: Some(tvec![strides[0], strides[1]]),
            input_channels: x[1],
            output_channels: cout,
        };
        let conv =
            Conv { pool_spec: spec, kernel_fmt: KernelFormat::OIHW, group: 1, q_params: None };
        let y = model.wire_node("conv", conv, &[input, k, b]).unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    #[test]
    fn max_pool_by_hand() {
        // One 3x5 plane: the odd last row and column are dropped.
        let x: Vec<f32> = vec![
            1.,
            5.,
            2.,
            0.,
            9., //
            3.,
            4.,
            8.,
            f32::NAN,
            9., //
            7.,
            7.,
            7.,
            7.,
            7.,
        ];
        let mut out = vec![0.0; 2];
        max_pool_2x2(&x, &mut out, 3, 5);
        assert_eq!(out, vec![5.0, 8.0]);
        // All NaN or -inf: tract's fold from f32::MIN.
        let mut out = vec![0.0; 1];
        max_pool_2x2(&[f32::NAN, f32::NEG_INFINITY, f32::NAN, f32::NAN], &mut out, 2, 2);
        assert_eq!(out, vec![f32::MIN]);
    }

    #[test]
    fn small_conv_by_hand() {
        // One 2x3 image, one 2x2 kernel [[1, 2], [3, 4]], bias 10, padding one column after
        // and one row after ("same" for an even kernel, as Keras pads).
        let x = tensor(&[1, 1, 2, 3], vec![1., 2., 3., 4., 5., 6.]);
        let k = tensor(&[1, 1, 2, 2], vec![1., 2., 3., 4.]);
        let b = tensor(&[1], vec![10.]);
        let model = conv_model([1, 1, 2, 3], 1, [2, 2], [1, 1], [1, 1], [0, 0], [1, 1], k, b);
        let ours = run(&model, &x, true);
        assert_eq!(ours.shape(), &[1, 1, 2, 3]);
        // (0,0): 1*1 + 2*2 + 3*4 + 4*5 = 37; (0,2): 1*3 + 3*6 = 21; (1,0): 1*4 + 2*5 = 14 ...
        let expected = [37., 47., 21., 14., 17., 6.].map(|v: f32| v + 10.0);
        assert_eq!(values(&ours), expected.to_vec());
        assert_eq!(values(&run(&model, &x, false)), expected.to_vec());
    }

    #[test]
    fn strided_and_pointwise_long_convolutions_stay_with_tract() {
        let k = Tensor::zero::<f32>(&[4, 8, 2, 2]).unwrap(); // 32 terms, stride 2
        let b = Tensor::zero::<f32>(&[4]).unwrap();
        let mut model =
            conv_model([1, 8, 5, 5], 4, [2, 2], [2, 2], [1, 1], [0, 0], [0, 0], k, b.clone());
        assert_eq!(rewrite(&mut model).unwrap(), 0);
        let k = Tensor::zero::<f32>(&[4, 32, 1, 1]).unwrap(); // 32 terms, 1x1
        let mut model = conv_model([1, 32, 5, 5], 4, [1, 1], [1, 1], [1, 1], [0, 0], [0, 0], k, b);
        assert_eq!(rewrite(&mut model).unwrap(), 0);
    }

    #[test]
    fn tap_conv_by_hand() {
        // Two images of 9 channels of one row of 65 pixels (18 terms per dot product, past
        // SmallConv's 16): channel c of the first is x + c at column x, the second is zeros.
        // A 1x2 kernel of ones for every channel, no padding, bias 0.5: output x is the sum
        // over c of (x + c) + (x + 1 + c) = 18 x + 9 + 72, for x < 64 (64 pixels).
        let mut x = Vec::new();
        for c in 0..9 {
            x.extend((0..65).map(|col| (col + c) as f32));
        }
        x.extend([0.0; 9 * 65]);
        let x = tensor(&[2, 9, 1, 65], x);
        let k = tensor(&[1, 9, 1, 2], vec![1.0; 18]);
        let b = tensor(&[1], vec![0.5]);
        let model = conv_model([2, 9, 1, 65], 1, [1, 2], [1, 1], [1, 1], [0, 0], [0, 0], k, b);
        let mut rewritten = model.clone();
        rewrite(&mut rewritten).unwrap();
        assert!(rewritten.nodes.iter().any(|n| n.op.name() == "nnlens.TapConv"));
        let ours = run(&model, &x, true);
        assert_eq!(ours.shape(), &[2, 1, 1, 64]);
        let mut expected: Vec<f32> = (0..64).map(|col| (18 * col + 81) as f32 + 0.5).collect();
        expected.extend([0.5; 64]);
        assert_eq!(values(&ours), expected);
        assert_eq!(values(&run(&model, &x, false)), expected);
    }

    #[test]
    fn small_outputs_stay_with_tract() {
        // 7 x 9 = 63 output pixels: one fewer than TapConv takes.
        let k = Tensor::zero::<f32>(&[4, 8, 2, 2]).unwrap();
        let b = Tensor::zero::<f32>(&[4]).unwrap();
        let mut model = conv_model([1, 8, 8, 10], 4, [2, 2], [1, 1], [1, 1], [0, 0], [0, 0], k, b);
        assert_eq!(rewrite(&mut model).unwrap(), 0);
    }

    /// A convolution graph with seeded random inputs, weights and bias (each in [-2, 2]), the
    /// input tensor, and the bound `2 * sum |k| + sum |b|` on the magnitude of every output.
    #[allow(clippy::too_many_arguments)]
    fn random_conv(
        seed: u64,
        [n, cin, h, w]: [usize; 4],
        cout: usize,
        [kh, kw]: [usize; 2],
        strides: [usize; 2],
        dilations: [usize; 2],
        [pt, pl, pb, pr]: [usize; 4],
        scalar_bias: bool,
    ) -> (TypedModel, Tensor, f32) {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state % 2001) as f32 - 1000.0) / 500.0
        };
        let x: Vec<f32> = (0..n * cin * h * w).map(|_| next()).collect();
        let k: Vec<f32> = (0..cout * cin * kh * kw).map(|_| next()).collect();
        let bias_len = if scalar_bias { 1 } else { cout };
        let b: Vec<f32> = (0..bias_len).map(|_| next()).collect();
        let bound: f32 =
            k.iter().map(|v| v.abs()).sum::<f32>() * 2.0 + b.iter().map(|v| v.abs()).sum::<f32>();
        let model = conv_model(
            [n, cin, h, w],
            cout,
            [kh, kw],
            strides,
            dilations,
            [pt, pl],
            [pb, pr],
            tensor(&[cout, cin, kh, kw], k),
            if scalar_bias { tensor(&[], b) } else { tensor(&[bias_len], b) },
        );
        (model, tensor(&[n, cin, h, w], x), bound)
    }

    proptest! {
        #[test]
        fn max_pool_is_bitwise_tracts(
            n in 1usize..3, c in 1usize..4, h in 2usize..9, w in 2usize..9,
            seed in any::<u64>(),
        ) {
            let shape = [n, c, h, w];
            let len = n * c * h * w;
            let mut state = seed | 1;
            let x: Vec<f32> = (0..len).map(|_| {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                ((state % 2001) as f32 - 1000.0) / 37.0
            }).collect();
            let x = tensor(&shape, x);
            let model = pool_model(shape);
            let theirs = run(&model, &x, false);
            let ours = run(&model, &x, true);
            prop_assert_eq!(ours.shape(), theirs.shape());
            let (a, b) = (values(&ours), values(&theirs));
            prop_assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{a:?} vs {b:?}");
        }

        /// Stride-1 convolutions with long dot products (nnlens.TapConv): any kernel size,
        /// dilation and padding, against tract's own.
        #[test]
        fn tap_conv_matches_tracts_to_f32_rounding(
            n in 1usize..3, cin in 5usize..20, cout in 1usize..20,
            h in 4usize..14, w in 4usize..14, kh in 1usize..4, kw in 2usize..4,
            dh in 1usize..3, dw in 1usize..3,
            pads in proptest::array::uniform4(0usize..3),
            scalar_bias in any::<bool>(), seed in any::<u64>(),
        ) {
            let (pt, pl, pb, pr) = (pads[0], pads[1], pads[2], pads[3]);
            prop_assume!(cin * kh * kw > SMALL_CONV_MAX_DOT);
            let oh = (h + pt + pb).saturating_sub((kh - 1) * dh);
            let ow = (w + pl + pr).saturating_sub((kw - 1) * dw);
            prop_assume!(oh * ow >= TAP_CONV_MIN_PIXELS);
            let (model, x, bound) = random_conv(
                seed, [n, cin, h, w], cout, [kh, kw], [1, 1], [dh, dw], pads, scalar_bias,
            );
            let theirs = run(&model, &x, false);
            let ours = run(&model, &x, true);
            prop_assert_eq!(ours.shape(), theirs.shape());
            // |x| <= 2: a sum of `terms` products (and the bias) is off by at most ~terms + 1
            // roundings of its magnitude bound, in either order of summation.
            let terms = cin * kh * kw;
            let tolerance = bound * (terms + 1) as f32 * f32::EPSILON;
            for (a, b) in values(&ours).iter().zip(values(&theirs)) {
                prop_assert!((a - b).abs() <= tolerance, "{a} vs {b} (tolerance {tolerance})");
            }
        }

        #[test]
        fn small_conv_matches_tracts_to_f32_rounding(
            n in 1usize..3, cin in 1usize..4, cout in 1usize..6,
            h in 1usize..9, w in 1usize..9, kh in 1usize..3, kw in 1usize..3,
            sh in 1usize..3, sw in 1usize..3, dh in 1usize..3, dw in 1usize..3,
            pads in proptest::array::uniform4(0usize..3),
            scalar_bias in any::<bool>(), seed in any::<u64>(),
        ) {
            let (pt, pl, pb, pr) = (pads[0], pads[1], pads[2], pads[3]);
            // At least one output pixel.
            prop_assume!(h + pt + pb > (kh - 1) * dh && w + pl + pr > (kw - 1) * dw);
            let (model, x, bound) = random_conv(
                seed, [n, cin, h, w], cout, [kh, kw], [sh, sw], [dh, dw], pads, scalar_bias,
            );
            let theirs = run(&model, &x, false);
            let ours = run(&model, &x, true);
            prop_assert_eq!(ours.shape(), theirs.shape());
            // |x| <= 2 and |terms| <= 16: each sum is off by at most ~17 roundings of its
            // magnitude bound.
            let tolerance = bound * 17.0 * f32::EPSILON;
            for (a, b) in values(&ours).iter().zip(values(&theirs)) {
                prop_assert!((a - b).abs() <= tolerance, "{a} vs {b} (tolerance {tolerance})");
            }
        }
    }
}
