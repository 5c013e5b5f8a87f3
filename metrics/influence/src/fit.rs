//! The explainer: statistics and tilts of every (tau, feature) pair, then influence and
//! performance as matrix products of the weights with the predictions.

use ndarray::{Array1, Array2, Array3, ArrayView2, Axis, s};
use rayon::prelude::*;

use crate::result::{Bands, Influence, Issue, Performance, Projection};
use crate::solver::{self, Solution, Status, Tilt};
use crate::stats::{Distinct, FeatureStats, quantile_linear};
use crate::{Bootstrap, InfluenceError, Options, Result, Score, Truth};

/// Features per block of the weight matrix (one block: `BLOCK x n` weights and one matrix
/// product).
const BLOCK: usize = 32;

/// Upper bound on the elements of one block's masked right-hand side (bootstrap): masks are
/// processed in chunks that fit.
const CHUNK_ELEMENTS: usize = 1 << 21;

/// Below this sum of the (globally shifted) weights of a bootstrap mask, the mask's weights are
/// recomputed with the mask's own shift, so that no weight that matters has underflowed.
const TINY_MASS: f64 = 1e-200;

/// Checks that every value of `a` is finite.
///
/// # Errors
/// [`InfluenceError::NonFinite`] with the row and column of the first offending value.
pub(crate) fn check_finite(a: ArrayView2<'_, f64>, what: &str) -> Result<()> {
    for ((row, column), &value) in a.indexed_iter() {
        if !value.is_finite() {
            return Err(InfluenceError::NonFinite { what: what.into(), row, column, value });
        }
    }
    Ok(())
}

/// Computes influence and performance explanations with fixed [`Options`].
///
/// For images, flatten each image row-major into one row of the feature matrix (28 x 28 pixels:
/// 784 features) and reshape the feature axis of the results back; for tables, one column per
/// feature. Predictions are one column per class (probabilities, one-hot labels, or any model
/// output; one column for regression or binary models).
///
/// ```
/// use ndarray::array;
/// use nnlens_influence::{Explainer, Options, Score, Solver, Truth};
///
/// let x = array![[0.0, 1.0], [1.0, 1.0], [2.0, 0.0], [3.0, 0.0]];
/// let y_pred = array![[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]];
/// let explainer = Explainer::new(Options::images(Solver::Exact)).unwrap();
/// let fit = explainer.fit(x.view()).unwrap();
/// let influence = fit.influence(y_pred.view()).unwrap(); // [tau, feature, class]
/// assert!((influence.values[[1, 0, 0]] - 0.5).abs() < 1e-15); // tau = 0: the mean
/// assert!(influence.values[[2, 0, 1]] > influence.values[[0, 0, 1]]);
/// let labels = [0, 0, 1, 1];
/// let accuracy = fit.performance(y_pred.view(), &Truth::Labels(&labels), Score::Accuracy).unwrap();
/// assert_eq!(accuracy.values[[1, 0]], 1.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Explainer {
    options: Options,
}

impl Explainer {
    /// An explainer with validated options.
    ///
    /// # Errors
    /// [`InfluenceError::Parameter`] for an option out of its domain.
    pub fn new(options: Options) -> Result<Self> {
        options.validate()?;
        Ok(Self { options })
    }

