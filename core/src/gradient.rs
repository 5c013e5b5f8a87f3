//! Models that give gradients of a loss with respect to their own parameters, kept apart from
//! [`Model`](crate::Model) so that inference-only backends stay simple.

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD};
use serde::{Deserialize, Serialize};

use crate::{ModelStructure, Result};

/// One trainable tensor of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    /// Its name in the model file (an ONNX initializer's name).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
}

impl Parameter {
    /// The number of scalars.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no scalars.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `text` matches the glob `pattern`: `*` any run of characters (`/` and `.`
/// included), `?` any one character, everything else itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with backtracking to the last star: linear in practice.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// The PyTorch module path of a scoped layer name as the TorchScript exporter writes it:
/// `layer4/layer4.1/conv2` is the module `layer4.1.conv2`, and
/// `features/features.3/block/block.1/fc1` is `features.3.block.1.fc1` (a scope is either a
/// child of the previous one, `conv2`, or the previous one indexed, `layer4.1`).
pub fn module_path(layer: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for part in layer.split('/').filter(|p| !p.is_empty()) {
        match segments.last_mut() {
            Some(last)
                if part.len() > last.len() + 1
                    && part.starts_with(*last)
                    && part.as_bytes()[last.len()] == b'.' =>
            {
                *last = part;
            }
            _ => segments.push(part),
        }
    }
    segments.join(".")
}

/// Which of a model's trainable tensors a `--parameters` list selects. A pattern (a glob,
/// [`glob_matches`]) selects a tensor when it matches
/// - the tensor's name (`fc.weight`, `layer4.*`), or a module path the name is in (`fc` selects
///   `fc.weight` and `fc.bias`);
/// - the layer of the node that uses the tensor (`dense_1`, `layer4/layer4.1/conv2`), or that
///   layer's PyTorch module path ([`module_path()`]: `layer4.1.conv2`), or a module it is in.
///
/// `tensors` gives each trainable tensor's name and the layer of its first use. Returns whether
/// each is selected.
///
/// # Errors
/// [`crate::CoreError::InvalidParameters`] for an empty list or a pattern that selects nothing,
/// listing the layers that have parameters.
pub fn select_parameters(patterns: &[String], tensors: &[(String, String)]) -> Result<Vec<bool>> {
    let patterns: Vec<&str> = patterns.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect();
    if patterns.is_empty() {
        return Err(crate::CoreError::InvalidParameters {
            what: "--parameters".into(),
            reason: "names no layer or tensor".into(),
        });
    }
    let matches = |pattern: &str, name: &str, layer: &str| {
        let module = module_path(layer);
        let inside = format!("{pattern}.*");
        let below = format!("{pattern}/*");
        glob_matches(pattern, name)
            || glob_matches(&inside, name)
            || glob_matches(pattern, layer)
            || glob_matches(&below, layer)
            || glob_matches(pattern, &module)
            || glob_matches(&inside, &module)
    };
    for pattern in &patterns {
        if !tensors.iter().any(|(name, layer)| matches(pattern, name, layer)) {
            let mut layers: Vec<&str> = Vec::new();
            for (_, layer) in tensors {
                if !layers.contains(&layer.as_str()) {
                    layers.push(layer);
                }
            }
            let shown = if layers.len() > 12 {
                format!(
                    "{} ... {} (of {})",
                    layers[..6].join(", "),
                    layers[layers.len() - 6..].join(", "),
                    layers.len()
                )
            } else {
                layers.join(", ")
            };
            return Err(crate::CoreError::InvalidParameters {
                what: "--parameters".into(),
                reason: format!(
                    "'{pattern}' matches no trainable tensor or layer; the layers with parameters: {shown}"
                ),
            });
        }
    }
    Ok(tensors
        .iter()
        .map(|(name, layer)| patterns.iter().any(|p| matches(p, name, layer)))
        .collect())
}

/// The loss whose gradient is taken, per example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Categorical cross-entropy of the model's output taken as probabilities (a softmax
    /// output): `-log p[y]`, with `dL/dlogits = p - onehot(y)` through the softmax, no clipping.
    CrossEntropyFromProbabilities,
    /// Categorical cross-entropy of the model's output taken as logits: `-log softmax(z)[y]`.
    CrossEntropyFromLogits,
    /// Mean squared error of the output against real-valued targets (regression):
    /// `mean_k (out_k - t_k)^2`.
    MeanSquaredError,
}

