//! Writes the seed corpus of the fuzz targets: `nnlens-fuzz-seed REPO OUT` fills
//! `OUT/{idx,npy,table,onnx,spec}/` from the embedded sample and model under `REPO/run/assets`
//! (cut small) and from the crates' own writers. Run by `fuzz/seed-corpus.sh`.

use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ArrayD, IxDyn};
use ndarray_npy::WriteNpyExt;
use nnlens_datasets::idx::{IdxArray, IdxData, gzip, read_idx};
use nnlens_onnx::proto::{AttributeProto, ModelProto, NodeProto, TensorProto, elem};
use prost::Message;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn npy<A: WriteNpyExt>(a: &A) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    a.write_npy(&mut v)?;
    Ok(v)
}

fn idx(repo: &Path, out: &Path) -> Result<()> {
    let sample = repo.join("run/assets/fashion-mnist-sample");
    // The first two test images and eight labels of the embedded Fashion-MNIST sample.
    let images = read_idx(&sample.join("t10k-images-idx3-ubyte.gz"))?;
    let labels = read_idx(&sample.join("t10k-labels-idx1-ubyte.gz"))?;
    let (IdxData::U8(pixels), IdxData::U8(classes)) = (&images.data, &labels.data) else {
        return Err("the embedded sample is not u8 IDX".into());
    };
    let two = IdxArray { dims: vec![2, 28, 28], data: IdxData::U8(pixels[..2 * 784].to_vec()) };
    let eight = IdxArray { dims: vec![8], data: IdxData::U8(classes[..8].to_vec()) };
    let mut arrays = vec![("images-2", two), ("labels-8", eight)];
    arrays.extend([
        ("i8", IdxArray { dims: vec![3], data: IdxData::I8(vec![-128, 0, 127]) }),
        ("i16", IdxArray { dims: vec![2, 1], data: IdxData::I16(vec![-300, 300]) }),
        ("i32", IdxArray { dims: vec![1, 2], data: IdxData::I32(vec![-70000, 70000]) }),
        ("f32", IdxArray { dims: vec![2, 2], data: IdxData::F32(vec![0.5, -1.5, 3.25, 0.0]) }),
        ("f64", IdxArray { dims: vec![2, 1, 1], data: IdxData::F64(vec![1e-300, -2.0]) }),
        ("empty", IdxArray { dims: vec![0, 28], data: IdxData::U8(vec![]) }),
    ]);
    let dir = out.join("idx");
    for (name, a) in &arrays {
        let bytes = a.to_bytes();
        write(&dir, &format!("{name}.idx"), &bytes)?;
        write(&dir, &format!("{name}.idx.gz"), &gzip(&bytes))?;
    }
    // Truncated in the header and in the data.
    write(&dir, "truncated-header.idx", &arrays[0].1.to_bytes()[..9])?;
    write(&dir, "truncated-data.idx", &arrays[1].1.to_bytes()[..10])?;
    Ok(())
}

fn npy_corpus(repo: &Path, out: &Path) -> Result<()> {
    let dir = out.join("npy");
    let images = read_idx(&repo.join("run/assets/fashion-mnist-sample/t10k-images-idx3-ubyte.gz"))?;
    let first: Vec<f32> = images.to_f32()[..784].iter().map(|v| v / 255.0).collect();
    write(&dir, "image-f32.npy", &npy(&ArrayD::from_shape_vec(IxDyn(&[1, 28, 28]), first)?)?)?;
    write(
        &dir,
        "f64.npy",
        &npy(&Array2::from_shape_vec((2, 3), vec![0.1, -2.0, 3.5, 0.0, 1e300, -1e-300])?)?,
    )?;
    write(&dir, "u8.npy", &npy(&Array2::from_shape_vec((2, 2), vec![0u8, 7, 255, 9])?)?)?;
    write(&dir, "i64.npy", &npy(&Array1::from(vec![-3i64, 5, 1 << 40]))?)?;
    write(&dir, "i16.npy", &npy(&Array1::from(vec![-3i16, 5]))?)?;
    write(&dir, "bool.npy", &npy(&Array1::from(vec![true, false, true]))?)?;
    write(&dir, "scalar.npy", &npy(&ArrayD::from_elem(IxDyn(&[]), 2.5f32))?)?;
    let mut fortran = npy(&Array2::from_shape_vec((2, 2), vec![1.0f32, 2.0, 3.0, 4.0])?)?;
    if let Some(at) = fortran.windows(5).position(|w| w == b"False") {
        fortran.splice(at..at + 5, *b"True ");
    }
    write(&dir, "fortran.npy", &fortran)?;
    Ok(())
}

fn table(out: &Path) -> Result<()> {
    let dir = out.join("table");
    write(&dir, "features.csv", b"age,income,score\n23,1200.5,0.1\n41, 3000 ,-0.25\n35,0,1e-3\n")?;
    write(&dir, "quoted.csv", b"\"a,b\",c\n\"1\",2\n3,\"4\"\n")?;
    write(&dir, "crlf.csv", b"x0,x1\r\n1,2\r\n3,4\r\n")?;
    write(&dir, "special.csv", b"a,b\nNaN,inf\n-inf,-0\n")?;
    write(&dir, "ragged.csv", b"a,b\n1,2\n3\n")?;
    write(&dir, "not-a-number.csv", b"a,b\n1,2\n3,x\n")?;
    write(&dir, "bad-utf8.csv", b"a,b\n\xff,2\n")?;
    write(&dir, "header-only.csv", b"a,b,c\n")?;
    write(
        &dir,
        "matrix.npy",
        &npy(&Array2::from_shape_vec((3, 2), vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0])?)?,
    )?;
    write(&dir, "vector.npy", &npy(&Array1::from(vec![0u8, 1, 2, 1]))?)?;
    Ok(())
}