    /// An explainer of options already validated (the metrics' parameters).
    pub(crate) fn from_valid(options: Options) -> Self {
        debug_assert!(options.validate().is_ok());
        Self { options }
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Statistics, targets (from the taus) and tilts of every feature of `x` (`n x p`).
    ///
    /// # Errors
    /// No rows or no columns, a non-finite value.
    pub fn fit(&self, x: ArrayView2<'_, f64>) -> Result<Fit> {
        Fit::new(&self.options, x, None)
    }

    /// As [`Explainer::fit`] with explicit target means `targets[row, feature]` (raw units)
    /// instead of the tau grid (ethik's `compare_*` and `constraints`). A target outside the
    /// feature's range gives `NaN` values and an [`Issue`].
    ///
    /// # Errors
    /// As [`Explainer::fit`], and targets with a column count other than `x`'s, or none.
    pub fn fit_targets(&self, x: ArrayView2<'_, f64>, targets: ArrayView2<'_, f64>) -> Result<Fit> {
        Fit::new(&self.options, x, Some(targets))
    }

    /// [`Explainer::fit`] then [`Fit::influence`].
    ///
    /// # Errors
    /// As both.
    pub fn influence(
        &self,
        x: ArrayView2<'_, f64>,
        y_pred: ArrayView2<'_, f64>,
    ) -> Result<Influence> {
        check_rows(x.nrows(), y_pred.nrows(), "the predictions")?;
        self.fit(x)?.influence(y_pred)
    }

    /// [`Explainer::fit`] then [`Fit::performance`].
    ///
    /// # Errors
    /// As both.
    pub fn performance(
        &self,
        x: ArrayView2<'_, f64>,
        y_pred: ArrayView2<'_, f64>,
        truth: &Truth<'_>,
        score: Score,
    ) -> Result<Performance> {
        check_rows(x.nrows(), y_pred.nrows(), "the predictions")?;
        self.fit(x)?.performance(y_pred, truth, score)
    }
}

fn check_rows(features: usize, got: usize, what: &str) -> Result<()> {
    if features != got {
        return Err(InfluenceError::RowMismatch { what: what.into(), features, got });
    }
    Ok(())
}

/// The fitted re-weightings of a feature matrix: per feature its statistics, per (tau, feature)
/// its target and [`Solution`]. Weighted means of any per-row quantity follow by matrix products
/// ([`Fit::influence`], [`Fit::performance`], [`Fit::weighted_means`]).
///
/// The fit keeps a copy of the features (transposed, `p x n`) to build the weights.
#[derive(Debug, Clone)]
pub struct Fit {
    options: Options,
    taus: Option<Vec<f64>>,
    xt: Array2<f64>,
    stats: Vec<FeatureStats>,
    targets: Array2<f64>,
    solutions: Array2<Solution>,
}

impl Fit {
    fn new(
        options: &Options,
        x: ArrayView2<'_, f64>,
        targets: Option<ArrayView2<'_, f64>>,
    ) -> Result<Self> {
        options.validate()?;
        let (n, p) = x.dim();
        if n == 0 {
            return Err(InfluenceError::Empty { what: "the feature matrix (no rows)".into() });
        }
        if p == 0 {
            return Err(InfluenceError::Empty { what: "the feature matrix (no columns)".into() });
        }
        check_finite(x, "the features")?;
        if let Some(t) = targets {
            if t.nrows() == 0 {
                return Err(InfluenceError::Empty { what: "the targets".into() });
            }
            if t.ncols() != p {
                return Err(InfluenceError::Shape {
                    what: "the targets".into(),
                    expected: format!("{p} columns (one per feature)"),
                    got: format!("{} columns", t.ncols()),
                });
            }
        }
        let xt = x.t().as_standard_layout().into_owned();
        let n_grid = targets.map_or(options.taus.len(), |t| t.nrows());
        let alpha = options.alpha;
        let solver = options.solver;
        let per_feature: Vec<(FeatureStats, Vec<f64>, Vec<Solution>)> = (0..p)
            .into_par_iter()
            .map_init(Vec::new, |sorted, j| {
                let column = xt.row(j);
                let column = column.as_slice().expect("standard layout");
                let stats = FeatureStats::compute(column, alpha, sorted);
                let distinct = Distinct::from_sorted(sorted, &stats);
                let goals: Vec<f64> = match targets {
                    Some(t) => t.column(j).to_vec(),
                    None => options.taus.iter().map(|&tau| stats.target(tau)).collect(),
                };
                let sols =
                    goals.iter().map(|&g| solver::solve(&stats, &distinct, g, solver)).collect();
                (stats, goals, sols)
            })
            .collect();
        let mut stats = Vec::with_capacity(p);
        let mut goal = Array2::zeros((n_grid, p));
        let mut solutions = Array2::from_elem(
            (n_grid, p),
            Solution {
                tilt: Tilt::Undefined,
                status: Status::OutsideRange,
                residual: f64::NAN,
                iterations: 0,
            },
        );
        for (j, (s, g, sol)) in per_feature.into_iter().enumerate() {
            stats.push(s);
            for (t, (g, sol)) in g.into_iter().zip(sol).enumerate() {
                goal[[t, j]] = g;
                solutions[[t, j]] = sol;
            }
        }
        let count = |status| solutions.iter().filter(|s| s.status == status).count();
        let (outside, failed) = (count(Status::OutsideRange), count(Status::NotConverged));
        tracing::debug!(
            rows = n,
            features = p,
            grid = n_grid,
            converged = count(Status::Converged),
            edge_limits = count(Status::EdgeLimit),
            "influence: tilts solved"
        );
        if outside + failed > 0 {
            tracing::warn!(
                "influence: {outside} (feature, target) pairs have a target outside the \
                 feature's range and {failed} did not converge (see the issues of the result)"
            );
        }
        let taus = targets.is_none().then(|| options.taus.clone());
        Ok(Self { options: options.clone(), taus, xt, stats, targets: goal, solutions })
    }

