//! The tract backend on the ONNX model built in code that every ONNX backend's tests share
//! (`nnlens_onnx::fixture`), checked against its forward pass written out by hand (f64 loops):
//! no file from outside the repository is needed.

use ndarray::{ArrayD, IxDyn};
use nnlens_core::{BackendOptions, CoreError, Model};
use nnlens_onnx::fixture::{by_hand, fixture_bytes, fixture_images as images};
use nnlens_tract::TractModel;
use rayon::prelude::*;

fn load() -> TractModel {
    TractModel::from_bytes(&fixture_bytes(), "fixture.onnx", &BackendOptions::default()).unwrap()
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

/// Every model run has the shape of one chunk of 8: the number of workers changes nothing, bitwise
/// (on one machine). An input at another place of a chunk may take another kernel lane whose
/// f32 sums are in another order (seen on the Fashion-MNIST CNN's dense layers: places 2 and 3
/// of every 4 differ in the last bit), so rows alone or in other batches agree to the rounding
/// of the fixture's few-term dot products on values of at most 1: 1e-6 is about 8 eps.
#[test]
fn an_input_gets_the_same_activations_in_any_batch_and_bitwise_on_any_workers() {
    let with = |threads: usize| {
        let options = BackendOptions { threads: Some(threads), ..BackendOptions::default() };
        TractModel::from_bytes(&fixture_bytes(), "fixture.onnx", &options).unwrap()
    };
    let one = with(1);
    // 203 rows: many chunks and a short last one.
    let x = images(203);
    let layers = ["conv", "probs", "conv"];
    let reference = one.predict(x.view(), Some(&layers)).unwrap();
    assert_eq!(reference.names(), layers);
    let close = |a: ndarray::ArrayViewD<'_, f32>, b: ndarray::ArrayViewD<'_, f32>, what: &str| {
        assert_eq!(a.shape(), b.shape());
        let worst = a.iter().zip(b.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-6, "{what}: {worst}");
    };
    // Each row alone, and in batches of other sizes that put it at other places of its chunk
    // (rows on chunk edges and in the padded last chunk among them).
    for b in [0, 7, 8, 12, 13, 100, 199, 200, 202] {
        let row = x.slice(ndarray::s![b..b + 1, .., .., ..]).to_owned().into_dyn();
        let alone = one.predict(row.view(), Some(&layers)).unwrap();
        for (a, r) in alone.values().iter().zip(reference.values()) {
            close(a.index_axis(ndarray::Axis(0), 0), r.index_axis(ndarray::Axis(0), b), "alone");
        }
        let from = b.saturating_sub(3);
        let window = x.slice(ndarray::s![from..b + 1, .., .., ..]).to_owned().into_dyn();
        let got = one.predict(window.view(), Some(&layers)).unwrap();
        for (g, r) in got.values().iter().zip(reference.values()) {
            let (g, r) =
                (g.index_axis(ndarray::Axis(0), b - from), r.index_axis(ndarray::Axis(0), b));
            close(g, r, "window");
        }
    }
    // The same inputs among other ones, at the same places of their chunks: bitwise.
    let others = images(97).mapv(|v| 1.0 - v);
    let mixed = ndarray::concatenate(
        ndarray::Axis(0),
        &[others.slice(ndarray::s![..40, .., .., ..]), x.slice(ndarray::s![..50, .., .., ..])],
    )
    .unwrap();
    let got = one.predict(mixed.view().into_dyn(), Some(&layers)).unwrap();
    for (g, r) in got.values().iter().zip(reference.values()) {
        assert_eq!(
            g.slice_axis(ndarray::Axis(0), (40..90).into()),
            r.slice_axis(ndarray::Axis(0), (0..50).into())
        );
    }
    // Called from rayon workers (a measure that runs its own chunks in parallel), the
    // chunks run on the caller's thread: the same activations.
    let two = with(2);
    let nested: Vec<_> =
        (0..4).into_par_iter().map(|_| two.predict(x.view(), Some(&layers)).unwrap()).collect();
    for got in nested {
        assert_eq!(got.values(), reference.values());
    }
    for threads in [2, 3, 5] {
        let m = with(threads);
        assert_eq!(m.workers(), threads);
        // Twice: the second run reuses the chunks' run states.
        for _ in 0..2 {
            let got = m.predict(x.view(), Some(&layers)).unwrap();
            assert_eq!(got.names(), reference.names());
            assert_eq!(got.values(), reference.values(), "{threads} workers");
        }
    }
}

#[test]
fn chunk_ranges_cover_the_batch_in_chunks_of_one_size() {
    use nnlens_tract::{CHUNK_ROWS, chunk_ranges};
    // By hand: 20 rows are chunks of 8, 8 and 4.
    let ranges = chunk_ranges(20);
    assert_eq!(ranges, [0..8, 8..16, 16..20]);
    assert!(chunk_ranges(0).is_empty());
    for batch in [1, 2, 7, 8, 9, 100, 203, 256, 1000] {
        let ranges = chunk_ranges(batch);
        // Contiguous, in order, covering 0..batch; all full but the last.
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(batch));
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        assert!(ranges[..ranges.len() - 1].iter().all(|r| r.len() == CHUNK_ROWS));
        assert!(!ranges[ranges.len() - 1].is_empty());
    }
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
