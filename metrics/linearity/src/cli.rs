//! The linearity family's command line: `nnlens run linearity`, its result files and plots.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{ArgMatches, Args, Command, FromArgMatches};
use ndarray::{Array2, Array3, Axis, Ix2, Ix3};
use nnlens_core::RunManifest;
use nnlens_core::{DataSet as _, Model};
use nnlens_datasets::ImageDataSet;
use nnlens_datasets::npy::read_npy_f64;
use nnlens_plots::{BarChart, bar_chart, histograms};
use nnlens_run::charts::both;
use nnlens_run::inputs::{
    LoadedData, class_label, class_names, load_data, load_model, random_rows, rows_of,
};
use nnlens_run::output::{print_json, print_table, progress};
use nnlens_run::shard::{ShardStates, shard_out, write_state};
use nnlens_run::{DataArgs, Format, MANIFEST, ModelArgs, OutDir, RunContext, Runner, ShardArgs};
use serde_json::json;

use crate::{
    Execution, FeatureRange, GridSampler, Histogram, Instances, KnnIndex, KnnSampler,
    LayerLinearity, LayerSpec, LinearityResult, LinearitySpec, LinearityState, Method, ModelType,
    OffsetSampler, Perturbations, Summary, flatten_rows, instances_per_batch,
    is_probability_vector, measure,
};

/// The family's name in the registries.
pub const FAMILY: &str = "linearity";

/// Instances measured when neither `--instances`, `--per-class` nor `--indices` is given (the
/// seed's per-layer workload).
pub const DEFAULT_INSTANCES: usize = 100;

/// Inputs per model call when `--batch-size` is not given.
pub const DEFAULT_BATCH: usize = 256;

/// Inputs per model call with ONNX Runtime when `--batch-size` is not given: its kernels run
/// the seed's per-class workload faster on small batches, whose activations stay in the cache
/// (measured on the Fashion CNN, 2 cores: 9.0-9.6 s at 32 against 11.3-11.7 s at 256; tract
/// cuts every batch into chunks of its own and is 12% slower at 32).
pub const ORT_BATCH: usize = 32;

/// The flags of `nnlens run linearity` (alibi's `linearity_measure`).
#[derive(Debug, Args)]
pub struct LinearityArgs {
    /// The model and the backend that runs it.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The dataset split.
    #[command(flatten)]
    pub data: DataArgs,
    /// Layers to measure (names or tensor names), comma separated, or `all`; default the
    /// model's output.
    #[arg(long, value_delimiter = ',')]
    pub layers: Vec<String>,
    /// Inputs per model call (default [`DEFAULT_BATCH`], or [`ORT_BATCH`] with ort).
    #[arg(long, help = "Inputs per model call [default: 256; 32 with the ort backend]")]
    pub batch_size: Option<usize>,
    /// Directory for result.json, CSV files and plots.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Random instances of the split to measure, drawn with --seed (default 100).
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
    /// A shard of the run: the instances are split into contiguous parts.
    #[command(flatten)]
    pub shard: ShardArgs,
}

/// The linearity family's runner.
pub struct LinearityRunner;

nnlens_run::register_runner!(LinearityRunner);

