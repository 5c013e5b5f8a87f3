use std::path::Path;

use candle_core::{CpuStorage, DType, Device, Storage, Tensor};
use ndarray::{Array2, ArrayD, ArrayViewD, Axis, IxDyn};
use nnlens_core::{
    Activations, BackendOptions, CoreError, GradModel, LayerStructure, Loss, Model, ModelStructure,
    Parameter, Targets, TensorRequest,
};
use nnlens_onnx::{TensorFact, build_layers, read_graph};
use rayon::prelude::*;

use crate::error::{CandleError, Result};
use crate::graph::Graph;
use crate::ops::{Op, softmax_axis};
use crate::value::Value;

/// The floating-point precision every tensor of the model is computed in: `f32` by default
/// (what the shared models declare; an `f64` input is cast to `f32` by the graph), or `f64`
/// everywhere with the weights converted exactly, a reference for finite differences and for
/// checking the `f32` results (about half as fast). The registry's type, so that
/// [`BackendOptions::precision`] reaches the backend unchanged.
pub use nnlens_core::Precision;

/// Options of the candle backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CandleOptions {
    /// The precision of every floating-point tensor.
    pub precision: Precision,
    /// Worker threads for per-example gradients and batch chunks (`None`: rayon's global pool,
    /// one thread per core).
    pub threads: Option<usize>,
    /// The trainable tensors gradients are taken over (`--parameters` patterns,
    /// [`nnlens_core::select_parameters`]); `None`: all of them. The others are constants:
    /// neither their gradients nor the backward pass through their layers' weights are
    /// computed.
    pub parameters: Option<Vec<String>>,
}

impl From<&BackendOptions> for CandleOptions {
    fn from(o: &BackendOptions) -> Self {
        Self { precision: o.precision, threads: o.threads, parameters: o.parameters.clone() }
    }
}

/// The rows of a batch that one worker runs at once in [`Model::predict`].
const PREDICT_CHUNK: usize = 32;

/// What the loss is taken on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// `-log_softmax(z)[y]` of the tensor in the slot.
    LogitsCrossEntropy,
    /// `-ln p[y]` of the tensor in the slot.
    ProbabilityCrossEntropy,
    /// `mean (out - t)^2`.
    SquaredError,
}

/// An ONNX model run by candle, whose trainable tensors are its parameters (see the crate docs).
pub struct CandleModel {
    label: String,
    graph: Graph,
    structure: ModelStructure,
    tensors: Vec<LayerStructure>,
    precision: Precision,
    pool: Option<rayon::ThreadPool>,
    /// The output layer's slot.
    output: usize,
    /// The input of the softmax that produces the output, where one does (through
    /// `Identity`/`Dropout`), over the class axis.
    softmax_input: Option<usize>,
}

impl std::fmt::Debug for CandleModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandleModel")
            .field("label", &self.label)
            .field("precision", &self.precision)
            .field("parameters", &self.graph.parameters.len())
            .finish_non_exhaustive()
    }
}

