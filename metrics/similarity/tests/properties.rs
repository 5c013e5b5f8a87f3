//! Gradient similarity against scores computed here by the formulas, and its properties: the
//! cosine of an instance with itself is 1, `grad_dot` is symmetric, precompute on and off give
//! the same scores, the order is stable under ties, shards merge, bad input is an error. A toy
//! model gives known gradients; a small candle CNN gives real ones.

use ndarray::{Array2, ArrayD, ArrayViewD, Axis, IxDyn};
use nnlens_core::{
    GradModel, InputStructure, LayerStructure, Loss, ModelStructure, Parameter, Targets,
};
use nnlens_similarity::{GradientSimilarity, Scores, SimFn, SimilaritySpec, similarity};
use proptest::prelude::*;

/// Vectors of 3 in; 3 class scores out (the input itself); gradient of example `x` with label
/// `y`: `(x * (y + 1), x0 x1 - y)` over parameters `w` [3] and `b` [1]. For real targets `t`:
/// `(x * t0, t0)`.
struct Toy {
    structure: ModelStructure,
    parameters: Vec<Parameter>,
}

impl Toy {
    fn new() -> Self {
        let input = InputStructure {
            name: "x".into(),
            shape: vec![3],
            channel_axis: None,
            dtype: "f32".into(),
        };
        let out = LayerStructure {
            name: "out".into(),
            tensor: "out".into(),
            op: "Id".into(),
            shape: vec![3],
            channel_axis: None,
        };
        Self {
            structure: ModelStructure::new(input, vec![out], 0).unwrap(),
            parameters: vec![
                Parameter { name: "w".into(), shape: vec![3] },
                Parameter { name: "b".into(), shape: vec![1] },
            ],
        }
    }

    fn gradient(x: &[f32], class: Option<usize>, target: Option<f32>) -> Vec<f32> {
        match (class, target) {
            (Some(y), _) => {
                let s = (y + 1) as f32;
                vec![x[0] * s, x[1] * s, x[2] * s, x[0] * x[1] - y as f32]
            }
            (None, Some(t)) => vec![x[0] * t, x[1] * t, x[2] * t, t],
            _ => unreachable!(),
        }
    }
}

impl GradModel for Toy {
    fn backend(&self) -> &'static str {
        "toy"
    }
    fn structure(&self) -> &ModelStructure {
        &self.structure
    }
    fn parameters(&self) -> &[Parameter] {
        &self.parameters
    }
    fn output(&self, x: ArrayViewD<'_, f32>) -> nnlens_core::Result<ArrayD<f32>> {
        Ok(x.to_owned())
    }
    fn per_example_gradients(
        &self,
        x: ArrayViewD<'_, f32>,
        targets: Targets<'_>,
        _loss: Loss,
    ) -> nnlens_core::Result<Array2<f32>> {
        let rows: Vec<Vec<f32>> = x
            .outer_iter()
            .enumerate()
            .map(|(i, r)| {
                let r: Vec<f32> = r.iter().copied().collect();
                match targets {
                    Targets::Classes(c) => {
                        if c[i] >= 3 {
                            return Err(nnlens_core::CoreError::Label {
                                label: c[i],
                                row: i,
                                classes: 3,
                            });
                        }
                        Ok(Toy::gradient(&r, Some(c[i]), None))
                    }
                    Targets::Values(v) => Ok(Toy::gradient(&r, None, Some(v[[i, 0]]))),
                }
            })
            .collect::<nnlens_core::Result<_>>()?;
        Ok(Array2::from_shape_vec((rows.len(), 4), rows.concat()).unwrap())
    }
}

fn spec(sim_fn: SimFn, precompute: bool) -> SimilaritySpec {
    SimilaritySpec { sim_fn, precompute, top_k: 2, batch_size: 2, ..Default::default() }
}

fn batch(rows: &[[f32; 3]]) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(&[rows.len(), 3]), rows.iter().flatten().copied().collect())
        .unwrap()
}

