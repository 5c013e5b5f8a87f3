//! The small model every ONNX backend's tests share (feature `fixture`), with its forward pass
//! written out by hand in f64, so that each backend is checked against the same numbers.
//!
//! The model: f64 input `x` [N, 1, 4, 4] (channels first) > Cast(f32) > Conv(2 filters 3x3,
//! pads 1) > Relu > MaxPool 2x2 > Flatten > Gemm(8 -> 3) > Softmax, with tf2onnx-style scoped
//! tensor names, and an `Identity` alias of the relu appended at the end of the graph.

use ndarray::{Array4, ArrayD};
use prost::Message;

use crate::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto, elem,
};

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto::new(op, output.trim_end_matches(":0"), inputs, &[output], attrs)
}

/// Deterministic weights in [-0.5, 0.5].
pub fn weights(n: usize, k: usize) -> Vec<f32> {
    (0..n).map(|i| (((i * 7 + k) % 11) as f32 - 5.0) / 10.0).collect()
}

/// The model (see the module docs) as the bytes of an ONNX file.
pub fn fixture_bytes() -> Vec<u8> {
    let graph = GraphProto {
        name: "fixture".into(),
        node: vec![
            node("Cast", &["x"], "xf", vec![AttributeProto::int("to", 1)]),
            node(
                "Conv",
                &["xf", "conv_w", "conv_b"],
                "net/conv/Conv:0",
                vec![
                    AttributeProto::ints("pads", &[1, 1, 1, 1]),
                    AttributeProto::ints("kernel_shape", &[3, 3]),
                ],
            ),
            node("Relu", &["net/conv/Conv:0"], "net/relu/Relu:0", vec![]),
            node(
                "MaxPool",
                &["net/relu/Relu:0"],
                "net/pool/MaxPool:0",
                vec![
                    AttributeProto::ints("kernel_shape", &[2, 2]),
                    AttributeProto::ints("strides", &[2, 2]),
                ],
            ),
            node(
                "Flatten",
                &["net/pool/MaxPool:0"],
                "net/flat/Flatten:0",
                vec![AttributeProto::int("axis", 1)],
            ),
            node("Gemm", &["net/flat/Flatten:0", "dense_w", "dense_b"], "net/dense/Gemm:0", vec![]),
            node("Softmax", &["net/dense/Gemm:0"], "probs", vec![AttributeProto::int("axis", 1)]),
            node("Identity", &["net/relu/Relu:0"], "relu_alias", vec![]),
        ],
        initializer: vec![
            TensorProto::from_f32("conv_w", &[2, 1, 3, 3], weights(18, 1)),
            TensorProto::from_f32("conv_b", &[2], vec![0.1, -0.2]),
            TensorProto::from_f32("dense_w", &[8, 3], weights(24, 3)),
            TensorProto::from_f32("dense_b", &[3], vec![0.05, 0.0, -0.05]),
        ],
        input: vec![ValueInfoProto::tensor("x", elem::DOUBLE, &[None, Some(1), Some(4), Some(4)])],
        output: vec![
            ValueInfoProto::tensor("probs", elem::FLOAT, &[None, Some(3)]),
            ValueInfoProto::tensor("relu_alias", elem::FLOAT, &[None, Some(2), Some(4), Some(4)]),
        ],
        ..Default::default()
    };
    ModelProto::new(graph, 13).encode_to_vec()
}

/// The forward pass by hand, in f64: (conv, relu, logits, probs) for one image.
pub fn by_hand(img: &[f64; 16]) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let w: Vec<f64> = weights(18, 1).iter().map(|&v| v as f64).collect();
    let b = [0.1f32 as f64, -0.2f32 as f64];
    let mut conv = vec![0.0; 32];
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

/// `n` deterministic images [n, 1, 4, 4] for [`fixture_bytes`].
pub fn fixture_images(n: usize) -> ArrayD<f32> {
    Array4::from_shape_fn((n, 1, 4, 4), |(b, _, y, x)| {
        (((b * 16 + y * 4 + x) * 37 % 23) as f32) / 23.0 - 0.3
    })
    .into_dyn()
}
