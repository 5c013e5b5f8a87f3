//! The options of an explanation: quantile level, tau grid, solver and bootstrap.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{InfluenceError, Result};

/// ethik's default quantile level: tau = -1 moves a feature's mean to its 5 % quantile, tau = +1
/// to its 95 % quantile.
pub const DEFAULT_ALPHA: f64 = 0.05;

/// ethik's default number of taus (`CacheExplainer(n_taus=41)`); its image explainer uses 3.
pub const DEFAULT_N_TAUS: usize = 41;

/// ethik's stopping tolerance: its solver stops as soon as `(m - t)^2 < tol` in standardised
/// units.
pub const ETHIK_TOL: f64 = 1e-4;

/// The exact solver stops when `|m - t| <= EXACT_TOLERANCE` in standardised units (the golden
/// values were solved to this tolerance).
pub const EXACT_TOLERANCE: f64 = 1e-13;

/// ethik's bootstrap defaults (`BaseExplainer`): the fraction of rows kept by each mask.
pub const DEFAULT_SAMPLE_FRAC: f64 = 0.8;

/// ethik's bootstrap default: the band is the `[conf_level, 1 - conf_level]` quantile range.
pub const DEFAULT_CONF_LEVEL: f64 = 0.05;

/// How the tilt `xi` of each (feature, target) pair is found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Solver {
    /// The exact entropic projection: the convex dual solved by a safeguarded Newton iteration
    /// with a bracket (bisection fallback) to `|m - t| <= 1e-13` standardised units; a target on
    /// the edge of the feature's range gets the exact limit weights (`xi = +-inf`: uniform on the
    /// rows at that extreme value).
    #[default]
    Exact,
    /// ethik 0.0.4's own numbers: its early exit when `np.isclose(t, mean, atol=tol)` in raw
    /// units (xi = 0), then scipy's BFGS on its (loss, gradient) pair `((m - t)^2, m - t)`,
    /// stopped at the first evaluation where `(m - t)^2 < tol`; when BFGS gives up, xi = 0 and
    /// the pair is marked not converged (ethik's silent fallback, reported here). See
    /// [`crate::solver`] for what is emulated.
    EthikCompatible {
        /// ethik's `tol` ([`ETHIK_TOL`] by default).
        tol: f64,
    },
}

impl Solver {
    /// ethik's solver with its default tolerance.
    pub const fn ethik() -> Self {
        Self::EthikCompatible { tol: ETHIK_TOL }
    }
}

/// Bootstrap confidence bands, as ethik computes them (`n_samples`, `sample_frac`, `conf_level`)
/// but seeded.
///
/// Each of the `n_samples` masks keeps every row independently with probability `sample_frac`
/// (a Bernoulli subsample, as `np.random.binomial(1, sample_frac, n)`; a mask that keeps no row
/// is drawn again). The tilts are **not** refitted per mask: the weights `softmax(xi * z)` are
/// recomputed on the rows of the mask (for an edge limit: uniform on the mask's rows at the
/// mask's extreme value), as ethik does. The band of a value is the linear quantiles
/// `conf_level` and `1 - conf_level` of its `n_samples` values; their mean is reported too (ethik
/// reports that mean as the value itself).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    /// Number of masks (at least 2; ethik's `n_samples = 1` means no bootstrap at all).
    pub n_samples: usize,
    /// Probability that a mask keeps a row, in (0, 1).
    pub sample_frac: f64,
    /// Quantile level of the band's lower end, in (0, 0.5).
    pub conf_level: f64,
    /// Seed of the ChaCha8 generator that draws the masks.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            n_samples: 30,
            sample_frac: DEFAULT_SAMPLE_FRAC,
            conf_level: DEFAULT_CONF_LEVEL,
            seed: 0,
        }
    }
}

impl Bootstrap {
    /// The masks for `n_rows` rows: `n_samples` vectors of `n_rows` flags, each row kept with
    /// probability `sample_frac`, drawn from `ChaCha8Rng::seed_from_u64(seed)` (a mask that keeps
    /// no row is drawn again). Deterministic for a seed.
    ///
    /// # Errors
    /// As [`Bootstrap::validate`].
    pub fn masks(&self, n_rows: usize) -> Result<Vec<Vec<bool>>> {
        self.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        Ok((0..self.n_samples)
            .map(|_| {
                loop {
                    let mask: Vec<bool> =
                        (0..n_rows).map(|_| rng.random_bool(self.sample_frac)).collect();
                    if n_rows == 0 || mask.iter().any(|&m| m) {
                        break mask;
                    }
                }
            })
            .collect())
    }

