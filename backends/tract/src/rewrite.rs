//! Rewrites of ONNX graphs that tract cannot run as they are, into standard operators.
//!
//! - `ai.onnx.ml` `Scaler` (scikit-learn's `StandardScaler` export):
//!   `Y = (float(X) - offset) * scale`, as `Cast` + `Sub` + `Mul` with the attributes as
//!   initializers. The `Mul` keeps the node's output name, so the layer keeps its name.
//!
//! Tensors the rewrite adds carry [`INTERNAL_MARK`] in their names and are not layers.

use tract_onnx::pb;

/// Marks tensors added by a rewrite (the mark `nnlens-onnx` skips when reading layers).
pub(crate) const INTERNAL_MARK: &str = nnlens_onnx::INTERNAL_MARK;

fn floats_attr(node: &pb::NodeProto, name: &str) -> Vec<f32> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.floats.clone()).unwrap_or_default()
}

fn float_initializer(name: String, values: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        dims: vec![values.len() as i64],
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: values,
        name,
        ..Default::default()
    }
}

fn node(op: &str, name: String, inputs: Vec<String>, output: String) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name,
        input: inputs,
        output: vec![output],
        ..Default::default()
    }
}

/// Lowers the operators tract lacks; returns the names of the operators rewritten.
///
/// # Errors
/// A message naming the node when a node to rewrite is malformed.
pub(crate) fn lower_unsupported(proto: &mut pb::ModelProto) -> Result<Vec<String>, String> {
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
        graph.initializer.push(float_initializer(format!("{prefix}offset"), offset));
        graph.initializer.push(float_initializer(format!("{prefix}scale"), scale));
        let mut cast = node(
            "Cast",
            format!("{}{INTERNAL_MARK}cast", n.name),
            vec![x.clone()],
            format!("{prefix}float"),
        );
        cast.attribute.push(pb::AttributeProto {
            name: "to".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: pb::tensor_proto::DataType::Float as i64,
            ..Default::default()
        });
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
