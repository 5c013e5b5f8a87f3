//! [`OrtModel`]: a [`Model`] run by ONNX Runtime.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ndarray::{ArrayD, ArrayViewD};
use nnlens_core::{
    Activations, BackendOptions, CoreError, Device, LayerStructure, Model, ModelStructure,
    TensorRequest,
};
use nnlens_onnx::{TensorFact, build_layers};
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

/// What can go wrong with the ONNX Runtime backend.
#[derive(Debug, thiserror::Error)]
pub enum OrtError {
    /// The runtime library cannot be found or loaded.
    #[error("{0}")]
    Library(String),
    /// The model file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The bytes are not an ONNX model nnlens can use.
    #[error("{label}: not a usable ONNX model: {message}")]
    Invalid {
        /// The model.
        label: String,
        /// Why.
        message: String,
    },
    /// ONNX Runtime refused the model or failed to run it.
    #[error("onnxruntime, {label}: {message}")]
    Engine {
        /// The model.
        label: String,
        /// ONNX Runtime's message.
        message: String,
    },
    /// An error of nnlens-core (shapes, names) or of the structure discovery.
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<OrtError> for CoreError {
    fn from(e: OrtError) -> Self {
        match e {
            OrtError::Core(e) => e,
            OrtError::Library(reason) => {
                CoreError::BackendUnavailable { name: "ort".into(), reason }
            }
            OrtError::Io { path, source } => CoreError::Io { path: path.into(), source },
            other => CoreError::Backend { backend: "ort", message: other.to_string() },
        }
    }
}

const HOW_TO_GET_IT: &str = "install the ONNX Runtime library with `pip install onnxruntime` (for \
     the python3 on the PATH), or point ORT_DYLIB_PATH at its libonnxruntime.so.<version>";

/// The ONNX Runtime library this process uses: `ORT_DYLIB_PATH`, else the one of the
/// `onnxruntime` Python package.
///
/// # Errors
/// Neither is there; the message says how to get one.
pub fn ort_library() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("ORT_DYLIB_PATH={} is not a file; {HOW_TO_GET_IT}", path.display()))
        };
    }
    let script = "import onnxruntime, os, glob\n\
                  d = os.path.join(os.path.dirname(onnxruntime.__file__), 'capi')\n\
                  print(sorted(glob.glob(os.path.join(d, 'libonnxruntime.so*')))[-1])";
    let found = std::process::Command::new("python3")
        .args(["-c", script])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_file());
    found.ok_or_else(|| {
        format!("no ONNX Runtime library: ORT_DYLIB_PATH is unset and python3 has no onnxruntime; {HOW_TO_GET_IT}")
    })
}

/// The process-wide ONNX Runtime environment (the library is loaded once).
pub(crate) fn environment() -> Result<&'static ort::environment::Environment, String> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = ort_library()?;
        let builder = ort::init_from(&path)
            .map_err(|e| format!("cannot load {}: {e}; {HOW_TO_GET_IT}", path.display()))?;
        builder
            .with_name("nnlens")
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime from {}: {e}", path.display()))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Whether a tensor is floating-point, and its shape where ONNX Runtime returned it.
type TensorType = (bool, Option<Vec<usize>>);

/// An ONNX model run by ONNX Runtime.
pub struct OrtModel {
    label: String,
    bytes: Vec<u8>,
    structure: ModelStructure,
    tensors: Vec<LayerStructure>,
    f64_input: bool,
    threads: usize,
    /// The CPU, or the CUDA GPU of ONNX Runtime's CUDA execution provider.
    device: Device,
    /// Where the model's external data files are, when it has some.
    external_dir: Option<PathBuf>,
    /// Idle sessions, by requested outputs and intra-op thread count: a caller takes one (or
    /// makes one) for its run and puts it back, so callers on several threads run at once.
    sessions: Mutex<HashMap<SessionKey, Vec<Session>>>,
}

