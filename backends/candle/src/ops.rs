//! The ONNX operators the candle backend runs: attributes parsed and checked once, when the
//! model is loaded (an operator or a form of one that is not implemented is an
//! [`Unsupported`] there), and evaluated on [`Value`]s.
//!
//! Floating-point tensors go through candle operations (so they are differentiable); integer
//! tensors (shapes, indices, labels) are computed on the host.

use candle_core::{D, DType, Device, Tensor};
use nnlens_onnx::proto::{AttributeProto, NodeProto, TensorProto, attribute_type, elem};

use crate::custom::{MaxPool2d, Relu};
use crate::linalg::{Conv2d, MatMul};
use crate::value::{Ints, Value, axis, int_binary};

/// Why a node cannot be compiled: the operator is unknown, or an attribute asks for a form of it
/// that is not implemented (the detail says which).
#[derive(Debug)]
pub(crate) struct Unsupported(pub Option<String>);

/// A node that failed to compile for a reason other than support (a malformed attribute).
#[derive(Debug)]
pub(crate) enum CompileError {
    Unsupported(Unsupported),
    Invalid(String),
}

impl From<String> for CompileError {
    fn from(s: String) -> Self {
        CompileError::Invalid(s)
    }
}

fn unsupported(detail: impl Into<String>) -> CompileError {
    CompileError::Unsupported(Unsupported(Some(detail.into())))
}

/// How a convolution or pooling pads its input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Padding {
    /// Explicit: top, left, bottom, right.
    Explicit([usize; 4]),
    /// `SAME_UPPER` (extra padding at the end) or `SAME_LOWER` (at the start).
    Same { upper: bool },
}

impl Padding {
    fn resolve(
        &self,
        input: [usize; 2],
        kernel: [usize; 2],
        strides: [usize; 2],
        dilations: [usize; 2],
    ) -> [usize; 4] {
        match self {
            Padding::Explicit(p) => *p,
            Padding::Same { upper } => {
                let mut p = [0; 4];
                for a in 0..2 {
                    let out = input[a].div_ceil(strides[a]);
                    let extent = (kernel[a] - 1) * dilations[a] + 1;
                    let total = ((out - 1) * strides[a] + extent).saturating_sub(input[a]);
                    let small = total / 2;
                    let (begin, end) =
                        if *upper { (small, total - small) } else { (total - small, small) };
                    p[a] = begin;
                    p[a + 2] = end;
                }
                p
            }
        }
    }
}

/// The operators and their parsed attributes.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Conv {
        padding: Padding,
        strides: [usize; 2],
        dilations: [usize; 2],
        group: usize,
    },
    MaxPool {
        kernel: [usize; 2],
        padding: Padding,
        strides: [usize; 2],
        dilations: [usize; 2],
        ceil: bool,
    },
    GlobalAveragePool,
    AveragePool {
        kernel: [usize; 2],
        padding: Padding,
        strides: [usize; 2],
        count_include_pad: bool,
    },
    /// Inference-mode batch normalisation over axis 1.
    BatchNormalization {
        epsilon: f64,
    },
    /// Bounds from the attributes (opset < 11) or else from inputs 1 and 2.
    Clip {
        bounds: Option<(f64, f64)>,
    },
    /// Constant (`edge: false`) or edge padding; pads and value from the attributes (opset
    /// < 11) or else from inputs 1 and 2.
    Pad {
        edge: bool,
        attrs: Option<(Vec<i64>, f64)>,
    },
    Relu,
    LeakyRelu(f64),
    /// `max(0, min(1, alpha x + beta))`.
    HardSigmoid {
        alpha: f64,
        beta: f64,
    },
    /// `x * HardSigmoid(x)` with alpha 1/6 and beta 1/2 (PyTorch's `hardswish`).
    HardSwish,
    /// The mean over axes from the attribute (opset < 18) or input 1, or over every axis.
    ReduceMean {
        axes: Option<Vec<i64>>,
        keep_dims: bool,
        noop_with_empty_axes: bool,
    },
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Neg,
    Sqrt,
    Abs,
    Gemm {
        alpha: f64,
        beta: f64,
        trans_a: bool,
        trans_b: bool,
    },
    MatMul,
    Add,
    Sub,
    Mul,
    Div,
    Reshape {
        allow_zero: bool,
    },
    Flatten {
        axis: i64,
    },
    Transpose {
        perm: Option<Vec<usize>>,
    },
    Softmax {
        axis: i64,
        legacy: bool,
        log: bool,
    },
    Identity,
    Dropout,
    Cast {
        to: i32,
    },
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Gather {
        axis: i64,
    },
    Concat {
        axis: i64,
    },
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    ArgMax {
        axis: i64,
        keep_dims: bool,
        select_last: bool,
    },
    ArrayFeatureExtractor,
}

fn ints_attr(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute(name).map(|a| a.ints.clone())
}

fn int_attr(node: &NodeProto, name: &str, default: i64) -> i64 {
    node.attribute(name).map_or(default, |a| a.i)
}

fn float_attr(node: &NodeProto, name: &str, default: f64) -> f64 {
    node.attribute(name).map_or(default, |a| f64::from(a.f))
}

fn string_attr(node: &NodeProto, name: &str) -> Option<String> {
    node.attribute(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
}

fn pair(v: Option<Vec<i64>>, default: usize, what: &str) -> Result<[usize; 2], CompileError> {
    match v {
        None => Ok([default; 2]),
        Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 1) => Ok([v[0] as usize, v[1] as usize]),
        Some(v) if v.len() != 2 => {
            Err(unsupported(format!("{what} {v:?}: only 2-D (two spatial axes) is implemented")))
        }
        Some(v) => Err(CompileError::Invalid(format!("{what} {v:?} must be positive"))),
    }
}

