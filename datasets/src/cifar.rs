//! CIFAR-10 and CIFAR-100 in their official binary format: records of a label byte (CIFAR-100:
//! a coarse and a fine label byte) and 3 x 32 x 32 pixel bytes, channels first. Read from the
//! tarball (`cifar-10-binary.tar.gz`, `cifar-100-binary.tar.gz`) or from its extracted files.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use nnlens_core::ArtifactRef;

use crate::catalog::{Split, artifact};
use crate::download::fetch_file;
use crate::files::{Checksum, FileSpec};
use crate::store::{ImageStore, MemoryStore, RecordStore, planes_to_hwc};
use crate::{DatasetError, Result};

/// A CIFAR dataset's files and layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CifarSpec {
    /// The name users type (`cifar10`, `cifar100`).
    pub name: &'static str,
    /// One line.
    pub description: &'static str,
    /// The official tarball and its published checksum.
    pub archive: FileSpec,
    /// Where it is downloaded from.
    pub mirrors: &'static [&'static str],
    /// The folder the tarball extracts to.
    pub folder: &'static str,
    /// The training batch files.
    pub train: &'static [&'static str],
    /// The test batch files.
    pub test: &'static [&'static str],
    /// Label bytes before the pixels of a record.
    pub header: usize,
    /// Which of them is the label used (CIFAR-100: 1, the fine label).
    pub label_byte: usize,
    /// The class names, by label.
    pub classes: &'static [&'static str],
}

/// The bytes of one record's pixels.
pub const PIXELS: usize = 3 * 32 * 32;

/// CIFAR-10 (binary version).
pub const CIFAR10: CifarSpec = CifarSpec {
    name: "cifar10",
    description: "CIFAR-10, 50000 train / 10000 test, 32x32 RGB, 10 classes",
    archive: FileSpec {
        name: "cifar-10-binary.tar.gz",
        checksum: Checksum::Md5("c32a1d4ab5d03f1284b67883e8d87530"),
    },
    mirrors: &["https://www.cs.toronto.edu/~kriz/"],
    folder: "cifar-10-batches-bin",
    train: &[
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ],
    test: &["test_batch.bin"],
    header: 1,
    label_byte: 0,
    classes: &[
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
};

/// CIFAR-100 (binary version), with its 100 fine labels.
pub const CIFAR100: CifarSpec = CifarSpec {
    name: "cifar100",
    description: "CIFAR-100, 50000 train / 10000 test, 32x32 RGB, 100 (fine) classes",
    archive: FileSpec {
        name: "cifar-100-binary.tar.gz",
        checksum: Checksum::Md5("03b5dce01913d631647c71ecec9e9cb8"),
    },
    mirrors: &["https://www.cs.toronto.edu/~kriz/"],
    folder: "cifar-100-binary",
    train: &["train.bin"],
    test: &["test.bin"],
    header: 2,
    label_byte: 1,
    classes: &[
        "apple",
        "aquarium_fish",
        "baby",
        "bear",
        "beaver",
        "bed",
        "bee",
        "beetle",
        "bicycle",
        "bottle",
        "bowl",
        "boy",
        "bridge",
        "bus",
        "butterfly",
        "camel",
        "can",
        "castle",
        "caterpillar",
        "cattle",
        "chair",
        "chimpanzee",
        "clock",
        "cloud",
        "cockroach",
        "couch",
        "crab",
        "crocodile",
        "cup",
        "dinosaur",
        "dolphin",
        "elephant",
        "flatfish",
        "forest",
        "fox",
        "girl",
        "hamster",
        "house",
        "kangaroo",
        "keyboard",
        "lamp",
        "lawn_mower",
        "leopard",
        "lion",
        "lizard",
        "lobster",
        "man",
        "maple_tree",
        "motorcycle",
        "mountain",
        "mouse",
        "mushroom",
        "oak_tree",
        "orange",
        "orchid",
        "otter",
        "palm_tree",
        "pear",
        "pickup_truck",
        "pine_tree",
        "plain",
        "plate",
        "poppy",
        "porcupine",
        "possum",
        "rabbit",
        "raccoon",
        "ray",
        "road",
        "rocket",
        "rose",
        "sea",
        "seal",
        "shark",
        "shrew",
        "skunk",
        "skyscraper",
        "snail",
        "snake",
        "spider",
        "squirrel",
        "streetcar",
        "sunflower",
        "sweet_pepper",
        "table",
        "tank",
        "telephone",
        "television",
        "tiger",
        "tractor",
        "train",
        "trout",
        "tulip",
        "turtle",
        "wardrobe",
        "whale",
        "willow_tree",
        "wolf",
        "woman",
        "worm",
    ],
};

/// The CIFAR dataset called `name`, if it is one.
pub fn cifar_spec(name: &str) -> Option<&'static CifarSpec> {
    [&CIFAR10, &CIFAR100]
        .into_iter()
        .find(|s| s.name == name || s.name.replace("cifar", "cifar-") == name)
}

