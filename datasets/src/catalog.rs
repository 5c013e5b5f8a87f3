//! The datasets nnlens knows by name, with their official files and checksums.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use nnlens_core::ArtifactRef;
use sha2::{Digest, Sha256};

use crate::download::{fetch_file, sha256_file};
pub use crate::files::{Checksum, FileSpec};
use crate::idx::read_idx;
use crate::{DatasetError, ImageDataSet, PixelScale, Result};

/// A dataset of labelled images distributed as four IDX files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetSpec {
    /// The name users type.
    pub name: &'static str,
    /// One line.
    pub description: &'static str,
    /// Base addresses the files are fetched from, tried in order.
    pub mirrors: &'static [&'static str],
    /// Training images and labels.
    pub train: [FileSpec; 2],
    /// Test images and labels.
    pub test: [FileSpec; 2],
    /// The class names, by label.
    pub classes: &'static [&'static str],
}

/// A split of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training split.
    Train,
    /// The test split (`t10k` in the file names).
    Test,
}

impl Split {
    /// `train` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl FromStr for Split {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "train" => Ok(Split::Train),
            "test" | "t10k" => Ok(Split::Test),
            other => Err(DatasetError::Unknown {
                kind: "split",
                name: other.to_string(),
                known: "train, test".into(),
            }),
        }
    }
}

const MNIST: DatasetSpec = DatasetSpec {
    name: "mnist",
    description: "MNIST handwritten digits, 60000 train / 10000 test, 28x28 grey",
    mirrors: &[
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ],
    train: [
        FileSpec {
            name: "train-images-idx3-ubyte.gz",
            checksum: Checksum::Sha256(
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            ),
        },
        FileSpec {
            name: "train-labels-idx1-ubyte.gz",
            checksum: Checksum::Sha256(
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            ),
        },
    ],
    test: [
        FileSpec {
            name: "t10k-images-idx3-ubyte.gz",
            checksum: Checksum::Sha256(
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            ),
        },
        FileSpec {
            name: "t10k-labels-idx1-ubyte.gz",
            checksum: Checksum::Sha256(
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            ),
        },
    ],
    classes: &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
};

const FASHION_MNIST: DatasetSpec = DatasetSpec {
    name: "fashion-mnist",
    description: "Zalando Fashion-MNIST, 60000 train / 10000 test, 28x28 grey",
    mirrors: &[
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
    train: [
        FileSpec {
            name: "train-images-idx3-ubyte.gz",
            checksum: Checksum::Sha256(
                "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc",
            ),
        },
        FileSpec {
            name: "train-labels-idx1-ubyte.gz",
            checksum: Checksum::Sha256(
                "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc",
            ),
        },
    ],
    test: [
        FileSpec {
            name: "t10k-images-idx3-ubyte.gz",
            checksum: Checksum::Sha256(
                "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229",
            ),
        },
        FileSpec {
            name: "t10k-labels-idx1-ubyte.gz",
            checksum: Checksum::Sha256(
                "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf",
            ),
        },
    ],
    classes: &[
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
};

const ALL: &[DatasetSpec] = &[FASHION_MNIST, MNIST];

/// The datasets known by name.
pub fn datasets() -> &'static [DatasetSpec] {
    ALL
}

/// The dataset called `name`.
///
/// # Errors
/// [`DatasetError::Unknown`] listing the known names.
pub fn dataset_spec(name: &str) -> Result<&'static DatasetSpec> {
    ALL.iter().find(|d| d.name == name).ok_or_else(|| DatasetError::Unknown {
        kind: "dataset",
        name: name.to_string(),
        known: ALL.iter().map(|d| d.name).collect::<Vec<_>>().join(", "),
    })
}

impl DatasetSpec {
    /// The image and label files of a split.
    pub fn files(&self, split: Split) -> [FileSpec; 2] {
        match split {
            Split::Train => self.train,
            Split::Test => self.test,
        }
    }
}

/// Finds a file of `spec` in `dir`, compressed (official name) or not (without `.gz`).
fn find_in_dir(dir: &Path, file: &FileSpec) -> Result<PathBuf> {
    let gz = dir.join(file.name);
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(file.name.trim_end_matches(".gz"));
    if raw.is_file() {
        return Ok(raw);
    }
    Err(DatasetError::Missing {
        what: format!("dataset file {}", file.name),
        path: gz,
        hint: " (give the directory that holds the official files, or leave out --data-dir to download them)".into(),
    })
}