/// What the loss compares the output with.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// Class labels, one per example (cross-entropy losses).
    Classes(&'a [usize]),
    /// Real targets `[examples, outputs]` (mean squared error).
    Values(ArrayView2<'a, f32>),
}

impl Targets<'_> {
    /// The number of examples the targets are for.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(c) => c.len(),
            Targets::Values(v) => v.nrows(),
        }
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A model that gives per-example gradients of a loss with respect to every parameter.
///
/// Gradients are flattened in the order of [`GradModel::parameters`], each tensor row-major;
/// dot products and cosines of gradients do not depend on that order, as long as every
/// gradient uses the same one.
pub trait GradModel: Send + Sync {
    /// The backend's name (`candle`, ...).
    fn backend(&self) -> &'static str;

    /// The model's input and layers.
    fn structure(&self) -> &ModelStructure;

    /// The trainable tensors, in the order of the flattened gradients.
    fn parameters(&self) -> &[Parameter];

    /// The total number of trainable scalars (the length of one flattened gradient).
    fn parameter_count(&self) -> usize {
        self.parameters().iter().map(Parameter::len).sum()
    }

    /// The model's output for a batch (`[batch, ...input shape]`).
    ///
    /// # Errors
    /// A batch of the wrong shape, or an engine error.
    fn output(&self, x: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>>;

    /// The gradient of `loss` for each example of the batch, flattened:
    /// `[batch, parameter_count]`.
    ///
    /// # Errors
    /// A batch of the wrong shape, targets of another length than the batch, a label outside
    /// the output's classes, a loss that does not fit the targets, or an engine error.
    fn per_example_gradients(
        &self,
        x: ArrayViewD<'_, f32>,
        targets: Targets<'_>,
        loss: Loss,
    ) -> Result<Array2<f32>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn globs_by_hand() {
        assert!(glob_matches("fc.*", "fc.weight"));
        assert!(glob_matches("*conv2*", "layer4.1.conv2.weight"));
        assert!(glob_matches("layer?.1.*", "layer4.1.bn2.bias"));
        assert!(!glob_matches("fc", "fc.weight"));
        assert!(!glob_matches("layer4.*", "layer3.0.conv1.weight"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn module_paths_of_exporter_scopes() {
        assert_eq!(module_path("layer4/layer4.1/conv2"), "layer4.1.conv2");
        assert_eq!(module_path("features/features.3/block/block.1/fc1"), "features.3.block.1.fc1");
        assert_eq!(
            module_path("features/features.2/block/block.1/block.1.2"),
            "features.2.block.1.2"
        );
        assert_eq!(module_path("fc"), "fc");
        assert_eq!(module_path("dense_1"), "dense_1");
    }

    #[test]
    fn selection_by_name_module_and_layer() {
        let t = |n: &str, l: &str| (n.to_string(), l.to_string());
        let tensors = [
            t("conv1.weight", "conv1"),
            t("onnx::Conv_193", "layer4/layer4.1/conv2"),
            t("onnx::Conv_194", "layer4/layer4.1/conv2"),
            t("fc.weight", "fc"),
            t("fc.bias", "fc"),
        ];
        let sel = |p: &[&str]| {
            select_parameters(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &tensors)
        };
        assert_eq!(sel(&["fc"]).unwrap(), [false, false, false, true, true]);
        assert_eq!(sel(&["layer4.1.conv2", "fc.bias"]).unwrap(), [false, true, true, false, true]);
        assert_eq!(sel(&["layer4"]).unwrap(), [false, true, true, false, false]);
        assert_eq!(sel(&["*.weight"]).unwrap(), [true, false, false, true, false]);
        let e = sel(&["fc", "nope"]).unwrap_err().to_string();
        assert!(e.contains("'nope'") && e.contains("conv1, layer4/layer4.1/conv2, fc"), "{e}");
        assert!(sel(&[" "]).is_err());
    }

    proptest! {
        /// A literal pattern matches exactly itself; a star matches every split of the text.
        #[test]
        fn literal_and_star_patterns(text in "[a-z./0-9]{0,12}", cut in 0usize..13) {
            prop_assert!(glob_matches(&text, &text));
            let cut = cut.min(text.len());
            let (head, tail) = text.split_at(cut);
            let starred = format!("{head}*{tail}");
            prop_assert!(glob_matches(&starred, &text));
            let prefix = format!("{head}*");
            prop_assert!(glob_matches(&prefix, &text));
            prop_assert_eq!(glob_matches(&format!("{text}x"), &text), false);
        }
    }
}
