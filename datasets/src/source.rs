//! Naming a dataset on the command line and opening it: the one spelling every command uses.
//!
//! | spelling | source |
//! | --- | --- |
//! | `mnist`, `fashion-mnist` | the official IDX files (`--data-dir`, or downloaded) |
//! | `cifar10`, `cifar100` | the official binary tarball or its extracted files (`--data-dir`, or downloaded) |
//! | `folder:DIR` (or a directory) | an image folder, torchvision's `ImageFolder` layout; `--split S` reads `DIR/S` |
//! | `npy:X.npy` (or a `.npy` file) | an NPY array of images, with `--labels Y.npy` |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nnlens_core::DatasetRef;

use crate::catalog::{DatasetSpec, Source, Split, artifact, datasets, load_split};
use crate::cifar::{CifarSpec, cifar_spec, load_cifar_cache, load_cifar_dir};
use crate::folder::{FolderStore, scan_folder};
use crate::images::{ImageDataSet, numbered_classes};
use crate::npy_images::NpyStore;
use crate::preprocess::Preprocess;
use crate::{DatasetError, Result};

/// The largest label an NPY of labels may hold (a million classes).
const MAX_LABEL: u64 = 1_000_000;

/// A dataset as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// MNIST or Fashion-MNIST.
    Idx(&'static DatasetSpec),
    /// CIFAR-10 or CIFAR-100.
    Cifar(&'static CifarSpec),
    /// An image folder.
    Folder(PathBuf),
    /// An NPY array of images.
    Npy(PathBuf),
}

/// The names `--dataset` accepts, for messages.
pub fn known_sources() -> String {
    let mut names: Vec<&str> = datasets().iter().map(|d| d.name).collect();
    names.extend(["cifar10", "cifar100", "folder:DIR", "npy:FILE.npy"]);
    names.join(", ")
}

impl DataSource {
    /// Parses a `--dataset` value: a catalogue name, `folder:DIR`, `npy:FILE`, or an existing
    /// directory or `.npy` file.
    ///
    /// # Errors
    /// [`DatasetError::Unknown`] listing the spellings.
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(dir) = text.strip_prefix("folder:") {
            return Ok(DataSource::Folder(dir.into()));
        }
        if let Some(file) = text.strip_prefix("npy:") {
            return Ok(DataSource::Npy(file.into()));
        }
        if let Some(spec) = datasets().iter().find(|d| d.name == text) {
            return Ok(DataSource::Idx(spec));
        }
        if let Some(spec) = cifar_spec(text) {
            return Ok(DataSource::Cifar(spec));
        }
        let path = Path::new(text);
        if path.is_dir() {
            return Ok(DataSource::Folder(path.into()));
        }
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) && path.is_file() {
            return Ok(DataSource::Npy(path.into()));
        }
        Err(DatasetError::Unknown {
            kind: "dataset",
            name: text.to_string(),
            known: known_sources(),
        })
    }

    /// `idx`, `cifar`, `folder` or `npy`.
    pub fn kind(&self) -> &'static str {
        match self {
            DataSource::Idx(_) => "idx",
            DataSource::Cifar(_) => "cifar",
            DataSource::Folder(_) => "folder",
            DataSource::Npy(_) => "npy",
        }
    }
}

/// Everything that says which images a run reads and how they become inputs.
#[derive(Debug, Clone)]
pub struct DataRequest {
    /// The source.
    pub source: DataSource,
    /// The split (`train`/`test` for the catalogue, default `test`; a sub-folder of a folder).
    pub split: Option<String>,
    /// A directory holding a catalogue dataset's official files (else the cache).
    pub data_dir: Option<PathBuf>,
    /// The download cache.
    pub cache_dir: PathBuf,
    /// An NPY of integer labels, for an NPY source.
    pub labels: Option<PathBuf>,
    /// A text file of class names, one per line, replacing the source's.
    pub class_names: Option<PathBuf>,
    /// The preprocessing.
    pub preprocess: Preprocess,
}

/// A dataset opened from its request, and its description for the manifest.
pub struct OpenedData {
    /// The images.
    pub data: ImageDataSet,
    /// For the manifest: kind, path, split, preprocessing, class names, files or content hash.
    pub reference: DatasetRef,
}

fn catalogue_split(split: &Option<String>) -> Result<Split> {
    split.as_deref().unwrap_or("test").parse()
}

