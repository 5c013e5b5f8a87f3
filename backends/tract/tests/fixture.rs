//! The tract backend on an ONNX model built here, in code, and checked against a forward pass
//! written out by hand (f64 loops): no file from outside the repository is needed.
//!
//! The model: f64 input `x` [N, 1, 4, 4] (channels first) > Cast(f32) > Conv(2 filters 3x3,
//! pads 1) > Relu > MaxPool 2x2 > Flatten > Gemm(8 -> 3) > Softmax, with tf2onnx-style scoped
//! tensor names, and an `Identity` alias of the relu appended at the end of the graph.

use ndarray::{Array4, ArrayD, IxDyn};
use nnlens_core::{BackendOptions, CoreError, Model};
use nnlens_tract::TractModel;
use prost::Message;
use tract_onnx::pb;

fn weights(n: usize, k: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * 7 + k) % 11) as f32 - 5.0) / 10.0).collect()
}

fn tensor(name: &str, dims: &[i64], values: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: 1,
        float_data: values,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 7, ints: v.to_vec(), ..Default::default() }
}

fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: 2, i: v, ..Default::default() }
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: output.trim_end_matches(":0").into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

fn value_info(name: &str, elem_type: i32, dims: &[Option<i64>]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Some(v) => Value::DimValue(*v),
                None => Value::DimParam("N".into()),
            }),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

const CONV_W: usize = 2 * 9;

fn fixture_bytes() -> Vec<u8> {
    let graph = pb::GraphProto {
        name: "fixture".into(),
        node: vec![
            node("Cast", &["x"], "xf", vec![int("to", 1)]),
            node(
                "Conv",
                &["xf", "conv_w", "conv_b"],
                "net/conv/Conv:0",
                vec![ints("pads", &[1, 1, 1, 1]), ints("kernel_shape", &[3, 3])],
            ),
            node("Relu", &["net/conv/Conv:0"], "net/relu/Relu:0", vec![]),
            node(
                "MaxPool",
                &["net/relu/Relu:0"],
                "net/pool/MaxPool:0",
                vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
            ),
            node("Flatten", &["net/pool/MaxPool:0"], "net/flat/Flatten:0", vec![int("axis", 1)]),
            node("Gemm", &["net/flat/Flatten:0", "dense_w", "dense_b"], "net/dense/Gemm:0", vec![]),
            node("Softmax", &["net/dense/Gemm:0"], "probs", vec![int("axis", 1)]),
            node("Identity", &["net/relu/Relu:0"], "relu_alias", vec![]),
        ],
        initializer: vec![
            tensor("conv_w", &[2, 1, 3, 3], weights(CONV_W, 1)),
            tensor("conv_b", &[2], vec![0.1, -0.2]),
            tensor("dense_w", &[8, 3], weights(24, 3)),
            tensor("dense_b", &[3], vec![0.05, 0.0, -0.05]),
        ],
        input: vec![value_info("x", 11, &[None, Some(1), Some(4), Some(4)])],
        output: vec![
            value_info("probs", 1, &[None, Some(3)]),
            value_info("relu_alias", 1, &[None, Some(2), Some(4), Some(4)]),
        ],
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
}

fn load() -> TractModel {
    TractModel::from_bytes(&fixture_bytes(), "fixture.onnx", &BackendOptions::default()).unwrap()
}

/// The forward pass by hand, in f64: (conv, relu, pool, dense logits, softmax) for one image.
fn by_hand(img: &[f64; 16]) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let w: Vec<f64> = weights(CONV_W, 1).iter().map(|&v| v as f64).collect();
    let b = [0.1f32 as f64, -0.2f32 as f64];
    let mut conv = vec![0.0; 2 * 16];
    for f in 0..2 {
        for y in 0..4i64 {
            for x in 0..4i64 {
                let mut s = b[f];
                for ky in 0..3i64 {
                    for kx in 0..3i64 {
                        let (iy, ix) = (y + ky - 1, x + kx - 1);
                        if (0..4).contains(&iy) && (0..4).contains(&ix) {
                            s += w[f * 9 + (ky * 3 + kx) as usize] * img[(iy * 4 + ix) as usize];
                        }
                    }
                }
                conv[f * 16 + (y * 4 + x) as usize] = s;
            }
        }
    }
    let relu: Vec<f64> = conv.iter().map(|&v| v.max(0.0)).collect();
    let mut pool = [0.0; 8];
    for f in 0..2 {
        for y in 0..2 {
            for x in 0..2 {
                let at = |dy: usize, dx: usize| relu[f * 16 + (2 * y + dy) * 4 + 2 * x + dx];
                pool[f * 4 + y * 2 + x] = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
            }
        }
    }
    let dw: Vec<f64> = weights(24, 3).iter().map(|&v| v as f64).collect();
    let db = [0.05f32 as f64, 0.0, -0.05f32 as f64];
    let logits: Vec<f64> =
        (0..3).map(|j| db[j] + (0..8).map(|i| pool[i] * dw[i * 3 + j]).sum::<f64>()).collect();
    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
    let probs = logits.iter().map(|l| (l - m).exp() / z).collect();
    (conv, relu, logits, probs)
}

