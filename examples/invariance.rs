//! The seed workflow of transformational-measures-tf, in Rust: a model, a transformations
//! dataset, the block iterator, the six seed measures and the Analyzer.
//!
//! ```sh
//! cargo run -p nnlens-invariance --example invariance -- [MODEL.onnx] [SAMPLES] [N]
//! ```
//!
//! Defaults: the Fashion-MNIST CNN and the 1000-image test sample embedded in the CLI
//! (`run/assets/`), 100 samples, 8 transformations per group.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nnlens_core::{BackendOptions, BlockIterator, DataSet, Model};
use nnlens_datasets::catalog::Source;
use nnlens_datasets::{PixelScale, Split, dataset_spec, load_split};
use nnlens_invariance::{Analyzer, Kind, MeasureSpec, ModelSource, compute};
use nnlens_tract::TractModel;
use nnlens_transforms::{ImageTransformationsDataSet, Resample, seed_group};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../run/assets");
    let model_path =
        args.first().map(PathBuf::from).unwrap_or_else(|| assets.join("fashion_cnn.onnx"));
    let samples: usize =
        args.get(1).map(|s| s.parse()).transpose().context("SAMPLES")?.unwrap_or(100);
    let n: usize = args.get(2).map(|s| s.parse()).transpose().context("N")?.unwrap_or(8);

    // Model(path=...): every layer's activations, and the structure.
    let model = TractModel::load(&model_path, &BackendOptions::default())?;
    let structure = model.structure();
    println!(
        "{} layers, {} with feature maps",
        structure.number_layers(),
        structure.number_layers_features()
    );

    // MnistTransformationsDataSet + set_transformation_group(1, n): rotations.
    let (data, _) = load_split(
        dataset_spec("fashion-mnist")?,
        Split::Test,
        &Source::Dir(assets.join("fashion-mnist-sample")),
        PixelScale::Unit,
    )?;
    let data = data.subset(&(0..samples.min(data.len())).collect::<Vec<_>>())?;
    let labels = data.labels().to_vec();
    let mut dataset =
        ImageTransformationsDataSet::new(data, seed_group(1, n, 28, 28)?, Resample::default())?;

    // Iterator(model, dataset).get_block(10, 5): a Block is indexed by (i, j, l) and (i, j, l, f).
    let iterator = BlockIterator::new(&model, &dataset);
    let first_row = iterator.get_block(10, 5)?.next().context("no blocks")?;
    let block = first_row.into_iter().next().context("no blocks")??;
    println!(
        "block of {} x {}: input (0, 1) at layer 0 has shape {:?}, its feature map 3 {:?}",
        block.height(),
        block.width(),
        block.at(0, 1, 0)?.shape(),
        block.feature(0, 1, 0, 3)?.shape()
    );

    // Variance(iterator).compute() and the other seed measures.
    for kind in [
        Kind::Variance,
        Kind::NormalizedVariance,
        Kind::FeaturesVariance,
        Kind::NormalizedFeaturesVariance,
        Kind::SameEquivariance,
        Kind::NormalizedSameEquivariance,
    ] {
        let mut source = ModelSource::new(&model, &mut dataset);
        let result = compute(&MeasureSpec::new(kind), &mut source)?;
        let layers: Vec<String> =
            result.layers.iter().map(|l| format!("{} {:.4}", l.name, l.value)).collect();
        println!("{:<30} total {:>9.4}   {}", kind.name(), result.total, layers.join(", "));
    }
    assert!(!dataset.is_transposed(), "measures leave the dataset as they found it");

    // Analyzer(model, dataset, metric).run(n).
    let analyzer =
        Analyzer::new(&model, &dataset, &labels, MeasureSpec::new(Kind::NormalizedVariance))?;
    println!("group  normalized-variance  accuracy");
    for row in analyzer.run(n, |_| {})? {
        println!("{:>5}  {:>19.4}  {:>8.4}", row.group, row.measure, row.accuracy);
    }
    Ok(())
}
