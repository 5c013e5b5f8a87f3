//! Resolving the models and datasets named on the command line.

use std::path::Path;

use anyhow::{Context, Result, bail};
use nnlens_core::{
    ArtifactRef, BackendOptions, DatasetRef, GradModel, Model, Precision, RunManifest,
};
use nnlens_datasets::catalog::{artifact, artifact_of_bytes};
use nnlens_datasets::download::default_cache_dir;
use nnlens_datasets::idx::parse_idx;
use nnlens_datasets::{
    ColorConversion, DataRequest, DataSource, ImageDataSet, PixelScale, Preprocess, Split,
    dataset_spec,
};
use rand::SeedableRng;

use crate::args::{Color, DataArgs, ModelArgs, RunContext, Scale};
use crate::assets;

/// A model ready to run, and what it was loaded from.
pub struct LoadedModel {
    /// The model.
    pub model: Box<dyn Model>,
    /// The file (or embedded asset) it came from.
    pub artifact: ArtifactRef,
    /// The backend's name.
    pub backend: String,
    /// Why `--backend auto` chose it (`None` for a backend named on the command line).
    pub choice: Option<String>,
}

impl LoadedModel {
    /// A manifest of `command` run with this model: its backend and file filled in.
    pub fn manifest(&self, command: &str, ctx: &RunContext) -> RunManifest {
        let mut m = RunManifest::new(command, ctx.seed);
        self.describe(&mut m);
        m
    }

    /// Fills in the backend, how it was chosen, and the model file of a manifest.
    pub fn describe(&self, m: &mut RunManifest) {
        m.backend = Some(self.backend.clone());
        m.backend_choice = self.choice.clone();
        m.model = Some(self.artifact.clone());
    }
}

/// What `--backend auto` runs: ONNX Runtime (`ort`) when this build has it and its library
/// loads (`ORT_DYLIB_PATH`, else the `onnxruntime` package of `python3`), else tract; and why.
pub fn auto_backend() -> (&'static str, String) {
    let Ok(ort) = nnlens_core::backend("ort") else {
        return ("tract", "auto: tract (this build has no ONNX Runtime backend)".into());
    };
    match (ort.available)() {
        Ok(()) => {
            let from = match std::env::var_os("ORT_DYLIB_PATH") {
                Some(p) => format!("ORT_DYLIB_PATH={}", Path::new(&p).display()),
                None => "the onnxruntime package of python3".into(),
            };
            ("ort", format!("auto: ONNX Runtime, whose library was found ({from})"))
        }
        Err(why) => ("tract", format!("auto: tract, as ONNX Runtime cannot run here: {why}")),
    }
}

/// A model ready to give per-example gradients, and what it was loaded from.
pub struct LoadedGradModel {
    /// The model.
    pub model: Box<dyn GradModel>,
    /// The file (or embedded asset) it came from.
    pub artifact: ArtifactRef,
    /// The backend's name.
    pub backend: String,
}

/// The model file `path` after the checks every loader makes (a directory or a missing file
/// said so), or `None` for the embedded model.
fn model_file(path: Option<&Path>) -> Result<Option<&Path>> {
    if let Some(path) = path {
        if path.is_dir() {
            bail!("--model {} is a directory; give the model file (.onnx) itself", path.display());
        }
        if !path.is_file() {
            bail!("--model {} does not exist", path.display());
        }
    }
    Ok(path)
}

fn usable(entry: &nnlens_core::BackendEntry) -> Result<()> {
    if let Err(reason) = (entry.available)() {
        bail!("backend '{}' cannot run here: {reason}", entry.name);
    }
    Ok(())
}

/// The `--backend` value that lets nnlens choose ([`auto_backend`]).
pub const AUTO: &str = "auto";

/// Whether `path` is a zip archive: a TorchScript (or `torch.save`) file, never ONNX.
fn is_torch_archive(path: Option<&Path>) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    path.and_then(|p| std::fs::File::open(p).ok())
        .and_then(|mut f| f.read_exact(&mut head).ok())
        .is_some()
        && head == *b"PK\x03\x04"
}

/// The backend options of `args`.
pub fn backend_options(args: &ModelArgs) -> BackendOptions {
    BackendOptions {
        threads: args.threads,
        device: args.device,
        input_shape: args.input_shape.clone(),
        ..BackendOptions::default()
    }
}

/// Loads `path` (or the embedded model) with the named backend.
///
/// # Errors
/// An unknown or unusable backend, a missing file, a model the backend cannot read.
pub fn load_model_from(
    path: Option<&Path>,
    backend: &str,
    threads: Option<usize>,
) -> Result<LoadedModel> {
    load_model_with(path, backend, &BackendOptions { threads, ..BackendOptions::default() })
}