fn images(n: usize) -> ArrayD<f32> {
    Array4::from_shape_fn((n, 1, 4, 4), |(b, _, y, x)| {
        (((b * 16 + y * 4 + x) * 37 % 23) as f32) / 23.0 - 0.3
    })
    .into_dyn()
}

#[test]
fn structure_names_orders_and_finds_channels() {
    let m = load();
    let s = m.structure();
    assert_eq!(s.names(), ["xf", "conv", "relu", "relu_alias", "pool", "flat", "dense", "probs"]);
    assert_eq!(s.output_layer().name, "probs");
    assert_eq!(s.input.dtype, "f64");
    assert_eq!(s.input.shape, [1, 4, 4]);
    let conv = s.layer("conv").unwrap();
    assert_eq!(
        (conv.shape.clone(), conv.channel_axis, conv.number_features()),
        (vec![2, 4, 4], Some(0), 2)
    );
    assert_eq!(conv.tensor, "net/conv/Conv:0");
    assert_eq!(s.layer("pool").unwrap().shape_feature(), [2, 2]);
    // What a convolution reads is channels-first too.
    assert_eq!(s.layer("xf").unwrap().number_features(), 1);
    assert!(!s.layer("flat").unwrap().is_feature_layer());
    assert_eq!(s.layers_features().len(), 5);
}

#[test]
fn activations_match_the_forward_pass_by_hand() {
    let m = load();
    let x = images(5);
    let acts = m.predict(x.view(), None).unwrap();
    assert_eq!(acts.len(), 8);
    for b in 0..5 {
        let img: [f64; 16] = std::array::from_fn(|i| x[[b, 0, i / 4, i % 4]] as f64);
        let (conv, relu, logits, probs) = by_hand(&img);
        let check = |layer: &str, expected: &[f64]| {
            let got = acts.get(layer).unwrap();
            let row: Vec<f32> = got.index_axis(ndarray::Axis(0), b).iter().copied().collect();
            assert_eq!(row.len(), expected.len(), "{layer}");
            for (g, e) in row.iter().zip(expected) {
                assert!((*g as f64 - e).abs() < 1e-5, "{layer}: {g} vs {e}");
            }
        };
        check("conv", &conv);
        check("relu", &relu);
        check("relu_alias", &relu);
        check("dense", &logits);
        check("probs", &probs);
    }
}

#[test]
fn subsets_batches_and_tensor_names_agree() {
    let m = load();
    let x = images(7);
    let all = m.predict(x.view(), None).unwrap();
    let some = m.predict(x.view(), Some(&["pool", "net/dense/Gemm:0", "pool"])).unwrap();
    assert_eq!(some.names(), ["pool", "net/dense/Gemm:0", "pool"]);
    assert_eq!(some.get("pool"), all.get("pool"));
    assert_eq!(some.values()[1], *all.get("dense").unwrap());
    for b in 0..7 {
        let one = x.slice(ndarray::s![b..b + 1, .., .., ..]).to_owned().into_dyn();
        let single = m.predict_output(one.view()).unwrap();
        let row = all.get("probs").unwrap().index_axis(ndarray::Axis(0), b).to_owned();
        for (a, c) in single.iter().zip(row.iter()) {
            assert!((a - c).abs() < 1e-6);
        }
    }
}

