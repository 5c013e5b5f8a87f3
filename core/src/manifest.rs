use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A file a run used, pinned by its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// The path (or label, for embedded assets) as given.
    pub path: String,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The layout of [`RunManifest`] this version writes. 1: the metric under the top-level
/// `metric` key for every family (before it, manifests had no `schema_version` and kept the
/// metric in `parameters`, as `measure` or `metric`).
pub const MANIFEST_SCHEMA_VERSION: u32 = 1;

/// Everything needed to describe and repeat a run: what was run, on which model and data, with
/// which parameters and seed, by which version of nnlens, and how long each phase took. Stored
/// as `result.json` beside every result (`{"manifest": ..., "result": ...}`), and the unit from
/// which shards of a run are merged. One schema for every command and metric family: the
/// family-specific settings are in `parameters`, the rest means the same everywhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// The layout of this manifest ([`MANIFEST_SCHEMA_VERSION`]; 0 for files written before
    /// the field existed).
    #[serde(default)]
    pub schema_version: u32,
    /// Always "nnlens".
    pub tool: String,
    /// The nnlens version.
    pub version: String,
    /// The command (`run`, `analyze`, `evaluate`, `predict`).
    pub command: String,
    /// The registered metric the run measured (`nvi`, `linearity`, `influence`, ...), as
    /// `nnlens metrics` lists it; `None` for the commands that measure none.
    #[serde(default)]
    pub metric: Option<String>,
    /// The seed every random choice derives from.
    pub seed: u64,
    /// The inference backend, where a model ran.
    pub backend: Option<String>,
    /// How the backend was chosen when `--backend auto` chose it: which ran and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_choice: Option<String>,
    /// The model file.
    pub model: Option<ArtifactRef>,
    /// The dataset: name, split, source, and the data files.
    pub dataset: Option<DatasetRef>,
    /// The command's resolved parameters, defaults filled in (the metric family's own layout).
    pub parameters: serde_json::Value,
    /// Wall time of each phase, in seconds.
    pub timings_s: BTreeMap<String, f64>,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix_s: f64,
    /// The part of the work this run did, when it is one shard of a split run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRef>,
}

/// Shard `index` of `count` (0-based) of a run split into contiguous parts of its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRef {
    /// Which part, `0..count`.
    pub index: usize,
    /// Into how many parts the run is split.
    pub count: usize,
}

impl ShardRef {
    /// The contiguous part of `0..total` this shard does: `total * index / count` up to
    /// `total * (index + 1) / count`, so the parts of all shards cover `0..total` once, and
    /// their sizes differ by at most one.
    pub fn range(&self, total: usize) -> std::ops::Range<usize> {
        let at = |k: usize| (total as u128 * k as u128 / self.count.max(1) as u128) as usize;
        at(self.index)..at(self.index + 1)
    }

    /// [`Self::range`] in whole blocks of `block` items (the last block may be short): each
    /// shard's part starts at a multiple of `block`, so a computation that takes the work in
    /// blocks of that size from the start of its part sees exactly the blocks of the whole
    /// run. Parts differ in size by at most one block; with fewer blocks than shards, some
    /// parts are empty.
    pub fn range_aligned(&self, total: usize, block: usize) -> std::ops::Range<usize> {
        let block = block.max(1);
        let blocks = total.div_ceil(block);
        let part = ShardRef { index: self.index, count: self.count }.range(blocks);
        (part.start * block).min(total)..(part.end * block).min(total)
    }
}

impl std::fmt::Display for ShardRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The data a run read.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DatasetRef {
    /// `fashion-mnist`, `mnist`, a path, ...
    pub name: String,
    /// `train` or `test`, where the dataset has splits (a sub-folder of an image folder).
    pub split: Option<String>,
    /// How many samples were used.
    pub samples: usize,
    /// The files read (for an image folder, none: see `content_sha256`).
    pub files: Vec<ArtifactRef>,
    /// The kind of source: `embedded`, `idx`, `cifar`, `folder`, `npy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The directory or file the source was read from, where one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The preprocessing of every image (colour, resize, crop, pixel scale, mean, std).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<serde_json::Value>,
    /// The class names, by label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_names: Vec<String>,
    /// For an image folder: SHA-256 over its sorted relative paths and each file's SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    /// For JPEG images: the decoder that read them (libjpeg-turbo, as Pillow, or image-rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg_decoder: Option<String>,
}

impl RunManifest {
    /// A manifest for `command`, stamped with this version of nnlens-core and the current time.
    pub fn new(command: impl Into<String>, seed: u64) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Self {
            schema_version: MANIFEST_SCHEMA_VERSION,
            tool: "nnlens".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            command: command.into(),
            metric: None,
            seed,
            backend: None,
            backend_choice: None,
            model: None,
            dataset: None,
            parameters: serde_json::Value::Null,
            timings_s: BTreeMap::new(),
            started_unix_s: started,
            shard: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ranges_cover_the_work_once_in_order() {
        for total in [0usize, 1, 5, 7, 1000] {
            for count in 1..=9 {
                let ranges: Vec<_> =
                    (0..count).map(|index| ShardRef { index, count }.range(total)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[count - 1].end, total);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                }
                let sizes: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "{total} in {count}: {sizes:?}");
            }
        }
        assert_eq!(ShardRef { index: 1, count: 3 }.range(10), 3..6);
    }

    #[test]
    fn aligned_shard_ranges_hold_whole_blocks() {
        for total in [0usize, 1, 5, 28, 1000, 1001] {
            for block in [1usize, 3, 12, 28] {
                for count in 1..=7 {
                    let ranges: Vec<_> = (0..count)
                        .map(|index| ShardRef { index, count }.range_aligned(total, block))
                        .collect();
                    assert_eq!(ranges[0].start, 0);
                    assert_eq!(ranges[count - 1].end, total);
                    for pair in ranges.windows(2) {
                        assert_eq!(pair[0].end, pair[1].start);
                    }
                    for r in &ranges {
                        assert!(r.start % block == 0 || r.start == total, "{r:?} of {block}");
                        assert!(r.len() <= block * total.div_ceil(block).div_ceil(count));
                    }
                }
            }
        }
        assert_eq!(ShardRef { index: 1, count: 4 }.range_aligned(1000, 28), 252..504);
    }

    #[test]
    fn round_trips_through_json() {
        let mut m = RunManifest::new("evaluate", 7);
        m.model = Some(ArtifactRef { path: "m.onnx".into(), sha256: "ab".into(), bytes: 3 });
        m.timings_s.insert("predict".into(), 1.5);
        let text = serde_json::to_string(&m).unwrap();
        let back: RunManifest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.schema_version, MANIFEST_SCHEMA_VERSION);
        // A manifest written before the schema version and the metric key still reads.
        let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
        old.as_object_mut().unwrap().remove("schema_version");
        old.as_object_mut().unwrap().remove("metric");
        let old: RunManifest = serde_json::from_value(old).unwrap();
        assert_eq!((old.schema_version, old.metric), (0, None));
    }
}