/// The embedded model's graph with every large initializer cut to 16 values: the real structure
/// (tf2onnx's names, operators and attributes) in a few kilobytes.
fn real_structure(repo: &Path) -> Result<Vec<u8>> {
    let mut model =
        nnlens_onnx::decode_model(&std::fs::read(repo.join("run/assets/fashion_cnn.onnx"))?)?;
    let graph = model.graph.as_mut().ok_or("the embedded model has no graph")?;
    for t in &mut graph.initializer {
        if t.raw_data.len() > 256 {
            let size = t.raw_data.len() / t.dims.iter().product::<i64>().max(1) as usize;
            t.raw_data.truncate(16 * size.max(1));
            t.dims = vec![(t.raw_data.len() / size.max(1)) as i64];
        }
        if t.float_data.len() > 64 {
            t.float_data.truncate(16);
            t.dims = vec![16];
        }
    }
    Ok(model.encode_to_vec())
}

fn onnx(repo: &Path, out: &Path) -> Result<()> {
    let dir = out.join("onnx");
    let fixture = nnlens_onnx::fixture::fixture_bytes();
    write(&dir, "fixture.onnx", &fixture)?;
    write(&dir, "fashion_cnn-structure.onnx", &real_structure(repo)?)?;
    let base = nnlens_onnx::decode_model(&fixture)?;
    // A scikit-learn Scaler (rewritten by lower_unsupported) in front of the graph.
    let mut scaler = base.clone();
    if let Some(g) = scaler.graph.as_mut() {
        let mut node = NodeProto::new(
            "Scaler",
            "scaler",
            &["x"],
            &["x_scaled"],
            vec![AttributeProto::floats("offset", &[0.5]), AttributeProto::floats("scale", &[2.0])],
        );
        node.domain = "ai.onnx.ml".into();
        for n in &mut g.node {
            for i in &mut n.input {
                if i == "x" {
                    *i = "x_scaled".into();
                }
            }
        }
        g.node.insert(0, node);
    }
    write(&dir, "scaler.onnx", &scaler.encode_to_vec())?;
    // Initializers in every storage: external data, float16, raw int32, uint64, a constant node.
    let mut tensors = base.clone();
    if let Some(g) = tensors.graph.as_mut() {
        let mut external = TensorProto::from_f32("external", &[2], vec![]);
        external.data_location = 1;
        let half = TensorProto {
            name: "half".into(),
            data_type: elem::FLOAT16,
            dims: vec![3],
            raw_data: [0x3c00u16, 0xc000, 0x0001].iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        };
        let int32 = TensorProto {
            name: "int32".into(),
            data_type: elem::INT32,
            dims: vec![2],
            raw_data: [7i32.to_le_bytes(), (-3i32).to_le_bytes()].concat(),
            ..Default::default()
        };
        let uint64 = TensorProto {
            name: "uint64".into(),
            data_type: elem::UINT64,
            dims: vec![1, 2],
            uint64_data: vec![1, u64::MAX],
            ..Default::default()
        };
        let shape = TensorProto::from_i64("shape", &[2], vec![-1, 8]);
        g.initializer.extend([external, half, int32, uint64, shape.clone()]);
        g.node.push(NodeProto::new(
            "Constant",
            "const",
            &[],
            &["c"],
            vec![AttributeProto::tensor("value", shape)],
        ));
    }
    write(&dir, "tensors.onnx", &tensors.encode_to_vec())?;
    let mut no_input = base;
    if let Some(g) = no_input.graph.as_mut() {
        g.input.clear();
    }
    write(&dir, "no-input.onnx", &no_input.encode_to_vec())?;
    write(&dir, "empty-model.onnx", &ModelProto::default().encode_to_vec())?;
    Ok(())
}

fn spec(out: &Path) -> Result<()> {
    let dir = out.join("spec");
    let specs = [
        "identity",
        "identity:n=3",
        "rotation:n=8",
        "rotation:-30..30,n=5",
        "rotation:0;90;180",
        "translation:dx=-2..2,dy=-2..2,step=2",
        "translation:dy=-1..1",
        "scale:0.5..1.5,n=3",
        "scale:0.9;1.1",
        "hflip",
        "vflip",
        "rotation:n=8*hflip",
        "rotation:n=4+translation:dx=-1..1*vflip",
        "rotation:n=100000000",
        "translation:dx=0..1e300,step=1e-300",
        "rotation:n=1000*rotation:n=1000",
        "bogus:n=2",
    ];
    for (i, s) in specs.iter().enumerate() {
        write(&dir, &format!("spec-{i:02}"), s.as_bytes())?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [repo, out] = args.as_slice() else {
        return Err("usage: nnlens-fuzz-seed REPO OUT".into());
    };
    idx(repo, out)?;
    npy_corpus(repo, out)?;
    table(out)?;
    onnx(repo, out)?;
    spec(out)?;
    Ok(())
}
