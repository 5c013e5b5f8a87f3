//! Bad input through the CLI: missing, empty, truncated, corrupt and wrong-shape inputs of every
//! kind the commands take, zero and huge counts, bad specs, an unwritable `--out`, a model that
//! computes NaN, and a closed standard output. Each must end with a non-zero exit and one
//! `error:` line naming the culprit, never a panic, and leave no result in `--out`.

mod common;
use common::nnlens;

use std::path::{Path, PathBuf};

use nnlens_datasets::idx::{IdxArray, IdxData, gzip};
use prost::Message;

/// The embedded model, as a file.
const MODEL: &[u8] = include_bytes!("../../run/assets/fashion_cnn.onnx");

/// Files made once per test: models, datasets and other inputs, good and bad.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `bytes` to `name`; its path as a string.
    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// A Fashion-MNIST-named test split of `n` images of `h` x `w` in the folder `name`.
    fn split(&self, name: &str, n: usize, h: usize, w: usize) -> String {
        let images = IdxArray { dims: vec![n, h, w], data: IdxData::U8(vec![100; n * h * w]) };
        let labels =
            IdxArray { dims: vec![n], data: IdxData::U8((0..n).map(|i| (i % 10) as u8).collect()) };
        self.write(&format!("{name}/t10k-images-idx3-ubyte.gz"), &gzip(&images.to_bytes()));
        self.write(&format!("{name}/t10k-labels-idx1-ubyte.gz"), &gzip(&labels.to_bytes()));
        self.path(name).to_str().unwrap().to_owned()
    }
}

/// The embedded model with one weights tensor overwritten by 0xFF bytes (NaN as f32).
fn nan_model() -> Vec<u8> {
    let mut model = nnlens_onnx::decode_model(MODEL).unwrap();
    let graph = model.graph.as_mut().unwrap();
    let weights = graph
        .initializer
        .iter_mut()
        .find(|t| t.name == "model/dense_1/MatMul/ReadVariableOp:0")
        .expect("dense_1's weights");
    if weights.raw_data.is_empty() {
        let n = weights.float_data.len();
        weights.float_data = vec![f32::from_bits(u32::MAX); n];
    } else {
        weights.raw_data.iter_mut().for_each(|b| *b = 0xFF);
    }
    model.encode_to_vec()
}

/// Runs `nnlens -q ARGS`, which must fail with one `error:` line that contains every needle and
/// no panic; the line.
fn fails_naming(args: &[&str], needles: &[&str]) -> String {
    let out = nnlens().arg("-q").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{args:?} succeeded: {}", String::from_utf8_lossy(&out.stdout));
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: not one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{args:?}: '{needle}' not in: {stderr}");
    }
    // No cause twice (`No such file or directory (os error 2): No such file or directory`).
    let parts: Vec<&str> = stderr.trim_end().split(": ").collect();
    assert!(parts.windows(2).all(|w| w[0] != w[1]), "{args:?}: a cause repeated: {stderr}");
    stderr
}

/// The bytes of an NPY file of `a`.
fn npy<A: ndarray_npy::WritableElement, D: ndarray::Dimension>(
    a: &ndarray::Array<A, D>,
) -> Vec<u8> {
    let mut bytes = Vec::new();
    ndarray_npy::WriteNpyExt::write_npy(a, &mut bytes).unwrap();
    bytes
}

