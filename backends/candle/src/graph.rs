//! An ONNX graph compiled for candle: every tensor name a slot, initializers and constants
//! evaluated once, nodes with parsed operators, evaluated in file order and only where needed.

use std::collections::{HashMap, HashSet};

use candle_core::{DType, Tensor, Var};
use nnlens_core::Parameter;
use nnlens_onnx::proto::{GraphProto, ModelProto, elem};

use crate::error::{CandleError, Result};
use crate::ops::{CompileError, Op, constant_value, tensor_value};
use crate::value::Value;

/// A node ready to run.
#[derive(Debug)]
pub(crate) struct Node {
    /// The node's name (its first output's name when it has none).
    pub name: String,
    /// The ONNX operator.
    pub op_type: String,
    /// The parsed operator.
    pub op: Op,
    /// Input slots (`None` for omitted optional inputs).
    pub inputs: Vec<Option<usize>>,
    /// Output slots (`None` for omitted outputs).
    pub outputs: Vec<Option<usize>>,
}

/// The compiled graph.
#[derive(Debug)]
pub(crate) struct Graph {
    /// Every tensor name, by slot.
    pub names: Vec<String>,
    slot_of: HashMap<String, usize>,
    /// Initializers and constants, by slot.
    consts: Vec<Option<Value>>,
    /// The input's slot.
    pub input: usize,
    /// Nodes that run (Constant nodes are folded into `consts`).
    pub nodes: Vec<Node>,
    /// The node producing each slot.
    producer: Vec<Option<usize>>,
    /// The trainable tensors, in `parameters` order.
    pub vars: Vec<Var>,
    /// Their names and shapes.
    pub parameters: Vec<Parameter>,
    /// The compute precision.
    pub dtype: DType,
}

/// Whether input `k` of an operator is a constant of the model rather than a weight: the
/// running mean and variance of `BatchNormalization` (inputs 3 and 4: buffers in PyTorch,
/// non-trainable in Keras), the bounds of `Clip` (inputs 1 and 2) and the fill value of `Pad`
/// (input 2).
pub(crate) fn is_constant_input(op_type: &str, k: usize) -> bool {
    matches!((op_type, k), ("BatchNormalization", 3 | 4) | ("Clip", 1 | 2) | ("Pad", 2))
}

fn node_name(n: &nnlens_onnx::proto::NodeProto) -> String {
    if !n.name.is_empty() { n.name.clone() } else { n.output.first().cloned().unwrap_or_default() }
}

