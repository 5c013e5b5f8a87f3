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

/// Everything needed to describe and repeat a run: what was run, on which model and data, with
/// which parameters and seed, by which version of nnlens, and how long each phase took. Stored
/// as `result.json` beside every result, and the unit from which shards of a run are merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// Always "nnlens".
    pub tool: String,
    /// The nnlens version.
    pub version: String,
    /// The command (`evaluate`, a metric name, ...).
    pub command: String,
    /// The seed every random choice derives from.
    pub seed: u64,
    /// The inference backend, where a model ran.
    pub backend: Option<String>,
    /// The model file.
    pub model: Option<ArtifactRef>,
    /// The dataset: name, split, source, and the data files.
    pub dataset: Option<DatasetRef>,
    /// The command's resolved parameters.
    pub parameters: serde_json::Value,
    /// Wall time of each phase, in seconds.
    pub timings_s: BTreeMap<String, f64>,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix_s: f64,
}

/// The data a run read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    /// `fashion-mnist`, `mnist`, a path, ...
    pub name: String,
    /// `train` or `test`, where the dataset has splits.
    pub split: Option<String>,
    /// How many samples were used.
    pub samples: usize,
    /// The files read.
    pub files: Vec<ArtifactRef>,
}

impl RunManifest {
    /// A manifest for `command`, stamped with this version of nnlens-core and the current time.
    pub fn new(command: impl Into<String>, seed: u64) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Self {
            tool: "nnlens".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            command: command.into(),
            seed,
            backend: None,
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
    }
}
