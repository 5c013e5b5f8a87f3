//! The parameters of a gradient similarity run, and its registration as the `similarity` metric.

use nnlens_core::{Loss, Metric, MetricEntry, MetricFamily};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SimilarityError, invalid};

/// The constant added to the denominators of `grad_cos` and `grad_asym_dot` (alibi's).
pub const EPSILON: f64 = 1e-7;

/// How two gradients are compared: alibi's `sim_fn`. With `X` the test gradients and `Y` the
/// reference gradients (one per row):
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimFn {
    /// `X Y^T`.
    GradDot,
    /// `X Y^T / (|X| |Y|^T + 1e-7)`: the cosine (the constant is added to the product of the
    /// norms).
    GradCos,
    /// `X Y^T / (|Y|^2 + 1e-7)`: normalised by the reference gradient only (asymmetric;
    /// Hanawa et al. 2021).
    GradAsymDot,
}

impl SimFn {
    /// Every similarity function.
    pub const ALL: [SimFn; 3] = [SimFn::GradDot, SimFn::GradCos, SimFn::GradAsymDot];

    /// alibi's name (`grad_dot`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SimFn::GradDot => "grad_dot",
            SimFn::GradCos => "grad_cos",
            SimFn::GradAsymDot => "grad_asym_dot",
        }
    }

    /// The score of a pair from its dot product and the two squared norms.
    #[inline]
    pub fn score(self, dot: f64, test_norm_sq: f64, reference_norm_sq: f64) -> f64 {
        match self {
            SimFn::GradDot => dot,
            SimFn::GradCos => dot / (test_norm_sq.sqrt() * reference_norm_sq.sqrt() + EPSILON),
            SimFn::GradAsymDot => dot / (reference_norm_sq + EPSILON),
        }
    }
}

impl std::fmt::Display for SimFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SimFn {
    type Err = SimilarityError;
    fn from_str(s: &str) -> Result<Self> {
        SimFn::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            invalid!("unknown sim_fn '{s}'; use grad_dot, grad_cos or grad_asym_dot")
        })
    }
}

/// The parameters of a gradient similarity run (the `similarity` metric), with alibi's
/// defaults except `top_k` (alibi always shows 5) and the loss (alibi takes a loss function).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimilaritySpec {
    /// How gradients are compared.
    pub sim_fn: SimFn,
    /// Whether `fit` computes and stores the reference gradients (`n x parameters` `f32`), or
    /// every `explain` recomputes them, streaming.
    pub precompute: bool,
    /// How many most and least similar reference examples an explanation lists.
    pub top_k: usize,
    /// The loss whose gradients are compared.
    pub loss: Loss,
    /// Reference examples whose gradients are computed (in parallel) and held at once when
    /// streaming, and per step of `fit`: memory is `batch_size x parameters` floats beyond the
    /// stored gradients.
    pub batch_size: usize,
}

impl Default for SimilaritySpec {
    fn default() -> Self {
        Self {
            sim_fn: SimFn::GradDot,
            precompute: false,
            top_k: 5,
            loss: Loss::CrossEntropyFromProbabilities,
            batch_size: 32,
        }
    }
}

impl SimilaritySpec {
    /// Parses parameters (a JSON object of the fields above; null for the defaults).
    ///
    /// # Errors
    /// Unknown keys, values of the wrong type, or values [`Self::validate`] refuses.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let spec: Self = if value.is_null() {
            Self::default()
        } else {
            serde_json::from_value(value.clone())
                .map_err(|e| invalid!("similarity parameters: {e}"))?
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// `top_k` or `batch_size` 0.
    pub fn validate(&self) -> Result<()> {
        if self.top_k == 0 {
            return Err(invalid!("top_k must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(invalid!("batch_size must be at least 1"));
        }
        Ok(())
    }
}

impl Metric for SimilaritySpec {
    fn name(&self) -> &'static str {
        "similarity"
    }
    fn family(&self) -> MetricFamily {
        "similarity"
    }
    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn build(value: &serde_json::Value) -> nnlens_core::Result<Box<dyn Metric>> {
    Ok(Box::new(SimilaritySpec::from_json(value)?))
}

nnlens_core::register_metric!(MetricEntry {
    name: "similarity",
    description: "alibi: the reference examples whose loss gradients are most like an instance's (grad_dot, grad_cos, grad_asym_dot)",
    family: "similarity",
    build,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_parse_validate_and_round_trip() {
        let spec = SimilaritySpec::from_json(&serde_json::json!({
            "sim_fn": "grad_cos", "precompute": true, "top_k": 3, "loss": "cross-entropy-from-logits"
        }))
        .unwrap();
        assert_eq!(spec.sim_fn, SimFn::GradCos);
        assert_eq!(spec.loss, Loss::CrossEntropyFromLogits);
        assert_eq!(spec.batch_size, 32);
        assert_eq!(SimilaritySpec::from_json(&spec.parameters()).unwrap(), spec);
        assert_eq!(
            SimilaritySpec::from_json(&serde_json::Value::Null).unwrap(),
            SimilaritySpec::default()
        );
        let e = SimilaritySpec::from_json(&serde_json::json!({"top_k": 0})).unwrap_err();
        assert!(e.to_string().contains("top_k"), "{e}");
        let e = SimilaritySpec::from_json(&serde_json::json!({"sim_fn": "grad_l2"})).unwrap_err();
        assert!(e.to_string().contains("grad_l2"), "{e}");
        assert!(SimilaritySpec::from_json(&serde_json::json!({"k": 1})).is_err());
        assert_eq!("grad_asym_dot".parse::<SimFn>().unwrap(), SimFn::GradAsymDot);
        assert!("cos".parse::<SimFn>().is_err());
        let entry = nnlens_core::metric("similarity").unwrap();
        assert_eq!(entry.family, "similarity");
    }

    #[test]
    fn scores_by_hand() {
        // dot 6, |x|^2 = 4, |y|^2 = 9.
        assert_eq!(SimFn::GradDot.score(6.0, 4.0, 9.0), 6.0);
        assert!((SimFn::GradCos.score(6.0, 4.0, 9.0) - 6.0 / (6.0 + 1e-7)).abs() < 1e-15);
        assert!((SimFn::GradAsymDot.score(6.0, 4.0, 9.0) - 6.0 / (9.0 + 1e-7)).abs() < 1e-15);
        // A zero gradient scores 0 in all three.
        for f in SimFn::ALL {
            assert_eq!(f.score(0.0, 0.0, 0.0), 0.0);
        }
    }
}
