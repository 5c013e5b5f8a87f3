//! alibi's GradientSimilarity reproduced on `../shared/models/mnist_cnn.onnx`:
//! `../shared/golden/gradsim/mnist_cnn_fixture.json` (1000 MNIST train images as the reference
//! set, 3 t10k images explained, one-hot labels, categorical cross-entropy on the softmax
//! output), for grad_dot, grad_cos and grad_asym_dot: scores within 1e-3 of each row's largest
//! score (5e-3 for grad_asym_dot) and the same top-5 order, with precompute on and off.
#![cfg(feature = "shared")]

use ndarray::ArrayD;
use nnlens_candle::{CandleModel, CandleOptions, Precision};
use nnlens_core::{Model, Targets, conform_input};
use nnlens_datasets::{PixelScale, Split};
use nnlens_similarity::{GradientSimilarity, SimFn, SimilaritySpec};
use nnlens_tests::*;
use serde_json::Value;

struct Fixture {
    json: Value,
    reference: ArrayD<f32>,
    reference_labels: Vec<usize>,
    tests: ArrayD<f32>,
    test_labels: Vec<usize>,
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

fn fixture(model: &dyn Model) -> Fixture {
    let path = shared_dir().join("golden/gradsim/mnist_cnn_fixture.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // The model takes pixel / 255 (the graph casts its f64 input to f32 first: the f32
    // division is the same number).
    let train = shared_split("mnist", Split::Train, PixelScale::Unit)
        .subset(&indices(&json["ref_train_indices"]))
        .unwrap();
    let test = shared_split("mnist", Split::Test, PixelScale::Unit)
        .subset(&indices(&json["test_indices"]))
        .unwrap();
    assert_eq!(train.labels(), indices(&json["ref_labels"]).as_slice());
    assert_eq!(test.labels(), indices(&json["test_labels"]).as_slice());
    let input = &model.structure().input;
    Fixture {
        reference: conform_input(train.batch(0..train.len()).unwrap(), input).unwrap(),
        reference_labels: train.labels().to_vec(),
        tests: conform_input(test.batch(0..test.len()).unwrap(), input).unwrap(),
        test_labels: test.labels().to_vec(),
        json,
    }
}

/// The largest error as a fraction of the row's largest |score|, and whether every top-5
/// order is alibi's.
fn compare(f: &Fixture, sim_fn: SimFn, scores: &[Vec<f64>], top5: &[Vec<usize>]) -> (f64, bool) {
    let golden = &f.json["sim_fns"][sim_fn.name()];
    let mut worst = 0.0f64;
    let mut same = true;
    for (i, row) in scores.iter().enumerate() {
        let want: Vec<f64> = golden["scores_by_reference"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(row.len(), want.len());
        let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for (a, b) in row.iter().zip(&want) {
            worst = worst.max((a - b).abs() / scale);
        }
        let order = indices(&golden["ordered_indices_top20"][i]);
        same &= top5[i] == order[..5];
    }
    (worst, same)
}

fn tolerance(sim_fn: SimFn) -> f64 {
    if sim_fn == SimFn::GradAsymDot { 5e-3 } else { 1e-3 }
}

#[test]
fn the_alibi_fixture_is_reproduced_for_every_sim_fn() {
    let model = CandleModel::load(&shared_model("mnist_cnn.onnx")).unwrap();
    let f = fixture(&model);
    assert_eq!(
        nnlens_core::GradModel::parameter_count(&model) as u64,
        f.json["n_trainable_params"].as_u64().unwrap()
    );
    let mut report = Vec::new();
    for sim_fn in SimFn::ALL {
        let spec = SimilaritySpec { sim_fn, precompute: true, ..Default::default() };
        let mut gs = GradientSimilarity::new(&model, spec).unwrap();
        let fit = gs.fit(f.reference.view(), Targets::Classes(&f.reference_labels)).unwrap();
        assert_eq!(fit.gradient_bytes, 1000 * 412_778 * 4);
        let e = gs.explain(f.tests.view(), Some(Targets::Classes(&f.test_labels))).unwrap();
        let (worst, same) = compare(&f, sim_fn, &e.scores, &e.most_similar);
        report.push(format!(
            "{sim_fn}: max |error| / row max = {worst:.2e}, top-5 identical: {same}"
        ));
        assert!(worst < tolerance(sim_fn), "{sim_fn}: {worst}");
        assert!(same, "{sim_fn}: top-5 order differs: {:?}", e.most_similar);
        // alibi's returned rows are the scores sorted descending.
        let sorted: Vec<f64> = f.json["sim_fns"][sim_fn.name()]["scores_sorted_as_alibi_returns"]
            [0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
        let ours = e.sorted_scores(0);
        let scale = sorted.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        assert!(ours.iter().zip(&sorted).all(|(a, b)| (a - b).abs() < tolerance(sim_fn) * scale));
    }
    println!("{}", report.join("\n"));
}

#[test]
fn streaming_and_f64_give_the_same_explanations() {
    let model = CandleModel::load(&shared_model("mnist_cnn.onnx")).unwrap();
    let f64_model = CandleModel::load_with(
        &shared_model("mnist_cnn.onnx"),
        &CandleOptions { precision: Precision::F64, ..CandleOptions::default() },
    )
    .unwrap();
    let f = fixture(&model);
    // grad_cos without precompute (reference gradients streamed per explain) on f32, and with
    // precompute on f64 weights.
    let spec = SimilaritySpec { sim_fn: SimFn::GradCos, precompute: false, ..Default::default() };
    let mut gs = GradientSimilarity::new(&model, spec).unwrap();
    let fit = gs.fit(f.reference.view(), Targets::Classes(&f.reference_labels)).unwrap();
    assert_eq!(fit.gradient_bytes, 0);
    let streamed = gs.explain(f.tests.view(), Some(Targets::Classes(&f.test_labels))).unwrap();
    let (worst, same) = compare(&f, SimFn::GradCos, &streamed.scores, &streamed.most_similar);
    assert!(worst < 1e-3 && same, "streamed: {worst} {same}");

    let spec = SimilaritySpec { sim_fn: SimFn::GradCos, precompute: true, ..Default::default() };
    let mut gs = GradientSimilarity::new(&f64_model, spec).unwrap();
    gs.fit(f.reference.view(), Targets::Classes(&f.reference_labels)).unwrap();
    let e = gs.explain(f.tests.view(), Some(Targets::Classes(&f.test_labels))).unwrap();
    let (worst, same) = compare(&f, SimFn::GradCos, &e.scores, &e.most_similar);
    assert!(worst < 1e-3 && same, "f64: {worst} {same}");

    // The cosine of an instance with itself is 1 (exactly |g|^2 / (|g|^2 + 1e-7) with alibi's
    // constant: these well-classified images have |g|^2 ~ 0.1); with the model's predictions
    // as targets (alibi's Y = None) on these correctly classified images, the same explanation.
    let spec = SimilaritySpec { sim_fn: SimFn::GradCos, precompute: true, ..Default::default() };
    let mut gs = GradientSimilarity::new(&model, spec).unwrap();
    gs.fit(f.tests.view(), Targets::Classes(&f.test_labels)).unwrap();
    let norms = nnlens_similarity::squared_norms(gs.reference_gradients().unwrap());
    let own = gs.explain(f.tests.view(), None).unwrap();
    assert_eq!(own.targets, f.test_labels, "the three test images are classified correctly");
    for (i, n2) in norms.iter().enumerate() {
        let cos = own.scores[i][i];
        let exact = n2 / (n2 + 1e-7);
        assert!((cos - exact).abs() < 1e-12 && (cos - 1.0).abs() < 1e-5, "cos(x, x) = {cos}");
        assert_eq!(own.most_similar[i][0], i);
    }
}
