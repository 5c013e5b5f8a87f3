//! # nnlens-bench
//!
//! `nnlens bench`: inference throughput of every backend on one model, side by side.
//!
//! Every configuration (tract on one thread as the reference, each backend, and optionally
//! Python's onnxruntime) runs its share of the inputs once per round, the configurations in
//! turn (each round starting one later), and the median round is reported with the slowest and
//! fastest. Interleaving keeps a drift of the machine's speed from favouring whichever
//! configuration ran first, and the rotation keeps any from always following the same one.

#![warn(missing_docs)]

pub mod machine;
pub mod workloads;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use clap::Args;
use nnlens_run::args::parse_threads;
use nnlens_run::inputs::{LoadedModel, load_model_from};
use nnlens_run::output::{print_json, print_table};
use nnlens_run::{Format, RunContext};

/// The flags of `nnlens bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The ONNX model (default: the embedded Fashion-MNIST CNN).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The same model as a TorchScript file, for the tch backend (`tests/fixtures/torchscript/export.py`
    /// writes both); without it tch runs `--model`, which then must be TorchScript.
    #[arg(long)]
    pub torchscript: Option<PathBuf>,
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
    /// Instead of the throughput table: run these seed workloads end to end (comma separated),
    /// each as an `nnlens run` process per backend and round, and report wall time, the
    /// measuring loop, peak memory, and throughput beside this machine's multiply-add and
    /// memory-bandwidth limits (measured first).
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with = "python")]
    pub workload: Vec<workloads::Workload>,
    /// The data of the workloads (`nnlens run`'s `--dataset`).
    #[arg(long, default_value = "fashion-mnist", requires = "workload")]
    pub dataset: String,
    /// The directory of the workloads' dataset files (`nnlens run`'s `--data-dir`).
    #[arg(long, requires = "workload")]
    pub data_dir: Option<PathBuf>,
    /// Images per workload run (default: 10,000 for linearity, 1,000 for nvi).
    #[arg(long, requires = "workload")]
    pub samples: Option<usize>,
    /// Instead of the throughput table: tract's time per operator (its plan for chunks of
    /// `CHUNK_ROWS` inputs, one thread, every node timed) with tract's multiply-add count of
    /// each, over `--images` inputs.
    #[arg(long, conflicts_with_all = ["workload", "python"])]
    pub profile: bool,
}

/// One measured configuration.
#[derive(Debug, Serialize)]
struct Row {
    backend: String,
    threads: Option<usize>,
    batch: usize,
    /// Inputs per round.
    images: usize,
    rounds: usize,
    /// Images per second of the median round.
    images_per_s: f64,
    /// Of the slowest round.
    min_images_per_s: f64,
    /// Of the fastest round.
    max_images_per_s: f64,
    /// Median throughput relative to tract on one thread.
    vs_tract_1_thread: f64,
    /// Why the configuration could not run the model (its numbers are then NaN).
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<String>,
}

/// What runs the batches of one configuration.
enum Engine {
    Model { loaded: LoadedModel, x: ArrayD<f32> },
    Python(PythonOrt),
}

impl Engine {
    /// Runs `batches` batches; returns the seconds they took.
    fn time(&mut self, batches: usize) -> Result<f64> {
        match self {
            Engine::Model { loaded, x } => {
                let t = Instant::now();
                for _ in 0..batches {
                    std::hint::black_box(loaded.model.predict_output(x.view())?);
                }
                Ok(t.elapsed().as_secs_f64())
            }
            Engine::Python(python) => python.time(batches),
        }
    }
}