    /// The options.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Number of rows of the data.
    pub fn n_rows(&self) -> usize {
        self.xt.ncols()
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.xt.nrows()
    }

    /// The taus (`None` for explicit targets).
    pub fn taus(&self) -> Option<&[f64]> {
        self.taus.as_deref()
    }

    /// Per-feature statistics.
    pub fn stats(&self) -> &[FeatureStats] {
        &self.stats
    }

    /// Target means `[tau, feature]`, raw units.
    pub fn targets(&self) -> &Array2<f64> {
        &self.targets
    }

    /// Solutions `[tau, feature]`.
    pub fn solutions(&self) -> &Array2<Solution> {
        &self.solutions
    }

    /// The pairs that have no weights or did not converge.
    pub fn issues(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        for ((t, j), sol) in self.solutions.indexed_iter() {
            let (target, st) = (self.targets[[t, j]], &self.stats[j]);
            let message = match sol.status {
                Status::OutsideRange => format!(
                    "target {target} is outside the range [{}, {}] of feature {j}: no weights",
                    st.min, st.max
                ),
                Status::NotConverged => format!(
                    "the solver did not converge for feature {j}, target {target} (xi = {}, \
                     residual {:e})",
                    sol.tilt.xi(),
                    sol.residual
                ),
                _ => continue,
            };
            issues.push(Issue {
                tau_index: t,
                tau: self.taus.as_ref().map(|taus| taus[t]),
                feature: j,
                target,
                min: st.min,
                max: st.max,
                status: sol.status,
                message,
            });
        }
        issues
    }

    /// Targets, tilts, statuses and issues, as stored in the results.
    pub fn projection(&self) -> Projection {
        Projection {
            taus: self.taus.clone(),
            targets: self.targets.clone(),
            xi: self.solutions.mapv(|s| s.tilt.xi()),
            status: self.solutions.mapv(|s| s.status),
            issues: self.issues(),
        }
    }

    /// The normalised weights (summing to 1) of grid row `tau_index` and `feature`, one per row
    /// of the data; `None` when the pair has no weights (target outside the range).
    ///
    /// # Errors
    /// [`InfluenceError::Parameter`] when an index is out of range.
    pub fn weights(&self, tau_index: usize, feature: usize) -> Result<Option<Array1<f64>>> {
        if tau_index >= self.targets.nrows() || feature >= self.n_features() {
            return Err(InfluenceError::parameter(
                "index",
                format!(
                    "({tau_index}, {feature}) is outside the {} x {} grid",
                    self.targets.nrows(),
                    self.n_features()
                ),
            ));
        }
        let sol = self.solutions[[tau_index, feature]];
        if !sol.status.has_weights() {
            return Ok(None);
        }
        let mut w = Array1::zeros(self.n_rows());
        self.fill_weights(feature, sol.tilt, w.as_slice_mut().expect("contiguous"));
        let sum = w.sum();
        w /= sum;
        Ok(Some(w))
    }

