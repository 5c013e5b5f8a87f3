//! Rewrites of ONNX graphs into standard operators, shared by the backends so that they see the
//! same graph (and so the same layers):
//!
//! - `ai.onnx.ml` `Scaler` (scikit-learn's `StandardScaler` export):
//!   `Y = (float(X) - offset) * scale`, as `Cast` + `Sub` + `Mul` with the attributes as
//!   initializers. The `Mul` keeps the node's output name, so the layer keeps its name.
//!
//! Tensors the rewrite adds carry [`INTERNAL_MARK`] in their names and are not layers (nor
//! trainable parameters: they were attributes in the file).
//!
//! [`lower_unsupported`] rewrites a model of [`crate::proto`]'s messages. A backend that holds
//! the model in messages of its own (tract's) computes the same rewrites with [`lowerings`] on
//! a copy in these messages, converts them ([`Lowering::try_map`]) and applies them to its own
//! with [`apply_lowerings`], the function [`lower_unsupported`] applies them with.

use crate::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, elem};

/// Marks tensors (and initializers) added by a rewrite.
pub const INTERNAL_MARK: &str = "__nnlens_";

/// The rewrite of one node of a graph: the nodes that replace it and the initializers they read.
///
/// `N` and `T` are the node and tensor messages ([`NodeProto`] and [`TensorProto`] as
/// [`lowerings`] gives them; a backend's own after [`Lowering::try_map`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Lowering<N = NodeProto, T = TensorProto> {
    /// The index of the node rewritten in the graph's `node` list.
    pub index: usize,
    /// The nodes that replace it, in evaluation order.
    pub nodes: Vec<N>,
    /// The initializers those nodes read, appended to the graph's.
    pub initializers: Vec<T>,
    /// The node rewritten, for messages: `Scaler 'name'`.
    pub rewritten: String,
}

impl<N, T> Lowering<N, T> {
    /// The same rewrite in other messages: `node` and `tensor` convert each node and initializer.
    ///
    /// # Errors
    /// The first error of a conversion.
    pub fn try_map<M, U, E>(
        self,
        node: impl FnMut(N) -> Result<M, E>,
        tensor: impl FnMut(T) -> Result<U, E>,
    ) -> Result<Lowering<M, U>, E> {
        Ok(Lowering {
            index: self.index,
            nodes: self.nodes.into_iter().map(node).collect::<Result<_, _>>()?,
            initializers: self.initializers.into_iter().map(tensor).collect::<Result<_, _>>()?,
            rewritten: self.rewritten,
        })
    }
}

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

/// The rewrite of a `Scaler` node (see the module docs).
fn lower_scaler(index: usize, n: &NodeProto) -> Result<Lowering, String> {
    let (Some(x), Some(y)) = (n.input.first(), n.output.first()) else {
        return Err(format!("Scaler node '{}' needs one input and one output", n.name));
    };
    let mut offset = floats_attr(n, "offset");
    let mut scale = floats_attr(n, "scale");
    if offset.is_empty() {
        offset.push(0.0);
    }
    if scale.is_empty() {
        scale.push(1.0);
    }
    let prefix = format!("{y}{INTERNAL_MARK}");
    let (n_offset, n_scale) = (offset.len() as i64, scale.len() as i64);
    let initializers = vec![
        TensorProto::from_f32(&format!("{prefix}offset"), &[n_offset], offset),
        TensorProto::from_f32(&format!("{prefix}scale"), &[n_scale], scale),
    ];
    let mut cast = node(
        "Cast",
        format!("{}{INTERNAL_MARK}cast", n.name),
        vec![x.clone()],
        format!("{prefix}float"),
    );
    cast.attribute.push(AttributeProto::int("to", i64::from(elem::FLOAT)));
    let nodes = vec![
        cast,
        node(
            "Sub",
            format!("{}{INTERNAL_MARK}sub", n.name),
            vec![format!("{prefix}float"), format!("{prefix}offset")],
            format!("{prefix}centred"),
        ),
        node(
            "Mul",
            n.name.clone(),
            vec![format!("{prefix}centred"), format!("{prefix}scale")],
            y.clone(),
        ),
    ];
    Ok(Lowering { index, nodes, initializers, rewritten: format!("Scaler '{}'", n.name) })
}

