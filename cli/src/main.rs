//! `nnlens`: measure what a trained neural network does, layer by layer and input by input.
//!
//! A thin binary: it parses arguments, finds models, datasets, backends and metrics by name in
//! the libraries' registries, runs them, and writes results.

mod assets;
mod atomic;
mod bench;
mod charts;
mod commands;
mod influence;
mod inputs;
mod invariance;
mod linearity;
mod similarity;
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
    /// Run a registered metric (`nnlens metrics` lists them) and write its result files.
    Run(Box<RunArgs>),
    /// The seed package's Analyzer: a measure and the accuracy for every transformation group.
    Analyze(AnalyzeArgs),
    /// Redraw the plots of a saved result (a directory holding result.json).
    Plot(PlotArgs),
    /// Inference throughput (images/s) of every backend on one model, side by side, against
    /// tract on one thread.
    Bench(BenchArgs),
    /// List the transformations of a set spec (`rotation:n=16`, `translation:dx=-2..2,dy=-2..2`,
    /// `scale:0.8..1.2,n=5`, `A*B` products, `A+B` unions) or of a seed group.
    Transformations(TransformationsArgs),
}

/// Image interpolation of transformations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Interp {
    /// Bilinear (Keras' and PyTorch's default).
    Bilinear,
    /// Nearest pixel.
    Nearest,
}

/// `nnlens run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The metric (`nnlens metrics`): e.g. nvi, tvi, normalized-variance, same-equivariance.
    pub metric: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// The transformations (columns of the samples x transformations matrix), a set spec:
    /// `rotation:n=8`, `translation:dx=-2..2,dy=-2..2,step=2`, `A*B`, `A+B`
    /// (`nnlens transformations SPEC` lists them).
    #[arg(long)]
    pub transformations: Option<String>,
    /// Interpolation of transformed images (and of inverse-transformed feature maps).
    #[arg(long, value_enum, default_value_t = Interp::Bilinear)]
    pub interpolation: Interp,
    /// What is read outside an image: `edge` (nearest edge pixel) or a constant value.
    #[arg(long, default_value = "edge")]
    pub fill: String,
    /// Layers to measure (names or tensor names), comma separated; default all.
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<String>,
    /// Inputs per model call (memory grows with it: one block of about this many inputs'
    /// activations is held at a time).
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Measure precomputed activations instead of a model: an NPY array
    /// A[sample, transformation, ...activation] of one layer.
    #[arg(long)]
    pub activations: Option<PathBuf>,
    /// With --activations: the layer's name (default: the file's stem).
    #[arg(long)]
    pub layer_name: Option<String>,
    /// With --activations: the channel axis of feature maps (an axis of the activation, e.g. 0
    /// for (C, H, W)).
    #[arg(long)]
    pub channel_axis: Option<usize>,
    /// With --activations: the transformations of the columns, for same-equivariance and the
    /// measures that need the identity: `roll` (column t = circular shift by +t along the last
    /// axis) or a set spec applied to the activation maps.
    #[arg(long)]
    pub inverse: Option<String>,
    /// A metric parameter KEY=VALUE (repeatable): average_feature_maps=true, alpha=0.95,
    /// bonferroni=false, keep_shape=true, normalize=true, sign=-1.
    #[arg(short = 'p', long = "param")]
    pub params: Vec<String>,
    /// Directory for result.json, CSV files and plots.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub linearity: LinearityArgs,
    #[command(flatten)]
    pub influence: InfluenceArgs,
    #[command(flatten)]
    pub similarity: SimilarityArgs,
}

/// The options of `nnlens run similarity` (alibi's `GradientSimilarity`): the instances of
/// --split explained are chosen with --instances (default 5) or --indices; gradients come from
/// the candle backend.
#[derive(Debug, Args)]
#[command(next_help_heading = "Similarity (nnlens run similarity)")]
pub struct SimilarityArgs {
    /// Random reference images (default 1000, or the whole split if smaller), drawn with --seed.
    #[arg(long, conflicts_with = "reference_indices")]
    pub reference: Option<usize>,
    /// Rows of the reference split: `3,17,42`, or a file (NPY of integers, or text).
    #[arg(long)]
    pub reference_indices: Option<String>,
    /// The split the reference images come from (default train; test for the embedded sample).
    #[arg(long)]
    pub reference_split: Option<String>,
    /// How gradients are compared: `grad_dot` (X Y^T), `grad_cos` (cosine) or `grad_asym_dot`
    /// (X Y^T / |Y|^2).
    #[arg(long, default_value = "grad_dot")]
    pub sim_fn: String,
    /// Most and least similar reference images listed and drawn per instance.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Recompute the reference gradients at every explain instead of storing them (storing
    /// takes references x parameters x 4 bytes: 1.65 GB for 1000 images of the MNIST CNN).
    #[arg(long)]
    pub no_precompute: bool,
    /// `cross-entropy-from-probabilities` (a softmax output: dL/dlogits = p - y, no clipping) or
    /// `cross-entropy-from-logits`.
    #[arg(long, default_value = "cross-entropy-from-probabilities")]
    pub loss: String,
    /// The class each instance's gradient is taken for: its `label`, or the class the model
    /// `predicted` (alibi's explain(X) without Y).
    #[arg(long, default_value = "label")]
    pub targets: String,
    /// Precision of the candle gradient backend: `f32` or `f64`.
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Reference gradients computed at once (in parallel): memory of this many gradients.
    #[arg(long, default_value_t = 32)]
    pub gradient_batch: usize,
}