impl CifarSpec {
    fn record(&self) -> usize {
        self.header + PIXELS
    }

    fn files(&self, split: Split) -> &'static [&'static str] {
        match split {
            Split::Train => self.train,
            Split::Test => self.test,
        }
    }
}

/// A CIFAR split: where its images are and their labels.
pub(crate) struct CifarSplit {
    pub store: Box<dyn ImageStore>,
    pub labels: Vec<usize>,
    pub files: Vec<ArtifactRef>,
}

/// Reads a split from `dir`: its extracted batch files (in `dir/<folder>/` or `dir/` itself),
/// else the tarball in `dir`.
///
/// # Errors
/// [`DatasetError::Missing`] when neither is there, [`DatasetError::Format`] for a file that is
/// not whole records or a label past the classes.
pub(crate) fn load_cifar_dir(spec: &CifarSpec, split: Split, dir: &Path) -> Result<CifarSplit> {
    for base in [dir.join(spec.folder), dir.to_path_buf()] {
        let paths: Vec<PathBuf> = spec.files(split).iter().map(|f| base.join(f)).collect();
        if paths.iter().all(|p| p.is_file()) {
            return load_records(spec, &paths);
        }
    }
    let tarball = dir.join(spec.archive.name);
    if tarball.is_file() {
        return load_tarball(spec, split, &tarball);
    }
    Err(DatasetError::Missing {
        what: format!("{} {} files", spec.name, split.as_str()),
        path: dir.join(spec.folder).join(spec.files(split)[0]),
        hint: format!(
            " (nor is {} there: give the folder that holds the official tarball or its extracted {}/)",
            spec.archive.name, spec.folder
        ),
    })
}

/// Downloads the tarball into `cache/<name>/` (checked against the published checksum) and
/// reads the split from it.
pub(crate) fn load_cifar_cache(
    spec: &CifarSpec,
    split: Split,
    cache: &Path,
    mirrors: &[String],
) -> Result<CifarSplit> {
    let tarball = fetch_file(&spec.archive, mirrors, &cache.join(spec.name))?;
    load_tarball(spec, split, &tarball)
}

/// The labels of whole records, checked.
fn labels_of(spec: &CifarSpec, bytes: &[u8], path: &Path, labels: &mut Vec<usize>) -> Result<()> {
    for (i, record) in bytes.chunks_exact(spec.record()).enumerate() {
        let label = usize::from(record[spec.label_byte]);
        if label >= spec.classes.len() {
            return Err(DatasetError::Format {
                path: path.into(),
                reason: format!(
                    "record {i} has label {label}, not below {} classes: not a {} file",
                    spec.classes.len(),
                    spec.name
                ),
            });
        }
        labels.push(label);
    }
    Ok(())
}

fn whole_records(spec: &CifarSpec, len: u64, path: &Path) -> Result<usize> {
    let record = spec.record() as u64;
    if len == 0 || !len.is_multiple_of(record) {
        return Err(DatasetError::Format {
            path: path.into(),
            reason: format!(
                "truncated CIFAR record: {len} bytes is not a whole number of {record}-byte records"
            ),
        });
    }
    Ok((len / record) as usize)
}

fn load_records(spec: &CifarSpec, paths: &[PathBuf]) -> Result<CifarSplit> {
    let mut files = Vec::new();
    let mut labels = Vec::new();
    let mut artifacts = Vec::new();
    for path in paths {
        let io = |source| DatasetError::Io { path: path.clone(), source };
        let mut file = File::open(path).map_err(io)?;
        let n = whole_records(spec, file.metadata().map_err(io)?.len(), path)?;
        // The labels, a block of records at a time.
        let mut block = vec![0u8; spec.record() * 1000];
        let mut left = n;
        while left > 0 {
            let take = left.min(1000);
            file.read_exact(&mut block[..take * spec.record()]).map_err(io)?;
            labels_of(spec, &block[..take * spec.record()], path, &mut labels)?;
            left -= take;
        }
        artifacts.push(artifact(path)?);
        // Records are read by position later: where the label pass left the cursor is moot.
        files.push((path.clone(), file, n));
    }
    let store = RecordStore { files, header: spec.header, height: 32, width: 32, channels: 3 };
    Ok(CifarSplit { store: Box::new(store), labels, files: artifacts })
}