/// The rewrites of the operators listed in the module docs, in node order; the graph itself is
/// not changed.
///
/// # Errors
/// A message naming the first node to rewrite that is malformed.
pub fn lowerings(graph: &GraphProto) -> Result<Vec<Lowering>, String> {
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| n.op_type == "Scaler" && n.domain == "ai.onnx.ml")
        .map(|(i, n)| lower_scaler(i, n))
        .collect()
}

/// Applies rewrites to a graph's `nodes` and `initializers` (of any messages): each rewritten
/// node is replaced by its nodes, and its initializers are appended, in the order of the
/// rewrites; returns what was rewritten (`Scaler 'name'`).
///
/// The rewrites are those of [`lowerings`] on this graph (possibly converted): in increasing
/// node order, at most one per node.
pub fn apply_lowerings<N, T>(
    nodes: &mut Vec<N>,
    initializers: &mut Vec<T>,
    lowerings: Vec<Lowering<N, T>>,
) -> Vec<String> {
    if lowerings.is_empty() {
        return Vec::new();
    }
    let mut rewritten = Vec::with_capacity(lowerings.len());
    let mut lowerings = lowerings.into_iter().peekable();
    let original = std::mem::take(nodes);
    nodes.reserve(original.len());
    for (i, n) in original.into_iter().enumerate() {
        match lowerings.next_if(|l| l.index == i) {
            Some(l) => {
                nodes.extend(l.nodes);
                initializers.extend(l.initializers);
                rewritten.push(l.rewritten);
            }
            None => nodes.push(n),
        }
    }
    debug_assert!(lowerings.next().is_none(), "rewrites out of node order or past the graph");
    rewritten
}

