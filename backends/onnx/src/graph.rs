//! Reading the layer structure of an ONNX graph: which tensors are layers, what users call them,
//! in which order they come, and where their channel axis is.
//!
//! Rules (every nnlens ONNX backend follows them, so layer names agree across backends):
//! - every node output is a candidate (except those a rewrite added, marked with
//!   [`crate::INTERNAL_MARK`]); those with a floating-point type whose first axis follows the
//!   batch size are activations (shape tensors, labels and constants are not);
//! - a tensor's *layer name* is the middle of an exporter's scoped name: `model/conv_1/BiasAdd:0`
//!   (tf2onnx) gives `conv_1`, `/layer1/0/conv1/Conv_output_0` (PyTorch) gives `layer1/0/conv1`;
//!   an unscoped name is its own layer name;
//! - the tensors of one layer name form a layer; its tensor is the one whose name *is* the layer
//!   name (an exporter's named output) or else the last one computed (the layer's output);
//! - layers come in evaluation order; an `Identity`/`Dropout` alias sits right after what it
//!   copies (exporters append them at the end of the graph);
//! - the channel axis is 1 on the outputs of convolution, pooling and normalisation operators
//!   (ONNX's NCHW convention) and on the inputs they read, follows `Transpose` permutations and is
//!   kept by element-wise operators; for the model input it is guessed from the shape (a last axis
//!   of at most 4 beside spatial axes larger than 4 is a channel axis, and likewise a first one);
//! - the model's output is the last graph output that is a vector per sample (class scores),
//!   else the first graph output that is an activation, else the last layer.

use std::collections::HashMap;

use nnlens_core::{InputStructure, LayerStructure, ModelStructure};

use crate::proto as pb;

/// Operators whose data input and output have the channel on axis 1.
const CHANNEL_FIRST_OPS: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "ConvInteger",
    "QLinearConv",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "GlobalLpPool",
    "LpPool",
    "BatchNormalization",
    "InstanceNormalization",
    "LRN",
    "MaxRoiPool",
];

/// Operators that keep the layout of their (first) input.
const LAYOUT_PRESERVING_OPS: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Celu",
    "Gelu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Softplus",
    "Softsign",
    "Mish",
    "Clip",
    "Identity",
    "Dropout",
    "Cast",
    "Neg",
    "Abs",
    "Exp",
    "Log",
    "Sqrt",
    "Erf",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Max",
    "Min",
    "Mean",
    "Sum",
    "Where",
    "Pad",
    "Resize",
    "Upsample",
    "Concat",
    "ThresholdedRelu",
    "Shrink",
    "QuantizeLinear",
    "DequantizeLinear",
];

/// Operators that are aliases of their input: placed right after it in the layer order.
const ALIAS_OPS: &[&str] = &["Identity", "Dropout"];

/// One node output of the graph.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// The operator of the node that computes it.
    pub op: String,
    /// The index of that node in the graph.
    pub node: usize,
    /// Sort key for the layer order.
    pub position: f64,
    /// Its layer name (see the module docs).
    pub layer_name: String,
}

/// What the graph itself says: input, node outputs, graph outputs.
#[derive(Debug, Clone)]
pub struct GraphInfo {
    /// The name of the model's (only) input.
    pub input_name: String,
    /// Per-sample input dimensions (the batch axis removed); `None` where symbolic.
    pub input_sample_dims: Vec<Option<usize>>,
    /// ONNX element type of the input.
    pub input_elem_type: i32,
    /// Every node output, in node order.
    pub tensors: Vec<TensorInfo>,
    /// The graph outputs' names.
    pub outputs: Vec<String>,
    nodes: Vec<NodeView>,
}

#[derive(Debug, Clone)]
struct NodeView {
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    perm: Option<Vec<usize>>,
}

