//! Finding the tilt `xi` of a (feature, target) pair.
//!
//! The weights closest to uniform (in Kullback-Leibler divergence) under which the mean of a
//! feature is `t` are `w_i = softmax(xi * z_i)`, `z` the standardised feature, with `xi` the root
//! of `m(xi) = sum_i w_i z_i = t_z`. `m` is increasing (`m' = Var_w(z)`), from `min z` at
//! `xi -> -inf` to `max z` at `xi -> +inf`, so:
//! - `t` strictly inside the range: a unique finite root, found by a safeguarded Newton
//!   iteration on the convex dual `log sum exp(xi z) - xi t` (Newton steps kept inside a bracket
//!   of the root, bisection or doubling otherwise; the exponentials shifted by their maximum),
//!   to `|m - t_z| <= 1e-13` ([`Status::Converged`]);
//! - `t` equal to the mean: exactly `xi = 0`, uniform weights ([`Status::Mean`]; tau = 0 and flat
//!   sides of the grid);
//! - `t` on an extreme value (within [`FeatureStats::edge_tolerance`]): no finite root; the
//!   projection is the limit `xi -> -inf` (`+inf`), the weights uniform on the rows where the
//!   feature takes its minimum (maximum) ([`Status::EdgeLimit`]);
//! - `t` outside the range: no weights at all ([`Status::OutsideRange`], values `NaN`, reported
//!   as an [`Issue`](crate::Issue));
//! - a constant feature: z = 0, its only reachable target is its value, uniform weights
//!   ([`Status::Constant`]).
//!
//! With [`Solver::EthikCompatible`] the in-range targets are solved the way ethik 0.0.4 does
//! instead (module `ethik`): its early exit `np.isclose(t, mean, atol=tol)` in raw units, then a
//! port of scipy's 1-D BFGS (`_minimize_bfgs` with `line_search_wolfe1` = MINPACK-2 `dcsrch`,
//! falling back to `line_search_wolfe2`) on ethik's inconsistent (loss, gradient) pair
//! `((m - t)^2, m - t)`, stopped at the first evaluation with `(m - t)^2 < tol`. When that never
//! happens (line-search failure, 200 iterations), ethik keeps `xi = 0`: so does this mode, with
//! [`Status::NotConverged`]. Edge targets are solved like any other (ethik stops inside the
//! `sqrt(tol)` band). Out-of-range targets are still reported, not solved.

use serde::{Deserialize, Serialize};

use crate::options::EXACT_TOLERANCE;
use crate::stats::{Distinct, FeatureStats};
use crate::{Solver, ethik};

/// The solution of one (feature, target) pair: where the weights `softmax(xi * z)` come from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "xi", rename_all = "kebab-case")]
pub enum Tilt {
    /// A finite tilt `xi` (0: uniform weights).
    Finite(f64),
    /// The limit `xi -> -inf`: uniform on the rows at the feature's minimum.
    ToMinimum,
    /// The limit `xi -> +inf`: uniform on the rows at the feature's maximum.
    ToMaximum,
    /// No weights: the target is outside the feature's range.
    Undefined,
}

impl Tilt {
    /// `xi` as a number: `-inf` / `+inf` for the limits, `NaN` when undefined.
    pub fn xi(self) -> f64 {
        match self {
            Tilt::Finite(xi) => xi,
            Tilt::ToMinimum => f64::NEG_INFINITY,
            Tilt::ToMaximum => f64::INFINITY,
            Tilt::Undefined => f64::NAN,
        }
    }
}

/// How a (feature, target) pair was solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The target is the feature's mean: `xi = 0` exactly (ethik-compatible mode: within its
    /// `np.isclose` tolerance).
    Mean,
    /// An interior target, solved (exact mode: to `|m - t| <= 1e-13` or to the resolution of
    /// doubles; ethik mode: ethik's stopping rule).
    Converged,
    /// A target on the edge of the range: the exact limit weights (exact mode only).
    EdgeLimit,
    /// A constant feature whose value is the target: uniform weights.
    Constant,
    /// The solver gave up. Exact mode: the last iterate is kept (never observed; the residual
    /// says how far it is). ethik mode: `xi = 0`, as ethik.
    NotConverged,
    /// The target is outside the feature's range: no weights, the values are `NaN`.
    OutsideRange,
}

