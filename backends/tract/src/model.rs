use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use nnlens_core::{
    Activations, BackendOptions, CoreError, LayerStructure, Model, ModelStructure, TensorRequest,
};
use rayon::prelude::*;
use tract_onnx::pb;
use tract_onnx::prelude::tract_ndarray::{ArrayD, ArrayViewD, Axis, Slice};
use tract_onnx::prelude::*;

use crate::graph::{GraphInfo, read_graph};
use nnlens_onnx::{TensorFact, build_layers};

/// Errors of the tract backend.
#[derive(Debug, thiserror::Error)]
pub enum TractError {
    /// The model file could not be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model tract can use.
    #[error("{label}: not a usable ONNX model: {message}")]
    Invalid {
        /// The file or label.
        label: String,
        /// Why.
        message: String,
    },
    /// tract failed to prepare or run the model.
    #[error("{label}: {message}")]
    Engine {
        /// The file or label.
        label: String,
        /// The engine's error chain.
        message: String,
    },
    /// An error of the core abstractions (unknown layer, wrong shape...).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<TractError> for CoreError {
    fn from(e: TractError) -> Self {
        match e {
            TractError::Core(core) => core,
            TractError::Io { path, source } => CoreError::Io { path: path.into(), source },
            other => CoreError::Backend { backend: "tract", message: other.to_string() },
        }
    }
}

fn chain(e: &TractError_) -> String {
    format!("{e:#}")
}

type TractError_ = tract_onnx::prelude::TractError;
type Plan = Arc<PlanEntry>;

/// An optimised plan for one chunk size and set of outputs, with the run states that finished
/// their work (a state keeps its operators' scratch buffers between runs).
struct PlanEntry {
    runnable: Arc<TypedRunnableModel>,
    idle: Mutex<Vec<TypedSimpleState>>,
}
/// The element type and (if concrete) shape of a typed output.
type OutputFact = (DatumType, Option<Vec<usize>>);

/// The input element types nnlens can feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputType {
    F32,
    F64,
}

/// An ONNX model run by tract.
pub struct TractModel {
    label: String,
    inference: InferenceModel,
    input_type: InputType,
    structure: ModelStructure,
    /// Every activation tensor (including those that are not the chosen tensor of a layer).
    tensors: Vec<LayerStructure>,
    plans: Mutex<HashMap<(usize, Vec<String>), Plan>>,
    /// Worker threads the chunks of a batch run on.
    workers: usize,
    /// The pool of `workers` threads when that is not rayon's global pool size.
    pool: Option<rayon::ThreadPool>,
}

/// The chunks each worker gets from one batch (when the batch is large enough).
pub const CHUNKS_PER_WORKER: usize = 16;
/// The fewest inputs in one model run of several workers: smaller chunks cost more in
/// per-run overhead than they gain in balance.
pub const MIN_CHUNK_ROWS: usize = 8;

/// The inputs per model run when `workers` threads share a batch of `batch` inputs.
///
/// One worker runs the whole batch at once. Several cut it into chunks, about
/// [`CHUNKS_PER_WORKER`] each but at least [`MIN_CHUNK_ROWS`] inputs, which they take in
/// turn, each with a reused run state: the workers finish within a small chunk of each other
/// and small runs keep activations in the cache. Measured with 2 cores and batches of 256
/// (`nnlens bench`, medians of 5 rounds): fashion_cnn.onnx 1.9x one thread with chunks of 8,
/// where two halves of the batch reached 1.5-1.8x; the much cheaper mnist_mlp.onnx 1.45x.
pub fn chunk_rows(batch: usize, workers: usize) -> usize {
    if workers <= 1 {
        return batch.max(1);
    }
    batch.div_ceil(workers * CHUNKS_PER_WORKER).max(MIN_CHUNK_ROWS)
}

impl std::fmt::Debug for TractModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractModel").field("label", &self.label).finish_non_exhaustive()
    }
}

impl TractModel {
    /// Loads an ONNX file.
    ///
    /// # Errors
    /// [`TractError::Io`] when the file cannot be read, [`TractError::Invalid`] when it is not an
    /// ONNX model with one tensor input of known per-sample shape, [`TractError::Engine`] when
    /// tract cannot type it.
    pub fn load(path: &Path, options: &BackendOptions) -> Result<Self, TractError> {
        let bytes = std::fs::read(path)
            .map_err(|source| TractError::Io { path: path.display().to_string(), source })?;
        Self::from_bytes(&bytes, &path.display().to_string(), options)
    }