    /// Unnormalised weights of a feature under a tilt, shifted so that the largest is 1.
    fn fill_weights(&self, feature: usize, tilt: Tilt, out: &mut [f64]) {
        let x = self.xt.row(feature);
        let st = &self.stats[feature];
        match tilt {
            Tilt::Finite(xi) if xi == 0.0 || st.is_constant() => out.fill(1.0),
            Tilt::Finite(xi) => {
                let c = if xi > 0.0 {
                    xi * st.standardise(st.max)
                } else {
                    xi * st.standardise(st.min)
                };
                for (o, &v) in out.iter_mut().zip(x.iter()) {
                    *o = (xi * st.standardise(v) - c).exp();
                }
            }
            Tilt::ToMinimum => {
                for (o, &v) in out.iter_mut().zip(x.iter()) {
                    *o = f64::from(u8::from(v == st.min));
                }
            }
            Tilt::ToMaximum => {
                for (o, &v) in out.iter_mut().zip(x.iter()) {
                    *o = f64::from(u8::from(v == st.max));
                }
            }
            Tilt::Undefined => out.fill(f64::NAN),
        }
    }

    /// The weighted mean of `columns` (`n x c`) over the rows of a mask, with the mask's own
    /// shift (the limit tilts: uniform on the mask's rows at the mask's extreme value).
    fn masked_mean(
        &self,
        feature: usize,
        tilt: Tilt,
        mask: &[bool],
        columns: ArrayView2<'_, f64>,
    ) -> Vec<f64> {
        let c = columns.ncols();
        let x = self.xt.row(feature);
        let st = &self.stats[feature];
        let rows =
            || x.iter().zip(mask).enumerate().filter(|(_, (_, m))| **m).map(|(i, (v, _))| (i, *v));
        let weight: Box<dyn Fn(f64) -> f64> = match tilt {
            Tilt::Undefined => return vec![f64::NAN; c],
            Tilt::Finite(xi) => {
                let shift =
                    rows().map(|(_, v)| xi * st.standardise(v)).fold(f64::NEG_INFINITY, f64::max);
                Box::new(move |v| (xi * st.standardise(v) - shift).exp())
            }
            Tilt::ToMinimum => {
                let ext = rows().map(|(_, v)| v).fold(f64::INFINITY, f64::min);
                Box::new(move |v| f64::from(u8::from(v == ext)))
            }
            Tilt::ToMaximum => {
                let ext = rows().map(|(_, v)| v).fold(f64::NEG_INFINITY, f64::max);
                Box::new(move |v| f64::from(u8::from(v == ext)))
            }
        };
        let mut num = vec![0.0; c];
        let mut den = 0.0;
        for (i, v) in rows() {
            let w = weight(v);
            if w != 0.0 {
                den += w;
                for (acc, &y) in num.iter_mut().zip(columns.row(i)) {
                    *acc += w * y;
                }
            }
        }
        num.into_iter().map(|a| a / den).collect()
    }

