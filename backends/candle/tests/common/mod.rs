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
    let initializers = param_initializers(CONV_POOL_DENSE_PARAMS, param, double, |i, name, n| {
        values(n, i as u64 + 11, if name.ends_with("_b") { 0.1 } else { 0.6 })
    })
    .into_iter()
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

/// The initializers of `params`, stored as DOUBLE or FLOAT: the values of `param` for the one
/// it names, `default(index, name, element count)` for the others.
fn param_initializers(
    params: &[(&str, &[i64])],
    param: Option<(usize, &[f64])>,
    double: bool,
    default: impl Fn(usize, &str, usize) -> Vec<f64>,
) -> Vec<TensorProto> {
    params
        .iter()
        .enumerate()
        .map(|(i, &(name, dims))| {
            let v = match param {
                Some((p, v)) if p == i => v.to_vec(),
                _ => default(i, name, dims.iter().product::<i64>() as usize),
            };
            init(name, dims, &v, double)
        })
        .collect()
}

/// An opset-13 model of `nodes` from the input `x` [N, 3, 6, 6] to `output` [N, 3], of element
/// type `t`.
fn image_model(
    name: &str,
    nodes: Vec<NodeProto>,
    initializer: Vec<TensorProto>,
    t: i32,
    output: &str,
) -> Vec<u8> {
    let graph = GraphProto {
        name: name.into(),
        node: nodes,
        initializer,
        input: vec![ValueInfoProto::tensor("x", t, &[None, Some(3), Some(6), Some(6)])],
        output: vec![ValueInfoProto::tensor(output, t, &[None, Some(3)])],
        ..Default::default()
    };
    ModelProto::new(graph, 13).encode_to_vec()
}

/// The parameter tensors of [`ops_model`]: name, dims.
pub const OPS_PARAMS: &[(&str, &[i64])] = &[
    ("gconv_w", &[6, 1, 3, 3]),
    ("gconv_b", &[6]),
    ("scale", &[6, 1, 1]),
    ("dense_w", &[54, 4]),
    ("head_w", &[3, 10]),
    ("head_b", &[3]),
];