impl Status {
    /// Whether the pair has weights (every status but [`Status::OutsideRange`]).
    pub fn has_weights(self) -> bool {
        self != Status::OutsideRange
    }
}

/// The solution of one (feature, target) pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// Where the weights come from.
    pub tilt: Tilt,
    /// How it was found.
    pub status: Status,
    /// `m(xi) - t` in standardised units at the solution (0 for the mean, the limits and
    /// constants; `NaN` outside the range).
    #[serde(with = "crate::serde_float::scalar")]
    pub residual: f64,
    /// Evaluations of `m` (exact: Newton iterations; ethik: objective evaluations).
    pub iterations: u32,
}

impl Solution {
    const fn closed_form(tilt: Tilt, status: Status) -> Self {
        Self { tilt, status, residual: 0.0, iterations: 0 }
    }
}

/// Solves the target `target` (raw units) of one feature. `distinct` are the feature's distinct
/// standardised values.
pub(crate) fn solve(
    stats: &FeatureStats,
    distinct: &Distinct,
    target: f64,
    solver: Solver,
) -> Solution {
    let tol = stats.edge_tolerance();
    if !target.is_finite() || target < stats.min - tol || target > stats.max + tol {
        return Solution {
            tilt: Tilt::Undefined,
            status: Status::OutsideRange,
            residual: f64::NAN,
            iterations: 0,
        };
    }
    if stats.is_constant() {
        return Solution::closed_form(Tilt::Finite(0.0), Status::Constant);
    }
    match solver {
        Solver::Exact => {
            if target == stats.mean {
                return Solution::closed_form(Tilt::Finite(0.0), Status::Mean);
            }
            if target <= stats.min + tol {
                return Solution::closed_form(Tilt::ToMinimum, Status::EdgeLimit);
            }
            if target >= stats.max - tol {
                return Solution::closed_form(Tilt::ToMaximum, Status::EdgeLimit);
            }
            let t = (target - stats.mean) / stats.std;
            // Rounding in the standardisation cannot put an interior target on an extreme z.
            let (zmin, zmax) = (distinct.z[0], distinct.z[distinct.z.len() - 1]);
            if t <= zmin {
                return Solution::closed_form(Tilt::ToMinimum, Status::EdgeLimit);
            }
            if t >= zmax {
                return Solution::closed_form(Tilt::ToMaximum, Status::EdgeLimit);
            }
            exact(distinct, t)
        }
        Solver::EthikCompatible { tol: ethik_tol } => {
            // np.isclose(t, mean, atol=tol): |t - mean| <= atol + rtol * |mean|, rtol = 1e-5.
            if (target - stats.mean).abs() <= ethik_tol + 1e-5 * stats.mean.abs() {
                return Solution::closed_form(Tilt::Finite(0.0), Status::Mean);
            }
            let t = (target - stats.mean) / stats.std;
            let out = ethik::bfgs(distinct, t, ethik_tol);
            let status = if out.converged { Status::Converged } else { Status::NotConverged };
            let residual = distinct.residual(out.xi, t);
            Solution { tilt: Tilt::Finite(out.xi), status, residual, iterations: out.evaluations }
        }
    }
}

/// Iteration cap of the exact solver. Near an edge Newton's progress is about `1 / gap` in `xi`
/// per step (`gap` between the two extreme distinct values), so reaching a target `d` away from
/// the edge takes about `|ln d|` steps, never more than a few hundred.
const MAX_ITERATIONS: u32 = 2000;