impl CandleModel {
    /// Loads an ONNX file with the default options (`f32`, all cores).
    ///
    /// # Errors
    /// As [`Self::from_bytes`], plus [`CandleError::Io`] when the file cannot be read.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &CandleOptions::default())
    }

    /// Loads an ONNX file.
    ///
    /// # Errors
    /// As [`Self::from_bytes`], plus [`CandleError::Io`] when the file cannot be read.
    /// Tensors stored in an external file (PyTorch's `model.onnx.data`) are read from beside
    /// the model file.
    pub fn load_with(path: &Path, options: &CandleOptions) -> Result<Self> {
        let label = path.display().to_string();
        let proto = nnlens_onnx::read_model_file(path).map_err(|e| match e {
            nnlens_onnx::OnnxError::Io { path, source } => CandleError::Io { path, source },
            other => CandleError::Invalid { label: label.clone(), message: other.to_string() },
        })?;
        Self::from_proto(proto, &label, options)
    }

    /// Loads an ONNX model from the bytes of a file; `label` names it in errors.
    ///
    /// # Errors
    /// [`CandleError::Invalid`] when the bytes are not an ONNX model with one `f32`/`f64` input
    /// of known per-sample shape, [`CandleError::Unsupported`] naming the operator and the node
    /// for an operator this backend does not implement, [`CandleError::Node`] when a node fails
    /// on a test batch of zeros.
    pub fn from_bytes(bytes: &[u8], label: &str, options: &CandleOptions) -> Result<Self> {
        let invalid = |message: String| CandleError::Invalid { label: label.to_string(), message };
        let proto = nnlens_onnx::decode_model(bytes).map_err(|e| invalid(e.to_string()))?;
        Self::from_proto(proto, label, options)
    }

    /// Loads a decoded ONNX model (its external data already read); `label` names it in
    /// errors.
    ///
    /// # Errors
    /// As [`Self::from_bytes`].
    pub fn from_proto(
        mut proto: nnlens_onnx::proto::ModelProto,
        label: &str,
        options: &CandleOptions,
    ) -> Result<Self> {
        let invalid = |message: String| CandleError::Invalid { label: label.to_string(), message };
        let rewritten = nnlens_onnx::lower_unsupported(&mut proto).map_err(invalid)?;
        if !rewritten.is_empty() {
            tracing::debug!(?rewritten, "lowered operators");
        }
        let info = read_graph(&proto).map_err(invalid)?;
        let input = info.input_structure().map_err(invalid)?;
        let sample = input.shape.clone();
        let dtype = match options.precision {
            Precision::F32 => DType::F32,
            Precision::F64 => DType::F64,
        };
        let graph =
            Graph::compile(&proto, &info.input_name, dtype, label, options.parameters.as_deref())?;

        // What every tensor is at batch sizes 1 and 2, from running the graph on zeros.
        let run_zeros = |batch: usize| -> Result<Vec<Option<Value>>> {
            let mut shape = vec![batch];
            shape.extend_from_slice(&sample);
            let x =
                Tensor::zeros(shape, dtype, &Device::Cpu).map_err(|e| invalid(e.to_string()))?;
            graph.run(x, None, label)
        };
        let (one, two) = (run_zeros(1)?, run_zeros(2)?);
        let facts: Vec<TensorFact> = info
            .tensors
            .iter()
            .map(|t| {
                let slot = graph.slot_of(&t.name);
                let at = |values: &'_ [Option<Value>]| -> Option<Value> {
                    slot.and_then(|s| values[s].clone())
                };
                let (v1, v2) = (at(&one), at(&two));
                TensorFact {
                    is_float: matches!(v1, Some(Value::Float(_))),
                    at_batch_1: v1.as_ref().map(|v| v.dims().to_vec()),
                    at_batch_2: v2.as_ref().map(|v| v.dims().to_vec()),
                }
            })
            .collect();
        let layers = build_layers(&info, &input, &facts).map_err(invalid)?;
        let output_tensor = layers.structure.output_layer().tensor.clone();
        let output = graph
            .slot_of(&output_tensor)
            .ok_or_else(|| invalid(format!("output '{output_tensor}' is not in the graph")))?;
        let pool = match options.threads {
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n.max(1))
                    .build()
                    .map_err(|e| invalid(format!("cannot start {n} threads: {e}")))?,
            ),
            None => None,
        };
        let mut model = CandleModel {
            label: label.to_string(),
            graph,
            structure: layers.structure,
            tensors: layers.tensors,
            precision: options.precision,
            pool,
            output,
            softmax_input: None,
        };
        model.softmax_input = model.find_softmax_input();
        Ok(model)
    }

    /// Follows the output back through aliases to a softmax over the last axis of a
    /// `[batch, classes]` tensor, and returns that softmax's input (the logits).
    fn find_softmax_input(&self) -> Option<usize> {
        let mut slot = self.output;
        loop {
            let node = self.graph.producer(slot)?;
            match &node.op {
                Op::Identity | Op::Dropout => slot = node.inputs.first().copied().flatten()?,
                Op::Softmax { axis, log: false, .. } => {
                    let shape = &self.structure.output_layer().shape;
                    let last = shape.len() as i64; // axis of the class scores, batch included
                    let on_classes = shape.len() == 1 && (*axis == -1 || *axis == last);
                    return if on_classes { node.inputs.first().copied().flatten() } else { None };
                }
                _ => return None,
            }
        }
    }

    /// The file or label the model was loaded from.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The compute precision.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Every activation tensor of the graph, not only each layer's chosen tensor.
    pub fn tensors(&self) -> &[LayerStructure] {
        &self.tensors
    }

    /// The name of the tensor the cross-entropy from probabilities is taken on: the logits
    /// that feed the output's softmax, or `None` when the output is not a softmax (the loss is
    /// then `-ln p[y]` of the output itself).
    pub fn logits_tensor(&self) -> Option<&str> {
        self.softmax_input.map(|s| self.graph.names[s].as_str())
    }

    fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    fn engine(&self, e: impl std::fmt::Display) -> CandleError {
        CandleError::Engine { label: self.label.clone(), message: e.to_string() }
    }

    /// Checks a batch and returns its size.
    fn check_batch(&self, x: &ArrayViewD<'_, f32>) -> Result<usize> {
        Ok(self.structure.input.check_batch(&self.label, x)?)
    }

    fn tensor_of(&self, x: ArrayViewD<'_, f32>) -> Result<Tensor> {
        let shape = x.shape().to_vec();
        let data: Vec<f32> = x.iter().copied().collect();
        let t = Tensor::from_vec(data, shape, &Device::Cpu).map_err(|e| self.engine(e))?;
        t.to_dtype(self.graph.dtype).map_err(|e| self.engine(e))
    }

    fn to_array(&self, t: &Tensor) -> Result<ArrayD<f32>> {
        let dims = t.dims().to_vec();
        let data = t
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| self.engine(e))?;
        ArrayD::from_shape_vec(IxDyn(&dims), data).map_err(|e| self.engine(e))
    }

    /// Runs rows of a batch and returns the tensors of `slots`.
    fn run_chunk(&self, x: ArrayViewD<'_, f32>, slots: &[usize]) -> Result<Vec<ArrayD<f32>>> {
        let values = self.graph.run(self.tensor_of(x)?, Some(slots), &self.label)?;
        slots
            .iter()
            .map(|&s| match &values[s] {
                Some(Value::Float(t)) => self.to_array(t),
                _ => Err(self.engine(format!("'{}' was not computed", self.graph.names[s]))),
            })
            .collect()
    }

    fn run(&self, x: ArrayViewD<'_, f32>, layers: Option<&[&str]>) -> Result<Activations> {
        let request = TensorRequest::new(&self.structure, &self.tensors, layers)?;
        let batch = self.check_batch(&x)?;
        let slots: Vec<usize> = request
            .distinct()
            .iter()
            .map(|t| {
                self.graph
                    .slot_of(t)
                    .ok_or_else(|| self.engine(format!("tensor '{t}' is not in the graph")))
            })
            .collect::<Result<_>>()?;
        let starts: Vec<usize> = (0..batch).step_by(PREDICT_CHUNK).collect();
        let chunks: Vec<Vec<ArrayD<f32>>> = self.install(|| {
            starts
                .par_iter()
                .map(|&a| {
                    let b = (a + PREDICT_CHUNK).min(batch);
                    self.run_chunk(x.slice_axis(Axis(0), (a..b).into()), &slots)
                })
                .collect::<Result<_>>()
        })?;
        let arrays = nnlens_core::join_chunks(chunks)?;
        Ok(request.assemble(arrays))
    }

    /// The loss of one example (a scalar tensor in the compute precision).
    fn example_loss(
        &self,
        x: ArrayViewD<'_, f32>,
        class: Option<usize>,
        target: Option<&[f32]>,
        head: Head,
        slot: usize,
    ) -> Result<Tensor> {
        let values = self.graph.run(self.tensor_of(x)?, Some(&[slot]), &self.label)?;
        let out = match &values[slot] {
            Some(Value::Float(t)) => t.clone(),
            _ => return Err(self.engine(format!("'{}' was not computed", self.graph.names[slot]))),
        };
        let e = |e: candle_core::Error| self.engine(e);
        let k: usize = out.dims()[1..].iter().product();
        let out = out.reshape((1, k)).map_err(e)?;
        match head {
            Head::LogitsCrossEntropy | Head::ProbabilityCrossEntropy => {
                let y = class.ok_or_else(|| self.engine("a class label is needed"))?;
                let picked = if head == Head::LogitsCrossEntropy {
                    softmax_axis(&out, 1, true).and_then(|l| l.narrow(1, y, 1))
                } else {
                    out.narrow(1, y, 1).and_then(|p| p.log())
                };
                picked.and_then(|v| v.neg()).and_then(|v| v.sum_all()).map_err(e)
            }
            Head::SquaredError => {
                let t = target.ok_or_else(|| self.engine("a regression target is needed"))?;
                let t: Vec<f64> = t.iter().map(|&v| f64::from(v)).collect();
                let t = Tensor::from_vec(t, (1, k), &Device::Cpu)
                    .and_then(|t| t.to_dtype(self.graph.dtype))
                    .map_err(e)?;
                out.sub(&t).and_then(|d| d.sqr()).and_then(|d| d.mean_all()).map_err(e)
            }
        }
    }

    /// The flattened gradient of the loss of one example, written into `row`.
    fn example_gradient(
        &self,
        x: ArrayViewD<'_, f32>,
        class: Option<usize>,
        target: Option<&[f32]>,
        head: Head,
        slot: usize,
        row: &mut [f32],
    ) -> Result<()> {
        let e = |e: candle_core::Error| self.engine(e);
        let loss = self.example_loss(x, class, target, head, slot)?;
        let grads = loss.backward().map_err(e)?;
        let mut offset = 0;
        for (var, p) in self.graph.vars.iter().zip(&self.graph.parameters) {
            let n = p.len();
            let dst = &mut row[offset..offset + n];
            match grads.get(var.as_tensor()) {
                Some(g) => copy_into(g, dst).map_err(e)?,
                None => dst.fill(0.0),
            }
            offset += n;
        }
        Ok(())
    }

    /// Checks a batch, its targets and the loss; returns the batch size, what the loss is
    /// taken on and the slot of that tensor.
    fn check_loss(
        &self,
        x: &ArrayViewD<'_, f32>,
        targets: Targets<'_>,
        loss: Loss,
    ) -> nnlens_core::Result<(usize, Head, usize)> {
        let batch = self.check_batch(x)?;
        if targets.len() != batch {
            return Err(CoreError::Shape {
                what: "targets".into(),
                expected: format!("{batch} (one per example)"),
                got: targets.len().to_string(),
            });
        }
        let outputs = self.structure.output_layer().number_activations();
        let (head, slot) = match (loss, targets) {
            (Loss::CrossEntropyFromProbabilities, Targets::Classes(_)) => {
                match self.softmax_input {
                    Some(s) => (Head::LogitsCrossEntropy, s),
                    None => (Head::ProbabilityCrossEntropy, self.output),
                }
            }
            (Loss::CrossEntropyFromLogits, Targets::Classes(_)) => {
                (Head::LogitsCrossEntropy, self.output)
            }
            (Loss::MeanSquaredError, Targets::Values(v)) => {
                if v.ncols() != outputs {
                    return Err(CoreError::Shape {
                        what: "regression targets".into(),
                        expected: format!("[{batch}, {outputs}] (the output's size)"),
                        got: format!("{:?}", v.shape()),
                    });
                }
                if let Some((index, &value)) = v.iter().enumerate().find(|(_, t)| !t.is_finite()) {
                    return Err(CoreError::NonFinite { what: "the targets".into(), value, index });
                }
                (Head::SquaredError, self.output)
            }
            (loss, _) => {
                return Err(CoreError::InvalidParameters {
                    what: "gradient loss".into(),
                    reason: format!(
                        "{loss:?} needs {} targets",
                        if loss == Loss::MeanSquaredError { "real-valued" } else { "class" }
                    ),
                });
            }
        };
        if let Targets::Classes(labels) = targets {
            if self.structure.output_layer().shape.len() != 1 {
                return Err(CoreError::Shape {
                    what: "the model's output for a cross-entropy".into(),
                    expected: "class scores [batch, classes]".into(),
                    got: format!("{:?} per example", self.structure.output_layer().shape),
                });
            }
            if let Some((row, &label)) = labels.iter().enumerate().find(|(_, l)| **l >= outputs) {
                return Err(CoreError::Label { label, row, classes: outputs });
            }
        }
        Ok((batch, head, slot))
    }

    /// The loss of every example of a batch, computed as for
    /// [`GradModel::per_example_gradients`] in the model's precision.
    ///
    /// # Errors
    /// As [`GradModel::per_example_gradients`].
    pub fn losses(
        &self,
        x: ArrayViewD<'_, f32>,
        targets: Targets<'_>,
        loss: Loss,
    ) -> nnlens_core::Result<Vec<f64>> {
        let (batch, head, slot) = self.check_loss(&x, targets, loss)?;
        let losses = self.install(|| {
            (0..batch)
                .into_par_iter()
                .map(|i| {
                    let xi = x.slice_axis(Axis(0), (i..i + 1).into());
                    let (class, target) = match targets {
                        Targets::Classes(c) => (Some(c[i]), None),
                        Targets::Values(v) => (None, Some(v.row(i).to_vec())),
                    };
                    let l = self.example_loss(xi, class, target.as_deref(), head, slot)?;
                    l.to_dtype(DType::F64)
                        .and_then(|l| l.to_scalar::<f64>())
                        .map_err(|e| self.engine(e))
                })
                .collect::<Result<Vec<f64>>>()
        })?;
        Ok(losses)
    }
}

