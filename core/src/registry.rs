//! Registries of metrics and backends, filled at link time with `inventory`.
//!
//! A crate registers with [`register_metric!`](crate::register_metric) or
//! [`register_backend!`](crate::register_backend). Beware: a crate that the final binary never
//! names in its source is not linked, and its registrations vanish silently. The
//! `nnlens-plugins` crate names every plugin crate once; binaries, tests and benches use it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{CoreError, GradModel, Model, Result};

/// The method family a metric belongs to, by name (`invariance`, `linearity`, `similarity`,
/// `influence`, ...). An open set: a new family is a new metric crate, with nothing to add
/// here; the runner that runs a family's metrics names the same family.
pub type MetricFamily = &'static str;

/// A configured metric. Each family extends this with the computation it needs (activations,
/// gradients or predictions); the registry only needs a name and the parameters that go into the
/// run manifest.
pub trait Metric: Send {
    /// The registered name.
    fn name(&self) -> &'static str;
    /// The family.
    fn family(&self) -> MetricFamily;
    /// The parameters, fully resolved (defaults filled in), as stored in the run manifest.
    fn parameters(&self) -> serde_json::Value;
    /// The metric as [`std::any::Any`], so that the code that runs a family can recover its
    /// concrete type (`downcast_ref`).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A registered metric: name, one-line description, family and a constructor from serde
/// parameters (a JSON object; `null` means all defaults).
pub struct MetricEntry {
    /// The name users type (`normalized-variance`).
    pub name: &'static str,
    /// One line for `nnlens metrics`.
    pub description: &'static str,
    /// The method family.
    pub family: MetricFamily,
    /// Builds the metric from parameters.
    pub build: fn(&serde_json::Value) -> Result<Box<dyn Metric>>,
}

inventory::collect!(MetricEntry);

/// Registers a [`MetricEntry`]. Use at item level in a metric crate:
///
/// ```
/// use nnlens_core::{Metric, MetricEntry, MetricFamily, register_metric};
///
/// struct Spread;
/// impl Metric for Spread {
///     fn name(&self) -> &'static str { "spread" }
///     fn family(&self) -> MetricFamily { "invariance" }
///     fn parameters(&self) -> serde_json::Value { serde_json::json!({}) }
///     fn as_any(&self) -> &dyn std::any::Any { self }
/// }
///
/// register_metric!(MetricEntry {
///     name: "spread",
///     description: "an example",
///     family: "invariance",
///     build: |_params| Ok(Box::new(Spread)),
/// });
///
/// assert_eq!(nnlens_core::metric("spread").unwrap().description, "an example");
/// ```
#[macro_export]
macro_rules! register_metric {
    ($entry:expr) => {
        $crate::__inventory::submit! { $entry }
    };
}

/// Every registered metric, sorted by name.
pub fn metrics() -> Vec<&'static MetricEntry> {
    let mut all: Vec<_> = inventory::iter::<MetricEntry>.into_iter().collect();
    all.sort_by_key(|e| e.name);
    all
}

/// The metric registered as `name`.
///
/// # Errors
/// [`CoreError::NotRegistered`] listing the registered names.
pub fn metric(name: &str) -> Result<&'static MetricEntry> {
    let all = metrics();
    all.iter().find(|e| e.name == name).copied().ok_or_else(|| CoreError::NotRegistered {
        kind: "metric",
        name: name.to_string(),
        known: known(all.iter().map(|e| e.name)),
    })
}

/// The floating-point precision a backend computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats: what ONNX models declare.
    #[default]
    F32,
    /// 64-bit floats everywhere, weights converted exactly (where a backend offers it).
    F64,
}

impl Precision {
    /// `f32` or `f64`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Self::F32),
            "f64" => Ok(Self::F64),
            other => Err(CoreError::InvalidParameters {
                what: "precision".into(),
                reason: format!("'{other}' is neither f32 nor f64"),
            }),
        }
    }
}

