//! # nnlens-tch
//!
//! The libtorch backend: TorchScript models (`torch.jit.trace` or `torch.jit.script`, saved
//! with `.save`), run by libtorch on the CPU or a CUDA GPU, with per-example gradients from
//! libtorch's autograd over the module's trainable parameters.
//!
//! libtorch comes from the PyPI `torch==2.13.0` wheel (tch 0.26 expects libtorch 2.13): it is
//! needed to build (the `tch` feature; `LIBTORCH_USE_PYTORCH=1` with that python on the
//! `PATH`) and at run time (the binary looks for it where it was at build time). Without the
//! feature this crate still registers the `tch` backend, which says how to build with it.
//!
//! ## Models
//! - **Layers** are what `forward` returns ([`layers`]): a tensor (the output), a tuple or list
//!   of tensors (`0`, `1`, ...; the last is the output), or a `Dict[str, Tensor]` (named
//!   layers; the entry `output`, else the last, is the output). Layers are channels-first.
//! - **The input shape** is not stored by TorchScript: `--input-shape` (one sample, e.g.
//!   `3,224,224`), else the one `tests/fixtures/torchscript/export.py` records in the file
//!   (`extra/nnlens.json`).
//! - **Types**: the module's own float type (f32 or f64); `Precision::F64` converts it to f64.
//!   The module runs in eval mode (BatchNorm's running statistics, no dropout).
//! - **Gradients**: over `named_parameters()` that require grad (BatchNorm's running statistics
//!   are buffers, never parameters), one example at a time, of the losses of
//!   [`nnlens_core::Loss`]: `-log p[y]` of a probability output, `-log_softmax(z)[y]` of logits,
//!   or the mean squared error.
//! - **Files from another torch**: a TorchScript file saved by a newer torch than the libtorch
//!   linked ([`LIBTORCH_VERSION`]) may not load; the error says so.
#![warn(missing_docs)]

pub mod archive;
pub mod layers;
#[cfg(feature = "tch")]
mod model;

#[cfg(feature = "tch")]
pub use model::TchModel;

use nnlens_core::{
    BackendEntry, BackendOptions, CoreError, GradLoaders, GradModel, Loss, Model, ModelStructure,
    Targets,
};

/// The libtorch version this crate builds against (tch 0.26's): TorchScript files saved by
/// this torch or an older one load.
pub const LIBTORCH_VERSION: &str = "2.13.0";

/// How to get a build with this backend.
pub const BUILD_HINT: &str = "this nnlens was built without the tch backend: `pip install torch==2.13.0`, then build with \
     `LIBTORCH_USE_PYTORCH=1 cargo install --path cli --features tch` with that python first on the PATH \
     (see the README, \"TorchScript models\")";

/// The folder of libtorch this crate was built against (empty without the `tch` feature).
pub const LIBTORCH_LIB: &str = env!("NNLENS_LIBTORCH_LIB");

/// What can go wrong with the libtorch backend.
#[derive(Debug, thiserror::Error)]
pub enum TchBackendError {
    /// The model file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a TorchScript module nnlens can use.
    #[error("{label}: {message}")]
    Invalid {
        /// The model.
        label: String,
        /// Why.
        message: String,
    },
    /// The device asked for is not there.
    #[error("{0}")]
    Device(String),
    /// libtorch failed running the model.
    #[error("libtorch, {label}: {message}")]
    Engine {
        /// The model.
        label: String,
        /// libtorch's message (its first line).
        message: String,
    },
    /// An error of nnlens-core (shapes, names).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<TchBackendError> for CoreError {
    fn from(e: TchBackendError) -> Self {
        match e {
            TchBackendError::Core(e) => e,
            TchBackendError::Io { path, source } => CoreError::Io { path: path.into(), source },
            TchBackendError::Device(reason) => {
                CoreError::BackendUnavailable { name: "tch".into(), reason }
            }
            other => CoreError::Backend { backend: "tch", message: other.to_string() },
        }
    }
}

/// The first line of a libtorch message (libtorch appends C++ stack traces), without tch's
/// prefix.
pub fn first_line(message: &str) -> String {
    let lines: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let mut line = lines.first().copied().unwrap_or("");
    // The TorchScript interpreter's errors open with a banner and a Python-like traceback and
    // end with the error itself (`RuntimeError: ...`).
    if line.contains("failed in the TorchScript interpreter")
        && let Some(last) = lines.iter().rev().find(|l| l.contains("Error: "))
    {
        line = last;
    }
    let line = line.strip_prefix("Internal torch error:").unwrap_or(line).trim();
    line.to_string()
}