/// Whether `dir` holds a result (its result.json) or any file at all.
fn holds_anything(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

#[test]
fn bad_model_files() {
    let f = Files::new();
    let missing = f.path("missing.onnx");
    let missing = missing.to_str().unwrap();
    let empty = f.write("empty.onnx", b"");
    let truncated = f.write("truncated.onnx", &MODEL[..MODEL.len() / 3]);
    let corrupt = f.write("corrupt.onnx", b"\x08\x07 not a model \xff\xfe\xfd");
    std::fs::create_dir_all(f.path("model-dir")).unwrap();
    let dir = f.path("model-dir");
    let dir = dir.to_str().unwrap();
    for model in [missing, &empty, &truncated, &corrupt] {
        let name = Path::new(model).file_name().unwrap().to_str().unwrap();
        fails_naming(&["layers", model], &[name]);
        fails_naming(&["evaluate", "--model", model], &[name]);
        let out = f.path(&format!("out-{name}"));
        fails_naming(
            &[
                "run",
                "nvi",
                "--model",
                model,
                "--samples",
                "2",
                "--transformations",
                "rotation:n=2",
                "--out",
                out.to_str().unwrap(),
            ],
            &[name],
        );
        assert!(!holds_anything(&out), "{model}: a failed run wrote into --out");
    }
    fails_naming(&["evaluate", "--model", dir], &["model-dir", "is a directory"]);
    fails_naming(&["layers", dir], &["model-dir"]);
}

#[test]
fn a_model_that_computes_nan_is_refused_by_every_measure() {
    let f = Files::new();
    let model = f.write("nan.onnx", &nan_model());
    let out = f.path("out");
    let out_s = out.to_str().unwrap();
    // The first layer computed from the NaN weights, and the first bad input row: for a
    // moments measure, a distance measure (rows are transformations in one of its passes) and
    // a same-equivariance measure.
    for metric in ["nvi", "tdi", "nvse"] {
        let args = [
            "run",
            metric,
            "--model",
            &model,
            "--samples",
            "3",
            "--transformations",
            "rotation:n=2",
            "--out",
            out_s,
        ];
        fails_naming(&args, &["dense_1", "sample 0", "NaN"]);
        assert!(!holds_anything(&out));
    }
    fails_naming(&["evaluate", "--model", &model], &["non-finite"]);
    fails_naming(&["run", "linearity", "--model", &model, "--instances", "2"], &[]);
}

#[test]
fn bad_dataset_files() {
    let f = Files::new();
    // 14 x 56 images: the bytes of 28 x 28 ones, not their geometry.
    let wide = f.split("wide", 10, 14, 56);
    for args in [
        vec!["evaluate", "--dataset", "fashion-mnist", "--data-dir", &wide],
        vec![
            "run",
            "nvi",
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            &wide,
            "--transformations",
            "rotation:n=2",
        ],
        vec![
            "run",
            "linearity",
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            &wide,
            "--instances",
            "2",
        ],
    ] {
        fails_naming(&args, &["28 x 28", "14 x 56"]);
    }
    // Empty, truncated and corrupt IDX files, a missing label file, a file as --data-dir.
    let good = f.split("good", 4, 28, 28);
    let images = std::fs::read(Path::new(&good).join("t10k-images-idx3-ubyte.gz")).unwrap();
    let labels = std::fs::read(Path::new(&good).join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let raw = IdxArray { dims: vec![4, 28, 28], data: IdxData::U8(vec![1; 4 * 784]) }.to_bytes();
    for (name, image_bytes) in [
        ("empty", Vec::new()),
        ("truncated-gz", images[..images.len() / 2].to_vec()),
        ("truncated-idx", gzip(&raw[..raw.len() - 10])),
        ("corrupt", b"\x1f\x8b\x08\x00garbage".to_vec()),
        ("bad-magic", gzip(b"\x00\x00\x77\x03\x00\x00\x00\x01")),
    ] {
        f.write(&format!("{name}/t10k-images-idx3-ubyte.gz"), &image_bytes);
        f.write(&format!("{name}/t10k-labels-idx1-ubyte.gz"), &labels);
        let dir = f.path(name);
        fails_naming(
            &["evaluate", "--dataset", "fashion-mnist", "--data-dir", dir.to_str().unwrap()],
            &["t10k-images-idx3-ubyte.gz"],
        );
    }
    f.write("no-labels/t10k-images-idx3-ubyte.gz", &images);
    let dir = f.path("no-labels");
    fails_naming(
        &["evaluate", "--dataset", "fashion-mnist", "--data-dir", dir.to_str().unwrap()],
        &["t10k-labels-idx1-ubyte"],
    );
    let file = f.write("a-file", b"x");
    fails_naming(&["evaluate", "--dataset", "fashion-mnist", "--data-dir", &file], &["a-file"]);
    // Labels of another count than the images.
    let more = IdxArray { dims: vec![5], data: IdxData::U8(vec![1; 5]) };
    f.write("counts/t10k-images-idx3-ubyte.gz", &images);
    f.write("counts/t10k-labels-idx1-ubyte.gz", &gzip(&more.to_bytes()));
    let dir = f.path("counts");
    fails_naming(
        &["evaluate", "--dataset", "fashion-mnist", "--data-dir", dir.to_str().unwrap()],
        &[],
    );
}

#[test]
fn zero_and_huge_counts() {
    let f = Files::new();
    let out = f.path("out");
    let out_s = out.to_str().unwrap();
    for (args, needles) in [
        (vec!["evaluate", "--samples", "0"], vec!["--samples 0"]),
        (vec!["evaluate", "--samples", "100000000"], vec!["100000000"]),
        (
            vec!["run", "nvi", "--samples", "0", "--transformations", "hflip", "--out", out_s],
            vec!["--samples 0"],
        ),
        (vec!["run", "linearity", "--instances", "0", "--out", out_s], vec!["--instances 0"]),
        (vec!["run", "linearity", "--instances", "100000000"], vec!["100000000"]),
        (vec!["run", "linearity", "--indices", "1000000000000"], vec!["1000000000000"]),
        (vec!["sample", "--count", "100000000", "--out", out_s], vec!["--count"]),
        (
            vec!["transformations", "rotation:n=100000000"],
            vec!["rotation:n=100000000", "more than the 100000"],
        ),
        (
            vec!["run", "nvi", "--samples", "2", "--transformations", "rotation:n=100000000"],
            vec!["more than the 100000"],
        ),
        (vec!["transformations", "--group", "1", "--n", "100000000"], vec!["more than the 100000"]),
        (vec!["transformations", "--group", "9"], vec!["group 9"]),
    ] {
        fails_naming(&args, &needles);
        assert!(!holds_anything(&out), "{args:?} wrote into --out");
    }
    // An NPY file of row numbers is read as integers: 10^12 stays 10^12.
    let rows = f.write("rows.npy", &npy(&ndarray::array![3i64, 1_000_000_000_000]));
    fails_naming(&["run", "linearity", "--indices", &rows], &["1000000000000"]);
}

#[test]
fn zero_threads_are_refused() {
    for args in [
        vec!["evaluate", "--threads", "0"],
        vec!["bench", "--threads", "0", "--images", "8"],
        vec!["run", "nvi", "--threads", "0", "--samples", "2", "--transformations", "hflip"],
    ] {
        let out = nnlens().arg("-q").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A usage error: clap's status 2, on one line as every other error.
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains("--threads"), "{stderr}");
        assert!(stderr.contains("at least 1"), "{stderr}");
    }
}

#[test]
fn bad_specs_and_parameters() {
    for (args, needles) in [
        (vec!["transformations", "spin:n=3"], vec!["spin"]),
        (vec!["transformations", "scale:0..0"], vec!["scale:0..0", "n=K"]),
        (vec!["transformations", "translation:dx=2..-2"], vec!["empty"]),
        (vec!["run", "nvi", "--samples", "2", "--transformations", "rotation:n=x"], vec!["'x'"]),
        (vec!["run", "nope"], vec!["nope"]),
        (vec!["run", "nvi", "--samples", "2", "-p", "alpha"], vec!["alpha"]),
        (
            vec![
                "run",
                "nvi",
                "--samples",
                "2",
                "--transformations",
                "hflip",
                "--layers",
                "conv_9",
            ],
            vec!["conv_9"],
        ),
        (
            vec!["run", "nvi", "--samples", "2", "--transformations", "hflip", "--fill", "purple"],
            vec!["purple"],
        ),
        (vec!["run", "nvi", "--samples", "2"], vec!["--transformations"]),
    ] {
        fails_naming(&args, &needles);
    }
}

#[test]
fn bad_activation_and_offset_files() {
    let f = Files::new();
    let missing = f.path("missing.npy");
    let empty = f.write("empty.npy", b"");
    let corrupt = f.write("corrupt.npy", b"\x93NUMPY\x01\x00garbage");
    let good = npy(&ndarray::Array3::<f32>::zeros((4, 3, 5)));
    let truncated = f.write("truncated.npy", &good[..good.len() - 7]);
    for path in [missing.to_str().unwrap(), &empty, &corrupt, &truncated] {
        let name = Path::new(path).file_name().unwrap().to_str().unwrap();
        fails_naming(&["run", "nvi", "--activations", path], &[name]);
        fails_naming(&["run", "linearity", "--indices", "1,2", "--offsets", path], &[name]);
    }
    // An activation array with NaN: the layer (the file's stem) and the sample are named.
    let mut a = ndarray::Array3::<f32>::zeros((4, 3, 5));
    a[[2, 1, 3]] = f32::NAN;
    let nan = f.write("dense_9.npy", &npy(&a));
    fails_naming(&["run", "nvi", "--activations", &nan], &["dense_9.npy", "[2, 1, 3]", "NaN"]);
}

#[test]
fn unwritable_out_and_bad_results_to_plot() {
    let f = Files::new();
    let file = f.write("a-file", b"not a directory");
    let below_a_file = format!("{file}/out");
    for args in [
        vec![
            "run",
            "nvi",
            "--samples",
            "2",
            "--transformations",
            "rotation:n=2",
            "--out",
            &below_a_file,
        ],
        vec!["predict", "--samples", "2", "--out", &below_a_file],
        vec!["sample", "--count", "2", "--out", &below_a_file],
        vec!["run", "linearity", "--instances", "2", "--nb-samples", "2", "--out", &below_a_file],
    ] {
        fails_naming(&args, &["a-file"]);
    }
    // plot: no directory, no result.json, JSON that is not a result, truncated JSON.
    let missing = f.path("missing");
    fails_naming(&["plot", missing.to_str().unwrap()], &["missing"]);
    std::fs::create_dir_all(f.path("empty")).unwrap();
    fails_naming(&["plot", f.path("empty").to_str().unwrap()], &["result.json"]);
    for (name, text) in [
        ("array", "[1, 2, 3]"),
        ("truncated", "{\"manifest\": {\"comm"),
        ("other", "{\"result\": {\"x\": 1}}"),
    ] {
        f.write(&format!("{name}/result.json"), text.as_bytes());
        fails_naming(&["plot", f.path(name).to_str().unwrap()], &[name, "result.json"]);
    }
}

#[test]
fn a_closed_stdout_is_an_error_but_a_closed_pipe_is_not() {
    use std::process::Stdio;
    // `nnlens metrics >&-`: the descriptor is closed before nnlens starts.
    let bin = assert_cmd::cargo::cargo_bin("nnlens");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("'{}' metrics >&-", bin.display()))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("standard output"), "{stderr}");
    // `nnlens metrics | head -1`: a reader that goes away ends nnlens quietly.
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -o pipefail; '{}' metrics | head -c 1 >/dev/null", bin.display()))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn a_torchscript_file_is_named_in_one_line() {
    // The first bytes of a zip archive, as torch.jit.save writes: whichever backend auto picks.
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("model.pt");
    std::fs::write(&pt, b"PK\x03\x04\x14\x00\x00\x00archive/data.pkl").unwrap();
    fails_naming(&["layers", pt.to_str().unwrap()], &["TorchScript", "torch.onnx.export"]);
    fails_naming(
        &["evaluate", "--model", pt.to_str().unwrap(), "--backend", "candle"],
        &["TorchScript", "model.pt"],
    );
    // Without -q too: no fallback warning before the error.
    let out = nnlens().args(["layers", pt.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