/// The options of `nnlens run influence` and `nnlens run performance` (ethik's entropic
/// re-weighting).
#[derive(Debug, Args)]
#[command(next_help_heading = "Influence and performance (nnlens run influence|performance)")]
pub struct InfluenceArgs {
    /// The model's predictions [rows, classes] as an NPY file, instead of running --model.
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// A table of features instead of a dataset's images: CSV with a header of feature names,
    /// or NPY [rows, features]; needs --predictions.
    #[arg(long)]
    pub table: Option<PathBuf>,
    /// With --table: the truth for `performance`, an NPY of labels `[rows]` or values.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// The taus: a count (ethik's grid from -1 to 1, made odd) or a list `-1,0,1` (default 3
    /// for images, 41 for tables).
    #[arg(long, allow_hyphen_values = true)]
    pub taus: Option<String>,
    /// Quantile level: tau = -1 moves a feature's mean to its alpha quantile, +1 to 1 - alpha.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// `exact` (the entropic projection solved exactly, edge targets as limits) or `ethik`
    /// (ethik 0.0.4's own stopping rule, for comparison).
    #[arg(long, default_value = "exact")]
    pub solver: String,
    /// Bootstrap samples for confidence bands (0: none), drawn with --seed.
    #[arg(long, default_value_t = 0)]
    pub bootstrap: usize,
    /// Fraction of rows each bootstrap sample keeps.
    #[arg(long, default_value_t = 0.8)]
    pub sample_frac: f64,
    /// The band's lower quantile (upper: 1 - this).
    #[arg(long, default_value_t = 0.05)]
    pub conf_level: f64,
    /// For `performance`: accuracy, log-loss or mse.
    #[arg(long = "metric", id = "score", default_value = "accuracy")]
    pub score: String,
}

/// The options of `nnlens run linearity` (alibi's `linearity_measure`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Linearity (nnlens run linearity)")]
pub struct LinearityArgs {
    /// Random instances of the split to measure, drawn with --seed (default 100; similarity:
    /// 5).
    #[arg(long, conflicts_with_all = ["per_class", "indices"])]
    pub instances: Option<usize>,
    /// Measure the instances of every class (all of them, or --per-class-max of each).
    #[arg(long, conflicts_with = "indices")]
    pub per_class: bool,
    /// With --per-class: at most this many instances of each class (the first ones).
    #[arg(long, requires = "per_class")]
    pub per_class_max: Option<usize>,
    /// Dataset rows to measure: `3,17,42`, or a file (NPY of integers, or text).
    #[arg(long)]
    pub indices: Option<String>,
    /// How samples around an instance are drawn: `grid` (each feature moved by a random
    /// non-zero multiple of range/res, up to epsilon of its range) or `knn` (the nearest rows
    /// of --knn-split).
    #[arg(long, default_value = "grid")]
    pub method: String,
    /// `global`: || M(sum a_s v_s) - sum a_s M(v_s) ||; `pairwise`: the same for each sample
    /// paired with the instance, averaged.
    #[arg(long, default_value = "global")]
    pub agg: String,
    /// Samples per instance.
    #[arg(long, default_value_t = 10)]
    pub nb_samples: usize,
    /// Grid half-width, a fraction of each feature's range.
    #[arg(long, default_value_t = 0.04)]
    pub epsilon: f64,
    /// Grid resolution: steps of range/res.
    #[arg(long, default_value_t = 100)]
    pub res: usize,
    /// Superposition weights, comma separated (default 1/nb_samples each; pairwise 0.5,0.5).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub alphas: Vec<f64>,
    /// Replay grid draws: an NPY of integer offsets [instances, nb_samples, features] (sample
    /// = instance + offset * range/res), e.g. alibi's `rnd_sign * rnd`.
    #[arg(long)]
    pub offsets: Option<PathBuf>,
    /// With --method knn: the split the neighbours come from.
    #[arg(long, default_value = "train")]
    pub knn_split: String,
    /// The per-feature [min, max] of the grid: `split` (the whole split, as alibi's
    /// infer_feature_range) or an NPY array [features, 2].
    #[arg(long, default_value = "split")]
    pub feature_range: String,
    /// `classifier` (compare log(p + 1e-10)) or `regressor` for every layer, or LAYER=TYPE
    /// (repeatable). Default: classifier for probability vectors, regressor otherwise.
    #[arg(long)]
    pub model_type: Vec<String>,
    /// Bins of the histograms in the result and the plots.
    #[arg(long, default_value_t = 20)]
    pub bins: usize,
}

