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
}

/// Choosing a model and the engine that runs it.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// The ONNX model (default: the embedded Fashion-MNIST CNN).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The inference backend (`nnlens backends` lists them).
    #[arg(long, default_value = "tract")]
    pub backend: String,
    /// Worker threads of the backend (default: all cores). tract splits each batch across
    /// them.
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<usize>,
}

/// Choosing data.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Dataset name (fashion-mnist, mnist) or `embedded` (a 1000-image Fashion-MNIST test sample
    /// shipped in the binary; the default).
    #[arg(long, default_value = "embedded")]
    pub dataset: String,
    /// Split: train or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Directory holding the official IDX files; without it they are downloaded into the cache.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Cache directory for downloads (default: $NNLENS_CACHE_DIR or ~/.cache/nnlens).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Use only the first N samples of the split.
    #[arg(long)]
    pub samples: Option<usize>,
    /// Pixel scaling: `unit` (pixel/255, Keras and PyTorch models) or `raw` (0..255).
    #[arg(long, value_enum, default_value_t = Scale::Unit)]
    pub pixel_scale: Scale,
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