/// Reads what the graph says about its input, tensors and outputs.
///
/// # Errors
/// A message when the file has no graph, the graph has no input or several, or the input is
/// not a tensor with a declared shape.
pub fn read_graph(proto: &pb::ModelProto) -> Result<GraphInfo, String> {
    let graph = proto.graph.as_ref().ok_or("the file has no graph")?;
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> =
        graph.input.iter().filter(|i| !initializers.contains(i.name.as_str())).collect();
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => return Err("the graph has no input".into()),
        many => {
            return Err(format!(
                "the graph has {} inputs ({}); nnlens models take one input",
                many.len(),
                many.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    };
    let tensor_type = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t,
        _ => return Err(format!("input '{}' is not a tensor", input.name)),
    };
    let dims = tensor_type.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or(&[]);
    if dims.is_empty() {
        return Err(format!("input '{}' has no declared shape (need [batch, ...])", input.name));
    }
    let input_sample_dims = dims[1..]
        .iter()
        .map(|d| match d.value {
            Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => {
                Some(v as usize)
            }
            _ => None,
        })
        .collect();

    let nodes: Vec<NodeView> = graph
        .node
        .iter()
        .map(|n| NodeView {
            op: n.op_type.clone(),
            inputs: n.input.clone(),
            outputs: n.output.iter().filter(|o| !o.is_empty()).cloned().collect(),
            perm: n
                .attribute
                .iter()
                .find(|a| a.name == "perm")
                .map(|a| a.ints.iter().map(|&i| i.max(0) as usize).collect()),
        })
        .collect();

    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in &n.outputs {
            producer.insert(o.as_str(), i);
        }
    }
    // Aliases sit right after what they copy; everything else at its node index.
    let mut positions = vec![0.0f64; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        positions[i] = if ALIAS_OPS.contains(&n.op.as_str()) {
            match n.inputs.first().and_then(|x| producer.get(x.as_str())) {
                Some(&p) if p < i => positions[p] + 0.5,
                _ => i as f64,
            }
        } else {
            i as f64
        };
    }
    let tensors = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            let positions = &positions;
            n.outputs.iter().filter(|o| !o.contains(crate::INTERNAL_MARK)).map(move |o| {
                TensorInfo {
                    name: o.clone(),
                    op: n.op.clone(),
                    node: i,
                    position: positions[i],
                    layer_name: layer_name_of(o),
                }
            })
        })
        .collect();
    Ok(GraphInfo {
        input_name: input.name.clone(),
        input_sample_dims,
        input_elem_type: tensor_type.elem_type,
        tensors,
        outputs: graph.output.iter().map(|o| o.name.clone()).collect(),
        nodes,
    })
}

/// The layer name of a tensor name (see the module docs).
pub fn layer_name_of(tensor: &str) -> String {
    let base = match tensor.rsplit_once(':') {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => tensor,
    };
    let parts: Vec<&str> = base.split('/').collect();
    if parts.len() >= 3 {
        let middle = parts[1..parts.len() - 1].join("/");
        if !middle.is_empty() {
            return middle;
        }
    }
    base.to_string()
}

