//! Performance metrics with sample weights, as sklearn computes them.
//!
//! Each metric is a weighted mean of a per-row value (`sum_i w_i v_i` with `sum w = 1`, sklearn's
//! `normalize=True`), so the performance of every (tau, feature) pair is one matrix product of
//! the weights with the per-row values.

use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::{InfluenceError, Result};

/// sklearn's clipping constant for `log_loss` on float64 probabilities (`eps="auto"`:
/// `np.finfo(np.float64).eps`).
pub const LOG_LOSS_EPS: f64 = f64::EPSILON;

/// A performance metric with sample weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Score {
    /// `accuracy_score(labels, argmax(y_pred))`: the weighted fraction of rows whose predicted
    /// class (the first largest column; with a single column, class 1 when it is above 0.5) is
    /// the label.
    Accuracy,
    /// `log_loss(labels, y_pred)`: `-sum_i w_i ln p_i(label_i)`, the probabilities clipped to
    /// `[eps, 1 - eps]` ([`LOG_LOSS_EPS`]) and each row renormalised to sum 1, as sklearn. A
    /// single column is the probability of class 1 (binary). The labels are column indices.
    LogLoss,
    /// `mean_squared_error(targets, y_pred)`: the weighted mean over rows of the mean over
    /// columns of the squared error (sklearn's `multioutput="uniform_average"`).
    MeanSquaredError,
}

impl Score {
    /// Every metric.
    pub const ALL: [Score; 3] = [Score::Accuracy, Score::LogLoss, Score::MeanSquaredError];

    /// The name used in parameters (`accuracy`, `log-loss`, `mean-squared-error`).
    pub const fn name(self) -> &'static str {
        match self {
            Score::Accuracy => "accuracy",
            Score::LogLoss => "log-loss",
            Score::MeanSquaredError => "mean-squared-error",
        }
    }

    /// The metric of a name (also accepts sklearn's `accuracy_score`, `log_loss`,
    /// `mean_squared_error` and `mse`).
    ///
    /// # Errors
    /// [`InfluenceError::Parameter`] listing the known names.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "accuracy" | "accuracy_score" => Ok(Score::Accuracy),
            "log-loss" | "log_loss" | "logloss" => Ok(Score::LogLoss),
            "mean-squared-error" | "mean_squared_error" | "mse" => Ok(Score::MeanSquaredError),
            _ => Err(InfluenceError::parameter(
                "metric",
                format!("unknown metric '{name}' (known: accuracy, log-loss, mean-squared-error)"),
            )),
        }
    }

    /// Whether larger values are better (accuracy) or worse (the losses).
    pub const fn higher_is_better(self) -> bool {
        matches!(self, Score::Accuracy)
    }

    /// The per-row values whose weighted mean is the metric. Validates the truth against the
    /// predictions.
    ///
    /// # Errors
    /// A truth of the wrong kind for the metric (labels for accuracy and log loss, a matrix of
    /// targets for the mean squared error), a row-count or shape mismatch, a label outside the
    /// classes, a non-finite target.
    pub fn per_row(self, y_pred: ArrayView2<'_, f64>, truth: &Truth<'_>) -> Result<Array1<f64>> {
        let (n, k) = y_pred.dim();
        if k == 0 {
            return Err(InfluenceError::Empty { what: "the predictions (no columns)".into() });
        }
        match (self, truth) {
            (Score::Accuracy | Score::LogLoss, Truth::Labels(labels)) => {
                if labels.len() != n {
                    return Err(InfluenceError::RowMismatch {
                        what: "the labels".into(),
                        features: n,
                        got: labels.len(),
                    });
                }
                let classes = k.max(2);
                if let Some((row, &label)) = labels.iter().enumerate().find(|(_, l)| **l >= classes)
                {
                    return Err(InfluenceError::Label { label, row, classes });
                }
                Ok(Array1::from_iter(labels.iter().zip(y_pred.rows()).map(|(&label, p)| {
                    if self == Score::Accuracy {
                        let predicted = if k == 1 {
                            usize::from(p[0] > 0.5)
                        } else {
                            argmax(p.iter().copied())
                        };
                        f64::from(u8::from(predicted == label))
                    } else if k == 1 {
                        let q = p[0].clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
                        let pr = [1.0 - q, q];
                        -(pr[label] / (pr[0] + pr[1])).ln()
                    } else {
                        let clip = |x: f64| x.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
                        let sum: f64 = p.iter().map(|&x| clip(x)).sum();
                        -(clip(p[label]) / sum).ln()
                    }
                })))
            }
            (Score::MeanSquaredError, Truth::Values(targets)) => {
                if targets.nrows() != n {
                    return Err(InfluenceError::RowMismatch {
                        what: "the targets".into(),
                        features: n,
                        got: targets.nrows(),
                    });
                }
                if targets.ncols() != k {
                    return Err(InfluenceError::Shape {
                        what: "the targets".into(),
                        expected: format!("{k} columns (as the predictions)"),
                        got: format!("{} columns", targets.ncols()),
                    });
                }
                crate::fit::check_finite(*targets, "the targets")?;
                Ok(Array1::from_iter(y_pred.rows().into_iter().zip(targets.rows()).map(
                    |(p, t)| {
                        p.iter().zip(t.iter()).map(|(a, b)| (a - b) * (a - b)).sum::<f64>()
                            / k as f64
                    },
                )))
            }
            (Score::MeanSquaredError, Truth::Labels(_)) => Err(InfluenceError::parameter(
                "metric",
                "mean-squared-error compares predictions with a matrix of targets, not labels",
            )),
            (_, Truth::Values(_)) => Err(InfluenceError::parameter(
                "metric",
                format!("{} compares predictions with integer labels", self.name()),
            )),
        }
    }

    /// The plain (unweighted) metric, as sklearn without `sample_weight`.
    ///
    /// # Errors
    /// As [`Score::per_row`].
    pub fn plain(self, y_pred: ArrayView2<'_, f64>, truth: &Truth<'_>) -> Result<f64> {
        let v = self.per_row(y_pred, truth)?;
        if v.is_empty() {
            return Err(InfluenceError::Empty { what: "the predictions".into() });
        }
        Ok(v.sum() / v.len() as f64)
    }
}