/// The outputs a session returns and the intra-op threads it runs on.
type SessionKey = (Vec<String>, usize);

impl std::fmt::Debug for OrtModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtModel").field("label", &self.label).finish_non_exhaustive()
    }
}

impl OrtModel {
    /// Loads an ONNX file.
    ///
    /// # Errors
    /// No runtime library, an unreadable file, or a model that ONNX Runtime or the structure
    /// discovery refuses.
    pub fn load(path: &Path, options: &BackendOptions) -> Result<Self, OrtError> {
        let bytes = std::fs::read(path)
            .map_err(|source| OrtError::Io { path: path.display().to_string(), source })?;
        Self::parse(
            &bytes,
            &path.display().to_string(),
            Some(nnlens_onnx::model_dir(path)),
            options,
        )
    }

    /// Loads an ONNX model from the bytes of a file; `label` names it in errors.
    ///
    /// # Errors
    /// As [`Self::load`].
    pub fn from_bytes(
        bytes: &[u8],
        label: &str,
        options: &BackendOptions,
    ) -> Result<Self, OrtError> {
        Self::parse(bytes, label, None, options)
    }

    /// Loads ONNX bytes whose external data (if any) is in `model_dir`.
    fn parse(
        bytes: &[u8],
        label: &str,
        model_dir: Option<&Path>,
        options: &BackendOptions,
    ) -> Result<Self, OrtError> {
        environment().map_err(OrtError::Library)?;
        let invalid = |message: String| OrtError::Invalid { label: label.to_string(), message };
        // The graph as every nnlens ONNX backend reads it (the same rewrites, so the same
        // tensors and layer names); ONNX Runtime itself runs the file's own bytes.
        let mut proto = nnlens_onnx::decode_model(bytes).map_err(|e| invalid(e.to_string()))?;
        // External data: checked here so that a missing or short file is named plainly; ONNX
        // Runtime reads it itself, from the model's directory.
        let external = nnlens_onnx::check_external_data(&proto, model_dir)
            .map_err(|e| invalid(e.to_string()))?;
        nnlens_onnx::lower_unsupported(&mut proto).map_err(invalid)?;
        let info = nnlens_onnx::read_graph(&proto).map_err(invalid)?;
        let input = info.input_structure().map_err(invalid)?;
        let f64_input = input.dtype == "f64";
        let sample = input.shape.clone();
        let threads = options
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let mut model = Self {
            label: label.to_string(),
            bytes: bytes.to_vec(),
            structure: ModelStructure::new(
                input.clone(),
                vec![LayerStructure {
                    name: input.name.clone(),
                    tensor: input.name.clone(),
                    op: "Input".into(),
                    shape: sample,
                    channel_axis: None,
                }],
                0,
            )?,
            tensors: Vec::new(),
            f64_input,
            threads,
            device: options.device,
            external_dir: (external > 0).then(|| model_dir.map(Path::to_path_buf)).flatten(),
            sessions: Mutex::new(HashMap::new()),
        };
        // What every tensor is at batch sizes 1 and 2, from running the graph on zeros with
        // every node output requested.
        let names: Vec<String> = info.tensors.iter().map(|t| t.name.clone()).collect();
        let (one, two) = (model.tensor_types(&names, 1)?, model.tensor_types(&names, 2)?);
        let facts: Vec<TensorFact> = one
            .into_iter()
            .zip(two)
            .map(|((is_float, at_batch_1), (_, at_batch_2))| TensorFact {
                is_float,
                at_batch_1,
                at_batch_2,
            })
            .collect();
        let layers = build_layers(&info, &input, &facts).map_err(invalid)?;
        model.structure = layers.structure;
        model.tensors = layers.tensors;
        // Refuse a model ONNX Runtime cannot run now, not at the first prediction.
        let output = [model.structure.output_layer().tensor.clone()];
        let session = model.new_session(&output, model.threads)?;
        model.give_back(&output, model.threads, session);
        Ok(model)
    }

