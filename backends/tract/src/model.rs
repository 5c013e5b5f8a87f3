use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::{Arc, Mutex};

use nnlens_core::{
    Activations, BackendOptions, CoreError, LayerStructure, Model, ModelStructure, TensorRequest,
};
use tract_onnx::pb;
use tract_onnx::prelude::tract_ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, Slice};
use tract_onnx::prelude::*;

use nnlens_onnx::{GraphInfo, TensorFact, build_layers, read_graph};

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

/// The inputs of every model run: a batch is cut into chunks of exactly this many rows, the
/// last one padded with zeros (whose outputs are dropped).
///
/// One shape for every run makes a batch's activations independent of the number of workers
/// (bitwise, on one machine) and of the other inputs of its chunk: tract picks its matrix
/// kernels by the shapes of the products (a lone input runs a matrix-vector kernel, a 16-row
/// tile another), and each rounds in its own order, so with chunk sizes that followed the
/// worker count the same batch gave other last bits on 1 and 2 threads. An input's place in
/// its chunk still matters in the last bit (a kernel's lanes may sum in different orders), so
/// other batch sizes agree to f32 rounding, not bitwise.
///
/// Runs of 4 to 64 inputs were about 20% faster per input than runs of 256 on
/// fashion_cnn.onnx on one thread (the activations of a small run stay in the cache); 8 is
/// also few enough that the workers of a batch of 256 share its 32 chunks evenly.
pub const CHUNK_ROWS: usize = 8;