#[test]
fn scores_equal_the_formulas_by_hand() {
    let model = Toy::new();
    let refs = batch(&[[1.0, 0.0, 2.0], [0.0, 3.0, 1.0], [2.0, 2.0, 0.0]]);
    let labels = [0usize, 1, 2];
    let test = batch(&[[1.0, 1.0, 1.0]]);
    // Gradients: refs (1,0,2,0), (0,6,2,-1), (6,6,0,2); test with label 2: (3,3,3,-1).
    let r = [[1.0, 0.0, 2.0, 0.0], [0.0, 6.0, 2.0, -1.0], [6.0, 6.0, 0.0, 2.0]];
    let t = [3.0, 3.0, 3.0, -1.0];
    let dots: Vec<f64> = r.iter().map(|g| g.iter().zip(&t).map(|(a, b)| a * b).sum()).collect();
    assert_eq!(dots, [9.0, 25.0, 34.0]);
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>();
    for sim_fn in SimFn::ALL {
        let mut gs = GradientSimilarity::new(&model, spec(sim_fn, true)).unwrap();
        gs.fit(refs.view(), Targets::Classes(&labels)).unwrap();
        let e = gs.explain(test.view(), Some(Targets::Classes(&[2]))).unwrap();
        for j in 0..3 {
            let expected = match sim_fn {
                SimFn::GradDot => dots[j],
                SimFn::GradCos => dots[j] / (norm(&t).sqrt() * norm(&r[j]).sqrt() + 1e-7),
                SimFn::GradAsymDot => dots[j] / (norm(&r[j]) + 1e-7),
            };
            assert!((e.scores[0][j] - expected).abs() < 1e-12, "{sim_fn} {j}");
        }
        assert_eq!(e.targets, [2]);
    }
    // grad_dot: 34 > 25 > 9.
    let mut gs = GradientSimilarity::new(&model, spec(SimFn::GradDot, false)).unwrap();
    gs.fit(refs.view(), Targets::Classes(&labels)).unwrap();
    let e = gs.explain(test.view(), Some(Targets::Classes(&[2]))).unwrap();
    assert_eq!(e.ordered_indices, [[2, 1, 0]]);
    assert_eq!(e.most_similar, [[2, 1]]);
    assert_eq!(e.least_similar, [[0, 1]]);
    assert_eq!(e.sorted_scores(0), [34.0, 25.0, 9.0]);
}

#[test]
fn predicted_classes_are_used_without_targets() {
    let model = Toy::new();
    let mut gs = GradientSimilarity::new(&model, spec(SimFn::GradCos, true)).unwrap();
    let refs = batch(&[[1.0, 0.0, 2.0], [0.0, 3.0, 1.0]]);
    gs.fit(refs.view(), Targets::Classes(&[0, 1])).unwrap();
    let test = batch(&[[0.1, 0.9, 0.3], [2.0, 1.0, 0.0]]);
    let e = gs.explain(test.view(), None).unwrap();
    assert_eq!(e.targets, [1, 0]);
    let given = gs.explain(test.view(), Some(Targets::Classes(&[1, 0]))).unwrap();
    assert_eq!(e.scores, given.scores);
}

