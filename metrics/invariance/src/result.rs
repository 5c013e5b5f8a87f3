//! From the accumulated state to values per activation, per feature map, per layer and for the
//! whole model, with each package's aggregation rules:
//!
//! - **tmeasures** measures: a layer's value is the mean of its *finite* values (NaN when none
//!   is finite, as `per_layer_average`); the model's is the plain mean of the layer values (a
//!   NaN layer makes it NaN). Ratios use `safe_divide`: 0/0 = 1, x/0 = +inf; a NaN denominator
//!   gives NaN (tmeasures would return the numerator: not copied).
//! - **seed** measures: plain means (a NaN anywhere propagates) and IEEE division (0/0 = NaN,
//!   x/0 = inf). `normalized-variance`: per layer and in total ratios of means;
//!   `normalized-features-variance` and `normalized-same-equivariance`: per layer the mean of
//!   the per-feature ratios, in total the ratio of the totals.
//!
//! Non-finite numbers are written to JSON as the strings `"nan"`, `"inf"`, `"-inf"`.

use nnlens_core::LayerStructure;
use serde::{Deserialize, Serialize};

use crate::state::{LayerState, MeasureState, feature_indices};
use crate::{Convention, InvarianceError, Kind, Result};

/// One layer's values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerResult {
    /// The layer's name.
    pub name: String,
    /// The layer's activation shape (without batch).
    pub layer_shape: Vec<usize>,
    /// The channel axis of a feature layer.
    pub channel_axis: Option<usize>,
    /// The shape of `values`: the layer's shape, or `[features]` for measures given per
    /// feature map.
    pub shape: Vec<usize>,
    /// The measure per activation (or per feature map), row-major in `shape`.
    #[serde(with = "nonfinite::vec")]
    pub values: Vec<f64>,
    /// Per feature map, for feature layers (the measure's own per-feature value where it has
    /// one, else the layer's aggregation rule applied to each map).
    #[serde(with = "nonfinite::opt_vec", default)]
    pub features: Option<Vec<f64>>,
    /// The layer's value.
    #[serde(with = "nonfinite::f64")]
    pub value: f64,
    /// For ratios: the numerator per value.
    #[serde(with = "nonfinite::opt_vec", default)]
    pub numerator: Option<Vec<f64>>,
    /// For ratios: the denominator per value.
    #[serde(with = "nonfinite::opt_vec", default)]
    pub denominator: Option<Vec<f64>>,
    /// Measure-specific numbers (ANOVA degrees of freedom and critical value).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// A measure's values for every layer and for the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureResult {
    /// The measure's name.
    pub measure: String,
    /// Whose conventions.
    pub convention: Convention,
    /// The parameters that concern it.
    pub parameters: serde_json::Value,
    /// Samples (rows of the ST matrix).
    pub samples: usize,
    /// Transformations (columns).
    pub transformations: usize,
    /// Per layer (feature layers only for the measures defined on feature maps).
    pub layers: Vec<LayerResult>,
    /// Layers left out because the measure is defined on feature maps only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_layers: Vec<String>,
    /// The whole model's value.
    #[serde(with = "nonfinite::f64")]
    pub total: f64,
    /// For ratios: the numerator's total.
    #[serde(with = "nonfinite::opt_f64", default)]
    pub numerator_total: Option<f64>,
    /// For ratios: the denominator's total.
    #[serde(with = "nonfinite::opt_f64", default)]
    pub denominator_total: Option<f64>,
}

impl MeasureResult {
    /// The layer named `name`.
    pub fn layer(&self, name: &str) -> Option<&LayerResult> {
        self.layers.iter().find(|l| l.name == name)
    }
}

/// tmeasures' `safe_divide` (eps 0): `den > 0` gives `num / den`; `den <= 0` gives 1 when
/// `num <= 0` and +inf when `num > 0`; a NaN on either side gives NaN.
pub fn safe_divide(num: f64, den: f64) -> f64 {
    if num.is_nan() || den.is_nan() {
        f64::NAN
    } else if den > 0.0 {
        num / den
    } else if num <= 0.0 {
        1.0
    } else {
        f64::INFINITY
    }
}

