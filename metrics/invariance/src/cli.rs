//! The invariance family's command line: `nnlens run <measure>` (every registered measure of
//! this crate), `nnlens analyze`, and their result files and plots.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{ArgMatches, Args, Command, FromArgMatches, ValueEnum};
use ndarray::{ArrayViewD, ArrayViewMutD};
use nnlens_core::{LayerStructure, RunManifest, TransformationsDataSet as _};
use nnlens_datasets::npy::read_npy_f64;
use nnlens_plots::{BarChart, ColourScale, Heatmap, Scatter, bar_chart, heatmap, scatter};
use nnlens_run::args::parse_params;
use nnlens_run::charts::both;
use nnlens_run::inputs::{load_data, load_model};
use nnlens_run::output::{print_json, print_table, progress};
use nnlens_run::shard::{ShardStates, shard_out, write_state};
use nnlens_run::{DataArgs, Format, MANIFEST, ModelArgs, OutDir, RunContext, Runner, ShardArgs};
use nnlens_transforms::{
    Fill, ImageTransformationsDataSet, Interpolation, Resample, TransformationSet,
};
use serde_json::json;

use crate::{
    ActivationTransformations, Analyzer, AnalyzerRow, ArraySource, Convention, MeasureResult,
    MeasureSpec, MeasureState, ModelSource, Roll,
};

/// The family's name in the registries.
pub const FAMILY: &str = "invariance";

/// Samples used when `--samples` is not given.
pub const DEFAULT_SAMPLES: usize = 1000;

/// Image interpolation of transformations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Interp {
    /// Bilinear (Keras' and PyTorch's default).
    Bilinear,
    /// Nearest pixel.
    Nearest,
}

/// The flags of `nnlens run <measure>`.
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// The model and the backend that runs it.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The dataset split.
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
    /// A measure parameter KEY=VALUE (repeatable): average_feature_maps=true, alpha=0.95,
    /// bonferroni=false, keep_shape=true, normalize=true, sign=-1.
    #[arg(short = 'p', long = "param")]
    pub params: Vec<String>,
    /// Directory for result.json, CSV files and plots (with --shard: for the shard's
    /// state.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A shard of the run: samples are split into contiguous parts.
    #[command(flatten)]
    pub shard: ShardArgs,
}

/// The flags of `nnlens analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// The measure (an invariance metric; its model total is plotted).
    pub metric: String,
    /// The model and the backend that runs it.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The dataset split.
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
    /// A measure parameter KEY=VALUE (repeatable).
    #[arg(short = 'p', long = "param")]
    pub params: Vec<String>,
    /// Directory for result.json, analysis.csv and the scatter plot.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The invariance family's runner.
pub struct InvarianceRunner;

nnlens_run::register_runner!(InvarianceRunner);

impl Runner for InvarianceRunner {
    fn family(&self) -> &'static str {
        FAMILY
    }

    fn command(&self, _metric: &str, base: Command) -> Command {
        MeasureArgs::augment_args(base)
    }

    fn run(&self, metric: &str, args: &ArgMatches, ctx: &RunContext) -> Result<()> {
        let args = MeasureArgs::from_arg_matches(args)?;
        run(ctx, metric, &args)
    }

    fn merge(
        &self,
        _metric: &str,
        mut manifest: RunManifest,
        states: ShardStates,
        ctx: &RunContext,
        out: &Path,
    ) -> Result<()> {
        let t = Instant::now();
        let state = states
            .fold("an invariance measure's state", |m: &mut MeasureState, s| Ok(m.merge(&s)?))?;
        let result = state.finish()?;
        *manifest.timings_s.entry("merge".into()).or_insert(0.0) += t.elapsed().as_secs_f64();
        finish_run(ctx, manifest, &result, Some(out))
    }

    fn write_files(&self, doc: &serde_json::Value, out: &mut OutDir) -> Result<()> {
        let result = &doc["result"];
        if let Some(groups) = result.get("groups") {
            let rows: Vec<AnalyzerRow> =
                serde_json::from_value(groups.clone()).context("not an analysis result")?;
            let measure = result["measure"].as_str().unwrap_or("measure");
            return analysis_chart(out, measure, &rows);
        }
        let measure: MeasureResult =
            serde_json::from_value(result.clone()).context("not a measure result")?;
        measure_charts(out, &measure)
    }

    fn commands(&self) -> Vec<Command> {
        let analyze = AnalyzeArgs::augment_args(Command::new("analyze"));
        vec![analyze.about(
            "The seed package's Analyzer: a measure and the accuracy for every transformation group",
        )]
    }

    fn run_command(&self, name: &str, args: &ArgMatches, ctx: &RunContext) -> Result<()> {
        match name {
            "analyze" => analyze(ctx, &AnalyzeArgs::from_arg_matches(args)?),
            other => bail!("the invariance family has no command '{other}'"),
        }
    }
}