/// A model exercising the operators the shared models do not use, as PyTorch and tf2onnx
/// exports write them: input `x` [N, 3, 6, 6] > grouped Conv (3 groups, SAME_UPPER, stride 2) >
/// LeakyRelu; Sigmoid * Tanh, minus a Constant, divided by a per-channel scale >
/// GlobalAveragePool > a dynamic flatten (Shape, Gather, Unsqueeze, Concat, Reshape) plus the
/// same by Squeeze; Flatten of the LeakyRelu > MatMul; Concat of both > Gemm (transB, alpha,
/// beta) > LogSoftmax.
pub fn ops_model(double: bool, param: Option<(usize, &[f64])>) -> Vec<u8> {
    let t = if double { elem::DOUBLE } else { elem::FLOAT };
    let mut initializers = param_initializers(OPS_PARAMS, param, double, |i, name, n| {
        if name == "scale" {
            values(n, 40, 0.3).iter().map(|v| v + 1.0).collect()
        } else {
            values(n, i as u64 + 30, 0.5)
        }
    });
    initializers.push(TensorProto::from_i64("zero", &[], vec![0]));
    initializers.push(TensorProto::from_i64("axes0", &[1], vec![0]));
    initializers.push(TensorProto::from_i64("axes23", &[2], vec![2, 3]));
    initializers.push(TensorProto::from_i64("minus_one", &[1], vec![-1]));
    let n = |op: &str, name: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>| {
        NodeProto::new(op, name, inputs, &[output], attrs)
    };
    let nodes = vec![
        n(
            "Conv",
            "/gconv/Conv",
            &["x", "gconv_w", "gconv_b"],
            "/gconv/Conv_output_0",
            vec![
                AttributeProto::int("group", 3),
                AttributeProto::string("auto_pad", "SAME_UPPER"),
                AttributeProto::ints("strides", &[2, 2]),
            ],
        ),
        n(
            "LeakyRelu",
            "/act/LeakyRelu",
            &["/gconv/Conv_output_0"],
            "/act/LeakyRelu_output_0",
            vec![AttributeProto::float("alpha", 0.1)],
        ),
        n("Sigmoid", "/gate/Sigmoid", &["/gconv/Conv_output_0"], "/gate/Sigmoid_output_0", vec![]),
        n("Tanh", "/gate/Tanh", &["/gconv/Conv_output_0"], "/gate/Tanh_output_0", vec![]),
        n(
            "Mul",
            "/gate/Mul",
            &["/gate/Sigmoid_output_0", "/gate/Tanh_output_0"],
            "/gate/Mul_output_0",
            vec![],
        ),
        n(
            "Constant",
            "/gate/Constant",
            &[],
            "/gate/Constant_output_0",
            vec![AttributeProto::float("value_float", 0.1)],
        ),
        n(
            "Sub",
            "/gate/Sub",
            &["/gate/Mul_output_0", "/gate/Constant_output_0"],
            "/gate/Sub_output_0",
            vec![],
        ),
        n("Div", "/gate/Div", &["/gate/Sub_output_0", "scale"], "/gate/Div_output_0", vec![]),
        n(
            "GlobalAveragePool",
            "/pool/GlobalAveragePool",
            &["/gate/Div_output_0"],
            "/pool/GlobalAveragePool_output_0",
            vec![],
        ),
        n(
            "Shape",
            "/flat/Shape",
            &["/pool/GlobalAveragePool_output_0"],
            "/flat/Shape_output_0",
            vec![],
        ),
        n(
            "Gather",
            "/flat/Gather",
            &["/flat/Shape_output_0", "zero"],
            "/flat/Gather_output_0",
            vec![AttributeProto::int("axis", 0)],
        ),
        n(
            "Unsqueeze",
            "/flat/Unsqueeze",
            &["/flat/Gather_output_0", "axes0"],
            "/flat/Unsqueeze_output_0",
            vec![],
        ),
        n(
            "Concat",
            "/flat/Concat",
            &["/flat/Unsqueeze_output_0", "minus_one"],
            "/flat/Concat_output_0",
            vec![AttributeProto::int("axis", 0)],
        ),
        n(
            "Reshape",
            "/flat/Reshape",
            &["/pool/GlobalAveragePool_output_0", "/flat/Concat_output_0"],
            "/flat/Reshape_output_0",
            vec![],
        ),
        n(
            "Squeeze",
            "/squeeze/Squeeze",
            &["/pool/GlobalAveragePool_output_0", "axes23"],
            "/squeeze/Squeeze_output_0",
            vec![],
        ),
        n(
            "Add",
            "/pooled/Add",
            &["/flat/Reshape_output_0", "/squeeze/Squeeze_output_0"],
            "/pooled/Add_output_0",
            vec![],
        ),
        n(
            "Flatten",
            "/dense/Flatten",
            &["/act/LeakyRelu_output_0"],
            "/dense/Flatten_output_0",
            vec![],
        ),
        n(
            "MatMul",
            "/dense/MatMul",
            &["/dense/Flatten_output_0", "dense_w"],
            "/dense/MatMul_output_0",
            vec![],
        ),
        n(
            "Concat",
            "/cat/Concat",
            &["/pooled/Add_output_0", "/dense/MatMul_output_0"],
            "/cat/Concat_output_0",
            vec![AttributeProto::int("axis", 1)],
        ),
        n(
            "Gemm",
            "/head/Gemm",
            &["/cat/Concat_output_0", "head_w", "head_b"],
            "/head/Gemm_output_0",
            vec![
                AttributeProto::int("transB", 1),
                AttributeProto::float("alpha", 0.5),
                AttributeProto::float("beta", 2.0),
            ],
        ),
        n(
            "LogSoftmax",
            "/out/LogSoftmax",
            &["/head/Gemm_output_0"],
            "log_probs",
            vec![AttributeProto::int("axis", 1)],
        ),
    ];
    image_model("ops", nodes, initializers, t, "log_probs")
}

/// Inputs `[n, 3, 6, 6]` in [-1, 1].
pub fn ops_inputs(n: usize, seed: u64) -> ndarray::ArrayD<f32> {
    let v: Vec<f32> = values(n * 108, seed, 1.0).iter().map(|&x| x as f32).collect();
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[n, 3, 6, 6]), v).unwrap()
}

/// The parameter tensors of [`norm_model`]: name, dims.
pub const NORM_PARAMS: &[(&str, &[i64])] = &[
    ("conv_w", &[4, 3, 3, 3]),
    ("conv_b", &[4]),
    ("bn_scale", &[4]),
    ("bn_b", &[4]),
    ("head_w", &[3, 164]),
    ("head_b", &[3]),
];

