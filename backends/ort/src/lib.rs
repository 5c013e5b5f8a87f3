//! # nnlens-ort
//!
//! The ONNX Runtime backend: the fastest engine on this kind of machine. The runtime library
//! is not linked at build time: it is loaded when the first model is, from
//!
//! 1. `ORT_DYLIB_PATH` (the path of `libonnxruntime.so.<version>`), else
//! 2. the `onnxruntime` Python package of `python3` on the `PATH` (`pip install onnxruntime`;
//!    the wheel ships `onnxruntime/capi/libonnxruntime.so.<version>`).
//!
//! No library found is an error that says how to get one ([`ort_library`]), never a panic.
//!
//! The model's structure (its layers, their names and channel axes) follows the rules of
//! `nnlens_onnx::build_layers`, as in the tract and candle backends, so that layers have the
//! same names whichever backend runs them; the shapes come from ONNX Runtime itself, running a
//! batch of 1 and of 2 zeros with every node output requested.
//! Intermediate layers are made graph outputs before a session is created: one session per
//! set of requested tensors, kept idle between runs. A run from one thread has `threads`
//! intra-op threads (default: all cores); runs from the workers of a parallel loop each take
//! a session of one thread of their own, so that they run side by side.
#![warn(missing_docs)]

mod model;

pub use model::{OrtError, OrtModel, ort_library};

use nnlens_core::{BackendEntry, BackendOptions, Model};

fn load(path: &std::path::Path, options: &BackendOptions) -> nnlens_core::Result<Box<dyn Model>> {
    Ok(Box::new(OrtModel::load(path, options)?))
}

fn load_bytes(
    bytes: &[u8],
    label: &str,
    options: &BackendOptions,
) -> nnlens_core::Result<Box<dyn Model>> {
    Ok(Box::new(OrtModel::from_bytes(bytes, label, options)?))
}

fn available() -> Result<(), String> {
    model::environment().map(|_| ())
}

nnlens_core::register_backend!(BackendEntry {
    name: "ort",
    description: "ONNX Runtime (library from the PyPI onnxruntime wheel, loaded at run time)",
    available,
    load,
    load_bytes,
    gradients: None,
    operators: &[],
});
