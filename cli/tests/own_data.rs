//! Your own data through the CLI: image folders, NPY arrays and CIFAR binary files of RGB
//! images, with torchvision's preprocessing, on a small residual CNN that PyTorch trained and
//! exported (`tests/fixtures/rgb`, made by `make_fixtures.py` there).

mod common;
use common::{fails, is_png, json, nnlens, stdout};

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, Array4, ArrayD, Axis};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rgb")
}

fn fixture(name: &str) -> String {
    fixtures().join(name).to_str().unwrap().to_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_npy<A: ndarray_npy::WritableElement, D: ndarray::Dimension>(
    path: &Path,
    a: &ndarray::Array<A, D>,
) {
    a.write_npy(std::fs::File::create(path).unwrap()).unwrap();
}

fn read_npy<A: ndarray_npy::ReadableElement>(path: &Path) -> ArrayD<A> {
    ArrayD::<A>::read_npy(std::fs::File::open(path).unwrap()).unwrap()
}

/// `n` deterministic 32 x 32 RGB images (a gradient and a square whose colour depends on the
/// label), labels `row * 4 / n` (sorted, so that a folder lists them in row order).
fn images(n: usize) -> (Array4<u8>, Vec<usize>) {
    let labels: Vec<usize> = (0..n).map(|r| r * 4 / n).collect();
    let a = Array4::from_shape_fn((n, 32, 32, 3), |(i, y, x, c)| {
        let inside = (8..24).contains(&y) && (4 + i % 5..20 + i % 5).contains(&x);
        let v =
            if inside { 60 * labels[i] + 40 * c } else { (x * 7 + y * 3 + c * 50 + i * 11) % 256 };
        (v % 256) as u8
    });
    (a, labels)
}

const CLASSES: [&str; 4] = ["airplane", "automobile", "bird", "cat"];

/// The same images as an image folder of PNG files, an NPY (channels last), an NPY (channels
/// first) and a CIFAR-10 test batch, written by the test.
struct Sources {
    dir: tempfile::TempDir,
}

impl Sources {
    fn new(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (a, labels) = images(n);
        for (i, image) in a.outer_iter().enumerate() {
            let class = dir.path().join("folder").join(CLASSES[labels[i]]);
            std::fs::create_dir_all(&class).unwrap();
            let pixels: Vec<u8> = image.iter().copied().collect();
            image::save_buffer(
                class.join(format!("{i:03}.png")),
                &pixels,
                32,
                32,
                image::ColorType::Rgb8,
            )
            .unwrap();
        }
        write_npy(&dir.path().join("nhwc.npy"), &a);
        let nchw = a.clone().permuted_axes([0, 3, 1, 2]).as_standard_layout().into_owned();
        write_npy(&dir.path().join("nchw.npy"), &nchw);
        write_npy(
            &dir.path().join("labels.npy"),
            &Array1::from_iter(labels.iter().map(|&l| l as i64)),
        );
        std::fs::write(dir.path().join("classes.txt"), CLASSES.join("\n")).unwrap();
        let cifar = dir.path().join("cifar/cifar-10-batches-bin");
        std::fs::create_dir_all(&cifar).unwrap();
        let pixels: Vec<u8> = a.iter().copied().collect();
        let records = nnlens_datasets::cifar::cifar_records(
            &nnlens_datasets::cifar::CIFAR10,
            &pixels,
            &labels,
        );
        std::fs::write(cifar.join("test_batch.bin"), records).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `--dataset ...` arguments of each source.
    fn all(&self) -> Vec<Vec<String>> {
        let p = |n: &str| s(&self.path(n)).to_owned();
        vec![
            vec!["--dataset".into(), format!("folder:{}", p("folder"))],
            vec![
                "--dataset".into(),
                format!("npy:{}", p("nhwc.npy")),
                "--labels".into(),
                p("labels.npy"),
                "--class-names".into(),
                p("classes.txt"),
            ],
            vec![
                "--dataset".into(),
                p("nchw.npy"),
                "--labels".into(),
                p("labels.npy"),
                "--class-names".into(),
                p("classes.txt"),
            ],
            vec![
                "--dataset".into(),
                "cifar10".into(),
                "--data-dir".into(),
                p("cifar"),
                "--split".into(),
                "test".into(),
            ],
        ]
    }
}

fn args<'a>(head: &[&'a str], source: &'a [String], tail: &[&'a str]) -> Vec<&'a str> {
    head.iter()
        .copied()
        .chain(source.iter().map(String::as_str))
        .chain(tail.iter().copied())
        .collect()
}