/// `nnlens bench`: measures, then prints the table (or JSON) of every configuration.
///
/// # Errors
/// Counts of 0, a backend or model that cannot be loaded, a Python that cannot run
/// onnxruntime.
pub fn run(cli: &RunContext, args: &BenchArgs) -> Result<()> {
    if args.batch == 0 || args.images == 0 || args.rounds == 0 {
        bail!("--batch, --images and --rounds must be at least 1");
    }
    if !args.workload.is_empty() {
        return run_workloads(cli, args);
    }
    if args.profile {
        return run_profile(cli, args);
    }
    let backends: Vec<String> = if args.backend.is_empty() {
        nnlens_core::backends()
            .iter()
            .filter(|b| (b.available)().is_ok())
            .map(|b| b.name.to_string())
            .collect()
    } else {
        args.backend.clone()
    };
    // The reference: tract on one thread, then every backend with its thread setting. A
    // backend that cannot load or run the model is a row saying why, not the end of the run.
    let mut configs: Vec<(String, Option<usize>, Result<Engine, String>)> = Vec::new();
    let mut names: Vec<(String, Option<usize>)> = vec![("tract".into(), Some(1))];
    names.extend(backends.iter().map(|b| (b.clone(), args.threads)));
    for (backend, threads) in names {
        let path = match (backend.as_str(), &args.torchscript) {
            ("tch", Some(torchscript)) => Some(torchscript.as_path()),
            _ => args.model.as_deref(),
        };
        let engine = load_model_from(path, &backend, threads).map(|loaded| {
            let mut shape = vec![args.batch];
            shape.extend_from_slice(&loaded.model.structure().input.shape);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cli.seed);
            let x = ArrayD::from_shape_simple_fn(IxDyn(&shape), || rng.random::<f32>());
            Engine::Model { loaded, x }
        });
        if let Err(e) = &engine {
            tracing::warn!(backend, "cannot run the model: {e:#}");
        }
        configs.push((backend, threads, engine.map_err(|e| format!("{e:#}"))));
    }
    let mut _embedded = None;
    if let Some(python) = &args.python {
        let (model, temp) = model_file(args)?;
        _embedded = temp;
        let engine = PythonOrt::start(python, &model, args.batch, args.threads, cli.seed)?;
        configs.push(("onnxruntime (python)".into(), args.threads, Ok(Engine::Python(engine))));
    }
    if configs.iter().all(|(_, _, e)| e.is_err()) {
        let (_, _, Err(why)) = &configs[0] else { unreachable!("all failed") };
        bail!("no backend can run the model: {why}");
    }
    // Warm-up: plan optimisation, allocations, thread pools.
    for (backend, _, engine) in &mut configs {
        if let Ok(e) = engine
            && let Err(why) = e.time(1)
        {
            tracing::warn!(backend, "cannot run the model: {why:#}");
            *engine = Err(format!("{why:#}"));
        }
    }
    let batches = args.images.div_ceil(args.batch).div_ceil(args.rounds).max(1);
    let images = batches * args.batch;
    let mut rates: Vec<Vec<f64>> = vec![Vec::with_capacity(args.rounds); configs.len()];
    let n = configs.len();
    for round in 0..args.rounds {
        // Each round starts one configuration later, so that none always follows the same one
        // (an engine's threads may still spin, or the CPU may still be hot, from the previous).
        for i in (0..n).map(|k| (round + k) % n) {
            let (backend, threads, engine) = &mut configs[i];
            let Ok(e) = engine else { continue };
            match e.time(batches) {
                Ok(seconds) => {
                    let rate = images as f64 / seconds;
                    tracing::info!(backend, ?threads, round, rate, "measured");
                    rates[i].push(rate);
                }
                Err(why) => *engine = Err(format!("{why:#}")),
            }
        }
    }
    let reference = workloads::summary(rates[0].iter().copied())[0];
    let rows: Vec<Row> = configs
        .iter()
        .zip(&rates)
        .map(|((backend, threads, engine), r)| {
            let [median, min, max] = workloads::summary(r.iter().copied());
            Row {
                backend: backend.clone(),
                threads: *threads,
                batch: args.batch,
                images,
                rounds: args.rounds,
                images_per_s: median,
                min_images_per_s: min,
                max_images_per_s: max,
                vs_tract_1_thread: median / reference,
                failed: engine.as_ref().err().cloned(),
            }
        })
        .collect();
    match cli.format {
        Format::Json => print_json(&rows),
        Format::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    if let Some(why) = &r.failed {
                        let mut row = vec![r.backend.clone()];
                        row.extend(["-"; 5].map(String::from));
                        row.push(format!("cannot run: {why}"));
                        return row;
                    }
                    vec![
                        r.backend.clone(),
                        r.threads.map_or("all".into(), |t| t.to_string()),
                        r.batch.to_string(),
                        format!("{} x {}", r.rounds, r.images),
                        format!("{:.0}", r.images_per_s),
                        format!("{:.0}-{:.0}", r.min_images_per_s, r.max_images_per_s),
                        format!("{:.2}x", r.vs_tract_1_thread),
                    ]
                })
                .collect();
            print_table(
                &[
                    "backend",
                    "threads",
                    "batch",
                    "rounds x images",
                    "images/s",
                    "range",
                    "vs tract 1 thread",
                ],
                &cells,
            );
            let rate = |name: &str| rows.iter().find(|r| r.backend == name).map(|r| r.images_per_s);
            if let (Some(ort), Some(python)) = (rate("ort"), rate("onnxruntime (python)")) {
                println!("ort runs at {:.2}x the throughput of Python's onnxruntime", ort / python);
            }
            Ok(())
        }
    }
}