fn padding(node: &NodeProto) -> Result<Padding, CompileError> {
    match string_attr(node, "auto_pad").as_deref() {
        None | Some("NOTSET") | Some("") => match ints_attr(node, "pads") {
            None => Ok(Padding::Explicit([0; 4])),
            Some(p) if p.len() == 4 && p.iter().all(|&x| x >= 0) => {
                Ok(Padding::Explicit([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]))
            }
            Some(p) if p.len() != 4 => {
                Err(unsupported(format!("pads {p:?}: only 2-D (four pads) is implemented")))
            }
            Some(p) => Err(CompileError::Invalid(format!("negative pads {p:?}"))),
        },
        Some("VALID") => Ok(Padding::Explicit([0; 4])),
        Some("SAME_UPPER") => Ok(Padding::Same { upper: true }),
        Some("SAME_LOWER") => Ok(Padding::Same { upper: false }),
        Some(other) => Err(CompileError::Invalid(format!("unknown auto_pad '{other}'"))),
    }
}

impl Op {
    /// Parses a node of the default domain (or `ai.onnx.ml`); `opset` is the default domain's
    /// version (for operators whose attributes moved to inputs).
    pub fn compile(node: &NodeProto, opset: i64) -> Result<Op, CompileError> {
        let domain = node.domain.as_str();
        if domain == "ai.onnx.ml" {
            return match node.op_type.as_str() {
                "ArrayFeatureExtractor" => Ok(Op::ArrayFeatureExtractor),
                _ => Err(CompileError::Unsupported(Unsupported(None))),
            };
        }
        if !(domain.is_empty() || domain == "ai.onnx") {
            return Err(CompileError::Unsupported(Unsupported(None)));
        }
        Ok(match node.op_type.as_str() {
            "Conv" => {
                let strides = pair(ints_attr(node, "strides"), 1, "strides")?;
                let dilations = pair(ints_attr(node, "dilations"), 1, "dilations")?;
                if let Some(k) = ints_attr(node, "kernel_shape")
                    && k.len() != 2
                {
                    return Err(unsupported(format!(
                        "kernel_shape {k:?}: only 2-D convolutions are implemented"
                    )));
                }
                let group = int_attr(node, "group", 1);
                if group < 1 {
                    return Err(CompileError::Invalid(format!("group {group} must be positive")));
                }
                Op::Conv { padding: padding(node)?, strides, dilations, group: group as usize }
            }
            "MaxPool" => {
                let kernel = match ints_attr(node, "kernel_shape") {
                    Some(k) => pair(Some(k), 1, "kernel_shape")?,
                    None => return Err(CompileError::Invalid("kernel_shape is required".into())),
                };
                if node.output.iter().filter(|o| !o.is_empty()).count() > 1 {
                    return Err(unsupported("the Indices output is not implemented"));
                }
                Op::MaxPool {
                    kernel,
                    padding: padding(node)?,
                    strides: pair(ints_attr(node, "strides"), 1, "strides")?,
                    dilations: pair(ints_attr(node, "dilations"), 1, "dilations")?,
                    ceil: int_attr(node, "ceil_mode", 0) != 0,
                }
            }
            "GlobalAveragePool" => Op::GlobalAveragePool,
            "AveragePool" => {
                let kernel = match ints_attr(node, "kernel_shape") {
                    Some(k) => pair(Some(k), 1, "kernel_shape")?,
                    None => return Err(CompileError::Invalid("kernel_shape is required".into())),
                };
                if int_attr(node, "ceil_mode", 0) != 0 {
                    return Err(unsupported("ceil_mode 1 is not implemented"));
                }
                if pair(ints_attr(node, "dilations"), 1, "dilations")? != [1, 1] {
                    return Err(unsupported("dilations other than 1 are not implemented"));
                }
                Op::AveragePool {
                    kernel,
                    padding: padding(node)?,
                    strides: pair(ints_attr(node, "strides"), 1, "strides")?,
                    count_include_pad: int_attr(node, "count_include_pad", 0) != 0,
                }
            }
            "BatchNormalization" => {
                if int_attr(node, "training_mode", 0) != 0
                    || node.output.iter().filter(|o| !o.is_empty()).count() > 1
                {
                    return Err(unsupported(
                        "training mode (batch statistics, running mean and variance outputs)",
                    ));
                }
                Op::BatchNormalization { epsilon: float_attr(node, "epsilon", 1e-5) }
            }
            "Clip" => Op::Clip {
                bounds: (opset < 11).then(|| {
                    (
                        float_attr(node, "min", f64::NEG_INFINITY),
                        float_attr(node, "max", f64::INFINITY),
                    )
                }),
            },
            "Pad" => {
                let edge = match string_attr(node, "mode").as_deref() {
                    None | Some("constant") => false,
                    Some("edge") => true,
                    Some(other) => {
                        return Err(unsupported(format!("mode '{other}' is not implemented")));
                    }
                };
                let attrs = if opset < 11 {
                    let pads = ints_attr(node, "pads").ok_or_else(|| {
                        CompileError::Invalid("Pad needs the attribute 'pads'".into())
                    })?;
                    Some((pads, float_attr(node, "value", 0.0)))
                } else {
                    None
                };
                Op::Pad { edge, attrs }
            }
            "Relu" => Op::Relu,
            "LeakyRelu" => Op::LeakyRelu(float_attr(node, "alpha", 0.01)),
            "HardSigmoid" => Op::HardSigmoid {
                alpha: float_attr(node, "alpha", 0.2),
                beta: float_attr(node, "beta", 0.5),
            },
            "HardSwish" => Op::HardSwish,
            "ReduceMean" => Op::ReduceMean {
                axes: if opset < 18 {
                    Some(ints_attr(node, "axes").unwrap_or_default())
                } else {
                    None
                },
                keep_dims: int_attr(node, "keepdims", 1) != 0,
                noop_with_empty_axes: int_attr(node, "noop_with_empty_axes", 0) != 0,
            },
            "Sigmoid" => Op::Sigmoid,
            "Tanh" => Op::Tanh,
            "Exp" => Op::Exp,
            "Log" => Op::Log,
            "Neg" => Op::Neg,
            "Sqrt" => Op::Sqrt,
            "Abs" => Op::Abs,
            "Gemm" => Op::Gemm {
                alpha: float_attr(node, "alpha", 1.0),
                beta: float_attr(node, "beta", 1.0),
                trans_a: int_attr(node, "transA", 0) != 0,
                trans_b: int_attr(node, "transB", 0) != 0,
            },
            "MatMul" => Op::MatMul,
            "Add" => Op::Add,
            "Sub" => Op::Sub,
            "Mul" => Op::Mul,
            "Div" => Op::Div,
            "Reshape" => Op::Reshape { allow_zero: int_attr(node, "allowzero", 0) != 0 },
            "Flatten" => Op::Flatten { axis: int_attr(node, "axis", 1) },
            "Transpose" => Op::Transpose {
                perm: match ints_attr(node, "perm") {
                    None => None,
                    Some(p) => Some(
                        p.iter()
                            .map(|&x| usize::try_from(x).map_err(|_| format!("perm {p:?}")))
                            .collect::<Result<_, _>>()?,
                    ),
                },
            },
            "Softmax" | "LogSoftmax" => {
                let legacy = opset < 13;
                Op::Softmax {
                    axis: int_attr(node, "axis", if legacy { 1 } else { -1 }),
                    legacy,
                    log: node.op_type == "LogSoftmax",
                }
            }
            "Identity" => Op::Identity,
            "Dropout" => Op::Dropout,
            "Cast" => {
                let to = node
                    .attribute("to")
                    .map(|a| a.i as i32)
                    .ok_or_else(|| CompileError::Invalid("Cast needs the attribute 'to'".into()))?;
                if to == elem::STRING {
                    return Err(unsupported("casting to STRING"));
                }
                Op::Cast { to }
            }
            "Shape" => Op::Shape {
                start: int_attr(node, "start", 0),
                end: node.attribute("end").map(|a| a.i),
            },
            "Gather" => Op::Gather { axis: int_attr(node, "axis", 0) },
            "Concat" => Op::Concat {
                axis: node.attribute("axis").map(|a| a.i).ok_or_else(|| {
                    CompileError::Invalid("Concat needs the attribute 'axis'".into())
                })?,
            },
            "Unsqueeze" => Op::Unsqueeze {
                axes: if opset < 13 {
                    Some(ints_attr(node, "axes").unwrap_or_default())
                } else {
                    None
                },
            },
            "Squeeze" => {
                Op::Squeeze { axes: if opset < 13 { ints_attr(node, "axes") } else { None } }
            }
            "ArgMax" => Op::ArgMax {
                axis: int_attr(node, "axis", 0),
                keep_dims: int_attr(node, "keepdims", 1) != 0,
                select_last: int_attr(node, "select_last_index", 0) != 0,
            },
            _ => return Err(CompileError::Unsupported(Unsupported(None))),
        })
    }

