//! Every `tm_*` and `tf_*` value of ../shared/golden/tmeasures/golden.json from the command
//! line: `nnlens run <measure> --activations A.npy` on each case's array (written as f64 NPY).
#![cfg(feature = "shared")]

use assert_cmd::Command;
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::WriteNpyExt;
use nnlens_invariance::MeasureResult;
use nnlens_tests::golden::{self, channel_axis, extract, input, keys, mismatches};

#[test]
fn every_golden_value_from_the_cli() {
    let golden = golden::golden();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut compared = 0;
    for (case_name, case) in golden["cases"].as_object().unwrap() {
        let (shape, values) = input(case);
        let path = dir.path().join(format!("{case_name}.npy"));
        let array = ArrayD::from_shape_vec(IxDyn(&shape), values).unwrap();
        array.write_npy(std::fs::File::create(&path).unwrap()).unwrap();
        for key in keys() {
            let Some(expected) = case["expected"].get(key.key) else { continue };
            let mut args = vec![
                "-q".to_string(),
                "--format".into(),
                "json".into(),
                "run".into(),
                key.measure.into(),
                "--activations".into(),
                path.to_string_lossy().into_owned(),
            ];
            if let Some(c) = channel_axis(&shape) {
                args.extend(["--channel-axis".into(), c.to_string()]);
            }
            if key.roll {
                args.extend(["--inverse".into(), "roll".into()]);
            }
            for (k, v) in key.parameters.as_object().into_iter().flatten() {
                args.extend(["--param".into(), format!("{k}={v}")]);
            }
            let out = Command::cargo_bin("nnlens").unwrap().args(&args).output().unwrap();
            if expected.is_null() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                if out.status.success() || !stderr.starts_with("error: ") {
                    failures.push(format!("{case_name} {}: no clear error: {stderr}", key.key));
                }
                continue;
            }
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                failures.push(format!("{case_name} {}: {stderr}", key.key));
                continue;
            }
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let result: MeasureResult = serde_json::from_value(doc["result"].clone()).unwrap();
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
    assert_eq!(compared, 5 * 24 + 14 - 4);
}