/// The measure `name` with its `--param`s.
///
/// # Errors
/// An unknown name, bad parameters, a metric of another family.
pub fn measure_spec(name: &str, params: &[String]) -> Result<MeasureSpec> {
    let entry = nnlens_core::metric(name)?;
    let parameters = parse_params(params)?;
    let metric = (entry.build)(&parameters)?;
    metric
        .as_any()
        .downcast_ref::<MeasureSpec>()
        .cloned()
        .with_context(|| format!("'{name}' is not an invariance measure"))
}

fn resample(interpolation: Interp, fill: &str) -> Result<Resample> {
    let fill = match fill {
        "edge" => Fill::Edge,
        v => Fill::Constant(
            v.parse::<f32>()
                .ok()
                .filter(|x| x.is_finite())
                .with_context(|| format!("--fill '{v}' is neither 'edge' nor a number"))?,
        ),
    };
    let interpolation = match interpolation {
        Interp::Bilinear => Interpolation::Bilinear,
        Interp::Nearest => Interpolation::Nearest,
    };
    Ok(Resample { interpolation, fill })
}

/// A transformation set applied to activation maps given as an array (their own pixels).
struct SetOnActivations {
    set: TransformationSet,
    resample: Resample,
}

impl SetOnActivations {
    fn apply(
        &self,
        layer: &LayerStructure,
        t: usize,
        inverse: bool,
        a: ArrayViewD<'_, f64>,
        mut out: ArrayViewMutD<'_, f64>,
    ) -> crate::Result<()> {
        let transformation = self.set.get(t).ok_or_else(|| {
            crate::InvarianceError::Invalid(format!(
                "column {t} has no transformation: the set '{}' has {}",
                self.set.spec,
                self.set.len()
            ))
        })?;
        let transformation =
            if inverse { transformation.inverse() } else { transformation.clone() };
        let single = a.mapv(|v| v as f32);
        let moved = transformation
            .apply(single.view(), layer.channel_axis, self.resample)
            .map_err(|e| crate::InvarianceError::Invalid(e.to_string()))?;
        out.zip_mut_with(&moved, |o, &m| *o = f64::from(m));
        Ok(())
    }
}

impl ActivationTransformations for SetOnActivations {
    fn name(&self) -> String {
        self.set.spec.clone()
    }

    fn is_identity(&self, t: usize) -> bool {
        self.set.get(t).is_some_and(|t| t.is_identity())
    }

    fn inverse(
        &self,
        layer: &LayerStructure,
        t: usize,
        a: ArrayViewD<'_, f64>,
        out: ArrayViewMutD<'_, f64>,
    ) -> crate::Result<()> {
        self.apply(layer, t, true, a, out)
    }

    fn forward(
        &self,
        layer: &LayerStructure,
        t: usize,
        a: ArrayViewD<'_, f64>,
        out: ArrayViewMutD<'_, f64>,
    ) -> crate::Result<()> {
        self.apply(layer, t, false, a, out)
    }
}

