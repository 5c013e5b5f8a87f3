//! # nnlens-tract
//!
//! The default nnlens inference backend: [tract](https://github.com/sonos/tract), pure Rust
//! ONNX, no system package. [`TractModel`] loads any ONNX file with one input, discovers every
//! intermediate tensor as a layer (see below), and runs any subset of layers in one pass.
//!
//! A batch is cut into chunks of exactly [`CHUNK_ROWS`] inputs ([`chunk_ranges`]; the last
//! one padded with zeros) that run on all cores (or `threads` workers), each worker taking the
//! next chunk as it finishes one, on a reused run state of the one optimised plan per set of
//! layers. The worker that ran a chunk copies its activations into the batch's outputs,
//! allocated beforehand, so that nothing is joined on one thread afterwards. Every run having
//! the same shape, a batch's activations are bitwise the same on one machine whatever the
//! number of workers; an input at another place of a chunk (another batch size) agrees to f32
//! rounding.
//!
//! ## Layers
//! - every node output with a floating-point type whose first axis follows the batch size is an
//!   activation; [`TractModel::tensors`] lists them all;
//! - a tensor's *layer name* is the middle of an exporter's scoped name: `model/conv_1/BiasAdd:0`
//!   (tf2onnx) gives `conv_1`, `/layer1/0/conv1/Conv_output_0` (PyTorch) gives `layer1/0/conv1`;
//!   an unscoped name is its own layer name. The tensors that share a layer name form one layer,
//!   whose tensor is the one named exactly as the layer (an exporter's named output) or else the
//!   last one computed (the layer's output);
//! - layers come in evaluation order, an `Identity`/`Dropout` alias right after what it copies;
//! - the model's output is the last graph output that is a vector per sample (class scores),
//!   else the first graph output that is an activation (floating-point, with a batch axis),
//!   else the last layer (the rules of `nnlens_onnx`, which every ONNX backend shares);
//! - the channel axis is axis 1 of what convolutions, poolings and normalisations read and write
//!   (ONNX is NCHW), follows `Transpose` permutations (so tf2onnx's channels-last outputs are
//!   channels-last) and is kept by element-wise operators. The model input's channel axis is
//!   guessed from its shape (a last axis of at most 4 beside larger spatial axes, or a first one).
//!
//! Predictions accept layer names and raw tensor names. A model whose input is `f64` is fed
//! `f64` (converted from the `f32` nnlens gives); every activation comes back as `f32`.
#![warn(missing_docs)]

mod graph;
mod kernels;
mod model;
mod profile;

pub use model::{CHUNK_ROWS, TractError, TractModel, chunk_ranges};
pub use profile::OperatorTime;

use nnlens_core::{BackendEntry, BackendOptions, Model};

fn load(path: &std::path::Path, options: &BackendOptions) -> nnlens_core::Result<Box<dyn Model>> {
    options.require_cpu("tract")?;
    Ok(Box::new(TractModel::load(path, options)?))
}

fn load_bytes(
    bytes: &[u8],
    label: &str,
    options: &BackendOptions,
) -> nnlens_core::Result<Box<dyn Model>> {
    options.require_cpu("tract")?;
    Ok(Box::new(TractModel::from_bytes(bytes, label, options)?))
}

nnlens_core::register_backend!(BackendEntry {
    name: "tract",
    description: "tract: pure-Rust ONNX inference (no system package; what auto runs without ONNX Runtime)",
    available: || Ok(()),
    load,
    load_bytes,
    gradients: None,
    operators: &[],
});
