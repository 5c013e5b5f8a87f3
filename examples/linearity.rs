//! The seed workflow of alibi's linearity notebook, in Rust: the feature range of the test set,
//! the linearity of every layer for random instances (one pass over the model, not one run per
//! layer), then the linearity of the output per class.
//!
//! ```sh
//! cargo run -p nnlens-linearity --example linearity -- [MODEL.onnx] [INSTANCES] [NB_SAMPLES]
//! ```
//!
//! Defaults: the Fashion-MNIST CNN and the 1000-image test sample embedded in the CLI
//! (`run/assets/`), 100 instances, 20 samples (the notebook's).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nnlens_core::{BackendOptions, DataSet, Model};
use nnlens_datasets::catalog::Source;
use nnlens_datasets::{PixelScale, Split, dataset_spec, load_split};
use nnlens_linearity::{
    Execution, FeatureRange, GridSampler, Instances, LayerSpec, LinearitySpec, ModelType,
    flatten_rows, measure,
};
use nnlens_tract::TractModel;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../run/assets");
    let model_path =
        args.first().map(PathBuf::from).unwrap_or_else(|| assets.join("fashion_cnn.onnx"));
    let count: usize =
        args.get(1).map(|s| s.parse()).transpose().context("INSTANCES")?.unwrap_or(100);
    let nb_samples: usize =
        args.get(2).map(|s| s.parse()).transpose().context("NB_SAMPLES")?.unwrap_or(20);

    let model = TractModel::load(&model_path, &BackendOptions::default())?;
    let spec = dataset_spec("fashion-mnist")?;
    let (data, _) = load_split(
        spec,
        Split::Test,
        &Source::Dir(assets.join("fashion-mnist-sample")),
        PixelScale::Unit,
    )?;

    // features_range = infer_feature_range(x_test)
    let x = flatten_rows(data.batch(0..data.len())?.view())?;
    let range = FeatureRange::infer(x.view())?;
    let linearity = LinearitySpec { nb_samples, ..LinearitySpec::default() };
    let sampler = GridSampler::new(&range, linearity.epsilon, linearity.res, nb_samples, 0)?;

    // Every layer as the output in turn (regressor), the softmax as a classifier: one pass.
    let output = model.structure().output_layer().name.clone();
    let layers: Vec<LayerSpec> = model
        .structure()
        .names()
        .iter()
        .map(|&name| LayerSpec {
            name: name.to_string(),
            model_type: if name == output { ModelType::Classifier } else { ModelType::Regressor },
        })
        .collect();
    let rows: Vec<usize> = (0..count.min(data.len())).collect();
    let inputs = x.select(ndarray::Axis(0), &rows);
    let labels: Vec<usize> = rows.iter().map(|&r| data.labels()[r]).collect();
    let instances = Instances {
        inputs: inputs.view(),
        data_shape: data.data_shape(),
        indices: &rows,
        labels: Some(&labels),
    };
    let state =
        measure(&model, &linearity, instances, &sampler, &layers, Execution::default(), &|_| {})?;
    let summary = state.summarise(20)?;
    println!("linearity per layer ({} instances, {nb_samples} samples each)", rows.len());
    for layer in &summary.layers {
        println!("  {:<10} {:>10.6}", layer.name, layer.summary.mean);
    }

    // Per class, at the output.
    let out = summary.layers.iter().find(|l| l.name == output).context("output layer")?;
    println!("linearity of {output} per class");
    for class in &out.classes {
        println!(
            "  {} {:<12} {:>10.6} ({} instances)",
            class.class, spec.classes[class.class], class.summary.mean, class.summary.count
        );
    }
    Ok(())
}