/// The row ranges of a batch, in the order the workers take them: chunks of [`CHUNK_ROWS`]
/// inputs, the last one shorter when the batch is not a multiple (it is padded to
/// [`CHUNK_ROWS`] when run).
pub fn chunk_ranges(batch: usize) -> Vec<std::ops::Range<usize>> {
    (0..batch).step_by(CHUNK_ROWS).map(|start| start..(start + CHUNK_ROWS).min(batch)).collect()
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
    ///
    /// Tensors stored in an external file (PyTorch's `model.onnx.data`) are read from beside
    /// the model file.
    pub fn load(path: &Path, options: &BackendOptions) -> Result<Self, TractError> {
        let bytes = std::fs::read(path)
            .map_err(|source| TractError::Io { path: path.display().to_string(), source })?;
        let dir = nnlens_onnx::model_dir(path);
        Self::parse(&bytes, &path.display().to_string(), Some(dir), options)
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
        Self::parse(bytes, label, None, options)
    }

    /// Loads ONNX bytes whose external data (if any) is in `model_dir`.
    fn parse(
        bytes: &[u8],
        label: &str,
        model_dir: Option<&Path>,
        options: &BackendOptions,
    ) -> Result<Self, TractError> {
        let invalid = |message: String| TractError::Invalid { label: label.to_string(), message };
        if let Some(what) = nnlens_onnx::not_onnx(bytes) {
            return Err(invalid(what.to_string()));
        }
        // The shapes exporters write for intermediate tensors (value_info) are not used: they
        // name the batch axis symbolically (PyTorch's dynamo exporter: `N`), which cannot be
        // unified with the concrete batch every plan is optimised for. tract types the graph
        // from the input.
        let onnx = tract_onnx::onnx().with_ignore_value_info(true);
        let mut proto: pb::ModelProto = onnx
            .proto_model_for_read(&mut &*bytes)
            .map_err(|e| invalid(format!("cannot decode the protobuf ({})", chain(&e))))?;
        // The model is decoded once, by tract: the layer rules read a copy of what they need.
        let mut ours = crate::graph::to_ours(&proto);
        // External data: checked here so that a missing or short file is named plainly; tract
        // reads it itself.
        nnlens_onnx::check_external_data(&ours, model_dir).map_err(|e| invalid(e.to_string()))?;
        let rewritten = crate::graph::lower_unsupported(&mut proto, &mut ours).map_err(invalid)?;
        if !rewritten.is_empty() {
            tracing::debug!(?rewritten, "lowered operators tract lacks");
        }
        let graph = read_graph(&ours).map_err(invalid)?;
        drop(ours);
        let input = graph.input_structure().map_err(invalid)?;
        let input_type = if input.dtype == "f64" { InputType::F64 } else { InputType::F32 };
        let sample = input.shape.clone();
        let dir = model_dir
            .map(|d| {
                d.to_str()
                    .ok_or_else(|| invalid(format!("the directory {} is not UTF-8", d.display())))
            })
            .transpose()?;
        let parsed = onnx
            .parse(&proto, dir)
            .map_err(|e| invalid(format!("tract cannot read the graph: {}", chain(&e))))?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(invalid(format!(
                "tract cannot read the graph: inputs {:?} are never defined",
                parsed.unresolved_inputs
            )));
        }
        let inference = parsed.model;

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

    /// The file or label the model was loaded from.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn engine_error(&self, e: TractError_) -> TractError {
        self.engine(e)
    }

    /// The typed, decluttered graph at a concrete batch, with its own outputs.
    pub(crate) fn typed(&self, batch: usize) -> Result<TypedModel, TractError> {
        let mut m = self.inference.clone();
        m.set_input_fact(0, self.input_fact(batch)).map_err(|e| self.engine(e))?;
        m.into_typed().and_then(|m| m.into_decluttered()).map_err(|e| self.engine(e))
    }

    /// The runnable plan of `tensors` at a concrete batch (cached as every run's).
    pub(crate) fn runnable(
        &self,
        batch: usize,
        tensors: &[String],
    ) -> Result<Arc<TypedRunnableModel>, TractError> {
        Ok(self.plan(batch, tensors)?.runnable.clone())
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
        let runnable = m
            .into_typed()
            .and_then(|m| m.into_decluttered())
            .and_then(|mut m| {
                let replaced = crate::kernels::rewrite(&mut m)?;
                tracing::debug!(replaced, "nodes run by nnlens's own kernels");
                m.into_optimized()
            })
            .and_then(|m| m.into_runnable())
            .map_err(|e| self.engine(e))?;
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

    /// Runs a batch in chunks of [`CHUNK_ROWS`] inputs. A batch of exactly one chunk: its
    /// outputs are moved out as they are. Otherwise the outputs of the whole batch are
    /// allocated first, and whichever worker runs a chunk copies its activations into their
    /// rows while they are still in the cache, so no thread joins the chunks afterwards.
    fn run(
        &self,
        x: ArrayViewD<'_, f32>,
        layers: Option<&[&str]>,
    ) -> Result<Activations, TractError> {
        let request = TensorRequest::new(&self.structure, &self.tensors, layers)?;
        let batch = self.structure.input.check_batch(&self.label, &x)?;
        let unique = request.distinct();
        let x = x.as_standard_layout();
        if batch == CHUNK_ROWS {
            return Ok(request.assemble(self.run_chunk(x.view(), unique)?));
        }
        // A caller that is itself a rayon worker already keeps the cores busy (the linearity
        // measure runs its chunks of instances in parallel, for one): the chunks then run in
        // turn on its own thread, as nested workers would only contend.
        let workers = if rayon::current_thread_index().is_some() { 1 } else { self.workers };
        let chunks = chunk_ranges(batch);
        let mut outputs = self.batch_outputs(batch, unique)?;
        {
            // For each chunk, the rows of every output that it fills.
            let mut rows: Vec<Vec<ArrayViewMutD<'_, MaybeUninit<f32>>>> =
                chunks.iter().map(|_| Vec::with_capacity(outputs.len())).collect();
            for output in &mut outputs {
                let mut rest = output.view_mut();
                for (chunk, dest) in chunks.iter().zip(&mut rows) {
                    let (head, tail) = rest.split_at(Axis(0), chunk.len());
                    dest.push(head);
                    rest = tail;
                }
            }
            let rows: Vec<Mutex<Vec<ArrayViewMutD<'_, MaybeUninit<f32>>>>> =
                rows.into_iter().map(Mutex::new).collect();
            let run = |c: usize| -> Result<(), TractError> {
                let input = x.slice_axis(Axis(0), Slice::from(chunks[c].clone()));
                // Each chunk is run once, so its lock is never contended.
                let mut dest = rows[c].lock().map_err(|_| self.poisoned())?;
                if input.shape()[0] == CHUNK_ROWS {
                    self.run_chunk_into(input, unique, &mut dest)
                } else {
                    let mut shape = input.shape().to_vec();
                    shape[0] = CHUNK_ROWS;
                    let mut padded = ArrayD::<f32>::zeros(shape);
                    padded.slice_axis_mut(Axis(0), Slice::from(0..input.shape()[0])).assign(&input);
                    self.run_chunk_into(padded.view(), unique, &mut dest)
                }
            };
            if workers == 1 || chunks.len() == 1 {
                (0..chunks.len()).try_for_each(run)?;
            } else {
                self.run_on_workers(chunks.len(), run)?;
            }
        }
        // SAFETY: the chunks cover the batch, and every chunk's run succeeded, so it wrote
        // every value of its rows of every output (run_chunk_into writes all of `dest` or
        // fails).
        let outputs = outputs.into_iter().map(|o| unsafe { o.assume_init() }).collect();
        Ok(request.assemble(outputs))
    }

    /// Outputs for a batch of `batch` inputs, shaped as the plan for chunks of [`CHUNK_ROWS`]
    /// gives each tensor beyond the batch axis, not yet written (zeroing them first would
    /// write every value twice: the allocator recycles memory, so it is not free).
    fn batch_outputs(
        &self,
        batch: usize,
        tensors: &[String],
    ) -> Result<Vec<ArrayD<MaybeUninit<f32>>>, TractError> {
        let rows = CHUNK_ROWS;
        let plan = self.plan(rows, tensors)?;
        (0..tensors.len())
            .map(|i| {
                let fact = plan.runnable.model().output_fact(i).map_err(|e| self.engine(e))?;
                let mut shape = fact.shape.as_concrete().map(|s| s.to_vec()).unwrap_or_default();
                if shape.first() != Some(&rows) {
                    return Err(TractError::Engine {
                        label: self.label.clone(),
                        message: format!(
                            "tensor {} has shape {:?} for {rows} inputs: no batch axis first",
                            tensors[i], fact.shape
                        ),
                    });
                }
                shape[0] = batch;
                Ok(ArrayD::uninit(shape))
            })
            .collect()
    }

    /// Runs `run(0)`, ..., `run(chunks - 1)` on the workers, each taking the next index in
    /// order as it finishes one. After an error the
    /// workers take no more chunks, and the first error is returned.
    fn run_on_workers(
        &self,
        chunks: usize,
        run: impl Fn(usize) -> Result<(), TractError> + Sync,
    ) -> Result<(), TractError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let next = AtomicUsize::new(0);
        let error: Mutex<Option<TractError>> = Mutex::new(None);
        let work = || {
            loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= chunks {
                    break;
                }
                if let Err(e) = run(c) {
                    // No more chunks for anyone.
                    next.store(chunks, Ordering::Relaxed);
                    if let Ok(mut first) = error.lock() {
                        first.get_or_insert(e);
                    }
                    break;
                }
            }
        };
        // One task per worker, taken by whichever thread is free: the first takes chunks until
        // none is left, one that starts later finds none and ends. (A broadcast ran its task on
        // every thread and returned only when each had: a thread busy with other work of the
        // pool, the accumulation of the previous block say, held the batch back after its
        // chunks were done.)
        let work = &work;
        match &self.pool {
            Some(pool) => pool.scope(|scope| spawn_tasks(scope, self.workers, work)),
            None => rayon::scope(|scope| spawn_tasks(scope, self.workers, work)),
        };
        match error.into_inner() {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(e),
            Err(_) => Err(self.poisoned()),
        }
    }

    /// Runs one chunk with an idle state of its plan (or a new one), returning the engine's
    /// outputs in the order of `unique`.
    fn run_state(
        &self,
        x: ArrayViewD<'_, f32>,
        unique: &[String],
    ) -> Result<TVec<TValue>, TractError> {
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
        Ok(outputs)
    }

    /// Runs one chunk and moves its tensors out as `f32` arrays, in the order of `unique`.
    fn run_chunk(
        &self,
        x: ArrayViewD<'_, f32>,
        unique: &[String],
    ) -> Result<Vec<ArrayD<f32>>, TractError> {
        self.run_state(x, unique)?
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

    /// Runs one chunk and copies its tensors (as `f32`) into `dest`, in the order of `unique`:
    /// the first rows of each, as many as `dest` has (the rest are padding). It writes every
    /// value of `dest`, or fails.
    fn run_chunk_into(
        &self,
        x: ArrayViewD<'_, f32>,
        unique: &[String],
        dest: &mut [ArrayViewMutD<'_, MaybeUninit<f32>>],
    ) -> Result<(), TractError> {
        let outputs = self.run_state(x, unique)?;
        if outputs.len() != dest.len() {
            return Err(TractError::Engine {
                label: self.label.clone(),
                message: format!("{} outputs for {} tensors", outputs.len(), dest.len()),
            });
        }
        for ((value, dest), name) in outputs.iter().zip(dest.iter_mut()).zip(unique) {
            let cast = value.cast_to::<f32>().map_err(|e| self.engine(e))?;
            let got = cast.to_plain_array_view::<f32>().map_err(|e| self.engine(e))?;
            let got = got.slice_axis(Axis(0), Slice::from(0..dest.shape()[0].min(got.shape()[0])));
            if got.shape() != dest.shape() {
                return Err(TractError::Engine {
                    label: self.label.clone(),
                    message: format!(
                        "tensor {name} has shape {:?} for a chunk, expected {:?}",
                        got.shape(),
                        dest.shape()
                    ),
                });
            }
            match (got.as_slice(), dest.as_slice_mut()) {
                (Some(from), Some(to)) => {
                    for (to, &from) in to.iter_mut().zip(from) {
                        to.write(from);
                    }
                }
                _ => got.assign_to(dest.view_mut()),
            }
        }
        Ok(())
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

/// Spawns `tasks` runs of `work` in `scope`.
fn spawn_tasks<'s>(scope: &rayon::Scope<'s>, tasks: usize, work: &'s (impl Fn() + Sync)) {
    for _ in 0..tasks {
        scope.spawn(move |_| work());
    }
}
