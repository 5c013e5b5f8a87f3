//! `nnlens run <invariance measure>`, `analyze` and `plot` end to end, on the embedded model and
//! sample and on activation arrays written here.

mod common;
use common::{fails, is_png, json, nnlens};

use ndarray::{Array, IxDyn};
use ndarray_npy::WriteNpyExt;

#[test]
fn run_writes_result_csv_and_plots_and_plot_redraws_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nvi");
    let out_s = out.to_str().unwrap();
    let doc = json(&[
        "run",
        "nvi",
        "--samples",
        "12",
        "--transformations",
        "rotation:n=4",
        "--layers",
        "conv_1,dense_2,softmax",
        "--batch-size",
        "10",
        "--out",
        out_s,
    ]);
    let result = &doc["result"];
    assert_eq!(result["samples"], 12);
    assert_eq!(result["transformations"], 4);
    let layers: Vec<&str> =
        result["layers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(layers, ["conv_1", "dense_2", "softmax"]);
    assert_eq!(result["layers"][0]["values"].as_array().unwrap().len(), 64 * 28 * 28);
    assert_eq!(result["layers"][0]["features"].as_array().unwrap().len(), 64);
    let manifest = &doc["manifest"];
    assert_eq!(manifest["command"], "run");
    // One manifest schema for every family: the metric under `metric` (schema 1).
    assert_eq!(manifest["metric"], "nvi");
    assert_eq!(manifest["schema_version"], 1);
    assert_eq!(manifest["parameters"]["transformations"]["count"], 4);
    assert_eq!(manifest["model"]["sha256"].as_str().unwrap().len(), 64);
    assert!(manifest["timings_s"]["measure"].as_f64().unwrap() > 0.0);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(saved["result"], doc["result"]);
    let csv = std::fs::read_to_string(out.join("layers.csv")).unwrap();
    assert!(csv.starts_with("layer,value,") && csv.contains("\nsoftmax,"), "{csv}");
    let features = std::fs::read_to_string(out.join("features.csv")).unwrap();
    assert_eq!(features.lines().count(), 1 + 64, "{features}");
    for plot in ["layers.png", "features.png"] {
        assert!(is_png(&out.join(plot)), "{plot}");
        std::fs::remove_file(out.join(plot)).unwrap();
    }
    assert!(out.join("layers.svg").is_file());
    nnlens().args(["-q", "plot", out_s]).assert().success();
    assert!(is_png(&out.join("layers.png")) && is_png(&out.join("features.png")));
}

#[test]
fn the_same_run_gives_the_same_numbers() {
    let args = [
        "run",
        "tvi",
        "--samples",
        "6",
        "--transformations",
        "translation:dx=-1..1",
        "--layers",
        "dense_2",
    ];
    let a = json(&args);
    let b = json(&args);
    assert_eq!(a["result"], b["result"]);
}