/// Safeguarded Newton for `m(xi) = t`, `min z < t < max z`.
fn exact(d: &Distinct, t: f64) -> Solution {
    let (mut lo, mut hi) = (f64::NEG_INFINITY, f64::INFINITY);
    let mut xi = 0.0;
    let mut e = Vec::with_capacity(d.z.len());
    let mut last = f64::NAN;
    for it in 1..=MAX_ITERATIONS {
        let (r, var) = d.residual_and_variance(xi, t, &mut e);
        last = r;
        if r.abs() <= EXACT_TOLERANCE {
            return Solution {
                tilt: Tilt::Finite(xi),
                status: Status::Converged,
                residual: r,
                iterations: it,
            };
        }
        if r < 0.0 {
            lo = xi;
        } else {
            hi = xi;
        }
        let newton = xi - r / var;
        let next = if newton > lo && newton < hi {
            newton
        } else if lo.is_finite() && hi.is_finite() {
            lo + (hi - lo) / 2.0
        } else if lo.is_finite() {
            lo + 2.0 * lo.abs().max(1.0)
        } else {
            hi - 2.0 * hi.abs().max(1.0)
        };
        if next == xi || next <= lo || next >= hi {
            // The bracket holds no double between its ends: xi is the root to the resolution of
            // doubles; the residual is what rounding leaves.
            return Solution {
                tilt: Tilt::Finite(xi),
                status: Status::Converged,
                residual: r,
                iterations: it,
            };
        }
        xi = next;
    }
    Solution {
        tilt: Tilt::Finite(xi),
        status: Status::NotConverged,
        residual: last,
        iterations: MAX_ITERATIONS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(values: &[f64]) -> (FeatureStats, Distinct) {
        let mut sorted = Vec::new();
        let s = FeatureStats::compute(values, 0.05, &mut sorted);
        let d = Distinct::from_sorted(&sorted, &s);
        (s, d)
    }

    #[test]
    fn interior_targets_are_hit() {
        let (s, d) = feature(&[0.0, 1.0, 1.0, 3.0, 7.0, 2.0]);
        for target in [0.01, 0.5, 1.9, 2.3, 4.0, 6.99] {
            let sol = solve(&s, &d, target, Solver::Exact);
            assert_eq!(sol.status, Status::Converged, "{target}");
            let t = (target - s.mean) / s.std;
            assert!(d.residual(sol.tilt.xi(), t).abs() <= 1e-13, "{target}: {sol:?}");
        }
    }

    #[test]
    fn special_targets() {
        let (s, d) = feature(&[0.0, 1.0, 1.0, 3.0]);
        assert_eq!(solve(&s, &d, s.mean, Solver::Exact).tilt, Tilt::Finite(0.0));
        assert_eq!(solve(&s, &d, 0.0, Solver::Exact).tilt, Tilt::ToMinimum);
        assert_eq!(solve(&s, &d, 3.0, Solver::Exact).tilt, Tilt::ToMaximum);
        let out = solve(&s, &d, 3.5, Solver::Exact);
        assert_eq!((out.tilt, out.status), (Tilt::Undefined, Status::OutsideRange));
        assert_eq!(solve(&s, &d, f64::NAN, Solver::Exact).status, Status::OutsideRange);
        let (s, d) = feature(&[2.0, 2.0]);
        assert_eq!(solve(&s, &d, 2.0, Solver::Exact).status, Status::Constant);
        assert_eq!(solve(&s, &d, 2.5, Solver::Exact).status, Status::OutsideRange);
    }

    #[test]
    fn targets_very_close_to_an_edge_converge() {
        let (s, d) = feature(&[0.0, 0.0, 0.0, 1.0, 2.0, 250.0]);
        for delta in [1e-3, 1e-7, 1e-10] {
            let sol = solve(&s, &d, delta, Solver::Exact);
            assert_eq!(sol.status, Status::Converged);
            assert!(sol.tilt.xi() < 0.0 && sol.residual.abs() <= 1e-13, "{delta}: {sol:?}");
        }
    }
}