/// A model with the normalisation, clipping, padding and average-pooling operators of
/// PyTorch exports (opset 13: Clip and Pad take inputs): input `x` [N, 3, 6, 6] > Conv(4,
/// 3x3, pads 1) > BatchNormalization > Clip [0, 0.8] > two branches: Pad (constant 0.25,
/// one row at the top, one column at the right) > AveragePool 3x3 stride 2 pads 1 without the
/// pads in the count, and Pad (edge, one on every side) > AveragePool 2x2 stride 2 pads 1 with
/// the pads in the count; each Flatten, Concat > Gemm(transB) > Softmax.
///
/// The running mean and variance are initializers too, but constants (not in
/// [`NORM_PARAMS`]): PyTorch's buffers, Keras' non-trainable weights.
pub fn norm_model(double: bool, param: Option<(usize, &[f64])>) -> Vec<u8> {
    let t = if double { elem::DOUBLE } else { elem::FLOAT };
    let mut initializers =
        param_initializers(NORM_PARAMS, param, double, |i, _, n| values(n, i as u64 + 30, 0.5));
    // The running statistics: constants of the model, not parameters.
    initializers.push(init("bn_mean", &[4], &values(4, 34, 0.5), double));
    let var: Vec<f64> = values(4, 35, 0.5).iter().map(|x| x + 1.0).collect();
    initializers.push(init("bn_var", &[4], &var, double));
    initializers.push(TensorProto::from_i64("pads_a", &[8], vec![0, 0, 1, 0, 0, 0, 0, 1]));
    initializers.push(TensorProto::from_i64("pads_b", &[8], vec![0, 0, 1, 1, 0, 0, 1, 1]));
    let n = |op: &str, name: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>| {
        NodeProto::new(op, name, inputs, &[output], attrs)
    };
    let constant = |name: &str, output: &str, v: f32| {
        n("Constant", name, &[], output, vec![AttributeProto::float("value_float", v)])
    };
    let nodes = vec![
        n(
            "Conv",
            "/conv/Conv",
            &["x", "conv_w", "conv_b"],
            "/conv/Conv_output_0",
            vec![AttributeProto::ints("pads", &[1, 1, 1, 1])],
        ),
        n(
            "BatchNormalization",
            "/bn/BatchNormalization",
            &["/conv/Conv_output_0", "bn_scale", "bn_b", "bn_mean", "bn_var"],
            "/bn/BatchNormalization_output_0",
            vec![AttributeProto::float("epsilon", 1e-3)],
        ),
        constant("/clip/Constant", "/clip/Constant_output_0", 0.0),
        constant("/clip/Constant_1", "/clip/Constant_1_output_0", 0.8),
        n(
            "Clip",
            "/clip/Clip",
            &[
                "/bn/BatchNormalization_output_0",
                "/clip/Constant_output_0",
                "/clip/Constant_1_output_0",
            ],
            "/clip/Clip_output_0",
            vec![],
        ),
        constant("/pada/Constant", "/pada/Constant_output_0", 0.25),
        n(
            "Pad",
            "/pada/Pad",
            &["/clip/Clip_output_0", "pads_a", "/pada/Constant_output_0"],
            "/pada/Pad_output_0",
            vec![],
        ),
        n(
            "AveragePool",
            "/poola/AveragePool",
            &["/pada/Pad_output_0"],
            "/poola/AveragePool_output_0",
            vec![
                AttributeProto::ints("kernel_shape", &[3, 3]),
                AttributeProto::ints("strides", &[2, 2]),
                AttributeProto::ints("pads", &[1, 1, 1, 1]),
            ],
        ),
        n(
            "Pad",
            "/padb/Pad",
            &["/clip/Clip_output_0", "pads_b"],
            "/padb/Pad_output_0",
            vec![AttributeProto::string("mode", "edge")],
        ),
        n(
            "AveragePool",
            "/poolb/AveragePool",
            &["/padb/Pad_output_0"],
            "/poolb/AveragePool_output_0",
            vec![
                AttributeProto::ints("kernel_shape", &[2, 2]),
                AttributeProto::ints("strides", &[2, 2]),
                AttributeProto::ints("pads", &[1, 1, 1, 1]),
                AttributeProto::int("count_include_pad", 1),
            ],
        ),
        n(
            "Flatten",
            "/flata/Flatten",
            &["/poola/AveragePool_output_0"],
            "/flata/Flatten_output_0",
            vec![],
        ),
        n(
            "Flatten",
            "/flatb/Flatten",
            &["/poolb/AveragePool_output_0"],
            "/flatb/Flatten_output_0",
            vec![],
        ),
        n(
            "Concat",
            "/cat/Concat",
            &["/flata/Flatten_output_0", "/flatb/Flatten_output_0"],
            "/cat/Concat_output_0",
            vec![AttributeProto::int("axis", 1)],
        ),
        n(
            "Gemm",
            "/head/Gemm",
            &["/cat/Concat_output_0", "head_w", "head_b"],
            "/head/Gemm_output_0",
            vec![AttributeProto::int("transB", 1)],
        ),
        n(
            "Softmax",
            "/out/Softmax",
            &["/head/Gemm_output_0"],
            "probs",
            vec![AttributeProto::int("axis", 1)],
        ),
    ];
    image_model("norm", nodes, initializers, t, "probs")
}