/// Options every backend understands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendOptions {
    /// Worker threads (`None`: the backend's default, all cores).
    pub threads: Option<usize>,
    /// The precision. candle honours it; tract and ONNX Runtime compute in the model's own
    /// types and ignore it.
    pub precision: Precision,
    /// The trainable tensors gradients are taken over, as `--parameters` patterns
    /// ([`crate::select_parameters`]); `None`: all of them. Backends without gradients ignore
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<String>>,
    /// Where to compute (`--device`): the CPU, or a CUDA GPU for the backends that have one
    /// (tch; ort with the `onnxruntime-gpu` wheel). The others refuse a GPU
    /// ([`Self::require_cpu`]).
    #[serde(default)]
    pub device: Device,
    /// The shape of one input sample (`--input-shape`), for model formats that do not store
    /// it (TorchScript); the ONNX backends read it from the model and ignore this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
}

impl BackendOptions {
    /// Checks that the options ask for the CPU, for a backend that has no other device.
    ///
    /// # Errors
    /// [`CoreError::InvalidParameters`] naming the device and the backends that have GPUs.
    pub fn require_cpu(&self, backend: &str) -> Result<()> {
        match self.device {
            Device::Cpu => Ok(()),
            device => Err(CoreError::InvalidParameters {
                what: format!("--device {device}"),
                reason: format!(
                    "the {backend} backend runs on the CPU only; a GPU needs --backend tch (or ort with the onnxruntime-gpu wheel)"
                ),
            }),
        }
    }
}

/// Where a backend computes: `cpu`, or `cuda` / `cuda:N` (the N-th CUDA GPU, from 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Device {
    /// The CPU cores.
    #[default]
    Cpu,
    /// The CUDA GPU of this index.
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        match s {
            "cpu" => return Ok(Device::Cpu),
            "cuda" | "gpu" => return Ok(Device::Cuda(0)),
            _ => {}
        }
        s.strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .map(Device::Cuda)
            .ok_or_else(|| format!("'{s}' is no device: use cpu, cuda or cuda:N (N from 0)"))
    }
}

/// Loads a model file with a backend.
pub type LoadFn = fn(&Path, &BackendOptions) -> Result<Box<dyn Model>>;

/// Loads a model from the bytes of a file (`label` names it in errors).
pub type LoadBytesFn = fn(&[u8], &str, &BackendOptions) -> Result<Box<dyn Model>>;

/// Loads a model file as a [`GradModel`] (per-example parameter gradients).
pub type LoadGradFn = fn(&Path, &BackendOptions) -> Result<Box<dyn GradModel>>;

/// Loads a [`GradModel`] from the bytes of a file (`label` names it in errors).
pub type LoadGradBytesFn = fn(&[u8], &str, &BackendOptions) -> Result<Box<dyn GradModel>>;

/// How a backend that gives gradients loads models as [`GradModel`]s.
#[derive(Clone, Copy)]
pub struct GradLoaders {
    /// Loads a model file.
    pub load: LoadGradFn,
    /// Loads a model from the bytes of a file.
    pub load_bytes: LoadGradBytesFn,
}

/// A registered inference backend.
pub struct BackendEntry {
    /// The name users type (`tract`).
    pub name: &'static str,
    /// One line for `nnlens backends`.
    pub description: &'static str,
    /// Whether the backend can run here; `Err` says why not and how to fix it.
    pub available: fn() -> std::result::Result<(), String>,
    /// Loads a model file.
    pub load: LoadFn,
    /// Loads a model from the bytes of a file (`label` names it in errors).
    pub load_bytes: LoadBytesFn,
    /// `Some` for a backend that also gives per-example gradients ([`GradModel`]).
    pub gradients: Option<GradLoaders>,
    /// The ONNX operators the backend implements itself, for a backend with its own list
    /// (candle); empty for an engine that runs the whole standard (tract, ONNX Runtime).
    pub operators: &'static [&'static str],
}

inventory::collect!(BackendEntry);

/// Registers a [`BackendEntry`].
#[macro_export]
macro_rules! register_backend {
    ($entry:expr) => {
        $crate::__inventory::submit! { $entry }
    };
}