/// `nnlens run <measure>`.
fn run(ctx: &RunContext, metric: &str, args: &MeasureArgs) -> Result<()> {
    let spec = measure_spec(metric, &args.params)?;
    let shard = args.shard.resolve()?;
    if let Some(shard) = shard {
        shard_out(args.out.as_deref(), shard)?;
        if spec.kind.needs().firing {
            bail!(
                "{} takes its thresholds from the moments of every sample before it counts:                  its runs cannot be split into shards",
                spec.kind.name()
            );
        }
    }
    let t0 = Instant::now();
    let mut manifest = RunManifest::new("run", ctx.seed);
    let state = match &args.activations {
        Some(path) => run_on_activations(args, &spec, path, &mut manifest, shard)?,
        None => run_on_model(ctx, args, &spec, &mut manifest, shard)?,
    };
    manifest.metric = Some(metric.to_string());
    if let (Some(shard), Some(out)) = (shard, &args.out) {
        manifest.shard = Some(shard);
        manifest.timings_s.insert("total".into(), t0.elapsed().as_secs_f64());
        return write_state(out, &manifest, &serde_json::to_value(&state)?, ctx.quiet);
    }
    let result = state.finish()?;
    manifest.timings_s.insert("total".into(), t0.elapsed().as_secs_f64());
    finish_run(ctx, manifest, &result, args.out.as_deref())
}

/// The end of a run, whole or merged from shards: the layers measured into the manifest, the
/// files written, the result printed.
fn finish_run(
    ctx: &RunContext,
    mut manifest: RunManifest,
    result: &MeasureResult,
    out: Option<&Path>,
) -> Result<()> {
    if let Some(parameters) = manifest.parameters.as_object_mut()
        && parameters.contains_key("transformations")
    {
        let layers: Vec<String> = result.layers.iter().map(|l| l.name.clone()).collect();
        parameters.insert("layers".into(), json!(layers));
    }
    let doc = json!({ "manifest": manifest, "result": result });
    if let Some(out) = out {
        write_result_files(out, &doc, result)?;
    }
    match ctx.format {
        Format::Json => print_json(&doc),
        Format::Table => {
            print_result(result);
            Ok(())
        }
    }
}

fn run_on_activations(
    args: &MeasureArgs,
    spec: &MeasureSpec,
    path: &Path,
    manifest: &mut RunManifest,
    shard: Option<nnlens_core::ShardRef>,
) -> Result<MeasureState> {
    if args.model.model.is_some() || args.transformations.is_some() {
        bail!(
            "--activations runs on activations computed elsewhere: it takes no --model or \
             --transformations (use --inverse for same-equivariance)"
        );
    }
    let t = Instant::now();
    let mut values = read_npy_f64(path)?;
    if let Some(shard) = shard {
        if values.ndim() < 2 {
            bail!("activations {}: expected [sample, transformation, ...]", path.display());
        }
        let rows = shard.range(values.shape()[0]);
        values = values.slice_axis(ndarray::Axis(0), ndarray::Slice::from(rows)).to_owned();
    }
    let name = args.layer_name.clone().unwrap_or_else(|| {
        path.file_stem().map_or("activations".into(), |s| s.to_string_lossy().into_owned())
    });
    let artifact = nnlens_datasets::catalog::artifact(path)?;
    let mut source = ArraySource::new(values, &name, args.channel_axis)
        .with_context(|| format!("activations {}", path.display()))?
        .with_origin(json!({ "activations": artifact, "layer": name }));
    if let Some(inverse) = &args.inverse {
        let transformations: Box<dyn ActivationTransformations> = if inverse == "roll" {
            Box::new(Roll)
        } else {
            Box::new(SetOnActivations {
                set: TransformationSet::parse(inverse)?,
                resample: resample(args.interpolation, &args.fill)?,
            })
        };
        source = source.with_transformations(transformations);
    }
    manifest.timings_s.insert("load".into(), t.elapsed().as_secs_f64());
    manifest.parameters = json!({
        "measure_parameters": spec.relevant_parameters(),
        "source": source_description(&source),
        "channel_axis": args.channel_axis,
        "inverse": args.inverse,
    });
    let t = Instant::now();
    let state = MeasureState::accumulate(spec, &mut source)?;
    manifest.timings_s.insert("measure".into(), t.elapsed().as_secs_f64());
    Ok(state)
}