/// The parameter tensors of [`mobile_model`]: name, dims.
pub const MOBILE_PARAMS: &[(&str, &[i64])] = &[
    ("conv_w", &[6, 3, 3, 3]),
    ("conv_b", &[6]),
    ("se1_w", &[3, 6, 1, 1]),
    ("se1_b", &[3]),
    ("se2_w", &[6, 3, 1, 1]),
    ("se2_b", &[6]),
    ("head_w", &[3, 6]),
    ("head_b", &[3]),
];

/// A model with the operators of torchvision's MobileNetV3 and EfficientNet exports, at
/// `opset` (13: ReduceMean's axes an attribute, as the TorchScript exporter writes them; 18:
/// an input, as the dynamo exporter): input `x` [N, 3, 6, 6] > Conv(6, 3x3, pads 1) >
/// HardSwish > squeeze-excitation (ReduceMean over H, W kept > Conv 1x1 > Relu > Conv 1x1 >
/// HardSigmoid(1/6, 1/2) > Mul) > Clip [0, 0.6] (ReLU6's operator) > SiLU (Sigmoid, Mul) >
/// ReduceMean over H, W not kept > Gemm(transB) to logits [N, 3].
pub fn mobile_model(opset: i64, double: bool, param: Option<(usize, &[f64])>) -> Vec<u8> {
    let t = if double { elem::DOUBLE } else { elem::FLOAT };
    let mut initializers =
        param_initializers(MOBILE_PARAMS, param, double, |i, _, n| values(n, i as u64 + 50, 0.5));
    let n = |op: &str, name: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>| {
        NodeProto::new(op, name, inputs, &[output], attrs)
    };
    let mean = |name: &str, input: &str, output: &str, keep: i64| {
        let keep = AttributeProto::int("keepdims", keep);
        if opset >= 18 {
            n("ReduceMean", name, &[input, "axes_hw"], output, vec![keep])
        } else {
            n(
                "ReduceMean",
                name,
                &[input],
                output,
                vec![AttributeProto::ints("axes", &[2, 3]), keep],
            )
        }
    };
    if opset >= 18 {
        initializers.push(TensorProto::from_i64("axes_hw", &[2], vec![-1, -2]));
    }
    let constant = |name: &str, output: &str, v: f32| {
        n("Constant", name, &[], output, vec![AttributeProto::float("value_float", v)])
    };
    let nodes = vec![
        n(
            "Conv",
            "/conv/Conv",
            &["x", "conv_w", "conv_b"],
            "/conv/Conv_output_0",
            vec![AttributeProto::ints("pads", &[1, 1, 1, 1])],
        ),
        n("HardSwish", "/hs/HardSwish", &["/conv/Conv_output_0"], "/hs/HardSwish_output_0", vec![]),
        mean("/se/avg/ReduceMean", "/hs/HardSwish_output_0", "/se/avg/ReduceMean_output_0", 1),
        n(
            "Conv",
            "/se/fc1/Conv",
            &["/se/avg/ReduceMean_output_0", "se1_w", "se1_b"],
            "/se/fc1/Conv_output_0",
            vec![],
        ),
        n("Relu", "/se/relu/Relu", &["/se/fc1/Conv_output_0"], "/se/relu/Relu_output_0", vec![]),
        n(
            "Conv",
            "/se/fc2/Conv",
            &["/se/relu/Relu_output_0", "se2_w", "se2_b"],
            "/se/fc2/Conv_output_0",
            vec![],
        ),
        n(
            "HardSigmoid",
            "/se/gate/HardSigmoid",
            &["/se/fc2/Conv_output_0"],
            "/se/gate/HardSigmoid_output_0",
            vec![AttributeProto::float("alpha", 1.0 / 6.0), AttributeProto::float("beta", 0.5)],
        ),
        n(
            "Mul",
            "/se/scale/Mul",
            &["/hs/HardSwish_output_0", "/se/gate/HardSigmoid_output_0"],
            "/se/scale/Mul_output_0",
            vec![],
        ),
        constant("/relu6/Constant", "/relu6/Constant_output_0", 0.0),
        constant("/relu6/Constant_1", "/relu6/Constant_1_output_0", 0.6),
        n(
            "Clip",
            "/relu6/Clip",
            &["/se/scale/Mul_output_0", "/relu6/Constant_output_0", "/relu6/Constant_1_output_0"],
            "/relu6/Clip_output_0",
            vec![],
        ),
        n("Sigmoid", "/silu/Sigmoid", &["/relu6/Clip_output_0"], "/silu/Sigmoid_output_0", vec![]),
        n(
            "Mul",
            "/silu/Mul",
            &["/relu6/Clip_output_0", "/silu/Sigmoid_output_0"],
            "/silu/Mul_output_0",
            vec![],
        ),
        mean("/pool/ReduceMean", "/silu/Mul_output_0", "/pool/ReduceMean_output_0", 0),
        n(
            "Gemm",
            "/head/Gemm",
            &["/pool/ReduceMean_output_0", "head_w", "head_b"],
            "logits",
            vec![AttributeProto::int("transB", 1)],
        ),
    ];
    let graph = GraphProto {
        name: "mobile".into(),
        node: nodes,
        initializer: initializers,
        input: vec![ValueInfoProto::tensor("x", t, &[None, Some(3), Some(6), Some(6)])],
        output: vec![ValueInfoProto::tensor("logits", t, &[None, Some(3)])],
        ..Default::default()
    };
    ModelProto::new(graph, opset).encode_to_vec()
}

