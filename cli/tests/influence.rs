//! `nnlens run influence` and `nnlens run performance` end to end: images of the embedded sample
//! with the embedded model, and a table with predictions given as files.

mod common;
use common::{fails, is_png, json};

use ndarray::Array2;
use ndarray_npy::WriteNpyExt;

/// `[tau, feature, class]` values of a saved explanation.
fn values(doc: &serde_json::Value) -> (Vec<usize>, Vec<f64>) {
    let v = &doc["result"]["explanation"]["values"];
    let shape =
        v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let data =
        v["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect();
    (shape, data)
}

#[test]
fn images_give_one_map_per_class_and_tau_zero_is_the_mean_prediction() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("influence");
    let doc = json(&["run", "influence", "--samples", "300", "--out", out.to_str().unwrap()]);
    let (shape, v) = values(&doc);
    assert_eq!(shape, [3, 784, 10]);
    // tau = 0: every feature's weights are uniform, so the influence is the mean prediction,
    // the same for every pixel, and the class means sum to 1 (softmax outputs).
    let mean: Vec<f64> = (0..10).map(|c| v[784 * 10 + c]).collect();
    assert!((mean.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{mean:?}");
    for f in 0..784 {
        for c in 0..10 {
            assert!((v[(784 + f) * 10 + c] - mean[c]).abs() < 1e-12);
        }
    }
    assert!(is_png(&out.join("influence.png")) && out.join("influence.svg").is_file());
    let csv = std::fs::read_to_string(out.join("influence.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 * 784 * 10);
    // Performance: accuracy at tau = 0 is the plain accuracy of the model on these images.
    let perf = json(&["run", "performance", "--samples", "300", "--out", out.to_str().unwrap()]);
    let (shape, p) = values(&perf);
    assert_eq!(shape, [3, 784]);
    let plain = p[784];
    assert!((0.8..=1.0).contains(&plain), "{plain}");
    assert!(p[784..2 * 784].iter().all(|&a| (a - plain).abs() < 1e-12));
    assert!(is_png(&out.join("performance.png")));
}

#[test]
fn tables_give_curves_rankings_and_bootstrap_bands() {
    let dir = tempfile::tempdir().unwrap();
    let n = 200;
    // Feature `signal` drives the prediction, `flat` takes two values independently of it.
    let mut csv = String::from("signal,flat\n");
    let mut pred = Array2::<f64>::zeros((n, 2));
    for i in 0..n {
        let s = (i % 20) as f64 / 19.0;
        let flat = ((i / 20) % 2) as f64;
        csv.push_str(&format!("{s},{flat}\n"));
        pred[[i, 1]] = 0.1 + 0.8 * s;
        pred[[i, 0]] = 1.0 - pred[[i, 1]];
    }
    let table = dir.path().join("t.csv");
    std::fs::write(&table, csv).unwrap();
    let preds = dir.path().join("p.npy");
    pred.write_npy(std::fs::File::create(&preds).unwrap()).unwrap();
    let out = dir.path().join("tab");
    let args = [
        "run",
        "influence",
        "--table",
        table.to_str().unwrap(),
        "--predictions",
        preds.to_str().unwrap(),
        "--taus",
        "-1,0,1",
        "--bootstrap",
        "10",
        "--seed",
        "4",
        "--out",
        out.to_str().unwrap(),
    ];
    let doc = json(&args);
    let (shape, v) = values(&doc);
    assert_eq!(shape, [3, 2, 2]);
    let at = |t: usize, f: usize, c: usize| v[(t * 2 + f) * 2 + c];
    // The independent feature leaves the mean prediction where it is; the signal moves it.
    for t in 0..3 {
        assert!((at(t, 1, 1) - 0.5).abs() < 1e-9, "{}", at(t, 1, 1));
    }
    assert!(at(2, 0, 1) > 0.6 && at(0, 0, 1) < 0.4);
    assert!(doc["result"]["explanation"]["bands"]["low"].is_object());
    for f in ["influence_curves_1.png", "influence_ranking_1.png", "influence.csv", "result.json"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // The same seed, the same bands.
    assert_eq!(doc["result"], json(&args)["result"]);
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = fails(&["run", "influence", "--samples", "50", "--alpha", "0.7"]);
    assert!(e.contains("alpha"), "{e}");
    let e = fails(&["run", "influence", "--samples", "50", "--taus", "-1,2"]);
    assert!(e.contains("tau"), "{e}");
    let e = fails(&["run", "performance", "--samples", "50", "--metric", "f1"]);
    assert!(e.contains("f1"), "{e}");
    let table = dir.path().join("t.csv");
    std::fs::write(&table, "a,b\n1,2\n3,x\n").unwrap();
    let e =
        fails(&["run", "influence", "--table", table.to_str().unwrap(), "--predictions", "p.npy"]);
    assert!(e.contains("'x'"), "{e}");
    let wrong = dir.path().join("p.npy");
    Array2::<f64>::zeros((5, 2)).write_npy(std::fs::File::create(&wrong).unwrap()).unwrap();
    let e =
        fails(&["run", "influence", "--samples", "50", "--predictions", wrong.to_str().unwrap()]);
    assert!(e.contains("5 predictions"), "{e}");
}
