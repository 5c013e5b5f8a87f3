//! Invariance measures on the real Fashion-MNIST CNN (needs `../shared`).
#![cfg(feature = "shared")]

use ndarray::{Array2, IxDyn};
use nnlens_core::{DataSet, conform_input};
use nnlens_datasets::{PixelScale, Split};
use nnlens_invariance::{Kind, MeasureSpec, ModelSource, compute, safe_divide};
use nnlens_tests::*;
use nnlens_transforms::{ImageTransformationsDataSet, Resample, TransformationSet};

/// conv_1's activations of sample `s` under every transformation: `[T, activations]` (f64).
fn conv_1_row(
    model: &dyn nnlens_core::Model,
    dataset: &ImageTransformationsDataSet<nnlens_datasets::ImageDataSet>,
    s: usize,
) -> Array2<f64> {
    let t = dataset.width();
    let x = dataset.get_matrix(&[s], &(0..t).collect::<Vec<_>>()).unwrap();
    let x = x.into_shape_with_order(IxDyn(&[t, 28, 28, 1])).unwrap();
    let x = conform_input(x, &model.structure().input).unwrap();
    let a = model.predict(x.view(), Some(&["conv_1"])).unwrap().into_pairs().remove(0).1;
    let n = a.len() / t;
    a.into_shape_with_order((t, n)).unwrap().mapv(f64::from)
}

/// NVI of conv_1 the slow way: TV from each sample's row by the two-pass formula; SV from each
/// transformation's column with a first pass for the means and a second for the squares (the
/// model runs three times over the matrix; nothing is shared with the streaming code).
fn nvi_the_slow_way(
    model: &dyn nnlens_core::Model,
    dataset: &ImageTransformationsDataSet<nnlens_datasets::ImageDataSet>,
) -> Vec<f64> {
    let (s, t) = (dataset.height(), dataset.width());
    let std_of = |values: &[f64]| {
        let m = values.iter().sum::<f64>() / values.len() as f64;
        (values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
    };
    let n = conv_1_row(model, dataset, 0).ncols();
    let mut tv = vec![0.0; n];
    let mut sums = Array2::<f64>::zeros((t, n));
    for i in 0..s {
        let row = conv_1_row(model, dataset, i);
        for (k, tv) in tv.iter_mut().enumerate() {
            *tv += std_of(&row.column(k).to_vec()) / s as f64;
        }
        sums += &row;
    }
    let means = sums / s as f64;
    let mut squares = Array2::<f64>::zeros((t, n));
    for i in 0..s {
        let d = conv_1_row(model, dataset, i) - &means;
        squares += &(&d * &d);
    }
    let sv: Vec<f64> = (0..n)
        .map(|k| {
            squares.column(k).iter().map(|q| (q / (s - 1) as f64).sqrt()).sum::<f64>() / t as f64
        })
        .collect();
    tv.iter().zip(&sv).map(|(&a, &b)| safe_divide(a, b)).collect()
}

#[test]
fn conv_1_nvi_equals_the_direct_computation() {
    let model = load("tract", &shared_model("fashion_cnn.onnx"));
    let data = shared_split("fashion-mnist", Split::Test, PixelScale::Unit);
    let samples = data.subset(&(0..1000).collect::<Vec<_>>()).unwrap();
    let set = TransformationSet::parse("translation:dx=-2..2,dy=-2..2,step=2").unwrap();
    assert_eq!(set.len(), 9);
    let mut dataset = ImageTransformationsDataSet::new(samples, set, Resample::default()).unwrap();
    let slow = nvi_the_slow_way(model.as_ref(), &dataset);
    let mut source = ModelSource::new(model.as_ref(), &mut dataset)
        .with_layers(&["conv_1"])
        .unwrap()
        .with_batch_size(64);
    let fast = compute(&MeasureSpec::new(Kind::Nvi), &mut source).unwrap();
    let values = &fast.layers[0].values;
    assert_eq!(values.len(), slow.len());
    let worst = values
        .iter()
        .zip(&slow)
        .map(|(a, b)| if a == b { 0.0 } else { (a - b).abs() / b.abs().max(1e-12) })
        .fold(0.0, f64::max);
    assert!(worst < 1e-9, "largest relative difference {worst}");
    // Edge fill: translations change the border, so conv_1 is not invariant, yet below 1.
    assert!(fast.layers[0].value > 0.0 && fast.layers[0].value < 1.0, "{}", fast.layers[0].value);
}