    /// Loads an ONNX model from the bytes of a file; `label` names it in errors.
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn from_bytes(
        bytes: &[u8],
        label: &str,
        options: &BackendOptions,
    ) -> Result<Self, TractError> {
        let invalid = |message: String| TractError::Invalid { label: label.to_string(), message };
        let onnx = tract_onnx::onnx();
        let mut proto: pb::ModelProto = onnx
            .proto_model_for_read(&mut &*bytes)
            .map_err(|e| invalid(format!("cannot decode the protobuf ({})", chain(&e))))?;
        let rewritten = crate::rewrite::lower_unsupported(&mut proto).map_err(invalid)?;
        if !rewritten.is_empty() {
            tracing::debug!(?rewritten, "lowered operators tract lacks");
        }
        let graph = read_graph(&proto).map_err(invalid)?;
        let input = graph.input_structure().map_err(invalid)?;
        let input_type = if input.dtype == "f64" { InputType::F64 } else { InputType::F32 };
        let sample = input.shape.clone();
        let inference = onnx
            .model_for_proto_model(&proto)
            .map_err(|e| invalid(format!("tract cannot read the graph: {}", chain(&e))))?;

        let mut model = TractModel {
            label: label.to_string(),
            inference,
            input_type,
            structure: ModelStructure::new(
                input,
                vec![LayerStructure {
                    name: graph.input_name.clone(),
                    tensor: graph.input_name.clone(),
                    op: "Input".into(),
                    shape: sample.clone(),
                    channel_axis: None,
                }],
                0,
            )?,
            tensors: Vec::new(),
            plans: Mutex::new(HashMap::new()),
            workers: 1,
            pool: None,
        };
        model.set_workers(options.threads)?;
        model.discover(&graph)?;
        Ok(model)
    }

    /// Every activation tensor of the graph, not only each layer's chosen tensor.
    pub fn tensors(&self) -> &[LayerStructure] {
        &self.tensors
    }

    fn engine(&self, e: TractError_) -> TractError {
        TractError::Engine { label: self.label.clone(), message: chain(&e) }
    }

    fn input_fact(&self, batch: usize) -> InferenceFact {
        let mut shape = vec![batch];
        shape.extend_from_slice(&self.structure.input.shape);
        match self.input_type {
            InputType::F32 => f32::fact(shape).into(),
            InputType::F64 => f64::fact(shape).into(),
        }
    }

    /// Types the graph at batch sizes 1 and 2 with every node output selected, and groups the
    /// activations into layers by the rules of `nnlens_onnx::build_layers`.
    fn discover(&mut self, graph: &GraphInfo) -> Result<(), TractError> {
        let names: Vec<&str> = graph.tensors.iter().map(|t| t.name.as_str()).collect();
        let typed = |batch: usize| -> Result<Vec<OutputFact>, TractError> {
            let mut m = self.inference.clone();
            m.set_input_fact(0, self.input_fact(batch)).map_err(|e| self.engine(e))?;
            m.select_outputs_by_name(names.iter()).map_err(|e| self.engine(e))?;
            let typed = m.into_typed().map_err(|e| self.engine(e))?;
            (0..names.len())
                .map(|i| {
                    let fact = typed.output_fact(i).map_err(|e| self.engine(e))?;
                    Ok((fact.datum_type, fact.shape.as_concrete().map(|s| s.to_vec())))
                })
                .collect()
        };
        let (one, two) = (typed(1)?, typed(2)?);
        let facts: Vec<TensorFact> = one
            .into_iter()
            .zip(two)
            .map(|((dt, at_batch_1), (_, at_batch_2))| TensorFact {
                is_float: dt.is_float(),
                at_batch_1,
                at_batch_2,
            })
            .collect();
        let layers = build_layers(graph, &self.structure.input, &facts)
            .map_err(|message| TractError::Invalid { label: self.label.clone(), message })?;
        self.structure = layers.structure;
        self.tensors = layers.tensors;
        Ok(())
    }