/// numpy's `argmax`: the index of the first largest value.
fn argmax(values: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// The ground truth a performance metric compares the predictions with.
#[derive(Debug, Clone, Copy)]
pub enum Truth<'a> {
    /// One class label per row (accuracy, log loss): column indices of the predictions.
    Labels(&'a [usize]),
    /// One target per row and prediction column (mean squared error).
    Values(ArrayView2<'a, f64>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn per_row_values() {
        let p = array![[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]];
        let labels = [0, 1, 1];
        let acc = Score::Accuracy.per_row(p.view(), &Truth::Labels(&labels)).unwrap();
        assert_eq!(acc.to_vec(), vec![1.0, 0.0, 0.0]); // ties: first column
        let ll = Score::LogLoss.per_row(p.view(), &Truth::Labels(&labels)).unwrap();
        assert!((ll[0] + 0.7f64.ln()).abs() < 1e-15 && (ll[1] + 0.1f64.ln()).abs() < 1e-15);
        // sklearn: log_loss([0, 1, 1], p, labels=[0, 1, 2]) = 1.1242604...
        let plain = Score::LogLoss.plain(p.view(), &Truth::Labels(&labels)).unwrap();
        assert!((plain - (-(0.7f64.ln() + 0.1f64.ln() + 0.4f64.ln()) / 3.0)).abs() < 1e-15);
        let t = array![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]];
        let mse = Score::MeanSquaredError.plain(p.view(), &Truth::Values(t.view())).unwrap();
        let want = (0.09 + 0.04 + 0.01 + 0.01 + 0.81 + 0.64 + 0.16 + 0.36 + 0.04) / 9.0;
        assert!((mse - want).abs() < 1e-15);
    }

    #[test]
    fn binary_single_column_and_clipping() {
        let p = array![[0.9], [0.0], [1.0]];
        let labels = [1, 1, 0];
        let acc = Score::Accuracy.per_row(p.view(), &Truth::Labels(&labels)).unwrap();
        assert_eq!(acc.to_vec(), vec![1.0, 0.0, 0.0]);
        let ll = Score::LogLoss.per_row(p.view(), &Truth::Labels(&labels)).unwrap();
        assert!((ll[0] + 0.9f64.ln()).abs() < 1e-15);
        assert!((ll[1] + LOG_LOSS_EPS.ln()).abs() < 1e-12 && ll[2].is_finite());
    }

    #[test]
    fn wrong_truths_are_errors() {
        let p = array![[0.5, 0.5], [0.2, 0.8]];
        assert!(matches!(
            Score::Accuracy.per_row(p.view(), &Truth::Labels(&[0, 2])),
            Err(InfluenceError::Label { label: 2, row: 1, classes: 2 })
        ));
        assert!(matches!(
            Score::Accuracy.per_row(p.view(), &Truth::Labels(&[0])),
            Err(InfluenceError::RowMismatch { .. })
        ));
        assert!(Score::MeanSquaredError.per_row(p.view(), &Truth::Labels(&[0, 1])).is_err());
        assert!(Score::LogLoss.per_row(p.view(), &Truth::Values(p.view())).is_err());
        let t = array![[f64::NAN, 0.0], [0.0, 0.0]];
        assert!(matches!(
            Score::MeanSquaredError.per_row(p.view(), &Truth::Values(t.view())),
            Err(InfluenceError::NonFinite { row: 0, column: 0, .. })
        ));
        assert!(Score::from_name("f1").is_err());
        let none = ndarray::Array2::<f64>::zeros((2, 0));
        assert!(Score::LogLoss.per_row(none.view(), &Truth::Labels(&[0, 0])).is_err());
        for s in Score::ALL {
            assert_eq!(Score::from_name(s.name()).unwrap(), s);
        }
    }
}
