//! The seed workflow of alibi's GradientSimilarity notebook, in Rust: fit the explainer on a
//! reference set (per-example gradients of the loss w.r.t. every parameter, stored), then
//! explain test instances by the references whose gradients point the same way.
//!
//! ```sh
//! cargo run -p nnlens-similarity --example similarity -- [MODEL.onnx] [REFERENCES] [INSTANCES]
//! ```
//!
//! Defaults: the Fashion-MNIST CNN and the 1000-image test sample embedded in the CLI
//! (`run/assets/`); references are taken from the first 900 images (200 by default: 0.66 GB of
//! stored gradients for this model) and the instances come after them (5 by default);
//! `grad_cos`, as in the notebook.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use nnlens_candle::CandleModel;
use nnlens_core::{Model, Targets, conform_input};
use nnlens_datasets::catalog::Source;
use nnlens_datasets::{PixelScale, Split, dataset_spec, load_split};
use nnlens_similarity::{GradientSimilarity, SimFn, SimilaritySpec};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../run/assets");
    let model_path =
        args.first().map(PathBuf::from).unwrap_or_else(|| assets.join("fashion_cnn.onnx"));
    let references: usize =
        args.get(1).map(|s| s.parse()).transpose().context("REFERENCES")?.unwrap_or(200);
    let instances: usize =
        args.get(2).map(|s| s.parse()).transpose().context("INSTANCES")?.unwrap_or(5);

    let model = CandleModel::load(&model_path)?;
    let spec = dataset_spec("fashion-mnist")?;
    let (data, _) = load_split(
        spec,
        Split::Test,
        &Source::Dir(assets.join("fashion-mnist-sample")),
        PixelScale::Unit,
    )?;
    ensure!(
        references.min(900) + instances <= data.len(),
        "{references} references and {instances} instances do not fit in {} images",
        data.len()
    );
    let references = references.min(900);
    let input = &model.structure().input;
    let x_ref = conform_input(data.batch(0..references)?, input)?;
    let y_ref = &data.labels()[..references];
    let test = 900..900 + instances;
    let x_test = conform_input(data.batch(test.clone())?, input)?;
    let y_test = &data.labels()[test.clone()];

    // explainer = GradientSimilarity(model, loss_fn, sim_fn='grad_cos', precompute_grads=True)
    let options = SimilaritySpec { sim_fn: SimFn::GradCos, precompute: true, ..Default::default() };
    let mut explainer = GradientSimilarity::new(&model, options)?;
    // explainer.fit(X_train, Y_train)
    let fit = explainer.fit(x_ref.view(), Targets::Classes(y_ref))?;
    println!(
        "fitted {references} references ({} parameters each, {:.1} MB of gradients) in {:.2} s",
        fit.parameters,
        fit.gradient_bytes as f64 / 1e6,
        fit.seconds
    );
    // explanation = explainer.explain(X_test, Y=Y_test)
    let explanation = explainer.explain(x_test.view(), Some(Targets::Classes(y_test)))?;
    let name = |i: usize| spec.classes[data.labels()[i]];
    for (k, i) in test.enumerate() {
        println!("test image {i} ({})", name(i));
        let show = |title: &str, refs: &[usize]| {
            let cells: Vec<String> = refs
                .iter()
                .map(|&j| format!("{j} {} {:.3}", name(j), explanation.scores[k][j]))
                .collect();
            println!("  {title}: {}", cells.join(" | "));
        };
        show("most similar ", &explanation.most_similar[k]);
        show("least similar", &explanation.least_similar[k]);
    }
    Ok(())
}