/// Copies a tensor's values into `dst` as `f32`, straight from its storage.
fn copy_into(t: &Tensor, dst: &mut [f32]) -> candle_core::Result<()> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("gradient is not contiguous".into()))?;
    if end - start != dst.len() {
        candle_core::bail!("a gradient of {} values for a parameter of {}", end - start, dst.len());
    }
    match &*storage {
        Storage::Cpu(CpuStorage::F32(v)) => dst.copy_from_slice(&v[start..end]),
        Storage::Cpu(CpuStorage::F64(v)) => {
            for (d, &s) in dst.iter_mut().zip(&v[start..end]) {
                *d = s as f32;
            }
        }
        _ => candle_core::bail!("gradient of dtype {:?}", t.dtype()),
    }
    Ok(())
}

impl Model for CandleModel {
    fn backend(&self) -> &'static str {
        "candle"
    }

    fn structure(&self) -> &ModelStructure {
        &self.structure
    }

    fn predict(
        &self,
        x: ArrayViewD<'_, f32>,
        layers: Option<&[&str]>,
    ) -> nnlens_core::Result<Activations> {
        Ok(self.run(x, layers)?)
    }
}

impl GradModel for CandleModel {
    fn backend(&self) -> &'static str {
        "candle"
    }

    fn structure(&self) -> &ModelStructure {
        &self.structure
    }

    fn parameters(&self) -> &[Parameter] {
        &self.graph.parameters
    }

    fn output(&self, x: ArrayViewD<'_, f32>) -> nnlens_core::Result<ArrayD<f32>> {
        self.predict_output(x)
    }

    fn per_example_gradients(
        &self,
        x: ArrayViewD<'_, f32>,
        targets: Targets<'_>,
        loss: Loss,
    ) -> nnlens_core::Result<Array2<f32>> {
        let (batch, head, slot) = self.check_loss(&x, targets, loss)?;
        let p = self.parameter_count();
        if p == 0 {
            return Err(CandleError::Invalid {
                label: self.label.clone(),
                message: "the model has no trainable (float initializer) parameter".into(),
            }
            .into());
        }
        let mut data = vec![0f32; batch * p];
        self.install(|| {
            data.par_chunks_mut(p).enumerate().try_for_each(|(i, row)| {
                let xi = x.slice_axis(Axis(0), (i..i + 1).into());
                let (class, target) = match targets {
                    Targets::Classes(c) => (Some(c[i]), None),
                    Targets::Values(v) => (None, Some(v.row(i).to_vec())),
                };
                self.example_gradient(xi, class, target.as_deref(), head, slot, row)?;
                if let Some((index, &value)) = row.iter().enumerate().find(|(_, g)| !g.is_finite())
                {
                    return Err(CoreError::NonFinite {
                        what: format!("the loss gradient of example {i}"),
                        value,
                        index,
                    }
                    .into());
                }
                Ok::<(), CandleError>(())
            })
        })?;
        Ok(Array2::from_shape_vec((batch, p), data).expect("batch x parameters values"))
    }
}
