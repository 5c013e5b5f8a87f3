//! # nnlens-linearity
//!
//! alibi's linearity measure (`linearity_measure`, `LinearityMeasure`, `infer_feature_range`):
//! how far a model is from linear around each instance,
//! `L(x) = || M(sum_s a_s v_s) - sum_s a_s M(v_s) ||` with `v_s` samples around `x`
//! (`agg = global`), or the mean over samples of the same with the pair `(x, v_s)`
//! (`agg = pairwise`). `M` is a layer's output, compared as `log(p + 1e-10)` for a classifier
//! (a probability vector) and as it is for a regressor; the norm runs over every output value
//! (a convolution's whole map).
//!
//! Unlike alibi, every requested layer is measured from the same forwards ([`measure`]), the
//! forwards are batched with memory bounded by the batch, batches run in parallel, and the
//! samples come from a [`Perturbations`] source: the seeded [`GridSampler`], the
//! [`KnnSampler`] over one [`KnnIndex`], or an [`OffsetSampler`] that replays another tool's
//! grid draws exactly. Results are per instance ([`LinearityState`], mergeable across shards)
//! and summarised per layer and per class ([`LinearityResult`]).
//!
//! Corrections of alibi (see `shared/notes/alibi.md`): the unfitted class API's feature range
//! sized by `x.shape[1]` has no counterpart (the range always has one entry per flattened
//! feature); the kNN sampler queries one index instead of refitting per instance.
#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
mod error;
mod layer;
mod measure;
mod perturb;
mod range;
mod result;

pub use error::{LinearityError, Result};
pub use layer::{LOG_EPSILON, LayerSpec, ModelType};
pub use measure::{
    Aggregation, Execution, Instances, LinearitySpec, Method, flatten_rows, instances_per_batch,
    is_probability_vector, measure,
};
pub use perturb::{GridSampler, InstanceId, KnnIndex, KnnSampler, OffsetSampler, Perturbations};
pub use range::FeatureRange;
pub use result::{
    ClassLinearity, Histogram, LayerLinearity, LinearityResult, LinearityState, Summary, quantile,
};