/// Reads class names, one per line (blank lines ignored).
///
/// # Errors
/// [`DatasetError::Io`]; a file with no names.
pub fn read_class_names(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| DatasetError::Io { path: path.into(), source })?;
    let names: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.is_empty() {
        return Err(DatasetError::Format {
            path: path.into(),
            reason: "no class names (one per line)".into(),
        });
    }
    Ok(names)
}

/// Opens the dataset of `request`.
///
/// # Errors
/// Every way a source can be missing, corrupt, inconsistent or unfit for the preprocessing, as
/// one message naming the file.
pub fn open(request: &DataRequest) -> Result<OpenedData> {
    let p = request.preprocess.clone();
    if request.labels.is_some() && !matches!(request.source, DataSource::Npy(_)) {
        return Err(DatasetError::Inconsistent(
            "--labels is for an NPY source; other sources carry their labels".into(),
        ));
    }
    if request.data_dir.is_some()
        && matches!(request.source, DataSource::Folder(_) | DataSource::Npy(_))
    {
        return Err(DatasetError::Inconsistent(
            "--data-dir is for mnist, fashion-mnist, cifar10 and cifar100; a folder or NPY source is its own path".into(),
        ));
    }
    let (data, mut reference) = match &request.source {
        DataSource::Idx(spec) => {
            let split = catalogue_split(&request.split)?;
            let source = match &request.data_dir {
                Some(dir) => Source::Dir(checked_dir(dir)?),
                None => Source::Cache {
                    dir: request.cache_dir.clone(),
                    mirrors: spec.mirrors.iter().map(|m| m.to_string()).collect(),
                },
            };
            let (data, files) = load_split(spec, split, &source, p.scale)?;
            let data = data.with_preprocess(p)?;
            let r = reference(spec.name, request.data_dir.as_deref(), Some(split.as_str()), files);
            (data, r)
        }
        DataSource::Cifar(spec) => {
            let split = catalogue_split(&request.split)?;
            let loaded = match &request.data_dir {
                Some(dir) => load_cifar_dir(spec, split, &checked_dir(dir)?)?,
                None => {
                    let mirrors: Vec<String> = spec.mirrors.iter().map(|m| m.to_string()).collect();
                    load_cifar_cache(spec, split, &request.cache_dir, &mirrors)?
                }
            };
            let name = format!("{}/{}", spec.name, split.as_str());
            let classes = spec.classes.iter().map(|c| c.to_string()).collect();
            let data =
                ImageDataSet::new(&name, Arc::from(loaded.store), Some(loaded.labels), classes, p)?;
            let r = reference(
                spec.name,
                request.data_dir.as_deref(),
                Some(split.as_str()),
                loaded.files,
            );
            (data, r)
        }
        DataSource::Folder(root) => {
            let dir = match &request.split {
                Some(split) => {
                    let d = root.join(split);
                    if !d.is_dir() {
                        return Err(DatasetError::Missing {
                            what: format!("split folder '{split}'"),
                            path: d,
                            hint: format!(
                                " (--split {split} reads {}/{split}/<class>/<image>)",
                                root.display()
                            ),
                        });
                    }
                    d
                }
                None => root.clone(),
            };
            open_folder(&dir, request.split.as_deref(), p)?
        }
        DataSource::Npy(path) => {
            if let Some(split) = &request.split {
                return Err(DatasetError::Inconsistent(format!(
                    "--split {split}: an NPY source has no splits (give the NPY of the split)"
                )));
            }
            let store = NpyStore::open(path)?;
            let mut files = vec![artifact(path)?];
            let labels = match &request.labels {
                Some(l) => {
                    let values = crate::npy::read_npy_indices(l)?;
                    if values.len() != store.header.len {
                        return Err(DatasetError::Inconsistent(format!(
                            "{}: {} labels for the {} images of {}",
                            l.display(),
                            values.len(),
                            store.header.len,
                            path.display()
                        )));
                    }
                    if let Some((row, v)) = values.iter().enumerate().find(|(_, v)| **v > MAX_LABEL)
                    {
                        return Err(DatasetError::Format {
                            path: l.clone(),
                            reason: format!(
                                "label {v} at row {row} is not a class index (labels are 0 to the number of classes - 1)"
                            ),
                        });
                    }
                    files.push(artifact(l)?);
                    Some(values.into_iter().map(|v| v as usize).collect::<Vec<_>>())
                }
                None => None,
            };
            let classes = match (&labels, &request.class_names) {
                (_, Some(names)) => read_class_names(names)?,
                (Some(l), None) => numbered_classes(l.iter().max().map_or(1, |m| m + 1)),
                (None, None) => Vec::new(),
            };
            let name = path.display().to_string();
            let data = ImageDataSet::new(&name, Arc::new(store), labels, classes, p)
                .map_err(|e| name_labels(e, request.labels.as_deref()))?;
            let mut r = reference(&name, None, None, files);
            r.path = Some(path.display().to_string());
            (data, r)
        }
    };
    let data = match &request.class_names {
        Some(path) if !matches!(request.source, DataSource::Npy(_)) => {
            data.with_class_names(read_class_names(path)?).map_err(|e| match e {
                DatasetError::Inconsistent(m) => {
                    DatasetError::Inconsistent(format!("--class-names {}: {m}", path.display()))
                }
                other => other,
            })?
        }
        _ => data,
    };
    reference.kind = Some(request.source.kind().to_string());
    reference.samples = data.len();
    reference.class_names = data.class_names().to_vec();
    reference.preprocessing = serde_json::to_value(data.preprocess()).ok();
    Ok(OpenedData { data, reference })
}

