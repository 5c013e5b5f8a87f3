//! Resolving the models and datasets named on the command line.

use std::path::Path;

use anyhow::{Context, Result, bail};
use nnlens_core::{ArtifactRef, BackendOptions, DatasetRef, Model};
use nnlens_datasets::catalog::{Source, artifact, artifact_of_bytes};
use nnlens_datasets::download::default_cache_dir;
use nnlens_datasets::idx::parse_idx;
use nnlens_datasets::{ImageDataSet, PixelScale, Split, dataset_spec, load_split};

use crate::{DataArgs, ModelArgs, Scale, assets};

/// A model ready to run, and what it was loaded from.
pub struct LoadedModel {
    /// The model.
    pub model: Box<dyn Model>,
    /// The file (or embedded asset) it came from.
    pub artifact: ArtifactRef,
    /// The backend's name.
    pub backend: String,
}

/// Loads `path` (or the embedded model) with the named backend.
pub fn load_model_from(
    path: Option<&Path>,
    backend: &str,
    threads: Option<usize>,
) -> Result<LoadedModel> {
    let entry = nnlens_core::backend(backend)?;
    if let Err(reason) = (entry.available)() {
        bail!("backend '{backend}' is compiled in but cannot run here: {reason}");
    }
    let options = BackendOptions { threads };
    let (model, artifact) = match path {
        Some(path) => {
            if path.is_dir() {
                bail!(
                    "--model {} is a directory; give the model file (.onnx) itself",
                    path.display()
                );
            }
            if !path.is_file() {
                bail!("--model {} does not exist", path.display());
            }
            let model = (entry.load)(path, &options)?;
            (model, artifact(path)?)
        }
        None => {
            let model = (entry.load_bytes)(assets::MODEL, assets::MODEL_LABEL, &options)?;
            (model, artifact_of_bytes(assets::MODEL_LABEL, assets::MODEL))
        }
    };
    Ok(LoadedModel { model, artifact, backend: backend.to_string() })
}

/// Loads the model of `args`.
pub fn load_model(args: &ModelArgs) -> Result<LoadedModel> {
    load_model_from(args.model.as_deref(), &args.backend, args.threads)
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
