//! The registered metrics `influence` and `performance` (family
//! `influence`) and their parameters.
//!
//! Parameters (a JSON object; `null` or `{}` for the defaults):
//!
//! | key | value | default |
//! | --- | --- | --- |
//! | `alpha` | quantile level in (0, 0.5) | 0.05 |
//! | `taus` | a count (ethik's grid, [`taus_from_count`]) or a list of taus in [-1, 1] | 41 |
//! | `solver` | `"exact"` or `"ethik"` (ethik-compatible) | `"exact"` |
//! | `tol` | ethik's tolerance (only with `"ethik"`) | 1e-4 |
//! | `n_samples` | bootstrap masks; 1 = no bootstrap | 1 |
//! | `sample_frac` | bootstrap: probability to keep a row, in (0, 1) | 0.8 |
//! | `conf_level` | bootstrap: band quantile, in (0, 0.5) | 0.05 |
//! | `seed` | bootstrap: seed of the masks | 0 |
//! | `metric` | `performance` only: `accuracy`, `log-loss`, `mean-squared-error` | `accuracy` |
//!
//! ethik's image explainer is `{"taus": 3}` (tau in -1, 0, 1).

use nnlens_core::{CoreError, Metric, MetricEntry, MetricFamily};
use serde_json::{Map, Value, json};

use crate::options::{DEFAULT_CONF_LEVEL, DEFAULT_SAMPLE_FRAC, ETHIK_TOL};
use crate::{
    Bootstrap, Explainer, InfluenceError, Options, Result, Score, Solver, taus_from_count,
};

/// The `influence` metric: options of an [`Explainer`] whose results are
/// [`Influence`](crate::Influence).
#[derive(Debug, Clone, PartialEq)]
pub struct InfluenceMetric {
    /// The options.
    pub options: Options,
}

impl InfluenceMetric {
    /// From JSON parameters (see the module docs).
    ///
    /// # Errors
    /// [`InfluenceError::Parameter`] for an unknown key or a bad value.
    pub fn from_json(parameters: &Value) -> Result<Self> {
        let (options, metric) = parse(parameters, false)?;
        debug_assert!(metric.is_none());
        Ok(Self { options })
    }

    /// The explainer of these options.
    pub fn explainer(&self) -> Explainer {
        Explainer::from_valid(self.options.clone())
    }
}

/// The `performance` metric: options of an [`Explainer`] and the [`Score`]; results are
/// [`Performance`](crate::Performance).
#[derive(Debug, Clone, PartialEq)]
pub struct PerformanceMetric {
    /// The options.
    pub options: Options,
    /// The metric computed with sample weights.
    pub score: Score,
}

impl PerformanceMetric {
    /// From JSON parameters (see the module docs).
    ///
    /// # Errors
    /// [`InfluenceError::Parameter`] for an unknown key or a bad value.
    pub fn from_json(parameters: &Value) -> Result<Self> {
        let (options, metric) = parse(parameters, true)?;
        Ok(Self { options, score: metric.unwrap_or(Score::Accuracy) })
    }

    /// The explainer of these options.
    pub fn explainer(&self) -> Explainer {
        Explainer::from_valid(self.options.clone())
    }
}

/// The resolved parameters of options (and metric), accepted back by the parsers.
pub fn options_to_json(options: &Options, score: Option<Score>) -> Value {
    let mut m = Map::new();
    m.insert("alpha".into(), json!(options.alpha));
    m.insert("taus".into(), json!(options.taus));
    match options.solver {
        Solver::Exact => {
            m.insert("solver".into(), json!("exact"));
        }
        Solver::EthikCompatible { tol } => {
            m.insert("solver".into(), json!("ethik"));
            m.insert("tol".into(), json!(tol));
        }
    }
    match &options.bootstrap {
        None => {
            m.insert("n_samples".into(), json!(1));
        }
        Some(b) => {
            m.insert("n_samples".into(), json!(b.n_samples));
            m.insert("sample_frac".into(), json!(b.sample_frac));
            m.insert("conf_level".into(), json!(b.conf_level));
            m.insert("seed".into(), json!(b.seed));
        }
    }
    if let Some(s) = score {
        m.insert("metric".into(), json!(s.name()));
    }
    Value::Object(m)
}