/// Loads `path` (or the embedded model) with the named backend and `options`.
///
/// `auto` runs a TorchScript file (a zip archive) with tch, and an ONNX file as
/// [`auto_backend`] says.
///
/// # Errors
/// As [`load_model_from`].
pub fn load_model_with(
    path: Option<&Path>,
    backend: &str,
    options: &BackendOptions,
) -> Result<LoadedModel> {
    let load = |name: &str| -> Result<(Box<dyn Model>, ArtifactRef)> {
        let entry = nnlens_core::backend(name)?;
        usable(entry)?;
        load_file_or_embedded(path, options, entry.load, entry.load_bytes)
    };
    if backend != AUTO {
        let (model, artifact) = load(backend)?;
        return Ok(LoadedModel { model, artifact, backend: backend.to_string(), choice: None });
    }
    if is_torch_archive(model_file(path)?) {
        let why = "auto: libtorch (tch), as the model is a TorchScript file".to_string();
        let entry = nnlens_core::backend("tch")?;
        if let Err(reason) = (entry.available)() {
            bail!(
                "the model is a zip archive (TorchScript, or a torch.save checkpoint), which the tch backend reads: {reason}; or export it to ONNX with torch.onnx.export"
            );
        }
        let (model, artifact) = load("tch")?;
        tracing::info!(backend = "tch", "{why}");
        return Ok(LoadedModel { model, artifact, backend: "tch".into(), choice: Some(why) });
    }
    if options.device != nnlens_core::Device::Cpu {
        // A GPU: ONNX Runtime's CUDA execution provider is the only ONNX one.
        let (model, artifact) = load("ort")?;
        let why = format!(
            "auto: ONNX Runtime, the ONNX backend that runs on --device {}",
            options.device
        );
        return Ok(LoadedModel { model, artifact, backend: "ort".into(), choice: Some(why) });
    }
    let (name, mut why) = auto_backend();
    let (model, artifact, name) = match load(name) {
        Ok((model, artifact)) => (model, artifact, name),
        Err(e) if name != "tract" => {
            // A model ONNX Runtime refuses may still run in tract; a file neither can read is
            // tract's one error (a file that is not ONNX, a missing data file...).
            let (model, artifact) = load("tract")?;
            why = format!("{why}; ONNX Runtime could not load the model ({e:#}), so tract ran");
            tracing::warn!("{why}");
            (model, artifact, "tract")
        }
        Err(e) => return Err(e),
    };
    tracing::info!(backend = name, "{why}");
    Ok(LoadedModel { model, artifact, backend: name.to_string(), choice: Some(why) })
}

/// Loads the model of `args`.
///
/// # Errors
/// As [`load_model_from`].
pub fn load_model(args: &ModelArgs) -> Result<LoadedModel> {
    load_model_with(args.model.as_deref(), &args.backend, &backend_options(args))
}

/// Loads the model of `args` with a backend that gives gradients, in `precision`.
///
/// # Errors
/// A backend that gives no gradients (naming those that do), else as [`load_model_from`].
///
/// `parameters` restricts the gradients to the trainable tensors it selects
/// ([`nnlens_core::select_parameters`]).
pub fn load_grad_model(
    args: &ModelArgs,
    precision: Precision,
    parameters: Option<&[String]>,
) -> Result<LoadedGradModel> {
    let backend = if args.backend == AUTO {
        // The gradient backends: tch for TorchScript, candle for ONNX.
        if is_torch_archive(model_file(args.model.as_deref())?) { "tch" } else { "candle" }
    } else {
        args.backend.as_str()
    };
    let (entry, loaders) = nnlens_core::grad_backend(backend)?;
    usable(entry)?;
    let options = BackendOptions {
        precision,
        parameters: parameters.map(<[_]>::to_vec),
        ..backend_options(args)
    };
    let (model, artifact) =
        load_file_or_embedded(args.model.as_deref(), &options, loaders.load, loaders.load_bytes)?;
    Ok(LoadedGradModel { model, artifact, backend: entry.name.to_string() })
}

/// The model file `path` loaded with `load`, or the embedded model with `load_bytes`, and
/// what it was loaded from.
fn load_file_or_embedded<M>(
    path: Option<&Path>,
    options: &BackendOptions,
    load: fn(&Path, &BackendOptions) -> nnlens_core::Result<M>,
    load_bytes: fn(&[u8], &str, &BackendOptions) -> nnlens_core::Result<M>,
) -> Result<(M, ArtifactRef)> {
    Ok(match model_file(path)? {
        Some(path) => (load(path, options)?, artifact(path)?),
        None => (
            load_bytes(assets::MODEL, assets::MODEL_LABEL, options)?,
            artifact_of_bytes(assets::MODEL_LABEL, assets::MODEL),
        ),
    })
}