    /// Runs the operator. `inputs[i]` is `None` for an omitted optional input.
    pub fn eval(&self, inputs: &[Option<&Value>], dtype: DType) -> Result<Vec<Value>, String> {
        let arg = |i: usize| -> Result<&Value, String> {
            inputs.get(i).copied().flatten().ok_or_else(|| format!("input {i} is missing"))
        };
        let opt = |i: usize| inputs.get(i).copied().flatten();
        let x = || arg(0)?.float("input 0");
        let c = |r: candle_core::Result<Tensor>| r.map(Value::Float).map_err(|e| e.to_string());
        let one = |v: Result<Value, String>| v.map(|v| vec![v]);
        match self {
            Op::Conv { padding, strides, dilations, group } => {
                one(conv(x()?, arg(1)?.float("W")?, opt(2), padding, *strides, *dilations, *group))
            }
            Op::MaxPool { kernel, padding, strides, dilations, ceil } => {
                let x = x()?;
                let dims = x.dims();
                if dims.len() != 4 {
                    return Err(format!("expected a [n, c, h, w] input, got {dims:?}"));
                }
                let pads = padding.resolve([dims[2], dims[3]], *kernel, *strides, *dilations);
                for a in 0..2 {
                    let extent = (kernel[a] - 1) * dilations[a] + 1;
                    if pads[a] >= extent || pads[a + 2] >= extent {
                        return Err(format!(
                            "pads {pads:?} must be smaller than the window {kernel:?}"
                        ));
                    }
                }
                let op = MaxPool2d {
                    kernel: *kernel,
                    strides: *strides,
                    dilations: *dilations,
                    pads,
                    ceil_mode: *ceil,
                };
                one(c(op.apply(x)))
            }
            Op::GlobalAveragePool => {
                let x = x()?;
                let spatial: Vec<usize> = (2..x.rank()).collect();
                if spatial.is_empty() {
                    return Err(format!("expected a [n, c, ...] input, got {:?}", x.dims()));
                }
                one(c(x.mean_keepdim(spatial)))
            }
            Op::AveragePool { kernel, padding, strides, count_include_pad } => {
                one(average_pool(x()?, *kernel, padding, *strides, *count_include_pad))
            }
            Op::BatchNormalization { epsilon } => {
                let x = x()?;
                let dims = x.dims();
                if dims.len() < 2 {
                    return Err(format!("expected a [n, c, ...] input, got {dims:?}"));
                }
                let mut shape = vec![1; dims.len()];
                shape[1] = dims[1];
                let param = |i: usize, what: &str| -> Result<Tensor, String> {
                    let t = arg(i)?.float(what)?;
                    if t.dims() != [dims[1]] {
                        return Err(format!(
                            "{what} has shape {:?}, expected [{}] (one per channel)",
                            t.dims(),
                            dims[1]
                        ));
                    }
                    t.reshape(shape.clone()).map_err(|e| e.to_string())
                };
                let (scale, bias) = (param(1, "scale")?, param(2, "B")?);
                let (mean, var) = (param(3, "input_mean")?, param(4, "input_var")?);
                one(c((|| {
                    let inv = ((var + *epsilon)?.sqrt()?.recip()? * scale)?;
                    x.broadcast_sub(&mean)?.broadcast_mul(&inv)?.broadcast_add(&bias)
                })()))
            }
            Op::Clip { bounds } => {
                let x = x()?;
                let (lo, hi) = match bounds {
                    Some(b) => *b,
                    None => (
                        opt(1).map(|v| scalar(v, "min")).transpose()?.unwrap_or(f64::NEG_INFINITY),
                        opt(2).map(|v| scalar(v, "max")).transpose()?.unwrap_or(f64::INFINITY),
                    ),
                };
                one(c((|| {
                    let mut y = x.clone();
                    if lo > f64::NEG_INFINITY {
                        y = y.maximum(lo)?;
                    }
                    if hi < f64::INFINITY {
                        y = y.minimum(hi)?;
                    }
                    Ok(y)
                })()))
            }
            Op::Pad { edge, attrs } => {
                let (pads, value) = match attrs {
                    Some((p, v)) => (p.clone(), *v),
                    None => {
                        if opt(3).is_some() {
                            return Err("the axes input of Pad is not implemented".into());
                        }
                        let pads = arg(1)?.int("pads")?.data.clone();
                        (
                            pads,
                            opt(2).map(|v| scalar(v, "constant_value")).transpose()?.unwrap_or(0.0),
                        )
                    }
                };
                one(pad(x()?, &pads, value, *edge))
            }
            Op::Relu => one(c(relu(x()?))),
            Op::LeakyRelu(alpha) => {
                let x = x()?;
                one(c((|| relu(x)? - (relu(&x.neg()?)? * *alpha)?)()))
            }
            Op::HardSigmoid { alpha, beta } => one(c(hard_sigmoid(x()?, *alpha, *beta))),
            Op::HardSwish => {
                let x = x()?;
                one(c((|| x.mul(&hard_sigmoid(x, 1.0 / 6.0, 0.5)?))()))
            }
            Op::ReduceMean { axes, keep_dims, noop_with_empty_axes } => {
                let x = x()?;
                let axes = match (axes, opt(1)) {
                    (Some(a), _) => a.clone(),
                    (None, Some(v)) => v.int("axes")?.data.clone(),
                    (None, None) => Vec::new(),
                };
                if axes.is_empty() && *noop_with_empty_axes {
                    return one(Ok(Value::Float(x.clone())));
                }
                let rank = x.rank();
                let mut dims: Vec<usize> = if axes.is_empty() {
                    (0..rank).collect()
                } else {
                    axes.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?
                };
                dims.sort_unstable();
                dims.dedup();
                one(c((|| {
                    let m = x.mean_keepdim(dims.clone())?;
                    if *keep_dims {
                        return Ok(m);
                    }
                    let shape: Vec<usize> =
                        (0..rank).filter(|a| !dims.contains(a)).map(|a| x.dims()[a]).collect();
                    m.reshape(shape)
                })()))
            }
            Op::Sigmoid => {
                let x = x()?;
                one(c((|| (x.neg()?.exp()? + 1.0)?.recip())()))
            }
            Op::Tanh => one(c(x()?.tanh())),
            Op::Exp => one(c(x()?.exp())),
            Op::Log => one(c(x()?.log())),
            Op::Neg => one(c(x()?.neg())),
            Op::Sqrt => one(c(x()?.sqrt())),
            Op::Abs => one(c(x()?.abs())),
            Op::Gemm { alpha, beta, trans_a, trans_b } => {
                let (a, b) = (x()?, arg(1)?.float("B")?);
                if a.rank() != 2 || b.rank() != 2 {
                    return Err(format!(
                        "Gemm needs 2-D inputs, got {:?} and {:?}",
                        a.dims(),
                        b.dims()
                    ));
                }
                one(c((|| {
                    let mut y = MatMul { trans_a: *trans_a, trans_b: *trans_b }.apply(a, b)?;
                    if *alpha != 1.0 {
                        y = y.affine(*alpha, 0.0)?;
                    }
                    if let Some(cv) = opt(2) {
                        let cv = cv.to_float(dtype).map_err(candle_core::Error::Msg)?;
                        let cv = if *beta != 1.0 { cv.affine(*beta, 0.0)? } else { cv };
                        y = y.broadcast_add(&cv)?;
                    }
                    Ok(y)
                })()))
            }
            Op::MatMul => one(c(matmul(x()?, arg(1)?.float("input 1")?))),
            Op::Add | Op::Sub | Op::Mul | Op::Div => one(binary(self, arg(0)?, arg(1)?, dtype)),
            Op::Reshape { allow_zero } => {
                let data = arg(0)?;
                let spec = arg(1)?.int("shape")?;
                let shape = reshape_target(data.dims(), &spec.data, *allow_zero)?;
                one(reshape(data, shape))
            }
            Op::Flatten { axis: a } => {
                let data = arg(0)?;
                let dims = data.dims();
                let a =
                    if *a == dims.len() as i64 { dims.len() } else { axis(*a, dims.len().max(1))? };
                let outer: usize = dims[..a].iter().product();
                let inner: usize = dims[a..].iter().product();
                one(reshape(data, vec![outer, inner]))
            }
            Op::Transpose { perm } => {
                let data = arg(0)?;
                let rank = data.dims().len();
                let perm = perm.clone().unwrap_or_else(|| (0..rank).rev().collect());
                let mut sorted = perm.clone();
                sorted.sort_unstable();
                if sorted != (0..rank).collect::<Vec<_>>() {
                    return Err(format!("perm {perm:?} is not a permutation of {rank} axes"));
                }
                match data {
                    Value::Float(t) => one(c(t.permute(perm))),
                    Value::Int(i) => one(Ok(Value::Int(permute_ints(i, &perm)))),
                }
            }
            Op::Softmax { axis: a, legacy, log } => one(c(softmax(x()?, *a, *legacy, *log))),
            Op::Identity => Ok(vec![arg(0)?.clone()]),
            Op::Dropout => {
                let v = arg(0)?.clone();
                let mask =
                    Ints { shape: v.dims().to_vec(), data: vec![1; v.dims().iter().product()] };
                Ok(vec![v, Value::Int(mask)])
            }
            Op::Cast { to } => one(cast(arg(0)?, *to, dtype)),
            Op::Shape { start, end } => {
                let dims = arg(0)?.dims();
                let r = dims.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
                let (s, e) = (clamp(*start), clamp(end.unwrap_or(r)));
                let data = dims[s..e.max(s)].iter().map(|&d| d as i64).collect();
                one(Ok(Value::Int(Ints::vector(data))))
            }
            Op::Gather { axis: a } => one(gather(arg(0)?, arg(1)?.int("indices")?, *a)),
            Op::Concat { axis: a } => {
                let values: Vec<&Value> = inputs.iter().flatten().copied().collect();
                one(concat(&values, *a))
            }
            Op::Unsqueeze { axes } => {
                let data = arg(0)?;
                let axes = match axes {
                    Some(a) => a.clone(),
                    None => arg(1)?.int("axes")?.data.clone(),
                };
                let rank = data.dims().len() + axes.len();
                let mut norm: Vec<usize> =
                    axes.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?;
                norm.sort_unstable();
                let mut shape = data.dims().to_vec();
                for a in norm {
                    shape.insert(a, 1);
                }
                one(reshape(data, shape))
            }
            Op::Squeeze { axes } => {
                let data = arg(0)?;
                let dims = data.dims();
                let axes = match (axes, opt(1)) {
                    (Some(a), _) => Some(a.clone()),
                    (None, Some(v)) => Some(v.int("axes")?.data.clone()),
                    (None, None) => None,
                };
                let drop: Vec<usize> = match axes {
                    Some(a) => a.iter().map(|&a| axis(a, dims.len())).collect::<Result<_, _>>()?,
                    None => (0..dims.len()).filter(|&i| dims[i] == 1).collect(),
                };
                if let Some(&bad) = drop.iter().find(|&&a| dims[a] != 1) {
                    return Err(format!("cannot squeeze axis {bad} of size {}", dims[bad]));
                }
                let shape = dims
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !drop.contains(i))
                    .map(|(_, &d)| d)
                    .collect();
                one(reshape(data, shape))
            }
            Op::ArgMax { axis: a, keep_dims, select_last } => {
                one(argmax(arg(0)?.float("input 0")?, *a, *keep_dims, *select_last))
            }
            Op::ArrayFeatureExtractor => {
                one(array_feature_extractor(arg(0)?, arg(1)?.int("indices")?))
            }
        }
    }
}