/// Every registered backend, sorted by name.
pub fn backends() -> Vec<&'static BackendEntry> {
    let mut all: Vec<_> = inventory::iter::<BackendEntry>.into_iter().collect();
    all.sort_by_key(|e| e.name);
    all
}

/// The backend registered as `name`.
///
/// # Errors
/// [`CoreError::NotRegistered`] listing the compiled-in backends.
pub fn backend(name: &str) -> Result<&'static BackendEntry> {
    let all = backends();
    all.iter().find(|e| e.name == name).copied().ok_or_else(|| CoreError::NotRegistered {
        kind: "backend",
        name: name.to_string(),
        known: known(all.iter().map(|e| e.name)),
    })
}

/// The backend registered as `name`, with its gradient loaders: for the metrics that need
/// per-example gradients.
///
/// # Errors
/// [`CoreError::NotRegistered`] for an unknown name; [`CoreError::NoGradients`] for a backend
/// that gives no gradients, naming those that do.
pub fn grad_backend(name: &str) -> Result<(&'static BackendEntry, GradLoaders)> {
    let entry = backend(name)?;
    match entry.gradients {
        Some(loaders) => Ok((entry, loaders)),
        None => Err(CoreError::NoGradients {
            backend: name.to_string(),
            capable: known(backends().iter().filter(|b| b.gradients.is_some()).map(|b| b.name)),
        }),
    }
}

fn known<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let list: Vec<&str> = names.collect();
    if list.is_empty() { "none".into() } else { list.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_as_written() {
        for (text, device) in
            [("cpu", Device::Cpu), ("cuda", Device::Cuda(0)), ("cuda:3", Device::Cuda(3))]
        {
            assert_eq!(text.parse::<Device>().unwrap(), device);
        }
        assert_eq!(Device::Cuda(2).to_string().parse::<Device>().unwrap(), Device::Cuda(2));
        for bad in ["", "cuda:", "cuda:-1", "tpu", "cuda:x"] {
            assert!(bad.parse::<Device>().unwrap_err().contains("cpu, cuda or cuda:N"), "{bad}");
        }
        let gpu = BackendOptions { device: Device::Cuda(0), ..BackendOptions::default() };
        let e = gpu.require_cpu("tract").unwrap_err().to_string();
        assert!(e.contains("--device cuda:0") && e.contains("CPU only"), "{e}");
        assert!(BackendOptions::default().require_cpu("tract").is_ok());
    }

    struct Probe;

    impl Metric for Probe {
        fn name(&self) -> &'static str {
            "registry-probe"
        }
        fn family(&self) -> MetricFamily {
            "invariance"
        }
        fn parameters(&self) -> serde_json::Value {
            serde_json::json!({})
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    fn build_probe(params: &serde_json::Value) -> Result<Box<dyn Metric>> {
        if params.is_null() || params.as_object().is_some_and(|o| o.is_empty()) {
            Ok(Box::new(Probe))
        } else {
            Err(CoreError::InvalidParameters {
                what: "registry-probe".into(),
                reason: "takes no parameters".into(),
            })
        }
    }

    crate::register_metric!(MetricEntry {
        name: "registry-probe",
        description: "test-only entry that exercises the registry",
        family: "invariance",
        build: build_probe,
    });

    #[test]
    fn registered_metric_is_found_and_built() {
        let entry = metric("registry-probe").unwrap();
        assert_eq!(entry.family, "invariance");
        let m = (entry.build)(&serde_json::Value::Null).unwrap();
        assert_eq!(m.name(), "registry-probe");
        assert!((entry.build)(&serde_json::json!({"x": 1})).is_err());
        assert!(metrics().iter().any(|e| e.name == "registry-probe"));
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = metric("nope").err().unwrap().to_string();
        assert!(e.contains("nope") && e.contains("registry-probe"), "{e}");
        let e = backend("nope").err().unwrap().to_string();
        assert!(e.contains("unknown backend 'nope'"), "{e}");
        assert!(grad_backend("nope").is_err());
    }
}
