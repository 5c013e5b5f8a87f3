//! `nnlens run similarity` end to end on the embedded model and sample (Fashion-MNIST test
//! images explained by other test images): result files, plots, redraw, the same scores with
//! and without precompute, and bad input.

mod common;
use common::{fails, is_png, json, nnlens};

fn scores(doc: &serde_json::Value) -> Vec<Vec<f64>> {
    serde_json::from_value(doc["result"]["explanation"]["scores"].clone()).unwrap()
}

#[test]
fn explains_instances_with_files_plots_and_redraw() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let out_s = out.to_str().unwrap();
    let doc = json(&[
        "run",
        "similarity",
        "--reference",
        "60",
        "--indices",
        "3,17",
        "--sim-fn",
        "grad_cos",
        "--top-k",
        "4",
        "--out",
        out_s,
    ]);
    let result = &doc["result"];
    assert_eq!(result["metric"], "similarity");
    assert_eq!(doc["manifest"]["backend"], "candle");
    assert_eq!(result["instances"]["rows"], serde_json::json!([3, 17]));
    let e = &result["explanation"];
    let s = scores(&doc);
    assert_eq!((s.len(), s[0].len()), (2, 60));
    for (i, row) in s.iter().enumerate() {
        assert!(row.iter().all(|v| (-1.0 - 1e-9..=1.0 + 1e-9).contains(v)), "cosines");
        let order: Vec<usize> = serde_json::from_value(e["ordered_indices"][i].clone()).unwrap();
        assert_eq!(order.len(), 60);
        assert!(order.windows(2).all(|w| row[w[0]] >= row[w[1]]));
        let most: Vec<usize> = serde_json::from_value(e["most_similar"][i].clone()).unwrap();
        assert_eq!(most, order[..4]);
    }
    let fit = &result["fit"];
    assert_eq!(fit["references"], 60);
    assert!(fit["precomputed"].as_bool().unwrap());
    assert_eq!(
        fit["gradient_bytes"].as_u64().unwrap(),
        60 * 4 * fit["parameters"].as_u64().unwrap()
    );
    for f in ["result.json", "scores.csv", "most_similar.svg", "least_similar.svg"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    for f in [
        "most_similar.png",
        "least_similar.png",
        "instance_0_by_label.png",
        "instance_1_by_prediction.png",
    ] {
        assert!(is_png(&out.join(f)), "{f}");
    }
    let csv = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 60);
    assert!(csv.starts_with("instance,instance_row,rank,reference,reference_row"));

    // `nnlens plot` redraws the figures from result.json alone.
    let again = dir.path().join("again");
    nnlens().args(["-q", "plot", out_s, "--out", again.to_str().unwrap()]).assert().success();
    assert!(is_png(&again.join("most_similar.png")));
    assert!(is_png(&again.join("instance_1_by_label.png")));
}

#[test]
fn precompute_on_and_off_and_explaining_itself() {
    let base = ["run", "similarity", "--reference-indices", "0,1,2,3,4,5,6,7", "--indices", "2,5"];
    let stored = json(&[&base[..], &["--sim-fn", "grad_cos"]].concat());
    let streamed = json(
        &[&base[..], &["--sim-fn", "grad_cos", "--no-precompute", "--gradient-batch", "3"]]
            .concat(),
    );
    assert_eq!(scores(&stored), scores(&streamed));
    assert_eq!(streamed["result"]["fit"]["gradient_bytes"], 0);
    // The instances are reference rows 2 and 5 themselves: their cosine is 1 up to alibi's
    // constant, |g|^2 / (|g|^2 + 1e-7) with |g|^2 the grad_dot of the image with itself (row 5
    // is classified so well that |g|^2 = 2.2e-7 and its cosine with itself is 0.69).
    let s = scores(&stored);
    let dot = json(&[&base[..], &["--sim-fn", "grad_dot"]].concat());
    let d = scores(&dot);
    for (i, own) in [(0, 2), (1, 5)] {
        let n2 = d[i][own];
        assert!((s[i][own] - n2 / (n2 + 1e-7)).abs() < 1e-9, "{s:?} {d:?}");
    }
    assert!((s[0][2] - 1.0).abs() < 1e-6, "a well-scaled gradient: cosine 1");
    assert_eq!(stored["result"]["explanation"]["most_similar"][0][0], 2);
    // grad_dot is symmetric: score(2 against 5) = score(5 against 2).
    assert!((d[0][5] - d[1][2]).abs() <= 1e-9 * d[0][5].abs().max(1e-12));
    // Explaining the predicted class: targets are the predictions.
    let pred = json(&[&base[..], &["--targets", "predicted"]].concat());
    assert_eq!(pred["result"]["instances"]["targets"], pred["result"]["instances"]["predictions"]);
}

#[test]
fn bad_input_is_a_clear_error() {
    let e = fails(&["run", "similarity", "--sim-fn", "grad_l2", "--reference", "5"]);
    assert!(e.contains("grad_l2"), "{e}");
    let e = fails(&["run", "similarity", "--reference", "5000"]);
    assert!(e.contains("5000") && e.contains("1000"), "{e}");
    let e = fails(&["run", "similarity", "--reference", "5", "--indices", "1,99999"]);
    assert!(e.contains("99999"), "{e}");
    let e = fails(&["run", "similarity", "--reference", "5", "--backend", "ort"]);
    assert!(e.contains("candle") || e.contains("ort"), "{e}");
    let e = fails(&["run", "similarity", "--reference", "5", "--top-k", "0"]);
    assert!(e.contains("top_k"), "{e}");
    let e = fails(&["run", "similarity", "--reference", "5", "--reference-split", "train"]);
    assert!(e.contains("embedded"), "{e}");
    let e = fails(&["run", "similarity", "--reference", "5", "--loss", "mse"]);
    assert!(e.contains("--loss"), "{e}");
}
