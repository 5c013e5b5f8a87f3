//! ONNX *external data*: tensors whose values live in a file beside the model, as PyTorch's
//! exporter writes them (`torch.onnx.export(..., dynamo=True)` writes `model.onnx` and
//! `model.onnx.data`), and files that are not ONNX at all.
//!
//! A tensor stored outside has `data_location = EXTERNAL` and the keys `location` (a path
//! relative to the model file's directory), `offset` and `length` (bytes; defaults: 0 and the
//! rest of the file). The ONNX rules are kept: a location is relative and stays inside the
//! model's directory, and the bytes must be exactly the tensor's size.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use crate::OnnxError;
use crate::proto::{GraphProto, ModelProto, TensorProto, elem};

/// `data_location` of a tensor whose values are in an external file.
pub const EXTERNAL: i32 = 1;

/// Where an external tensor's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalLocation {
    /// The file, relative to the model's directory.
    pub location: String,
    /// The first byte.
    pub offset: u64,
    /// The number of bytes (`None`: to the end of the file).
    pub length: Option<u64>,
}

fn err(t: &TensorProto, message: String) -> OnnxError {
    OnnxError::External { tensor: t.name.clone(), message }
}

/// The location of an external tensor's values.
///
/// # Errors
/// [`OnnxError::External`] when `location` is missing, or `offset`/`length` are not numbers.
pub fn external_location(t: &TensorProto) -> Result<ExternalLocation, OnnxError> {
    let get = |key: &str| t.external_data.iter().find(|e| e.key == key).map(|e| e.value.as_str());
    let number = |key: &str| -> Result<Option<u64>, OnnxError> {
        get(key)
            .map(|v| v.parse::<u64>().map_err(|_| err(t, format!("has external {key} '{v}'"))))
            .transpose()
    };
    let location = get("location")
        .filter(|l| !l.is_empty())
        .ok_or_else(|| err(t, "is stored externally but names no location".into()))?;
    Ok(ExternalLocation {
        location: location.to_string(),
        offset: number("offset")?.unwrap_or(0),
        length: number("length")?,
    })
}

/// The bytes one value of an element type takes (`None` for strings and unknown types).
fn element_size(data_type: i32) -> Option<u64> {
    Some(match data_type {
        elem::UINT8 | elem::INT8 | elem::BOOL => 1,
        elem::UINT16 | elem::INT16 | elem::FLOAT16 | elem::BFLOAT16 => 2,
        elem::FLOAT | elem::INT32 | elem::UINT32 => 4,
        elem::INT64 | elem::DOUBLE | elem::UINT64 => 8,
        _ => return None,
    })
}

/// Every tensor of a graph and of its sub-graphs stored in an external file, among the
/// initializers and the tensors of node attributes (`Constant` values...), in file order.
fn external_tensors<'a>(g: &'a GraphProto, out: &mut Vec<&'a TensorProto>) {
    out.extend(g.initializer.iter().filter(|t| t.data_location == EXTERNAL));
    for a in g.node.iter().flat_map(|n| &n.attribute) {
        out.extend(a.t.iter().chain(&a.tensors).filter(|t| t.data_location == EXTERNAL));
        for sub in a.g.iter().chain(&a.graphs) {
            external_tensors(sub, out);
        }
    }
}

/// The same tensors, to change: `f` is called on each, in the same order.
fn each_external_mut<E>(
    g: &mut GraphProto,
    f: &mut impl FnMut(&mut TensorProto) -> Result<(), E>,
) -> Result<(), E> {
    for t in g.initializer.iter_mut().filter(|t| t.data_location == EXTERNAL) {
        f(t)?;
    }
    for a in g.node.iter_mut().flat_map(|n| &mut n.attribute) {
        for t in a.t.iter_mut().chain(&mut a.tensors).filter(|t| t.data_location == EXTERNAL) {
            f(t)?;
        }
        for sub in a.g.iter_mut().chain(&mut a.graphs) {
            each_external_mut(sub, f)?;
        }
    }
    Ok(())
}

/// The external tensors of a model.
fn externals(model: &ModelProto) -> Vec<&TensorProto> {
    let mut out = Vec::new();
    if let Some(g) = &model.graph {
        external_tensors(g, &mut out);
    }
    out
}

/// Whether any tensor of the model is stored in an external file.
pub fn has_external_data(model: &ModelProto) -> bool {
    !externals(model).is_empty()
}

/// The file `location` names, checked to stay inside `dir` as ONNX requires.
fn resolve(t: &TensorProto, dir: &Path, location: &str) -> Result<PathBuf, OnnxError> {
    let relative = Path::new(location);
    let escapes = relative
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::RootDir | Component::Prefix(_)));
    if escapes {
        return Err(err(
            t,
            format!("has external location '{location}', which leaves the model's directory"),
        ));
    }
    Ok(dir.join(relative))
}