    fn engine(&self, message: impl std::fmt::Display) -> OrtError {
        OrtError::Engine { label: self.label.clone(), message: message.to_string() }
    }

    /// An idle session whose outputs are `tensors` on `intra` threads, or a new one.
    fn take_session(&self, tensors: &[String], intra: usize) -> Result<Session, OrtError> {
        let idle = {
            let mut sessions =
                self.sessions.lock().map_err(|_| self.engine("session cache poisoned"))?;
            sessions.get_mut(&(tensors.to_vec(), intra)).and_then(Vec::pop)
        };
        match idle {
            Some(session) => Ok(session),
            None => self.new_session(tensors, intra),
        }
    }

    /// Puts a session back among the idle ones.
    fn give_back(&self, tensors: &[String], intra: usize, session: Session) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.entry((tensors.to_vec(), intra)).or_default().push(session);
        }
    }

    /// A session of the model with `tensors` as its outputs, on `intra` intra-op threads.
    fn new_session(&self, tensors: &[String], intra: usize) -> Result<Session, OrtError> {
        let env = environment().map_err(OrtError::Library)?;
        let bytes = with_outputs(&self.bytes, tensors);
        let mut builder = Session::builder(env).map_err(|e| self.engine(e))?;
        builder = builder.with_intra_threads(intra).map_err(|e| self.engine(e))?;
        if let Device::Cuda(n) = self.device {
            let cuda = ort::ep::CUDA::default()
                .with_device_id(i32::try_from(n).unwrap_or(i32::MAX))
                .build()
                .error_on_failure();
            builder = builder.with_execution_providers([cuda]).map_err(|e| {
                self.engine(format!(
                    "cannot use CUDA GPU {n} ({e}); ONNX Runtime runs on a GPU only with the \
                     onnxruntime-gpu wheel (`pip install onnxruntime-gpu`) and a CUDA device"
                ))
            })?;
        }
        if let Some(dir) = &self.external_dir {
            // A model created from memory finds its external initializers in this folder.
            builder = builder
                .with_config_entry(
                    "session.model_external_initializers_file_folder_path",
                    dir.to_string_lossy(),
                )
                .map_err(|e| self.engine(e))?;
        }
        builder.commit_from_memory(&bytes).map_err(|e| self.engine(e))
    }

    /// Runs a batch of zeros with `names` as outputs (in a session that is not kept): whether
    /// each is a floating-point tensor ONNX Runtime returns, and its shape.
    fn tensor_types(&self, names: &[String], batch: usize) -> Result<Vec<TensorType>, OrtError> {
        let mut session = self.new_session(names, self.threads)?;
        let mut shape = vec![batch];
        shape.extend_from_slice(&self.structure.input.shape);
        let input_name = self.structure.input.name.clone();
        let outputs = if self.f64_input {
            let x = ArrayD::<f64>::zeros(shape);
            let value = TensorRef::from_array_view(&x).map_err(|e| self.engine(e))?;
            session.run(ort::inputs![input_name => value]).map_err(|e| self.engine(e))?
        } else {
            let x = ArrayD::<f32>::zeros(shape);
            let value = TensorRef::from_array_view(&x).map_err(|e| self.engine(e))?;
            session.run(ort::inputs![input_name => value]).map_err(|e| self.engine(e))?
        };
        Ok(names
            .iter()
            .map(|name| match outputs.get(name.as_str()).map(|v| v.dtype()) {
                Some(ValueType::Tensor { ty, shape, .. }) => (
                    matches!(ty, TensorElementType::Float32 | TensorElementType::Float64),
                    shape.iter().map(|&d| usize::try_from(d).ok()).collect(),
                ),
                _ => (false, None),
            })
            .collect())
    }

    /// Every activation tensor of the graph.
    pub fn tensors(&self) -> &[LayerStructure] {
        &self.tensors
    }

    fn run(
        &self,
        x: ArrayViewD<'_, f32>,
        layers: Option<&[&str]>,
    ) -> Result<Activations, OrtError> {
        let request = TensorRequest::new(&self.structure, &self.tensors, layers)?;
        self.structure.input.check_batch(&self.label, &x)?;
        let unique = request.distinct();
        // Called from a worker of a parallel loop (linearity's chunks), a run takes one core,
        // as the loop's other workers take the others: intra-op threads on top would only
        // contend (per-class linearity on fashion_cnn, 10,000 images, 2 cores: 19.1 s with one
        // shared session of 2 threads, 15.7 s with a session of 1 thread per worker). Called
        // from one thread, a run has every core.
        let intra = if rayon::current_thread_index().is_some() { 1 } else { self.threads };
        let mut session = self.take_session(unique, intra)?;
        let arrays = self.run_session(&mut session, x, unique);
        self.give_back(unique, intra, session);
        Ok(request.assemble(arrays?))
    }

    /// Runs `x` in `session` and returns the `unique` outputs, as f32.
    fn run_session(
        &self,
        session: &mut Session,
        x: ArrayViewD<'_, f32>,
        unique: &[String],
    ) -> Result<Vec<ArrayD<f32>>, OrtError> {
        let x = x.as_standard_layout();
        let input_name = self.structure.input.name.clone();
        let outputs = if self.f64_input {
            let x64 = x.mapv(f64::from);
            let value = TensorRef::from_array_view(&x64).map_err(|e| self.engine(e))?;
            session.run(ort::inputs![input_name => value]).map_err(|e| self.engine(e))?
        } else {
            let value = TensorRef::from_array_view(&x).map_err(|e| self.engine(e))?;
            session.run(ort::inputs![input_name => value]).map_err(|e| self.engine(e))?
        };
        let mut arrays: Vec<ArrayD<f32>> = Vec::with_capacity(unique.len());
        for t in unique {
            let value =
                outputs.get(t.as_str()).ok_or_else(|| self.engine(format!("no output '{t}'")))?;
            let array = match value.try_extract_array::<f32>() {
                Ok(a) => a.to_owned(),
                Err(_) => value
                    .try_extract_array::<f64>()
                    .map_err(|e| self.engine(format!("output '{t}': {e}")))?
                    .mapv(|v| v as f32),
            };
            arrays.push(array);
        }
        Ok(arrays)
    }
}