/// A dataset split ready to use, and what it was read from.
pub struct LoadedData {
    /// The images and labels.
    pub data: ImageDataSet,
    /// For the manifest.
    pub reference: DatasetRef,
}

fn scale(s: Scale) -> PixelScale {
    match s {
        Scale::Unit => PixelScale::Unit,
        Scale::Raw => PixelScale::Raw,
    }
}

impl DataArgs {
    /// The preprocessing the flags ask for.
    pub fn preprocess(&self) -> Preprocess {
        Preprocess {
            color: self.color.map(|c| match c {
                Color::Gray => ColorConversion::Gray,
                Color::Rgb => ColorConversion::Rgb,
            }),
            resize: self.resize,
            center_crop: self.center_crop,
            scale: scale(self.pixel_scale),
            mean: self.mean.clone(),
            std: self.std.clone(),
        }
    }

    /// Whether the data is a named dataset with train and test splits (the embedded sample
    /// has only its test split).
    pub fn has_train_split(&self) -> bool {
        matches!(DataSource::parse(&self.dataset), Ok(DataSource::Idx(_) | DataSource::Cifar(_)))
    }

    /// The split to read, as given or the source's default (`test` for named datasets, none
    /// for a folder), for messages and manifests.
    pub fn split_name(&self) -> Option<String> {
        self.split.clone().or_else(|| {
            (self.dataset == "embedded" || self.has_train_split()).then(|| "test".to_string())
        })
    }
}

/// The embedded Fashion-MNIST sample.
fn embedded(args: &DataArgs) -> Result<LoadedData> {
    let split: Split = args.split.as_deref().unwrap_or("test").parse()?;
    if split != Split::Test {
        bail!(
            "the embedded dataset is a sample of the Fashion-MNIST test split only; use --split test"
        );
    }
    if args.data_dir.is_some() {
        bail!(
            "--data-dir needs a named dataset (mnist, fashion-mnist, cifar10, cifar100); the embedded sample needs no files"
        );
    }
    if args.labels.is_some() {
        bail!(
            "--labels is for an NPY source (--dataset npy:X.npy); the embedded sample has its labels"
        );
    }
    let images = parse_idx(assets::IMAGES, Path::new(assets::IMAGES_LABEL))?;
    let labels = parse_idx(assets::LABELS, Path::new(assets::LABELS_LABEL))?;
    let spec = dataset_spec("fashion-mnist")?;
    let names = match &args.class_names {
        Some(path) => nnlens_datasets::source::read_class_names(path)?,
        None => spec.classes.iter().map(|c| c.to_string()).collect(),
    };
    let data = ImageDataSet::from_idx(
        "embedded/test",
        &images,
        &labels,
        scale(args.pixel_scale),
        spec.classes.len(),
    )?
    .with_class_names(names)?
    .with_preprocess(args.preprocess())?;
    let reference = DatasetRef {
        name: "embedded (1000 Fashion-MNIST test images)".into(),
        split: Some("test".into()),
        samples: data.len(),
        files: vec![
            artifact_of_bytes(assets::IMAGES_LABEL, assets::IMAGES),
            artifact_of_bytes(assets::LABELS_LABEL, assets::LABELS),
        ],
        kind: Some("embedded".into()),
        class_names: data.class_names().to_vec(),
        preprocessing: serde_json::to_value(data.preprocess()).ok(),
        ..DatasetRef::default()
    };
    Ok(LoadedData { data, reference })
}

/// Loads the dataset of `args`: the embedded sample, a named dataset (from `--data-dir` or the
/// cache), an image folder or an NPY array, with its preprocessing. Without `--samples`,
/// `default_samples` (if any) caps how many samples are used.
///
/// # Errors
/// An unknown dataset or split; missing, corrupt or inconsistent files; a bad `--samples`.
pub fn load_data(args: &DataArgs, default_samples: Option<usize>) -> Result<LoadedData> {
    let LoadedData { data, mut reference } = if args.dataset == "embedded" {
        embedded(args)?
    } else {
        let source = DataSource::parse(&args.dataset)?;
        let request = DataRequest {
            source: source.clone(),
            split: args.split.clone(),
            data_dir: args.data_dir.clone(),
            cache_dir: args.cache_dir.clone().unwrap_or_else(default_cache_dir),
            labels: args.labels.clone(),
            class_names: args.class_names.clone(),
            preprocess: args.preprocess(),
        };
        let opened = nnlens_datasets::open(&request).with_context(|| {
            match (&source, &args.split_name()) {
                (DataSource::Idx(_) | DataSource::Cifar(_), Some(split)) => {
                    format!("loading {} {split}", args.dataset)
                }
                _ => format!("loading {}", args.dataset),
            }
        })?;
        // Opening a folder lists, reads and hashes every file on the rayon workers: what
        // that freed goes back to the system, as the workers' arenas would otherwise keep it.
        crate::process::release_freed_memory();
        LoadedData { data: opened.data, reference: opened.reference }
    };
    let data = match args.samples {
        None => match default_samples {
            Some(cap) if cap < data.len() => data.subset(&(0..cap).collect::<Vec<_>>())?,
            _ => data,
        },
        Some(0) => bail!("--samples 0: nothing to run on"),
        Some(n) if n > data.len() => {
            bail!("--samples {n} is more than the {} samples of {}", data.len(), data.name())
        }
        Some(n) => data.subset(&(0..n).collect::<Vec<_>>())?,
    };
    reference.samples = data.len();
    Ok(LoadedData { data, reference })
}

