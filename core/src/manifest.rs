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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
