//! Per-feature statistics: mean, standard deviation (ddof = 1), range and linear quantiles, and
//! the target means of the tau grid.

use serde::{Deserialize, Serialize};

/// The statistics of one feature (one column of the feature matrix).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    /// The plain mean (for a constant feature: exactly its value).
    pub mean: f64,
    /// The standard deviation with ddof = 1 (0 for a constant feature, including a single row).
    pub std: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// The `alpha` quantile (linear interpolation, numpy's default method).
    pub q_low: f64,
    /// The `1 - alpha` quantile.
    pub q_high: f64,
}

impl FeatureStats {
    /// The statistics of `values` (finite, at least one), with quantile level `alpha`.
    /// `sorted` receives the values sorted ascending (scratch space reused across features).
    pub(crate) fn compute(values: &[f64], alpha: f64, sorted: &mut Vec<f64>) -> Self {
        sorted.clear();
        sorted.extend_from_slice(values);
        sorted.sort_unstable_by(f64::total_cmp);
        let n = sorted.len();
        let (min, max) = (sorted[0], sorted[n - 1]);
        if min == max {
            return Self { mean: min, std: 0.0, min, max, q_low: min, q_high: max };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let ss: f64 = values.iter().map(|x| (x - mean) * (x - mean)).sum();
        let std = (ss / (n - 1) as f64).sqrt();
        Self {
            mean,
            std,
            min,
            max,
            q_low: quantile_linear(sorted, alpha),
            q_high: quantile_linear(sorted, 1.0 - alpha),
        }
    }

    /// Whether every value is the same (then z = 0 and every target is the mean).
    pub fn is_constant(&self) -> bool {
        self.min == self.max || self.std.is_nan() || self.std <= 0.0
    }

    /// The standardised value `(x - mean) / std` (0 for a constant feature).
    pub fn standardise(&self, x: f64) -> f64 {
        if self.is_constant() { 0.0 } else { (x - self.mean) / self.std }
    }

    /// ethik's target mean for `tau` (`Query.target_from_tau`):
    /// `mean + tau * max(mean - q_low, 0)` for `tau < 0`, `mean + tau * max(q_high - mean, 0)`
    /// for `tau >= 0`. tau = 0 gives exactly the mean; a side where the quantile does not lie
    /// beyond the mean is flat (every target on it is the mean).
    pub fn target(&self, tau: f64) -> f64 {
        if tau < 0.0 {
            self.mean + tau * (self.mean - self.q_low).max(0.0)
        } else {
            self.mean + tau * (self.q_high - self.mean).max(0.0)
        }
    }

    /// How far (in raw units) a target may be from an extreme value and still count as that
    /// extreme: a few ulps of the values' magnitude, the rounding error of [`Self::target`].
    pub fn edge_tolerance(&self) -> f64 {
        64.0 * f64::EPSILON * self.min.abs().max(self.max.abs())
    }
}

/// The `q` quantile of ascending `sorted` values with linear interpolation, exactly as numpy's
/// default `method="linear"` (virtual index `(n - 1) q`, numpy's `_lerp`). `NaN` when empty.
pub fn quantile_linear(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let h = (n - 1) as f64 * q;
    let lo = h.floor().clamp(0.0, (n - 1) as f64);
    let gamma = h - lo;
    let lo = lo as usize;
    let hi = (lo + 1).min(n - 1);
    let (a, b) = (sorted[lo], sorted[hi]);
    let diff = b - a;
    if gamma >= 0.5 { b - diff * (1.0 - gamma) } else { a + diff * gamma }
}

/// The distinct standardised values of a feature with their multiplicities, ascending: all the
/// solver needs (pixels of 8-bit images have at most 256).
#[derive(Debug, Clone, Default)]
pub(crate) struct Distinct {
    /// Distinct standardised values, ascending.
    pub z: Vec<f64>,
    /// How many rows take each value.
    pub count: Vec<f64>,
}

impl Distinct {
    /// From the sorted raw values of a feature.
    pub(crate) fn from_sorted(sorted: &[f64], stats: &FeatureStats) -> Self {
        let mut d = Self::default();
        let mut i = 0;
        while i < sorted.len() {
            let v = sorted[i];
            let mut j = i + 1;
            while j < sorted.len() && sorted[j] == v {
                j += 1;
            }
            d.z.push(stats.standardise(v));
            d.count.push((j - i) as f64);
            i = j;
        }
        d
    }

