//! ONNX external data (PyTorch's `model.onnx` + `model.onnx.data`): a model built in code with
//! its weights moved to a data file loads in every backend from its path, with activations
//! identical to the single-file model's; a missing or short data file, and a model given as
//! bytes, are errors naming the tensor and the file.

#[path = "../../backends/candle/tests/common/mod.rs"]
mod common;

use std::path::Path;

use nnlens_core::BackendOptions;
use nnlens_onnx::proto::{ModelProto, StringStringEntryProto};
use prost::Message;

/// `bytes` as a model file `model.onnx` in `dir` whose float initializers live in
/// `model.onnx.data`, as the dynamo exporter writes them (raw little-endian bytes, 64-byte
/// aligned offsets).
fn write_external(bytes: &[u8], dir: &Path) -> usize {
    let mut model = ModelProto::decode(bytes).unwrap();
    let mut data: Vec<u8> = Vec::new();
    let mut moved = 0;
    for t in &mut model.graph.as_mut().unwrap().initializer {
        let raw: Vec<u8> = if !t.float_data.is_empty() {
            t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        } else if !t.double_data.is_empty() {
            t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        } else {
            continue;
        };
        while !data.len().is_multiple_of(64) {
            data.push(0);
        }
        let entry = |key: &str, value: String| StringStringEntryProto { key: key.into(), value };
        t.external_data = vec![
            entry("location", "model.onnx.data".into()),
            entry("offset", data.len().to_string()),
            entry("length", raw.len().to_string()),
        ];
        t.data_location = nnlens_onnx::EXTERNAL;
        t.float_data.clear();
        t.double_data.clear();
        data.extend_from_slice(&raw);
        moved += 1;
    }
    std::fs::write(dir.join("model.onnx"), model.encode_to_vec()).unwrap();
    std::fs::write(dir.join("model.onnx.data"), data).unwrap();
    moved
}

/// The inference backends that can run here (ort only where its library is found).
fn backends() -> Vec<&'static nnlens_core::BackendEntry> {
    nnlens_plugins::link();
    let all: Vec<_> =
        nnlens_core::backends().into_iter().filter(|b| (b.available)().is_ok()).collect();
    assert!(all.iter().any(|b| b.name == "tract") && all.iter().any(|b| b.name == "candle"));
    if std::env::var_os("NNLENS_REQUIRE_ORT").is_some() {
        assert!(all.iter().any(|b| b.name == "ort"), "NNLENS_REQUIRE_ORT: ONNX Runtime not found");
    }
    all
}

#[test]
fn external_weights_load_in_every_backend_with_identical_activations() {
    let bytes = common::mobile_model(18, false, None);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(write_external(&bytes, dir.path()), common::MOBILE_PARAMS.len());
    let path = dir.path().join("model.onnx");
    let x = common::ops_inputs(4, 21);
    let options = BackendOptions::default();
    let mut tract_external = None;
    for b in backends() {
        let single = (b.load_bytes)(&bytes, "single.onnx", &options).unwrap();
        let external = (b.load)(&path, &options).unwrap();
        assert_eq!(single.structure(), external.structure(), "{}", b.name);
        let (want, got) =
            (single.predict(x.view(), None).unwrap(), external.predict(x.view(), None).unwrap());
        assert_eq!(want.len(), external.structure().layers.len());
        for ((name, a), (_, g)) in want.iter().zip(got.iter()) {
            assert_eq!(a, g, "{}: layer {name}", b.name);
        }
        // And the backends agree with each other (within f32 rounding).
        let output = got.iter().last().unwrap().1.clone();
        match &tract_external {
            None => tract_external = Some(output),
            Some(t) => {
                let diff = nnlens_tests::max_abs_diff(t, &output);
                assert!(diff < 1e-5, "{} vs the first backend: {diff}", b.name);
            }
        }
        // The same model as bytes cannot find its data: the error says to load the file.
        let e = (b.load_bytes)(&std::fs::read(&path).unwrap(), "bytes.onnx", &options)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("conv_w") && e.contains("model.onnx.data"), "{}: {e}", b.name);
    }
}

#[test]
fn a_missing_or_short_data_file_names_the_tensor_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_external(&common::mobile_model(13, false, None), dir.path());
    let path = dir.path().join("model.onnx");
    let data = dir.path().join("model.onnx.data");
    let full = std::fs::read(&data).unwrap();
    std::fs::write(&data, &full[..full.len() - 4]).unwrap();
    for b in backends() {
        let e = (b.load)(&path, &BackendOptions::default()).err().unwrap().to_string();
        assert!(e.contains("head_b") && e.contains("truncated"), "{}: {e}", b.name);
    }
    std::fs::remove_file(&data).unwrap();
    for b in backends() {
        let e = (b.load)(&path, &BackendOptions::default()).err().unwrap().to_string();
        assert!(
            e.contains("conv_w") && e.contains("model.onnx.data") && e.contains("does not exist"),
            "{}: {e}",
            b.name
        );
    }
}

#[test]
fn torchscript_pickle_and_keras_files_are_named_in_every_backend() {
    for (bytes, what) in [
        (&b"PK\x03\x04\x00\x00archive/data.pkl"[..], "TorchScript"),
        (&[0x80, 0x02, b'c', b't'][..], "pickle"),
        (&b"\x89HDF\r\n\x1a\n\x00\x00"[..], "Keras"),
    ] {
        for b in backends() {
            let e = (b.load_bytes)(bytes, "model.pt", &BackendOptions::default())
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(what) && e.contains("not an ONNX model"), "{}: {e}", b.name);
        }
    }
}