/// Files opened once, with their sizes.
#[derive(Default)]
struct Files(HashMap<PathBuf, (File, u64)>);

impl Files {
    fn get(&mut self, t: &TensorProto, path: &Path) -> Result<&mut (File, u64), OnnxError> {
        if !self.0.contains_key(path) {
            let file = File::open(path).map_err(|e| {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "which does not exist: keep the data file beside the model file, as the \
                     exporter wrote them"
                        .to_string()
                } else {
                    format!("which cannot be opened ({e})")
                };
                err(t, format!("has its values in {}, {why}", path.display()))
            })?;
            let size = file
                .metadata()
                .map_err(|e| err(t, format!("cannot read the size of {}: {e}", path.display())))?
                .len();
            self.0.insert(path.to_path_buf(), (file, size));
        }
        Ok(self.0.get_mut(path).expect("inserted above"))
    }
}

/// Where one external tensor's bytes are: its file (opened in `files`), offset and length,
/// checked against the ONNX rules and the file's size.
fn locate(
    t: &TensorProto,
    dir: Option<&Path>,
    files: &mut Files,
) -> Result<(PathBuf, u64, u64), OnnxError> {
    let at = external_location(t)?;
    let Some(dir) = dir else {
        return Err(err(
            t,
            format!(
                "has its values in the external file '{}', which is found beside the model file: \
                 load the model from its file, not from bytes",
                at.location
            ),
        ));
    };
    let path = resolve(t, dir, &at.location)?;
    let size = element_size(t.data_type)
        .ok_or_else(|| err(t, format!("of type {} cannot be external", elem::name(t.data_type))))?;
    let count = crate::tensor_dims(t)?
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .and_then(|n| n.checked_mul(size))
        .ok_or_else(|| err(t, format!("has dimensions {:?} whose size overflows", t.dims)))?;
    let (_, file_size) = files.get(t, &path)?;
    let file_size = *file_size;
    let length = at.length.unwrap_or_else(|| file_size.saturating_sub(at.offset));
    if length != count {
        return Err(err(
            t,
            format!(
                "has {length} external bytes in {} but its dimensions {:?} need {count}",
                at.location, t.dims
            ),
        ));
    }
    if at.offset.checked_add(length).is_none_or(|end| end > file_size) {
        return Err(err(
            t,
            format!(
                "reads bytes {}..{} of {}, which has {file_size}: the data file is truncated or \
                 belongs to another model",
                at.offset,
                at.offset.saturating_add(length),
                path.display()
            ),
        ));
    }
    Ok((path, at.offset, length))
}

/// Reads one external tensor's values into it.
fn load(t: &mut TensorProto, dir: Option<&Path>, files: &mut Files) -> Result<(), OnnxError> {
    let (path, offset, length) = locate(t, dir, files)?;
    let (file, _) = files.get(t, &path)?;
    let mut bytes = vec![0u8; usize::try_from(length).map_err(|_| err(t, "is too large".into()))?];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut bytes))
        .map_err(|e| err(t, format!("cannot read {}: {e}", path.display())))?;
    t.raw_data = bytes;
    t.data_location = 0;
    t.external_data.clear();
    Ok(())
}

/// Checks that every external tensor of the model can be read from `model_dir` (the model
/// file's directory; `None` for a model read from bytes): its file exists inside the directory
/// and holds exactly the tensor's bytes. Returns how many tensors are external.
///
/// # Errors
/// [`OnnxError::External`] naming the tensor and the file.
pub fn check_external_data(
    model: &ModelProto,
    model_dir: Option<&Path>,
) -> Result<usize, OnnxError> {
    let mut files = Files::default();
    let tensors = externals(model);
    for t in &tensors {
        locate(t, model_dir, &mut files)?;
    }
    Ok(tensors.len())
}

/// Reads the values of every external tensor into the model (`raw_data`), so that it no
/// longer needs its data files. Returns how many tensors were read.
///
/// # Errors
/// As [`check_external_data`].
pub fn load_external_data(
    model: &mut ModelProto,
    model_dir: Option<&Path>,
) -> Result<usize, OnnxError> {
    let mut files = Files::default();
    let mut count = 0;
    if let Some(g) = model.graph.as_mut() {
        each_external_mut(g, &mut |t| {
            count += 1;
            load(t, model_dir, &mut files)
        })?;
    }
    Ok(count)
}