fn name_labels(e: DatasetError, labels: Option<&Path>) -> DatasetError {
    match (e, labels) {
        (DatasetError::Inconsistent(m), Some(l)) => {
            DatasetError::Inconsistent(format!("{m} (labels {})", l.display()))
        }
        (e, _) => e,
    }
}

fn checked_dir(dir: &Path) -> Result<PathBuf> {
    if dir.is_file() {
        return Err(DatasetError::Inconsistent(format!(
            "--data-dir {} is a file; give the directory that holds the dataset's files",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(DatasetError::Missing {
            what: "--data-dir".into(),
            path: dir.into(),
            hint: String::new(),
        });
    }
    Ok(dir.into())
}

fn reference(
    name: &str,
    dir: Option<&Path>,
    split: Option<&str>,
    files: Vec<nnlens_core::ArtifactRef>,
) -> DatasetRef {
    DatasetRef {
        name: name.to_string(),
        split: split.map(String::from),
        samples: 0,
        files,
        path: dir.map(|d| d.display().to_string()),
        ..DatasetRef::default()
    }
}

/// Opens an image folder: every file listed, hashed and its header read; the sizes checked
/// against each other after preprocessing.
fn open_folder(
    dir: &Path,
    split: Option<&str>,
    p: Preprocess,
) -> Result<(ImageDataSet, DatasetRef)> {
    let scan = scan_folder(dir)?;
    let channels = if scan.files.iter().any(|f| f.color) { 3 } else { 1 };
    let first = &scan.files[0];
    let shape = |f: &crate::folder::FolderFile| p.output_shape(f.size.0, f.size.1, channels);
    let expected = shape(first);
    if let Some(odd) = scan.files.iter().find(|f| shape(f) != expected) {
        let how = if p.resize.is_some() || p.center_crop.is_some() {
            format!(
                "after preprocessing it is {:?}, the first image's is {:?}",
                shape(odd),
                expected
            )
        } else {
            format!("the first image ({}) is {} x {}", first.relative, first.size.0, first.size.1)
        };
        return Err(DatasetError::Inconsistent(format!(
            "{}: the image is {} x {} (height x width) and {how}: images of several sizes need --resize N and --center-crop N",
            dir.join(&odd.relative).display(),
            odd.size.0,
            odd.size.1
        )));
    }
    let jpeg = |f: &crate::folder::FolderFile| {
        let lower = f.relative.to_ascii_lowercase();
        lower.ends_with(".jpg") || lower.ends_with(".jpeg")
    };
    let any_jpeg = scan.files.iter().any(jpeg);
    let labels = scan.files.iter().map(|f| f.label).collect();
    let files = crate::folder::PathList::new(scan.files.iter().map(|f| f.relative.as_str()));
    drop(scan.files);
    let store = FolderStore { root: dir.into(), files, channels };
    let name = format!("folder {}", dir.display());
    let data = ImageDataSet::new(&name, Arc::new(store), Some(labels), scan.classes, p)?;
    let mut r = reference(&dir.display().to_string(), Some(dir), split, Vec::new());
    r.content_sha256 = Some(scan.content_sha256);
    if any_jpeg {
        r.jpeg_decoder = Some(crate::turbojpeg::jpeg_decoder());
    }
    Ok((data, r))
}
