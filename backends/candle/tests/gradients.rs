//! Per-example gradients against central finite differences, in `f64`, for every parameter
//! tensor of a small conv + max-pool + dense model built in code, for all three losses.

mod common;

use common::*;
use ndarray::{Array2, ArrayD, Axis, Ix2};
use nnlens_candle::{CandleModel, CandleOptions, Precision};
use nnlens_core::{GradModel, Loss, Targets};

/// Builds a model's bytes: `double` stores the weights as DOUBLE; `param` overrides one
/// parameter tensor's values.
type Builder = fn(bool, Option<(usize, &[f64])>) -> Vec<u8>;

fn f64_options() -> CandleOptions {
    CandleOptions { precision: Precision::F64, ..CandleOptions::default() }
}

fn load(bytes: &[u8]) -> CandleModel {
    CandleModel::from_bytes(bytes, "conv_pool_dense.onnx", &f64_options()).unwrap()
}

/// The loss of example 0 with parameter `p` of `model` set to `values`.
fn loss_with(
    model: Builder,
    p: usize,
    values: &[f64],
    x: &ArrayD<f32>,
    targets: Targets<'_>,
    loss: Loss,
) -> f64 {
    let m = load(&model(true, Some((p, values))));
    m.losses(x.view(), targets, loss).unwrap()[0]
}

/// The largest relative error of the analytic gradient against central differences, over every
/// scalar of every parameter tensor of the conv + max-pool + dense model; per tensor.
fn finite_difference_errors(loss: Loss, targets: Targets<'_>, x: &ArrayD<f32>) -> Vec<f64> {
    fd_errors(
        conv_pool_dense,
        CONV_POOL_DENSE_PARAMS,
        |name| if name.ends_with("_b") { 0.1 } else { 0.6 },
        0,
        loss,
        targets,
        x,
    )
}

/// The same for any model built by `model` with parameters `params` (initial values
/// `values(n, index + seed, scale(name))`).
fn fd_errors(
    model: Builder,
    params: &[(&str, &[i64])],
    scale: impl Fn(&str) -> f64,
    seed: u64,
    loss: Loss,
    targets: Targets<'_>,
    x: &ArrayD<f32>,
) -> Vec<f64> {
    let m = load(&model(true, None));
    let names: Vec<&str> = m.parameters().iter().map(|p| p.name.as_str()).collect();
    let expected: Vec<&str> = params.iter().map(|p| p.0).collect();
    assert_eq!(names, expected, "parameters in order of first use");
    let grads = m.per_example_gradients(x.view(), targets, loss).unwrap();
    let total: i64 = params.iter().map(|(_, d)| d.iter().product::<i64>()).sum();
    assert_eq!(grads.dim(), (1, total as usize));
    let h = 1e-6;
    let mut offset = 0;
    let mut errors = Vec::new();
    for (p, &(name, dims)) in params.iter().enumerate() {
        let n: i64 = dims.iter().product();
        let base = if seed == 0 {
            values(n as usize, p as u64 + 11, scale(name))
        } else if name == "scale" {
            values(n as usize, 40, 0.3).iter().map(|v| v + 1.0).collect()
        } else {
            values(n as usize, p as u64 + seed, scale(name))
        };
        let mut worst = 0.0f64;
        let mut largest = 0.0f64;
        for k in 0..n as usize {
            let mut plus = base.clone();
            plus[k] += h;
            let mut minus = base.clone();
            minus[k] -= h;
            let fd = (loss_with(model, p, &plus, x, targets, loss)
                - loss_with(model, p, &minus, x, targets, loss))
                / (2.0 * h);
            let analytic = f64::from(grads[[0, offset + k]]);
            // f32 storage of the analytic gradient: relative 6e-8; differences: ~1e-9 absolute.
            let err = (fd - analytic).abs() / (fd.abs().max(analytic.abs()).max(1e-3));
            worst = worst.max(err);
            largest = largest.max(fd.abs());
        }
        assert!(
            largest > 1e-4,
            "{loss:?} {name}: the gradient is (nearly) zero; the test would be vacuous"
        );
        println!("{loss:?} {name}: max relative error {worst:.2e} (largest |dL/dw| {largest:.3})");
        errors.push(worst);
        offset += n as usize;
    }
    errors
}

#[test]
fn cross_entropy_from_probabilities_matches_finite_differences() {
    let x = images(1, 3);
    let errors =
        finite_difference_errors(Loss::CrossEntropyFromProbabilities, Targets::Classes(&[2]), &x);
    assert!(errors.iter().all(|&e| e < 1e-5), "{errors:?}");
}

#[test]
fn cross_entropy_from_logits_matches_finite_differences() {
    let x = images(1, 4);
    let errors = finite_difference_errors(Loss::CrossEntropyFromLogits, Targets::Classes(&[0]), &x);
    assert!(errors.iter().all(|&e| e < 1e-5), "{errors:?}");
}