/// `max(0, min(1, alpha x + beta))`: zero gradient where it saturates, as PyTorch's.
fn hard_sigmoid(x: &Tensor, alpha: f64, beta: f64) -> candle_core::Result<Tensor> {
    x.affine(alpha, beta)?.maximum(0.0)?.minimum(1.0)
}

/// The one value of a scalar (or one-element) float input.
fn scalar(v: &Value, what: &str) -> Result<f64, String> {
    let values = v
        .to_float(DType::F64)?
        .to_dtype(DType::F64)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(|e| e.to_string())?;
    match values[..] {
        [one] => Ok(one),
        _ => Err(format!("{what} must hold one value, got {}", values.len())),
    }
}

/// Average pooling as a depthwise convolution with a kernel of ones (so its gradient is the
/// convolution's): the window sums divided by the window size, or with `count_include_pad`
/// false by the number of input pixels under each window.
fn average_pool(
    x: &Tensor,
    kernel: [usize; 2],
    padding: &Padding,
    strides: [usize; 2],
    count_include_pad: bool,
) -> Result<Value, String> {
    let dims = x.dims();
    if dims.len() != 4 {
        return Err(format!("expected a [n, c, h, w] input, got {dims:?}"));
    }
    let pads = padding.resolve([dims[2], dims[3]], kernel, strides, [1, 1]);
    for a in 0..2 {
        if pads[a] >= kernel[a] || pads[a + 2] >= kernel[a] {
            return Err(format!("pads {pads:?} must be smaller than the window {kernel:?}"));
        }
    }
    // The grouped convolution of [`conv`], one group per channel, with a kernel of ones.
    let padding = Padding::Explicit(pads);
    let window_sums = |x: &Tensor| -> Result<Tensor, String> {
        let channels = x.dims()[1];
        let ones = Tensor::ones((channels, 1, kernel[0], kernel[1]), x.dtype(), x.device())
            .map_err(|e| e.to_string())?;
        conv(x, &ones, None, &padding, strides, [1, 1], channels)?.float("the window sums").cloned()
    };
    let sums = window_sums(x)?;
    let r = if count_include_pad || pads == [0; 4] {
        sums.affine(1.0 / (kernel[0] * kernel[1]) as f64, 0.0)
    } else {
        // The input pixels under each window.
        let ones = Tensor::ones((1, 1, dims[2], dims[3]), x.dtype(), x.device())
            .map_err(|e| e.to_string())?;
        sums.broadcast_div(&window_sums(&ones)?)
    };
    r.map(Value::Float).map_err(|e| e.to_string())
}