impl Runner for LinearityRunner {
    fn family(&self) -> &'static str {
        FAMILY
    }

    fn command(&self, _metric: &str, base: Command) -> Command {
        LinearityArgs::augment_args(base)
    }

    fn run(&self, metric: &str, args: &ArgMatches, ctx: &RunContext) -> Result<()> {
        run(ctx, metric, &LinearityArgs::from_arg_matches(args)?)
    }

    fn merge(
        &self,
        metric: &str,
        mut manifest: RunManifest,
        states: ShardStates,
        ctx: &RunContext,
        out: &Path,
    ) -> Result<()> {
        let t = Instant::now();
        let merged = states.fold("a linearity state", |m: &mut ShardResult, part| {
            if (&m.output_layer, &m.class_names) != (&part.output_layer, &part.class_names) {
                bail!("another output layer or other class names");
            }
            Ok(m.state.merge(part.state)?)
        })?;
        let bins = manifest.parameters["bins"]
            .as_u64()
            .context("the shards' manifest has no histogram bins")? as usize;
        let summary = merged.state.summarise(bins)?;
        *manifest.timings_s.entry("merge".into()).or_insert(0.0) += t.elapsed().as_secs_f64();
        let done = Done { metric, output: &merged.output_layer, classes: &merged.class_names };
        finish_run(ctx, manifest, &done, &merged.state, &summary, Some(out))
    }

    fn write_files(&self, doc: &serde_json::Value, out: &mut OutDir) -> Result<()> {
        let result = &doc["result"];
        let summary: LinearityResult =
            serde_json::from_value(result["summary"].clone()).context("not a linearity result")?;
        let output = result["output_layer"].as_str().unwrap_or_default();
        let classes: Vec<String> =
            serde_json::from_value(result["class_names"].clone()).unwrap_or_default();
        linearity_charts(out, &summary, output, &classes)
    }
}

/// `nnlens run linearity`.
fn run(ctx: &RunContext, metric: &str, lin: &LinearityArgs) -> Result<()> {
    let shard = lin.shard.resolve()?;
    if let Some(shard) = shard {
        shard_out(lin.out.as_deref(), shard)?;
    }
    let t0 = Instant::now();
    let loaded = load_model(&lin.model)?;
    let model = loaded.model.as_ref();
    let data = load_data(&lin.data, None)?;
    let mut manifest = loaded.manifest("run", ctx);
    manifest.metric = Some(metric.to_string());
    manifest.dataset = Some(data.reference.clone());
    let t = Instant::now();

    let (rows, selection) = select_instances(lin, &data.data, ctx.seed)?;
    let pool = flatten_rows(data.data.batch(0..data.data.len())?.view())?;
    let inputs = pool.select(Axis(0), &rows);
    let all_labels = data.data.require_labels("linearity")?;
    let labels: Vec<usize> = rows.iter().map(|&r| all_labels[r]).collect();
    let range = feature_range(lin, &pool)?;
    let spec = linearity_spec(lin)?;
    // A shard's part of the instances: whole batches of the whole run, so that the model sees
    // the same batches (a backend's results may depend on a row's place in its batch).
    let batch_size = lin.batch_size.unwrap_or(match model.backend() {
        "ort" => ORT_BATCH,
        _ => DEFAULT_BATCH,
    });
    let execution = Execution { batch_size: batch_size.max(1) };
    let per_batch = instances_per_batch(spec.agg, spec.nb_samples, execution);
    let part = shard.map_or(0..rows.len(), |s| s.range_aligned(rows.len(), per_batch));
    if let Some(shard) = shard
        && part.is_empty()
    {
        bail!(
            "shard {shard} has no instances: {} instances make {} batches of {per_batch}, \
             fewer than {} shards",
            rows.len(),
            rows.len().div_ceil(per_batch),
            shard.count
        );
    }
    let sampler = sampler(ctx, lin, &spec, &range, rows.len(), part.clone())?;
    let layers = layer_specs(model, &lin.layers, &spec, inputs.view(), data.data.data_shape())?;
    manifest.timings_s.insert("load".into(), t.elapsed().as_secs_f64());
    // The sampler of the whole run (a shard's replays its rows of the offsets).
    let mut sampler_description = sampler.describe();
    if let Some(count) = sampler_description.get_mut("instances") {
        *count = json!(rows.len());
    }
    manifest.parameters = json!({
        "linearity": spec,
        "sampler": sampler_description,
        "layers": layers,
        "instances": selection,
        "feature_range": lin.feature_range,
        "batch_size": batch_size,
        "bins": lin.bins,
        "threads": rayon::current_num_threads(),
    });
    drop(pool);

    let t = Instant::now();
    // A shard measures its contiguous part of the instances the whole run would, with the
    // same draws (seeded by dataset row, or its rows of --offsets) and layer types (from the
    // whole run's first inputs).
    let bar = progress(part.len() as u64, "linearity", ctx.quiet);
    let part_inputs = inputs.slice_axis(Axis(0), ndarray::Slice::from(part.clone()));
    let instances = Instances {
        inputs: part_inputs,
        data_shape: data.data.data_shape(),
        indices: &rows[part.clone()],
        labels: Some(&labels[part.clone()]),
    };
    let state = measure(model, &spec, instances, sampler.as_ref(), &layers, execution, &|n| {
        bar.inc(n as u64)
    })?;
    bar.finish_and_clear();
    manifest.timings_s.insert("measure".into(), t.elapsed().as_secs_f64());
    let classes = class_names(&data.data, data.data.classes());
    let output = model.structure().output_layer().name.clone();
    if let (Some(shard), Some(out)) = (shard, &lin.out) {
        manifest.shard = Some(shard);
        manifest.timings_s.insert("total".into(), t0.elapsed().as_secs_f64());
        let part = ShardResult { output_layer: output, class_names: classes, state };
        return write_state(out, &manifest, &serde_json::to_value(&part)?, ctx.quiet);
    }
    let summary = state.summarise(lin.bins)?;
    manifest.timings_s.insert("total".into(), t0.elapsed().as_secs_f64());
    let done = Done { metric, output: &output, classes: &classes };
    finish_run(ctx, manifest, &done, &state, &summary, lin.out.as_deref())
}