impl Graph {
    /// Compiles a model: checks every operator, loads initializers (float ones become
    /// [`Var`]s, ordered by first use) and folds Constant nodes.
    pub fn compile(
        proto: &ModelProto,
        input_name: &str,
        dtype: DType,
        label: &str,
        selection: Option<&[String]>,
    ) -> Result<Self> {
        let invalid = |message: String| CandleError::Invalid { label: label.into(), message };
        let graph: &GraphProto =
            proto.graph.as_ref().ok_or_else(|| invalid("the file has no graph".into()))?;
        let opset = proto.default_opset().unwrap_or(13);
        let mut g = Graph {
            names: Vec::new(),
            slot_of: HashMap::new(),
            consts: Vec::new(),
            input: 0,
            nodes: Vec::new(),
            producer: Vec::new(),
            vars: Vec::new(),
            parameters: Vec::new(),
            dtype,
        };
        g.input = g.slot(input_name);

        // Initializers.
        if let Some(t) = graph.initializer.iter().find(|t| t.data_type == elem::STRING) {
            return Err(invalid(format!("initializer '{}' holds strings", t.name)));
        }
        let mut float_inits: HashMap<usize, Tensor> = HashMap::new();
        for t in &graph.initializer {
            let value = tensor_value(t, dtype)
                .map_err(|m| invalid(format!("initializer '{}': {m}", t.name)))?;
            let s = g.slot(&t.name);
            match value {
                Value::Float(tensor) if !t.name.contains(nnlens_onnx::INTERNAL_MARK) => {
                    float_inits.insert(s, tensor);
                }
                other => g.consts[s] = Some(other),
            }
        }

        // Nodes: operators checked, constants folded, producers recorded.
        let mut used_order: Vec<usize> = Vec::new();
        let mut seen: HashSet<usize> = HashSet::new();
        // The layer of each float initializer's first use, and those used as a weight (not
        // only as running statistics or bounds).
        let mut layer_of: HashMap<usize, String> = HashMap::new();
        let mut weight: HashSet<usize> = HashSet::new();
        for n in &graph.node {
            let name = node_name(n);
            let op_label = if n.domain.is_empty() || n.domain == "ai.onnx" {
                n.op_type.clone()
            } else {
                format!("{}.{}", n.domain, n.op_type)
            };
            if n.op_type == "Constant" && (n.domain.is_empty() || n.domain == "ai.onnx") {
                let value = constant_value(n, dtype).map_err(|message| CandleError::Node {
                    label: label.into(),
                    node: name.clone(),
                    op: op_label.clone(),
                    message,
                })?;
                let out = n
                    .output
                    .first()
                    .ok_or_else(|| invalid(format!("Constant '{name}' has no output")))?;
                let s = g.slot(out);
                g.consts[s] = Some(value);
                continue;
            }
            // An Identity of an initializer (how the TorchScript exporter shares one stored
            // tensor between equal parameters) is a tensor of its own, named as the module's
            // parameter: PyTorch differentiates each parameter separately.
            let alias_of = match (n.op_type.as_str(), n.domain.is_empty(), &n.input[..]) {
                ("Identity", true, [input]) => g.slot_of.get(input).copied(),
                _ => None,
            };
            if let (Some(from), Some(out)) = (alias_of, n.output.first())
                && from != g.input
                && g.producer[from].is_none()
            {
                let to = g.slot(out);
                if let Some(t) = float_inits.get(&from).cloned() {
                    float_inits.insert(to, t);
                    continue;
                }
                if let Some(v) = g.consts[from].clone() {
                    g.consts[to] = Some(v);
                    continue;
                }
            }
            let op = Op::compile(n, opset).map_err(|e| match e {
                CompileError::Unsupported(u) => CandleError::Unsupported {
                    label: label.into(),
                    op: op_label.clone(),
                    node: name.clone(),
                    detail: u.0.map(|d| format!(": {d}")).unwrap_or_default(),
                },
                CompileError::Invalid(message) => CandleError::Node {
                    label: label.into(),
                    node: name.clone(),
                    op: op_label.clone(),
                    message,
                },
            })?;
            let inputs: Vec<Option<usize>> = n
                .input
                .iter()
                .map(|i| {
                    if i.is_empty() {
                        return Ok(None);
                    }
                    match g.slot_of.get(i) {
                        Some(&s) => Ok(Some(s)),
                        None => Err(invalid(format!(
                            "node '{name}' reads '{i}', which no node, initializer or input defines before it"
                        ))),
                    }
                })
                .collect::<Result<_>>()?;
            for (k, s) in inputs.iter().enumerate() {
                let Some(s) = s else { continue };
                if !float_inits.contains_key(s) {
                    continue;
                }
                if seen.insert(*s) {
                    used_order.push(*s);
                    let first = n.output.first().map_or(name.as_str(), String::as_str);
                    layer_of.insert(*s, nnlens_onnx::layer_name_of(first));
                }
                if !is_constant_input(&n.op_type, k) {
                    weight.insert(*s);
                }
            }
            let index = g.nodes.len();
            let outputs: Vec<Option<usize>> = n
                .output
                .iter()
                .map(|o| {
                    if o.is_empty() {
                        None
                    } else {
                        let s = g.slot(o);
                        g.producer[s] = Some(index);
                        Some(s)
                    }
                })
                .collect();
            g.nodes.push(Node { name, op_type: op_label, op, inputs, outputs });
        }

        // Trainable parameters: float initializers used as weights, in order of first use
        // (Keras' layer order for tf2onnx exports); unused ones are not part of the model, and
        // running statistics and bounds are constants. A selection keeps those it names.
        used_order.retain(|s| weight.contains(s));
        if let Some(patterns) = selection {
            let tensors: Vec<(String, String)> = used_order
                .iter()
                .map(|&s| (g.names[s].clone(), layer_of.get(&s).cloned().unwrap_or_default()))
                .collect();
            let keep = nnlens_core::select_parameters(patterns, &tensors)
                .map_err(|e| invalid(e.to_string()))?;
            let mut keep = keep.into_iter();
            used_order.retain(|_| keep.next().unwrap_or(false));
        }
        for s in used_order {
            let tensor = float_inits.remove(&s).expect("recorded when inserted");
            let var = Var::from_tensor(&tensor).map_err(|e| invalid(e.to_string()))?;
            g.parameters
                .push(Parameter { name: g.names[s].clone(), shape: tensor.dims().to_vec() });
            g.consts[s] = Some(Value::Float(var.as_tensor().clone()));
            g.vars.push(var);
        }
        for (s, tensor) in float_inits {
            g.consts[s] = Some(Value::Float(tensor));
        }
        Ok(g)
    }

