//! # nnlens-similarity
//!
//! alibi's `GradientSimilarity` ("I classify this image as a 4 because it is similar to
//! training images labelled 4, as the model sees them"): an instance is explained by the
//! reference examples whose gradients of the loss with respect to the model's parameters are
//! most like its own (Charpiat et al. 2019, Hanawa et al. 2021).
//!
//! | item | what it is |
//! | --- | --- |
//! | [`GradientSimilarity`] | `fit` on a reference set (gradients stored or recomputed), `explain` instances |
//! | [`SimFn`] | `grad_dot` (`X Y^T`), `grad_cos` (`X Y^T / (\|X\| \|Y\|^T + 1e-7)`), `grad_asym_dot` (`X Y^T / (\|Y\|^2 + 1e-7)`) |
//! | [`Explanation`] | scores (`instances x references`), references ordered by score, most and least similar `top_k` |
//! | [`Scores`] | the mergeable state: scores against shards of a reference set append |
//! | [`SimilaritySpec`] | the parameters; registered as the metric `similarity` |
//!
//! The gradients come from any [`nnlens_core::GradModel`] (the `nnlens-candle` backend), one
//! example at a time, in parallel across cores. Scores are dot products of the `f32` gradients
//! accumulated in `f64`.
//!
//! Differences from alibi (see `shared/notes/alibi.md`, section 2): equal scores are ordered by
//! reference index (alibi's reversed `argsort` leaves ties in an implementation-dependent
//! order); explanations hold reference indices, not copies of the reference inputs;
//! `explain(X, None)` works with integer labels whatever the fitted targets look like (alibi
//! fails with one-hot training labels); without precompute, reference gradients are computed
//! in parallel batches instead of one at a time.
#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
mod error;
mod explainer;
mod scores;
mod spec;

pub use error::{Result, SimilarityError};
pub use explainer::{FitReport, GradientSimilarity};
pub use scores::{
    Explanation, Scores, dot_products, order, scores_from_dots, similarity, squared_norms,
};
pub use spec::{EPSILON, SimFn, SimilaritySpec};