/// SHA-256 and size of a file, read as a stream.
///
/// # Errors
/// [`DatasetError::Io`].
pub fn artifact(path: &Path) -> Result<ArtifactRef> {
    let bytes = std::fs::metadata(path)
        .map_err(|source| DatasetError::Io { path: path.into(), source })?
        .len();
    Ok(ArtifactRef { path: path.display().to_string(), sha256: sha256_file(path)?, bytes })
}

/// SHA-256 and size of content held in memory (an embedded asset), under `label`.
pub fn artifact_of_bytes(label: &str, bytes: &[u8]) -> ArtifactRef {
    ArtifactRef {
        path: label.to_string(),
        sha256: hex::encode(Sha256::digest(bytes)),
        bytes: bytes.len() as u64,
    }
}

/// Where a dataset's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A directory holding the files under their official names (not checksummed: they may be
    /// a user's own subset).
    Dir(PathBuf),
    /// A cache directory (one sub-directory per dataset), filled from `mirrors` on first use
    /// and checked against the official SHA-256.
    Cache {
        /// The cache root.
        dir: PathBuf,
        /// Base addresses to fetch from, in order.
        mirrors: Vec<String>,
    },
}

/// Loads one split of a dataset as labelled images, and the files it read.
///
/// # Errors
/// [`DatasetError::Missing`] for a file not in the directory, [`DatasetError::Download`] or
/// [`DatasetError::Checksum`] when the cache cannot be filled, [`DatasetError::Format`] for a
/// corrupt file, [`DatasetError::Inconsistent`] when images and labels disagree.
pub fn load_split(
    spec: &DatasetSpec,
    split: Split,
    source: &Source,
    scale: PixelScale,
) -> Result<(ImageDataSet, Vec<ArtifactRef>)> {
    let [images_file, labels_file] = spec.files(split);
    let (images_path, labels_path) = match source {
        Source::Dir(dir) => (find_in_dir(dir, &images_file)?, find_in_dir(dir, &labels_file)?),
        Source::Cache { dir, mirrors } => {
            let dir = dir.join(spec.name);
            (fetch_file(&images_file, mirrors, &dir)?, fetch_file(&labels_file, mirrors, &dir)?)
        }
    };
    let images = read_idx(&images_path)?;
    let labels = read_idx(&labels_path)?;
    let name = format!("{}/{}", spec.name, split.as_str());
    let data = ImageDataSet::from_idx(&name, &images, &labels, scale, spec.classes.len()).map_err(
        |e| match e {
            DatasetError::Inconsistent(msg) => DatasetError::Inconsistent(format!(
                "{msg} ({} and {})",
                images_path.display(),
                labels_path.display()
            )),
            other => other,
        },
    )?;
    Ok((data, vec![artifact(&images_path)?, artifact(&labels_path)?]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::{IdxArray, IdxData, gzip};

    #[test]
    fn names_and_splits() {
        assert_eq!(dataset_spec("mnist").unwrap().classes.len(), 10);
        let e = dataset_spec("cifar").unwrap_err().to_string();
        assert!(e.contains("cifar") && e.contains("fashion-mnist, mnist"), "{e}");
        assert_eq!("t10k".parse::<Split>().unwrap(), Split::Test);
        assert!("val".parse::<Split>().is_err());
    }

    #[test]
    fn loads_a_split_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let images =
            IdxArray { dims: vec![3, 2, 2], data: IdxData::U8((0..12).map(|i| i * 20).collect()) };
        let labels = IdxArray { dims: vec![3], data: IdxData::U8(vec![4, 0, 9]) };
        std::fs::write(dir.path().join("t10k-images-idx3-ubyte.gz"), gzip(&images.to_bytes()))
            .unwrap();
        // Uncompressed labels are found too.
        std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), labels.to_bytes()).unwrap();
        let spec = dataset_spec("fashion-mnist").unwrap();
        let (data, files) =
            load_split(spec, Split::Test, &Source::Dir(dir.path().into()), PixelScale::Unit)
                .unwrap();
        assert_eq!(data.len(), 3);
        assert_eq!(data.labels(), &[4, 0, 9]);
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].bytes, labels.to_bytes().len() as u64);
        let e = load_split(spec, Split::Train, &Source::Dir(dir.path().into()), PixelScale::Unit)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train-images-idx3-ubyte.gz") && e.contains("does not exist"), "{e}");
    }
}