/// Lowers the operators listed in the module docs; returns the nodes rewritten (`Scaler 'name'`).
///
/// # Errors
/// A message naming the node when a node to rewrite is malformed (the model is then unchanged).
pub fn lower_unsupported(proto: &mut ModelProto) -> Result<Vec<String>, String> {
    let Some(graph) = proto.graph.as_mut() else { return Ok(Vec::new()) };
    let lowered = lowerings(graph)?;
    Ok(apply_lowerings(&mut graph.node, &mut graph.initializer, lowered))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ValueInfoProto;

    fn scaler(name: &str, input: &str, output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            domain: "ai.onnx.ml".into(),
            ..NodeProto::new("Scaler", name, &[input], &[output], attrs)
        }
    }

    /// x [N, 3] (f64) > Scaler 'scale1' > Relu > Scaler 'scale2' (no attributes) > Identity.
    fn model() -> ModelProto {
        let graph = GraphProto {
            node: vec![
                scaler(
                    "scale1",
                    "x",
                    "scaled",
                    vec![
                        AttributeProto::floats("offset", &[1.0, 2.0, 3.0]),
                        AttributeProto::floats("scale", &[0.5]),
                    ],
                ),
                NodeProto::new("Relu", "relu", &["scaled"], &["relu"], vec![]),
                scaler("scale2", "relu", "again", vec![]),
                NodeProto::new("Identity", "out", &["again"], &["out"], vec![]),
            ],
            initializer: vec![TensorProto::from_f32("w", &[1], vec![2.0])],
            input: vec![ValueInfoProto::tensor("x", elem::DOUBLE, &[None, Some(3)])],
            output: vec![ValueInfoProto::tensor("out", elem::FLOAT, &[None, Some(3)])],
            ..Default::default()
        };
        ModelProto::new(graph, 13)
    }

    fn ops(graph: &GraphProto) -> Vec<(&str, &str, Vec<&str>, Vec<&str>)> {
        graph
            .node
            .iter()
            .map(|n| {
                (
                    n.op_type.as_str(),
                    n.name.as_str(),
                    n.input.iter().map(String::as_str).collect(),
                    n.output.iter().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn scalers_become_cast_sub_mul_in_place() {
        let mut m = model();
        let rewritten = lower_unsupported(&mut m).unwrap();
        assert_eq!(rewritten, ["Scaler 'scale1'", "Scaler 'scale2'"]);
        let g = m.graph.as_ref().unwrap();
        assert_eq!(
            ops(g),
            [
                ("Cast", "scale1__nnlens_cast", vec!["x"], vec!["scaled__nnlens_float"]),
                (
                    "Sub",
                    "scale1__nnlens_sub",
                    vec!["scaled__nnlens_float", "scaled__nnlens_offset"],
                    vec!["scaled__nnlens_centred"],
                ),
                (
                    "Mul",
                    "scale1",
                    vec!["scaled__nnlens_centred", "scaled__nnlens_scale"],
                    vec!["scaled"],
                ),
                ("Relu", "relu", vec!["scaled"], vec!["relu"]),
                ("Cast", "scale2__nnlens_cast", vec!["relu"], vec!["again__nnlens_float"]),
                (
                    "Sub",
                    "scale2__nnlens_sub",
                    vec!["again__nnlens_float", "again__nnlens_offset"],
                    vec!["again__nnlens_centred"],
                ),
                (
                    "Mul",
                    "scale2",
                    vec!["again__nnlens_centred", "again__nnlens_scale"],
                    vec!["again"],
                ),
                ("Identity", "out", vec!["again"], vec!["out"]),
            ]
        );
        // The new nodes are of the default domain; the Cast is to FLOAT.
        assert!(g.node.iter().all(|n| n.domain.is_empty()));
        assert_eq!(g.node[0].attribute, [AttributeProto::int("to", 1)]);
        assert!(g.node[1..3].iter().all(|n| n.attribute.is_empty()));
        // The attributes become initializers, appended in node order; missing ones are the
        // identity (offset 0, scale 1).
        assert_eq!(
            g.initializer,
            [
                TensorProto::from_f32("w", &[1], vec![2.0]),
                TensorProto::from_f32("scaled__nnlens_offset", &[3], vec![1.0, 2.0, 3.0]),
                TensorProto::from_f32("scaled__nnlens_scale", &[1], vec![0.5]),
                TensorProto::from_f32("again__nnlens_offset", &[1], vec![0.0]),
                TensorProto::from_f32("again__nnlens_scale", &[1], vec![1.0]),
            ]
        );
        // The layers keep their names; what the rewrite added is not a layer.
        let info = crate::read_graph(&m).unwrap();
        let tensors: Vec<&str> = info.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tensors, ["scaled", "relu", "again", "out"]);
    }

    #[test]
    fn only_ai_onnx_ml_scalers_are_rewritten() {
        let mut m = model();
        for n in &mut m.graph.as_mut().unwrap().node {
            n.domain.clear();
        }
        let before = m.clone();
        assert!(lower_unsupported(&mut m).unwrap().is_empty());
        assert_eq!(m, before);
        let mut empty = ModelProto::default();
        assert!(lower_unsupported(&mut empty).unwrap().is_empty());
        assert_eq!(empty, ModelProto::default());
    }

    #[test]
    fn a_malformed_scaler_is_named_and_the_model_left_as_it_was() {
        let mut m = model();
        m.graph.as_mut().unwrap().node[2].output.clear();
        let before = m.clone();
        assert_eq!(
            lower_unsupported(&mut m).unwrap_err(),
            "Scaler node 'scale2' needs one input and one output"
        );
        assert_eq!(m, before);
        m.graph.as_mut().unwrap().node[2] = scaler("s", "", "y", vec![]);
        m.graph.as_mut().unwrap().node[2].input.clear();
        assert_eq!(
            lowerings(m.graph.as_ref().unwrap()).unwrap_err(),
            "Scaler node 's' needs one input and one output"
        );
    }

    #[test]
    fn lowerings_apply_to_other_messages_as_to_these() {
        let m = model();
        let graph = m.graph.as_ref().unwrap();
        let plan = lowerings(graph).unwrap();
        assert_eq!(plan.iter().map(|l| l.index).collect::<Vec<_>>(), [0, 2]);
        // Other messages: a node as its name, a tensor as its name.
        let mut names: Vec<String> = graph.node.iter().map(|n| n.name.clone()).collect();
        let mut inits: Vec<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
        let converted = plan
            .iter()
            .cloned()
            .map(|l| l.try_map(|n| Ok::<_, ()>(n.name), |t| Ok(t.name)))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let rewritten = apply_lowerings(&mut names, &mut inits, converted);

        let mut lowered = m.clone();
        assert_eq!(lower_unsupported(&mut lowered).unwrap(), rewritten);
        let g = lowered.graph.as_ref().unwrap();
        assert_eq!(names, g.node.iter().map(|n| n.name.clone()).collect::<Vec<_>>());
        assert_eq!(inits, g.initializer.iter().map(|t| t.name.clone()).collect::<Vec<_>>());
        // A conversion's error comes back as it is.
        let failed = plan[0].clone().try_map(|_| Err::<(), _>("no"), |_| Ok(()));
        assert_eq!(failed.unwrap_err(), "no");
    }
}