#[test]
fn folder_npy_and_cifar_give_the_same_inputs_and_results() {
    let src = Sources::new(24);
    let model = fixture("rgb_cnn.onnx");
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    let mut results = Vec::new();
    for (k, source) in src.all().iter().enumerate() {
        let out = src.path(&format!("inputs-{k}"));
        stdout(&args(&["sample"], source, &["--as", "inputs", "--out", s(&out)]));
        inputs.push(std::fs::read(out.join("inputs.npy")).unwrap());
        let r = json(&args(&["evaluate", "--model", &model], source, &[]));
        let names = r["manifest"]["dataset"]["class_names"].clone();
        let cifar = k == 3;
        let expected: Vec<&str> =
            if cifar { nnlens_datasets::cifar::CIFAR10.classes.to_vec() } else { CLASSES.to_vec() };
        assert_eq!(names, serde_json::json!(expected), "source {k}");
        results.push((
            r["result"]["loss"].clone(),
            r["result"]["accuracy"].clone(),
            r["result"]["samples"].clone(),
        ));
    }
    // The model is fed the same bytes from every source, and so says the same.
    for k in 1..inputs.len() {
        assert!(inputs[k] == inputs[0], "source {k} feeds other inputs than the folder");
        assert_eq!(results[k], results[0], "source {k}");
    }
    let x: ArrayD<f32> = read_npy(&src.path("inputs-0/inputs.npy"));
    assert_eq!(x.shape(), &[24, 32, 32, 3]);
    let (a, _) = images(24);
    assert_eq!(x[[5, 3, 7, 2]], f32::from(a[[5, 3, 7, 2]]) / 255.0);
}

/// The row of each image of the fixture folder written by `nnlens sample`: ImageFolder order,
/// class by class, rows in order within each (`reference.json`'s `imagefolder_order`).
fn folder_order(labels: &[i64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by_key(|&r| labels[r]);
    order
}

/// The fixture's test images written as an image folder by `nnlens sample`.
fn rgb_folder(dir: &Path) -> String {
    let folder = dir.join("folder");
    stdout(&[
        "sample",
        "--dataset",
        &format!("npy:{}", fixture("test_images.npy")),
        "--labels",
        &fixture("test_labels.npy"),
        "--class-names",
        &fixture("classes.txt"),
        "--as",
        "folder",
        "--out",
        s(&folder),
    ]);
    format!("folder:{}", s(&folder))
}

#[test]
fn the_pytorch_cnn_on_a_folder_matches_torch_and_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let folder = rgb_folder(dir.path());
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("reference.json")).unwrap()).unwrap();
    let model = fixture("rgb_cnn.onnx");
    let r = json(&["evaluate", "--model", &model, "--dataset", &folder]);
    let torch = &reference["torch"];
    // 190 of 200: the same images right and wrong (the narrowest top-2 margin is 0.0087, far
    // above f32 differences between engines).
    assert_eq!(r["result"]["accuracy"].as_f64().unwrap(), torch["accuracy"].as_f64().unwrap());
    let (loss, torch_loss) =
        (r["result"]["loss"].as_f64().unwrap(), torch["mean_cross_entropy"].as_f64().unwrap());
    // Logits agree with torch's to ~1e-5 (f32 sums of a few hundred terms); the mean loss moves
    // by at most that.
    assert!((loss - torch_loss).abs() < 1e-4, "loss {loss}, torch {torch_loss}");
    assert_eq!(r["manifest"]["dataset"]["kind"], "folder");
    assert_eq!(
        r["manifest"]["dataset"]["class_names"],
        serde_json::json!(["cross", "disc", "square", "stripes"])
    );
    assert_eq!(r["manifest"]["dataset"]["content_sha256"].as_str().map(str::len), Some(64));

    let out = dir.path().join("predict");
    stdout(&[
        "predict",
        "--model",
        &model,
        "--dataset",
        &folder,
        "--samples",
        "200",
        "--layers",
        "logits",
        "--out",
        s(&out),
    ]);
    let ours: ArrayD<f32> = read_npy(&out.join("logits.npy"));
    let ort: Array2<f32> =
        Array2::read_npy(std::fs::File::open(fixture("ort_logits.npy")).unwrap()).unwrap();
    let labels: Array1<i64> =
        Array1::read_npy(std::fs::File::open(fixture("test_labels.npy")).unwrap()).unwrap();
    let order = folder_order(labels.as_slice().unwrap());
    let listed: Vec<usize> =
        serde_json::from_value(reference["imagefolder"]["imagefolder_order"].clone()).unwrap();
    assert_eq!(order, listed, "the folder lists the images as torchvision's ImageFolder does");
    let ort = ort.select(Axis(0), &order);
    let diff = ours.iter().zip(ort.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff <= 1e-4, "largest difference from onnxruntime's logits: {diff}");
}

