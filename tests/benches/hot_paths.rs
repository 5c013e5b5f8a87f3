//! Criterion benchmarks of the two hot paths: inference (tract on the embedded Fashion-MNIST
//! CNN, one thread against all cores) and the per-activation accumulation of a transformational
//! measure. `cargo bench -p nnlens-tests`; `nnlens bench` compares whole backends.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{ArrayD, IxDyn};
use nnlens_core::BackendOptions;
use nnlens_invariance::{ArraySource, Kind, MeasureSpec, MeasureState};
use nnlens_plugins as _;

/// The CLI's embedded model (the alibi notebook's Fashion-MNIST CNN).
const MODEL: &[u8] = include_bytes!("../../run/assets/fashion_cnn.onnx");

/// Deterministic values in [0, 1) (a linear congruential sequence).
fn values(shape: &[usize]) -> ArrayD<f32> {
    let mut state = 0x2545_f491_u64;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        state =
            state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    })
}

fn inference(c: &mut Criterion) {
    let batch = 256;
    let mut group = c.benchmark_group("tract fashion_cnn batch 256");
    group.throughput(Throughput::Elements(batch as u64)).sample_size(10);
    for threads in [Some(1), None] {
        let tract = nnlens_core::backend("tract").unwrap();
        let model = (tract.load_bytes)(
            MODEL,
            "fashion_cnn.onnx",
            &BackendOptions { threads, ..BackendOptions::default() },
        )
        .unwrap();
        let mut shape = vec![batch];
        shape.extend_from_slice(&model.structure().input.shape);
        let x = values(&shape);
        let label = threads.map_or("all cores".to_string(), |t| format!("{t} thread"));
        group.bench_with_input(BenchmarkId::from_parameter(label), &x, |b, x| {
            b.iter(|| model.predict_output(x.view()).unwrap())
        });
    }
    group.finish();
}

fn accumulation(c: &mut Criterion) {
    // 64 samples x 9 transformations of a 16-channel 14x14 feature layer.
    let shape = [64, 9, 16, 14, 14];
    let a = values(&shape).mapv(f64::from);
    let mut group = c.benchmark_group("invariance accumulation 64x9x16x14x14");
    group.throughput(Throughput::Elements(a.len() as u64)).sample_size(20);
    for name in ["normalized-variance", "normalized-features-variance", "nvi"] {
        let spec = MeasureSpec::new(Kind::from_name(name).unwrap());
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut source = ArraySource::new(a.clone(), "layer", Some(0)).unwrap();
                MeasureState::accumulate(&spec, &mut source).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, inference, accumulation);
criterion_main!(benches);