/// A shard's state: the instances it measured, and what the result names.
#[derive(serde::Serialize, serde::Deserialize)]
struct ShardResult {
    output_layer: String,
    class_names: Vec<String>,
    state: LinearityState,
}

/// What a finished run names beside its state.
struct Done<'a> {
    metric: &'a str,
    output: &'a str,
    classes: &'a [String],
}

/// The end of a run, whole or merged from shards: the files written, the result printed.
fn finish_run(
    ctx: &RunContext,
    manifest: RunManifest,
    done: &Done<'_>,
    state: &LinearityState,
    summary: &LinearityResult,
    out: Option<&Path>,
) -> Result<()> {
    let doc = json!({
        "manifest": manifest,
        "result": {
            "metric": done.metric,
            "output_layer": done.output,
            "class_names": done.classes,
            "summary": summary,
            "state": state,
        },
    });
    if let Some(out) = out {
        let mut dir = OutDir::create(out)?;
        dir.manifest(MANIFEST, &doc)?;
        write_csv(&mut dir, state, summary, done.classes)?;
        linearity_charts(&mut dir, summary, done.output, done.classes)?;
        dir.commit()?;
    }
    match ctx.format {
        Format::Json => print_json(&doc),
        Format::Table => {
            print_summary(summary, done.output, done.classes);
            Ok(())
        }
    }
}

/// The dataset rows to measure, and how they were chosen (for the manifest).
fn select_instances(
    lin: &LinearityArgs,
    data: &ImageDataSet,
    seed: u64,
) -> Result<(Vec<usize>, serde_json::Value)> {
    let n = data.len();
    if let Some(spec) = &lin.indices {
        let rows = rows_of(spec, "--indices", n, data.name())?;
        let count = rows.len();
        return Ok((rows, json!({ "rule": "indices", "rows": count })));
    }
    if lin.per_class {
        let cap = lin.per_class_max.unwrap_or(usize::MAX);
        if cap == 0 {
            bail!("--per-class-max 0: nothing to measure");
        }
        let mut rows = Vec::new();
        let labels = data.require_labels("--per-class")?;
        for class in 0..data.classes() {
            rows.extend((0..n).filter(|&r| labels[r] == class).take(cap));
        }
        return Ok((rows, json!({ "rule": "per-class", "per_class_max": lin.per_class_max })));
    }
    let count = lin.instances.unwrap_or(DEFAULT_INSTANCES.min(n));
    let rows = random_rows(count, n, seed, "--instances", data.name())?;
    Ok((rows, json!({ "rule": "random", "count": count, "seed": seed })))
}