#[test]
fn every_family_runs_on_the_rgb_folder_with_its_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let folder = rgb_folder(dir.path());
    let model = fixture("rgb_cnn.onnx");
    let run = |name: &str, extra: &[&str], files: &[&str]| {
        let out = dir.path().join(name);
        let mut a = extra.to_vec();
        a.extend_from_slice(&["--model", &model, "--dataset", &folder, "--out", s(&out)]);
        stdout(&a);
        for f in files {
            let p = out.join(f);
            assert!(p.is_file(), "{name}: no {f}");
            if f.ends_with(".png") {
                assert!(is_png(&p), "{name}: {f}");
            }
        }
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap())
                .unwrap();
        assert_eq!(doc["manifest"]["dataset"]["class_names"][3], "stripes", "{name}");
        out
    };
    let _ = run(
        "nvi",
        &["run", "nvi", "--transformations", "rotation:n=8", "--samples", "64"],
        &["layers.csv", "layers.png", "features.png"],
    )
    .join("x");
    let lin = run(
        "linearity",
        &["run", "linearity", "--per-class", "--nb-samples", "5"],
        &["classes.csv", "classes.png", "histograms.png", "instances.csv"],
    );
    let classes = std::fs::read_to_string(lin.join("classes.csv")).unwrap();
    assert!(classes.contains("stripes") && classes.contains("disc"), "{classes}");
    let sim = run(
        "similarity",
        &["run", "similarity", "--backend", "candle", "--instances", "2", "--reference", "40"],
        &["scores.csv", "most_similar.png", "least_similar.png"],
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sim.join("result.json")).unwrap()).unwrap();
    assert_eq!(doc["result"]["figures"]["channels"], 3);
    let inf = run("influence", &["run", "influence"], &["influence.csv", "influence.png"]);
    let csv = std::fs::read_to_string(inf.join("influence.csv")).unwrap();
    assert!(
        csv.contains("stripes") && csv.contains("pixel 0,0 G"),
        "{}",
        &csv[..csv.len().min(400)]
    );
    run("performance", &["run", "performance"], &["performance.csv", "performance.png"]);
    run(
        "analysis",
        &["analyze", "nvi", "--samples", "40", "--n", "4"],
        &["analysis.csv", "analysis.png"],
    );
}

/// ToTensor() and Normalize() of a byte image, as torchvision computes them (f32).
fn normalise(v: u8, c: usize) -> f32 {
    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];
    (f32::from(v) / 255.0 - MEAN[c]) / STD[c]
}