    fn plan(&self, batch: usize, tensors: &[String]) -> Result<Plan, TractError> {
        let key = (batch, tensors.to_vec());
        if let Some(plan) = self.plans.lock().map_err(|_| self.poisoned())?.get(&key) {
            return Ok(plan.clone());
        }
        tracing::debug!(batch, layers = tensors.len(), "optimising a tract plan");
        let mut m = self.inference.clone();
        m.set_input_fact(0, self.input_fact(batch)).map_err(|e| self.engine(e))?;
        m.select_outputs_by_name(tensors.iter()).map_err(|e| self.engine(e))?;
        let runnable =
            m.into_optimized().and_then(|m| m.into_runnable()).map_err(|e| self.engine(e))?;
        let plan = Arc::new(PlanEntry { runnable, idle: Mutex::new(Vec::new()) });
        let mut plans = self.plans.lock().map_err(|_| self.poisoned())?;
        // Another worker may have made the same plan meanwhile: keep the first.
        Ok(plans.entry(key).or_insert(plan).clone())
    }

    fn poisoned(&self) -> TractError {
        TractError::Engine {
            label: self.label.clone(),
            message: "plan cache poisoned by an earlier panic".into(),
        }
    }

    /// Sets the number of worker threads (`None`: all cores).
    ///
    /// # Errors
    /// The thread pool cannot be created.
    pub fn set_workers(&mut self, threads: Option<usize>) -> Result<(), TractError> {
        let workers = threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        self.pool = if workers > 1 && workers != rayon::current_num_threads() {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .thread_name(|i| format!("nnlens-tract-{i}"))
                .build()
                .map_err(|e| TractError::Engine {
                    label: self.label.clone(),
                    message: format!("cannot start {workers} worker threads: {e}"),
                })?;
            Some(pool)
        } else {
            None
        };
        self.workers = workers;
        Ok(())
    }

    /// The number of threads the chunks of a batch run on.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Runs a batch: chunks of [`chunk_rows`] inputs go to the workers, and the chunks'
    /// activations are joined in order.
    fn run(
        &self,
        x: ArrayViewD<'_, f32>,
        layers: Option<&[&str]>,
    ) -> Result<Activations, TractError> {
        let request = TensorRequest::new(&self.structure, &self.tensors, layers)?;
        let batch = self.structure.input.check_batch(&self.label, &x)?;
        let unique = request.distinct();
        let x = x.as_standard_layout();
        let rows = chunk_rows(batch, self.workers);
        let chunks: Vec<(usize, usize)> =
            (0..batch).step_by(rows).map(|a| (a, (a + rows).min(batch))).collect();
        let run = |&(a, b): &(usize, usize)| {
            self.run_chunk(x.slice_axis(Axis(0), Slice::from(a..b)), unique)
        };
        let results: Vec<Vec<ArrayD<f32>>> = if chunks.len() == 1 || self.workers == 1 {
            chunks.iter().map(run).collect::<Result<_, _>>()?
        } else if let Some(pool) = &self.pool {
            pool.install(|| chunks.par_iter().map(run).collect::<Result<_, _>>())?
        } else {
            chunks.par_iter().map(run).collect::<Result<_, _>>()?
        };
        let arrays = nnlens_core::join_chunks(results)?;
        Ok(request.assemble(arrays))
    }

    /// Runs one chunk with an idle state of its plan (or a new one), returning the tensors in
    /// the order of `unique`.
    fn run_chunk(
        &self,
        x: ArrayViewD<'_, f32>,
        unique: &[String],
    ) -> Result<Vec<ArrayD<f32>>, TractError> {
        let plan = self.plan(x.shape()[0], unique)?;
        let tensor: Tensor = match self.input_type {
            InputType::F32 => x.to_owned().into(),
            InputType::F64 => x.mapv(f64::from).into(),
        };
        let idle = plan.idle.lock().map_err(|_| self.poisoned())?.pop();
        let mut state = match idle {
            Some(state) => state,
            None => plan.runnable.spawn().map_err(|e| self.engine(e))?,
        };
        let outputs = state.run(tvec!(tensor.into())).map_err(|e| self.engine(e))?;
        plan.idle.lock().map_err(|_| self.poisoned())?.push(state);
        outputs
            .into_iter()
            .map(|value| {
                let t = value.into_tensor();
                if t.datum_type() == f32::datum_type() {
                    t.into_plain_array::<f32>()
                } else {
                    t.cast_to::<f32>().and_then(|c| c.into_owned().into_plain_array::<f32>())
                }
                .map_err(|e| self.engine(e))
            })
            .collect()
    }
}

impl Model for TractModel {
    fn backend(&self) -> &'static str {
        "tract"
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