#[test]
fn mean_squared_error_matches_finite_differences() {
    let x = images(1, 5);
    let t = Array2::from_shape_vec((1, 3), vec![0.9f32, -0.2, 0.4]).unwrap();
    let errors = finite_difference_errors(Loss::MeanSquaredError, Targets::Values(t.view()), &x);
    assert!(errors.iter().all(|&e| e < 1e-5), "{errors:?}");
}

#[test]
fn gradients_through_the_other_operators_match_finite_differences() {
    // Grouped SAME_UPPER strided conv, LeakyRelu, Sigmoid, Tanh, Mul, Sub, Div,
    // GlobalAveragePool, a dynamic reshape, Squeeze, Flatten, MatMul, Concat, Gemm with alpha
    // and beta, LogSoftmax; MSE on the log-probabilities and cross-entropy from logits.
    let x = ops_inputs(1, 8);
    let t = Array2::from_shape_vec((1, 3), vec![-0.5f32, -1.5, -1.0]).unwrap();
    for (loss, targets) in [
        (Loss::MeanSquaredError, Targets::Values(t.view())),
        (Loss::CrossEntropyFromLogits, Targets::Classes(&[1])),
    ] {
        let errors = fd_errors(ops_model, OPS_PARAMS, |_| 0.5, 30, loss, targets, &x);
        assert!(errors.iter().all(|&e| e < 1e-5), "{loss:?}: {errors:?}");
    }
}

#[test]
fn cross_entropy_from_probabilities_is_the_logits_path_without_clipping() {
    let model = load(&conv_pool_dense(true, None));
    assert_eq!(model.logits_tensor(), Some("net/logits/Gemm:0"));
    let x = images(4, 6);
    let labels = [0usize, 1, 2, 1];
    let p = model.output(x.view()).unwrap().into_dimensionality::<Ix2>().unwrap();
    let losses = model
        .losses(x.view(), Targets::Classes(&labels), Loss::CrossEntropyFromProbabilities)
        .unwrap();
    let grads = model
        .per_example_gradients(
            x.view(),
            Targets::Classes(&labels),
            Loss::CrossEntropyFromProbabilities,
        )
        .unwrap();
    let n = grads.ncols();
    for (i, &y) in labels.iter().enumerate() {
        assert!((losses[i] + f64::from(p[[i, y]]).ln()).abs() < 1e-6, "loss = -ln p[y]");
        // The last three gradient entries are the Gemm bias's: dL/dz = p - onehot(y).
        for k in 0..3 {
            let expected = f64::from(p[[i, k]]) - if k == y { 1.0 } else { 0.0 };
            assert!((f64::from(grads[[i, n - 3 + k]]) - expected).abs() < 1e-6);
        }
    }
    // From logits, the same loss of the output taken as logits is a different function.
    let from_logits =
        model.losses(x.view(), Targets::Classes(&labels), Loss::CrossEntropyFromLogits).unwrap();
    assert!((from_logits[0] - losses[0]).abs() > 1e-3);
}

#[test]
fn a_batch_gives_the_rows_of_single_examples_and_f32_agrees_with_f64() {
    let m64 = load(&conv_pool_dense(true, None));
    let m32 =
        CandleModel::from_bytes(&conv_pool_dense(false, None), "m32", &CandleOptions::default())
            .unwrap();
    assert_eq!(m32.precision(), Precision::F32);
    let x = images(6, 9);
    let labels = [0usize, 1, 2, 0, 1, 2];
    let all = m64
        .per_example_gradients(x.view(), Targets::Classes(&labels), Loss::CrossEntropyFromLogits)
        .unwrap();
    for i in [0, 3, 5] {
        let xi = x.slice_axis(Axis(0), (i..i + 1).into()).to_owned();
        let one = m64
            .per_example_gradients(
                xi.view(),
                Targets::Classes(&labels[i..i + 1]),
                Loss::CrossEntropyFromLogits,
            )
            .unwrap();
        assert_eq!(one.row(0), all.row(i));
    }
    let g32 = m32
        .per_example_gradients(x.view(), Targets::Classes(&labels), Loss::CrossEntropyFromLogits)
        .unwrap();
    let scale = all.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
    let diff = all.iter().zip(g32.iter()).fold(0.0f32, |a, (p, q)| a.max((p - q).abs()));
    assert!(diff < 1e-5 * scale.max(1.0), "f32 vs f64: {diff} (scale {scale})");
}