fn source_description(source: &dyn crate::StSource) -> serde_json::Value {
    source.describe()
}

fn run_on_model(
    ctx: &RunContext,
    args: &MeasureArgs,
    spec: &MeasureSpec,
    manifest: &mut RunManifest,
    shard: Option<nnlens_core::ShardRef>,
) -> Result<MeasureState> {
    let t = Instant::now();
    let Some(transformations) = &args.transformations else {
        bail!(
            "{} needs --transformations (e.g. 'translation:dx=-2..2,dy=-2..2,step=2' or \
             'rotation:n=8'; see `nnlens transformations`), or --activations",
            spec.kind.name()
        );
    };
    if args.inverse.is_some() || args.channel_axis.is_some() {
        bail!("--inverse and --channel-axis are for --activations; a model's layers know theirs");
    }
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let model = load_model(&args.model)?;
    let data = load_data(&args.data, Some(DEFAULT_SAMPLES))?;
    let set = TransformationSet::parse(transformations)?;
    let resample = resample(args.interpolation, &args.fill)?;
    let set_description = json!({ "spec": set.spec, "count": set.len(), "resample": resample });
    // A shard measures its contiguous part of the samples the whole run would, in whole
    // blocks of the whole run (a backend's results may depend on an input's place in its
    // batch).
    let samples = match shard {
        Some(shard) => {
            let block = samples_per_block(spec, args.batch_size, set.len());
            let rows: Vec<usize> = shard.range_aligned(data.data.len(), block).collect();
            if rows.is_empty() {
                bail!(
                    "shard {shard} has no samples: {} samples make {} blocks of {block} \
                     (--batch-size / transformations), fewer than {} shards",
                    data.data.len(),
                    data.data.len().div_ceil(block),
                    shard.count
                );
            }
            data.data.subset(&rows)?
        }
        None => data.data.clone(),
    };
    let mut dataset = ImageTransformationsDataSet::new(samples.clone(), set, resample)?;
    manifest.timings_s.insert("load".into(), t.elapsed().as_secs_f64());
    let layers: Vec<&str> = args.layers.iter().map(String::as_str).collect();
    let cells = samples.len() * dataset.number_of_transformations() * spec.kind.passes();
    let bar = progress(cells as u64, spec.kind.name(), ctx.quiet);
    let t = Instant::now();
    let state = {
        let mut source = ModelSource::new(model.model.as_ref(), &mut dataset)
            .with_batch_size(args.batch_size)
            .with_progress(|n| bar.inc(n as u64));
        if !layers.is_empty() {
            source = source.with_layers(&layers)?;
        }
        MeasureState::accumulate(spec, &mut source)?
    };
    bar.finish_and_clear();
    manifest.timings_s.insert("measure".into(), t.elapsed().as_secs_f64());
    model.describe(manifest);
    manifest.dataset = Some(data.reference.clone());
    manifest.parameters = json!({
        "measure_parameters": spec.relevant_parameters(),
        "transformations": set_description,
        "batch_size": args.batch_size,
        "pixel_scale": args.data.pixel_scale.as_str(),
    });
    Ok(state)
}