    /// The reference exponent `xi * z_ext` (`z_ext` the largest value for `xi > 0`, the smallest
    /// for `xi < 0`), so that every exponent `xi * z - c` is at most 0.
    pub(crate) fn shift(&self, xi: f64) -> f64 {
        if xi > 0.0 {
            xi * self.z[self.z.len() - 1]
        } else if xi < 0.0 {
            xi * self.z[0]
        } else {
            0.0
        }
    }

    /// `(m(xi) - t, Var_w(z))` for the weights `softmax(xi * z)`. `e` is scratch space.
    pub(crate) fn residual_and_variance(&self, xi: f64, t: f64, e: &mut Vec<f64>) -> (f64, f64) {
        let c = self.shift(xi);
        e.clear();
        let (mut s0, mut s1) = (0.0, 0.0);
        for (&z, &k) in self.z.iter().zip(&self.count) {
            let w = k * (xi * z - c).exp();
            e.push(w);
            s0 += w;
            s1 += w * (z - t);
        }
        let r = s1 / s0;
        let m = t + r;
        let s2: f64 = self.z.iter().zip(e.iter()).map(|(&z, &w)| w * (z - m) * (z - m)).sum();
        (r, s2 / s0)
    }

    /// `m(xi) - t` alone.
    pub(crate) fn residual(&self, xi: f64, t: f64) -> f64 {
        let c = self.shift(xi);
        let (mut s0, mut s1) = (0.0, 0.0);
        for (&z, &k) in self.z.iter().zip(&self.count) {
            let w = k * (xi * z - c).exp();
            s0 += w;
            s1 += w * (z - t);
        }
        s1 / s0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy() {
        // np.quantile([1, 2, 4, 8, 16], [0, .05, .3, .5, .95, 1]) = 1, 1.2, 2.4, 4, 14.4, 16.
        let s = [1.0, 2.0, 4.0, 8.0, 16.0];
        let want = [(0.0, 1.0), (0.05, 1.2), (0.3, 2.4), (0.5, 4.0), (0.95, 14.4), (1.0, 16.0)];
        for (q, w) in want {
            assert!((quantile_linear(&s, q) - w).abs() < 1e-12, "q={q}");
        }
        assert_eq!(quantile_linear(&[3.0], 0.05), 3.0);
        assert!(quantile_linear(&[], 0.5).is_nan());
    }

    #[test]
    fn stats_of_a_column() {
        let mut scratch = Vec::new();
        let s = FeatureStats::compute(&[4.0, 1.0, 3.0, 2.0], 0.05, &mut scratch);
        assert_eq!(s.mean, 2.5);
        assert!((s.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!((s.min, s.max), (1.0, 4.0));
        assert!((s.q_low - 1.15).abs() < 1e-12 && (s.q_high - 3.85).abs() < 1e-12);
        assert_eq!(s.target(0.0), 2.5);
        assert!((s.target(-1.0) - 1.15).abs() < 1e-12);
        assert!((s.target(0.5) - (2.5 + 0.5 * 1.35)).abs() < 1e-12);
        let c = FeatureStats::compute(&[0.1; 7], 0.05, &mut scratch);
        assert!(c.is_constant());
        assert_eq!((c.mean, c.std, c.target(1.0)), (0.1, 0.0, 0.1));
        assert_eq!(c.standardise(0.1), 0.0);
    }

    #[test]
    fn distinct_values_are_grouped() {
        let mut sorted = Vec::new();
        let s = FeatureStats::compute(&[2.0, 0.0, 2.0, 0.0, 0.0, 5.0], 0.05, &mut sorted);
        let d = Distinct::from_sorted(&sorted, &s);
        assert_eq!(d.count, vec![3.0, 2.0, 1.0]);
        assert_eq!(d.z[0], s.standardise(0.0));
        let mut e = Vec::new();
        let (r, v) = d.residual_and_variance(0.0, 0.0, &mut e);
        assert!(r.abs() < 1e-15);
        assert!((v - 5.0 / 6.0).abs() < 1e-12); // population variance of z (ddof=1 scaling)
    }
}