/// The mean of the finite values (NaN when there are none), as tmeasures' per-layer average.
pub fn finite_mean(values: &[f64]) -> f64 {
    let (sum, n) =
        values.iter().filter(|v| v.is_finite()).fold((0.0, 0usize), |(s, n), &v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// The plain mean (NaN for no values; a NaN value propagates).
pub fn plain_mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn per_feature(
    layer: &LayerStructure,
    values: &[f64],
    mean: fn(&[f64]) -> f64,
) -> Option<Vec<f64>> {
    let maps = feature_indices(layer)?;
    let mut scratch = Vec::new();
    Some(
        maps.iter()
            .map(|idx| {
                scratch.clear();
                scratch.extend(idx.iter().map(|&k| values[k]));
                mean(&scratch)
            })
            .collect(),
    )
}

fn column_mean(
    state: &LayerState,
    stat: impl Fn(&nnlens_core::stats::Moments) -> Vec<f64>,
) -> Vec<f64> {
    let columns = state.columns.as_ref().expect("column moments accumulated");
    let mut sum = vec![0.0; state.layer.number_activations()];
    for m in columns {
        sum.iter_mut().zip(stat(m)).for_each(|(s, v)| *s += v);
    }
    sum.iter().map(|s| s / columns.len() as f64).collect()
}

struct Parts {
    values: Vec<f64>,
    shape: Vec<usize>,
    features: Option<Vec<f64>>,
    /// The layer's value where the measure has a rule of its own.
    value: Option<f64>,
    numerator: Option<Vec<f64>>,
    denominator: Option<Vec<f64>>,
    details: serde_json::Value,
    /// Seed ratios: the layer's numerator and denominator means (for the model total).
    totals: Option<(f64, f64)>,
}

impl Parts {
    fn plain(values: Vec<f64>, shape: Vec<usize>) -> Self {
        Self {
            values,
            shape,
            features: None,
            value: None,
            numerator: None,
            denominator: None,
            details: serde_json::Value::Null,
            totals: None,
        }
    }
}

impl MeasureState {
    /// The result of the state accumulated so far.
    ///
    /// # Errors
    /// [`InvarianceError::Invalid`] when a measure defined on feature maps finds no feature
    /// layer.
    pub fn finish(&self) -> Result<MeasureResult> {
        let kind = self.spec.kind;
        let convention = kind.convention();
        let mut layers = Vec::new();
        let mut skipped = Vec::new();
        let mut totals = Vec::new();
        for state in &self.layers {
            let layer = &state.layer;
            if kind.feature_layers_only() && !layer.is_feature_layer() {
                skipped.push(layer.name.clone());
                continue;
            }
            let parts = self.layer_parts(state)?;
            if let Some(t) = parts.totals {
                totals.push(t);
            }
            layers.push(LayerResult {
                name: layer.name.clone(),
                layer_shape: layer.shape.clone(),
                channel_axis: layer.channel_axis,
                shape: parts.shape,
                values: parts.values,
                features: parts.features,
                value: parts.value.unwrap_or(f64::NAN),
                numerator: parts.numerator,
                denominator: parts.denominator,
                details: parts.details,
            });
        }
        if layers.is_empty() {
            return Err(InvarianceError::Invalid(format!(
                "{} is defined on feature maps, and none of the layers measured ({}) has any",
                kind.name(),
                skipped.join(", ")
            )));
        }
        let layer_values: Vec<f64> = layers.iter().map(|l| l.value).collect();
        let (total, numerator_total, denominator_total) = if totals.is_empty() {
            (plain_mean(&layer_values), None, None)
        } else {
            let num = plain_mean(&totals.iter().map(|t| t.0).collect::<Vec<_>>());
            let den = plain_mean(&totals.iter().map(|t| t.1).collect::<Vec<_>>());
            (num / den, Some(num), Some(den))
        };
        Ok(MeasureResult {
            measure: kind.name().into(),
            convention,
            parameters: self.spec.relevant_parameters(),
            samples: self.samples,
            transformations: self.transformations,
            layers,
            skipped_layers: skipped,
            total,
            numerator_total,
            denominator_total,
        })
    }

    fn layer_parts(&self, state: &LayerState) -> Result<Parts> {
        let kind = self.spec.kind;
        let p = &self.spec.parameters;
        let layer = &state.layer;
        let shape = layer.shape.clone();
        let feature_shape = || vec![layer.number_features()];
        let tv_std = || state.row_std.as_ref().expect("row moments").mean();
        let tv_var = || state.row_variance.as_ref().expect("row moments").mean();
        let sv_std = || column_mean(state, |m| m.std(1));
        let sv_var = || column_mean(state, |m| m.variance(1));
        let ratio = |num: Vec<f64>, den: Vec<f64>, shape: Vec<usize>, f: fn(f64, f64) -> f64| {
            let values = num.iter().zip(&den).map(|(&n, &d)| f(n, d)).collect();
            Parts { numerator: Some(num), denominator: Some(den), ..Parts::plain(values, shape) }
        };
        let mut parts = match kind {
            Kind::Tvi | Kind::Tvse => Parts::plain(tv_std(), shape),
            Kind::Svi | Kind::Svse => Parts::plain(sv_std(), shape),
            Kind::Nvi | Kind::Nvse => {
                let (num, den) = (tv_std(), sv_std());
                match (p.average_feature_maps, layer.is_feature_layer()) {
                    (true, true) => ratio(
                        per_feature(layer, &num, plain_mean).expect("feature layer"),
                        per_feature(layer, &den, plain_mean).expect("feature layer"),
                        feature_shape(),
                        safe_divide,
                    ),
                    _ => ratio(num, den, shape, safe_divide),
                }
            }
            Kind::AnovaF | Kind::Anova => self.anova(state, shape)?,
            Kind::Tdi | Kind::Tdse | Kind::Sdi | Kind::Sdse | Kind::Ndi | Kind::Ndse => {
                let shape =
                    if p.keep_shape && layer.is_feature_layer() { feature_shape() } else { shape };
                let td = state.transformation_distance.as_ref().map(|d| d.mean());
                let sd = state.sample_distance.as_ref().map(|d| d.mean());
                match (td, sd) {
                    (Some(td), Some(sd)) => ratio(td, sd, shape, safe_divide),
                    (Some(d), None) | (None, Some(d)) => Parts::plain(d, shape),
                    (None, None) => unreachable!("distance measures accumulate distances"),
                }
            }
            Kind::Dses => Parts::plain(state.dses.as_ref().expect("dses").mean(), feature_shape()),
            Kind::GoodfellowNormal | Kind::Goodfellow => {
                let firing = state.firing.as_ref().expect("firing counts");
                let local: Vec<f64> =
                    firing.fired.iter().map(|&f| f as f64 / firing.cells as f64).collect();
                let global: Vec<f64> = if kind == Kind::Goodfellow {
                    firing
                        .global_fired
                        .iter()
                        .map(|&f| f as f64 / firing.global_cells as f64)
                        .collect()
                } else {
                    vec![1.0 - p.alpha; local.len()]
                };
                let mut parts = ratio(local, global, shape, safe_divide);
                parts.details =
                    serde_json::json!({ "threshold": nonfinite::to_json(&firing.threshold) });
                parts
            }
            Kind::Variance => Parts::plain(tv_var(), shape),
            Kind::NormalizedVariance => {
                let (num, den) = (tv_var(), sv_var());
                let (n, d) = (plain_mean(&num), plain_mean(&den));
                let mut parts = ratio(num, den, shape, |a, b| a / b);
                parts.value = Some(n / d);
                parts.totals = Some((n, d));
                parts
            }
            Kind::FeaturesVariance | Kind::SameEquivariance => {
                let values = tv_var();
                let features = per_feature(layer, &values, plain_mean).expect("feature layer");
                Parts { features: Some(features), ..Parts::plain(values, shape) }
            }
            Kind::NormalizedFeaturesVariance | Kind::NormalizedSameEquivariance => {
                let (num, den) = (tv_var(), sv_var());
                let fnum = per_feature(layer, &num, plain_mean).expect("feature layer");
                let fden = per_feature(layer, &den, plain_mean).expect("feature layer");
                let features: Vec<f64> = fnum.iter().zip(&fden).map(|(a, b)| a / b).collect();
                let totals = Some((plain_mean(&fnum), plain_mean(&fden)));
                let mut parts = ratio(num, den, shape, |a, b| a / b);
                parts.value = Some(plain_mean(&features));
                parts.features = Some(features);
                parts.totals = totals;
                parts
            }
        };
        // The layer's value, where the measure has no rule of its own.
        if parts.value.is_none() {
            parts.value = Some(match kind.convention() {
                Convention::Tmeasures => finite_mean(&parts.values),
                Convention::Seed => match &parts.features {
                    Some(f) if kind.feature_layers_only() => plain_mean(f),
                    _ => plain_mean(&parts.values),
                },
            });
        }
        if parts.features.is_none() && layer.is_feature_layer() {
            parts.features = if parts.shape == layer.shape {
                let mean = match kind.convention() {
                    Convention::Tmeasures => finite_mean,
                    Convention::Seed => plain_mean,
                };
                per_feature(layer, &parts.values, mean)
            } else {
                Some(parts.values.clone())
            };
        }
        Ok(parts)
    }

    /// One-way ANOVA per activation, groups = transformations (columns), from the column
    /// moments: `F = [S Σ_t (u_t - u)² / (T - 1)] / [Σ_t M2_t / ((S - 1) T)]`.
    fn anova(&self, state: &LayerState, shape: Vec<usize>) -> Result<Parts> {
        let columns = state.columns.as_ref().expect("column moments");
        let t = columns.len();
        let s = columns[0].count() as f64;
        let n = state.layer.number_activations();
        let (d_b, d_w) = ((t - 1) as f64, (s - 1.0) * t as f64);
        let f: Vec<f64> = (0..n)
            .map(|k| {
                let u = columns.iter().map(|m| m.mean()[k]).sum::<f64>() / t as f64;
                let between =
                    columns.iter().map(|m| (m.mean()[k] - u).powi(2)).sum::<f64>() * s / d_b;
                let within = columns.iter().map(|m| m.m2()[k]).sum::<f64>() / d_w;
                between / within
            })
            .collect();
        let df = serde_json::json!([d_b, d_w]);
        if self.spec.kind == Kind::AnovaF {
            let mut parts = Parts::plain(f, shape);
            parts.details = serde_json::json!({ "df": df });
            return Ok(parts);
        }
        let p = &self.spec.parameters;
        let level = if p.bonferroni { 1.0 - (1.0 - p.alpha) / n as f64 } else { p.alpha };
        let critical = crate::special::f_quantile(d_b, d_w, level)?;
        let flags = f.iter().map(|&x| if x > critical { 1.0 } else { 0.0 }).collect();
        let mut parts = Parts::plain(flags, shape);
        parts.details = serde_json::json!({
            "df": df,
            "critical_value": critical,
            "level": level,
            "f": nonfinite::to_json(&f),
        });
        Ok(parts)
    }
}

/// Serde helpers writing NaN and infinities as the strings `"nan"`, `"inf"`, `"-inf"` (JSON has
/// no such numbers) and reading them back.
pub mod nonfinite {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    fn repr(v: f64) -> Repr {
        if v.is_finite() {
            Repr::Number(v)
        } else if v.is_nan() {
            Repr::Text("nan".into())
        } else if v > 0.0 {
            Repr::Text("inf".into())
        } else {
            Repr::Text("-inf".into())
        }
    }

    fn value<E: serde::de::Error>(r: Repr) -> Result<f64, E> {
        match r {
            Repr::Number(v) => Ok(v),
            Repr::Text(t) => match t.as_str() {
                "nan" | "NaN" => Ok(f64::NAN),
                "inf" | "Infinity" => Ok(f64::INFINITY),
                "-inf" | "-Infinity" => Ok(f64::NEG_INFINITY),
                other => Err(E::custom(format!("not a number: '{other}'"))),
            },
        }
    }

    /// The JSON value of numbers (non-finite ones as strings).
    pub fn to_json(values: &[f64]) -> serde_json::Value {
        serde_json::to_value(values.iter().map(|&v| repr(v)).collect::<Vec<_>>())
            .expect("numbers and strings serialise")
    }

    /// Reads a number or one of the strings `nan`, `inf`, `-inf` from JSON.
    pub fn from_json(v: &serde_json::Value) -> Option<f64> {
        value::<serde::de::value::Error>(serde_json::from_value(v.clone()).ok()?).ok()
    }

    /// One `f64`.
    pub mod f64 {
        use super::*;
        /// Serialises.
        pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
            repr(*v).serialize(s)
        }
        /// Deserialises.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
            value(Repr::deserialize(d)?)
        }
    }

    /// An optional `f64`.
    pub mod opt_f64 {
        use super::*;
        /// Serialises.
        pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            v.map(repr).serialize(s)
        }
        /// Deserialises.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            Option::<Repr>::deserialize(d)?.map(value).transpose()
        }
    }

    /// A vector of `f64`.
    pub mod vec {
        use super::*;
        /// Serialises.
        pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(|&x| repr(x)))
        }
        /// Deserialises.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            Vec::<Repr>::deserialize(d)?.into_iter().map(value).collect()
        }
    }

    /// An optional vector of `f64`.
    pub mod opt_vec {
        use super::*;
        /// Serialises.
        pub fn serialize<S: Serializer>(v: &Option<Vec<f64>>, s: S) -> Result<S::Ok, S::Error> {
            v.as_ref().map(|v| v.iter().map(|&x| repr(x)).collect::<Vec<_>>()).serialize(s)
        }
        /// Deserialises.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<f64>>, D::Error> {
            Option::<Vec<Repr>>::deserialize(d)?
                .map(|v| v.into_iter().map(value).collect())
                .transpose()
        }
    }
}