impl GraphInfo {
    /// The model's input as nnlens describes it: `f32` (ONNX FLOAT) or `f64` (DOUBLE), every
    /// axis but the batch of known size, the channel axis guessed from the shape.
    ///
    /// # Errors
    /// A message for another element type or a symbolic axis after the batch.
    pub fn input_structure(&self) -> Result<InputStructure, String> {
        let dtype = match self.input_elem_type {
            pb::elem::FLOAT => "f32",
            pb::elem::DOUBLE => "f64",
            t => {
                return Err(format!(
                    "input element type {} is not supported (FLOAT or DOUBLE)",
                    pb::elem::name(t)
                ));
            }
        };
        let shape: Vec<usize> = self
            .input_sample_dims
            .iter()
            .enumerate()
            .map(|(i, d)| {
                d.ok_or_else(|| {
                    format!("input axis {} is symbolic; only the batch axis may be", i + 1)
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(InputStructure {
            name: self.input_name.clone(),
            channel_axis: guess_sample_channel_axis(&shape),
            shape,
            dtype: dtype.into(),
        })
    }
}

/// Guesses the channel axis of a per-sample image shape (see the module docs).
pub fn guess_sample_channel_axis(sample: &[usize]) -> Option<usize> {
    if sample.len() < 2 {
        return None;
    }
    let last = sample.len() - 1;
    let spatial_large = |range: std::ops::Range<usize>| sample[range].iter().all(|&d| d > 4);
    if sample[last] <= 4 && spatial_large(0..last) {
        Some(last)
    } else if sample[0] <= 4 && spatial_large(1..sample.len()) {
        Some(0)
    } else {
        None
    }
}

impl GraphInfo {
    /// The channel axis (counting the batch axis) of every tensor, given the ranks (with the
    /// batch axis) of the tensors whose shapes are known.
    pub fn channel_axes(
        &self,
        ranks: &HashMap<String, usize>,
        input_channel: Option<usize>,
    ) -> HashMap<String, usize> {
        let mut axes: HashMap<String, usize> = HashMap::new();
        if let Some(c) = input_channel {
            axes.insert(self.input_name.clone(), c + 1);
        }
        let rank = |name: &str| ranks.get(name).copied();
        // Backward: what a convolution or pooling reads is channels-first.
        for n in &self.nodes {
            if CHANNEL_FIRST_OPS.contains(&n.op.as_str())
                && let Some(x) = n.inputs.first()
                && rank(x).is_some_and(|r| r >= 3)
            {
                axes.entry(x.clone()).or_insert(1);
            }
        }
        // Forward, in evaluation order.
        for n in &self.nodes {
            let first_in = n.inputs.first().and_then(|x| axes.get(x).copied().map(|a| (x, a)));
            for o in &n.outputs {
                if axes.contains_key(o) {
                    continue;
                }
                let out_rank = rank(o);
                let axis = if CHANNEL_FIRST_OPS.contains(&n.op.as_str()) {
                    out_rank.filter(|&r| r >= 3).map(|_| 1)
                } else if n.op == "Transpose" {
                    match (first_in, &n.perm) {
                        (Some((_, a)), Some(perm)) => perm.iter().position(|&p| p == a),
                        _ => None,
                    }
                } else if LAYOUT_PRESERVING_OPS.contains(&n.op.as_str()) {
                    n.inputs
                        .iter()
                        .filter(|x| rank(x) == out_rank)
                        .find_map(|x| axes.get(x).copied())
                } else {
                    None
                };
                if let Some(a) = axis {
                    axes.insert(o.clone(), a);
                }
            }
        }
        axes
    }
}

/// What an engine found out about one node output, by typing or running the graph at batch
/// sizes 1 and 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorFact {
    /// Whether its element type is a floating-point type.
    pub is_float: bool,
    /// Its shape at batch size 1, where known.
    pub at_batch_1: Option<Vec<usize>>,
    /// Its shape at batch size 2, where known.
    pub at_batch_2: Option<Vec<usize>>,
}

impl TensorFact {
    /// The shape at batch size 1 when the tensor is an activation: floating-point, first axis
    /// the batch size, other axes independent of it.
    pub fn activation_shape(&self) -> Option<&[usize]> {
        match (&self.at_batch_1, &self.at_batch_2) {
            (Some(s1), Some(s2))
                if self.is_float
                    && !s1.is_empty()
                    && s1.len() == s2.len()
                    && s1[0] == 1
                    && s2[0] == 2
                    && s1[1..] == s2[1..] =>
            {
                Some(s1)
            }
            _ => None,
        }
    }
}

/// The layers of a model as nnlens names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    /// The model's structure: its input, layers and output layer.
    pub structure: ModelStructure,
    /// Every activation tensor, also those that are not the chosen tensor of a layer.
    pub tensors: Vec<LayerStructure>,
}

/// Groups the activation tensors into layers (see the module docs), given what the engine
/// found about every tensor of [`GraphInfo::tensors`] (`facts[i]` is about `graph.tensors[i]`).
///
/// # Errors
/// A message when `facts` does not match the graph's tensors or no tensor is an activation.
pub fn build_layers(
    graph: &GraphInfo,
    input: &InputStructure,
    facts: &[TensorFact],
) -> Result<Layers, String> {
    if facts.len() != graph.tensors.len() {
        return Err(format!(
            "{} tensor facts for the graph's {} tensors",
            facts.len(),
            graph.tensors.len()
        ));
    }
    let mut shapes: HashMap<&str, &[usize]> = HashMap::new();
    for (t, fact) in graph.tensors.iter().zip(facts) {
        if let Some(s) = fact.activation_shape() {
            shapes.insert(t.name.as_str(), s);
        }
    }
    let ranks: HashMap<String, usize> =
        shapes.iter().map(|(k, v)| (k.to_string(), v.len())).collect();
    let axes = graph.channel_axes(&ranks, input.channel_axis);

    let to_layer = |name: &str, t: &TensorInfo| {
        let full = shapes[t.name.as_str()];
        LayerStructure {
            name: name.to_string(),
            tensor: t.name.clone(),
            op: t.op.clone(),
            shape: full[1..].to_vec(),
            channel_axis: axes.get(&t.name).and_then(|&a| a.checked_sub(1)),
        }
    };
    let kept: Vec<&TensorInfo> =
        graph.tensors.iter().filter(|t| shapes.contains_key(t.name.as_str())).collect();
    if kept.is_empty() {
        return Err("no floating-point activation with a batch axis was found".into());
    }
    let tensors = kept.iter().map(|t| to_layer(&t.name, t)).collect();

    // Group by layer name; order by the first member's position.
    let mut groups: Vec<(String, Vec<&TensorInfo>)> = Vec::new();
    for t in &kept {
        match groups.iter_mut().find(|(n, _)| *n == t.layer_name) {
            Some((_, members)) => members.push(t),
            None => groups.push((t.layer_name.clone(), vec![t])),
        }
    }
    let key = |members: &[&TensorInfo]| {
        members
            .iter()
            .map(|t| (t.position, t.node))
            .fold((f64::INFINITY, usize::MAX), |a, b| if b.0 < a.0 { b } else { a })
    };
    groups.sort_by(|a, b| {
        let (ka, kb) = (key(&a.1), key(&b.1));
        ka.0.total_cmp(&kb.0).then(ka.1.cmp(&kb.1))
    });
    let layers: Vec<LayerStructure> = groups
        .iter()
        .filter_map(|(name, members)| {
            let chosen = members
                .iter()
                .find(|t| t.name == *name)
                .or_else(|| members.iter().max_by_key(|t| t.node))?;
            Some(to_layer(name, chosen))
        })
        .collect();
    // The model's output: the last graph output that is a vector per sample (class scores;
    // files that export every layer list the final one last), else the first graph output
    // that is an activation, else the last layer.
    let output_layers: Vec<usize> = graph
        .outputs
        .iter()
        .filter_map(|o| {
            layers
                .iter()
                .position(|l| l.tensor == *o)
                .or_else(|| groups.iter().position(|(_, m)| m.iter().any(|t| t.name == *o)))
        })
        .collect();
    let output = output_layers
        .iter()
        .copied()
        .rfind(|&i| layers[i].shape.len() == 1)
        .or(output_layers.first().copied())
        .unwrap_or(layers.len() - 1);
    let structure =
        ModelStructure::new(input.clone(), layers, output).map_err(|e| e.to_string())?;
    Ok(Layers { structure, tensors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_from_exporters() {
        assert_eq!(layer_name_of("model/conv_1/BiasAdd:0"), "conv_1");
        assert_eq!(layer_name_of("model/conv_1/BiasAdd__6:0"), "conv_1");
        assert_eq!(layer_name_of("/conv1/Conv_output_0"), "conv1");
        assert_eq!(layer_name_of("/layer1/layer1.0/conv1/Conv_output_0"), "layer1/layer1.0/conv1");
        assert_eq!(layer_name_of("softmax"), "softmax");
        assert_eq!(layer_name_of("a/b"), "a/b");
        assert_eq!(layer_name_of("x:y"), "x:y");
    }

    #[test]
    fn input_channel_guess() {
        assert_eq!(guess_sample_channel_axis(&[28, 28, 1]), Some(2));
        assert_eq!(guess_sample_channel_axis(&[3, 32, 32]), Some(0));
        assert_eq!(guess_sample_channel_axis(&[28, 28]), None);
        assert_eq!(guess_sample_channel_axis(&[784]), None);
        assert_eq!(guess_sample_channel_axis(&[2, 2, 2]), None);
    }
}
