//! The influence family's command line: `nnlens run influence` and `nnlens run performance`
//! (ethik's entropic re-weighting), their result files and plots.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{ArgMatches, Args, Command, FromArgMatches};
use ndarray::{Array2, ArrayD, s};
use nnlens_core::{DataSet as _, RunManifest, conform_input, in_batches};
use nnlens_plots::{
    BarChart, ColourScale, LineChart, Series, bar_chart, image_heatmaps, line_chart,
};
use nnlens_run::charts::both;
use nnlens_run::inputs::{class_label, class_names, load_data, load_model};
use nnlens_run::output::{print_json, print_table, progress};
use nnlens_run::shard::{ShardStates, shard_out, write_state};
use nnlens_run::{DataArgs, Format, MANIFEST, ModelArgs, OutDir, RunContext, Runner, ShardArgs};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Influence, InfluenceMetric, Performance, PerformanceMetric, Score, Truth};

/// The family's name in the registries.
pub const FAMILY: &str = "influence";

/// The flags of `nnlens run influence` and `nnlens run performance`.
#[derive(Debug, Args)]
pub struct InfluenceArgs {
    /// The model and the backend that runs it.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The dataset split.
    #[command(flatten)]
    pub data: DataArgs,
    /// Inputs per model call.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Directory for result.json, CSV files and plots.
    #[arg(long)]
    pub out: Option<PathBuf>,
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
    /// A shard of the run: the features are split into contiguous parts (every shard reads
    /// every row and runs the model on it).
    #[command(flatten)]
    pub shard: ShardArgs,
}

/// The influence family's runner: `influence` and `performance`.
pub struct InfluenceRunner;

nnlens_run::register_runner!(InfluenceRunner);

impl Runner for InfluenceRunner {
    fn family(&self) -> &'static str {
        FAMILY
    }

    fn command(&self, metric: &str, base: Command) -> Command {
        let command = InfluenceArgs::augment_args(base);
        if metric == "performance" {
            command
        } else {
            // `--metric` chooses the score of `performance`; influence has none.
            command.mut_arg("score", |a| a.hide(true))
        }
    }

    fn run(&self, metric: &str, args: &ArgMatches, ctx: &RunContext) -> Result<()> {
        run(ctx, metric, &InfluenceArgs::from_arg_matches(args)?)
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
        // The parts are each a feature range's result (small beside the rows every shard
        // read): all of them at once, to concatenate.
        let parts: Vec<Part> = states.read_all(&format!("a {metric} state"))?;
        let merged = Part::concat(metric, parts)?;
        *manifest.timings_s.entry("merge".into()).or_insert(0.0) += t.elapsed().as_secs_f64();
        finish(ctx, metric, manifest, merged, Some(out))
    }

    fn write_files(&self, doc: &serde_json::Value, out: &mut OutDir) -> Result<()> {
        let result = &doc["result"];
        let names: Names = serde_json::from_value(result.clone())
            .context("not an influence or performance result")?;
        let explanation = result["explanation"].clone();
        match result["metric"].as_str() {
            Some("performance") => {
                let r: Performance =
                    serde_json::from_value(explanation).context("not a performance result")?;
                performance_files(out, &r, &names)
            }
            _ => {
                let r: Influence =
                    serde_json::from_value(explanation).context("not an influence result")?;
                influence_files(out, &r, &names)
            }
        }
    }
}

/// What the rows, columns and predictions of a result are called, and whether they are the
/// pixels of images: what its files are drawn with (kept in result.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Names {
    /// The feature names.
    features: Vec<String>,
    /// The prediction columns' names.
    classes: Vec<String>,
    /// `(height, width)` when the features are the pixels of images.
    image: Option<(usize, usize)>,
    /// Channels of each pixel (features are `(y * width + x) * channels + channel`).
    #[serde(default = "one")]
    channels: usize,
}

fn one() -> usize {
    1
}