fn feature_range(lin: &LinearityArgs, pool: &Array2<f32>) -> Result<FeatureRange> {
    if lin.feature_range == "split" {
        return Ok(FeatureRange::infer(pool.view())?);
    }
    let path = Path::new(&lin.feature_range);
    let a = read_npy_f64(path).with_context(|| {
        format!("--feature-range: '{}' is neither 'split' nor an NPY file", path.display())
    })?;
    let a = a.into_dimensionality::<Ix2>().ok().filter(|a| a.ncols() == 2).with_context(|| {
        format!("--feature-range {}: expected an array [features, 2] of [min, max]", path.display())
    })?;
    if a.nrows() != pool.ncols() {
        bail!(
            "--feature-range {}: {} features, the data has {}",
            path.display(),
            a.nrows(),
            pool.ncols()
        );
    }
    let min = a.column(0).iter().map(|&v| v as f32).collect();
    let max = a.column(1).iter().map(|&v| v as f32).collect();
    FeatureRange::new(min, max).with_context(|| format!("--feature-range {}", path.display()))
}

fn linearity_spec(lin: &LinearityArgs) -> Result<LinearitySpec> {
    let mut spec = LinearitySpec {
        method: if lin.offsets.is_some() { Method::Offsets } else { lin.method.parse()? },
        agg: lin.agg.parse()?,
        nb_samples: lin.nb_samples,
        epsilon: lin.epsilon,
        res: lin.res,
        alphas: if lin.alphas.is_empty() { None } else { Some(lin.alphas.clone()) },
        ..LinearitySpec::default()
    };
    if lin.offsets.is_some() && lin.method == "knn" {
        bail!("--offsets replays grid draws: it cannot be combined with --method knn");
    }
    for m in &lin.model_type {
        match m.split_once('=') {
            Some((layer, t)) => {
                spec.model_types.insert(layer.trim().to_string(), t.trim().parse()?);
            }
            None => spec.model_type = Some(m.parse()?),
        }
    }
    if let Some(path) = &lin.offsets {
        // The file decides the sample count.
        let shape = read_npy_f64(path)?.shape().to_vec();
        if let [_, s, _] = shape[..] {
            spec.nb_samples = s;
        }
    }
    spec.validate()?;
    Ok(spec)
}

fn sampler(
    ctx: &RunContext,
    lin: &LinearityArgs,
    spec: &LinearitySpec,
    range: &FeatureRange,
    instances: usize,
    part: std::ops::Range<usize>,
) -> Result<Box<dyn Perturbations>> {
    Ok(match spec.method {
        Method::Grid => {
            Box::new(GridSampler::new(range, spec.epsilon, spec.res, spec.nb_samples, ctx.seed)?)
        }
        Method::Offsets => {
            let path = lin.offsets.as_ref().expect("offsets method comes from --offsets");
            let a = read_npy_f64(path)?;
            let a: Array3<f64> = a.into_dimensionality::<Ix3>().with_context(|| {
                format!("--offsets {}: expected [instances, nb_samples, features]", path.display())
            })?;
            if a.shape()[0] != instances {
                bail!(
                    "--offsets {}: offsets for {} instances, {instances} selected",
                    path.display(),
                    a.shape()[0]
                );
            }
            let a = a.slice_axis(Axis(0), ndarray::Slice::from(part)).to_owned();
            let s = OffsetSampler::new(a, range, spec.res)
                .with_context(|| format!("--offsets {}", path.display()))?;
            Box::new(s)
        }
        Method::Knn => {
            let mut reference_args = lin.data.clone();
            reference_args.split = Some(lin.knn_split.clone());
            reference_args.samples = None;
            let LoadedData { data, .. } = load_data(&reference_args, None)
                .with_context(|| format!("loading the kNN reference split '{}'", lin.knn_split))?;
            let rows = flatten_rows(data.batch(0..data.len())?.view())?;
            Box::new(KnnSampler::new(KnnIndex::new(rows)?, spec.nb_samples)?)
        }
    })
}