/// The samples of a block of the measure's passes over a model ([`ModelSource`]): rows of
/// `batch_size / transformations` samples (one when a row does not fit in a batch), and blocks
/// of `batch_size` samples in the transformations-first pass of the sample distances. A shard
/// that starts at a multiple of it runs the whole run's blocks.
fn samples_per_block(spec: &MeasureSpec, batch_size: usize, transformations: usize) -> usize {
    let rows = (batch_size / transformations.max(1)).max(1);
    if spec.kind.needs().sample_distance {
        let gcd = |mut a: usize, mut b: usize| {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        rows / gcd(rows, batch_size) * batch_size
    } else {
        rows
    }
}

fn number(v: f64) -> String {
    if v.is_finite() { format!("{v:.6}") } else { format!("{v}") }
}

fn print_result(result: &MeasureResult) {
    nnlens_run::out!(
        "{} ({} samples x {} transformations)",
        result.measure,
        result.samples,
        result.transformations
    );
    let rows: Vec<Vec<String>> = result
        .layers
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                number(l.value),
                format!("{:?}", l.shape),
                l.features.as_ref().map_or("-".into(), |f| f.len().to_string()),
            ]
        })
        .collect();
    print_table(&["layer", "value", "values shape", "features"], &rows);
    nnlens_run::out!("total  {}", number(result.total));
    if !result.skipped_layers.is_empty() {
        nnlens_run::out!("(no feature maps, left out: {})", result.skipped_layers.join(", "));
    }
}

/// Writes result.json, layers.csv, features.csv and the plots of a measure into `out`,
/// atomically (see [`nnlens_run::atomic`]).
pub fn write_result_files(
    out: &Path,
    doc: &serde_json::Value,
    result: &MeasureResult,
) -> Result<()> {
    let mut dir = OutDir::create(out)?;
    dir.manifest(MANIFEST, doc)?;
    dir.csv("layers.csv", |csv| {
        csv.write_record([
            "layer",
            "value",
            "values",
            "features",
            "numerator_mean",
            "denominator_mean",
        ])?;
        for l in &result.layers {
            let mean = |v: &Option<Vec<f64>>| {
                v.as_ref().map_or(String::new(), |v| crate::plain_mean(v).to_string())
            };
            csv.write_record([
                l.name.clone(),
                l.value.to_string(),
                l.values.len().to_string(),
                l.features.as_ref().map_or(0, Vec::len).to_string(),
                mean(&l.numerator),
                mean(&l.denominator),
            ])?;
        }
        csv.write_record([
            "total".to_string(),
            result.total.to_string(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ])?;
        Ok(())
    })?;
    dir.csv("features.csv", |csv| {
        csv.write_record(["layer", "feature", "value"])?;
        for l in &result.layers {
            for (f, v) in l.features.iter().flatten().enumerate() {
                csv.write_record([l.name.clone(), f.to_string(), v.to_string()])?;
            }
        }
        Ok(())
    })?;
    measure_charts(&mut dir, result)?;
    dir.commit()
}

/// `nnlens analyze`.
fn analyze(ctx: &RunContext, args: &AnalyzeArgs) -> Result<()> {
    let t0 = Instant::now();
    let spec = measure_spec(&args.metric, &args.params)?;
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    let model = load_model(&args.model)?;
    let data = load_data(&args.data, Some(DEFAULT_SAMPLES))?;
    let resample = resample(args.interpolation, &args.fill)?;
    let dataset = ImageTransformationsDataSet::new(
        data.data.clone(),
        TransformationSet::parse("identity")?,
        resample,
    )?;
    let labels = data.data.require_labels("analyze")?.to_vec();
    let analyzer = Analyzer::new(model.model.as_ref(), &dataset, &labels, spec.clone())?
        .with_batch_size(args.batch_size);
    let groups = dataset.number_of_groups();
    let bar = progress(groups as u64, "analyze (groups)", ctx.quiet);
    let rows = analyzer.run(args.n, |g| bar.set_position(g as u64))?;
    bar.finish_and_clear();
    let mut manifest = model.manifest("analyze", ctx);
    manifest.metric = Some(args.metric.clone());
    manifest.dataset = Some(data.reference.clone());
    manifest.parameters = json!({
        "measure_parameters": spec.relevant_parameters(),
        "n": args.n,
        "resample": resample,
        "batch_size": args.batch_size,
    });
    manifest.timings_s.insert("total".into(), t0.elapsed().as_secs_f64());
    let doc = json!({
        "manifest": manifest,
        "result": { "measure": spec.kind.name(), "n": args.n, "groups": rows },
    });
    if let Some(out) = &args.out {
        let mut dir = OutDir::create(out)?;
        dir.manifest(MANIFEST, &doc)?;
        write_analysis_files(&mut dir, spec.kind.name(), &rows)?;
        dir.commit()?;
    }
    match ctx.format {
        Format::Json => print_json(&doc),
        Format::Table => {
            nnlens_run::out!(
                "{} vs accuracy, {} transformations per group",
                spec.kind.name(),
                args.n
            );
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.group.to_string(),
                        r.transformations.to_string(),
                        number(r.measure),
                        format!("{:.4}", r.accuracy),
                    ]
                })
                .collect();
            print_table(&["group", "transformations", "measure", "accuracy"], &table);
            Ok(())
        }
    }
}