#[test]
fn regression_targets_and_errors() {
    let model = Toy::new();
    let refs = batch(&[[1.0, 0.0, 2.0], [0.0, 3.0, 1.0]]);
    let values = Array2::from_shape_vec((2, 1), vec![0.5f32, -1.0]).unwrap();
    let mse = SimilaritySpec { loss: Loss::MeanSquaredError, ..spec(SimFn::GradDot, false) };
    let mut gs = GradientSimilarity::new(&model, mse.clone()).unwrap();
    assert!(matches!(
        gs.explain(refs.view(), None),
        Err(nnlens_similarity::SimilarityError::NotFitted)
    ));
    let e = gs.fit(refs.view(), Targets::Classes(&[0, 1])).unwrap_err();
    assert!(e.to_string().contains("real-valued"), "{e}");
    gs.fit(refs.view(), Targets::Values(values.view())).unwrap();
    let e = gs.explain(refs.view(), None).unwrap_err();
    assert!(e.to_string().contains("needs the instances' targets"), "{e}");
    let out = gs.explain(refs.view(), Some(Targets::Values(values.view()))).unwrap();
    assert!(out.targets.is_empty());
    // Gradients (0.5, 0, 1, 0.5) and (0, -3, -1, -1): dot -1.5.
    assert!((out.scores[0][1] - -1.5).abs() < 1e-12);

    let mut gs = GradientSimilarity::new(&model, spec(SimFn::GradDot, true)).unwrap();
    let e = gs.fit(refs.view(), Targets::Classes(&[0])).unwrap_err();
    assert!(e.to_string().contains("1 reference targets for 2"), "{e}");
    let e = gs.fit(refs.view(), Targets::Classes(&[0, 7])).unwrap_err();
    assert!(e.to_string().contains("label 7"), "{e}");
    let wrong = ArrayD::<f32>::zeros(IxDyn(&[2, 4]));
    assert!(
        gs.fit(wrong.view(), Targets::Classes(&[0, 1])).unwrap_err().to_string().contains("shape")
    );
    let empty = ArrayD::<f32>::zeros(IxDyn(&[0, 3]));
    assert!(gs.fit(empty.view(), Targets::Classes(&[])).unwrap_err().to_string().contains("empty"));
    gs.fit(refs.view(), Targets::Classes(&[0, 1])).unwrap();
    assert_eq!(gs.gradient_bytes(), 2 * 4 * 4);
    assert!(
        GradientSimilarity::new(&model, SimilaritySpec { top_k: 0, ..Default::default() }).is_err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn cosine_with_itself_is_one(rows in proptest::collection::vec(proptest::array::uniform3(-3.0f32..3.0), 1..6), label in 0usize..3) {
        let model = Toy::new();
        let x = batch(&rows);
        let labels = vec![label; rows.len()];
        let mut gs = GradientSimilarity::new(&model, spec(SimFn::GradCos, true)).unwrap();
        gs.fit(x.view(), Targets::Classes(&labels)).unwrap();
        let e = gs.explain(x.view(), Some(Targets::Classes(&labels))).unwrap();
        for (i, row) in e.scores.iter().enumerate() {
            let g = Toy::gradient(&rows[i], Some(label), None);
            let n2: f64 = g.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            // Exactly |g|^2 / (|g|^2 + 1e-7) (alibi's constant), so 1 up to 1e-7 / |g|^2.
            prop_assert!((row[i] - n2 / (n2 + 1e-7)).abs() < 1e-12, "{} {n2}", row[i]);
            if n2 > 1.0 {
                prop_assert!((row[i] - 1.0).abs() < 1e-6, "{}", row[i]);
            }
            for &s in row {
                prop_assert!((-1.0 - 1e-9..=1.0 + 1e-9).contains(&s));
            }
        }
    }

    #[test]
    fn grad_dot_is_symmetric(a in proptest::collection::vec(-2.0f32..2.0, 2 * 37), b in proptest::collection::vec(-2.0f32..2.0, 3 * 37)) {
        let a = Array2::from_shape_vec((2, 37), a).unwrap();
        let b = Array2::from_shape_vec((3, 37), b).unwrap();
        let ab = similarity(SimFn::GradDot, a.view(), b.view()).unwrap();
        let ba = similarity(SimFn::GradDot, b.view(), a.view()).unwrap();
        prop_assert_eq!(ab, ba.t().to_owned());
        // grad_cos too; grad_asym_dot is not symmetric in general.
        let ab = similarity(SimFn::GradCos, a.view(), b.view()).unwrap();
        let ba = similarity(SimFn::GradCos, b.view(), a.view()).unwrap();
        prop_assert_eq!(ab, ba.t().to_owned());
    }

    #[test]
    fn precompute_on_and_off_give_the_same_scores(
        rows in proptest::collection::vec(proptest::array::uniform3(-3.0f32..3.0), 1..9),
        labels in proptest::collection::vec(0usize..3, 9),
        batch_size in 1usize..5,
        sim in 0usize..3,
    ) {
        let model = Toy::new();
        let x = batch(&rows);
        let labels = &labels[..rows.len()];
        let test = batch(&[[0.3, -1.0, 2.0], [1.0, 1.0, 1.0]]);
        let mut results = Vec::new();
        for precompute in [true, false] {
            let s = SimilaritySpec { batch_size, ..spec(SimFn::ALL[sim], precompute) };
            let mut gs = GradientSimilarity::new(&model, s).unwrap();
            gs.fit(x.view(), Targets::Classes(labels)).unwrap();
            results.push(gs.explain(test.view(), None).unwrap());
        }
        prop_assert_eq!(&results[0], &results[1]);
    }

    #[test]
    fn ties_keep_the_reference_order(n in 1usize..7, copies in 2usize..4) {
        // `copies` identical reference examples per distinct one: their scores tie exactly.
        let model = Toy::new();
        let distinct: Vec<[f32; 3]> = (0..n).map(|i| [i as f32, 1.0, -(i as f32) / 2.0]).collect();
        let rows: Vec<[f32; 3]> = (0..copies).flat_map(|_| distinct.clone()).collect();
        let x = batch(&rows);
        let labels = vec![1usize; rows.len()];
        let mut gs = GradientSimilarity::new(&model, spec(SimFn::GradDot, true)).unwrap();
        gs.fit(x.view(), Targets::Classes(&labels)).unwrap();
        let e = gs.explain(batch(&[[1.0, 2.0, 3.0]]).view(), Some(Targets::Classes(&[0]))).unwrap();
        let order = &e.ordered_indices[0];
        let s = &e.scores[0];
        for w in order.windows(2) {
            prop_assert!(s[w[0]] > s[w[1]] || (s[w[0]] == s[w[1]] && w[0] < w[1]));
        }
    }

    #[test]
    fn scores_of_shards_append_to_the_whole(
        rows in proptest::collection::vec(proptest::array::uniform3(-3.0f32..3.0), 2..9),
        cut in 1usize..8,
    ) {
        let model = Toy::new();
        let cut = cut.min(rows.len() - 1);
        let labels = vec![2usize; rows.len()];
        let test = batch(&[[0.5, -0.5, 1.0]]);
        let scores_of = |part: &[[f32; 3]], labels: &[usize]| {
            let mut gs = GradientSimilarity::new(&model, spec(SimFn::GradAsymDot, true)).unwrap();
            gs.fit(batch(part).view(), Targets::Classes(labels)).unwrap();
            gs.scores(test.view(), None).unwrap().0
        };
        let whole: Scores = scores_of(&rows, &labels);
        let mut left = scores_of(&rows[..cut], &labels[..cut]);
        left.append(&scores_of(&rows[cut..], &labels[cut..])).unwrap();
        prop_assert_eq!(left, whole);
    }
}

mod cnn {
    //! A small candle CNN built in code: real per-example gradients.
    use super::*;
    use nnlens_candle::{CandleModel, CandleOptions};
    use nnlens_onnx::proto::{
        AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto, elem,
    };
    use prost::Message;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
            })
            .collect()
    }

    /// x [N, 6, 6, 1] > Reshape NCHW > Conv(4, 3x3, pads 1) > Relu > MaxPool 2x2 > Flatten >
    /// MatMul + Add (36 -> 3) > Softmax.
    pub fn model() -> CandleModel {
        let graph = GraphProto {
            name: "cnn".into(),
            node: vec![
                NodeProto::new("Reshape", "r", &["x", "nchw"], &["xr"], vec![]),
                NodeProto::new(
                    "Conv",
                    "c",
                    &["xr", "cw", "cb"],
                    &["conv"],
                    vec![AttributeProto::ints("pads", &[1, 1, 1, 1])],
                ),
                NodeProto::new("Relu", "relu", &["conv"], &["relu"], vec![]),
                NodeProto::new(
                    "MaxPool",
                    "p",
                    &["relu"],
                    &["pool"],
                    vec![
                        AttributeProto::ints("kernel_shape", &[2, 2]),
                        AttributeProto::ints("strides", &[2, 2]),
                    ],
                ),
                NodeProto::new("Flatten", "f", &["pool"], &["flat"], vec![]),
                NodeProto::new("MatMul", "m", &["flat", "dw"], &["mm"], vec![]),
                NodeProto::new("Add", "a", &["mm", "db"], &["logits"], vec![]),
                NodeProto::new("Softmax", "s", &["logits"], &["probs"], vec![]),
            ],
            initializer: vec![
                TensorProto::from_i64("nchw", &[4], vec![-1, 1, 6, 6]),
                TensorProto::from_f32(
                    "cw",
                    &[4, 1, 3, 3],
                    values(36, 1).iter().map(|v| v * 2.0).collect(),
                ),
                TensorProto::from_f32("cb", &[4], values(4, 2)),
                TensorProto::from_f32("dw", &[36, 3], values(108, 3)),
                TensorProto::from_f32("db", &[3], values(3, 4)),
            ],
            input: vec![ValueInfoProto::tensor(
                "x",
                elem::FLOAT,
                &[None, Some(6), Some(6), Some(1)],
            )],
            output: vec![ValueInfoProto::tensor("probs", elem::FLOAT, &[None, Some(3)])],
            ..Default::default()
        };
        let bytes = ModelProto::new(graph, 13).encode_to_vec();
        CandleModel::from_bytes(&bytes, "cnn.onnx", &CandleOptions::default()).unwrap()
    }

    pub fn images(n: usize, seed: u64) -> ArrayD<f32> {
        let v: Vec<f32> = values(n * 36, seed).iter().map(|v| v + 0.5).collect();
        ArrayD::from_shape_vec(IxDyn(&[n, 6, 6, 1]), v).unwrap()
    }

    #[test]
    fn real_gradients_score_as_the_formulas_and_an_instance_is_most_like_itself() {
        let m = model();
        let refs = images(12, 7);
        let labels: Vec<usize> = (0..12).map(|i| i % 3).collect();
        let tests = refs.slice_axis(Axis(0), (3..6).into()).to_owned();
        let grads = m
            .per_example_gradients(
                refs.view(),
                Targets::Classes(&labels),
                Loss::CrossEntropyFromProbabilities,
            )
            .unwrap();
        for sim_fn in SimFn::ALL {
            for precompute in [true, false] {
                let mut gs = GradientSimilarity::new(
                    &m,
                    SimilaritySpec { sim_fn, precompute, batch_size: 5, ..Default::default() },
                )
                .unwrap();
                let report = gs.fit(refs.view(), Targets::Classes(&labels)).unwrap();
                assert_eq!(
                    report.gradient_bytes,
                    if precompute { 12 * m.parameter_count() * 4 } else { 0 }
                );
                let e = gs.explain(tests.view(), Some(Targets::Classes(&labels[3..6]))).unwrap();
                let expected =
                    similarity(sim_fn, grads.slice_axis(Axis(0), (3..6).into()), grads.view())
                        .unwrap();
                for i in 0..3 {
                    for j in 0..12 {
                        assert!(
                            (e.scores[i][j] - expected[[i, j]]).abs()
                                <= 1e-9 * expected[[i, j]].abs().max(1.0)
                        );
                    }
                    if sim_fn == SimFn::GradCos {
                        let n2: f64 = grads.row(3 + i).iter().map(|&v| f64::from(v).powi(2)).sum();
                        let cos = e.scores[i][3 + i];
                        assert!((cos - n2 / (n2 + 1e-7)).abs() < 1e-9, "cos with itself {cos}");
                        assert!((cos - 1.0).abs() < 1e-5, "cos with itself {cos} (|g|^2 {n2})");
                        assert_eq!(e.most_similar[i][0], 3 + i, "an instance is most like itself");
                    }
                }
            }
        }
    }
}

#[test]
fn gradients_too_large_to_store_name_the_ways_out() {
    // A model of 2^61 parameters: storing one gradient per reference cannot be allocated.
    let mut model = Toy::new();
    model.parameters = vec![Parameter { name: "huge".into(), shape: vec![1 << 61] }];
    let mut gs = GradientSimilarity::new(&model, spec(SimFn::GradCos, true)).unwrap();
    let x = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let e = gs.fit(x.view(), Targets::Classes(&[0, 1])).unwrap_err().to_string();
    assert!(e.contains("--no-precompute") && e.contains("--parameters"), "{e}");
}