/// The features, predictions and truth of a run.
struct Inputs {
    /// Rows x features.
    x: Array2<f64>,
    /// Rows x prediction columns.
    y_pred: Array2<f64>,
    /// Class labels (classification) or target values (regression), where known.
    labels: Option<Vec<usize>>,
    values: Option<Array2<f64>>,
    names: Names,
}

/// `nnlens run influence|performance`.
fn run(ctx: &RunContext, metric: &str, args: &InfluenceArgs) -> Result<()> {
    let shard = args.shard.resolve()?;
    if let Some(shard) = shard {
        shard_out(args.out.as_deref(), shard)?;
    }
    let t0 = Instant::now();
    let performance = metric == "performance";
    let mut manifest = RunManifest::new("run", ctx.seed);
    manifest.metric = Some(metric.to_string());
    let mut inputs = read_inputs(args, &mut manifest)?;
    manifest.timings_s.insert("load".into(), t0.elapsed().as_secs_f64());
    let parameters = parameters(ctx, args, inputs.names.image.is_some(), performance)?;
    manifest.parameters = json!({
        "parameters": parameters,
        "rows": inputs.x.nrows(),
        "features": inputs.x.ncols(),
        "classes": inputs.y_pred.ncols(),
    });
    // A shard re-weights its contiguous part of the features, with every row (each feature's
    // projection needs all of them; the bootstrap masks are drawn over rows, the same in every
    // shard).
    let features = shard.map_or(0..inputs.x.ncols(), |s| s.range(inputs.x.ncols()));
    if let Some(shard) = shard
        && features.is_empty()
    {
        bail!(
            "shard {shard} has no features: {} features, fewer than {} shards",
            inputs.x.ncols(),
            shard.count
        );
    }
    let x = inputs.x.slice(s![.., features.clone()]);
    inputs.names.features = inputs.names.features[features].to_vec();
    let t = Instant::now();
    let bar = progress(1, metric, ctx.quiet);
    let explanation = if performance {
        let metric = PerformanceMetric::from_json(&parameters)?;
        let truth = match (&inputs.labels, &inputs.values) {
            (Some(l), _) => Truth::Labels(l),
            (None, Some(v)) => Truth::Values(v.view()),
            (None, None) => bail!("performance needs the truth: a dataset's labels or --truth"),
        };
        let result =
            metric.explainer().performance(x, inputs.y_pred.view(), &truth, metric.score)?;
        serde_json::to_value(&result)?
    } else {
        let metric = InfluenceMetric::from_json(&parameters)?;
        serde_json::to_value(&metric.explainer().influence(x, inputs.y_pred.view())?)?
    };
    bar.finish_and_clear();
    manifest.timings_s.insert("explain".into(), t.elapsed().as_secs_f64());
    let part = Part { names: inputs.names, rows: inputs.x.nrows(), explanation };
    if let (Some(shard), Some(out)) = (shard, &args.out) {
        manifest.shard = Some(shard);
        manifest.timings_s.insert("total".into(), t0.elapsed().as_secs_f64());
        return write_state(out, &manifest, &serde_json::to_value(&part)?, ctx.quiet);
    }
    manifest.timings_s.insert("total".into(), t0.elapsed().as_secs_f64());
    finish(ctx, metric, manifest, part, args.out.as_deref())
}

/// The result for a contiguous part of the features (a shard's state, or the whole run's):
/// their names and the result's JSON (an [`Influence`] or a [`Performance`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Part {
    names: Names,
    rows: usize,
    explanation: serde_json::Value,
}