#[test]
fn analyze_runs_every_group_and_draws_the_scatter() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("analysis");
    let doc = json(&[
        "analyze",
        "normalized-variance",
        "--samples",
        "6",
        "--n",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let groups = doc["result"]["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 7);
    for (g, row) in groups.iter().enumerate() {
        assert_eq!(row["group"], g);
        assert_eq!(row["transformations"], 2);
        let accuracy = row["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy));
    }
    // Group 0 is n identities: no transformation variance (up to the engine's rounding: the
    // same input at two places of a batch need not give bit-identical activations).
    let identity = groups[0]["measure"].as_f64().unwrap();
    assert!((0.0..1e-9).contains(&identity), "{identity}");
    assert!(groups[1]["measure"].as_f64().unwrap() > 1e-3);
    assert!(is_png(&out.join("analysis.png")));
    let csv = std::fs::read_to_string(out.join("analysis.csv")).unwrap();
    assert_eq!(csv.lines().count(), 8);
}

#[test]
fn activations_from_an_npy_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acts.npy");
    // 4 samples x 3 rolls of a (2, 2, 3) map: exactly same-equivariant under `roll`.
    let base = Array::from_shape_fn(IxDyn(&[4, 2, 2, 3]), |i| {
        (i[0] * 12 + i[1] * 6 + i[2] * 3 + i[3]) as f64 / 8.0
    });
    let a = Array::from_shape_fn(IxDyn(&[4, 3, 2, 2, 3]), |i| {
        base[[i[0], i[2], i[3], (i[4] + 3 - i[1]) % 3]]
    });
    a.write_npy(std::fs::File::create(&path).unwrap()).unwrap();
    let p = path.to_str().unwrap();
    let doc =
        json(&["run", "nvse", "--activations", p, "--channel-axis", "0", "--inverse", "roll"]);
    assert_eq!(doc["result"]["total"], 0.0);
    assert_eq!(doc["result"]["layers"][0]["name"], "acts");
    assert_eq!(
        doc["manifest"]["parameters"]["source"]["shape"],
        serde_json::json!([4, 3, 2, 2, 3])
    );
    let doc = json(&["run", "tvi", "--activations", p, "--layer-name", "conv"]);
    assert!(doc["result"]["total"].as_f64().unwrap() > 0.0);
    let doc = json(&[
        "run",
        "anova",
        "--activations",
        p,
        "--param",
        "alpha=0.9",
        "-p",
        "bonferroni=false",
    ]);
    assert_eq!(
        doc["result"]["parameters"],
        serde_json::json!({ "alpha": 0.9, "bonferroni": false })
    );
    // A set spec as the transformations of activation maps: translation by whole pixels.
    let doc = json(&[
        "run",
        "tvse",
        "--activations",
        p,
        "--channel-axis",
        "0",
        "--inverse",
        "identity:n=3",
    ]);
    assert_eq!(
        doc["result"]["total"],
        json(&["run", "tvi", "--activations", p])["result"]["total"]
    );
}

#[test]
fn bad_invariance_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("nan.npy");
    let a = Array::from_shape_vec(IxDyn(&[2, 2, 1]), vec![1.0, f64::NAN, 0.0, 0.0]).unwrap();
    a.write_npy(std::fs::File::create(&bad).unwrap()).unwrap();
    let e = fails(&["run", "nvi", "--activations", bad.to_str().unwrap()]);
    assert!(e.contains("NaN"), "{e}");
    let flat = dir.path().join("flat.npy");
    Array::from_shape_vec(IxDyn(&[4]), vec![0.0f64; 4])
        .unwrap()
        .write_npy(std::fs::File::create(&flat).unwrap())
        .unwrap();
    let e = fails(&["run", "nvi", "--activations", flat.to_str().unwrap()]);
    assert!(e.contains("A[sample, transformation"), "{e}");
    let e = fails(&["run", "nvi", "--activations", "/nonexistent/a.npy"]);
    assert!(e.contains("/nonexistent/a.npy"), "{e}");
    let e = fails(&["run", "nvi", "--samples", "3"]);
    assert!(e.contains("--transformations"), "{e}");
    let e = fails(&[
        "run",
        "nvi",
        "--samples",
        "3",
        "--transformations",
        "rotation:n=2",
        "--layers",
        "nope",
    ]);
    assert!(e.contains("nope"), "{e}");
    let e = fails(&["run", "nope", "--samples", "3"]);
    assert!(e.contains("nvi"), "{e}");
    let e = fails(&[
        "run",
        "nvi",
        "--samples",
        "3",
        "--transformations",
        "rotation:n=2",
        "-p",
        "alpha",
    ]);
    assert!(e.contains("key=value"), "{e}");
    let e = fails(&[
        "run",
        "dses",
        "--samples",
        "3",
        "--transformations",
        "rotation:45",
        "--layers",
        "conv_1",
    ]);
    assert!(e.contains("identity"), "{e}");
    let e = fails(&["plot", dir.path().to_str().unwrap()]);
    assert!(e.contains("result.json"), "{e}");
}