#[test]
fn chunks_on_any_number_of_workers_give_the_one_worker_result() {
    let with = |threads: usize| {
        let options = BackendOptions { threads: Some(threads) };
        TractModel::from_bytes(&fixture_bytes(), "fixture.onnx", &options).unwrap()
    };
    let one = with(1);
    // 203 rows: several chunks and a short last one, whatever the worker count.
    let x = images(203);
    let reference = one.predict(x.view(), Some(&["conv", "probs", "conv"])).unwrap();
    for threads in [2, 3, 5] {
        let m = with(threads);
        assert_eq!(m.workers(), threads);
        assert!(nnlens_tract::chunk_rows(203, threads) < 203);
        // Twice: the second run reuses the chunks' run states.
        for _ in 0..2 {
            let got = m.predict(x.view(), Some(&["conv", "probs", "conv"])).unwrap();
            assert_eq!(got.names(), reference.names());
            for (g, r) in got.values().iter().zip(reference.values()) {
                assert_eq!(g.shape(), r.shape());
                let worst = g.iter().zip(r.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(worst < 1e-6, "{threads} workers: {worst}");
            }
        }
    }
}

#[test]
fn chunk_sizes_follow_the_workers() {
    use nnlens_tract::{CHUNKS_PER_WORKER, MIN_CHUNK_ROWS, chunk_rows};
    assert_eq!(chunk_rows(256, 1), 256);
    assert_eq!(chunk_rows(256, 2), (256usize).div_ceil(2 * CHUNKS_PER_WORKER).max(MIN_CHUNK_ROWS));
    assert_eq!(chunk_rows(3, 4), MIN_CHUNK_ROWS);
    assert_eq!(chunk_rows(10_000, 2), 10_000usize.div_ceil(2 * CHUNKS_PER_WORKER));
    assert_eq!(chunk_rows(0, 1), 1);
}

#[test]
fn evaluate_counts_and_merges() {
    let m = load();
    let x = images(6);
    let probs = m.predict_output(x.view()).unwrap();
    let labels: Vec<usize> = (0..6).map(|i| i % 3).collect();
    let e = m.evaluate(x.view(), &labels).unwrap();
    let expected_correct = (0..6)
        .filter(|&i| {
            let row = probs.index_axis(ndarray::Axis(0), i);
            let best = (0..3).fold(0, |b, k| if row[k] > row[b] { k } else { b });
            best == labels[i]
        })
        .count();
    assert_eq!(e.correct as usize, expected_correct);
    let loss: f64 = (0..6).map(|i| -(probs[[i, labels[i]]] as f64).ln()).sum::<f64>() / 6.0;
    assert!((e.loss() - loss).abs() < 1e-6);
}

#[test]
fn bad_inputs_are_errors() {
    let m = load();
    let e = m.predict(images(2).view(), Some(&["conv_9"])).unwrap_err();
    assert!(matches!(e, CoreError::UnknownLayer { .. }), "{e}");
    assert!(e.to_string().contains("conv_9"));
    let wrong = ArrayD::<f32>::zeros(IxDyn(&[2, 4, 4, 1]));
    assert!(matches!(m.predict(wrong.view(), None), Err(CoreError::Shape { .. })));
    let empty = ArrayD::<f32>::zeros(IxDyn(&[0, 1, 4, 4]));
    assert!(m.predict(empty.view(), None).is_err());
    let mut nan = images(3);
    nan[[2, 0, 1, 3]] = f32::NAN;
    let e = m.predict(nan.view(), None).unwrap_err();
    assert!(matches!(e, CoreError::NonFinite { index: 39, .. }), "{e}");
    let e =
        TractModel::from_bytes(b"definitely not protobuf", "junk.onnx", &BackendOptions::default())
            .unwrap_err();
    assert!(e.to_string().contains("junk.onnx"), "{e}");
    let mut bytes = fixture_bytes();
    bytes.truncate(bytes.len() / 2);
    assert!(TractModel::from_bytes(&bytes, "half.onnx", &BackendOptions::default()).is_err());
    let e =
        TractModel::load(std::path::Path::new("/nonexistent/m.onnx"), &BackendOptions::default())
            .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/m.onnx"), "{e}");
}