fn load_tarball(spec: &CifarSpec, split: Split, path: &Path) -> Result<CifarSplit> {
    let io = |source| DatasetError::Io { path: path.into(), source };
    let wanted: Vec<String> =
        spec.files(split).iter().map(|f| format!("{}/{f}", spec.folder)).collect();
    let mut members: Vec<Option<Vec<u8>>> = vec![None; wanted.len()];
    let gz = flate2::read::GzDecoder::new(File::open(path).map_err(io)?);
    let mut archive = tar::Archive::new(gz);
    let bad = |e: std::io::Error| DatasetError::Format {
        path: path.into(),
        reason: format!("not a readable tar.gz archive: {e}"),
    };
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name =
            entry.path().map_err(bad)?.to_string_lossy().trim_start_matches("./").to_string();
        if let Some(i) = wanted.iter().position(|w| *w == name) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(bad)?;
            members[i] = Some(bytes);
        }
    }
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (name, bytes) in wanted.iter().zip(members) {
        let bytes = bytes.ok_or_else(|| DatasetError::Format {
            path: path.into(),
            reason: format!("the archive has no {name}"),
        })?;
        let member = path.join(name);
        whole_records(spec, bytes.len() as u64, &member)?;
        labels_of(spec, &bytes, &member, &mut labels)?;
        pixels.reserve(bytes.len() / spec.record() * PIXELS);
        for record in bytes.chunks_exact(spec.record()) {
            pixels.extend(planes_to_hwc(&record[spec.header..], 3, 32 * 32));
        }
    }
    let store = MemoryStore {
        name: format!("{}/{}", spec.name, split.as_str()),
        pixels,
        height: 32,
        width: 32,
        channels: 3,
    };
    Ok(CifarSplit { store: Box::new(store), labels, files: vec![artifact(path)?] })
}

/// CIFAR records of `images` (`[n, 32, 32, 3]` bytes, channels last) and labels, as the
/// official files hold them (for tests and for writing samples).
pub fn cifar_records(spec: &CifarSpec, images: &[u8], labels: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(labels.len() * spec.record());
    for (image, &label) in images.chunks_exact(PIXELS).zip(labels) {
        let mut head = vec![0u8; spec.header];
        head[spec.label_byte] = label as u8;
        if spec.header == 2 {
            head[0] = (label / 5) as u8; // a coarse label (any byte below 20 reads)
        }
        out.extend(head);
        for c in 0..3 {
            out.extend(image.iter().skip(c).step_by(3));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_lists() {
        assert_eq!(CIFAR10.classes.len(), 10);
        assert_eq!(CIFAR100.classes.len(), 100);
        let mut sorted = CIFAR100.classes.to_vec();
        sorted.sort();
        assert_eq!(sorted, CIFAR100.classes, "CIFAR-100's fine labels are in alphabetical order");
        assert_eq!(cifar_spec("cifar-10"), Some(&CIFAR10));
    }

    #[test]
    fn records_tarball_and_files_agree() {
        let dir = tempfile::tempdir().unwrap();
        let images: Vec<u8> = (0..3 * PIXELS).map(|i| (i * 7 % 251) as u8).collect();
        let labels = [3, 99, 0];
        let records = cifar_records(&CIFAR100, &images, &labels);
        let folder = dir.path().join("x").join(CIFAR100.folder);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("test.bin"), &records).unwrap();
        let from_files = load_cifar_dir(&CIFAR100, Split::Test, &dir.path().join("x")).unwrap();
        // The same records in a tarball.
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(records.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, format!("{}/test.bin", CIFAR100.folder), &records[..]).unwrap();
        let tgz = crate::idx::gzip(&tar.into_inner().unwrap());
        std::fs::write(dir.path().join(CIFAR100.archive.name), tgz).unwrap();
        let from_tar = load_cifar_dir(&CIFAR100, Split::Test, dir.path()).unwrap();
        assert_eq!(from_files.labels, labels);
        assert_eq!(from_tar.labels, labels);
        for i in 0..3 {
            let a = from_files.store.read(i).unwrap();
            assert_eq!(a, from_tar.store.read(i).unwrap());
            let crate::store::Pixels::U8(v) = a.pixels else { panic!() };
            assert_eq!(v, images[i * PIXELS..(i + 1) * PIXELS]);
        }
        // A truncated record is named.
        std::fs::write(folder.join("test.bin"), &records[..records.len() - 1]).unwrap();
        let e = load_cifar_dir(&CIFAR100, Split::Test, &dir.path().join("x"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("test.bin") && e.contains("truncated CIFAR record"), "{e}");
        // A train split that is not there says what is looked for.
        let e = load_cifar_dir(&CIFAR100, Split::Train, &dir.path().join("x"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("train.bin") && e.contains("cifar-100-binary.tar.gz"), "{e}");
    }
}
