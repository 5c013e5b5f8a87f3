//! The layers a linearity run measures and how their outputs are compared: what both the
//! measure and its results speak of.

use serde::{Deserialize, Serialize};

use crate::error::{LinearityError, Result, invalid};

/// The additive constant of the classifier transform `log(p + 1e-10)` (alibi's).
pub const LOG_EPSILON: f64 = 1e-10;

/// How the output of a layer is compared: alibi's `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    /// The output is a probability vector; it is compared as `log(p + 1e-10)` (natural log).
    Classifier,
    /// The output is compared as it is.
    Regressor,
}

impl ModelType {
    /// The transform `g` applied to every output value before the norm.
    #[inline]
    pub fn apply(self, v: f32) -> f64 {
        match self {
            ModelType::Classifier => (f64::from(v) + LOG_EPSILON).ln(),
            ModelType::Regressor => f64::from(v),
        }
    }
}

impl std::str::FromStr for ModelType {
    type Err = LinearityError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "classifier" => Ok(ModelType::Classifier),
            "regressor" => Ok(ModelType::Regressor),
            _ => Err(invalid!("unknown model type '{s}'; use classifier or regressor")),
        }
    }
}

/// A layer to measure and how its output is compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// The layer's name (or tensor name).
    pub name: String,
    /// Classifier or regressor.
    pub model_type: ModelType,
}