    fn slot(&mut self, name: &str) -> usize {
        if let Some(&s) = self.slot_of.get(name) {
            return s;
        }
        let s = self.names.len();
        self.names.push(name.to_string());
        self.slot_of.insert(name.to_string(), s);
        self.consts.push(None);
        self.producer.push(None);
        s
    }

    /// The slot of a tensor name.
    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.slot_of.get(name).copied()
    }

    /// The node that produces a slot.
    pub fn producer(&self, slot: usize) -> Option<&Node> {
        self.producer.get(slot).copied().flatten().map(|i| &self.nodes[i])
    }

    /// Runs the nodes needed for `wanted` (all nodes when `None`) on input `x`; returns every
    /// slot's value (`None` for slots not computed).
    pub fn run(
        &self,
        x: Tensor,
        wanted: Option<&[usize]>,
        label: &str,
    ) -> Result<Vec<Option<Value>>> {
        let needed = match wanted {
            None => vec![true; self.nodes.len()],
            Some(w) => self.needed(w),
        };
        let mut values: Vec<Option<Value>> = vec![None; self.names.len()];
        values[self.input] = Some(Value::Float(x));
        for (node, _) in self.nodes.iter().zip(&needed).filter(|(_, n)| **n) {
            let inputs: Vec<Option<&Value>> = node
                .inputs
                .iter()
                .map(|s| s.and_then(|s| values[s].as_ref().or(self.consts[s].as_ref())))
                .collect();
            let outputs =
                node.op.eval(&inputs, self.dtype).map_err(|message| CandleError::Node {
                    label: label.into(),
                    node: node.name.clone(),
                    op: node.op_type.clone(),
                    message,
                })?;
            for (slot, value) in node.outputs.iter().zip(outputs) {
                if let Some(s) = slot {
                    values[*s] = Some(value);
                }
            }
        }
        // Wanted slots that are constants.
        if let Some(w) = wanted {
            for &s in w {
                if values[s].is_none() {
                    values[s] = self.consts[s].clone();
                }
            }
        }
        Ok(values)
    }

    /// Which nodes the slots `wanted` depend on.
    fn needed(&self, wanted: &[usize]) -> Vec<bool> {
        let mut needed = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = wanted.iter().filter_map(|&s| self.producer[s]).collect();
        while let Some(n) = stack.pop() {
            if needed[n] {
                continue;
            }
            needed[n] = true;
            stack.extend(self.nodes[n].inputs.iter().flatten().filter_map(|&s| self.producer[s]));
        }
        needed
    }
}
