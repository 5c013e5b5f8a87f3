//! # nnlens-plugins
//!
//! Names every metric and backend crate once. A crate that a binary never names is not linked,
//! and its `inventory` registrations vanish without a word; binaries, tests and benches depend
//! on this crate and call [`link`] instead of naming each plugin themselves.
//!
//! Adding a plugin crate: add it to `Cargo.toml` (a metric crate with its `cli` feature in this
//! crate's `cli` feature), name it below, and add its registered names to [`EXPECTED_METRICS`]
//! or [`EXPECTED_BACKENDS`] (a test checks the registry against them). With the `cli` feature,
//! every metric family's runner is linked too (`nnlens run <metric>`), and a test checks that
//! every registered metric has one.
#![warn(missing_docs)]

use nnlens_candle as _;
use nnlens_influence as _;
use nnlens_invariance as _;
use nnlens_linearity as _;
#[cfg(feature = "ort")]
use nnlens_ort as _;
use nnlens_similarity as _;
use nnlens_tch as _;
use nnlens_tract as _;

/// The backends this build registers, sorted.
pub const EXPECTED_BACKENDS: &[&str] = &[
    "candle",
    #[cfg(feature = "ort")]
    "ort",
    "tch",
    "tract",
];

/// The metrics this build registers, sorted.
pub const EXPECTED_METRICS: &[&str] = &[
    "anova",
    "anova-f",
    "dses",
    "features-variance",
    "goodfellow",
    "goodfellow-normal",
    "influence",
    "linearity",
    "ndi",
    "ndse",
    "normalized-features-variance",
    "normalized-same-equivariance",
    "normalized-variance",
    "nvi",
    "nvse",
    "performance",
    "same-equivariance",
    "sdi",
    "sdse",
    "similarity",
    "svi",
    "svse",
    "tdi",
    "tdse",
    "tvi",
    "tvse",
    "variance",
];

/// Makes sure every plugin crate is linked into the calling binary. Call it once at start-up.
pub fn link() {
    // Referencing a function of each plugin crate keeps it in the link even under aggressive
    // dead-code elimination.
    std::hint::black_box(nnlens_tract::TractModel::load as *const ());
    std::hint::black_box(nnlens_candle::CandleModel::load as *const ());
    std::hint::black_box(nnlens_similarity::similarity as *const ());
    #[cfg(feature = "ort")]
    std::hint::black_box(nnlens_ort::OrtModel::load as *const ());
    std::hint::black_box(nnlens_invariance::compute as *const ());
    std::hint::black_box(nnlens_influence::build_influence as *const ());
    std::hint::black_box(nnlens_linearity::measure as *const ());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_holds_exactly_the_expected_plugins() {
        link();
        let backends: Vec<&str> = nnlens_core::backends().iter().map(|b| b.name).collect();
        assert_eq!(backends, EXPECTED_BACKENDS);
        let metrics: Vec<&str> = nnlens_core::metrics().iter().map(|m| m.name).collect();
        assert_eq!(metrics, EXPECTED_METRICS);
    }

    #[cfg(feature = "cli")]
    #[test]
    fn every_metric_has_a_runner() {
        link();
        let runnable: Vec<&str> = nnlens_run::runnable().iter().map(|(m, _)| m.name).collect();
        assert_eq!(runnable, EXPECTED_METRICS);
        let families: Vec<&str> = nnlens_run::runners().iter().map(|r| r.family()).collect();
        assert_eq!(families, ["influence", "invariance", "linearity", "similarity"]);
    }
}