const KEYS: [&str; 8] =
    ["alpha", "taus", "solver", "tol", "n_samples", "sample_frac", "conf_level", "seed"];

fn number(key: &str, v: &Value) -> Result<f64> {
    v.as_f64().ok_or_else(|| InfluenceError::parameter(key, format!("expected a number, got {v}")))
}

fn count(key: &str, v: &Value) -> Result<u64> {
    v.as_u64().ok_or_else(|| {
        InfluenceError::parameter(key, format!("expected a non-negative integer, got {v}"))
    })
}

/// Parses parameters; `metric` is allowed only when `with_metric`.
fn parse(parameters: &Value, with_metric: bool) -> Result<(Options, Option<Score>)> {
    let empty = Map::new();
    let map = match parameters {
        Value::Null => &empty,
        Value::Object(m) => m,
        other => {
            return Err(InfluenceError::parameter(
                "parameters",
                format!("expected a JSON object, got {other}"),
            ));
        }
    };
    for key in map.keys() {
        let known = KEYS.contains(&key.as_str()) || (with_metric && key == "metric");
        if !known {
            let mut known = KEYS.to_vec();
            if with_metric {
                known.push("metric");
            }
            return Err(InfluenceError::parameter(
                key.clone(),
                format!("unknown parameter (known: {})", known.join(", ")),
            ));
        }
    }
    let mut options = Options::default();
    if let Some(v) = map.get("alpha") {
        options.alpha = number("alpha", v)?;
    }
    if let Some(v) = map.get("taus") {
        options.taus = match v {
            Value::Array(items) => {
                items.iter().map(|t| number("taus", t)).collect::<Result<Vec<f64>>>()?
            }
            Value::Number(_) => {
                let n = count("taus", v)?;
                taus_from_count(usize::try_from(n).map_err(|_| {
                    InfluenceError::parameter("taus", format!("{n} taus are too many"))
                })?)?
            }
            other => {
                return Err(InfluenceError::parameter(
                    "taus",
                    format!("expected a count or a list of numbers, got {other}"),
                ));
            }
        };
    }
    let solver = match map.get("solver") {
        None => "exact",
        Some(v) => v.as_str().ok_or_else(|| {
            InfluenceError::parameter("solver", format!("expected \"exact\" or \"ethik\", got {v}"))
        })?,
    };
    let tol = map.get("tol").map(|v| number("tol", v)).transpose()?;
    options.solver = match solver {
        "exact" => {
            if tol.is_some() {
                return Err(InfluenceError::parameter(
                    "tol",
                    "only the ethik solver has a tolerance (the exact one solves to 1e-13)",
                ));
            }
            Solver::Exact
        }
        "ethik" | "ethik-compatible" => Solver::EthikCompatible { tol: tol.unwrap_or(ETHIK_TOL) },
        other => {
            return Err(InfluenceError::parameter(
                "solver",
                format!("unknown solver '{other}' (known: exact, ethik)"),
            ));
        }
    };
    let n_samples = map.get("n_samples").map(|v| count("n_samples", v)).transpose()?.unwrap_or(1);
    let mut boot = Bootstrap {
        n_samples: usize::try_from(n_samples)
            .map_err(|_| InfluenceError::parameter("n_samples", "too large"))?,
        sample_frac: DEFAULT_SAMPLE_FRAC,
        conf_level: DEFAULT_CONF_LEVEL,
        seed: 0,
    };
    if let Some(v) = map.get("sample_frac") {
        boot.sample_frac = number("sample_frac", v)?;
    }
    if let Some(v) = map.get("conf_level") {
        boot.conf_level = number("conf_level", v)?;
    }
    if let Some(v) = map.get("seed") {
        boot.seed = count("seed", v)?;
    }
    match boot.n_samples {
        0 => return Err(InfluenceError::parameter("n_samples", "must be at least 1")),
        1 => {
            // ethik: one sample means no bootstrap (sample_frac forced to 1); the other
            // bootstrap parameters are still checked.
            Bootstrap { n_samples: 2, ..boot }.validate()?;
            options.bootstrap = None;
        }
        _ => options.bootstrap = Some(boot),
    }
    options.validate()?;
    let metric = match map.get("metric") {
        None => None,
        Some(Value::String(name)) => Some(Score::from_name(name)?),
        Some(other) => {
            return Err(InfluenceError::parameter(
                "metric",
                format!("expected a metric name, got {other}"),
            ));
        }
    };
    Ok((options, metric))
}