impl Part {
    /// The parts of a sharded run (in shard order) concatenated along the features.
    fn concat(metric: &str, parts: Vec<Part>) -> Result<Part> {
        let first = parts.first().context("no shards to merge")?.clone();
        let mut features = Vec::new();
        for (k, p) in parts.iter().enumerate() {
            let same = (&p.names.classes, p.names.image, p.names.channels, p.rows)
                == (&first.names.classes, first.names.image, first.names.channels, first.rows);
            if !same {
                bail!("shard {k}: other rows, prediction columns or image size than shard 0");
            }
            features.extend(p.names.features.iter().cloned());
        }
        fn each<T: serde::de::DeserializeOwned>(parts: &[Part], what: &str) -> Result<Vec<T>> {
            parts
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    serde_json::from_value(p.explanation.clone())
                        .with_context(|| format!("shard {k}: not {what}"))
                })
                .collect()
        }
        let explanation = if metric == "performance" {
            let parts: Vec<Performance> = each(&parts, "a performance result")?;
            serde_json::to_value(Performance::concat_features(&parts)?)?
        } else {
            let parts: Vec<Influence> = each(&parts, "an influence result")?;
            serde_json::to_value(Influence::concat_features(&parts)?)?
        };
        Ok(Part { names: Names { features, ..first.names }, rows: first.rows, explanation })
    }
}

/// The end of a run, whole or merged from shards: the files written, the result printed.
fn finish(
    ctx: &RunContext,
    metric: &str,
    manifest: RunManifest,
    part: Part,
    out: Option<&Path>,
) -> Result<()> {
    let mut dir = out.map(OutDir::create).transpose()?;
    let summary = if metric == "performance" {
        let result: Performance = serde_json::from_value(part.explanation.clone())?;
        if let Some(dir) = &mut dir {
            performance_files(dir, &result, &part.names)?;
        }
        performance_summary(&result, &part.names, part.rows)
    } else {
        let result: Influence = serde_json::from_value(part.explanation.clone())?;
        if let Some(dir) = &mut dir {
            influence_files(dir, &result, &part.names)?;
        }
        influence_summary(&result, &part.names, part.rows)
    };
    let doc = json!({
        "manifest": manifest,
        "result": {
            "metric": metric,
            "features": part.names.features,
            "classes": part.names.classes,
            "image": part.names.image,
            "channels": part.names.channels,
            "explanation": part.explanation,
        },
    });
    if let Some(mut dir) = dir {
        dir.manifest(MANIFEST, &doc)?;
        dir.commit()?;
    }
    match ctx.format {
        Format::Json => print_json(&doc),
        Format::Table => {
            nnlens_run::out!("{}", summary.0);
            print_table(&["feature", "class", "influence(+1) - influence(-1)"], &summary.1);
            Ok(())
        }
    }
}

/// The parameters of the registered metric, from the flags.
fn parameters(
    ctx: &RunContext,
    o: &InfluenceArgs,
    images: bool,
    performance: bool,
) -> Result<serde_json::Value> {
    let taus = match &o.taus {
        None => json!(if images { 3 } else { 41 }),
        Some(t) if t.contains(',') => json!(
            t.split(',')
                .map(|v| v
                    .trim()
                    .parse::<f64>()
                    .with_context(|| format!("--taus: '{v}' is not a number")))
                .collect::<Result<Vec<f64>>>()?
        ),
        Some(t) => json!(t.parse::<usize>().with_context(|| {
            format!("--taus '{t}' is neither a count nor a comma-separated list")
        })?),
    };
    let mut p = json!({ "alpha": o.alpha, "taus": taus, "solver": o.solver });
    if o.bootstrap > 0 {
        p["n_samples"] = json!(o.bootstrap);
        p["sample_frac"] = json!(o.sample_frac);
        p["conf_level"] = json!(o.conf_level);
        p["seed"] = json!(ctx.seed);
    }
    if performance {
        p["metric"] = json!(o.score);
    } else if o.score != "accuracy" {
        bail!("--metric is for `nnlens run performance`");
    }
    Ok(p)
}