/// The parameter tensors of [`unary_model`]: name, dims.
pub const UNARY_PARAMS: &[(&str, &[i64])] =
    &[("conv_w", &[4, 3, 3, 3]), ("conv_b", &[4]), ("head_w", &[3, 4]), ("head_b", &[3])];

/// A model through the element-wise and pass-through operators no other test model uses:
/// input `x` [N, 3, 6, 6] > Conv(4, 3x3) > Abs > Add 0.5 > Sqrt > Log > Neg > Exp > Identity >
/// Dropout > Cast (to float) > GlobalAveragePool > Flatten > Gemm(transB) to logits [N, 3].
pub fn unary_model(double: bool, param: Option<(usize, &[f64])>) -> Vec<u8> {
    let t = if double { elem::DOUBLE } else { elem::FLOAT };
    let initializers =
        param_initializers(UNARY_PARAMS, param, double, |i, _, n| values(n, i as u64 + 70, 0.5));
    let n = |op: &str, name: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>| {
        NodeProto::new(op, name, inputs, &[output], attrs)
    };
    // A Constant, not an initializer: a float initializer an Add reads is a weight.
    let half = n(
        "Constant",
        "/shift/Constant",
        &[],
        "half",
        vec![AttributeProto::float("value_float", 0.5)],
    );
    let chain = [
        ("Abs", "abs"),
        ("Add", "shift"),
        ("Sqrt", "sqrt"),
        ("Log", "log"),
        ("Neg", "neg"),
        ("Exp", "exp"),
        ("Identity", "same"),
        ("Dropout", "drop"),
        ("Cast", "cast"),
        ("GlobalAveragePool", "gap"),
        ("Flatten", "flat"),
    ];
    let mut nodes = vec![
        half,
        n("Conv", "/conv/Conv", &["x", "conv_w", "conv_b"], "/conv/Conv_output_0", vec![]),
    ];
    let mut last = "/conv/Conv_output_0".to_string();
    for (op, layer) in chain {
        let out = format!("/{layer}/{op}_output_0");
        let name = format!("/{layer}/{op}");
        let attrs = match op {
            "Cast" => vec![AttributeProto::int("to", t as i64)],
            _ => vec![],
        };
        let node = if op == "Add" {
            n(op, &name, &[&last, "half"], &out, attrs)
        } else {
            n(op, &name, &[&last], &out, attrs)
        };
        nodes.push(node);
        last = out;
    }
    nodes.push(n(
        "Gemm",
        "/head/Gemm",
        &[&last, "head_w", "head_b"],
        "logits",
        vec![AttributeProto::int("transB", 1)],
    ));
    image_model("unary", nodes, initializers, t, "logits")
}
