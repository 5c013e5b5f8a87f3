//! The per-feature range of a dataset (alibi's `infer_feature_range`).

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};

/// The `[min, max]` of every flattened feature, as alibi's `infer_feature_range(X)`: no
/// clipping, no margin; a constant feature has a zero range (so the grid never moves it).
///
/// Built in one streaming pass ([`Self::update`]) and mergeable ([`Self::merge`]): the range
/// of a dataset split into shards is the merge of the shards' ranges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRange {
    /// The smallest value of each feature.
    pub min: Vec<f32>,
    /// The largest value of each feature.
    pub max: Vec<f32>,
}

impl FeatureRange {
    /// A range from explicit bounds.
    ///
    /// # Errors
    /// Bounds of different lengths, no features, a non-finite bound or `min > max`.
    pub fn new(min: Vec<f32>, max: Vec<f32>) -> Result<Self> {
        if min.len() != max.len() {
            return Err(invalid!("feature range: {} minima but {} maxima", min.len(), max.len()));
        }
        if min.is_empty() {
            return Err(invalid!("feature range: no features"));
        }
        for (f, (&lo, &hi)) in min.iter().zip(&max).enumerate() {
            if !lo.is_finite() || !hi.is_finite() || lo > hi {
                return Err(invalid!("feature range: feature {f} has bounds [{lo}, {hi}]"));
            }
        }
        Ok(Self { min, max })
    }

    /// The range of the rows of `x` (samples x features), as alibi's `infer_feature_range`.
    ///
    /// # Errors
    /// No rows or no columns, or a non-finite value (named by row and column).
    pub fn infer(x: ArrayView2<'_, f32>) -> Result<Self> {
        if x.nrows() == 0 {
            return Err(invalid!("feature range: the data has no rows"));
        }
        if x.ncols() == 0 {
            return Err(invalid!("feature range: the data has no features"));
        }
        let mut range =
            Self { min: vec![f32::INFINITY; x.ncols()], max: vec![f32::NEG_INFINITY; x.ncols()] };
        range.update(x)?;
        Ok(range)
    }

    /// Widens the range with the rows of `x`.
    ///
    /// # Errors
    /// A column count other than the range's, or a non-finite value.
    pub fn update(&mut self, x: ArrayView2<'_, f32>) -> Result<()> {
        if x.ncols() != self.len() {
            return Err(invalid!(
                "feature range: rows of {} features, the range has {}",
                x.ncols(),
                self.len()
            ));
        }
        for (r, row) in x.rows().into_iter().enumerate() {
            for (f, &v) in row.iter().enumerate() {
                if !v.is_finite() {
                    return Err(invalid!("feature range: value {v} at row {r}, feature {f}"));
                }
                self.min[f] = self.min[f].min(v);
                self.max[f] = self.max[f].max(v);
            }
        }
        Ok(())
    }

    /// Merges the range of another shard of the same data.
    ///
    /// # Errors
    /// Ranges of different lengths.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        if other.len() != self.len() {
            return Err(invalid!(
                "feature range: cannot merge {} features with {}",
                other.len(),
                self.len()
            ));
        }
        for f in 0..self.len() {
            self.min[f] = self.min[f].min(other.min[f]);
            self.max[f] = self.max[f].max(other.max[f]);
        }
        Ok(())
    }

    /// The number of features.
    pub fn len(&self) -> usize {
        self.min.len()
    }

    /// Whether the range has no features.
    pub fn is_empty(&self) -> bool {
        self.min.is_empty()
    }

    /// The grid step of every feature, `|max - min| / res`, computed in `f32` as alibi does
    /// (a float32 range divided by a Python float stays float32).
    pub fn deltas(&self, res: usize) -> Vec<f32> {
        let res = res as f32;
        self.min.iter().zip(&self.max).map(|(&lo, &hi)| (hi - lo).abs() / res).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn infers_merges_and_steps() {
        let x = array![[0.0f32, 1.0, 5.0], [2.0, 1.0, -5.0]];
        let r = FeatureRange::infer(x.view()).unwrap();
        assert_eq!(r.min, vec![0.0, 1.0, -5.0]);
        assert_eq!(r.max, vec![2.0, 1.0, 5.0]);
        assert_eq!(r.deltas(100), vec![0.02, 0.0, 0.1]);
        let mut a = FeatureRange::infer(x.slice(ndarray::s![..1, ..])).unwrap();
        a.merge(&FeatureRange::infer(x.slice(ndarray::s![1.., ..])).unwrap()).unwrap();
        assert_eq!(a, r);
    }

    #[test]
    fn rejects_bad_data() {
        assert!(FeatureRange::infer(ndarray::Array2::<f32>::zeros((0, 3)).view()).is_err());
        let e = FeatureRange::infer(array![[0.0f32, f32::NAN]].view()).unwrap_err().to_string();
        assert!(e.contains("row 0, feature 1"), "{e}");
        assert!(FeatureRange::new(vec![1.0], vec![0.0]).is_err());
        assert!(FeatureRange::new(vec![1.0], vec![]).is_err());
    }
}