fn read_inputs(args: &InfluenceArgs, manifest: &mut RunManifest) -> Result<Inputs> {
    let o = args;
    if let Some(table) = &o.table {
        if args.model.model.is_some() {
            bail!("--table takes its predictions from --predictions (a model runs on images)");
        }
        let (x, features) = read_table(table)?;
        let predictions = o.predictions.as_ref().context("--table needs --predictions P.npy")?;
        let y_pred = read_matrix(predictions, "--predictions")?;
        let (labels, values) = match &o.truth {
            None => (None, None),
            Some(path) => {
                let truth = read_matrix(path, "--truth")?;
                if truth.ncols() == 1
                    && truth.iter().all(|v| *v >= 0.0 && v.fract() == 0.0)
                    && y_pred.ncols() > 1
                {
                    (Some(truth.column(0).iter().map(|&v| v as usize).collect()), None)
                } else {
                    (None, Some(truth))
                }
            }
        };
        manifest.dataset = Some(nnlens_core::DatasetRef {
            name: table.display().to_string(),
            split: None,
            samples: x.nrows(),
            files: vec![nnlens_datasets::catalog::artifact(table)?],
            kind: Some("table".into()),
            ..nnlens_core::DatasetRef::default()
        });
        let classes = (0..y_pred.ncols()).map(|c| c.to_string()).collect();
        let names = Names { features, classes, image: None, channels: 1 };
        return Ok(Inputs { x, y_pred, labels, values, names });
    }
    let data = load_data(&args.data, None)?;
    manifest.dataset = Some(data.reference.clone());
    let n = data.data.len();
    let shape = data.data.data_shape().to_vec();
    let (height, width, channels) = (shape[0], shape[1], shape.get(2).copied().unwrap_or(1));
    let x: Array2<f64> = data
        .data
        .batch(0..n)?
        .mapv(f64::from)
        .into_shape_with_order((n, shape.iter().product::<usize>()))
        .context("flattening the images")?;
    let y_pred = match (&o.predictions, &args.model.model) {
        (Some(_), Some(_)) => bail!("give --model or --predictions, not both"),
        (Some(path), None) => read_matrix(path, "--predictions")?,
        (None, _) => {
            let loaded = load_model(&args.model)?;
            loaded.describe(manifest);
            let model = loaded.model.as_ref();
            // Each batch shaped for the model as it goes in: no second copy of every image.
            let input = &model.structure().input;
            let [out] = &in_batches(n, args.batch_size, |rows| -> Result<Vec<ArrayD<f32>>> {
                let batch = conform_input(data.data.batch(rows)?, input)?;
                Ok(vec![model.predict_output(batch.view())?])
            })?[..] else {
                bail!("the model gave no output");
            };
            let (rows, len) = (out.shape()[0], out.len());
            out.view().into_shape_with_order((rows, len / rows.max(1)))?.mapv(f64::from)
        }
    };
    if y_pred.nrows() != n {
        bail!("{} predictions for the {n} images of {}", y_pred.nrows(), data.data.name());
    }
    const RGB: [&str; 3] = ["R", "G", "B"];
    let features = (0..height * width * channels)
        .map(|i| {
            let (p, ch) = (i / channels, i % channels);
            match channels {
                1 => format!("pixel {},{}", p / width, p % width),
                3 => format!("pixel {},{} {}", p / width, p % width, RGB[ch]),
                _ => format!("pixel {},{} channel {ch}", p / width, p % width),
            }
        })
        .collect();
    let labels = data.data.require_labels("influence")?.to_vec();
    let classes = class_names(&data.data, y_pred.ncols())
        .iter()
        .enumerate()
        .map(|(c, name)| class_label(c, name))
        .collect();
    Ok(Inputs {
        x,
        y_pred,
        labels: Some(labels),
        values: None,
        names: Names { features, classes, image: Some((height, width)), channels },
    })
}

/// One value per pixel of per-feature values of `channels`-channel pixels: the mean over each
/// pixel's channels (the CSV files keep every channel).
fn per_pixel(values: &[f64], channels: usize) -> Vec<f64> {
    if channels <= 1 {
        return values.to_vec();
    }
    values.chunks(channels).map(|p| p.iter().sum::<f64>() / p.len() as f64).collect()
}

fn channel_note(channels: usize) -> String {
    if channels > 1 { format!(" (mean over its {channels} channels)") } else { String::new() }
}

/// An NPY array `[rows]` or `[rows, columns]` as a matrix (nnlens-datasets' table reader).
fn read_matrix(path: &Path, what: &str) -> Result<Array2<f64>> {
    Ok(nnlens_datasets::table::read_matrix(path, what)?)
}

