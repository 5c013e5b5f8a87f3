//! The golden values of `../shared/golden/tmeasures/golden.json`: which measure, parameters
//! and part of the result each key is, so that the library test and the CLI test read the
//! same table.

use nnlens_invariance::MeasureResult;
use nnlens_invariance::result::nonfinite;
use serde_json::{Value, json};

/// Which part of a [`MeasureResult`] a golden key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The only layer's values.
    Values,
    /// The only layer's value.
    LayerValue,
    /// The model total.
    Total,
    /// The only layer's per-feature values.
    Features,
    /// The only layer's denominators.
    Denominator,
    /// ANOVA degrees of freedom.
    Df,
}

/// One golden key: the measure to run, its parameters, whether it needs the roll
/// transformations, and the part of the result to compare.
#[derive(Debug, Clone)]
pub struct Key {
    /// The key in golden.json.
    pub key: &'static str,
    /// The measure.
    pub measure: &'static str,
    /// Its parameters.
    pub parameters: Value,
    /// The columns are the roll transformations.
    pub roll: bool,
    /// What to compare.
    pub part: Part,
}

fn key(key: &'static str, measure: &'static str, parameters: Value, part: Part) -> Key {
    let roll = key.contains("roll") || key.contains("identity=");
    Key { key, measure, parameters, roll, part }
}

/// Every `tm_*` and `tf_*` key of golden.json.
pub fn keys() -> Vec<Key> {
    use Part::*;
    let none = Value::Null;
    let afm = json!({ "average_feature_maps": true });
    let keep = json!({ "keep_shape": true });
    vec![
        key("tm_TVI", "tvi", none.clone(), Values),
        key("tm_SVI", "svi", none.clone(), Values),
        key("tm_NVI", "nvi", none.clone(), Values),
        key("tm_NVI_layer_average", "nvi", none.clone(), LayerValue),
        key("tm_TVSE_roll", "tvse", none.clone(), Values),
        key("tm_SVSE_roll", "svse", none.clone(), Values),
        key("tm_NVSE_roll", "nvse", none.clone(), Values),
        key("tm_NVI_AverageFeatureMaps", "nvi", afm.clone(), Values),
        key("tm_NVSE_roll_AverageFeatureMaps", "nvse", afm, Values),
        key("tm_ANOVA_F", "anova-f", none.clone(), Values),
        key("tm_ANOVA_df", "anova-f", none.clone(), Df),
        key("tm_ANOVA_alpha0.99_no_bonferroni", "anova", json!({ "bonferroni": false }), Values),
        key("tm_ANOVA_alpha0.99_bonferroni_corrected", "anova", none.clone(), Values),
        key("tm_TDI", "tdi", none.clone(), Values),
        key("tm_SDI", "sdi", none.clone(), Values),
        key("tm_NDI", "ndi", none.clone(), Values),
        key("tm_NDSE_roll", "ndse", none.clone(), Values),
        key("tm_TDI_keep_shape", "tdi", keep.clone(), Values),
        key("tm_SDI_keep_shape", "sdi", keep.clone(), Values),
        key("tm_NDI_keep_shape", "ndi", keep.clone(), Values),
        key("tm_NDSE_roll_keep_shape", "ndse", keep, Values),
        key("tm_DSES_roll", "dses", none.clone(), Values),
        key("tm_GoodfellowNormal_np_alpha0.99", "goodfellow-normal", none.clone(), Values),
        key(
            "tm_GoodfellowNormal_np_alpha0.8",
            "goodfellow-normal",
            json!({ "alpha": 0.8 }),
            Values,
        ),
        key(
            "tm_Goodfellow_pytorch_alpha0.8_identity=A[:,0]",
            "goodfellow",
            json!({ "alpha": 0.8 }),
            Values,
        ),
        key("tf_Variance_total", "variance", none.clone(), Total),
        key("tf_Variance_activations", "variance", none.clone(), Values),
        key("tf_SampleVariance_activations", "normalized-variance", none.clone(), Denominator),
        key("tf_NormalizedVariance_total", "normalized-variance", none.clone(), Total),
        key("tf_NormalizedVariance_activations", "normalized-variance", none.clone(), Values),
        key("tf_FeaturesVariance_total", "features-variance", none.clone(), Total),
        key("tf_FeaturesVariance_features", "features-variance", none.clone(), Features),
        key(
            "tf_NormalizedFeaturesVariance_total",
            "normalized-features-variance",
            none.clone(),
            Total,
        ),
        key(
            "tf_NormalizedFeaturesVariance_features",
            "normalized-features-variance",
            none.clone(),
            Features,
        ),
        key("tf_SameEquivariance_roll_total", "same-equivariance", none.clone(), Total),
        key("tf_SameEquivariance_roll_features", "same-equivariance", none.clone(), Features),
        key(
            "tf_NormalizedSameEquivariance_roll_total",
            "normalized-same-equivariance",
            none.clone(),
            Total,
        ),
        key(
            "tf_NormalizedSameEquivariance_roll_features",
            "normalized-same-equivariance",
            none,
            Features,
        ),
    ]
}

/// The golden file.
pub fn golden() -> Value {
    let path = crate::shared_dir().join("golden/tmeasures/golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A case's input as `(shape, values)`.
pub fn input(case: &Value) -> (Vec<usize>, Vec<f64>) {
    let shape: Vec<usize> = serde_json::from_value(case["shape"].clone()).unwrap();
    let mut values = Vec::new();
    flatten(&case["input"], &mut values);
    assert_eq!(values.len(), shape.iter().product::<usize>());
    (shape, values)
}

/// The channel axis the golden file's seed values were computed with: 0 for `(C, H, W)`
/// activations, none for vectors.
pub fn channel_axis(shape: &[usize]) -> Option<usize> {
    (shape.len() == 5).then_some(0)
}

/// Nested lists of numbers, `"nan"`/`"inf"` strings and booleans, flattened (booleans as 0/1).
pub fn flatten(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        Value::Bool(b) => out.push(f64::from(u8::from(*b))),
        other => out.push(nonfinite::from_json(other).unwrap_or_else(|| panic!("{other}"))),
    }
}

/// The part of `result` that `part` names, flattened.
pub fn extract(result: &MeasureResult, part: Part) -> Vec<f64> {
    let layer = &result.layers[0];
    match part {
        Part::Values => layer.values.clone(),
        Part::LayerValue => vec![layer.value],
        Part::Total => vec![result.total],
        Part::Features => layer.features.clone().expect("features"),
        Part::Denominator => layer.denominator.clone().expect("denominator"),
        Part::Df => {
            let mut v = Vec::new();
            flatten(&layer.details["df"], &mut v);
            v
        }
    }
}

/// Compares to relative 1e-9 (absolute 1e-12 near zero) with NaN and infinities exactly; the
/// description of every mismatch.
pub fn mismatches(got: &[f64], expected: &[f64]) -> Vec<String> {
    if got.len() != expected.len() {
        return vec![format!("{} values, expected {}", got.len(), expected.len())];
    }
    got.iter()
        .zip(expected)
        .enumerate()
        .filter(|(_, (g, e))| {
            let same_class = g.is_nan() == e.is_nan()
                && g.is_infinite() == e.is_infinite()
                && (!e.is_infinite() || g.signum() == e.signum());
            let close = !e.is_finite() || (*g - *e).abs() <= 1e-9 * e.abs() + 1e-12;
            !(same_class && close)
        })
        .map(|(i, (g, e))| format!("[{i}] {g} vs {e}"))
        .collect()
}
