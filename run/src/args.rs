//! The command-line arguments every family shares: choosing a model and its engine, choosing
//! data, and the global options of a run.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// How results are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    #[default]
    Table,
    /// JSON for programs.
    Json,
}

/// The global options a command runs under (`--seed`, `--quiet`, `--format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunContext {
    /// Seed of every random choice.
    pub seed: u64,
    /// No progress bars.
    pub quiet: bool,
    /// How results are printed.
    pub format: Format,
    /// `-v` given this many times (more detail in listings, more log output).
    pub verbose: u8,
}

/// Choosing a model and the engine that runs it.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// The model: an ONNX file, or a TorchScript `.pt` file (the tch backend) (default: the
    /// embedded Fashion-MNIST CNN).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The inference backend (`nnlens backends` lists them): `auto` runs a TorchScript file
    /// with tch, and an ONNX file with ONNX Runtime when its library is found (`pip install
    /// onnxruntime`, or ORT_DYLIB_PATH), else tract.
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Worker threads of the backend (default: all cores). tract splits each batch across
    /// them.
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Where to compute: `cpu`, or `cuda` / `cuda:N` (the tch backend; ort with the
    /// onnxruntime-gpu wheel).
    #[arg(long, default_value = "cpu")]
    pub device: nnlens_core::Device,
    /// The shape of one input sample, channels first (`3,224,224`), for a TorchScript file
    /// that does not record it (TorchScript stores no input shape).
    #[arg(long, value_parser = parse_shape)]
    pub input_shape: Option<::std::vec::Vec<usize>>,
}

/// A shape such as `3,224,224` (`--input-shape`).
///
/// # Errors
/// Empty, a zero or a part that is not a number.
pub fn parse_shape(text: &str) -> Result<Vec<usize>, String> {
    let dims: Result<Vec<usize>, _> =
        text.split([',', 'x']).map(|d| d.trim().parse::<usize>()).collect();
    match dims {
        Ok(d) if !d.is_empty() && !d.contains(&0) => Ok(d),
        _ => Err(format!("'{text}' is not a shape: give positive sizes such as 3,224,224")),
    }
}

/// Choosing data and how its images become model inputs.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// The data: `embedded` (a 1000-image Fashion-MNIST test sample shipped in the binary; the
    /// default), `mnist`, `fashion-mnist`, `cifar10`, `cifar100`, `folder:DIR` (an image folder,
    /// DIR/CLASS/IMAGE, as torchvision's ImageFolder) or `npy:X.npy` (an NPY array of
    /// images, with --labels). A directory or a .npy file may be given without the prefix.
    #[arg(long, default_value = "embedded")]
    pub dataset: String,
    /// Split: train or test for the named datasets (default test); for a folder, the
    /// sub-folder DIR/SPLIT (default: DIR itself).
    #[arg(long)]
    pub split: Option<String>,
    /// Directory holding a named dataset's official files (IDX, or CIFAR's tarball or its
    /// extracted files); without it they are downloaded into the cache.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Cache directory for downloads (default: $NNLENS_CACHE_DIR or ~/.cache/nnlens).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Use only the first N samples of the split.
    #[arg(long)]
    pub samples: Option<usize>,
    /// Labels of an NPY source: an NPY of integers, one per image.
    #[arg(long, value_name = "FILE.npy")]
    pub labels: Option<PathBuf>,
    /// Class names, one per line in label order, replacing the source's own.
    #[arg(long, value_name = "FILE")]
    pub class_names: Option<PathBuf>,
    /// Convert every image to grey (Pillow's luma, as torchvision's Grayscale) or to RGB
    /// (grey repeated). Without it images keep their channels.
    #[arg(long, value_enum)]
    pub color: Option<Color>,
    /// Resize so that the shorter side is N pixels (bilinear with antialiasing, as
    /// torchvision's Resize(N) on PIL images).
    #[arg(long, value_name = "N")]
    pub resize: Option<usize>,
    /// Cut out the centre N x N pixels (torchvision's CenterCrop(N)).
    #[arg(long, value_name = "N")]
    pub center_crop: Option<usize>,
    /// Pixel scaling of byte images: `unit` (pixel/255, Keras and PyTorch models) or `raw`
    /// (0..255). Float images (NPY of f32/f64) are used as they are.
    #[arg(long, value_enum, default_value_t = Scale::Unit)]
    pub pixel_scale: Scale,
    /// Per-channel mean subtracted after scaling (torchvision's Normalize), e.g.
    /// 0.485,0.456,0.406.
    #[arg(long, value_delimiter = ',', value_name = "M,M,M", allow_negative_numbers = true)]
    pub mean: Option<Vec<f32>>,
    /// Per-channel standard deviation divided by after the mean, e.g. 0.229,0.224,0.225.
    #[arg(long, value_delimiter = ',', value_name = "S,S,S")]
    pub std: Option<Vec<f32>>,
}

/// A colour conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// One channel.
    Gray,
    /// Three channels.
    Rgb,
}

/// Pixel scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scale {
    /// pixel / 255.
    Unit,
    /// pixel as is.
    Raw,
}

impl Scale {
    /// `unit` or `raw`, as the manifest stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unit => "unit",
            Self::Raw => "raw",
        }
    }
}

/// `--threads`: a number of at least 1.
///
/// # Errors
/// A message for 0 and for text that is not a number.
pub fn parse_threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err(
            "0 threads cannot run anything; give at least 1, or leave --threads out for all cores"
                .into(),
        ),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a number of threads")),
    }
}

/// `key=value` pairs (`--param`) as a JSON object; values are JSON (`true`, `0.8`) or else
/// strings; `null` for none.
///
/// # Errors
/// A pair without `=`.
pub fn parse_params(params: &[String]) -> anyhow::Result<serde_json::Value> {
    let mut map = serde_json::Map::new();
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            anyhow::bail!("--param '{p}' is not key=value");
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::json!(v));
        map.insert(k.trim().replace('-', "_"), value);
    }
    Ok(if map.is_empty() { serde_json::Value::Null } else { serde_json::Value::Object(map) })
}
