//! The results: influence `[tau, feature, class]`, performance `[tau, feature]`, the projection
//! they share (targets, tilts, statuses) and bootstrap bands. All serialise with serde; `NaN`
//! is written as `null` and the infinite tilts of edge limits as `"inf"` / `"-inf"`.

use ndarray::{Array, Array1, Array2, Array3, Axis, Dimension, Ix2, Ix3, RemoveAxis, concatenate};
use serde::{Deserialize, Serialize};

use crate::serde_float;
use crate::{InfluenceError, Options, Result, Score, Status};

/// A (feature, target) pair that has no value or whose value deserves a warning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// Row of the grid (index into the taus or the rows of explicit targets).
    pub tau_index: usize,
    /// The tau, when the grid is a tau grid.
    #[serde(default)]
    pub tau: Option<f64>,
    /// The feature (column).
    pub feature: usize,
    /// The target mean, raw units.
    #[serde(with = "serde_float::scalar")]
    pub target: f64,
    /// The feature's smallest value.
    #[serde(with = "serde_float::scalar")]
    pub min: f64,
    /// The feature's largest value.
    #[serde(with = "serde_float::scalar")]
    pub max: f64,
    /// [`Status::OutsideRange`] (no value) or [`Status::NotConverged`].
    pub status: Status,
    /// What happened, in words.
    pub message: String,
}

/// The re-weighting of every (tau, feature) pair: its target, its tilt and how it was solved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// The taus of the grid (`None` when the targets were given explicitly).
    pub taus: Option<Vec<f64>>,
    /// Target means `[tau, feature]`, raw units.
    #[serde(with = "serde_float::array")]
    pub targets: Array2<f64>,
    /// Tilts `[tau, feature]` in standardised units: `-inf` / `+inf` for edge limits, `NaN`
    /// where the target is outside the range.
    #[serde(with = "serde_float::array")]
    pub xi: Array2<f64>,
    /// How each pair was solved `[tau, feature]`.
    #[serde(with = "serde_float::plain_array")]
    pub status: Array2<Status>,
    /// The pairs without a value (target outside the range) or not converged.
    pub issues: Vec<Issue>,
}

impl Projection {
    /// Number of rows of the grid.
    pub fn n_taus(&self) -> usize {
        self.targets.nrows()
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.targets.ncols()
    }

    /// The grid row of `tau` (exact match), when the grid is a tau grid.
    pub fn tau_index(&self, tau: f64) -> Option<usize> {
        self.taus.as_ref()?.iter().position(|&t| t == tau)
    }

    fn concat(parts: &[&Projection]) -> Result<Projection> {
        let first =
            parts.first().ok_or_else(|| InfluenceError::Merge("nothing to merge".into()))?;
        if parts.iter().any(|p| p.taus != first.taus) {
            return Err(InfluenceError::Merge("the parts have different taus".into()));
        }
        if parts.iter().any(|p| p.n_taus() != first.n_taus()) {
            return Err(InfluenceError::Merge("the parts have different grids".into()));
        }
        let mut issues = Vec::new();
        let mut offset = 0;
        for p in parts {
            issues.extend(p.issues.iter().cloned().map(|mut i| {
                i.feature += offset;
                i
            }));
            offset += p.n_features();
        }
        Ok(Projection {
            taus: first.taus.clone(),
            targets: cat(parts.iter().map(|p| &p.targets), Axis(1))?,
            xi: cat(parts.iter().map(|p| &p.xi), Axis(1))?,
            status: cat(parts.iter().map(|p| &p.status), Axis(1))?,
            issues,
        })
    }
}

fn cat<'a, T: Clone + 'a, D: RemoveAxis + 'a>(
    arrays: impl Iterator<Item = &'a Array<T, D>>,
    axis: Axis,
) -> Result<Array<T, D>> {
    let views: Vec<_> = arrays.map(|a| a.view()).collect();
    concatenate(axis, &views).map_err(|e| InfluenceError::Merge(format!("shapes differ: {e}")))
}

/// Bootstrap bands of the values (see [`Bootstrap`](crate::Bootstrap)): the mean of the
/// per-mask values (what ethik reports as the value) and their `conf_level` and
/// `1 - conf_level` quantiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "D: Dimension", deserialize = "D: Dimension"))]
pub struct Bands<D: Dimension> {
    /// Number of masks.
    pub n_samples: usize,
    /// The mean over masks.
    #[serde(with = "serde_float::array")]
    pub mean: Array<f64, D>,
    /// The `conf_level` quantile over masks.
    #[serde(with = "serde_float::array")]
    pub low: Array<f64, D>,
    /// The `1 - conf_level` quantile over masks.
    #[serde(with = "serde_float::array")]
    pub high: Array<f64, D>,
}

impl<D: RemoveAxis> Bands<D> {
    fn concat(parts: &[&Bands<D>]) -> Result<Bands<D>> {
        let n_samples = parts[0].n_samples;
        if parts.iter().any(|b| b.n_samples != n_samples) {
            return Err(InfluenceError::Merge("different bootstrap sample counts".into()));
        }
        Ok(Bands {
            n_samples,
            mean: cat(parts.iter().map(|b| &b.mean), Axis(1))?,
            low: cat(parts.iter().map(|b| &b.low), Axis(1))?,
            high: cat(parts.iter().map(|b| &b.high), Axis(1))?,
        })
    }
}

