//! # nnlens-candle
//!
//! The nnlens gradient backend: ONNX models run on [candle](https://github.com/huggingface/candle)
//! (`candle-core` only, CPU, no system package, no `protoc`), with the model's weights as
//! trainable parameters (see *Parameters*). [`CandleModel`] implements both [`nnlens_core::Model`] (activations of
//! any layers, registered as the backend `candle`) and [`nnlens_core::GradModel`] (per-example
//! gradients of a loss with respect to every parameter).
//!
//! ## How a model is read
//! The ONNX bytes are decoded with `nnlens-onnx`'s hand-written protobuf messages and the graph
//! is interpreted node by node with candle tensor operations, so candle's autograd differentiates
//! it. Layers are discovered with the same rules as the tract backend (`nnlens_onnx::read_graph`
//! and `nnlens_onnx::build_layers`: same names, order, channel axes and output), from the shapes
//! that a run on a batch of zeros gives at batch sizes 1 and 2.
//!
//! ## Operators
//! [`OPERATORS`] lists them (and `nnlens backends -v`); together they cover torchvision's
//! ResNet-18/50, MobileNetV2/V3, EfficientNet-B0, VGG and DenseNet-121 as `torch.onnx.export`
//! writes them (opset 17 with the TorchScript exporter; opset 18 and above with
//! `dynamo=True`), and tf2onnx's Keras exports. Details: `Conv` (2-D; explicit, asymmetric or
//! `SAME_*` padding; any strides and dilations; groups), `MaxPool` (2-D; any kernel, strides,
//! padding, dilations, `ceil_mode`), `AveragePool` (2-D; padding with or without the pads in
//! the count; no `ceil_mode` or dilations), `BatchNormalization` (inference: the given mean and
//! variance), `Clip` (ReLU6), `Pad` (`constant` and `edge`, non-negative pads),
//! `HardSigmoid`, `HardSwish`, `ReduceMean` (axes as attribute or, from opset 18, input),
//! `Dropout` (inference: the identity), and `ai.onnx.ml` `ArrayFeatureExtractor` and `Scaler`
//! (rewritten into `Cast`/`Sub`/`Mul`). Any other operator is an error at load time naming
//! the operator and the node ([`CandleError::Unsupported`]). Integer tensors (shapes,
//! indices, labels) are computed on the host.
//!
//! Gradients are those of TensorFlow and PyTorch where candle 0.11.1 differs: max pooling sends
//! the gradient to the first maximum of each window (candle's own `max_pool2d` backward scales it
//! by `1/k^2`, and a reshape + `max` gives every tied maximum the whole gradient), and `Relu`
//! passes it where its input is `> 0`.
//!
//! ## Precision
//! Every floating-point tensor is computed in one [`Precision`]: `f32` by default (what the
//! shared models' weights are; an `f64` model input is cast to `f32` by those graphs anyway), or
//! `f64` (weights converted exactly) as a reference.
//!
//! ## Parameters
//! The trainable tensors are the float initializers a node uses as a weight, in order of first
//! use (Keras' layer order for tf2onnx exports, `model.parameters()` order for PyTorch's):
//! what alibi differentiates (`model.parameters()` in PyTorch, `trainable_variables` in
//! Keras). The running mean and variance of `BatchNormalization` (its inputs 3 and 4: PyTorch's
//! buffers, Keras' non-trainable weights), the bounds of `Clip` and the fill value of `Pad` are
//! constants. A model exported with BatchNorm *folded* into the convolutions (PyTorch's
//! TorchScript exporter does so in eval mode; `torch.onnx.export(..., do_constant_folding=False)`
//! keeps it) has other parameters, the folded weights and biases, so its gradients, and the
//! similarities computed from them, are those of the folded network, not of the module with
//! BatchNorm. [`CandleOptions::parameters`] (`--parameters`) restricts the gradients to some
//! layers; the others are then constants.
//!
//! ## Gradients
//! Per example, a forward pass with a batch of 1, the loss, a backward pass, and the gradients of
//! the parameters flattened row-major in [`nnlens_core::GradModel::parameters`] order.
//! Examples run in parallel across cores (rayon). The losses ([`nnlens_core::Loss`]):
//! - cross-entropy from probabilities: when the model's output is a softmax over the classes
//!   (possibly behind `Identity`/`Dropout`), the loss is `-log_softmax(z)[y]` of the softmax's
//!   input `z`, so that `dL/dz = softmax(z) - onehot(y)` exactly, with no clipping (what Keras
//!   computes for a softmax output); otherwise `-ln p[y]` of the output;
//! - cross-entropy from logits: `-log_softmax(out)[y]`;
//! - mean squared error: `mean_k (out_k - t_k)^2`.
#![warn(missing_docs)]

/// The ONNX operators this backend runs and differentiates (default domain unless prefixed).
pub const OPERATORS: &[&str] = &[
    "Abs",
    "Add",
    "ArgMax",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Clip",
    "Concat",
    "Constant",
    "Conv",
    "Div",
    "Dropout",
    "Exp",
    "Flatten",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "LeakyRelu",
    "Log",
    "LogSoftmax",
    "MatMul",
    "MaxPool",
    "Mul",
    "Neg",
    "Pad",
    "ReduceMean",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Transpose",
    "Unsqueeze",
    "ai.onnx.ml.ArrayFeatureExtractor",
    "ai.onnx.ml.Scaler",
];

mod custom;
mod error;
mod graph;
mod linalg;
mod model;
mod ops;
mod value;

pub use error::{CandleError, Result};
pub use model::{CandleModel, CandleOptions, Precision};

use nnlens_core::{BackendEntry, BackendOptions, GradLoaders, GradModel, Model};

fn load(path: &std::path::Path, options: &BackendOptions) -> nnlens_core::Result<Box<dyn Model>> {
    options.require_cpu("candle")?;
    Ok(Box::new(CandleModel::load_with(path, &options.into())?))
}

fn load_bytes(
    bytes: &[u8],
    label: &str,
    options: &BackendOptions,
) -> nnlens_core::Result<Box<dyn Model>> {
    options.require_cpu("candle")?;
    Ok(Box::new(CandleModel::from_bytes(bytes, label, &options.into())?))
}

fn load_grad(
    path: &std::path::Path,
    options: &BackendOptions,
) -> nnlens_core::Result<Box<dyn GradModel>> {
    options.require_cpu("candle")?;
    Ok(Box::new(CandleModel::load_with(path, &options.into())?))
}

fn load_grad_bytes(
    bytes: &[u8],
    label: &str,
    options: &BackendOptions,
) -> nnlens_core::Result<Box<dyn GradModel>> {
    options.require_cpu("candle")?;
    Ok(Box::new(CandleModel::from_bytes(bytes, label, &options.into())?))
}

nnlens_core::register_backend!(BackendEntry {
    name: "candle",
    description: "candle: pure-Rust ONNX interpreter with parameter gradients (no system package)",
    available: || Ok(()),
    load,
    load_bytes,
    gradients: Some(GradLoaders { load: load_grad, load_bytes: load_grad_bytes }),
    operators: OPERATORS,
});