/// The layers asked for (default: the model's output; `all`: every layer) with their model
/// types: classifier for a probability vector (a softmax, or an output whose rows are
/// non-negative and sum to 1 on the first instances), regressor otherwise, unless overridden.
fn layer_specs(
    model: &dyn Model,
    names: &[String],
    spec: &LinearitySpec,
    inputs: ndarray::ArrayView2<'_, f32>,
    data_shape: &[usize],
) -> Result<Vec<LayerSpec>> {
    let structure = model.structure();
    let names: Vec<String> = match names {
        [] => vec![structure.output_layer().name.clone()],
        [all] if all == "all" => structure.names().iter().map(|s| s.to_string()).collect(),
        names => names.to_vec(),
    };
    for name in spec.model_types.keys() {
        if !names.contains(name) {
            bail!("--model-type names layer '{name}', which is not measured (--layers)");
        }
    }
    let probe = inputs.slice(ndarray::s![..inputs.nrows().min(8), ..]).to_owned();
    let mut shape = vec![probe.nrows()];
    shape.extend_from_slice(data_shape);
    let x = nnlens_core::conform_input(
        probe.into_shape_with_order(ndarray::IxDyn(&shape))?,
        &structure.input,
    )?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let outputs = model.predict(x.view(), Some(&refs))?;
    names
        .iter()
        .map(|name| {
            let op_is_softmax = structure.layer(name).is_ok_and(|l| l.op == "Softmax");
            let out = outputs.get(name).with_context(|| format!("no output for layer '{name}'"))?;
            let rows = out.shape()[0];
            let flat = out.view().into_shape_with_order((rows, out.len() / rows.max(1)));
            let probability = op_is_softmax || flat.is_ok_and(|f| is_probability_vector(f));
            Ok(LayerSpec { name: name.clone(), model_type: spec.model_type_of(name, probability) })
        })
        .collect()
}

fn summary_cells(s: &Summary) -> Vec<String> {
    [s.mean, s.std, s.min, s.q05, s.q25, s.median, s.q75, s.q95, s.max]
        .iter()
        .map(|v| format!("{v}"))
        .collect()
}

const SUMMARY_HEADER: [&str; 9] =
    ["mean", "std", "min", "q05", "q25", "median", "q75", "q95", "max"];

fn write_csv(
    out: &mut OutDir,
    state: &LinearityState,
    summary: &LinearityResult,
    class_names: &[String],
) -> Result<()> {
    let name = |c: usize| class_names.get(c).cloned().unwrap_or_else(|| c.to_string());
    out.csv("instances.csv", |w| {
        let mut header = vec!["index".to_string(), "label".to_string(), "class_name".to_string()];
        header.extend(state.layers.iter().map(|l| l.name.clone()));
        w.write_record(&header)?;
        for i in 0..state.len() {
            let mut row = vec![
                state.indices[i].to_string(),
                state.labels.as_ref().map_or(String::new(), |l| l[i].to_string()),
                state.labels.as_ref().map_or(String::new(), |l| name(l[i])),
            ];
            row.extend(state.values.iter().map(|v| format!("{}", v[i])));
            w.write_record(&row)?;
        }
        Ok(())
    })?;
    out.csv("layers.csv", |w| {
        let mut header = vec!["layer", "model_type", "count"];
        header.extend(SUMMARY_HEADER);
        w.write_record(&header)?;
        for l in &summary.layers {
            let mut row = vec![
                l.name.clone(),
                model_type_name(l.model_type).into(),
                l.summary.count.to_string(),
            ];
            row.extend(summary_cells(&l.summary));
            w.write_record(&row)?;
        }
        Ok(())
    })?;
    out.csv("classes.csv", |w| {
        let mut header = vec!["layer", "class", "class_name", "count"];
        header.extend(SUMMARY_HEADER);
        w.write_record(&header)?;
        for l in &summary.layers {
            for c in &l.classes {
                let mut row = vec![
                    l.name.clone(),
                    c.class.to_string(),
                    name(c.class),
                    c.summary.count.to_string(),
                ];
                row.extend(summary_cells(&c.summary));
                w.write_record(&row)?;
            }
        }
        Ok(())
    })
}

