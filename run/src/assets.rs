//! The embedded default: a small real model and a small sample of real images, shipped in the
//! binary so that `nnlens evaluate` runs on a fresh machine with no download. How they were made
//! is in `run/assets/README.md`.

/// `fashion_cnn.onnx`: the alibi linearity notebook's Keras CNN trained on Fashion-MNIST.
pub const MODEL: &[u8] = include_bytes!("../assets/fashion_cnn.onnx");
/// Its label in manifests and errors.
pub const MODEL_LABEL: &str = "embedded:fashion_cnn.onnx";
/// The label of the embedded images in manifests and errors.
pub const IMAGES_LABEL: &str = "embedded:t10k-images-idx3-ubyte.gz";
/// The label of the embedded labels in manifests and errors.
pub const LABELS_LABEL: &str = "embedded:t10k-labels-idx1-ubyte.gz";
/// 1000 Fashion-MNIST test images (IDX, gzip).
pub const IMAGES: &[u8] =
    include_bytes!("../assets/fashion-mnist-sample/t10k-images-idx3-ubyte.gz");
/// Their labels (IDX, gzip).
pub const LABELS: &[u8] =
    include_bytes!("../assets/fashion-mnist-sample/t10k-labels-idx1-ubyte.gz");
