//! Reading the layer structure of an ONNX graph: the rules shared by every nnlens ONNX backend
//! live in `nnlens-onnx` (so that tract and candle name layers identically); this module reads
//! tract's decoded protobuf with them.

use prost::Message;
use tract_onnx::pb;

pub(crate) use nnlens_onnx::GraphInfo;

/// Reads the graph of a (possibly rewritten) model: re-encodes tract's message and decodes it
/// with `nnlens-onnx`'s, which hold the fields the rules read. Tensors added by a rewrite carry
/// `nnlens_onnx::INTERNAL_MARK` and are not layers.
///
/// # Errors
/// A message when the graph cannot be read (see `nnlens_onnx::read_graph`).
pub(crate) fn read_graph(proto: &pb::ModelProto) -> Result<GraphInfo, String> {
    let ours = nnlens_onnx::decode_model(&proto.encode_to_vec()).map_err(|e| e.to_string())?;
    nnlens_onnx::read_graph(&ours)
}
