//! Mergeable running statistics, the state of every streaming measure.
//!
//! [`Moments`] holds, per element of a fixed-length vector (one entry per activation, say), the
//! count, mean and sum of squared deviations (M2) of the values seen. Batches are folded in with
//! Chan et al.'s pairwise update (one pass over each batch, shifted by its first observation, so
//! a batch of equal values adds exactly zero), and two states of disjoint data [`merge`](Moments::merge) into the
//! state of their union: a run split into shards and merged gives the same statistics as the
//! whole run, up to floating-point reassociation. M2 is clamped at zero, so a variance is never
//! negative (tmeasures' streaming Welford update can return NaN for constant rows because of
//! that).

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

/// Count, mean and M2 per element (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    count: u64,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Moments {
    /// An empty state for vectors of `len` elements.
    pub fn new(len: usize) -> Self {
        Self { count: 0, mean: vec![0.0; len], m2: vec![0.0; len] }
    }

    /// The number of elements per observation.
    pub fn len(&self) -> usize {
        self.mean.len()
    }

    /// Whether observations have no elements.
    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// The number of observations seen.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean of each element (0 before any observation).
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The sum of squared deviations from the mean of each element (never negative).
    pub fn m2(&self) -> &[f64] {
        &self.m2
    }

    /// Adds a batch of observations, one per row (`[k, len]`), of `f32` or `f64` values (the
    /// statistics are always accumulated in `f64`).
    ///
    /// # Errors
    /// [`CoreError::Shape`] when the rows are not `len` long; [`CoreError::NonFinite`] (with
    /// the row-major index of the first such value in the batch) when a value is NaN or
    /// infinite, and the state is left as it was. The check costs one test per element of
    /// the batch's M2, not per value: a non-finite value makes its element's M2 non-finite.
    pub fn add_batch<T: Copy + Into<f64>>(&mut self, batch: ArrayView2<'_, T>) -> Result<()> {
        let (k, len) = batch.dim();
        if len != self.len() {
            return Err(CoreError::Shape {
                what: "observations".into(),
                expected: format!("{} values each", self.len()),
                got: format!("{len}"),
            });
        }
        if k == 0 {
            return Ok(());
        }
        // One pass, shifted by the first observation: with d = v - first, the batch mean is
        // first + sum(d) / k and M2 = sum(d^2) - sum(d)^2 / k. A batch of equal values has
        // exactly that mean and exactly zero M2 (sum / k of equal values is not always the
        // value itself). As the shift is one of the observations, M2 >= (first - mean)^2, so
        // sum(d^2) = M2 + k (first - mean)^2 <= (k + 1) M2: the subtraction loses at most
        // log2(k + 1) bits of the f64 sums, far below the f32 precision of activations.
        let first: Vec<f64> = batch.row(0).iter().map(|&v| v.into()).collect();
        let mut sum = vec![0.0f64; len];
        let mut squares = vec![0.0f64; len];
        for row in batch.rows() {
            for (((s, q), &f), &v) in sum.iter_mut().zip(squares.iter_mut()).zip(&first).zip(row) {
                let d = v.into() - f;
                *s += d;
                *q += d * d;
            }
        }
        let kf = k as f64;
        let batch_mean: Vec<f64> = sum.iter().zip(&first).map(|(&s, &f)| f + s / kf).collect();
        // Not yet clamped at zero: a NaN or infinite value leaves a NaN or infinite M2 here.
        let mut batch_m2: Vec<f64> =
            sum.iter().zip(&squares).map(|(&s, &q)| q - s * s / kf).collect();
        // Sums of finite f32 or f64 values stay finite in f64 unless they reach 1e308; a NaN
        // or infinite value makes its element's M2 NaN or infinite.
        if let Some(col) = batch_m2.iter().position(|s| !s.is_finite()) {
            let (row, value) = batch
                .column(col)
                .iter()
                .enumerate()
                .find_map(|(r, &v)| (!v.into().is_finite()).then(|| (r, v.into())))
                .unwrap_or((0, batch_m2[col]));
            return Err(CoreError::NonFinite {
                what: "observations".into(),
                value: value as f32,
                index: row * len + col,
            });
        }
        batch_m2.iter_mut().for_each(|m| *m = m.max(0.0));
        self.combine(k as u64, &batch_mean, &batch_m2);
        Ok(())
    }

    /// Adds the observations summarised by `other` (of other data) to this state.
    ///
    /// # Errors
    /// [`CoreError::Shape`] when the two states are of different lengths.
    pub fn merge(&mut self, other: &Moments) -> Result<()> {
        if other.len() != self.len() {
            return Err(CoreError::Shape {
                what: "moments to merge".into(),
                expected: format!("{} elements", self.len()),
                got: format!("{}", other.len()),
            });
        }
        self.combine(other.count, &other.mean, &other.m2);
        Ok(())
    }

    /// Adds `count` observations of other data summarised by their per-element `mean` and
    /// sum of squared deviations `m2` (what [`Self::add_batch`] computes of a batch), as
    /// [`Self::merge`] adds a whole state.
    ///
    /// # Errors
    /// [`CoreError::Shape`] when `mean` or `m2` is not `len` long.
    pub fn add_summary(&mut self, count: u64, mean: &[f64], m2: &[f64]) -> Result<()> {
        if mean.len() != self.len() || m2.len() != self.len() {
            return Err(CoreError::Shape {
                what: "a summary of observations".into(),
                expected: format!("{} elements", self.len()),
                got: format!("{} means and {} M2", mean.len(), m2.len()),
            });
        }
        self.combine(count, mean, m2);
        Ok(())
    }

    /// Chan et al.: the union of (n_a, mean_a, M2_a) and (n_b, mean_b, M2_b).
    fn combine(&mut self, n_b: u64, mean_b: &[f64], m2_b: &[f64]) {
        if n_b == 0 {
            return;
        }
        if self.count == 0 {
            self.count = n_b;
            self.mean.copy_from_slice(mean_b);
            self.m2.copy_from_slice(m2_b);
            return;
        }
        let (n_a, n_b) = (self.count as f64, n_b as f64);
        let n = n_a + n_b;
        for ((ma, sa), (&mb, &sb)) in
            self.mean.iter_mut().zip(self.m2.iter_mut()).zip(mean_b.iter().zip(m2_b))
        {
            let delta = mb - *ma;
            *ma += delta * n_b / n;
            *sa = (*sa + sb + delta * delta * n_a * n_b / n).max(0.0);
        }
        self.count += n_b as u64;
    }

    /// The variance of each element with `ddof` degrees of freedom removed (1: the sample
    /// variance); NaN for every element while `count <= ddof`.
    pub fn variance(&self, ddof: u64) -> Vec<f64> {
        if self.count <= ddof {
            return vec![f64::NAN; self.len()];
        }
        let d = (self.count - ddof) as f64;
        self.m2.iter().map(|&s| s.max(0.0) / d).collect()
    }

    /// The standard deviation of each element (see [`Self::variance`]).
    pub fn std(&self, ddof: u64) -> Vec<f64> {
        self.variance(ddof).into_iter().map(f64::sqrt).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array, s};
    use proptest::prelude::*;

    /// The two-pass textbook formula, independently.
    fn two_pass(data: &Array2<f32>, ddof: usize) -> Vec<f64> {
        let n = data.nrows();
        (0..data.ncols())
            .map(|j| {
                let col: Vec<f64> = data.column(j).iter().map(|&v| v as f64).collect();
                let mean = col.iter().sum::<f64>() / n as f64;
                col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - ddof) as f64
            })
            .collect()
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs())))
    }

    #[test]
    fn by_hand() {
        let mut m = Moments::new(2);
        m.add_batch(ndarray::array![[1.0f32, 5.0], [3.0, 5.0]].view()).unwrap();
        m.add_batch(ndarray::array![[5.0f32, 5.0]].view()).unwrap();
        assert_eq!(m.count(), 3);
        assert_eq!(m.mean(), &[3.0, 5.0]);
        assert_eq!(m.variance(1), vec![4.0, 0.0]);
        assert_eq!(m.std(0)[0], (8.0f64 / 3.0).sqrt());
        assert!(m.variance(3).iter().all(|v| v.is_nan()));
        assert!(m.add_batch(ndarray::array![[1.0f32]].view()).is_err());
        assert!(m.merge(&Moments::new(3)).is_err());
    }

    #[test]
    fn a_non_finite_value_is_an_error_with_its_index_and_the_state_is_kept() {
        let mut m = Moments::new(3);
        m.add_batch(array![[1.0f32, 2.0, 3.0]].view()).unwrap();
        let before = m.clone();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let batch = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, bad, 9.0]];
            match m.add_batch(batch.view()) {
                Err(CoreError::NonFinite { index, value, .. }) => {
                    assert_eq!(index, 2 * 3 + 1);
                    assert!(value.is_nan() == bad.is_nan() && (value.is_nan() || value == bad));
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(m, before);
        }
        // The largest f32 values are finite, and so are their sums and squares in f64.
        let big = array![[f32::MAX, -f32::MAX, 0.0], [-f32::MAX, f32::MAX, 1.0]];
        m.add_batch(big.view()).unwrap();
        assert!(m.m2().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn constant_values_have_exactly_zero_variance() {
        let mut m = Moments::new(3);
        for _ in 0..7 {
            m.add_batch(Array2::from_elem((3, 3), 0.1f32).view()).unwrap();
        }
        assert_eq!(m.variance(1), vec![0.0; 3]);
        assert_eq!(m.std(1), vec![0.0; 3]);
        // 3 * -3.300342695660148 / 3 is not -3.300342695660148 in f64: the shifted mean is.
        let mut m = Moments::new(1);
        m.add_batch(Array2::from_elem((3, 1), -3.300342695660148f64).view()).unwrap();
        assert_eq!(m.variance(1), vec![0.0]);
    }

    proptest! {
        #[test]
        fn batches_and_merges_equal_the_two_pass_formula(
            values in proptest::collection::vec(-100.0f32..100.0, 6..120),
            cut in 1usize..40,
            batch in 1usize..7,
        ) {
            let rows = values.len() / 3;
            let data = Array2::from_shape_vec((rows, 3), values[..rows * 3].to_vec()).unwrap();
            let cut = cut.min(rows - 1);
            let expected = two_pass(&data, 1);
            // In batches of `batch` rows.
            let mut whole = Moments::new(3);
            for start in (0..rows).step_by(batch) {
                whole.add_batch(data.slice(s![start..(start + batch).min(rows), ..])).unwrap();
            }
            prop_assert!(close(&whole.variance(1), &expected));
            // Two shards merged.
            let mut a = Moments::new(3);
            a.add_batch(data.slice(s![..cut, ..])).unwrap();
            let mut b = Moments::new(3);
            b.add_batch(data.slice(s![cut.., ..])).unwrap();
            a.merge(&b).unwrap();
            prop_assert_eq!(a.count(), rows as u64);
            prop_assert!(close(&a.variance(1), &expected));
            prop_assert!(close(a.mean(), whole.mean()));
            prop_assert!(a.variance(1).iter().all(|&v| v >= 0.0));
        }
    }
}