/// `nnlens analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The measure (an invariance metric; its model total is plotted).
    pub metric: String,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Transformations per group.
    #[arg(long, default_value_t = 8)]
    pub n: usize,
    /// Interpolation of transformed images.
    #[arg(long, value_enum, default_value_t = Interp::Bilinear)]
    pub interpolation: Interp,
    /// What is read outside an image: `edge` or a constant value.
    #[arg(long, default_value = "edge")]
    pub fill: String,
    /// Inputs per model call.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// A metric parameter KEY=VALUE (repeatable).
    #[arg(short = 'p', long = "param")]
    pub params: Vec<String>,
    /// Directory for result.json, analysis.csv and the scatter plot.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `nnlens plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// A directory written by `run --out` or `analyze --out`.
    pub dir: PathBuf,
    /// Where to write the plots (default: the same directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `nnlens bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The ONNX model (default: the embedded Fashion-MNIST CNN).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Backends to measure, comma separated (default: every compiled-in backend usable here).
    #[arg(long, value_delimiter = ',')]
    pub backend: Vec<String>,
    /// Worker threads of each backend (default: each backend's own, all cores).
    #[arg(long, value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Inputs per model call.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Inputs to run through each backend (rounded up to whole batches in every round).
    #[arg(long, default_value_t = 20_000)]
    pub images: usize,
    /// Rounds: every configuration runs its share of the inputs once per round, in turn, and
    /// the median round is reported, so that a machine whose speed drifts affects all alike.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Also measure the Python onnxruntime of this interpreter (`pip install onnxruntime
    /// numpy`) on the same model, batch and thread count, in the same rounds.
    #[arg(long, value_name = "PYTHON")]
    pub python: Option<PathBuf>,
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

/// `--threads`: a number of at least 1.
fn parse_threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err(
            "0 threads cannot run anything; give at least 1, or leave --threads out for all cores"
                .into(),
        ),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{text}' is not a number of threads")),
    }
}

/// Keeps freed memory in the process. Every block of activations is tens of MB, allocated and
/// freed once per block; glibc's defaults hand such allocations back to the kernel at every
/// free, and faulting the pages in again took a quarter of the time of `nnlens run nvi`
/// (system time 5.4 s -> 0.4 s, wall 18 s -> 14-16 s, for 1000 images x 9 translations on the
/// Fashion-MNIST CNN on 2 cores).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// candle (the gradient backend) runs element-wise operations on a pool of its own threads,
/// which only competes with the per-example workers (measured: 5.2 s instead of 7.0 s for the
/// gradients of 1000 MNIST images on 2 busy cores); one thread unless the user set it.
fn single_threaded_candle_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called at the start of main, before any thread exists.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// One line of an error and its causes, each cause once: a library error that names its
/// source in its message (`cannot read x.onnx: No such file`) is not followed by the source
/// again.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.contains(text.trim()) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A usage error of clap on one line, as every other error (clap's own spans several: the
/// error, the usage, a hint), with a pointer to `--help`.
fn usage_error(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut parts = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line.trim_start_matches("error: "));
        }
    }
    format!("error: {} (see --help)", parts.join(" "))
}

/// Whether standard output is open. Rust's runtime reopens a closed standard descriptor on
/// `/dev/null` before `main` (read-write), so `nnlens metrics >&-` would succeed and print
/// nothing. A shell's `> /dev/null` opens it write-only, so a read-write `/dev/null` on
/// descriptor 1 is taken for a closed one.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn stdout_is_open() -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: F_GETFL only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(1, libc::F_GETFL) };
    if flags == -1 {
        return false;
    }
    if flags & libc::O_ACCMODE != libc::O_RDWR {
        return true;
    }
    let (Ok(out), Ok(null)) = (std::fs::metadata("/dev/stdout"), std::fs::metadata("/dev/null"))
    else {
        return true;
    };
    out.rdev() != null.rdev()
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn stdout_is_open() -> bool {
    true
}

fn main() -> ExitCode {
    keep_freed_memory();
    single_threaded_candle_pool();
    nnlens_plugins::link();
    if !stdout_is_open() {
        eprintln!(
            "error: standard output is closed; nnlens prints its results there (redirect it to a file or /dev/null)"
        );
        return ExitCode::FAILURE;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            eprintln!("{}", usage_error(&e));
            return ExitCode::from(2);
        }
        // --help and --version.
        Err(e) => {
            crate::out!("{}", e.render().to_string().trim_end());
            return ExitCode::SUCCESS;
        }
    };
    output::init_logging(cli.verbose, cli.quiet);
    atomic::install_interrupt_handler();
    match commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