/// Pads every axis by `pads` (all the begins, then all the ends, as ONNX writes them) with
/// `value`, or with the nearest edge value when `edge`.
fn pad(x: &Tensor, pads: &[i64], value: f64, edge: bool) -> Result<Value, String> {
    let rank = x.rank();
    if pads.len() != 2 * rank {
        return Err(format!("{} pads for a rank-{rank} input, expected {}", pads.len(), 2 * rank));
    }
    if let Some(p) = pads.iter().find(|&&p| p < 0) {
        return Err(format!("negative pads (cropping, {p}) are not implemented"));
    }
    let r = (|| {
        let mut y = if edge || value == 0.0 { x.clone() } else { x.affine(1.0, -value)? };
        for a in 0..rank {
            let (begin, end) = (pads[a] as usize, pads[a + rank] as usize);
            if begin + end > 0 {
                y = if edge {
                    y.pad_with_same(a, begin, end)?
                } else {
                    y.pad_with_zeros(a, begin, end)?
                };
            }
        }
        if !edge && value != 0.0 { y.affine(1.0, value) } else { Ok(y) }
    })();
    r.map(Value::Float).map_err(|e: candle_core::Error| e.to_string())
}

fn relu(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

fn conv(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Value>,
    padding: &Padding,
    strides: [usize; 2],
    dilations: [usize; 2],
    group: usize,
) -> Result<Value, String> {
    let (xd, wd) = (x.dims(), w.dims());
    if xd.len() != 4 || wd.len() != 4 {
        return Err(format!("only 2-D convolutions are implemented: input {xd:?}, weights {wd:?}"));
    }
    if xd[1] != wd[1] * group || wd[0] % group != 0 {
        return Err(format!("input {xd:?} and weights {wd:?} do not fit with group {group}"));
    }
    let pads = padding.resolve([xd[2], xd[3]], [wd[2], wd[3]], strides, dilations);
    let op = Conv2d { strides, dilations, pads };
    let r = (|| {
        let mut y = if group == 1 {
            op.apply(x, w)?
        } else {
            let (cin, cout) = (wd[1], wd[0] / group);
            let parts = (0..group)
                .map(|g| op.apply(&x.narrow(1, g * cin, cin)?, &w.narrow(0, g * cout, cout)?))
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&parts, 1)?
        };
        if let Some(b) = bias {
            let b = match b {
                Value::Float(b) => b.clone(),
                Value::Int(_) => candle_core::bail!("the bias is an integer tensor"),
            };
            y = y.broadcast_add(&b.reshape((1, wd[0], 1, 1))?)?;
        }
        Ok(y)
    })();
    r.map(Value::Float).map_err(|e: candle_core::Error| e.to_string())
}

fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    match (a.rank(), b.rank()) {
        (2, 2) => MatMul { trans_a: false, trans_b: false }.apply(a, b),
        (1, _) => {
            let y = matmul(&a.unsqueeze(0)?, b)?;
            y.squeeze(y.rank() - 2)
        }
        (_, 1) => matmul(a, &b.unsqueeze(1)?)?.squeeze(D::Minus1),
        (ra, 2) => {
            let dims = a.dims().to_vec();
            let rows: usize = dims[..ra - 1].iter().product();
            let y = matmul(&a.reshape((rows, dims[ra - 1]))?, b)?;
            let mut out = dims[..ra - 1].to_vec();
            out.push(b.dims()[1]);
            y.reshape(out)
        }
        _ => a.broadcast_matmul(b),
    }
}

fn binary(op: &Op, a: &Value, b: &Value, dtype: DType) -> Result<Value, String> {
    match (a, b) {
        (Value::Int(a), Value::Int(b)) => {
            // ONNX integer division truncates toward zero.
            let g = |x: i64, y: i64| -> Result<i64, String> {
                match op {
                    Op::Add => Ok(x.wrapping_add(y)),
                    Op::Sub => Ok(x.wrapping_sub(y)),
                    Op::Mul => Ok(x.wrapping_mul(y)),
                    _ if y == 0 => Err("integer division by zero".into()),
                    _ => Ok(x.wrapping_div(y)),
                }
            };
            int_binary(a, b, g).map(Value::Int)
        }
        _ => {
            let (a, b) = (a.to_float(dtype)?, b.to_float(dtype)?);
            let r = match op {
                Op::Add => a.broadcast_add(&b),
                Op::Sub => a.broadcast_sub(&b),
                Op::Mul => a.broadcast_mul(&b),
                _ => a.broadcast_div(&b),
            };
            r.map(Value::Float).map_err(|e| e.to_string())
        }
    }
}

/// The target shape of a Reshape: `0` copies the input's dimension (unless `allow_zero`), `-1`
/// is inferred.
pub(crate) fn reshape_target(
    dims: &[usize],
    spec: &[i64],
    allow_zero: bool,
) -> Result<Vec<usize>, String> {
    let total: usize = dims.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut hole = None;
    for (i, &s) in spec.iter().enumerate() {
        match s {
            -1 if hole.is_none() => {
                hole = Some(i);
                out.push(1);
            }
            0 if !allow_zero => out.push(
                *dims.get(i).ok_or_else(|| format!("shape {spec:?}: no input axis {i} to copy"))?,
            ),
            s if s >= 0 => out.push(s as usize),
            _ => return Err(format!("invalid shape {spec:?}")),
        }
    }
    let known: usize = out.iter().product();
    if let Some(h) = hole {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {dims:?} to {spec:?}"));
        }
        out[h] = total / known;
    } else if known != total {
        return Err(format!("cannot reshape {dims:?} ({total} values) to {spec:?}"));
    }
    Ok(out)
}

fn reshape(v: &Value, shape: Vec<usize>) -> Result<Value, String> {
    match v {
        Value::Float(t) => t.reshape(shape).map(Value::Float).map_err(|e| e.to_string()),
        Value::Int(i) => Ints::new(shape, i.data.clone()).map(Value::Int),
    }
}

fn permute_ints(i: &Ints, perm: &[usize]) -> Ints {
    let shape: Vec<usize> = perm.iter().map(|&p| i.shape[p]).collect();
    let rank = shape.len();
    let mut in_strides = vec![1usize; rank];
    for a in (0..rank.saturating_sub(1)).rev() {
        in_strides[a] = in_strides[a + 1] * i.shape[a + 1];
    }
    let n = i.data.len();
    let mut data = Vec::with_capacity(n);
    for flat in 0..n {
        let mut rem = flat;
        let mut src = 0;
        for a in (0..rank).rev() {
            let coord = rem % shape[a];
            rem /= shape[a];
            src += coord * in_strides[perm[a]];
        }
        data.push(i.data[src]);
    }
    Ints { shape, data }
}

fn softmax(x: &Tensor, a: i64, legacy: bool, log: bool) -> candle_core::Result<Tensor> {
    let rank = x.rank();
    let a = axis(a, rank).map_err(candle_core::Error::Msg)?;
    if legacy && a + 1 != rank {
        // opset < 13: softmax over the flattened axes from `a` on.
        let dims = x.dims().to_vec();
        let outer: usize = dims[..a].iter().product();
        let y = softmax_axis(&x.reshape((outer, dims[a..].iter().product::<usize>()))?, 1, log)?;
        return y.reshape(dims);
    }
    softmax_axis(x, a, log)
}

