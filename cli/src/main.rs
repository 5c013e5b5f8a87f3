//! `nnlens`: measure what a trained neural network does, layer by layer and input by input.
//!
//! A thin binary: it parses arguments, finds models, datasets, backends and metrics by name in
//! the libraries' registries, runs them, and writes results.

mod assets;
mod commands;
mod inputs;
#[macro_use]
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Measure what a trained neural network does, layer by layer and input by input.
#[derive(Debug, Parser)]
#[command(name = "nnlens", version, about, propagate_version = true)]
pub struct Cli {
    /// Seed of every random choice, for reproducible runs.
    #[arg(long, global = true, default_value_t = 0)]
    pub seed: u64,
    /// More log output (-v info, -vv debug, -vvv trace); `NNLENS_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bars and only errors in the log.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// How results are printed on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// JSON for programs.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a model's layers: name, shape, operator, feature maps.
    Layers(LayersArgs),
    /// Loss and accuracy of a model on a dataset split.
    Evaluate(EvaluateArgs),
    /// Activations of chosen layers for some inputs (summary, or NPY files with --out).
    Predict(PredictArgs),
    /// List the registered metrics.
    Metrics,
    /// List the compiled-in backends and whether each can run here.
    Backends,
    /// Download a dataset's official files into the cache, checking their SHA-256.
    Fetch(FetchArgs),
    /// Write a random sample of a dataset split as IDX files (how the embedded sample is made).
    Sample(SampleArgs),
    /// List the transformations of a set spec (`rotation:n=16`, `translation:dx=-2..2,dy=-2..2`,
    /// `scale:0.8..1.2,n=5`, `A*B` products, `A+B` unions) or of a seed group.
    Transformations(TransformationsArgs),
}

/// `nnlens transformations`.
#[derive(Debug, Args)]
pub struct TransformationsArgs {
    /// The set spec (omit with --group).
    pub spec: Option<String>,
    /// A seed group (0 identity, 1 rotations, 2 x-shifts, 3 y-shifts, 4 x,y-shifts,
    /// 5 rotations with x-shifts, 6 rotations with y-shifts) instead of a spec.
    #[arg(long, conflicts_with = "spec")]
    pub group: Option<usize>,
    /// How many transformations the group makes.
    #[arg(long, default_value_t = 8)]
    pub n: usize,
    /// Image size (height and width) the seed group is made for.
    #[arg(long, default_value_t = 28)]
    pub size: usize,
}

/// Choosing a model and the engine that runs it.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The ONNX model (default: the embedded Fashion-MNIST CNN).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The inference backend.
    #[arg(long, default_value = "tract")]
    pub backend: String,
    /// Worker threads of the backend, where it has a thread setting (default: the backend's
    /// own). tract runs each batch on one thread for now.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Choosing data.
#[derive(Debug, Args)]
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

/// `nnlens layers`.
#[derive(Debug, Args)]
pub struct LayersArgs {
    /// The ONNX model (default: the embedded Fashion-MNIST CNN).
    pub model: Option<PathBuf>,
    /// The inference backend.
    #[arg(long, default_value = "tract")]
    pub backend: String,
}

/// `nnlens evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Inputs per model call.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Directory for result.json (run manifest and result).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `nnlens predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Layers (names or tensor names), comma separated; default all.
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<String>,
    /// Inputs per model call.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Directory for one `<layer>.npy` per layer and result.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `nnlens fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Dataset name (fashion-mnist, mnist).
    pub dataset: String,
    /// Cache directory (default: $NNLENS_CACHE_DIR or ~/.cache/nnlens).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Base address to fetch from instead of the official mirrors (repeatable).
    #[arg(long)]
    pub mirror: Vec<String>,
}

/// `nnlens sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// How many images to draw (without replacement).
    #[arg(long)]
    pub count: usize,
    /// Output directory; files get the official names of the split.
    #[arg(long)]
    pub out: PathBuf,
}

fn main() -> ExitCode {
    nnlens_plugins::link();
    let cli = Cli::parse();
    output::init_logging(cli.verbose, cli.quiet);
    match commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            let causes: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", causes.join(": ").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