/// What a file that is not ONNX is, judged by its first bytes, and what to do about it.
pub fn not_onnx(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"PK\x03\x04") {
        Some(
            "this is a zip archive, which is what torch.save and torch.jit.save write (a PyTorch \
             checkpoint or a TorchScript .pt file), not an ONNX model: export the model with \
             torch.onnx.export(model, example_input, \"model.onnx\") and give that file, or \
             run a TorchScript file with --backend tch (a build with the tch feature)",
        )
    } else if bytes.len() > 1 && bytes[0] == 0x80 && (2..=5).contains(&bytes[1]) {
        Some(
            "this is a Python pickle (a legacy torch.save checkpoint), not an ONNX model: load \
             it in PyTorch and export it with torch.onnx.export(model, example_input, \
             \"model.onnx\")",
        )
    } else if bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
        Some(
            "this is an HDF5 file (a Keras .h5 model), not an ONNX model: convert it with \
             tf2onnx (python -m tf2onnx.convert --keras model.h5 --output model.onnx)",
        )
    } else {
        None
    }
}

/// Reads an ONNX file and the external data beside it.
///
/// # Errors
/// [`OnnxError::Io`] for a file that cannot be read, [`OnnxError::NotOnnx`] for a file of
/// another kind, [`OnnxError::Decode`], or [`OnnxError::External`] for external data that
/// cannot be read.
pub fn read_model_file(path: &Path) -> Result<ModelProto, OnnxError> {
    let bytes = std::fs::read(path)
        .map_err(|source| OnnxError::Io { path: path.display().to_string(), source })?;
    let mut model = crate::decode_model(&bytes)?;
    load_external_data(&mut model, Some(model_dir(path)))?;
    Ok(model)
}

/// The directory of a model file (external locations are relative to it).
pub fn model_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::StringStringEntryProto;

    fn external(name: &str, location: &str, offset: u64, values: usize) -> TensorProto {
        let entry = |key: &str, value: String| StringStringEntryProto { key: key.into(), value };
        TensorProto {
            name: name.into(),
            dims: vec![values as i64],
            data_type: elem::FLOAT,
            data_location: EXTERNAL,
            external_data: vec![
                entry("location", location.into()),
                entry("offset", offset.to_string()),
                entry("length", (values * 4).to_string()),
            ],
            ..Default::default()
        }
    }

    fn model(tensors: Vec<TensorProto>) -> ModelProto {
        ModelProto::new(GraphProto { initializer: tensors, ..Default::default() }, 13)
    }

    #[test]
    fn external_values_are_read_from_beside_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let values: Vec<f32> = vec![1.5, -2.0, 3.25, 0.5, 7.0];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.path().join("m.onnx.data"), &bytes).unwrap();
        let mut m =
            model(vec![external("a", "m.onnx.data", 0, 2), external("b", "m.onnx.data", 8, 3)]);
        assert!(has_external_data(&m));
        assert_eq!(check_external_data(&m, Some(dir.path())).unwrap(), 2);
        assert_eq!(load_external_data(&mut m, Some(dir.path())).unwrap(), 2);
        assert!(!has_external_data(&m));
        let g = m.graph.as_ref().unwrap();
        assert_eq!(crate::float_values(&g.initializer[0]).unwrap(), [1.5, -2.0]);
        assert_eq!(crate::float_values(&g.initializer[1]).unwrap(), [3.25, 0.5, 7.0]);
    }

    #[test]
    fn missing_truncated_escaping_and_pathless_data_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short.data"), [0u8; 8]).unwrap();
        let e = |t: TensorProto, d: Option<&Path>| {
            check_external_data(&model(vec![t]), d).unwrap_err().to_string()
        };
        let missing = e(external("w", "gone.data", 0, 2), Some(dir.path()));
        assert!(
            missing.contains("'w'")
                && missing.contains("gone.data")
                && missing.contains("does not exist"),
            "{missing}"
        );
        let truncated = e(external("w", "short.data", 4, 2), Some(dir.path()));
        assert!(truncated.contains("truncated"), "{truncated}");
        let escaping = e(external("w", "../x.data", 0, 2), Some(dir.path()));
        assert!(escaping.contains("leaves the model's directory"), "{escaping}");
        let no_dir = e(external("w", "short.data", 0, 2), None);
        assert!(no_dir.contains("load the model from its file"), "{no_dir}");
        let mut wrong = external("w", "short.data", 0, 2);
        wrong.dims = vec![3];
        assert!(e(wrong, Some(dir.path())).contains("need 12"));
    }

    #[test]
    fn other_file_kinds_are_recognised() {
        assert!(not_onnx(b"PK\x03\x04rest").unwrap().contains("TorchScript"));
        assert!(not_onnx(&[0x80, 0x02, 0x63]).unwrap().contains("pickle"));
        assert!(not_onnx(b"\x89HDF\r\n\x1a\n").unwrap().contains("Keras"));
        assert!(not_onnx(&[0x08, 0x07]).is_none());
    }
}