    /// The weighted means `[tau, feature, column]` of every column of `columns` (`n x c`) under
    /// the weights of every pair, and their bootstrap bands when the options ask for them. This
    /// is what [`Fit::influence`] (columns: predictions) and [`Fit::performance`] (one column:
    /// the per-row metric) compute.
    ///
    /// For each tau and block of features the weights form a `block x n` matrix `E` (shifted
    /// exponentials, or the indicator of the extreme rows) and the result is one matrix product
    /// `E [Y 1]` (numerators and normalisers at once); the bootstrap multiplies the same `E` by
    /// the masked `[Y 1]` of every mask. Blocks run in parallel (rayon).
    ///
    /// # Errors
    /// A row count other than the data's, a non-finite value.
    pub fn weighted_means(
        &self,
        columns: ArrayView2<'_, f64>,
    ) -> Result<(Array3<f64>, Option<Bands<ndarray::Ix3>>)> {
        let (n, c) = columns.dim();
        check_rows(self.n_rows(), n, "the per-row values")?;
        if c == 0 {
            return Err(InfluenceError::Empty { what: "the per-row values (no columns)".into() });
        }
        check_finite(columns, "the per-row values")?;
        let (n_grid, p) = self.targets.dim();
        let mut ones = Array2::ones((n, c + 1));
        ones.slice_mut(s![.., ..c]).assign(&columns);
        let rhs = ones;
        let masks = match &self.options.bootstrap {
            Some(b) => Some((b, b.masks(n)?)),
            None => None,
        };
        let tasks: Vec<(usize, usize)> =
            (0..n_grid).flat_map(|t| (0..p).step_by(BLOCK).map(move |f0| (t, f0))).collect();
        let outputs: Vec<BlockOut> = tasks
            .par_iter()
            .map(|&(t, f0)| self.block(t, f0..(f0 + BLOCK).min(p), columns, &rhs, masks.as_ref()))
            .collect();
        let mut values = Array3::zeros((n_grid, p, c));
        let mut bands = masks.as_ref().map(|_| {
            let z = Array3::<f64>::zeros((n_grid, p, c));
            (z.clone(), z.clone(), z)
        });
        for (&(t, f0), out) in tasks.iter().zip(outputs) {
            let rows = f0..f0 + out.values.nrows();
            values.slice_mut(s![t, rows.clone(), ..]).assign(&out.values);
            if let (Some((mean, low, high)), Some((m, l, h))) = (bands.as_mut(), out.bands) {
                mean.slice_mut(s![t, rows.clone(), ..]).assign(&m);
                low.slice_mut(s![t, rows.clone(), ..]).assign(&l);
                high.slice_mut(s![t, rows, ..]).assign(&h);
            }
        }
        let bands = bands.zip(masks).map(|((mean, low, high), (b, _))| Bands {
            n_samples: b.n_samples,
            mean,
            low,
            high,
        });
        Ok((values, bands))
    }

