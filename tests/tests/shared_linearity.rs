//! alibi's linearity fixture (../shared/golden/linearity/fashion_cnn_fixture.npz) reproduced
//! on the Fashion-MNIST CNN: its offsets, its feature range and its 10 instances, all 14 layers
//! from one pass over `fashion_cnn_layers.onnx` (needs `../shared`).
#![cfg(feature = "shared")]

use ndarray::{Array1, Array2, Array3, ArrayD, Ix1, Ix2, Ix3};
use nnlens_datasets::{PixelScale, Split};
use nnlens_linearity::{
    Aggregation, Execution, FeatureRange, Instances, LayerSpec, LinearitySpec, ModelType,
    OffsetSampler, flatten_rows, measure,
};
use nnlens_tests::*;

const LAYERS: [&str; 14] = [
    "conv_1", "relu_1", "maxp_1", "drop_1", "conv_2", "relu_2", "maxp_2", "drop_2", "flat",
    "dense_1", "relu_3", "drop_3", "dense_2", "softmax",
];

struct Fixture {
    indices: Vec<usize>,
    offsets: Array3<f64>,
    range: Array2<f32>,
    deltas: Array1<f32>,
    npz: ndarray_npy::NpzReader<std::fs::File>,
}

fn fixture() -> Fixture {
    let path = shared_dir().join("golden/linearity/fashion_cnn_fixture.npz");
    let mut npz = ndarray_npy::NpzReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let indices: Array1<i64> = npz.by_name("x_indices").unwrap();
    let offsets: Array3<i8> = npz.by_name("offsets").unwrap();
    let range: Array2<f32> = npz.by_name("feature_range").unwrap();
    let deltas: Array1<f32> = npz.by_name("deltas").unwrap();
    Fixture {
        indices: indices.iter().map(|&i| i as usize).collect(),
        offsets: offsets.mapv(f64::from),
        range,
        deltas,
        npz,
    }
}

fn expected(npz: &mut ndarray_npy::NpzReader<std::fs::File>, key: &str) -> Vec<f64> {
    let a: ArrayD<f64> = npz.by_name(key).unwrap();
    a.into_dimensionality::<Ix1>().unwrap().to_vec()
}

#[test]
fn the_fixture_is_reproduced_for_all_layers_in_one_pass() {
    let mut f = fixture();
    let data = shared_split("fashion-mnist", Split::Test, PixelScale::Unit);
    // The feature range of the whole t10k split, as the fixture's, and its grid steps.
    let all = flatten_rows(data.batch(0..data.len()).unwrap().view()).unwrap();
    let range = FeatureRange::infer(all.view()).unwrap();
    let fixture_range = f.range.clone().into_dimensionality::<Ix2>().unwrap();
    assert_eq!(range.min, fixture_range.column(0).to_vec());
    assert_eq!(range.max, fixture_range.column(1).to_vec());
    assert_eq!(range.deltas(100), f.deltas.to_vec(), "deltas are computed in f32 as alibi's");

    let model = load("tract", &shared_model("fashion_cnn_layers.onnx"));
    let images = data.subset(&f.indices).unwrap();
    let x = flatten_rows(images.batch(0..images.len()).unwrap().view()).unwrap();
    let offsets = f.offsets.clone().into_dimensionality::<Ix3>().unwrap();
    let sampler = OffsetSampler::new(offsets, &range, 100).unwrap();
    let layers: Vec<LayerSpec> = LAYERS
        .iter()
        .map(|&name| LayerSpec {
            name: name.into(),
            model_type: if name == "softmax" {
                ModelType::Classifier
            } else {
                ModelType::Regressor
            },
        })
        .collect();
    let instances =
        Instances { inputs: x.view(), data_shape: &[28, 28, 1], indices: &f.indices, labels: None };
    let run = |agg: Aggregation, layers: &[LayerSpec]| {
        let spec = LinearitySpec { agg, nb_samples: 20, ..LinearitySpec::default() };
        measure(
            model.as_ref(),
            &spec,
            instances,
            &sampler,
            layers,
            Execution { batch_size: 64 },
            &|_| {},
        )
        .unwrap()
    };
    let global = run(Aggregation::Global, &layers);
    let mut failures = Vec::new();
    for (l, name) in LAYERS.iter().enumerate() {
        let want = expected(&mut f.npz, &format!("expected_global_{name}"));
        for (i, (&got, &want)) in global.values[l].iter().zip(&want).enumerate() {
            let ok = if *name == "conv_1" {
                (got - want).abs() <= 1e-5
            } else {
                (got - want).abs() <= 1e-4 * want.abs()
            };
            if !ok {
                failures.push(format!("{name} instance {i}: {got} vs {want}"));
            }
        }
    }
    let pairwise = run(Aggregation::Pairwise, &layers[13..]);
    let want = expected(&mut f.npz, "expected_pairwise_softmax");
    for (i, (&got, &want)) in pairwise.values[0].iter().zip(&want).enumerate() {
        if (got - want).abs() > 1e-4 * want.abs() {
            failures.push(format!("pairwise softmax instance {i}: {got} vs {want}"));
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    // conv_1 is linear up to float rounding.
    assert!(global.values[0].iter().all(|&l| l < 1e-4));
}

#[test]
fn the_layers_of_the_plain_model_give_the_same_values() {
    let mut f = fixture();
    let data = shared_split("fashion-mnist", Split::Test, PixelScale::Unit);
    let all = flatten_rows(data.batch(0..data.len()).unwrap().view()).unwrap();
    let range = FeatureRange::infer(all.view()).unwrap();
    let model = load("tract", &shared_model("fashion_cnn.onnx"));
    let images = data.subset(&f.indices).unwrap();
    let x = flatten_rows(images.batch(0..images.len()).unwrap().view()).unwrap();
    let sampler = OffsetSampler::new(f.offsets.clone(), &range, 100).unwrap();
    // fashion_cnn.onnx has no dropout layers and channels-first maps: the norm is the same.
    let names = ["conv_1", "relu_2", "dense_1", "softmax"];
    let layers: Vec<LayerSpec> = names
        .iter()
        .map(|&name| LayerSpec {
            name: name.into(),
            model_type: if name == "softmax" {
                ModelType::Classifier
            } else {
                ModelType::Regressor
            },
        })
        .collect();
    let instances =
        Instances { inputs: x.view(), data_shape: &[28, 28, 1], indices: &f.indices, labels: None };
    let spec = LinearitySpec { nb_samples: 20, ..LinearitySpec::default() };
    let state =
        measure(model.as_ref(), &spec, instances, &sampler, &layers, Execution::default(), &|_| {})
            .unwrap();
    for (l, name) in names.iter().enumerate().skip(1) {
        let want = expected(&mut f.npz, &format!("expected_global_{name}"));
        for (&got, &want) in state.values[l].iter().zip(&want) {
            assert!((got - want).abs() <= 1e-4 * want.abs(), "{name}: {got} vs {want}");
        }
    }
    assert!(state.values[0].iter().all(|&l| l < 1e-4), "conv_1 {:?}", state.values[0]);
}
