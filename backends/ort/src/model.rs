//! [`OrtModel`]: a [`Model`] run by ONNX Runtime.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ndarray::{ArrayD, ArrayViewD};
use nnlens_core::{Activations, BackendOptions, CoreError, LayerStructure, Model, ModelStructure};
use ort::session::Session;
use ort::value::TensorRef;

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

/// An ONNX model run by ONNX Runtime.
pub struct OrtModel {
    label: String,
    bytes: Vec<u8>,
    structure: ModelStructure,
    tensors: Vec<LayerStructure>,
    f64_input: bool,
    threads: usize,
    sessions: Mutex<HashMap<Vec<String>, std::sync::Arc<Mutex<Session>>>>,
}

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
    ) -> Result<Self, OrtError> {
        environment().map_err(OrtError::Library)?;
        // The structure (layer names, shapes, channel axes) as the tract backend finds it.
        let discovered = nnlens_tract::TractModel::from_bytes(bytes, label, options)
            .map_err(|e| OrtError::Core(e.into()))?;
        let structure = discovered.structure().clone();
        let tensors = discovered.tensors().to_vec();
        let f64_input = structure.input.dtype == "f64";
        let threads = options
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let model = Self {
            label: label.to_string(),
            bytes: bytes.to_vec(),
            structure,
            tensors,
            f64_input,
            threads,
            sessions: Mutex::new(HashMap::new()),
        };
        // Refuse a model ONNX Runtime cannot run now, not at the first prediction.
        model.session(&[model.structure.output_layer().tensor.clone()])?;
        Ok(model)
    }

    fn engine(&self, message: impl std::fmt::Display) -> OrtError {
        OrtError::Engine { label: self.label.clone(), message: message.to_string() }
    }

    /// The session whose outputs are `tensors` (created on first use).
    fn session(&self, tensors: &[String]) -> Result<std::sync::Arc<Mutex<Session>>, OrtError> {
        let mut sessions =
            self.sessions.lock().map_err(|_| self.engine("session cache poisoned"))?;
        if let Some(s) = sessions.get(tensors) {
            return Ok(s.clone());
        }
        let env = environment().map_err(OrtError::Library)?;
        let bytes = with_outputs(&self.bytes, tensors);
        let mut builder = Session::builder(env).map_err(|e| self.engine(e))?;
        builder = builder.with_intra_threads(self.threads).map_err(|e| self.engine(e))?;
        let session = builder.commit_from_memory(&bytes).map_err(|e| self.engine(e))?;
        let session = std::sync::Arc::new(Mutex::new(session));
        sessions.insert(tensors.to_vec(), session.clone());
        Ok(session)
    }

    /// Every activation tensor of the graph.
    pub fn tensors(&self) -> &[LayerStructure] {
        &self.tensors
    }

    fn resolve(&self, names: &[&str]) -> Result<Vec<String>, OrtError> {
        names
            .iter()
            .map(|&n| match self.structure.layer_index(n) {
                Ok(i) => Ok(self.structure.layers[i].tensor.clone()),
                Err(e) => self
                    .tensors
                    .iter()
                    .find(|t| t.tensor == n)
                    .map(|t| t.tensor.clone())
                    .ok_or(OrtError::Core(e)),
            })
            .collect()
    }

    fn run(&self, x: ArrayViewD<'_, f32>, names: &[&str]) -> Result<Activations, OrtError> {
        let input = &self.structure.input;
        if x.ndim() != input.shape.len() + 1 || x.shape()[1..] != input.shape[..] {
            return Err(CoreError::Shape {
                what: format!("input of {}", self.label),
                expected: format!("[batch, {:?}]", input.shape),
                got: format!("{:?}", x.shape()),
            }
            .into());
        }
        if x.shape()[0] == 0 {
            return Err(CoreError::Empty("the input batch".into()).into());
        }
        let tensors = self.resolve(names)?;
        let mut unique: Vec<String> = Vec::new();
        for t in &tensors {
            if !unique.contains(t) {
                unique.push(t.clone());
            }
        }
        let session = self.session(&unique)?;
        let mut session = session.lock().map_err(|_| self.engine("session poisoned"))?;
        let x = x.as_standard_layout();
        let input_name = input.name.clone();
        let outputs = if self.f64_input {
            let x64 = x.mapv(f64::from);
            let value = TensorRef::from_array_view(&x64).map_err(|e| self.engine(e))?;
            session.run(ort::inputs![input_name => value]).map_err(|e| self.engine(e))?
        } else {
            let value = TensorRef::from_array_view(&x).map_err(|e| self.engine(e))?;
            session.run(ort::inputs![input_name => value]).map_err(|e| self.engine(e))?
        };
        let mut arrays: HashMap<&str, ArrayD<f32>> = HashMap::new();
        for t in &unique {
            let value =
                outputs.get(t.as_str()).ok_or_else(|| self.engine(format!("no output '{t}'")))?;
            let array = match value.try_extract_array::<f32>() {
                Ok(a) => a.to_owned(),
                Err(_) => value
                    .try_extract_array::<f64>()
                    .map_err(|e| self.engine(format!("output '{t}': {e}")))?
                    .mapv(|v| v as f32),
            };
            arrays.insert(t.as_str(), array);
        }
        let mut result = Activations::new();
        for (name, tensor) in names.iter().zip(&tensors) {
            result.push(*name, arrays[tensor.as_str()].clone());
        }
        Ok(result)
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
        let all;
        let names = match layers {
            Some(names) => names,
            None => {
                all = self.structure.names();
                &all
            }
        };
        Ok(self.run(x, names)?)
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
