//! Helpers for the cross-crate tests: where `../shared` is, and loading its models and data
//! through the registries, the way the CLI does.

use std::path::PathBuf;

use ndarray::ArrayD;
use nnlens_core::{BackendOptions, Model, conform_input};
use nnlens_datasets::catalog::Source;
use nnlens_datasets::{ImageDataSet, PixelScale, Split, dataset_spec, load_split};

/// The five models of `../shared/models`: file, the dataset it reads, and its pixel scale.
pub const SHARED_MODELS: &[(&str, &str, PixelScale)] = &[
    ("fashion_cnn.onnx", "fashion-mnist", PixelScale::Unit),
    ("fashion_cnn_layers.onnx", "fashion-mnist", PixelScale::Unit),
    ("mnist_cnn.onnx", "mnist", PixelScale::Unit),
    ("mnist_cnn_layers.onnx", "mnist", PixelScale::Unit),
    ("mnist_mlp.onnx", "mnist", PixelScale::Raw),
];

/// The shared folder: `$NNLENS_SHARED`, else `../shared` beside the checkout.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("NNLENS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// A shared model file.
pub fn shared_model(name: &str) -> PathBuf {
    shared_dir().join("models").join(name)
}

/// Loads a model with the named backend.
pub fn load(backend: &str, path: &std::path::Path) -> Box<dyn Model> {
    nnlens_plugins::link();
    let entry = nnlens_core::backend(backend).unwrap();
    (entry.load)(path, &BackendOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A split of a shared dataset (`fashion-mnist` or `mnist`).
pub fn shared_split(dataset: &str, split: Split, scale: PixelScale) -> ImageDataSet {
    let spec = dataset_spec(dataset).unwrap();
    let dir = shared_dir().join("data").join(dataset);
    load_split(spec, split, &Source::Dir(dir), scale).unwrap().0
}

/// The first `n` images of a dataset, shaped for the model's input.
pub fn inputs(model: &dyn Model, data: &ImageDataSet, n: usize) -> ArrayD<f32> {
    conform_input(data.batch(0..n).unwrap(), &model.structure().input).unwrap()
}

/// Images `range` of a dataset, shaped for the model's input.
pub fn inputs_range(
    model: &dyn Model,
    data: &ImageDataSet,
    range: std::ops::Range<usize>,
) -> ArrayD<f32> {
    conform_input(data.batch(range).unwrap(), &model.structure().input).unwrap()
}

/// Moves axis `from` of an array to the last position.
pub fn channel_last(a: &ArrayD<f32>, from: usize) -> ArrayD<f32> {
    let mut axes: Vec<usize> = (0..a.ndim()).filter(|&i| i != from).collect();
    axes.push(from);
    a.view().permuted_axes(axes).as_standard_layout().into_owned()
}

/// The largest absolute difference of two arrays of the same shape.
pub fn max_abs_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub mod golden;