/// Checks the targets and the loss of [`GradModel::per_example_gradients`] against the model's
/// output, as candle does.
///
/// # Errors
/// Targets of another length than the batch, a loss that does not fit them, a label outside
/// the classes, regression targets of another width than the output, or a non-finite target.
pub fn check_targets(
    structure: &ModelStructure,
    batch: usize,
    targets: Targets<'_>,
    loss: Loss,
) -> nnlens_core::Result<()> {
    if targets.len() != batch {
        return Err(CoreError::Shape {
            what: "targets".into(),
            expected: format!("{batch} (one per example)"),
            got: targets.len().to_string(),
        });
    }
    let output = structure.output_layer();
    let outputs = output.number_activations();
    match (loss, targets) {
        (
            Loss::CrossEntropyFromProbabilities | Loss::CrossEntropyFromLogits,
            Targets::Classes(labels),
        ) => {
            if output.shape.len() != 1 {
                return Err(CoreError::Shape {
                    what: "the model's output for a cross-entropy".into(),
                    expected: "class scores [batch, classes]".into(),
                    got: format!("{:?} per example", output.shape),
                });
            }
            if let Some((row, &label)) = labels.iter().enumerate().find(|(_, l)| **l >= outputs) {
                return Err(CoreError::Label { label, row, classes: outputs });
            }
            Ok(())
        }
        (Loss::MeanSquaredError, Targets::Values(v)) => {
            if v.ncols() != outputs {
                return Err(CoreError::Shape {
                    what: "regression targets".into(),
                    expected: format!("[{batch}, {outputs}] (the output's size)"),
                    got: format!("{:?}", v.shape()),
                });
            }
            if let Some((index, &value)) = v.iter().enumerate().find(|(_, t)| !t.is_finite()) {
                return Err(CoreError::NonFinite { what: "the targets".into(), value, index });
            }
            Ok(())
        }
        (loss, _) => Err(CoreError::InvalidParameters {
            what: "gradient loss".into(),
            reason: format!(
                "{loss:?} needs {} targets",
                if loss == Loss::MeanSquaredError { "real-valued" } else { "class" }
            ),
        }),
    }
}

/// Loads `libtorch_cuda.so` of the libtorch this crate was built against (once): the linker
/// drops it from the binary's needs (no symbol of it is used directly), and without it libtorch
/// finds no GPU.
#[cfg(feature = "tch")]
fn load_cuda_library() {
    static LOADED: std::sync::Once = std::sync::Once::new();
    LOADED.call_once(|| {
        let path = std::path::Path::new(LIBTORCH_LIB).join("libtorch_cuda.so");
        if path.is_file() {
            // SAFETY: loading libtorch's own CUDA library, whose initialisers register its
            // kernels; it stays loaded for the process's life.
            match unsafe { libloading::os::unix::Library::open(Some(&path), libc_flags()) } {
                Ok(lib) => std::mem::forget(lib),
                Err(e) => tracing::warn!("cannot load {}: {e}", path.display()),
            }
        }
    });
}

#[cfg(feature = "tch")]
fn libc_flags() -> std::ffi::c_int {
    libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL
}

fn unavailable() -> CoreError {
    CoreError::BackendUnavailable { name: "tch".into(), reason: BUILD_HINT.into() }
}

fn available() -> Result<(), String> {
    if cfg!(feature = "tch") { Ok(()) } else { Err(BUILD_HINT.into()) }
}

fn load(path: &std::path::Path, options: &BackendOptions) -> nnlens_core::Result<Box<dyn Model>> {
    #[cfg(feature = "tch")]
    return Ok(Box::new(TchModel::load(path, options)?));
    #[cfg(not(feature = "tch"))]
    {
        let _ = (path, options);
        Err(unavailable())
    }
}

fn load_grad(
    path: &std::path::Path,
    options: &BackendOptions,
) -> nnlens_core::Result<Box<dyn GradModel>> {
    #[cfg(feature = "tch")]
    return Ok(Box::new(TchModel::load(path, options)?));
    #[cfg(not(feature = "tch"))]
    {
        let _ = (path, options);
        Err(unavailable())
    }
}

fn embedded(label: &str) -> CoreError {
    CoreError::InvalidParameters {
        what: "--backend tch".into(),
        reason: format!("{label} is an ONNX model; tch runs TorchScript files (--model m.pt)"),
    }
}

fn load_bytes(_: &[u8], label: &str, _: &BackendOptions) -> nnlens_core::Result<Box<dyn Model>> {
    if !cfg!(feature = "tch") {
        return Err(unavailable());
    }
    Err(embedded(label))
}

fn load_grad_bytes(
    _: &[u8],
    label: &str,
    _: &BackendOptions,
) -> nnlens_core::Result<Box<dyn GradModel>> {
    if !cfg!(feature = "tch") {
        return Err(unavailable());
    }
    Err(embedded(label))
}

nnlens_core::register_backend!(BackendEntry {
    name: "tch",
    description: "libtorch (TorchScript .pt files, autograd gradients, CPU or CUDA; feature tch, libtorch from the PyPI torch wheel)",
    available,
    load,
    load_bytes,
    gradients: Some(GradLoaders { load: load_grad, load_bytes: load_grad_bytes }),
    operators: &[],
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtorch_messages_become_one_line() {
        let m = "Internal torch error: PytorchStreamReader failed locating file constants.pkl: file not found\nException raised from valid at ../caffe2/serialize/inline_container.cc:236 (most recent call first):\nframe #0: c10::Error::Error";
        assert_eq!(
            first_line(m),
            "PytorchStreamReader failed locating file constants.pkl: file not found"
        );
        assert_eq!(first_line("\n\n  x  \n"), "x");
        let script = "The following operation failed in the TorchScript interpreter.\nTraceback of TorchScript (most recent call last):\n  File \"code/m.py\", line 9\n    x = linear(x)\nRuntimeError: mat1 and mat2 shapes cannot be multiplied (1x784 and 3072x32)\n";
        assert_eq!(
            first_line(script),
            "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x784 and 3072x32)"
        );
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn without_the_feature_the_backend_says_how_to_build_it() {
        let e = load(std::path::Path::new("m.pt"), &BackendOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--features tch") && e.contains("torch==2.13.0"), "{e}");
        assert!(available().unwrap_err().contains("LIBTORCH_USE_PYTORCH=1"));
    }
}