impl Metric for InfluenceMetric {
    fn name(&self) -> &'static str {
        "influence"
    }

    fn family(&self) -> MetricFamily {
        "influence"
    }

    fn parameters(&self) -> Value {
        options_to_json(&self.options, None)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl Metric for PerformanceMetric {
    fn name(&self) -> &'static str {
        "performance"
    }

    fn family(&self) -> MetricFamily {
        "influence"
    }

    fn parameters(&self) -> Value {
        options_to_json(&self.options, Some(self.score))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Builds the `influence` metric from parameters (the registry's constructor).
///
/// # Errors
/// [`CoreError::InvalidParameters`] for an unknown key or a bad value.
pub fn build_influence(parameters: &Value) -> nnlens_core::Result<Box<dyn Metric>> {
    Ok(Box::new(InfluenceMetric::from_json(parameters).map_err(CoreError::from)?))
}

/// Builds the `performance` metric from parameters (the registry's constructor).
///
/// # Errors
/// [`CoreError::InvalidParameters`] for an unknown key or a bad value.
pub fn build_performance(parameters: &Value) -> nnlens_core::Result<Box<dyn Metric>> {
    Ok(Box::new(PerformanceMetric::from_json(parameters).map_err(CoreError::from)?))
}

nnlens_core::register_metric!(MetricEntry {
    name: "influence",
    description: "ethik: mean prediction per class when each feature's mean is moved to a quantile (entropic re-weighting)",
    family: "influence",
    build: build_influence,
});

nnlens_core::register_metric!(MetricEntry {
    name: "performance",
    description: "ethik: a metric (accuracy, log loss, MSE) under the re-weighting that moves each feature's mean",
    family: "influence",
    build: build_performance,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_round_trip() {
        let m = InfluenceMetric::from_json(&Value::Null).unwrap();
        assert_eq!(m.options, Options::default());
        let back = InfluenceMetric::from_json(&m.parameters()).unwrap();
        assert_eq!(back, m);
        let p =
            json!({"taus": 3, "solver": "ethik", "n_samples": 5, "seed": 7, "metric": "log_loss"});
        let m = PerformanceMetric::from_json(&p).unwrap();
        assert_eq!(m.options.taus, vec![-1.0, 0.0, 1.0]);
        assert_eq!(m.options.solver, Solver::ethik());
        assert_eq!(m.score, Score::LogLoss);
        assert_eq!(m.options.bootstrap.unwrap().seed, 7);
        assert_eq!(PerformanceMetric::from_json(&m.parameters()).unwrap(), m);
    }

    #[test]
    fn bad_parameters_are_named() {
        let err = |p: Value, perf: bool| {
            if perf {
                PerformanceMetric::from_json(&p).unwrap_err().to_string()
            } else {
                InfluenceMetric::from_json(&p).unwrap_err().to_string()
            }
        };
        assert!(err(json!({"metric": "accuracy"}), false).contains("'metric'"));
        assert!(err(json!({"alfa": 0.1}), true).contains("unknown parameter"));
        assert!(err(json!({"alpha": 0.5}), false).contains("'alpha'"));
        assert!(err(json!({"alpha": "x"}), false).contains("expected a number"));
        assert!(err(json!({"taus": [0.5, 1.5]}), false).contains("outside [-1, 1]"));
        assert!(err(json!({"taus": 0}), false).contains("'taus'"));
        assert!(err(json!({"tol": 0.1}), false).contains("'tol'"));
        assert!(err(json!({"solver": "ethik", "tol": -1.0}), false).contains("'tol'"));
        assert!(err(json!({"solver": "newton"}), false).contains("unknown solver"));
        assert!(err(json!({"n_samples": 0}), false).contains("'n_samples'"));
        assert!(err(json!({"n_samples": 10, "sample_frac": 1.0}), false).contains("sample_frac"));
        assert!(err(json!({"conf_level": 0.5}), false).contains("conf_level"));
        assert!(err(json!({"metric": "f1"}), true).contains("unknown metric"));
        assert!(err(json!([1, 2]), true).contains("JSON object"));
    }
}