fn concat_bands<D: RemoveAxis>(parts: Vec<Option<&Bands<D>>>) -> Result<Option<Bands<D>>> {
    if parts.iter().all(Option::is_none) {
        return Ok(None);
    }
    let some: Option<Vec<&Bands<D>>> = parts.into_iter().collect();
    let some = some.ok_or_else(|| InfluenceError::Merge("only some parts have bands".into()))?;
    Bands::concat(&some).map(Some)
}

/// The influence of every feature on every prediction column: `values[tau, feature, class]` is
/// the mean prediction of `class` under the weights that move the feature's mean to its target
/// for `tau` (`sum_i w_i y_pred[i, class]`).
///
/// Can results be merged? Across features, yes: the features are independent, so results for
/// disjoint column ranges of the **same rows** (and the same options and seed) concatenate into
/// the result of all columns ([`Influence::concat_features`]). Across rows, no: the tilt of each
/// pair depends on all rows at once, so the weighted sums of two row shards do not combine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Influence {
    /// The options used.
    pub options: Options,
    /// Targets, tilts, statuses and issues.
    pub projection: Projection,
    /// `[tau, feature, class]`; `NaN` where the target is outside the feature's range.
    #[serde(with = "serde_float::array")]
    pub values: Array3<f64>,
    /// Bootstrap bands `[tau, feature, class]`, when asked for.
    pub bands: Option<Bands<Ix3>>,
}

impl Influence {
    /// Number of prediction columns.
    pub fn n_classes(&self) -> usize {
        self.values.len_of(Axis(2))
    }

    /// `values[high] - values[low]` per `[feature, class]`: with the grid rows of tau = +1 and
    /// tau = -1, what ethik's `plot_influence` draws for images (one `H x W` map per class
    /// after reshaping the features).
    ///
    /// # Errors
    /// [`InfluenceError::Parameter`] when a row is out of the grid.
    pub fn difference(&self, high: usize, low: usize) -> Result<Array2<f64>> {
        check_rows(self.projection.n_taus(), [high, low])?;
        Ok(&self.values.index_axis(Axis(0), high) - &self.values.index_axis(Axis(0), low))
    }

    /// Concatenates results for consecutive column ranges of the same rows (see the type docs).
    ///
    /// # Errors
    /// [`InfluenceError::Merge`] when the parts differ in options, taus or classes.
    pub fn concat_features(parts: &[Influence]) -> Result<Influence> {
        let first =
            parts.first().ok_or_else(|| InfluenceError::Merge("nothing to merge".into()))?;
        if parts.iter().any(|p| p.options != first.options) {
            return Err(InfluenceError::Merge("the parts have different options".into()));
        }
        if parts.iter().any(|p| p.n_classes() != first.n_classes()) {
            return Err(InfluenceError::Merge("the parts have different classes".into()));
        }
        Ok(Influence {
            options: first.options.clone(),
            projection: Projection::concat(
                &parts.iter().map(|p| &p.projection).collect::<Vec<_>>(),
            )?,
            values: cat(parts.iter().map(|p| &p.values), Axis(1))?,
            bands: concat_bands(parts.iter().map(|p| p.bands.as_ref()).collect())?,
        })
    }
}

/// The performance of the model under the re-weighting of every (tau, feature) pair:
/// `values[tau, feature]` is the metric with `sample_weight = w`. Merging: as [`Influence`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Performance {
    /// The options used.
    pub options: Options,
    /// The metric.
    pub score: Score,
    /// Targets, tilts, statuses and issues.
    pub projection: Projection,
    /// `[tau, feature]`; `NaN` where the target is outside the feature's range.
    #[serde(with = "serde_float::array")]
    pub values: Array2<f64>,
    /// Bootstrap bands `[tau, feature]`, when asked for.
    pub bands: Option<Bands<Ix2>>,
}

impl Performance {
    /// `values[high] - values[low]` per feature: with the rows of tau = +1 and tau = -1, what
    /// ethik's `plot_performance` draws for images.
    ///
    /// # Errors
    /// [`InfluenceError::Parameter`] when a row is out of the grid.
    pub fn difference(&self, high: usize, low: usize) -> Result<Array1<f64>> {
        check_rows(self.projection.n_taus(), [high, low])?;
        Ok(&self.values.row(high) - &self.values.row(low))
    }

    /// Concatenates results for consecutive column ranges of the same rows.
    ///
    /// # Errors
    /// [`InfluenceError::Merge`] when the parts differ in options, metric or taus.
    pub fn concat_features(parts: &[Performance]) -> Result<Performance> {
        let first =
            parts.first().ok_or_else(|| InfluenceError::Merge("nothing to merge".into()))?;
        if parts.iter().any(|p| p.options != first.options || p.score != first.score) {
            return Err(InfluenceError::Merge("the parts have different options".into()));
        }
        Ok(Performance {
            options: first.options.clone(),
            score: first.score,
            projection: Projection::concat(
                &parts.iter().map(|p| &p.projection).collect::<Vec<_>>(),
            )?,
            values: cat(parts.iter().map(|p| &p.values), Axis(1))?,
            bands: concat_bands(parts.iter().map(|p| p.bands.as_ref()).collect())?,
        })
    }
}

fn check_rows(n: usize, rows: [usize; 2]) -> Result<()> {
    match rows.into_iter().find(|&r| r >= n) {
        Some(r) => Err(InfluenceError::parameter(
            "tau index",
            format!("row {r} is outside the grid of {n} rows"),
        )),
        None => Ok(()),
    }
}
