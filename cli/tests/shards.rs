//! Runs split into shards (`--shard K/N`) and merged (`nnlens merge`) give the whole run's
//! result and files, for N = 1, 3 and 7; shards that do not make one run are refused in one
//! line.

mod common;

use std::path::{Path, PathBuf};

use common::{fails, nnlens, stdout};
use serde_json::Value;

/// A result directory's result, without its timings (similarity's fit reports its seconds).
fn result_of(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("result.json")).unwrap();
    let mut result = serde_json::from_str::<Value>(&text).unwrap()["result"].take();
    if let Some(fit) = result.get_mut("fit").and_then(Value::as_object_mut) {
        assert!(fit.remove("seconds").is_some_and(|s| s.is_number()));
    }
    result
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every number of `a` and `b` within `rel` relative (0: identical), everything else equal.
fn same(a: &Value, b: &Value, rel: f64, path: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let (kx, ky): (Vec<_>, Vec<_>) = (x.keys().collect(), y.keys().collect());
            assert_eq!(kx, ky, "{path}");
            for k in x.keys() {
                same(&x[k], &y[k], rel, &format!("{path}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}");
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                same(p, q, rel, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(p), Value::Number(q)) if rel > 0.0 => {
            let (p, q) = (p.as_f64().unwrap(), q.as_f64().unwrap());
            assert!((p - q).abs() <= rel * p.abs().max(q.abs()), "{path}: {p} against {q}");
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

/// Runs `args --out` whole and as N shards merged, for N = 1, 3, 7; checks the merged result
/// and files against the whole run's. Returns the shard directories of N = 3.
fn merged_equals_whole(tmp: &Path, args: &[&str], rel: f64) -> Vec<PathBuf> {
    let whole = tmp.join("whole");
    let mut all = args.to_vec();
    all.extend(["--out", whole.to_str().unwrap()]);
    stdout(&all);
    let expected = result_of(&whole);
    let mut three = Vec::new();
    for n in [1usize, 3, 7] {
        let dirs: Vec<PathBuf> = (0..n).map(|k| tmp.join(format!("n{n}/shard{k}"))).collect();
        for (k, dir) in dirs.iter().enumerate() {
            let shard = format!("{k}/{n}");
            let mut all = args.to_vec();
            all.extend(["--shard", &shard, "--out", dir.to_str().unwrap()]);
            stdout(&all);
            assert_eq!(files(dir), vec!["state.json"], "a shard writes its state only");
        }
        let merged = tmp.join(format!("n{n}/merged"));
        let mut merge = vec!["merge", merged.to_str().unwrap()];
        // In any order.
        merge.extend(dirs.iter().rev().map(|d| d.to_str().unwrap()));
        stdout(&merge);
        same(&expected, &result_of(&merged), rel, &format!("N={n}"));
        assert_eq!(files(&whole), files(&merged), "N={n}");
        if n == 3 {
            three = dirs;
        }
    }
    three
}

#[test]
fn nvi_merged_from_shards_is_the_whole_run() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "run",
        "nvi",
        "--samples",
        "40",
        "--transformations",
        "rotation:n=4",
        "--layers",
        "conv_1,maxp_2,softmax",
        // Blocks of 2 samples: 20 blocks for up to 7 shards.
        "--batch-size",
        "8",
    ];
    let dirs = merged_equals_whole(tmp.path(), &args, 1e-12);
    let d: Vec<&str> = dirs.iter().map(|d| d.to_str().unwrap()).collect();
    let out = tmp.path().join("bad");
    let out = out.to_str().unwrap();

    // A missing shard, a duplicated one, one of another run.
    let e = fails(&["merge", out, d[0], d[2]]);
    assert!(e.contains("missing shards of 3: 1"), "{e}");
    let e = fails(&["merge", out, d[0], d[1], d[2], d[1]]);
    assert!(e.contains("shard 1/3 is given twice"), "{e}");
    let other = tmp.path().join("other");
    let mut all = args.to_vec();
    all[3] = "41";
    all.extend(["--shard", "1/3", "--out", other.to_str().unwrap()]);
    stdout(&all);
    let e = fails(&["merge", out, d[0], other.to_str().unwrap(), d[2]]);
    assert!(e.contains("dataset.samples differs"), "{e}");
    let e = fails(&["merge", out, d[0], tmp.path().join("nowhere").to_str().unwrap()]);
    assert!(e.contains("no complete shard state"), "{e}");
    assert!(!Path::new(out).join("result.json").exists());

    // A shard needs --out, a number it can have, and a measure that can be split.
    let mut all = args.to_vec();
    all.extend(["--shard", "1/3"]);
    assert!(fails(&all).contains("--out"));
    let mut all = args.to_vec();
    all.extend(["--shard", "3/3", "--out", out]);
    assert!(fails(&all).contains("does not exist"));
    let mut all = args.to_vec();
    all.extend(["--shard", "auto", "--out", out]);
    let e = nnlens()
        .args(&all)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&e.stderr).contains("SLURM_ARRAY_TASK_ID"));
    let shard = nnlens()
        .args(["-q", "run", "nvi", "--samples", "40", "--transformations", "rotation:n=4"])
        .args(["--layers", "softmax", "--batch-size", "8", "--shard", "auto", "--out", out])
        .env("SLURM_ARRAY_TASK_ID", "5")
        .env("SLURM_ARRAY_TASK_MIN", "4")
        .env("SLURM_ARRAY_TASK_COUNT", "3")
        .output()
        .unwrap();
    assert!(shard.status.success(), "{}", String::from_utf8_lossy(&shard.stderr));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(out).join("state.json")).unwrap())
            .unwrap();
    assert_eq!(state["manifest"]["shard"], serde_json::json!({ "index": 1, "count": 3 }));
}