#[test]
fn the_jpeg_pipeline_is_torchvisions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("inputs");
    let pre = [
        "--resize",
        "256",
        "--center-crop",
        "224",
        "--mean",
        "0.485,0.456,0.406",
        "--std",
        "0.229,0.224,0.225",
    ];
    let folder = format!("folder:{}", fixture("jpegs"));
    let mut a = vec!["sample", "--dataset", &folder, "--as", "inputs", "--out", s(&out)];
    a.extend_from_slice(&pre);
    stdout(&a);
    let ours: ArrayD<f32> = read_npy(&out.join("inputs.npy"));
    assert_eq!(ours.shape(), &[6, 224, 224, 3]);
    // torchvision's Resize(256) + CenterCrop(224) of the same files (dump_torchvision_crops.py).
    let mut largest = 0f32;
    let files = [
        "beach/img1_320x240",
        "beach/img2_240x320",
        "forest/img1_500x375",
        "forest/img2_256x256",
        "street/img1_301x300",
        "street/img2_640x427",
    ];
    for (i, f) in files.iter().enumerate() {
        let crop = image::open(fixtures().join(format!("jpegs_224/{f}.png"))).unwrap().to_rgb8();
        for (p, v) in crop.into_raw().into_iter().enumerate() {
            let (y, x, c) = (p / (224 * 3), p / 3 % 224, p % 3);
            largest = largest.max((ours[[i, y, x, c]] - normalise(v, c)).abs());
        }
    }
    let sample: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sample.json")).unwrap()).unwrap();
    let decoder = sample["source"]["jpeg_decoder"].as_str().unwrap().to_owned();
    eprintln!("largest difference from torchvision's inputs: {largest} (decoder: {decoder})");
    if decoder.starts_with("libjpeg-turbo") {
        // Pillow's decoder and Pillow's resize: the same bytes.
        assert_eq!(largest, 0.0, "with libjpeg-turbo the inputs are torchvision's to the bit");
    } else {
        assert!(
            std::env::var_os("NNLENS_REQUIRE_LIBJPEG_TURBO").is_none(),
            "NNLENS_REQUIRE_LIBJPEG_TURBO is set but JPEGs were decoded by {decoder}"
        );
        // image-rs's decoder rounds its IDCT and colour conversion differently from
        // libjpeg-turbo: at most 4 levels of 255 a value, 4 / 255 / 0.224 after Normalize.
        assert!(largest <= 4.0 / 255.0 / 0.224 + 1e-6, "{largest}");
    }
    // A 224 x 224 model evaluates and measures the folder with that preprocessing.
    let model = fixture("tiny224.onnx");
    let mut e = vec!["evaluate", "--model", &model, "--dataset", &folder];
    e.extend_from_slice(&pre);
    let r = json(&e);
    assert_eq!(r["result"]["samples"], 6);
    assert_eq!(r["manifest"]["dataset"]["preprocessing"]["center_crop"], 224);
    let nvi = dir.path().join("nvi");
    let mut n = vec![
        "run",
        "nvi",
        "--model",
        &model,
        "--dataset",
        &folder,
        "--transformations",
        "rotation:n=4",
        "--out",
        s(&nvi),
    ];
    n.extend_from_slice(&pre);
    stdout(&n);
    assert!(is_png(&nvi.join("layers.png")));
}

#[test]
fn a_hundred_classes() {
    // A CIFAR-100 test batch of 200 images, two of each fine label.
    let dir = tempfile::tempdir().unwrap();
    let cifar = dir.path().join("cifar-100-binary");
    std::fs::create_dir_all(&cifar).unwrap();
    let (a, _) = images(200);
    let labels: Vec<usize> = (0..200).map(|i| i / 2).collect();
    let pixels: Vec<u8> = a.iter().copied().collect();
    let spec = &nnlens_datasets::cifar::CIFAR100;
    std::fs::write(
        cifar.join("test.bin"),
        nnlens_datasets::cifar::cifar_records(spec, &pixels, &labels),
    )
    .unwrap();
    let source = ["--dataset", "cifar100", "--data-dir", s(dir.path())];
    let folder = dir.path().join("folder");
    let mut a = vec!["sample", "--as", "folder", "--out", s(&folder)];
    a.extend_from_slice(&source);
    stdout(&a);
    let classes =
        std::fs::read_dir(&folder).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count();
    assert_eq!(classes, 100);
    // The folder reads back with the same labels and names.
    let out = dir.path().join("lin");
    let folder_arg = format!("folder:{}", s(&folder));
    let model = fixture("rgb_cnn.onnx");
    stdout(&[
        "run",
        "linearity",
        "--per-class",
        "--nb-samples",
        "3",
        "--model",
        &model,
        "--dataset",
        &folder_arg,
        "--out",
        s(&out),
    ]);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let names = doc["manifest"]["dataset"]["class_names"].as_array().unwrap().clone();
    assert_eq!(names.len(), 100);
    assert_eq!(names[99], "worm");
    let rows = std::fs::read_to_string(out.join("instances.csv")).unwrap().lines().count();
    assert_eq!(rows, 201);
}

/// A command that must fail with one line naming every one of `needles`.
fn fails_naming(args: &[&str], needles: &[&str]) {
    let e = fails(args);
    for n in needles {
        assert!(e.contains(n), "{args:?}: '{n}' not in: {e}");
    }
}