/// The model's bytes with `tensors` appended as graph outputs: protobuf merges a repeated
/// embedded message given twice, so `ModelProto.graph (7) { output (12) { name (1) } }` after
/// the file's own bytes adds the outputs without decoding the model. ONNX Runtime accepts
/// outputs without a type and infers it.
fn with_outputs(bytes: &[u8], tensors: &[String]) -> Vec<u8> {
    fn varint(mut v: usize, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn field(tag: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.push((tag << 3) | 2);
        varint(payload.len(), out);
        out.extend_from_slice(payload);
    }
    let mut graph = Vec::new();
    for t in tensors {
        let mut value_info = Vec::new();
        field(1, t.as_bytes(), &mut value_info);
        field(12, &value_info, &mut graph);
    }
    let mut out = bytes.to_vec();
    field(7, &graph, &mut out);
    out
}

impl Model for OrtModel {
    fn backend(&self) -> &'static str {
        "ort"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_appended_as_a_graph_message() {
        let bytes = with_outputs(b"", &["ab".to_string()]);
        // graph(7, LEN) { output(12, LEN) { name(1, LEN) "ab" } }
        assert_eq!(bytes, vec![0x3a, 6, 0x62, 4, 0x0a, 2, b'a', b'b']);
    }

    #[test]
    fn a_missing_library_is_an_error_that_says_how_to_get_one() {
        // SAFETY: tests of this crate run this one check that touches the variable.
        unsafe { std::env::set_var("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so") };
        let e = ort_library().unwrap_err();
        unsafe { std::env::remove_var("ORT_DYLIB_PATH") };
        assert!(e.contains("pip install onnxruntime"), "{e}");
    }
}
