//! # nnlens-onnx
//!
//! What every nnlens ONNX backend shares, with no engine in it:
//!
//! | item | what it is |
//! | --- | --- |
//! | [`proto`] | the ONNX protobuf messages, hand-written for `prost` (no `protoc` at build time) |
//! | [`decode_model`] | bytes of a `.onnx` file to a [`proto::ModelProto`] (a TorchScript, pickle or HDF5 file is named as such) |
//! | [`read_model_file`], [`load_external_data`], [`check_external_data`] | a model file and the external data beside it (PyTorch's `model.onnx.data`) |
//! | [`float_values`], [`int_values`], [`tensor_dims`] | the values of a tensor, whichever field holds them |
//! | [`read_graph`], [`build_layers`] | the layer rules: which tensors are layers, their names, order and channel axes |
//! | [`lower_unsupported`] | rewrites of operators into standard ones (`ai.onnx.ml` `Scaler`), so backends see one graph |
//! | [`lowerings`], [`apply_lowerings`] | the same rewrites for a backend that holds the graph in messages of its own (tract) |
//!
//! ## Layers
//! - every node output with a floating-point type whose first axis follows the batch size is an
//!   activation;
//! - a tensor's *layer name* is the middle of an exporter's scoped name: `model/conv_1/BiasAdd:0`
//!   (tf2onnx) gives `conv_1`, `/layer1/0/conv1/Conv_output_0` (PyTorch) gives `layer1/0/conv1`;
//!   an unscoped name is its own layer name ([`layer_name_of`]). The tensors that share a layer
//!   name form one layer, whose tensor is the one named exactly as the layer (an exporter's named
//!   output) or else the last one computed (the layer's output);
//! - layers come in evaluation order, an `Identity`/`Dropout` alias right after what it copies;
//! - the model's output is the last graph output that is a vector per sample (class scores),
//!   else the first graph output that is an activation, else the last layer;
//! - the channel axis is axis 1 of what convolutions, poolings and normalisations read and write
//!   (ONNX is NCHW), follows `Transpose` permutations (so tf2onnx's channels-last outputs are
//!   channels-last) and is kept by element-wise operators. The model input's channel axis is
//!   guessed from its shape ([`guess_sample_channel_axis`]).
//!
//! A backend reads the graph with [`read_graph`], finds the type and the shape of every tensor
//! at batch sizes 1 and 2 its own way (typing, or running the graph), and hands them to
//! [`build_layers`]: two backends that agree on the shapes name the layers identically.
#![warn(missing_docs)]

mod external;
#[cfg(feature = "fixture")]
pub mod fixture;
mod graph;
pub mod proto;
mod rewrite;
mod tensor;

pub use external::{
    EXTERNAL, ExternalLocation, check_external_data, external_location, has_external_data,
    load_external_data, model_dir, not_onnx, read_model_file,
};
pub use graph::{
    GraphInfo, Layers, TensorFact, TensorInfo, build_layers, guess_sample_channel_axis,
    layer_name_of, read_graph,
};
pub use rewrite::{INTERNAL_MARK, Lowering, apply_lowerings, lower_unsupported, lowerings};
pub use tensor::{float_values, int_values, tensor_dims};

/// Errors of reading ONNX bytes.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The bytes are not an ONNX protobuf message.
    #[error("cannot decode the ONNX protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The bytes are a file of another kind (TorchScript, a pickle, HDF5): what it is and what
    /// to do.
    #[error("{0}")]
    NotOnnx(&'static str),
    /// The model file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A tensor stored in an external file that cannot be read.
    #[error("tensor '{tensor}' {message}")]
    External {
        /// The tensor's name.
        tensor: String,
        /// What is wrong.
        message: String,
    },
    /// A tensor whose values cannot be read.
    #[error("tensor '{name}' {message}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// Decodes the bytes of an ONNX file.
///
/// External data is not read: see [`read_model_file`] and [`load_external_data`].
///
/// # Errors
/// [`OnnxError::NotOnnx`] for a file of another kind ([`not_onnx`]), [`OnnxError::Decode`]
/// when the bytes are not a protobuf `ModelProto`.
pub fn decode_model(bytes: &[u8]) -> Result<proto::ModelProto, OnnxError> {
    use prost::Message;
    if let Some(what) = not_onnx(bytes) {
        return Err(OnnxError::NotOnnx(what));
    }
    Ok(proto::ModelProto::decode(bytes)?)
}