#[test]
fn bad_sources_are_one_line_errors_naming_the_file() {
    let src = Sources::new(8);
    let model = fixture("rgb_cnn.onnx");
    let eval = |dataset: &[&str], needles: &[&str]| {
        let mut a = vec!["evaluate", "--model", &model];
        a.extend_from_slice(dataset);
        fails_naming(&a, needles);
    };
    let d = src.dir.path();
    // A missing folder, and a split folder that is not there.
    eval(
        &["--dataset", &format!("folder:{}", s(&d.join("nowhere")))],
        &["nowhere", "does not exist"],
    );
    eval(
        &["--dataset", &format!("folder:{}", s(&d.join("folder"))), "--split", "val"],
        &["val", "does not exist"],
    );
    // An unknown name lists the spellings.
    eval(&["--dataset", "imagenet"], &["imagenet", "folder:DIR", "npy:FILE.npy", "cifar10"]);
    // An empty class folder.
    std::fs::create_dir_all(d.join("folder/empty")).unwrap();
    eval(
        &["--dataset", &format!("folder:{}", s(&d.join("folder")))],
        &["empty", "holds no images"],
    );
    std::fs::remove_dir(d.join("folder/empty")).unwrap();
    // A corrupt PNG: its header is read when the folder is opened.
    std::fs::write(d.join("folder/cat/zzz.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    eval(
        &["--dataset", &format!("folder:{}", s(&d.join("folder")))],
        &["zzz.png", "not a readable image"],
    );
    // A PNG whose pixels are cut off: found when it is decoded, still one line naming it.
    let good = std::fs::read(d.join("folder/cat/007.png")).unwrap();
    std::fs::write(d.join("folder/cat/zzz.png"), &good[..good.len() - 40]).unwrap();
    eval(&["--dataset", &format!("folder:{}", s(&d.join("folder")))], &["zzz.png"]);
    // Mixed sizes without --resize.
    image::save_buffer(
        d.join("folder/cat/zzz.png"),
        &[0u8; 40 * 30 * 3],
        40,
        30,
        image::ColorType::Rgb8,
    )
    .unwrap();
    eval(
        &["--dataset", &format!("folder:{}", s(&d.join("folder")))],
        &["zzz.png", "30 x 40", "--resize"],
    );
    std::fs::remove_file(d.join("folder/cat/zzz.png")).unwrap();
    // NPY of the wrong rank and of the wrong type; labels of another count; a missing file.
    write_npy(&d.join("rank2.npy"), &Array2::<u8>::zeros((8, 3072)));
    eval(&["--dataset", &format!("npy:{}", s(&d.join("rank2.npy")))], &["rank2.npy", "(N, H, W)"]);
    write_npy(&d.join("ints.npy"), &Array4::<i32>::zeros((8, 32, 32, 3)));
    eval(
        &["--dataset", &format!("npy:{}", s(&d.join("ints.npy")))],
        &["ints.npy", "uint8, float32 or float64"],
    );
    write_npy(&d.join("few.npy"), &Array1::<i64>::zeros(5));
    eval(
        &[
            "--dataset",
            &format!("npy:{}", s(&d.join("nhwc.npy"))),
            "--labels",
            s(&d.join("few.npy")),
        ],
        &["few.npy", "5 labels", "8 images"],
    );
    eval(&["--dataset", &format!("npy:{}", s(&d.join("gone.npy")))], &["gone.npy"]);
    // An NPY without labels cannot be evaluated.
    eval(&["--dataset", &format!("npy:{}", s(&d.join("nhwc.npy")))], &["needs labels", "--labels"]);
    // A truncated CIFAR record.
    let batch = d.join("cifar/cifar-10-batches-bin/test_batch.bin");
    let bytes = std::fs::read(&batch).unwrap();
    std::fs::write(&batch, &bytes[..bytes.len() - 100]).unwrap();
    eval(
        &["--dataset", "cifar10", "--data-dir", s(&d.join("cifar"))],
        &["test_batch.bin", "truncated CIFAR record"],
    );
    // Images that do not fit the model: its input and the data's shapes are named.
    eval(&["--dataset", "embedded"], &["input", "[3, 32, 32]", "[28, 28, 1]"]);
    // A bad --mean.
    eval(
        &["--dataset", &format!("folder:{}", s(&d.join("folder"))), "--mean", "0.5,0.5"],
        &["--mean", "2 values"],
    );
    // `fetch` knows CIFAR's tarball: a mirror that does not answer is named with the file.
    let cache = d.join("cache");
    fails_naming(
        &["fetch", "cifar10", "--cache-dir", s(&cache), "--mirror", "http://127.0.0.1:9/"],
        &["cifar-10-binary.tar.gz"],
    );
    assert!(!cache.join("cifar10/cifar-10-binary.tar.gz").exists());
    let _ = nnlens;
}
