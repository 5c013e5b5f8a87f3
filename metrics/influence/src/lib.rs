//! # nnlens-influence
//!
//! ethik's explanations by entropic re-weighting ("Entropic Variable Projection for
//! Explainability and Interpretability", Bachoc et al.): for each feature on its own, the
//! existing rows are re-weighted, as little as possible in Kullback-Leibler divergence, so that
//! the feature's mean moves to a target; then
//! - the **influence** of the feature is the re-weighted mean of each prediction column
//!   ([`Influence`], `[tau, feature, class]`);
//! - the **performance** is a metric computed with those weights as sample weights
//!   ([`Performance`], `[tau, feature]`: accuracy, log loss, mean squared error, [`Score`]).
//!
//! The model is never run again: only the feature matrix and the predictions are needed (a model
//! backend or an NPY file of predictions can provide them). Images are flattened, one feature
//! per pixel; tables have one feature per column.
//!
//! | step | what | where |
//! | --- | --- | --- |
//! | statistics | mean, std (ddof = 1), min, max, linear quantiles `alpha` and `1 - alpha` | [`FeatureStats`] |
//! | targets | `mean + tau (mean - q_alpha)` for tau < 0, `mean + tau (q_(1-alpha) - mean)` for tau >= 0 (a side is flat when its quantile is not beyond the mean) | [`FeatureStats::target`], [`taus_from_count`] |
//! | tilts | `w = softmax(xi z)`, `sum w z = t_z`: exact dual solution, exact edge limits, or ethik's own stopping rule | [`solver`], [`Solver`] |
//! | values | weights times predictions / per-row metric, one matrix product per block of features | [`Fit::weighted_means`] |
//! | bands | seeded Bernoulli bootstrap masks, as ethik's `n_samples`, `sample_frac`, `conf_level` | [`Bootstrap`], [`Bands`] |
//!
//! ```
//! use ndarray::Array2;
//! use nnlens_influence::{Explainer, Options, Solver, Status};
//!
//! // 200 rows, 3 features, 2 classes; the prediction follows feature 0.
//! let x = Array2::from_shape_fn((200, 3), |(i, j)| ((i * (j + 1)) % 101) as f64);
//! let y = Array2::from_shape_fn((200, 2), |(i, c)| {
//!     let p = x[[i, 0]] / 100.0;
//!     if c == 1 { p } else { 1.0 - p }
//! });
//! let explainer = Explainer::new(Options { taus: vec![-1.0, 0.0, 1.0], ..Options::default() })?;
//! let fit = explainer.fit(x.view())?;
//! assert_eq!(fit.solutions()[[0, 0]].status, Status::Converged);
//! let influence = fit.influence(y.view())?;
//! let change = influence.difference(2, 0)?; // tau = +1 minus tau = -1, [feature, class]
//! assert!(change[[0, 1]] > 0.5);
//! # Ok::<(), nnlens_influence::InfluenceError>(())
//! ```
//!
//! Defects of ethik 0.0.4 that are not reproduced by the default [`Solver::Exact`] (the
//! ethik-compatible solver reproduces its numbers on purpose): targets on the edge of a feature's
//! range are not solved to a finite `xi` stopped at `(m - t)^2 < 1e-4` but given their exact
//! limit weights; a pair whose solver fails is reported ([`Issue`]), not silently given `xi = 0`;
//! the bootstrap is seeded; there is no early exit `np.isclose(t, mean)` in raw units (whose
//! outcome depends on the scale of the pixels): only a target equal to the mean gives `xi = 0`.
//!
//! The two metrics are registered as `influence` and `performance` (family
//! `influence`); see [`metric`] for their parameters.

#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
mod error;
mod ethik;
mod fit;
pub mod metric;
mod options;
mod result;
mod score;
pub mod serde_float;
pub mod solver;
mod stats;

pub use error::{InfluenceError, Result};
pub use fit::{Explainer, Fit};
pub use metric::{InfluenceMetric, PerformanceMetric, build_influence, build_performance};
pub use options::{
    Bootstrap, DEFAULT_ALPHA, DEFAULT_CONF_LEVEL, DEFAULT_N_TAUS, DEFAULT_SAMPLE_FRAC, ETHIK_TOL,
    EXACT_TOLERANCE, Options, Solver, taus_from_count,
};
pub use result::{Bands, Influence, Issue, Performance, Projection};
pub use score::{LOG_LOSS_EPS, Score, Truth};
pub use solver::{Solution, Status, Tilt};
pub use stats::{FeatureStats, quantile_linear};
