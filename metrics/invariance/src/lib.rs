//! Transformational measures: how much a network's activations vary under transformations of
//! its input (invariance), and how much they fail to transform along with it
//! (same-equivariance), per activation, feature map, layer and model.
//!
//! Two families, with their own conventions (see [`result`] for the aggregation rules):
//! - the seed package `transformational-measures-tf` (`variance`, `normalized-variance`,
//!   `features-variance`, `normalized-features-variance`, `same-equivariance`,
//!   `normalized-same-equivariance`): means of ddof=1 **variances**;
//! - its successor `tmeasures` (`tvi`, `svi`, `nvi`, `tvse`, `svse`, `nvse`, `anova-f`, `anova`,
//!   `tdi`, `sdi`, `ndi`, `tdse`, `sdse`, `ndse`, `dses`, `goodfellow-normal`, `goodfellow`):
//!   means of ddof=1 **standard deviations** and `safe_divide`.
//!
//! Everything works on a samples x transformations (ST) matrix of activations streamed from an
//! [`StSource`]: a model on a transformations dataset ([`ModelSource`]) or an array computed
//! elsewhere ([`ArraySource`]). One pass fills, per layer, the per-row moments (transformation
//! variance) and the per-column moments (sample variance, ANOVA) at once; the state
//! ([`MeasureState`]) merges across shards of samples, so a run split in two and merged gives
//! the whole run's values. Distances need whole rows (and whole columns for the sample
//! distances: their state cannot be merged across samples); Goodfellow needs a second pass for
//! the firing counts.
//!
//! Known defects of the Python packages that are *not* reproduced: the seed package's inverse
//! transformations add a 180-degree flip, and its Analyzer leaves the dataset transposed;
//! tmeasures' Bonferroni critical value is `ppf(alpha / m)` (here `ppf(1 - (1 - alpha) / m)`),
//! its streaming variance can go negative (here never), and its `safe_divide` returns the
//! numerator for a NaN denominator (here NaN).

#![warn(missing_docs)]

pub mod analyzer;
#[cfg(feature = "cli")]
pub mod cli;
mod error;
mod measure;
pub mod result;
pub mod source;
mod special;
mod state;

pub use analyzer::{Analyzer, AnalyzerRow};
pub use error::{InvarianceError, Result};
pub use measure::{Convention, Kind, MeasureSpec, Needs, Parameters};
pub use result::{LayerResult, MeasureResult, finite_mean, plain_mean, safe_divide};
pub use source::{
    ActivationTransformations, ArraySource, ModelSource, Order, Pass, Roll, StSource, Values,
    Visitor,
};
pub use special::{f_quantile, normal_quantile};
pub use state::{FiringCounts, LayerState, MeasureState, RowSums};

/// Computes `spec` over everything `source` streams.
///
/// # Errors
/// See [`MeasureState::accumulate`] and [`MeasureState::finish`].
pub fn compute(spec: &MeasureSpec, source: &mut dyn StSource) -> Result<MeasureResult> {
    MeasureState::accumulate(spec, source)?.finish()
}