/// A table of features: NPY [rows, features], or CSV with a header of feature names.
fn read_table(path: &Path) -> Result<(Array2<f64>, Vec<String>)> {
    let table = nnlens_datasets::table::read_table(path, "--table")?;
    Ok((table.values, table.columns))
}

/// The features with the largest |influence(+1) - influence(-1)|, for the terminal.
fn influence_summary(result: &Influence, names: &Names, rows: usize) -> (String, Vec<Vec<String>>) {
    let taus = result.projection.taus.clone().unwrap_or_default();
    let (lo, hi) = (0, taus.len().saturating_sub(1));
    let issues = result.projection.issues.len();
    let head = format!(
        "influence of {} features on {} classes ({rows} rows, taus {:?}); {issues} targets outside their feature's range",
        names.features.len(),
        names.classes.len(),
        taus
    );
    let mut rows = Vec::new();
    if let Ok(diff) = result.difference(hi, lo) {
        let mut cells: Vec<(f64, usize, usize)> = diff
            .indexed_iter()
            .filter(|(_, v)| v.is_finite())
            .map(|((f, c), v)| (*v, f, c))
            .collect();
        cells.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
        for (v, f, c) in cells.into_iter().take(10) {
            rows.push(vec![names.features[f].clone(), names.classes[c].clone(), format!("{v:.6}")]);
        }
    }
    (head, rows)
}

fn performance_summary(
    result: &Performance,
    names: &Names,
    rows: usize,
) -> (String, Vec<Vec<String>>) {
    let taus = result.projection.taus.clone().unwrap_or_default();
    let head = format!(
        "{:?} of the predictions re-weighted per feature ({} features, {rows} rows, taus {:?})",
        result.score,
        names.features.len(),
        taus
    );
    let mut rows = Vec::new();
    if let Ok(diff) = result.difference(taus.len().saturating_sub(1), 0) {
        let mut cells: Vec<(f64, usize)> = diff
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(f, v)| (v, f))
            .collect();
        cells.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
        for (v, f) in cells.into_iter().take(10) {
            rows.push(vec![names.features[f].clone(), "-".into(), format!("{v:.6}")]);
        }
    }
    (head, rows)
}

fn influence_files(out: &mut OutDir, result: &Influence, inputs: &Names) -> Result<()> {
    let taus = result.projection.taus.clone().unwrap_or_default();
    out.csv("influence.csv", |w| {
        w.write_record(["tau", "feature", "class", "influence", "low", "high"])?;
        for ((t, f, c), v) in result.values.indexed_iter() {
            let (low, high) = match &result.bands {
                Some(b) => (b.low[[t, f, c]].to_string(), b.high[[t, f, c]].to_string()),
                None => (String::new(), String::new()),
            };
            w.write_record([
                taus.get(t).map_or(t.to_string(), |x| x.to_string()),
                inputs.features[f].clone(),
                inputs.classes[c].clone(),
                v.to_string(),
                low,
                high,
            ])?;
        }
        Ok(())
    })?;
    let (lo, hi) = (0, taus.len().saturating_sub(1));
    match inputs.image {
        Some((h, w)) => {
            // ethik's figure: one map per class of influence(+1) - influence(-1), one shared
            // symmetric colour scale.
            let diff = result.difference(hi, lo)?;
            let panels: Vec<(String, Vec<f64>)> = (0..diff.ncols())
                .map(|c| {
                    (
                        inputs.classes[c].clone(),
                        per_pixel(&diff.column(c).to_vec(), inputs.channels),
                    )
                })
                .collect();
            let title = format!(
                "influence of each pixel{}: mean prediction at tau = {} minus tau = {}",
                channel_note(inputs.channels),
                taus.get(hi).copied().unwrap_or(1.0),
                taus.get(lo).copied().unwrap_or(-1.0)
            );
            both(out, "influence", |p| {
                image_heatmaps(p, &title, &panels, h, w, ColourScale::Diverging)
            })
        }
        None => {
            for c in 0..inputs.classes.len() {
                let series: Vec<Series> = (0..inputs.features.len())
                    .map(|f| Series {
                        name: inputs.features[f].clone(),
                        points: taus
                            .iter()
                            .enumerate()
                            .map(|(t, &x)| (x, result.values[[t, f, c]]))
                            .collect(),
                        band: result.bands.as_ref().map_or(Vec::new(), |b| {
                            (0..taus.len()).map(|t| (b.low[[t, f, c]], b.high[[t, f, c]])).collect()
                        }),
                    })
                    .collect();
                let chart = LineChart {
                    title: format!("influence on {} over tau", inputs.classes[c]),
                    x_label: "tau (shift of the feature's mean towards its quantiles)".into(),
                    y_label: "mean prediction".into(),
                    series,
                };
                both(out, &format!("influence_curves_{c}"), |p| line_chart(p, &chart))?;
                let diff = result.difference(hi, lo)?;
                let mut order: Vec<usize> = (0..inputs.features.len()).collect();
                order.sort_by(|&a, &b| diff[[b, c]].abs().total_cmp(&diff[[a, c]].abs()));
                let bars = BarChart {
                    title: format!(
                        "features ranked by |influence(+1) - influence(-1)| on {}",
                        inputs.classes[c]
                    ),
                    y_label: "influence(+1) - influence(-1)".into(),
                    labels: order.iter().map(|&f| inputs.features[f].clone()).collect(),
                    values: order.iter().map(|&f| diff[[f, c]]).collect(),
                    highlight: None,
                };
                both(out, &format!("influence_ranking_{c}"), |p| bar_chart(p, &bars))?;
            }
            Ok(())
        }
    }
}

