//! `nnlens`: measure what a trained neural network does, layer by layer and input by input.
//!
//! A thin binary: its own commands look at models, data and backends; `nnlens run <metric>`,
//! `nnlens plot` and the families' own commands come from the runners registered by the metric
//! crates (`nnlens_run::add_commands`), which `nnlens-plugins` links in.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use nnlens_run::{DataArgs, Format, ModelArgs, RunContext, process};

/// Measure what a trained neural network does, layer by layer and input by input.
#[derive(Debug, Parser)]
#[command(name = "nnlens", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The options of every command.
#[derive(Debug, Args)]
pub struct Global {
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
}

/// The binary's own subcommands (`run`, `plot` and the families' commands are added from the
/// registry).
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
    /// Inference throughput (images/s) of every backend on one model, side by side, against
    /// tract on one thread.
    Bench(nnlens_bench::BenchArgs),
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

/// `nnlens layers`.
#[derive(Debug, Args)]
pub struct LayersArgs {
    /// The model: ONNX, or TorchScript (default: the embedded Fashion-MNIST CNN).
    pub model: Option<PathBuf>,
    /// The inference backend (`auto`: tch for a TorchScript file; ONNX Runtime when its
    /// library is found, else tract).
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// The shape of one input sample (`3,224,224`), for a TorchScript file that does not
    /// record it.
    #[arg(long, value_parser = nnlens_run::args::parse_shape)]
    pub input_shape: Option<::std::vec::Vec<usize>>,
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
    /// Directory for result.json (run manifest and result); with --shard, for the shard's
    /// state.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A shard of the run: the rows are split into contiguous parts.
    #[command(flatten)]
    pub shard: nnlens_run::ShardArgs,
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
    /// Dataset name (fashion-mnist, mnist, cifar10, cifar100).
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
    /// How many images to draw (without replacement; default: all of them, in order).
    #[arg(long)]
    pub count: Option<usize>,
    /// What to write: `idx` (the split's official file names; grey bytes), `folder` (PNG
    /// files in class folders, as torchvision's ImageFolder reads them), `npy` (images.npy
    /// uint8 (N, H, W, C) and labels.npy), `inputs` (inputs.npy: float32 (N, H, W, C), the
    /// model's inputs after every preprocessing step), or `auto`: idx for MNIST-style data,
    /// folder for other byte images, npy for float images.
    #[arg(long = "as", value_name = "FORMAT", value_enum, default_value_t = SampleFormat::Auto)]
    pub write_as: SampleFormat,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
}

/// What `nnlens sample` writes (`--as`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SampleFormat {
    /// idx for MNIST-style grey data, folder for other byte images, npy for float images.
    Auto,
    /// IDX files under the split's official names.
    Idx,
    /// An image folder of PNG files.
    Folder,
    /// images.npy and labels.npy.
    Npy,
    /// inputs.npy: the preprocessed model inputs.
    Inputs,
}

impl SampleFormat {
    /// The name, as `--as` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Idx => "idx",
            Self::Folder => "folder",
            Self::Npy => "npy",
            Self::Inputs => "inputs",
        }
    }
}

fn main() -> ExitCode {
    // SAFETY: the first thing main does, before any thread exists.
    unsafe { process::prepare() };
    nnlens_plugins::link();
    if !process::stdout_is_open() {
        eprintln!(
            "error: standard output is closed; nnlens prints its results there (redirect it to a file or /dev/null)"
        );
        return ExitCode::FAILURE;
    }
    let parsed = nnlens_run::add_commands(Cli::command())
        .try_get_matches()
        .and_then(|m| Global::from_arg_matches(&m).map(|g| (m, g)));
    let (matches, global) = match parsed {
        Ok(parsed) => parsed,
        Err(e) if e.use_stderr() => {
            eprintln!("{}", process::usage_error(&e));
            return ExitCode::from(2);
        }
        // --help and --version.
        Err(e) => {
            nnlens_run::out!("{}", e.render().to_string().trim_end());
            return ExitCode::SUCCESS;
        }
    };
    nnlens_run::output::init_logging(global.verbose, global.quiet);
    nnlens_run::atomic::install_interrupt_handler();
    let ctx = RunContext {
        seed: global.seed,
        quiet: global.quiet,
        format: global.format,
        verbose: global.verbose,
    };
    let ran = nnlens_run::dispatch(&matches, &ctx).and_then(|done| {
        if done {
            return Ok(());
        }
        let command = Command::from_arg_matches(&matches)?;
        commands::run(&ctx, &command)
    });
    match ran.and_then(|()| Ok(process::report_peak_memory()?)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", process::one_line(&e));
            ExitCode::FAILURE
        }
    }
}