/// The class names of a loaded dataset, by label: the source's (folder names, a catalogue's
/// names, `--class-names`), else the labels, for `classes` classes (a model's outputs may be
/// more than the labels seen).
pub fn class_names(data: &ImageDataSet, classes: usize) -> Vec<String> {
    let names = data.class_names();
    (0..classes).map(|c| names.get(c).cloned().unwrap_or_else(|| c.to_string())).collect()
}

/// How class `class` is labelled in figures: `3 Dress`, or only `3` where the name is the
/// number itself.
pub fn class_label(class: usize, name: &str) -> String {
    if name == class.to_string() { name.to_string() } else { format!("{class} {name}") }
}

/// Rows from `1,5,9`, or from a file: NPY of integers, or text with one row per line.
///
/// # Errors
/// Text that is not whole numbers >= 0, an unreadable file, a directory.
pub fn read_indices(spec: &str) -> Result<Vec<usize>> {
    let path = Path::new(spec);
    // Whole numbers, read as integers (a float would round 10^12 to another row).
    let row = |s: &str, what: &dyn Fn() -> String| -> Result<u64> {
        s.parse::<u64>()
            .ok()
            .or_else(|| {
                // `3.0` is a row too; `2.5`, `-1` and `1e30` are not.
                s.parse::<f64>()
                    .ok()
                    .filter(|v| *v >= 0.0 && v.fract() == 0.0 && *v < 9e15)
                    .map(|v| v as u64)
            })
            .with_context(|| format!("{}: '{s}' is not a row number (a whole number >= 0)", what()))
    };
    let values: Vec<u64> = if path.is_file() {
        if spec.ends_with(".npy") {
            nnlens_datasets::npy::read_npy_indices(path).context("--indices")?
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--indices: reading {}", path.display()))?;
            text.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| row(s, &|| format!("--indices {}", path.display())))
                .collect::<Result<_>>()?
        }
    } else if path.is_dir() {
        bail!("--indices {spec} is a directory, not a file of row numbers");
    } else {
        spec.split(',')
            .map(|s| {
                row(s.trim(), &|| {
                    format!("--indices '{spec}' is neither a file nor comma-separated rows")
                })
            })
            .collect::<Result<_>>()?
    };
    values
        .into_iter()
        .map(|v| usize::try_from(v).with_context(|| format!("--indices: {v} is not a row number")))
        .collect()
}

/// `count` random rows of `0..len`, sorted, drawn without replacement with `seed`; `what` (the
/// flag) and `name` (the dataset) name them in errors.
///
/// # Errors
/// A count of 0 or more than `len`.
pub fn random_rows(
    count: usize,
    len: usize,
    seed: u64,
    what: &str,
    name: &str,
) -> Result<Vec<usize>> {
    if count == 0 {
        bail!("{what} 0: nothing to do");
    }
    if count > len {
        bail!("{what} {count} is more than the {len} samples of {name}");
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut rows = rand::seq::index::sample(&mut rng, len, count).into_vec();
    rows.sort_unstable();
    Ok(rows)
}

/// The rows named by `spec` (as [`read_indices`]), each checked to be below `len`; `what` (the
/// flag) and `name` (the dataset) name them in errors.
///
/// # Errors
/// As [`read_indices`]; no rows; a row outside the dataset.
pub fn rows_of(spec: &str, what: &str, len: usize, name: &str) -> Result<Vec<usize>> {
    let rows = read_indices(spec).with_context(|| format!("{what} {spec}"))?;
    if rows.is_empty() {
        bail!("{what}: no rows given");
    }
    if let Some(&r) = rows.iter().find(|&&r| r >= len) {
        bail!("{what}: row {r} is outside the {len} samples of {name}");
    }
    Ok(rows)
}