fn performance_files(out: &mut OutDir, result: &Performance, inputs: &Names) -> Result<()> {
    let taus = result.projection.taus.clone().unwrap_or_default();
    out.csv("performance.csv", |w| {
        w.write_record(["tau", "feature", "score", "low", "high"])?;
        for ((t, f), v) in result.values.indexed_iter() {
            let (low, high) = match &result.bands {
                Some(b) => (b.low[[t, f]].to_string(), b.high[[t, f]].to_string()),
                None => (String::new(), String::new()),
            };
            w.write_record([
                taus.get(t).map_or(t.to_string(), |x| x.to_string()),
                inputs.features[f].clone(),
                v.to_string(),
                low,
                high,
            ])?;
        }
        Ok(())
    })?;
    let name = match result.score {
        Score::Accuracy => "accuracy",
        Score::LogLoss => "log loss",
        Score::MeanSquaredError => "mean squared error",
    };
    match inputs.image {
        Some((h, w)) => {
            let panels: Vec<(String, Vec<f64>)> = taus
                .iter()
                .enumerate()
                .map(|(t, tau)| {
                    (
                        format!("tau = {tau}"),
                        per_pixel(&result.values.row(t).to_vec(), inputs.channels),
                    )
                })
                .collect();
            let title = format!(
                "{name} when each pixel's mean is shifted{}",
                channel_note(inputs.channels)
            );
            both(out, "performance", |p| {
                image_heatmaps(p, &title, &panels, h, w, ColourScale::Sequential)
            })
        }
        None => {
            let series: Vec<Series> = (0..inputs.features.len())
                .map(|f| Series {
                    name: inputs.features[f].clone(),
                    points: taus
                        .iter()
                        .enumerate()
                        .map(|(t, &x)| (x, result.values[[t, f]]))
                        .collect(),
                    band: result.bands.as_ref().map_or(Vec::new(), |b| {
                        (0..taus.len()).map(|t| (b.low[[t, f]], b.high[[t, f]])).collect()
                    }),
                })
                .collect();
            let chart = LineChart {
                title: format!("{name} over tau"),
                x_label: "tau (shift of the feature's mean towards its quantiles)".into(),
                y_label: name.into(),
                series,
            };
            both(out, "performance", |p| line_chart(p, &chart))
        }
    }
}