    /// Checks the ranges (ethik's constructor checks, with `n_samples >= 2`).
    ///
    /// # Errors
    /// [`InfluenceError::Parameter`] naming the parameter.
    pub fn validate(&self) -> Result<()> {
        if self.n_samples < 2 {
            return Err(InfluenceError::parameter(
                "n_samples",
                format!("a bootstrap needs at least 2 samples, got {}", self.n_samples),
            ));
        }
        if !(self.sample_frac > 0.0 && self.sample_frac < 1.0) {
            return Err(InfluenceError::parameter(
                "sample_frac",
                format!("must be in (0, 1), got {}", self.sample_frac),
            ));
        }
        if !(self.conf_level > 0.0 && self.conf_level < 0.5) {
            return Err(InfluenceError::parameter(
                "conf_level",
                format!("must be in (0, 0.5), got {}", self.conf_level),
            ));
        }
        Ok(())
    }
}

/// Everything an [`Explainer`](crate::Explainer) needs besides the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Quantile level: tau = -1 targets the `alpha` quantile, tau = +1 the `1 - alpha` quantile
    /// (linear interpolation). In (0, 0.5).
    pub alpha: f64,
    /// The taus, each in [-1, 1] (see [`taus_from_count`] for ethik's grid).
    pub taus: Vec<f64>,
    /// The solver.
    pub solver: Solver,
    /// Bootstrap bands, or none.
    pub bootstrap: Option<Bootstrap>,
}

impl Default for Options {
    /// `alpha = 0.05`, ethik's 41 taus, the exact solver, no bootstrap.
    fn default() -> Self {
        Self {
            alpha: DEFAULT_ALPHA,
            taus: taus_from_count(DEFAULT_N_TAUS).unwrap_or_default(),
            solver: Solver::Exact,
            bootstrap: None,
        }
    }
}

impl Options {
    /// ethik's `ImageClassificationExplainer` setting: taus (-1, 0, 1), `alpha = 0.05`, no
    /// bootstrap, with the given solver.
    pub fn images(solver: Solver) -> Self {
        Self { taus: vec![-1.0, 0.0, 1.0], solver, ..Self::default() }
    }

    /// Checks every option.
    ///
    /// # Errors
    /// [`InfluenceError::Parameter`] naming the option.
    pub fn validate(&self) -> Result<()> {
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(InfluenceError::parameter(
                "alpha",
                format!("must be in (0, 0.5), got {}", self.alpha),
            ));
        }
        if self.taus.is_empty() {
            return Err(InfluenceError::parameter("taus", "at least one tau is needed"));
        }
        if let Some((i, tau)) =
            self.taus.iter().enumerate().find(|(_, t)| !(**t >= -1.0 && **t <= 1.0))
        {
            return Err(InfluenceError::parameter(
                "taus",
                format!("tau {i} is {tau}, outside [-1, 1]"),
            ));
        }
        if let Solver::EthikCompatible { tol } = self.solver
            && !(tol > 0.0 && tol.is_finite())
        {
            return Err(InfluenceError::parameter(
                "tol",
                format!("must be positive and finite, got {tol}"),
            ));
        }
        if let Some(b) = &self.bootstrap {
            b.validate()?;
        }
        Ok(())
    }
}

/// ethik's tau grid for `n` taus (`Query.taus`): `n` is bumped to the next odd number so that 0
/// is included, and the taus are `-1, -1 + 2/(n-1), ..., 1`, each the double nearest to the
/// exact rational `(2i - (n - 1)) / (n - 1)` (41 taus give exactly -1, -0.95, ..., 0.95, 1, as
/// ethik's `decimal_range`; for counts whose step is not a finite decimal, ethik's own grid
/// drifts by rounding and misses 0 and 1, this one does not). `n = 1` gives `[0]`.
///
/// # Errors
/// [`InfluenceError::Parameter`] when `n` is 0.
pub fn taus_from_count(n: usize) -> Result<Vec<f64>> {
    if n == 0 {
        return Err(InfluenceError::parameter("taus", "the number of taus must be positive"));
    }
    let n = if n.is_multiple_of(2) { n + 1 } else { n };
    if n == 1 {
        return Ok(vec![0.0]);
    }
    let half = (n - 1) as i64;
    Ok((0..n as i64).map(|i| (2 * i - half) as f64 / half as f64).collect())
}
