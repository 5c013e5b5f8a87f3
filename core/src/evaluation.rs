use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

/// Loss and accuracy accumulated over batches. The state is a sum of integers (the losses in
/// fixed point, see [`Self::add_loss`]), so evaluations of disjoint parts of a dataset
/// [`merge`](Self::merge) into exactly the evaluation of the whole, however it was split into
/// batches or shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The number of samples seen.
    pub samples: u64,
    /// The sum of the per-sample losses (`loss_fixed` as an `f64`).
    pub loss_sum: f64,
    /// The sum of the per-sample losses, each rounded to a multiple of 2^-64 (about 5e-20):
    /// integer sums are exact in any order. Stored as a decimal string (JSON numbers are
    /// `f64` to most readers).
    #[serde(default, with = "decimal")]
    pub loss_fixed: i128,
    /// The number of samples whose arg-max prediction is the label.
    pub correct: u64,
}

/// An `i128` as a decimal string.
mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The fixed-point scale of [`Evaluation::loss_fixed`].
const LOSS_SCALE: f64 = 18_446_744_073_709_551_616.0; // 2^64

impl Evaluation {
    /// Adds another evaluation (of other samples) to this one.
    pub fn merge(&mut self, other: &Evaluation) {
        self.samples += other.samples;
        self.loss_fixed = self.loss_fixed.saturating_add(other.loss_fixed);
        self.loss_sum = self.loss_fixed as f64 / LOSS_SCALE;
        self.correct += other.correct;
    }

    /// Adds one sample's loss (finite; a loss of 2^63 or more saturates).
    pub fn add_loss(&mut self, loss: f64) {
        // `as` saturates at i128's range; losses here are below 2^63, so far inside it.
        let fixed = (loss * LOSS_SCALE).round() as i128;
        self.loss_fixed = self.loss_fixed.saturating_add(fixed);
        self.loss_sum = self.loss_fixed as f64 / LOSS_SCALE;
    }

    /// The mean loss (NaN for no samples).
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.samples as f64
    }

    /// The fraction of correct predictions (NaN for no samples).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples as f64
    }
}

/// Probabilities are clipped to `[EPSILON, 1 - EPSILON]` before the log, as Keras does.
const EPSILON: f64 = 1e-7;

/// Whether every row of a model's output `[n, classes]` is a probability vector: entries in
/// [0, 1] summing to 1 within 1e-3 (a softmax output), rather than logits. The rule by which
/// [`cross_entropy_of_output`] and the gradient losses choose how to read an output.
pub fn are_probabilities(output: ArrayView2<'_, f32>) -> bool {
    output.rows().into_iter().all(|row| {
        let sum: f64 = row.iter().map(|&p| p as f64).sum();
        row.iter().all(|&p| (0.0..=1.0).contains(&p)) && (sum - 1.0).abs() < 1e-3
    })
}

