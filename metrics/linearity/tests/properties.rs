//! The linearity measure against values computed here by an independent formula, and its
//! properties: an affine model has L = 0 for any sampling, results do not depend on the batch
//! size, shards merge to the whole, bad input is an error.

use ndarray::{Array2, Array3, ArrayViewD, Axis, IxDyn};
use nnlens_core::{
    Activations, BackendOptions, CoreError, InputStructure, LayerStructure, Model, ModelStructure,
};
use nnlens_linearity::{
    Aggregation, Execution, FeatureRange, GridSampler, InstanceId, Instances, KnnIndex, KnnSampler,
    LayerSpec, LinearitySpec, ModelType, OffsetSampler, Perturbations, measure,
};
use proptest::prelude::*;

fn layer(name: &str, shape: Vec<usize>) -> LayerStructure {
    LayerStructure {
        name: name.into(),
        tensor: name.into(),
        op: "Test".into(),
        shape,
        channel_axis: None,
    }
}

/// Vectors of 3 in; layers `affine` (2 x + 1 per value), `square` (x^2 per value) and `probs`
/// (softmax of x).
struct Toy {
    structure: ModelStructure,
}

impl Toy {
    fn new() -> Self {
        let input = InputStructure {
            name: "x".into(),
            shape: vec![3],
            channel_axis: None,
            dtype: "f32".into(),
        };
        let layers =
            vec![layer("affine", vec![3]), layer("square", vec![3]), layer("probs", vec![3])];
        Self { structure: ModelStructure::new(input, layers, 2).unwrap() }
    }
}

impl Model for Toy {
    fn backend(&self) -> &'static str {
        "test"
    }
    fn structure(&self) -> &ModelStructure {
        &self.structure
    }
    fn predict(
        &self,
        x: ArrayViewD<'_, f32>,
        layers: Option<&[&str]>,
    ) -> nnlens_core::Result<Activations> {
        let mut out = Activations::new();
        for &name in layers.unwrap_or(&["affine", "square", "probs"]) {
            let value = match name {
                "affine" => x.mapv(|v| 2.0 * v + 1.0),
                "square" => x.mapv(|v| v * v),
                "probs" => {
                    let mut p = x.to_owned();
                    for mut row in p.axis_iter_mut(Axis(0)) {
                        let m = row.iter().fold(f32::MIN, |a, &b| a.max(b));
                        row.mapv_inplace(|v| (v - m).exp());
                        let s = row.sum();
                        row.mapv_inplace(|v| v / s);
                    }
                    p
                }
                other => {
                    return Err(CoreError::UnknownLayer {
                        name: other.into(),
                        known: "affine, square, probs".into(),
                    });
                }
            };
            out.push(name, value);
        }
        Ok(out)
    }
}

fn spec(agg: Aggregation, nb_samples: usize) -> LinearitySpec {
    LinearitySpec { agg, nb_samples, ..LinearitySpec::default() }
}

fn layers(names: &[(&str, ModelType)]) -> Vec<LayerSpec> {
    names.iter().map(|(n, t)| LayerSpec { name: n.to_string(), model_type: *t }).collect()
}

fn run(
    model: &dyn Model,
    spec: &LinearitySpec,
    x: &Array2<f32>,
    sampler: &dyn Perturbations,
    layers: &[LayerSpec],
    batch_size: usize,
) -> nnlens_linearity::Result<nnlens_linearity::LinearityState> {
    let indices: Vec<usize> = (0..x.nrows()).collect();
    let labels: Vec<usize> = (0..x.nrows()).map(|i| i % 2).collect();
    let instances =
        Instances { inputs: x.view(), data_shape: &[3], indices: &indices, labels: Some(&labels) };
    measure(model, spec, instances, sampler, layers, Execution { batch_size }, &|_| {})
}