fn model_type_name(t: ModelType) -> &'static str {
    match t {
        ModelType::Classifier => "classifier",
        ModelType::Regressor => "regressor",
    }
}

/// The layer whose per-class distributions are shown: the model's output if measured, else
/// the last layer measured.
pub fn focus_layer<'a>(summary: &'a LinearityResult, output: &str) -> Option<&'a LayerLinearity> {
    summary.layers.iter().find(|l| l.name == output).or(summary.layers.last())
}

fn print_summary(summary: &LinearityResult, output: &str, classes: &[String]) {
    let rows: Vec<Vec<String>> = summary
        .layers
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                model_type_name(l.model_type).into(),
                format!("{:.6}", l.summary.mean),
                format!("{:.6}", l.summary.std),
                format!("{:.6}", l.summary.median),
            ]
        })
        .collect();
    nnlens_run::out!("linearity of {} instances (0 = linear)", summary.instances);
    print_table(&["layer", "model type", "mean L", "std", "median"], &rows);
    if let Some(focus) = focus_layer(summary, output).filter(|l| l.classes.len() > 1) {
        nnlens_run::out!("");
        nnlens_run::out!("per class at {}", focus.name);
        let rows: Vec<Vec<String>> = focus
            .classes
            .iter()
            .map(|c| {
                vec![
                    c.class.to_string(),
                    classes.get(c.class).cloned().unwrap_or_default(),
                    c.summary.count.to_string(),
                    format!("{:.6}", c.summary.mean),
                    format!("{:.6}", c.summary.std),
                ]
            })
            .collect();
        print_table(&["class", "name", "instances", "mean L", "std"], &rows);
    }
}

/// The plots of a linearity result: the mean L of every layer (the model's output
/// highlighted, as the seed's figure), and at the output layer (else the last one measured)
/// the mean L of every class and each class's histogram.
pub fn linearity_charts(
    out: &mut OutDir,
    summary: &LinearityResult,
    output: &str,
    classes: &[String],
) -> Result<()> {
    let bars = BarChart {
        title: format!("linearity per layer ({} instances; 0 = linear)", summary.instances),
        y_label: "mean linearity L".into(),
        labels: summary.layers.iter().map(|l| l.name.clone()).collect(),
        values: summary.layers.iter().map(|l| l.summary.mean).collect(),
        highlight: summary.layers.iter().position(|l| l.name == output),
    };
    both(out, "layers", |p| bar_chart(p, &bars))?;
    let Some(focus) = focus_layer(summary, output) else { return Ok(()) };
    let label = |c: usize| match classes.get(c) {
        Some(name) => class_label(c, name),
        None => c.to_string(),
    };
    if focus.classes.len() > 1 {
        let bars = BarChart {
            title: format!("linearity per class at {}", focus.name),
            y_label: "mean linearity L".into(),
            labels: focus.classes.iter().map(|c| label(c.class)).collect(),
            values: focus.classes.iter().map(|c| c.summary.mean).collect(),
            highlight: None,
        };
        both(out, "classes", |p| bar_chart(p, &bars))?;
    }
    let bins = focus.summary.histogram.counts.len().max(1);
    let panels: Vec<(String, Vec<f64>)> = if focus.classes.len() > 1 {
        focus.classes.iter().map(|c| (label(c.class), expand(&c.summary.histogram))).collect()
    } else {
        vec![(focus.name.clone(), expand(&focus.summary.histogram))]
    };
    let title = format!("distribution of linearity at {}", focus.name);
    both(out, "histograms", |p| histograms(p, &title, &panels, bins))
}

/// Values that reproduce a stored histogram (each bin's count at its centre), so that saved
/// results can be redrawn without the per-instance values.
fn expand(h: &Histogram) -> Vec<f64> {
    h.counts
        .iter()
        .enumerate()
        .flat_map(|(i, &n)| std::iter::repeat_n(0.5 * (h.edges[i] + h.edges[i + 1]), n))
        .collect()
}
