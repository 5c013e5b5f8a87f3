//! Every `tm_*` and `tf_*` value of ../shared/golden/tmeasures/golden.json, through the library
//! path the CLI's `--activations` uses (an [`ArraySource`] of the case's f64 array).
#![cfg(feature = "shared")]

use ndarray::{ArrayD, IxDyn};
use nnlens_invariance::{ArraySource, MeasureSpec, Roll, compute};
use nnlens_tests::golden::{self, channel_axis, extract, input, keys, mismatches};

#[test]
fn every_golden_value_is_reproduced() {
    let golden = golden::golden();
    let mut failures = Vec::new();
    let mut compared = 0;
    for (case_name, case) in golden["cases"].as_object().unwrap() {
        let (shape, values) = input(case);
        for key in keys() {
            let Some(expected) = case["expected"].get(key.key) else { continue };
            let array = ArrayD::from_shape_vec(IxDyn(&shape), values.clone()).unwrap();
            let mut source = ArraySource::new(array, "layer", channel_axis(&shape)).unwrap();
            if key.roll {
                source = source.with_transformations(Box::new(Roll));
            }
            let spec = MeasureSpec::from_json(key.measure, &key.parameters).unwrap();
            let result = compute(&spec, &mut source);
            if expected.is_null() {
                // Undefined there (DSES of vectors): an error, not a number.
                if result.is_ok() {
                    failures
                        .push(format!("{case_name} {}: a value where none is defined", key.key));
                }
                continue;
            }
            let result = match result {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{case_name} {}: {e}", key.key));
                    continue;
                }
            };
            let mut want = Vec::new();
            golden::flatten(expected, &mut want);
            let bad = mismatches(&extract(&result, key.part), &want);
            if !bad.is_empty() {
                failures.push(format!("{case_name} {}: {}", key.key, bad.join(", ")));
            }
            compared += 1;
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    // 5 cases x 24 keys + 14 keys of the (C, H, W) case only, less the 4 undefined DSES values.
    assert_eq!(compared, 5 * 24 + 14 - 4);
}
