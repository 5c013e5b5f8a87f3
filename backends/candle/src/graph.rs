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
            for s in inputs.iter().flatten() {
                if float_inits.contains_key(s) && seen.insert(*s) {
                    used_order.push(*s);
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

        // Trainable parameters: float initializers in order of first use (Keras' layer order
        // for tf2onnx exports); unused ones are not part of the model.
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