#[test]
fn bad_targets_and_inputs_are_errors() {
    let m = load(&conv_pool_dense(true, None));
    let x = images(2, 1);
    let e = m
        .per_example_gradients(x.view(), Targets::Classes(&[0, 3]), Loss::CrossEntropyFromLogits)
        .unwrap_err();
    assert!(e.to_string().contains("label 3"), "{e}");
    let e = m
        .per_example_gradients(x.view(), Targets::Classes(&[0]), Loss::CrossEntropyFromLogits)
        .unwrap_err();
    assert!(e.to_string().contains("targets"), "{e}");
    let e = m
        .per_example_gradients(x.view(), Targets::Classes(&[0, 1]), Loss::MeanSquaredError)
        .unwrap_err();
    assert!(e.to_string().contains("real-valued"), "{e}");
    let t = Array2::<f32>::zeros((2, 4));
    let e = m
        .per_example_gradients(x.view(), Targets::Values(t.view()), Loss::MeanSquaredError)
        .unwrap_err();
    assert!(e.to_string().contains("regression targets"), "{e}");
    let mut nan = x.clone();
    nan[[1, 2, 3, 0]] = f32::NAN;
    let e = m
        .per_example_gradients(nan.view(), Targets::Classes(&[0, 1]), Loss::CrossEntropyFromLogits)
        .unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
    let wrong = ArrayD::<f32>::zeros(ndarray::IxDyn(&[2, 8, 8]));
    assert!(
        m.per_example_gradients(
            wrong.view(),
            Targets::Classes(&[0, 1]),
            Loss::CrossEntropyFromLogits
        )
        .is_err()
    );
}

#[test]
fn gradients_through_normalisation_clipping_padding_and_average_pooling_match_finite_differences() {
    // BatchNormalization (scale and bias; the running statistics are constants), Clip, constant and edge Pad,
    // AveragePool with and without the pads in the count.
    let x = ops_inputs(1, 9);
    let errors = fd_errors(
        norm_model,
        NORM_PARAMS,
        |_| 0.5,
        30,
        Loss::CrossEntropyFromLogits,
        Targets::Classes(&[2]),
        &x,
    );
    assert!(errors.iter().all(|&e| e < 1e-5), "{errors:?}");
}

#[test]
fn gradients_through_hard_swish_squeeze_excitation_and_reduce_mean_match_finite_differences() {
    // HardSwish, ReduceMean (axes kept and not, attribute and input), Conv 1x1, HardSigmoid,
    // Mul, Clip, Sigmoid; both ReduceMean forms.
    let x = ops_inputs(1, 12);
    for opset in [13, 18] {
        let errors = fd_errors(
            match opset {
                13 => |d, p| mobile_model(13, d, p),
                _ => |d, p| mobile_model(18, d, p),
            },
            MOBILE_PARAMS,
            |_| 0.5,
            50,
            Loss::CrossEntropyFromLogits,
            Targets::Classes(&[1]),
            &x,
        );
        assert!(errors.iter().all(|&e| e < 1e-5), "opset {opset}: {errors:?}");
    }
}

#[test]
fn running_statistics_are_constants_and_a_selection_keeps_its_columns() {
    // BatchNormalization's mean and variance are not parameters.
    let all = load(&norm_model(true, None));
    let names: Vec<&str> = all.parameters().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["conv_w", "conv_b", "bn_scale", "bn_b", "head_w", "head_b"]);
    // --parameters: the gradient of the kept tensors is the same columns of the full one.
    let options = |p: &[&str]| CandleOptions {
        precision: Precision::F64,
        parameters: Some(p.iter().map(|s| s.to_string()).collect()),
        ..CandleOptions::default()
    };
    let some =
        CandleModel::from_bytes(&norm_model(true, None), "norm", &options(&["head", "bn_*"]))
            .unwrap();
    let kept: Vec<&str> = some.parameters().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(kept, ["bn_scale", "bn_b", "head_w", "head_b"]);
    let x = ops_inputs(2, 3);
    let targets = Targets::Classes(&[0, 2]);
    let full = all.per_example_gradients(x.view(), targets, Loss::CrossEntropyFromLogits).unwrap();
    let part = some.per_example_gradients(x.view(), targets, Loss::CrossEntropyFromLogits).unwrap();
    let skipped = 4 * 3 * 3 * 3 + 4;
    assert_eq!(part.ncols(), full.ncols() - skipped);
    assert_eq!(part, full.slice(ndarray::s![.., skipped..]));
    let e = CandleModel::from_bytes(&norm_model(true, None), "norm", &options(&["nope"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("'nope'") && e.contains("conv, bn, head"), "{e}");
}

#[test]
fn gradients_through_the_element_wise_operators_match_finite_differences() {
    // Abs, Add, Sqrt, Log, Neg, Exp, Identity, Dropout, Cast, GlobalAveragePool, Flatten.
    let x = ops_inputs(1, 13);
    let errors = fd_errors(
        unary_model,
        UNARY_PARAMS,
        |_| 0.5,
        70,
        Loss::CrossEntropyFromLogits,
        Targets::Classes(&[2]),
        &x,
    );
    assert!(errors.iter().all(|&e| e < 1e-5), "{errors:?}");
}
