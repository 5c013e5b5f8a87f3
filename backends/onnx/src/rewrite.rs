//! Rewrites of ONNX graphs into standard operators, shared by the backends so that they see the
//! same graph (and so the same layers):
//!
//! - `ai.onnx.ml` `Scaler` (scikit-learn's `StandardScaler` export):
//!   `Y = (float(X) - offset) * scale`, as `Cast` + `Sub` + `Mul` with the attributes as
//!   initializers. The `Mul` keeps the node's output name, so the layer keeps its name.
//!
//! Tensors the rewrite adds carry [`INTERNAL_MARK`] in their names and are not layers (nor
//! trainable parameters: they were attributes in the file).

use crate::proto::{AttributeProto, ModelProto, NodeProto, TensorProto, elem};

/// Marks tensors (and initializers) added by a rewrite.
pub const INTERNAL_MARK: &str = "__nnlens_";

fn floats_attr(node: &NodeProto, name: &str) -> Vec<f32> {
    node.attribute(name).map(|a| a.floats.clone()).unwrap_or_default()
}

fn node(op: &str, name: String, inputs: Vec<String>, output: String) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name,
        input: inputs,
        output: vec![output],
        ..Default::default()
    }
}

/// Lowers the operators listed in the module docs; returns the nodes rewritten (`Scaler 'name'`).
///
/// # Errors
/// A message naming the node when a node to rewrite is malformed.
pub fn lower_unsupported(proto: &mut ModelProto) -> Result<Vec<String>, String> {
    let Some(graph) = proto.graph.as_mut() else { return Ok(Vec::new()) };
    let mut rewritten = Vec::new();
    let mut nodes = Vec::with_capacity(graph.node.len());
    for n in std::mem::take(&mut graph.node) {
        if n.op_type != "Scaler" || n.domain != "ai.onnx.ml" {
            nodes.push(n);
            continue;
        }
        let (Some(x), Some(y)) = (n.input.first(), n.output.first()) else {
            return Err(format!("Scaler node '{}' needs one input and one output", n.name));
        };
        let mut offset = floats_attr(&n, "offset");
        let mut scale = floats_attr(&n, "scale");
        if offset.is_empty() {
            offset.push(0.0);
        }
        if scale.is_empty() {
            scale.push(1.0);
        }
        let prefix = format!("{y}{INTERNAL_MARK}");
        let (n_offset, n_scale) = (offset.len() as i64, scale.len() as i64);
        graph.initializer.push(TensorProto::from_f32(
            &format!("{prefix}offset"),
            &[n_offset],
            offset,
        ));
        graph.initializer.push(TensorProto::from_f32(&format!("{prefix}scale"), &[n_scale], scale));
        let mut cast = node(
            "Cast",
            format!("{}{INTERNAL_MARK}cast", n.name),
            vec![x.clone()],
            format!("{prefix}float"),
        );
        cast.attribute.push(AttributeProto::int("to", i64::from(elem::FLOAT)));
        nodes.push(cast);
        nodes.push(node(
            "Sub",
            format!("{}{INTERNAL_MARK}sub", n.name),
            vec![format!("{prefix}float"), format!("{prefix}offset")],
            format!("{prefix}centred"),
        ));
        nodes.push(node(
            "Mul",
            n.name.clone(),
            vec![format!("{prefix}centred"), format!("{prefix}scale")],
            y.clone(),
        ));
        rewritten.push(format!("Scaler '{}'", n.name));
    }
    graph.node = nodes;
    Ok(rewritten)
}