#[test]
fn goodfellow_cannot_be_split() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("g");
    let e = fails(&[
        "run",
        "goodfellow",
        "--samples",
        "20",
        "--transformations",
        "rotation:n=4",
        "--shard",
        "0/2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(e.contains("cannot be split"), "{e}");
}

#[test]
fn per_class_linearity_merged_from_shards_is_the_whole_run() {
    let tmp = tempfile::tempdir().unwrap();
    // Batches of 2 instances (5 rows each): 25 batches for up to 7 shards.
    let args = [
        "run",
        "linearity",
        "--per-class",
        "--samples",
        "50",
        "--nb-samples",
        "4",
        "--batch-size",
        "10",
    ];
    merged_equals_whole(tmp.path(), &args, 0.0);
}

#[test]
fn layer_linearity_with_replayed_offsets_merged_from_shards_is_the_whole_run() {
    // Offsets are replayed by the instance's position in the run: each shard takes its rows.
    let tmp = tempfile::tempdir().unwrap();
    let offsets = tmp.path().join("offsets.npy");
    let mut x = 7u64;
    let a = ndarray::Array3::<i64>::from_shape_simple_fn((9, 3, 784), || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((x >> 33) % 9) as i64 - 4
    });
    ndarray_npy::write_npy(&offsets, &a).unwrap();
    let args = [
        "run",
        "linearity",
        "--indices",
        "0,1,2,3,4,5,6,7,8",
        "--layers",
        "all",
        "--offsets",
        offsets.to_str().unwrap(),
        // One instance (4 rows) per batch.
        "--batch-size",
        "4",
    ];
    merged_equals_whole(tmp.path(), &args, 0.0);
}

#[test]
fn evaluate_merged_from_shards_is_the_whole_run() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["evaluate", "--samples", "100", "--batch-size", "8"];
    merged_equals_whole(tmp.path(), &args, 0.0);
}

#[test]
fn similarity_merged_from_shards_is_the_whole_run() {
    // 28 references in gradient batches of 4: 7 batches for up to 7 shards. Every row is a
    // reference twice (in different shards), so every score has a tie, ranked by reference
    // index.
    let tmp = tempfile::tempdir().unwrap();
    let refs: Vec<String> = (0..28).map(|j| (j % 14).to_string()).collect();
    let refs = refs.join(",");
    let args = [
        "run",
        "similarity",
        "--indices",
        "3,8,21",
        "--reference-indices",
        &refs,
        "--gradient-batch",
        "4",
        "--top-k",
        "3",
        "--sim-fn",
        "grad_cos",
    ];
    let dirs = merged_equals_whole(tmp.path(), &args, 0.0);
    let merged: Value = result_of(&dirs[0].parent().unwrap().join("merged"));
    for order in merged["explanation"]["ordered_indices"].as_array().unwrap() {
        let order: Vec<u64> =
            order.as_array().unwrap().iter().map(|j| j.as_u64().unwrap()).collect();
        assert_eq!(order.len(), 28);
        // Each row's two references side by side, the lower index first.
        for pair in order.chunks(2) {
            assert_eq!(pair[0] % 14, pair[1] % 14, "{order:?}");
            assert!(pair[0] < pair[1], "{order:?}");
        }
    }
    // Shards of another run are refused.
    let other = tmp.path().join("other");
    let mut all = args.to_vec();
    all[11] = "grad_dot";
    all.extend(["--shard", "1/3", "--out", other.to_str().unwrap()]);
    stdout(&all);
    let out = tmp.path().join("bad");
    let d: Vec<&str> = dirs.iter().map(|d| d.to_str().unwrap()).collect();
    let e = fails(&["merge", out.to_str().unwrap(), d[0], other.to_str().unwrap(), d[2]]);
    assert!(e.contains("parameters.similarity.sim_fn differs"), "{e}");
}

#[test]
fn influence_merged_from_shards_is_the_whole_run() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["run", "influence", "--samples", "300", "--taus", "5"];
    merged_equals_whole(tmp.path(), &args, 0.0);
}

#[test]
fn performance_with_bands_merged_from_shards_is_the_whole_run() {
    let tmp = tempfile::tempdir().unwrap();
    let args =
        ["run", "performance", "--samples", "300", "--metric", "log-loss", "--bootstrap", "4"];
    merged_equals_whole(tmp.path(), &args, 0.0);
}
