//! # nnlens-core
//!
//! The traits and plain data types every other nnlens crate speaks, with nothing
//! backend-specific in them:
//!
//! | item | what it is |
//! | --- | --- |
//! | [`Model`] | a network: its [`ModelStructure`], batched [`Model::predict`] of the activations of any layers, [`Model::evaluate`] |
//! | [`ModelStructure`], [`LayerStructure`] | the layers of a model, which of them carry feature maps, and where their channel axis is |
//! | [`DataSet`], [`TransformationsDataSet`] | a 2-D matrix of inputs (rows x columns; samples x transformations), as in transformational-measures-tf |
//! | [`BlockIterator`], [`Block`] | activations of blocks of a dataset, streamed through a model with memory bounded by the block |
//! | [`GradModel`], [`Loss`], [`Targets`] | models that give per-example gradients of a loss with respect to their parameters |
//! | [`in_batches`], [`in_batches_prefetched`], [`predict_in_batches`] | the one "run in batches, then join along the batch axis" loop (with the next batch's inputs made ahead, on another thread) |
//! | [`MetricEntry`], [`register_metric!`] | the metric registry, collected at link time with `inventory`; families are open (a name) |
//! | [`BackendEntry`], [`register_backend!`] | the registry of inference engines; [`grad_backend`] finds those that give gradients ([`GradLoaders`]) |
//! | [`RunManifest`] | the serialisable description of a run, one schema for every family ([`MANIFEST_SCHEMA_VERSION`]) |
//! | [`stats::Moments`] | mergeable per-element count, mean and M2: the state of streaming measures |
//!
//! Backends (`nnlens-tract`, ...) implement [`Model`]; metric crates implement [`Metric`] and register
//! themselves; each family's runner (`nnlens-run`) and the CLI only look things up by name.
#![warn(missing_docs)]

mod activations;
mod block;
mod dataset;
mod error;
mod evaluation;
mod gradient;
mod manifest;
mod model;
mod registry;
mod request;
pub mod stats;
mod structure;

pub use activations::Activations;
pub use block::{Block, BlockIterator, BlockRow, DEFAULT_BATCH_SIZE};
pub use dataset::{ArrayDataSet, DataSet, TransformationsDataSet, check_indices};
pub use error::CoreError;
pub use evaluation::{Evaluation, are_probabilities, cross_entropy_of_output};
pub use gradient::{
    GradModel, Loss, Parameter, Targets, glob_matches, module_path, select_parameters,
};
pub use manifest::{ArtifactRef, DatasetRef, MANIFEST_SCHEMA_VERSION, RunManifest, ShardRef};
pub use model::{Model, conform_input};
pub use registry::{
    BackendEntry, BackendOptions, Device, GradLoaders, LoadBytesFn, LoadFn, LoadGradBytesFn,
    LoadGradFn, Metric, MetricEntry, MetricFamily, Precision, backend, backends, grad_backend,
    metric, metrics,
};
pub use request::{
    TensorRequest, in_batches, in_batches_prefetched, join_chunks, predict_in_batches,
};
pub use structure::{InputStructure, LayerStructure, ModelStructure};

#[doc(hidden)]
pub use inventory as __inventory;

/// `Result` with the core error type.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