/// Softmax (or log-softmax) along `axis`, shifted by the (detached) maximum: the shift does
/// not change the value, and its gradient is exactly zero.
pub(crate) fn softmax_axis(x: &Tensor, axis: usize, log: bool) -> candle_core::Result<Tensor> {
    let m = x.max_keepdim(axis)?.detach();
    let shifted = x.broadcast_sub(&m)?;
    let e = shifted.exp()?;
    let s = e.sum_keepdim(axis)?;
    if log { shifted.broadcast_sub(&s.log()?) } else { e.broadcast_div(&s) }
}

fn cast(v: &Value, to: i32, dtype: DType) -> Result<Value, String> {
    if elem::is_float(to) {
        // Every float tensor is computed in the model's one precision.
        return v.to_float(dtype).map(Value::Float);
    }
    let ints = match v {
        Value::Int(i) => i.clone(),
        Value::Float(t) => {
            let data: Vec<f64> = t
                .flatten_all()
                .and_then(|t| t.to_dtype(DType::F64))
                .and_then(|t| t.to_vec1::<f64>())
                .map_err(|e| e.to_string())?;
            if let Some(bad) = data.iter().find(|v| !v.is_finite()) {
                return Err(format!("cannot cast {bad} to {}", elem::name(to)));
            }
            Ints {
                shape: t.dims().to_vec(),
                data: data.iter().map(|&v| v.trunc() as i64).collect(),
            }
        }
    };
    let data = match to {
        elem::BOOL => ints.data.iter().map(|&v| i64::from(v != 0)).collect(),
        elem::UINT8 => ints.data.iter().map(|&v| i64::from(v as u8)).collect(),
        elem::INT8 => ints.data.iter().map(|&v| i64::from(v as i8)).collect(),
        elem::INT16 => ints.data.iter().map(|&v| i64::from(v as i16)).collect(),
        elem::UINT16 => ints.data.iter().map(|&v| i64::from(v as u16)).collect(),
        elem::INT32 => ints.data.iter().map(|&v| i64::from(v as i32)).collect(),
        elem::UINT32 => ints.data.iter().map(|&v| i64::from(v as u32)).collect(),
        _ => ints.data,
    };
    Ok(Value::Int(Ints { shape: ints.shape, data }))
}

fn gather(data: &Value, indices: &Ints, a: i64) -> Result<Value, String> {
    let dims = data.dims().to_vec();
    let a = axis(a, dims.len())?;
    let size = dims[a] as i64;
    let idx: Vec<i64> = indices
        .data
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + size } else { i };
            if (0..size).contains(&j) {
                Ok(j)
            } else {
                Err(format!("index {i} is outside axis {a} of size {size}"))
            }
        })
        .collect::<Result<_, _>>()?;
    let mut shape = dims[..a].to_vec();
    shape.extend_from_slice(&indices.shape);
    shape.extend_from_slice(&dims[a + 1..]);
    match data {
        Value::Float(t) => {
            let ids = Tensor::from_vec(idx.clone(), idx.len(), &Device::Cpu)
                .map_err(|e| e.to_string())?;
            t.index_select(&ids, a)
                .and_then(|t| t.reshape(shape))
                .map(Value::Float)
                .map_err(|e| e.to_string())
        }
        Value::Int(i) => {
            let outer: usize = dims[..a].iter().product();
            let inner: usize = dims[a + 1..].iter().product();
            let mut out = Vec::with_capacity(outer * idx.len() * inner);
            for o in 0..outer {
                for &j in &idx {
                    let start = (o * dims[a] + j as usize) * inner;
                    out.extend_from_slice(&i.data[start..start + inner]);
                }
            }
            Ints::new(shape, out).map(Value::Int)
        }
    }
}

fn concat(values: &[&Value], a: i64) -> Result<Value, String> {
    let first = values.first().ok_or("Concat has no input")?;
    let rank = first.dims().len();
    let a = axis(a, rank)?;
    if values.iter().all(|v| matches!(v, Value::Int(_))) {
        let ints: Vec<&Ints> = values.iter().map(|v| v.int("input")).collect::<Result<_, _>>()?;
        for i in &ints {
            if i.shape.len() != rank
                || i.shape.iter().enumerate().any(|(k, &d)| k != a && d != first.dims()[k])
            {
                return Err(format!(
                    "cannot concatenate shapes {:?} and {:?}",
                    first.dims(),
                    i.shape
                ));
            }
        }
        let outer: usize = first.dims()[..a].iter().product();
        let mut data = Vec::new();
        for o in 0..outer {
            for i in &ints {
                let chunk: usize = i.shape[a..].iter().product();
                data.extend_from_slice(&i.data[o * chunk..(o + 1) * chunk]);
            }
        }
        let mut shape = first.dims().to_vec();
        shape[a] = ints.iter().map(|i| i.shape[a]).sum();
        return Ints::new(shape, data).map(Value::Int);
    }
    let tensors: Vec<&Tensor> =
        values.iter().map(|v| v.float("input")).collect::<Result<_, _>>()?;
    Tensor::cat(&tensors, a).map(Value::Float).map_err(|e| e.to_string())
}

fn argmax(x: &Tensor, a: i64, keep_dims: bool, select_last: bool) -> Result<Value, String> {
    let dims = x.dims().to_vec();
    let a = axis(a, dims.len())?;
    let data: Vec<f64> = x
        .flatten_all()
        .and_then(|t| t.to_dtype(DType::F64))
        .and_then(|t| t.to_vec1::<f64>())
        .map_err(|e| e.to_string())?;
    let outer: usize = dims[..a].iter().product();
    let inner: usize = dims[a + 1..].iter().product();
    let n = dims[a];
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0;
            for k in 1..n {
                let v = data[(o * n + k) * inner + i];
                let b = data[(o * n + best) * inner + i];
                if v > b || (select_last && v == b) {
                    best = k;
                }
            }
            out.push(best as i64);
        }
    }
    let mut shape = dims.clone();
    if keep_dims {
        shape[a] = 1;
    } else {
        shape.remove(a);
    }
    Ints::new(shape, out).map(Value::Int)
}