/// The samples a sampler gives, as the model sees them (cast to f32) and in f64.
fn samples_of(sampler: &dyn Perturbations, x: &Array2<f32>) -> Array3<f64> {
    let mut out = Array3::zeros((x.nrows(), sampler.nb_samples(), x.ncols()));
    for i in 0..x.nrows() {
        let id = InstanceId { position: i, index: i };
        sampler.fill(id, x.row(i), out.index_axis_mut(Axis(0), i)).unwrap();
    }
    out
}

fn instances() -> Array2<f32> {
    ndarray::array![[0.5f32, -1.0, 2.0], [0.0, 0.25, -0.75], [1.5, 1.0, 0.5]]
}

fn range() -> FeatureRange {
    FeatureRange::new(vec![-1.0, -1.0, -1.0], vec![2.0, 1.0, 3.0]).unwrap()
}

#[test]
fn square_and_softmax_by_an_independent_formula() {
    let x = instances();
    let offsets =
        Array3::from_shape_fn((3, 4, 3), |(i, s, f)| ((i + 2 * s + 3 * f) % 7) as f64 - 3.0);
    let sampler = OffsetSampler::new(offsets, &range(), 10).unwrap();
    let v = samples_of(&sampler, &x);
    let softmax = |z: &[f64]| -> Vec<f64> {
        let z: Vec<f64> = z.iter().map(|&v| f64::from(v as f32)).collect();
        let m = z.iter().fold(f64::MIN, |a, &b| a.max(b));
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    };
    let sq = |z: f64| f64::from(z as f32).powi(2);
    let ls = layers(&[("square", ModelType::Regressor), ("probs", ModelType::Classifier)]);
    let global = run(&Toy::new(), &spec(Aggregation::Global, 4), &x, &sampler, &ls, 5).unwrap();
    let pairwise = run(&Toy::new(), &spec(Aggregation::Pairwise, 4), &x, &sampler, &ls, 5).unwrap();
    for i in 0..3 {
        // Global: || M(mean v) - mean M(v) ||.
        let mean_v: Vec<f64> = (0..3).map(|f| (0..4).map(|s| 0.25 * v[[i, s, f]]).sum()).collect();
        let l_sq = (0..3)
            .map(|f| (sq(mean_v[f]) - (0..4).map(|s| 0.25 * sq(v[[i, s, f]])).sum::<f64>()).powi(2))
            .sum::<f64>()
            .sqrt();
        let p_mean = softmax(&mean_v);
        let p_s: Vec<Vec<f64>> =
            (0..4).map(|s| softmax(&[v[[i, s, 0]], v[[i, s, 1]], v[[i, s, 2]]])).collect();
        let g = |p: f64| (p + 1e-10).ln();
        let l_p = (0..3)
            .map(|f| (g(p_mean[f]) - (0..4).map(|s| 0.25 * g(p_s[s][f])).sum::<f64>()).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            (global.values[0][i] - l_sq).abs() <= 1e-5 * l_sq,
            "{} vs {l_sq}",
            global.values[0][i]
        );
        assert!(
            (global.values[1][i] - l_p).abs() <= 1e-5 * l_p + 1e-6,
            "{} vs {l_p}",
            global.values[1][i]
        );
        // Pairwise: mean_s || M((x + v_s)/2) - (M(x) + M(v_s))/2 ||.
        let xi: Vec<f64> = x.row(i).iter().map(|&a| f64::from(a)).collect();
        let l_pair = (0..4)
            .map(|s| {
                (0..3)
                    .map(|f| {
                        let mid = 0.5 * xi[f] + 0.5 * v[[i, s, f]];
                        (sq(mid) - (0.5 * sq(xi[f]) + 0.5 * sq(v[[i, s, f]]))).powi(2)
                    })
                    .sum::<f64>()
                    .sqrt()
            })
            .sum::<f64>()
            / 4.0;
        assert!(
            (pairwise.values[0][i] - l_pair).abs() <= 1e-5 * l_pair,
            "{} vs {l_pair}",
            pairwise.values[0][i]
        );
    }
    assert!(global.values[0].iter().all(|&l| l > 0.01), "the square is not linear");
}

