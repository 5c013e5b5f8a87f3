//! ONNX models built in code for the candle backend's tests.
#![allow(dead_code)]

use nnlens_onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto, elem,
};
use prost::Message;

/// Deterministic pseudo-random values in [-scale, scale].
pub fn values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            (2.0 * u - 1.0) * scale
        })
        .collect()
}

/// A float initializer stored as DOUBLE (`f64`) or FLOAT (`f32`).
pub fn init(name: &str, dims: &[i64], v: &[f64], double: bool) -> TensorProto {
    if double {
        TensorProto::from_f64(name, dims, v.to_vec())
    } else {
        TensorProto::from_f32(name, dims, v.iter().map(|&x| x as f32).collect())
    }
}

pub fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto::new(op, output.trim_end_matches(":0"), inputs, &[output], attrs)
}

/// The parameter tensors of [`conv_pool_dense`]: name, dims.
pub const CONV_POOL_DENSE_PARAMS: &[(&str, &[i64])] = &[
    ("conv1_w", &[3, 1, 2, 2]),
    ("conv1_b", &[3]),
    ("conv2_w", &[4, 3, 3, 3]),
    ("conv2_b", &[4]),
    ("dense1_w", &[16, 5]),
    ("dense1_b", &[5]),
    ("dense2_w", &[3, 5]),
    ("dense2_b", &[3]),
];

/// A small conv + max-pool + dense classifier, with what the exporters produce:
/// input `x` [N, 8, 8, 1] (channels last, as tf2onnx) > Reshape to [N, 1, 8, 8] >
/// Conv(3, 2x2, pads [0, 0, 1, 1] = Keras 'same') > Relu > MaxPool 2x2 >
/// Conv(4, 3x3, stride 2, pads 1) > Relu > Transpose to channels-last > Reshape [-1, 16] >
/// MatMul + Add (Keras Dense) > Relu > Gemm(transB = 1, PyTorch Linear) > Softmax.
///
/// `param` overrides the values of one parameter (by index in [`CONV_POOL_DENSE_PARAMS`]).
pub fn conv_pool_dense(double: bool, param: Option<(usize, &[f64])>) -> Vec<u8> {
    let t = if double { elem::DOUBLE } else { elem::FLOAT };
    let initializers = CONV_POOL_DENSE_PARAMS
        .iter()
        .enumerate()
        .map(|(i, &(name, dims))| {
            let n: i64 = dims.iter().product();
            let scale = if name.ends_with("_b") { 0.1 } else { 0.6 };
            let v = match param {
                Some((p, v)) if p == i => v.to_vec(),
                _ => values(n as usize, i as u64 + 11, scale),
            };
            init(name, dims, &v, double)
        })
        .chain([
            TensorProto::from_i64("to_nchw", &[4], vec![-1, 1, 8, 8]),
            TensorProto::from_i64("flat_shape", &[2], vec![-1, 16]),
        ])
        .collect();
    let graph = GraphProto {
        name: "conv_pool_dense".into(),
        node: vec![
            node("Reshape", &["x", "to_nchw"], "net/conv_1/Reshape:0", vec![]),
            node(
                "Conv",
                &["net/conv_1/Reshape:0", "conv1_w", "conv1_b"],
                "net/conv_1/BiasAdd:0",
                vec![
                    AttributeProto::ints("pads", &[0, 0, 1, 1]),
                    AttributeProto::ints("kernel_shape", &[2, 2]),
                ],
            ),
            node("Relu", &["net/conv_1/BiasAdd:0"], "net/conv_1/Relu:0", vec![]),
            node(
                "MaxPool",
                &["net/conv_1/Relu:0"],
                "net/pool/MaxPool:0",
                vec![
                    AttributeProto::ints("kernel_shape", &[2, 2]),
                    AttributeProto::ints("strides", &[2, 2]),
                ],
            ),
            node(
                "Conv",
                &["net/pool/MaxPool:0", "conv2_w", "conv2_b"],
                "net/conv_2/BiasAdd:0",
                vec![
                    AttributeProto::ints("pads", &[1, 1, 1, 1]),
                    AttributeProto::ints("strides", &[2, 2]),
                ],
            ),
            node("Relu", &["net/conv_2/BiasAdd:0"], "net/conv_2/Relu:0", vec![]),
            node(
                "Transpose",
                &["net/conv_2/Relu:0"],
                "net/conv_2/Relu__9:0",
                vec![AttributeProto::ints("perm", &[0, 2, 3, 1])],
            ),
            node("Reshape", &["net/conv_2/Relu__9:0", "flat_shape"], "net/flat/Reshape:0", vec![]),
            node("MatMul", &["net/flat/Reshape:0", "dense1_w"], "net/dense_1/MatMul:0", vec![]),
            node("Add", &["net/dense_1/MatMul:0", "dense1_b"], "net/dense_1/BiasAdd:0", vec![]),
            node("Relu", &["net/dense_1/BiasAdd:0"], "net/dense_1/Relu:0", vec![]),
            node(
                "Gemm",
                &["net/dense_1/Relu:0", "dense2_w", "dense2_b"],
                "net/logits/Gemm:0",
                vec![AttributeProto::int("transB", 1)],
            ),
            node("Softmax", &["net/logits/Gemm:0"], "probs", vec![AttributeProto::int("axis", -1)]),
        ],
        initializer: initializers,
        input: vec![ValueInfoProto::tensor("x", t, &[None, Some(8), Some(8), Some(1)])],
        output: vec![ValueInfoProto::tensor("probs", t, &[None, Some(3)])],
        ..Default::default()
    };
    ModelProto::new(graph, 13).encode_to_vec()
}

/// Images `[n, 8, 8, 1]` with values in [0, 1].
pub fn images(n: usize, seed: u64) -> ndarray::ArrayD<f32> {
    let v: Vec<f32> = values(n * 64, seed, 0.5).iter().map(|&x| (x + 0.5) as f32).collect();
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[n, 8, 8, 1]), v).unwrap()
}

/// A one-node model `x [N, 4] > op > y`, for error tests.
pub fn one_node(op: &str, domain: &str, attrs: Vec<AttributeProto>) -> Vec<u8> {
    let mut n = node(op, &["x"], "y", attrs);
    n.name = "the_node".into();
    n.domain = domain.into();
    let graph = GraphProto {
        name: "one".into(),
        node: vec![n],
        input: vec![ValueInfoProto::tensor("x", elem::FLOAT, &[None, Some(4)])],
        output: vec![ValueInfoProto::tensor("y", elem::FLOAT, &[None, Some(4)])],
        ..Default::default()
    };
    ModelProto::new(graph, 13).encode_to_vec()
}
