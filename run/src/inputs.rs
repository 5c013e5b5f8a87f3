//! Resolving the models and datasets named on the command line.

use std::path::Path;

use anyhow::{Context, Result, bail};
use nnlens_core::{
    ArtifactRef, BackendOptions, DatasetRef, GradModel, Model, Precision, RunManifest,
};
use nnlens_datasets::catalog::{Source, artifact, artifact_of_bytes};
use nnlens_datasets::download::default_cache_dir;
use nnlens_datasets::idx::parse_idx;
use nnlens_datasets::{ImageDataSet, PixelScale, Split, dataset_spec, load_split};
use rand::SeedableRng;

use crate::args::{DataArgs, ModelArgs, RunContext, Scale};
use crate::assets;

/// A model ready to run, and what it was loaded from.
pub struct LoadedModel {
    /// The model.
    pub model: Box<dyn Model>,
    /// The file (or embedded asset) it came from.
    pub artifact: ArtifactRef,
    /// The backend's name.
    pub backend: String,
}

impl LoadedModel {
    /// A manifest of `command` run with this model: its backend and file filled in.
    pub fn manifest(&self, command: &str, ctx: &RunContext) -> RunManifest {
        let mut m = RunManifest::new(command, ctx.seed);
        m.backend = Some(self.backend.clone());
        m.model = Some(self.artifact.clone());
        m
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
        bail!("backend '{}' is compiled in but cannot run here: {reason}", entry.name);
    }
    Ok(())
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
    let entry = nnlens_core::backend(backend)?;
    usable(entry)?;
    let options = BackendOptions { threads, ..BackendOptions::default() };
    let (model, artifact) = load_file_or_embedded(path, &options, entry.load, entry.load_bytes)?;
    Ok(LoadedModel { model, artifact, backend: backend.to_string() })
}

/// Loads the model of `args`.
///
/// # Errors
/// As [`load_model_from`].
pub fn load_model(args: &ModelArgs) -> Result<LoadedModel> {
    load_model_from(args.model.as_deref(), &args.backend, args.threads)
}

/// Loads the model of `args` with a backend that gives gradients, in `precision`.
///
/// # Errors
/// A backend that gives no gradients (naming those that do), else as [`load_model_from`].
pub fn load_grad_model(args: &ModelArgs, precision: Precision) -> Result<LoadedGradModel> {
    let (entry, loaders) = nnlens_core::grad_backend(&args.backend)?;
    usable(entry)?;
    let options = BackendOptions { threads: args.threads, precision };
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

/// Loads the dataset split of `args` (embedded, from `--data-dir`, or from the cache). Without
/// `--samples`, `default_samples` (if any) caps how many samples are used.
///
/// # Errors
/// An unknown dataset or split, missing or corrupt files, a bad `--samples`.
pub fn load_data(args: &DataArgs, default_samples: Option<usize>) -> Result<LoadedData> {
    let split: Split = args.split.parse()?;
    let (data, files, name) = if args.dataset == "embedded" {
        if split != Split::Test {
            bail!(
                "the embedded dataset is a sample of the Fashion-MNIST test split only; use --split test"
            );
        }
        if args.data_dir.is_some() {
            bail!(
                "--data-dir needs --dataset fashion-mnist or mnist (the embedded sample needs no files)"
            );
        }
        let images = parse_idx(assets::IMAGES, Path::new(assets::IMAGES_LABEL))?;
        let labels = parse_idx(assets::LABELS, Path::new(assets::LABELS_LABEL))?;
        let classes = dataset_spec("fashion-mnist")?.classes.len();
        let data = ImageDataSet::from_idx(
            "embedded/test",
            &images,
            &labels,
            scale(args.pixel_scale),
            classes,
        )?;
        let files = vec![
            artifact_of_bytes(assets::IMAGES_LABEL, assets::IMAGES),
            artifact_of_bytes(assets::LABELS_LABEL, assets::LABELS),
        ];
        (data, files, "embedded (1000 Fashion-MNIST test images)".to_string())
    } else {
        let spec = dataset_spec(&args.dataset)?;
        let source = match &args.data_dir {
            Some(dir) => {
                if dir.is_file() {
                    bail!(
                        "--data-dir {} is a file; give the directory that holds the dataset's files",
                        dir.display()
                    );
                }
                if !dir.is_dir() {
                    bail!("--data-dir {} does not exist", dir.display());
                }
                Source::Dir(dir.clone())
            }
            None => Source::Cache {
                dir: args.cache_dir.clone().unwrap_or_else(default_cache_dir),
                mirrors: spec.mirrors.iter().map(|m| m.to_string()).collect(),
            },
        };
        let (data, files) = load_split(spec, split, &source, scale(args.pixel_scale))
            .with_context(|| format!("loading {} {}", spec.name, split.as_str()))?;
        (data, files, spec.name.to_string())
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
    let reference =
        DatasetRef { name, split: Some(split.as_str().into()), samples: data.len(), files };
    Ok(LoadedData { data, reference })
}

/// The class names of a catalogue dataset (`embedded` is Fashion-MNIST), else the labels.
pub fn class_names(dataset: &str, classes: usize) -> Vec<String> {
    let name = if dataset == "embedded" { "fashion-mnist" } else { dataset };
    match nnlens_datasets::dataset_spec(name) {
        Ok(spec) if spec.classes.len() == classes => {
            spec.classes.iter().map(|c| c.to_string()).collect()
        }
        _ => (0..classes).map(|c| c.to_string()).collect(),
    }
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