/// The model file of `--model`, or the embedded one written to a temporary file.
fn model_file(args: &BenchArgs) -> Result<(PathBuf, Option<TempModel>)> {
    match &args.model {
        Some(path) => Ok((path.clone(), None)),
        None => {
            let temp = TempModel::write(nnlens_run::assets::MODEL)?;
            Ok((temp.path.clone(), Some(temp)))
        }
    }
}

/// The tract model of `--model` (the embedded one by default), for its operator counts.
fn tract_model(path: &Path, threads: Option<usize>) -> Result<nnlens_tract::TractModel> {
    let options = nnlens_core::BackendOptions { threads, ..Default::default() };
    nnlens_tract::TractModel::load(path, &options)
        .with_context(|| format!("tract cannot load {}", path.display()))
}

/// `nnlens bench --workload`.
fn run_workloads(cli: &RunContext, args: &BenchArgs) -> Result<()> {
    if args.samples == Some(0) {
        bail!("--samples must be at least 1");
    }
    let (model, _temp) = model_file(args)?;
    let fma_per_forward = tract_model(&model, args.threads)?.fma_per_input()?;
    let backends: Vec<String> = if args.backend.is_empty() {
        ["tract", "ort"]
            .into_iter()
            .filter(|name| {
                nnlens_core::backends().iter().any(|b| b.name == *name && (b.available)().is_ok())
            })
            .map(String::from)
            .collect()
    } else {
        args.backend.clone()
    };
    let threads =
        args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    tracing::info!(threads, "measuring the machine's limits");
    let limits = machine::measure(threads);
    let setup = workloads::Setup {
        model: &model,
        dataset: &args.dataset,
        data_dir: args.data_dir.as_deref(),
        samples: args.samples,
        backends: &backends,
        threads: args.threads,
        rounds: args.rounds,
        seed: cli.seed,
        fma_per_forward,
        limits,
    };
    let rows = workloads::run(&setup, &args.workload)?;
    match cli.format {
        Format::Json => print_json(&serde_json::json!({
            "machine": limits,
            "fma_per_forward": fma_per_forward,
            "workloads": rows,
        })),
        Format::Table => {
            println!(
                "machine: {} threads, {:.1} GFLOP/s f32 multiply-add peak ({}), {:.1} GB/s memory read; \
                 model: {:.2} MFLOP per forward",
                limits.threads,
                2.0 * limits.fma_per_s / 1e9,
                limits.isa,
                limits.read_bytes_per_s / 1e9,
                2.0 * fma_per_forward / 1e6
            );
            let range = |v: [f64; 3], digits: usize| {
                format!("{:.d$} ({:.d$}-{:.d$})", v[0], v[1], v[2], d = digits)
            };
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.workload.to_string(),
                        r.backend.clone(),
                        format!("{} x {}", r.rounds, r.forwards),
                        range(r.wall_s, 2),
                        range(r.measure_s, 2),
                        range(r.peak_rss_mb, 0),
                        format!("{:.0}", r.forwards_per_s),
                        format!("{:.1}", r.gflop_per_s),
                        format!("{:.2}x", r.times_fma_limit),
                        r.activation_updates_per_s.map_or("-".into(), |u| format!("{:.2e}", u)),
                        r.times_bandwidth_limit.map_or("-".into(), |t| format!("{t:.1}x")),
                    ]
                })
                .collect();
            print_table(
                &[
                    "workload",
                    "backend",
                    "runs x forwards",
                    "wall s",
                    "loop s",
                    "peak MB",
                    "forwards/s",
                    "GFLOP/s",
                    "vs FMA limit",
                    "activations/s",
                    "vs bandwidth limit",
                ],
                &cells,
            );
            Ok(())
        }
    }
}