    fn block(
        &self,
        t: usize,
        features: std::ops::Range<usize>,
        columns: ArrayView2<'_, f64>,
        rhs: &Array2<f64>,
        masks: Option<&(&Bootstrap, Vec<Vec<bool>>)>,
    ) -> BlockOut {
        let (n, c) = columns.dim();
        let b = features.len();
        let mut e = Array2::zeros((b, n));
        for (k, f) in features.clone().enumerate() {
            let mut row = e.row_mut(k);
            self.fill_weights(
                f,
                self.solutions[[t, f]].tilt,
                row.as_slice_mut().expect("contiguous"),
            );
        }
        let g = e.dot(rhs);
        let values = Array2::from_shape_fn((b, c), |(k, j)| g[[k, j]] / g[[k, c]]);
        let Some((boot, masks)) = masks else { return BlockOut { values, bands: None } };
        let s_total = masks.len();
        let mut samples = Array3::<f64>::zeros((b, c, s_total));
        let chunk = (CHUNK_ELEMENTS / (n * (c + 1))).clamp(1, s_total);
        for m0 in (0..s_total).step_by(chunk) {
            let chunk_masks = &masks[m0..(m0 + chunk).min(s_total)];
            let mut masked = Array2::zeros((n, chunk_masks.len() * (c + 1)));
            for (q, mask) in chunk_masks.iter().enumerate() {
                for (i, &keep) in mask.iter().enumerate() {
                    if keep {
                        masked.slice_mut(s![i, q * (c + 1)..(q + 1) * (c + 1)]).assign(&rhs.row(i));
                    }
                }
            }
            let h = e.dot(&masked);
            for (k, f) in features.clone().enumerate() {
                let tilt = self.solutions[[t, f]].tilt;
                for (q, mask) in chunk_masks.iter().enumerate() {
                    let den = h[[k, q * (c + 1) + c]];
                    if den >= TINY_MASS || tilt == Tilt::Undefined {
                        for j in 0..c {
                            samples[[k, j, m0 + q]] = h[[k, q * (c + 1) + j]] / den;
                        }
                    } else {
                        for (j, v) in
                            self.masked_mean(f, tilt, mask, columns).into_iter().enumerate()
                        {
                            samples[[k, j, m0 + q]] = v;
                        }
                    }
                }
            }
        }
        let mut mean = Array2::zeros((b, c));
        let mut low = Array2::zeros((b, c));
        let mut high = Array2::zeros((b, c));
        let mut sorted = Vec::with_capacity(s_total);
        for k in 0..b {
            for j in 0..c {
                let lane = samples.slice(s![k, j, ..]);
                mean[[k, j]] = lane.sum() / s_total as f64;
                sorted.clear();
                sorted.extend(lane.iter().copied());
                if sorted.iter().any(|v| v.is_nan()) {
                    low[[k, j]] = f64::NAN;
                    high[[k, j]] = f64::NAN;
                    continue;
                }
                sorted.sort_unstable_by(f64::total_cmp);
                low[[k, j]] = quantile_linear(&sorted, boot.conf_level);
                high[[k, j]] = quantile_linear(&sorted, 1.0 - boot.conf_level);
            }
        }
        BlockOut { values, bands: Some((mean, low, high)) }
    }

    /// The influence `[tau, feature, class]`: the weighted mean of each prediction column.
    ///
    /// # Errors
    /// Predictions with another row count than the features, no columns, non-finite values.
    pub fn influence(&self, y_pred: ArrayView2<'_, f64>) -> Result<Influence> {
        check_rows(self.n_rows(), y_pred.nrows(), "the predictions")?;
        if y_pred.ncols() == 0 {
            return Err(InfluenceError::Empty { what: "the predictions (no columns)".into() });
        }
        check_finite(y_pred, "the predictions")?;
        let (values, bands) = self.weighted_means(y_pred)?;
        Ok(Influence {
            options: self.options.clone(),
            projection: self.projection(),
            values,
            bands,
        })
    }

    /// The performance `[tau, feature]`: `score` with the weights of each pair as sample
    /// weights.
    ///
    /// # Errors
    /// As [`Fit::influence`], and a truth that does not fit the metric or the predictions (see
    /// [`Score::per_row`]).
    pub fn performance(
        &self,
        y_pred: ArrayView2<'_, f64>,
        truth: &Truth<'_>,
        score: Score,
    ) -> Result<Performance> {
        check_rows(self.n_rows(), y_pred.nrows(), "the predictions")?;
        if y_pred.ncols() == 0 {
            return Err(InfluenceError::Empty { what: "the predictions (no columns)".into() });
        }
        check_finite(y_pred, "the predictions")?;
        let per_row = score.per_row(y_pred, truth)?;
        let (values, bands) = self.weighted_means(per_row.view().insert_axis(Axis(1)))?;
        let squeeze = |a: Array3<f64>| a.index_axis_move(Axis(2), 0);
        Ok(Performance {
            options: self.options.clone(),
            score,
            projection: self.projection(),
            values: squeeze(values),
            bands: bands.map(|b| Bands {
                n_samples: b.n_samples,
                mean: squeeze(b.mean),
                low: squeeze(b.low),
                high: squeeze(b.high),
            }),
        })
    }
}

struct BlockOut {
    values: Array2<f64>,
    bands: Option<(Array2<f64>, Array2<f64>, Array2<f64>)>,
}