/// `Gemm` ONNX model `y = x W + b` (3 -> 2), built here and run by tract.
fn gemm_model(w: &[f32], b: &[f32]) -> Box<dyn Model> {
    use prost::Message;
    use tract_onnx::pb;
    let dims = |d: &[Option<i64>]| {
        use pb::tensor_shape_proto::{Dimension, dimension::Value};
        d.iter()
            .map(|d| Dimension {
                value: Some(match d {
                    Some(v) => Value::DimValue(*v),
                    None => Value::DimParam("N".into()),
                }),
                ..Default::default()
            })
            .collect()
    };
    let info = |name: &str, d: &[Option<i64>]| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto { dim: dims(d) }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let tensor = |name: &str, d: &[i64], v: &[f32]| pb::TensorProto {
        name: name.into(),
        dims: d.to_vec(),
        data_type: 1,
        float_data: v.to_vec(),
        ..Default::default()
    };
    let graph = pb::GraphProto {
        name: "gemm".into(),
        node: vec![pb::NodeProto {
            op_type: "Gemm".into(),
            name: "dense".into(),
            input: vec!["x".into(), "w".into(), "b".into()],
            output: vec!["y".into()],
            ..Default::default()
        }],
        initializer: vec![tensor("w", &[3, 2], w), tensor("b", &[2], b)],
        input: vec![info("x", &[None, Some(3)])],
        output: vec![info("y", &[None, Some(2)])],
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(graph),
        ..Default::default()
    };
    Box::new(
        nnlens_tract::TractModel::from_bytes(
            &model.encode_to_vec(),
            "gemm.onnx",
            &BackendOptions::default(),
        )
        .unwrap(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// An affine model (ONNX Gemm) is linear: L = 0 up to f32 rounding, for the grid and kNN
    /// samplers and both aggregations.
    #[test]
    fn an_affine_model_has_zero_linearity(
        w in proptest::collection::vec(-2.0f32..2.0, 6),
        b in proptest::collection::vec(-1.0f32..1.0, 2),
        x in proptest::collection::vec(-1.0f32..1.0, 12),
        seed in any::<u64>(),
        epsilon in 0.01f64..0.3,
        nb_samples in 1usize..12,
        pairwise in any::<bool>(),
        knn in any::<bool>(),
    ) {
        let model = gemm_model(&w, &b);
        let x = Array2::from_shape_vec((4, 3), x).unwrap();
        let range = FeatureRange::new(vec![-1.0; 3], vec![1.0; 3]).unwrap();
        let sampler: Box<dyn Perturbations> = if knn {
            let reference = Array2::from_shape_fn((20, 3), |(i, f)| ((i * 7 + f * 3) % 11) as f32 / 5.0 - 1.0);
            Box::new(KnnSampler::new(KnnIndex::new(reference).unwrap(), nb_samples).unwrap())
        } else {
            Box::new(GridSampler::new(&range, epsilon, 100, nb_samples, seed).unwrap())
        };
        let agg = if pairwise { Aggregation::Pairwise } else { Aggregation::Global };
        let name = model.structure().output_layer().name.clone();
        let state = run(model.as_ref(), &spec(agg, nb_samples), &x, sampler.as_ref(),
            &layers(&[(name.as_str(), ModelType::Regressor)]), 16).unwrap();
        for &l in &state.values[0] {
            prop_assert!(l < 1e-5, "L = {l}");
        }
    }

    /// Results do not depend on how instances are batched, and two shards merge to the whole.
    #[test]
    fn batching_and_sharding_do_not_change_results(seed in any::<u64>(), batch in 1usize..40) {
        let x = instances();
        let sampler = GridSampler::new(&range(), 0.1, 50, 5, seed).unwrap();
        let ls = layers(&[("square", ModelType::Regressor), ("probs", ModelType::Classifier)]);
        let s = spec(Aggregation::Global, 5);
        let whole = run(&Toy::new(), &s, &x, &sampler, &ls, 256).unwrap();
        let other = run(&Toy::new(), &s, &x, &sampler, &ls, batch).unwrap();
        prop_assert_eq!(&whole, &other);
        // Shards: instances 0..1 and 1..3 (rows keep their dataset indices).
        let shard = |lo: usize, hi: usize| {
            let xs = x.slice(ndarray::s![lo..hi, ..]).to_owned();
            let indices: Vec<usize> = (lo..hi).collect();
            let labels: Vec<usize> = (lo..hi).map(|i| i % 2).collect();
            let inst = Instances { inputs: xs.view(), data_shape: &[3], indices: &indices, labels: Some(&labels) };
            measure(&Toy::new(), &s, inst, &sampler, &ls, Execution::default(), &|_| {}).unwrap()
        };
        let mut merged = shard(0, 1);
        merged.merge(shard(1, 3)).unwrap();
        prop_assert_eq!(merged, whole);
    }
}

#[test]
fn affine_layers_of_a_closure_model_are_linear_and_the_spec_chooses_types() {
    let x = instances();
    let sampler = GridSampler::new(&range(), 0.04, 100, 10, 3).unwrap();
    let ls = layers(&[("affine", ModelType::Regressor)]);
    let state = run(&Toy::new(), &spec(Aggregation::Global, 10), &x, &sampler, &ls, 7).unwrap();
    assert!(state.values[0].iter().all(|&l| l < 1e-5), "{:?}", state.values);
    let mut s = LinearitySpec::default();
    assert_eq!(s.model_type_of("probs", true), ModelType::Classifier);
    assert_eq!(s.model_type_of("dense", false), ModelType::Regressor);
    s.model_types.insert("probs".into(), ModelType::Regressor);
    assert_eq!(s.model_type_of("probs", true), ModelType::Regressor);
    assert!(nnlens_linearity::is_probability_vector(ndarray::array![[0.25f32, 0.75]].view()));
    assert!(!nnlens_linearity::is_probability_vector(ndarray::array![[0.5f32, 0.75]].view()));
}

#[test]
fn bad_input_is_an_error_naming_the_thing() {
    let x = instances();
    let sampler = GridSampler::new(&range(), 0.04, 100, 3, 0).unwrap();
    let model = Toy::new();
    let s = spec(Aggregation::Global, 3);
    // A classifier layer that is not a probability vector: log of negative values.
    let e = run(&model, &s, &x, &sampler, &layers(&[("affine", ModelType::Classifier)]), 8)
        .unwrap_err()
        .to_string();
    assert!(e.contains("affine") && e.contains("regressor"), "{e}");
    let e = run(&model, &s, &x, &sampler, &layers(&[("nope", ModelType::Regressor)]), 8)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
    let e = run(&model, &s, &x, &sampler, &[], 8).unwrap_err().to_string();
    assert!(e.contains("no layers"), "{e}");
    let wide = Array2::<f32>::zeros((2, 4));
    let e = run(&model, &s, &wide, &sampler, &layers(&[("affine", ModelType::Regressor)]), 8)
        .unwrap_err()
        .to_string();
    assert!(e.contains("4 features"), "{e}");
    let empty = Array2::<f32>::zeros((0, 3));
    assert!(
        run(&model, &s, &empty, &sampler, &layers(&[("affine", ModelType::Regressor)]), 8).is_err()
    );
    assert!(LinearitySpec::from_json(&serde_json::json!({"nb_samples": 0})).is_err());
    assert!(LinearitySpec::from_json(&serde_json::json!({"bogus": 1})).is_err());
    let e = LinearitySpec::from_json(&serde_json::json!({"nb_samples": 3, "alphas": [0.5, 0.5]}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs 3"), "{e}");
    let p = LinearitySpec::from_json(
        &serde_json::json!({"agg": "pairwise", "model_type": "regressor"}),
    )
    .unwrap();
    assert_eq!((p.agg, p.alphas_for(10).unwrap()), (Aggregation::Pairwise, vec![0.5, 0.5]));
    let _ = IxDyn(&[1]);
}