/// `nnlens bench --profile`.
fn run_profile(cli: &RunContext, args: &BenchArgs) -> Result<()> {
    let (model, _temp) = model_file(args)?;
    let tract = tract_model(&model, Some(1))?;
    let mut shape = vec![args.images.max(nnlens_tract::CHUNK_ROWS)];
    shape.extend_from_slice(&nnlens_core::Model::structure(&tract).input.shape);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cli.seed);
    let x = ArrayD::from_shape_simple_fn(IxDyn(&shape), || rng.random::<f32>());
    let table = tract.profile(x.view(), args.rounds)?;
    let total: f64 = table.iter().map(|t| t.seconds_per_input).sum();
    #[derive(Serialize)]
    struct OpRow<'a> {
        op: &'a str,
        nodes: usize,
        microseconds_per_input: f64,
        share: f64,
        fma_per_input: f64,
        gflop_per_s: f64,
    }
    let rows: Vec<OpRow<'_>> = table
        .iter()
        .map(|t| OpRow {
            op: &t.op,
            nodes: t.nodes,
            microseconds_per_input: t.seconds_per_input * 1e6,
            share: t.seconds_per_input / total,
            fma_per_input: t.fma_per_input,
            gflop_per_s: if t.seconds_per_input > 0.0 {
                2.0 * t.fma_per_input / t.seconds_per_input / 1e9
            } else {
                0.0
            },
        })
        .collect();
    match cli.format {
        Format::Json => print_json(&rows),
        Format::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.op.to_string(),
                        r.nodes.to_string(),
                        format!("{:.1}", r.microseconds_per_input),
                        format!("{:.1}%", 100.0 * r.share),
                        format!("{:.0}", r.fma_per_input),
                        format!("{:.1}", r.gflop_per_s),
                    ]
                })
                .collect();
            print_table(
                &["operator", "nodes", "us/input", "share", "FMA/input", "GFLOP/s"],
                &cells,
            );
            println!("total {:.1} us per input on one thread", total * 1e6);
            Ok(())
        }
    }
}

/// The embedded model written to a file for the Python reference; removed on drop.
struct TempModel {
    path: PathBuf,
}

impl TempModel {
    fn write(bytes: &[u8]) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("nnlens-bench-{}.onnx", std::process::id()));
        nnlens_run::atomic::track_temp(&path);
        if let Err(e) = std::fs::write(&path, bytes) {
            let _ = std::fs::remove_file(&path);
            nnlens_run::atomic::forget_temp(&path);
            return Err(e).with_context(|| format!("cannot write {}", path.display()));
        }
        Ok(Self { path })
    }
}

impl Drop for TempModel {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        nnlens_run::atomic::forget_temp(&self.path);
    }
}

/// A Python process holding an onnxruntime session: it reads a number of batches on its
/// standard input, runs them and answers the seconds they took.
struct PythonOrt {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// The Python side of [`PythonOrt`]: argv = model, batch, intra-op threads (0: onnxruntime's
/// default), seed.
const PYTHON_ORT: &str = r#"
import sys, time
import numpy as np
import onnxruntime as ort
model, batch, threads, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
inp = session.get_inputs()[0]
dtype = np.float64 if inp.type == "tensor(double)" else np.float32
x = np.random.default_rng(seed).random((batch, *inp.shape[1:])).astype(dtype)
feed = {inp.name: x}
print("ready", flush=True)
for line in sys.stdin:
    n = int(line)
    t = time.perf_counter()
    for _ in range(n):
        session.run(None, feed)
    print(time.perf_counter() - t, flush=True)
"#;

impl PythonOrt {
    fn start(
        python: &Path,
        model: &Path,
        batch: usize,
        threads: Option<usize>,
        seed: u64,
    ) -> Result<Self> {
        let mut child = Command::new(python)
            .arg("-c")
            .arg(PYTHON_ORT)
            .arg(model)
            .arg(batch.to_string())
            .arg(threads.unwrap_or(0).to_string())
            .arg(seed.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", python.display()))?;
        let stdin = child.stdin.take().context("no stdin for the Python process")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout for Python")?);
        let mut python_ort = Self { child, stdin, stdout };
        let line = python_ort.read_line().with_context(|| {
            format!(
                "{} could not run onnxruntime on {} (is `onnxruntime` installed for it?)",
                python.display(),
                model.display()
            )
        })?;
        if line != "ready" {
            bail!("the Python onnxruntime reference said '{line}' instead of 'ready'");
        }
        Ok(python_ort)
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the Python process ended");
        }
        Ok(line.trim().to_string())
    }

    fn time(&mut self, batches: usize) -> Result<f64> {
        writeln!(self.stdin, "{batches}")?;
        self.stdin.flush()?;
        let line = self.read_line()?;
        line.parse::<f64>()
            .with_context(|| format!("the Python onnxruntime reference answered '{line}'"))
    }
}

impl Drop for PythonOrt {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
