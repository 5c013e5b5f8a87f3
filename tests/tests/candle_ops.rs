//! The candle backend against tract on models built in code (no `../shared` needed): the same
//! layers and every activation within 1e-5, on the conv + max-pool + dense model of the candle
//! tests and on the model exercising the operators the shared models do not use.

#[path = "../../backends/candle/tests/common/mod.rs"]
mod common;

use nnlens_core::{BackendOptions, Model};
use nnlens_tests::max_abs_diff;

fn both(bytes: &[u8]) -> (Box<dyn Model>, Box<dyn Model>) {
    nnlens_plugins::link();
    let load = |name: &str| {
        (nnlens_core::backend(name).unwrap().load_bytes)(
            bytes,
            "built.onnx",
            &BackendOptions::default(),
        )
        .unwrap()
    };
    (load("tract"), load("candle"))
}

fn compare(bytes: &[u8], x: &ndarray::ArrayD<f32>) -> usize {
    let (tract, candle) = both(bytes);
    assert_eq!(candle.structure(), tract.structure());
    let want = tract.predict(x.view(), None).unwrap();
    let got = candle.predict(x.view(), None).unwrap();
    for ((name, a), (_, b)) in want.iter().zip(got.iter()) {
        let diff = max_abs_diff(a, b);
        assert!(diff < 1e-5, "{name}: {diff}");
    }
    want.len()
}

#[test]
fn conv_pool_dense_equals_tract() {
    let bytes = common::conv_pool_dense(false, None);
    assert_eq!(compare(&bytes, &common::images(9, 2)), 7);
    let (_, candle) = both(&bytes);
    assert_eq!(
        candle.structure().names(),
        ["conv_1", "pool", "conv_2", "flat", "dense_1", "logits", "probs"]
    );
}

#[test]
fn the_other_operators_equal_tract() {
    let bytes = common::ops_model(false, None);
    let layers = compare(&bytes, &common::ops_inputs(5, 3));
    let (_, candle) = both(&bytes);
    let names = candle.structure().names();
    for expected in
        ["gconv", "gate", "pool", "flat", "squeeze", "dense", "cat", "head", "log_probs"]
    {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(layers >= 9);
}

#[test]
fn normalisation_clipping_padding_and_average_pooling_equal_tract() {
    let bytes = common::norm_model(false, None);
    let layers = compare(&bytes, &common::ops_inputs(6, 4));
    let (_, candle) = both(&bytes);
    let names = candle.structure().names();
    for expected in ["conv", "bn", "clip", "pada", "poola", "padb", "poolb", "cat", "head"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(layers >= 11);
}

#[test]
fn hard_swish_hard_sigmoid_reduce_mean_and_squeeze_excitation_equal_tract() {
    // ReduceMean's axes as an attribute (opset 13) and as an input (opset 18).
    for opset in [13, 18] {
        let bytes = common::mobile_model(opset, false, None);
        let layers = compare(&bytes, &common::ops_inputs(7, 5));
        let (_, candle) = both(&bytes);
        let names = candle.structure().names();
        for expected in ["conv", "hs", "se/avg", "se/gate", "se/scale", "relu6", "silu", "pool"] {
            assert!(names.contains(&expected), "opset {opset}: {expected} in {names:?}");
        }
        assert!(layers >= 11, "opset {opset}: {layers} layers");
    }
}

#[test]
fn every_listed_candle_operator_is_implemented_and_no_other() {
    use nnlens_onnx::proto::{ModelProto, NodeProto};
    // A model of one node of each operator is refused only when the operator is not listed.
    let model_of = |op: &str| {
        let (domain, op) = match op.strip_prefix("ai.onnx.ml.") {
            Some(op) => ("ai.onnx.ml", op),
            None => ("", op),
        };
        let mut node = NodeProto::new(op, "n", &["x"], &["y"], vec![]);
        node.domain = domain.into();
        let graph = nnlens_onnx::proto::GraphProto {
            node: vec![node],
            input: vec![nnlens_onnx::proto::ValueInfoProto::tensor(
                "x",
                nnlens_onnx::proto::elem::FLOAT,
                &[None, Some(3)],
            )],
            ..Default::default()
        };
        prost::Message::encode_to_vec(&ModelProto::new(graph, 13))
    };
    // The operator itself refused (a form of it may be refused with a detail, and a lone
    // node may fail for its missing inputs: that is not a missing operator).
    let refused = |op: &str| {
        let loaded =
            nnlens_candle::CandleModel::from_bytes(&model_of(op), "one.onnx", &Default::default());
        matches!(loaded, Err(nnlens_candle::CandleError::Unsupported { ref detail, .. }) if detail.is_empty())
    };
    for op in nnlens_candle::OPERATORS {
        assert!(!refused(op), "{op} is listed but refused");
    }
    for op in ["Resize", "Upsample", "LSTM", "Einsum", "ai.onnx.ml.TreeEnsembleClassifier"] {
        assert!(refused(op), "{op} is not listed but accepted");
    }
}

#[test]
fn element_wise_and_pass_through_operators_equal_tract() {
    let bytes = common::unary_model(false, None);
    let layers = compare(&bytes, &common::ops_inputs(5, 9));
    let (_, candle) = both(&bytes);
    let names = candle.structure().names();
    for expected in ["abs", "sqrt", "log", "neg", "exp", "same", "drop", "cast", "gap"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(layers >= 12, "{layers} layers");
}