/// analysis.csv and the scatter plot of an Analyzer run, staged in `out`.
pub fn write_analysis_files(out: &mut OutDir, measure: &str, rows: &[AnalyzerRow]) -> Result<()> {
    out.csv("analysis.csv", |csv| {
        csv.write_record(["group", "transformations", "measure", "accuracy", "loss"])?;
        for r in rows {
            csv.write_record([
                r.group.to_string(),
                r.transformations.to_string(),
                r.measure.to_string(),
                r.accuracy.to_string(),
                r.loss.to_string(),
            ])?;
        }
        Ok(())
    })?;
    analysis_chart(out, measure, rows)
}

/// A measure's plots: the value of every layer (bar chart), and for feature layers the value
/// of every feature map (heatmap, one row per layer).
pub fn measure_charts(out: &mut OutDir, result: &MeasureResult) -> Result<()> {
    let rule = match result.convention {
        Convention::Tmeasures => "mean of finite values",
        Convention::Seed => "mean",
    };
    let bars = BarChart {
        title: format!(
            "{} per layer ({} samples x {} transformations; total {:.4})",
            result.measure, result.samples, result.transformations, result.total
        ),
        y_label: format!("{} ({rule})", result.measure),
        labels: result.layers.iter().map(|l| l.name.clone()).collect(),
        values: result.layers.iter().map(|l| l.value).collect(),
        highlight: None,
    };
    both(out, "layers", |p| bar_chart(p, &bars))?;
    let rows: Vec<(String, Vec<f64>)> = result
        .layers
        .iter()
        .filter_map(|l| l.features.as_ref().map(|f| (l.name.clone(), f.clone())))
        .collect();
    if !rows.is_empty() {
        let map = Heatmap {
            title: format!("{} per feature map", result.measure),
            x_label: "feature map".into(),
            rows,
            scale: ColourScale::Sequential,
        };
        both(out, "features", |p| heatmap(p, &map))?;
    }
    Ok(())
}

/// The Analyzer's scatter plot: the measure against the accuracy, one point per group.
pub fn analysis_chart(out: &mut OutDir, measure: &str, rows: &[AnalyzerRow]) -> Result<()> {
    let plot = Scatter {
        title: format!("{measure} vs accuracy per transformation group"),
        x_label: measure.to_string(),
        y_label: "accuracy on the transformed samples".into(),
        points: rows
            .iter()
            .map(|r| (r.measure, r.accuracy, format!("group {}", r.group)))
            .collect(),
    };
    both(out, "analysis", |p| scatter(p, &plot))
}
