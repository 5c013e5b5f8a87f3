//! Registries of metrics and backends, filled at link time with `inventory`.
//!
//! A crate registers with [`register_metric!`](crate::register_metric) or
//! [`register_backend!`](crate::register_backend). Beware: a crate that the final binary never
//! names in its source is not linked, and its registrations vanish silently. The
//! `nnlens-plugins` crate names every plugin crate once; binaries, tests and benches use it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{CoreError, Model, Result};

/// The method family a metric belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricFamily {
    /// Transformational measures: invariance and same-equivariance (tmeasures).
    Invariance,
    /// Linearity of layers (alibi).
    Linearity,
    /// Gradient similarity explanations (alibi).
    Similarity,
    /// Influence and performance by entropic re-weighting (ethik).
    Influence,
}

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
///     fn family(&self) -> MetricFamily { MetricFamily::Invariance }
///     fn parameters(&self) -> serde_json::Value { serde_json::json!({}) }
///     fn as_any(&self) -> &dyn std::any::Any { self }
/// }
///
/// register_metric!(MetricEntry {
///     name: "spread",
///     description: "an example",
///     family: MetricFamily::Invariance,
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

/// Options every backend understands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendOptions {
    /// Worker threads (`None`: the backend's default, all cores).
    pub threads: Option<usize>,
}

/// Loads a model file with a backend.
pub type LoadFn = fn(&Path, &BackendOptions) -> Result<Box<dyn Model>>;

/// Loads a model from the bytes of a file (`label` names it in errors).
pub type LoadBytesFn = fn(&[u8], &str, &BackendOptions) -> Result<Box<dyn Model>>;

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

fn known<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let list: Vec<&str> = names.collect();
    if list.is_empty() { "none".into() } else { list.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Probe;

    impl Metric for Probe {
        fn name(&self) -> &'static str {
            "registry-probe"
        }
        fn family(&self) -> MetricFamily {
            MetricFamily::Invariance
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
        family: MetricFamily::Invariance,
        build: build_probe,
    });

    #[test]
    fn registered_metric_is_found_and_built() {
        let entry = metric("registry-probe").unwrap();
        assert_eq!(entry.family, MetricFamily::Invariance);
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
    }
}