/// The categorical cross-entropy and accuracy of a model output `[n, classes]` against integer
/// labels.
///
/// A batch whose rows are all probability vectors (entries in [0, 1], summing to 1 within 1e-3)
/// is scored as probabilities (`-ln p_label`, clipped as Keras); any other batch as logits
/// (`-log_softmax(z)_label`). Accuracy compares the first arg-max with the label.
///
/// # Errors
/// [`CoreError::Shape`] when `labels` and `output` disagree, [`CoreError::Label`] for a label
/// outside the classes, [`CoreError::NonFinite`] for a NaN or infinite output.
pub fn cross_entropy_of_output(
    output: ArrayView2<'_, f32>,
    labels: &[usize],
) -> Result<Evaluation> {
    let (n, classes) = output.dim();
    if n != labels.len() {
        return Err(CoreError::Shape {
            what: "labels".into(),
            expected: format!("{n} labels (one per output row)"),
            got: format!("{}", labels.len()),
        });
    }
    if let Some((index, &value)) = output.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(CoreError::NonFinite { what: "the model's output".into(), value, index });
    }
    let probabilities = are_probabilities(output);
    let mut eval = Evaluation { samples: n as u64, ..Default::default() };
    for (row_index, (row, &label)) in output.rows().into_iter().zip(labels).enumerate() {
        if label >= classes {
            return Err(CoreError::Label { label, row: row_index, classes });
        }
        let mut best = 0;
        for (k, &v) in row.iter().enumerate() {
            if v > row[best] {
                best = k;
            }
        }
        if best == label {
            eval.correct += 1;
        }
        eval.add_loss(if probabilities {
            -(row[label] as f64).clamp(EPSILON, 1.0 - EPSILON).ln()
        } else {
            let max = row[best] as f64;
            let log_sum: f64 = row.iter().map(|&z| (z as f64 - max).exp()).sum::<f64>().ln();
            -(row[label] as f64 - max - log_sum)
        });
    }
    Ok(eval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    #[test]
    fn the_exact_sum_round_trips_through_json() {
        let mut e = Evaluation::default();
        for l in [0.3f64, 12.5, 1e-3, 16.1] {
            e.add_loss(l);
        }
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"loss_fixed\":\""), "{text}");
        let back: Evaluation = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
        assert!((e.loss_sum - 28.901).abs() < 1e-12);
    }

    #[test]
    fn probabilities_by_hand() {
        let p = array![[0.7f32, 0.2, 0.1], [0.1, 0.3, 0.6]];
        let e = cross_entropy_of_output(p.view(), &[0, 1]).unwrap();
        assert_eq!(e.correct, 1);
        let expected = (-(0.7f64).ln() - (0.3f64).ln()) / 2.0;
        assert!((e.loss() - expected).abs() < 1e-6, "{} vs {expected}", e.loss());
        assert_eq!(e.accuracy(), 0.5);
    }

    #[test]
    fn logits_by_hand() {
        let z = array![[2.0f32, 0.0, -1.0]];
        let e = cross_entropy_of_output(z.view(), &[1]).unwrap();
        let lse = (2f64.exp() + 1.0 + (-1f64).exp()).ln();
        assert!((e.loss() - (lse - 0.0)).abs() < 1e-9);
        assert_eq!(e.correct, 0);
    }

    #[test]
    fn bad_labels_and_values_are_errors() {
        let p = array![[0.5f32, 0.5]];
        assert!(matches!(cross_entropy_of_output(p.view(), &[2]), Err(CoreError::Label { .. })));
        assert!(matches!(cross_entropy_of_output(p.view(), &[0, 1]), Err(CoreError::Shape { .. })));
        let nan = array![[f32::NAN, 0.5]];
        assert!(matches!(
            cross_entropy_of_output(nan.view(), &[0]),
            Err(CoreError::NonFinite { .. })
        ));
    }

    proptest! {
        #[test]
        fn merging_halves_equals_the_whole(
            rows in proptest::collection::vec(proptest::collection::vec(-5.0f32..5.0, 4), 2..20),
            split in 0usize..20,
        ) {
            let n = rows.len();
            let split = split.min(n);
            let flat: Vec<f32> = rows.concat();
            let out = ndarray::Array2::from_shape_vec((n, 4), flat).unwrap();
            let labels: Vec<usize> = (0..n).map(|i| i % 4).collect();
            let whole = cross_entropy_of_output(out.view(), &labels).unwrap();
            let mut a = cross_entropy_of_output(out.slice(ndarray::s![..split, ..]), &labels[..split]).unwrap();
            let b = cross_entropy_of_output(out.slice(ndarray::s![split.., ..]), &labels[split..]).unwrap();
            a.merge(&b);
            // Identical, not close: the sums are of integers.
            prop_assert_eq!(a, whole);
            let direct: f64 = (0..n)
                .map(|i| cross_entropy_of_output(out.slice(ndarray::s![i..i + 1, ..]), &labels[i..i + 1]).unwrap().loss_sum)
                .sum();
            prop_assert!((a.loss_sum - direct).abs() < 1e-12 * direct.abs().max(1.0));
        }
    }
}
