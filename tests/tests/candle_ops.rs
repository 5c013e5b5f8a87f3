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