fn array_feature_extractor(x: &Value, indices: &Ints) -> Result<Value, String> {
    let dims = x.dims().to_vec();
    let last = *dims.last().ok_or("ArrayFeatureExtractor of a scalar")?;
    let idx: Vec<i64> = indices
        .data
        .iter()
        .map(|&i| {
            if (0..last as i64).contains(&i) {
                Ok(i)
            } else {
                Err(format!("index {i} is outside the last axis of size {last}"))
            }
        })
        .collect::<Result<_, _>>()?;
    let mut shape = if dims.len() == 1 { vec![1] } else { dims[..dims.len() - 1].to_vec() };
    shape.push(idx.len());
    match x {
        Value::Int(v) => {
            let rows = v.data.len() / last;
            let data = (0..rows)
                .flat_map(|r| idx.iter().map(move |&i| v.data[r * last + i as usize]))
                .collect();
            Ints::new(shape, data).map(Value::Int)
        }
        Value::Float(t) => {
            let ids = Tensor::from_vec(idx.clone(), idx.len(), &Device::Cpu)
                .map_err(|e| e.to_string())?;
            t.index_select(&ids, dims.len() - 1)
                .and_then(|t| t.reshape(shape))
                .map(Value::Float)
                .map_err(|e| e.to_string())
        }
    }
}

/// The value of a `Constant` node.
pub(crate) fn constant_value(node: &NodeProto, dtype: DType) -> Result<Value, String> {
    let attr: &AttributeProto = node.attribute.first().ok_or("Constant has no value attribute")?;
    let float = |data: Vec<f64>, shape: Vec<usize>| {
        Tensor::from_vec(data, shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .map(Value::Float)
            .map_err(|e| e.to_string())
    };
    match (attr.name.as_str(), attr.r#type) {
        ("value", _) => {
            let t: &TensorProto = attr.t.as_ref().ok_or("Constant value has no tensor")?;
            tensor_value(t, dtype)
        }
        ("value_float", _) => float(vec![f64::from(attr.f)], vec![]),
        ("value_floats", _) => {
            float(attr.floats.iter().map(|&v| f64::from(v)).collect(), vec![attr.floats.len()])
        }
        ("value_int", _) => Ok(Value::Int(Ints { shape: vec![], data: vec![attr.i] })),
        ("value_ints", _) => Ok(Value::Int(Ints::vector(attr.ints.clone()))),
        (name, t)
            if t == attribute_type::STRING || name == "value_string" || name == "value_strings" =>
        {
            Err("string constants are not supported".into())
        }
        (name, _) => Err(format!("Constant attribute '{name}' is not supported")),
    }
}

/// A tensor of the file (initializer or constant) as a value: floats in `dtype`, integers on
/// the host.
pub(crate) fn tensor_value(t: &TensorProto, dtype: DType) -> Result<Value, String> {
    let dims = nnlens_onnx::tensor_dims(t).map_err(|e| e.to_string())?;
    if elem::is_float(t.data_type) {
        let data = nnlens_onnx::float_values(t).map_err(|e| e.to_string())?;
        Tensor::from_vec(data, dims, &Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .map(Value::Float)
            .map_err(|e| e.to_string())
    } else {
        let data = nnlens_onnx::int_values(t).map_err(|e| e.to_string())?;
        Ints::new(dims, data).map(Value::Int)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_targets() {
        assert_eq!(reshape_target(&[2, 3, 4], &[0, -1], false).unwrap(), [2, 12]);
        assert_eq!(reshape_target(&[2, 3, 4], &[-1, 1, 4, 3], false).unwrap(), [2, 1, 4, 3]);
        assert!(reshape_target(&[2, 3], &[4, -1], false).is_err());
        assert!(reshape_target(&[2, 3], &[-1, -1], false).is_err());
        assert!(reshape_target(&[2, 3], &[7], false).is_err());
    }

    #[test]
    fn same_padding_puts_the_odd_pixel_at_the_end_for_upper() {
        let p = Padding::Same { upper: true }.resolve([28, 28], [2, 2], [1, 1], [1, 1]);
        assert_eq!(p, [0, 0, 1, 1]);
        let p = Padding::Same { upper: false }.resolve([28, 28], [2, 2], [1, 1], [1, 1]);
        assert_eq!(p, [1, 1, 0, 0]);
        let p = Padding::Same { upper: true }.resolve([5, 5], [3, 3], [2, 2], [1, 1]);
        assert_eq!(p, [1, 1, 1, 1]);
    }

    #[test]
    fn integer_ops() {
        let i = Ints::new(vec![2, 3], (0..6).collect()).unwrap();
        let t = permute_ints(&i, &[1, 0]);
        assert_eq!((t.shape.clone(), t.data.clone()), (vec![3, 2], vec![0, 3, 1, 4, 2, 5]));
        let g = gather(&Value::Int(i.clone()), &Ints::vector(vec![-1, 0]), 1).unwrap();
        assert_eq!(g.int("g").unwrap().data, [2, 0, 5, 3]);
        let c = concat(
            &[&Value::Int(Ints::vector(vec![1])), &Value::Int(Ints::vector(vec![-1, 7]))],
            0,
        )
        .unwrap();
        assert_eq!(c.int("c").unwrap().data, [1, -1, 7]);
        let d = binary(
            &Op::Div,
            &Value::Int(Ints::vector(vec![-7, 7])),
            &Value::Int(Ints::vector(vec![2])),
            DType::F32,
        )
        .unwrap();
        assert_eq!(d.int("d").unwrap().data, [-3, 3]);
        assert!(
            binary(
                &Op::Div,
                &Value::Int(Ints::vector(vec![1])),
                &Value::Int(Ints::vector(vec![0])),
                DType::F32
            )
            .is_err()
        );
    }
}
