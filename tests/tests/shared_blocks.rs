//! The block iterator over samples x transformations on a real model (needs `../shared`).
#![cfg(feature = "shared")]

use nnlens_core::{BlockIterator, DataSet, conform_input};
use nnlens_datasets::{PixelScale, Split};
use nnlens_tests::*;
use nnlens_transforms::{ImageTransformationsDataSet, Resample, seed_group};

#[test]
fn blocks_of_7_by_4_visit_100_by_9_inputs_once_with_their_own_activations() {
    let model = load("tract", &shared_model("fashion_cnn.onnx"));
    let data = shared_split("fashion-mnist", Split::Test, PixelScale::Unit);
    let samples = data.subset(&(0..100).collect::<Vec<_>>()).unwrap();
    let set = seed_group(1, 9, 28, 28).unwrap();
    let mut dataset = ImageTransformationsDataSet::new(samples, set, Resample::default()).unwrap();
    for transposed in [false, true] {
        if transposed {
            dataset.transpose();
        }
        let it = BlockIterator::new(model.as_ref(), &dataset).with_batch_size(10).unwrap();
        let (h, w) = (dataset.height(), dataset.width());
        let mut seen = vec![vec![0u32; w]; h];
        let mut rows_of_blocks = 0;
        for row in it.get_block(7, 4).unwrap() {
            rows_of_blocks += 1;
            for block in row {
                let block = block.unwrap();
                assert_eq!(block.is_dataset_transposed(), transposed);
                // Checking every input alone is slow: check all of the first rows of blocks,
                // and the corners of the others.
                let check_all = rows_of_blocks <= 2;
                for (i, &r) in block.rows_dataset().iter().enumerate() {
                    for (j, &c) in block.columns_dataset().iter().enumerate() {
                        seen[r][c] += 1;
                        let corner = (i == 0 || i + 1 == block.height())
                            && (j == 0 || j + 1 == block.width());
                        if !(check_all || corner) {
                            continue;
                        }
                        let x = dataset.get_matrix(&[r], &[c]).unwrap();
                        let x = x.into_shape_with_order(ndarray::IxDyn(&[1, 28, 28, 1])).unwrap();
                        let x = conform_input(x, &model.structure().input).unwrap();
                        let alone = model.predict(x.view(), None).unwrap();
                        for (l, (name, a)) in alone.iter().enumerate() {
                            let got = block.at(i, j, l).unwrap();
                            let diff = got
                                .iter()
                                .zip(a.iter())
                                .map(|(p, q)| (p - q).abs())
                                .fold(0.0, f32::max);
                            assert!(diff < 1e-5, "({r}, {c}) layer {name}: {diff}");
                        }
                        let f = block.feature(i, j, 0, 5).unwrap();
                        assert_eq!(f.shape(), &[28, 28]);
                    }
                }
            }
        }
        assert_eq!(rows_of_blocks, h.div_ceil(7));
        assert!(seen.iter().flatten().all(|&k| k == 1), "transposed {transposed}: {seen:?}");
    }
}

/// Peak resident memory (VmHWM) of this process, in MiB (Linux).
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Memory is bounded by the block, not the dataset: the peak after 10000 x 16 is within 1.5x of
/// the peak after 1000 x 16. Slow (160000 forward passes): run by hand with
/// `cargo test -p nnlens-tests --features shared --test shared_blocks -- --ignored --nocapture`.
#[test]
#[ignore = "slow: 176000 forward passes; prints the peak memory figures"]
fn peak_memory_does_not_grow_with_the_dataset() {
    let model = load("tract", &shared_model("fashion_cnn.onnx"));
    let data = shared_split("fashion-mnist", Split::Test, PixelScale::Unit);
    let mut peaks = Vec::new();
    for samples in [1000usize, 10000] {
        let subset = data.subset(&(0..samples).collect::<Vec<_>>()).unwrap();
        let dataset = ImageTransformationsDataSet::new(
            subset,
            seed_group(1, 16, 28, 28).unwrap(),
            Resample::default(),
        )
        .unwrap();
        let it = BlockIterator::new(model.as_ref(), &dataset).with_batch_size(64).unwrap();
        let start = std::time::Instant::now();
        let mut total = 0f64;
        for row in it.get_block(16, 16).unwrap() {
            for block in row {
                let block = block.unwrap();
                total += block.layer(0).unwrap().iter().map(|&v| v as f64).sum::<f64>();
            }
        }
        let peak = peak_mib();
        println!(
            "{samples} x 16: peak RSS {peak:.1} MiB after {:.1} s (checksum {total:.3e})",
            start.elapsed().as_secs_f64()
        );
        peaks.push(peak);
    }
    println!("ratio 10000 / 1000: {:.3}", peaks[1] / peaks[0]);
    assert!(peaks[1] <= 1.5 * peaks[0], "{peaks:?}");
}
