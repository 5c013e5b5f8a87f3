//! The similarity family's command line: `nnlens run similarity` (alibi's
//! `GradientSimilarity`), its result files and plots.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{ArgMatches, Args, Command, FromArgMatches};
use ndarray::{ArrayD, Axis, Ix2};
use nnlens_core::{DataSet as _, GradModel, Loss, Precision, Targets, conform_input, in_batches};
use nnlens_datasets::ImageDataSet;
use nnlens_plots::{BarChart, ImageCell, ImageTable, bar_chart, image_table};
use nnlens_run::charts::both;
use nnlens_run::inputs::{
    LoadedData, class_names, load_data, load_grad_model, random_rows, rows_of,
};
use nnlens_run::output::{print_json, print_table};
use nnlens_run::shard::{ShardStates, shard_out, write_state};
use nnlens_run::{DataArgs, Format, MANIFEST, ModelArgs, OutDir, RunContext, Runner, ShardArgs};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{Explanation, FitReport, GradientSimilarity, Scores, SimFn, SimilaritySpec};

/// The family's name in the registries.
pub const FAMILY: &str = "similarity";

/// Instances explained when neither `--instances` nor `--indices` is given (the seed's).
pub const DEFAULT_INSTANCES: usize = 5;
/// Reference examples when neither `--reference` nor `--reference-indices` is given (the
/// seed's).
pub const DEFAULT_REFERENCES: usize = 1000;

/// The flags of `nnlens run similarity`: the instances of --split explained are chosen with
/// --instances (default 5) or --indices; gradients come from a backend that gives them
/// (`--backend`, default auto: tch for a TorchScript file, candle for ONNX).
#[derive(Debug, Args)]
pub struct SimilarityArgs {
    /// The model and the backend that runs it.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The dataset split.
    #[command(flatten)]
    pub data: DataArgs,
    /// Directory for result.json, scores.csv and the figures.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Random instances of the split to explain, drawn with --seed (default 5).
    #[arg(long, conflicts_with = "indices")]
    pub instances: Option<usize>,
    /// Dataset rows to explain: `3,17,42`, or a file (NPY of integers, or text).
    #[arg(long)]
    pub indices: Option<String>,
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
    /// Take the gradients over these trainable tensors only: layer names, tensor names or
    /// PyTorch module paths, globs allowed (`fc`, `layer4.*`, `dense_1,logits`). Memory and time
    /// scale with the parameters kept. Default: every trainable tensor.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub parameters: Option<Vec<String>>,
    /// `auto` (the default: probabilities when the model's outputs are probability vectors, as
    /// `nnlens evaluate` decides, else logits), `cross-entropy-from-probabilities` (a softmax
    /// output: dL/dlogits = p - y, no clipping) or `cross-entropy-from-logits` (PyTorch's
    /// `CrossEntropyLoss` on a logits output).
    #[arg(long, default_value = "auto")]
    pub loss: String,
    /// The class each instance's gradient is taken for: its `label`, or the class the model
    /// `predicted` (alibi's explain(X) without Y).
    #[arg(long, default_value = "label")]
    pub targets: String,
    /// Precision of the gradient backend: `f32` or `f64`.
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Reference gradients computed at once (in parallel): memory of this many gradients.
    #[arg(long, default_value_t = 32)]
    pub gradient_batch: usize,
    /// A shard of the run: the references are split into contiguous parts (whole gradient
    /// batches); every shard explains every instance.
    #[command(flatten)]
    pub shard: ShardArgs,
}

/// The similarity family's runner.
pub struct SimilarityRunner;

nnlens_run::register_runner!(SimilarityRunner);

impl Runner for SimilarityRunner {
    fn family(&self) -> &'static str {
        FAMILY
    }

    fn command(&self, _metric: &str, base: Command) -> Command {
        // Gradients: the default backend is the one that gives them.
        SimilarityArgs::augment_args(base).mut_arg("backend", |a| {
            a.default_value("auto").help(
                "The gradient backend (one that gives per-example gradients: `nnlens backends`); \
                 auto: tch for a TorchScript file, candle for ONNX",
            )
        })
    }

    fn run(&self, metric: &str, args: &ArgMatches, ctx: &RunContext) -> Result<()> {
        run(ctx, metric, &SimilarityArgs::from_arg_matches(args)?)
    }

    fn merge(
        &self,
        metric: &str,
        mut manifest: nnlens_core::RunManifest,
        states: ShardStates,
        ctx: &RunContext,
        out: &Path,
    ) -> Result<()> {
        let t = Instant::now();
        let merged =
            states.fold("a similarity state", |m: &mut ScoredPart, part| m.append(part))?;
        *manifest.timings_s.entry("merge".into()).or_insert(0.0) += t.elapsed().as_secs_f64();
        finish(ctx, metric, manifest, merged, Some(out))
    }

    fn write_files(&self, doc: &serde_json::Value, out: &mut OutDir) -> Result<()> {
        let figures: Figures = serde_json::from_value(doc["result"]["figures"].clone())
            .context("not a similarity result")?;
        draw(out, &figures)
    }
}

/// One drawn image of the result: where it comes from, its label, the model's prediction and
/// its pixels (as the model sees them, row-major height x width).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Shown {
    row: usize,
    label: usize,
    prediction: usize,
    score: Option<f64>,
    pixels: Vec<f32>,
}

/// What the plots are drawn from (kept in result.json so that `nnlens plot` can redraw them).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Figures {
    height: usize,
    width: usize,
    /// Channels of each pixel (1 grey, 3 RGB).
    #[serde(default = "one")]
    channels: usize,
    class_names: Vec<String>,
    sim_fn: SimFn,
    instances: Vec<Shown>,
    most_similar: Vec<Vec<Shown>>,
    least_similar: Vec<Vec<Shown>>,
    /// Per instance: (class, mean score) by reference label and by reference prediction.
    by_label: Vec<Vec<(usize, f64)>>,
    by_prediction: Vec<Vec<(usize, f64)>>,
}

fn one() -> usize {
    1
}

/// The model's inputs and the labels of `rows` of a dataset.
fn inputs_of(
    model: &dyn GradModel,
    data: &ImageDataSet,
    rows: &[usize],
) -> Result<(ArrayD<f32>, ArrayD<f32>, Vec<usize>)> {
    let subset = data.subset(rows)?;
    let raw = subset.batch(0..subset.len())?;
    let x = conform_input(raw.clone(), &model.structure().input)?;
    Ok((x, raw, subset.require_labels("gradient similarity")?.to_vec()))
}

/// The model's class for every input, in batches, and whether every output row is a
/// probability vector ([`nnlens_core::are_probabilities`]).
fn predictions(model: &dyn GradModel, x: &ArrayD<f32>, batch: usize) -> Result<(Vec<usize>, bool)> {
    let [scores] = &in_batches::<nnlens_core::CoreError>(x.shape()[0], batch, |rows| {
        Ok(vec![model.output(x.slice_axis(Axis(0), rows.into()))?])
    })?[..] else {
        return Ok((Vec::new(), true));
    };
    let shape = scores.shape().to_vec();
    let scores = scores
        .view()
        .into_dimensionality::<Ix2>()
        .ok()
        .with_context(|| format!("the model's output {shape:?} is not class scores"))?;
    let classes = scores
        .outer_iter()
        .map(|r| (0..r.len()).fold(0, |b, k| if r[k] > r[b] { k } else { b }))
        .collect();
    Ok((classes, nnlens_core::are_probabilities(scores)))
}

/// The mean score of every class present among the references, best first (the seed's
/// `groupby(...).mean().sort_values(ascending=False)`).
fn class_means(scores: &[f64], classes: &[usize]) -> Vec<(usize, f64)> {
    let n = classes.iter().copied().max().map_or(0, |m| m + 1);
    let mut sum = vec![0.0; n];
    let mut count = vec![0usize; n];
    for (&s, &c) in scores.iter().zip(classes) {
        sum[c] += s;
        count[c] += 1;
    }
    let mut means: Vec<(usize, f64)> =
        (0..n).filter(|&c| count[c] > 0).map(|c| (c, sum[c] / count[c] as f64)).collect();
    means.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    means
}

/// `nnlens run similarity`.
fn run(ctx: &RunContext, metric: &str, sim: &SimilarityArgs) -> Result<()> {
    let shard = sim.shard.resolve()?;
    if let Some(shard) = shard {
        shard_out(sim.out.as_deref(), shard)?;
    }
    let t0 = Instant::now();
    let args = sim;
    let sim_fn: SimFn = sim.sim_fn.parse()?;
    let explicit_loss = match sim.loss.as_str() {
        "auto" => None,
        "cross-entropy-from-probabilities" => Some(Loss::CrossEntropyFromProbabilities),
        "cross-entropy-from-logits" => Some(Loss::CrossEntropyFromLogits),
        other => bail!(
            "--loss {other}: use auto, cross-entropy-from-probabilities (a softmax output) or \
             cross-entropy-from-logits (the datasets hold class labels, not regression targets)"
        ),
    };
    let precision: Precision = sim.precision.parse().context("--precision")?;
    let explain_predicted = match sim.targets.as_str() {
        "label" => false,
        "predicted" => true,
        other => bail!("--targets {other}: use label or predicted"),
    };
    let mut spec = SimilaritySpec {
        sim_fn,
        precompute: !sim.no_precompute,
        top_k: sim.top_k,
        loss: explicit_loss.unwrap_or(Loss::CrossEntropyFromProbabilities),
        batch_size: sim.gradient_batch,
    };
    spec.validate()?;

    let t = Instant::now();
    let loaded = load_grad_model(&args.model, precision, sim.parameters.as_deref())?;
    let model = loaded.model.as_ref();
    let data = load_data(&args.data, None)?;
    // References come from the training split of a named dataset, else from the data itself.
    let reference_split = sim.reference_split.clone().or_else(|| {
        if args.data.has_train_split() { Some("train".into()) } else { args.data.split.clone() }
    });
    let reference_data: LoadedData = if reference_split == args.data.split {
        load_data(&args.data, None)?
    } else {
        let mut d = args.data.clone();
        d.split = reference_split.clone();
        load_data(&d, None)?
    };
    let (rows, rule) = match &sim.indices {
        Some(spec) => (rows_of(spec, "--indices", data.data.len(), data.data.name())?, "indices"),
        None => {
            let n = sim.instances.unwrap_or(DEFAULT_INSTANCES);
            (random_rows(n, data.data.len(), ctx.seed, "--instances", data.data.name())?, "random")
        }
    };
    let (ref_rows, ref_rule) = match &sim.reference_indices {
        Some(spec) => (
            rows_of(
                spec,
                "--reference-indices",
                reference_data.data.len(),
                reference_data.data.name(),
            )?,
            "indices",
        ),
        None => {
            let n = sim.reference.unwrap_or(DEFAULT_REFERENCES.min(reference_data.data.len()));
            let seed = ctx.seed.wrapping_add(1);
            (
                random_rows(
                    n,
                    reference_data.data.len(),
                    seed,
                    "--reference",
                    reference_data.data.name(),
                )?,
                "random",
            )
        }
    };
    // A shard scores every instance against its contiguous part of the references, in whole
    // gradient batches of the whole run (references are predicted in those batches too).
    let block = spec.batch_size.max(1);
    let part = shard.map_or(0..ref_rows.len(), |s| s.range_aligned(ref_rows.len(), block));
    if let Some(shard) = shard
        && part.is_empty()
    {
        bail!(
            "shard {shard} has no references: {} references make {} gradient batches of \
             {block}, fewer than {} shards",
            ref_rows.len(),
            ref_rows.len().div_ceil(block),
            shard.count
        );
    }
    let part_rows = &ref_rows[part.clone()];
    let (x, x_raw, labels) = inputs_of(model, &data.data, &rows)?;
    let (r, r_raw, ref_labels) = inputs_of(model, &reference_data.data, part_rows)?;
    let classes = model.structure().output_layer().number_activations();
    if let Some(&l) = labels.iter().chain(&ref_labels).find(|&&l| l >= classes) {
        bail!("label {l} is outside the model's {classes} classes: is this the model's dataset?");
    }
    let load_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let (predicted, x_probabilities) = predictions(model, &x, 256)?;
    let (ref_predicted, r_probabilities) = predictions(model, &r, block)?;
    let predict_s = t.elapsed().as_secs_f64();
    // The loss: as asked, or what the outputs are (the rule of `nnlens evaluate`). A shard
    // decides from its references; `nnlens merge` refuses shards that decided differently.
    let loss_rule = match explicit_loss {
        Some(_) => "--loss".to_string(),
        None => {
            spec.loss = if x_probabilities && r_probabilities {
                Loss::CrossEntropyFromProbabilities
            } else {
                Loss::CrossEntropyFromLogits
            };
            let why = if spec.loss == Loss::CrossEntropyFromLogits {
                "auto: the outputs are not probability vectors (logits)"
            } else {
                "auto: the outputs are probability vectors"
            };
            tracing::info!(loss = ?spec.loss, "{why}");
            why.to_string()
        }
    };

    let mut gs = GradientSimilarity::new(model, spec.clone())?;
    tracing::info!(
        references = part_rows.len(),
        dataset = reference_data.data.name(),
        parameters = model.parameter_count(),
        precompute = spec.precompute,
        "fitting"
    );
    let fit: FitReport = gs.fit(r.view(), Targets::Classes(&ref_labels))?;
    let t = Instant::now();
    let targets = if explain_predicted { None } else { Some(Targets::Classes(&labels)) };
    let (scores, targets) = gs.scores(x.view(), targets)?;
    let explain_s = t.elapsed().as_secs_f64();

    let selected: Vec<&str> = model.parameters().iter().map(|p| p.name.as_str()).collect();
    let mut manifest = nnlens_core::RunManifest::new("run", ctx.seed);
    manifest.metric = Some(metric.to_string());
    manifest.backend = Some(loaded.backend.clone());
    manifest.model = Some(loaded.artifact.clone());
    manifest.dataset = Some(data.reference.clone());
    manifest.parameters = json!({
        "similarity": spec,
        "precision": precision.as_str(),
        "loss_rule": loss_rule,
        "parameters": {
            "selection": sim.parameters,
            "tensors": selected,
            "scalars": model.parameter_count(),
        },
        "targets": sim.targets,
        "instances": { "split": args.data.split, "rule": rule, "rows": rows.len() },
        "reference": { "dataset": reference_data.reference, "split": reference_split, "rule": ref_rule, "rows": ref_rows.len() },
        "threads": rayon::current_num_threads(),
    });
    manifest.timings_s.insert("load".into(), load_s);
    manifest.timings_s.insert("predict".into(), predict_s);
    manifest.timings_s.insert("fit".into(), fit.seconds);
    manifest.timings_s.insert("explain".into(), explain_s);

    let (height, width) = image_size(data.data.data_shape());
    let pixels = |raw: &ArrayD<f32>, i: usize| -> Vec<f32> {
        raw.index_axis(ndarray::Axis(0), i).iter().copied().collect()
    };
    // The references any merged run can show: each instance's top_k most and least similar
    // of this part (the whole run's top_k are among the parts' own, ties by reference index).
    let local = scores.clone().explain(spec.top_k, targets.clone())?;
    let candidates = |picked: &[Vec<usize>]| -> Vec<Vec<Candidate>> {
        picked
            .iter()
            .enumerate()
            .map(|(i, refs)| {
                refs.iter()
                    .map(|&j| Candidate {
                        reference: part.start + j,
                        shown: Shown {
                            row: part_rows[j],
                            label: ref_labels[j],
                            prediction: ref_predicted[j],
                            score: Some(local.scores[i][j]),
                            pixels: pixels(&r_raw, j),
                        },
                    })
                    .collect()
            })
            .collect()
    };
    let scored = ScoredPart {
        top_k: spec.top_k,
        class_names: class_names(&data.data, classes),
        height,
        width,
        channels: data.data.data_shape().get(2).copied().unwrap_or(1),
        instances: (0..rows.len())
            .map(|i| Shown {
                row: rows[i],
                label: labels[i],
                prediction: predicted[i],
                score: None,
                pixels: pixels(&x_raw, i),
            })
            .collect(),
        targets,
        reference: References {
            rows: part_rows.to_vec(),
            labels: ref_labels.clone(),
            predictions: ref_predicted.clone(),
        },
        most_candidates: candidates(&local.most_similar),
        least_candidates: candidates(&local.least_similar),
        scores,
        fit,
    };
    if let (Some(shard), Some(out)) = (shard, &args.out) {
        manifest.shard = Some(shard);
        manifest.timings_s.insert("total".into(), t0.elapsed().as_secs_f64());
        return write_state(out, &manifest, &serde_json::to_value(&scored)?, ctx.quiet);
    }
    tracing::info!(seconds = t0.elapsed().as_secs_f64(), "similarity measured");
    finish(ctx, metric, manifest, scored, args.out.as_deref())
}

/// Reference rows of a run or a shard, with their labels and the model's predictions.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct References {
    rows: Vec<usize>,
    labels: Vec<usize>,
    predictions: Vec<usize>,
}

/// A reference image a result may show: its index in the whole reference set, and itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Candidate {
    reference: usize,
    shown: Shown,
}

/// The scores of every instance against a contiguous part of the references (a shard's state,
/// or the whole run's before it is finished), with what the result files show of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ScoredPart {
    top_k: usize,
    class_names: Vec<String>,
    height: usize,
    width: usize,
    channels: usize,
    instances: Vec<Shown>,
    targets: Vec<usize>,
    reference: References,
    most_candidates: Vec<Vec<Candidate>>,
    least_candidates: Vec<Vec<Candidate>>,
    scores: Scores,
    fit: FitReport,
}

impl ScoredPart {
    /// Appends the next part of the references (the shards in order).
    fn append(&mut self, next: ScoredPart) -> Result<()> {
        let same_instances = self.instances.len() == next.instances.len()
            && self
                .instances
                .iter()
                .zip(&next.instances)
                .all(|(a, b)| (a.row, a.label, a.prediction) == (b.row, b.label, b.prediction));
        if !same_instances || self.targets != next.targets {
            bail!("the shards explained other instances (rows, labels, predictions or targets)");
        }
        if (self.top_k, &self.class_names) != (next.top_k, &next.class_names) {
            bail!("the shards have another top_k or other class names");
        }
        if (self.fit.parameters, self.fit.precomputed)
            != (next.fit.parameters, next.fit.precomputed)
        {
            bail!("the shards' gradients have other parameters");
        }
        self.scores.append(&next.scores)?;
        self.reference.rows.extend(next.reference.rows);
        self.reference.labels.extend(next.reference.labels);
        self.reference.predictions.extend(next.reference.predictions);
        for (mine, theirs) in self.most_candidates.iter_mut().zip(next.most_candidates) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.least_candidates.iter_mut().zip(next.least_candidates) {
            mine.extend(theirs);
        }
        self.fit.references += next.fit.references;
        self.fit.gradient_bytes += next.fit.gradient_bytes;
        self.fit.seconds += next.fit.seconds;
        Ok(())
    }
}

/// The end of a run, whole or merged from shards: every reference ranked, the figures drawn
/// from the candidates, the files written and the result printed.
fn finish(
    ctx: &RunContext,
    metric: &str,
    manifest: nnlens_core::RunManifest,
    part: ScoredPart,
    out: Option<&Path>,
) -> Result<()> {
    let ScoredPart { scores, targets, reference, fit, .. } = part.clone();
    let sim_fn = scores.sim_fn;
    let explanation: Explanation = scores.explain(part.top_k, targets)?;
    let pick = |picked: &[Vec<usize>], candidates: &[Vec<Candidate>]| -> Result<Vec<Vec<Shown>>> {
        picked
            .iter()
            .zip(candidates)
            .map(|(refs, cands)| {
                refs.iter()
                    .map(|&j| {
                        cands
                            .iter()
                            .find(|c| c.reference == j)
                            .map(|c| c.shown.clone())
                            .with_context(|| format!("reference {j} is not among the shown ones"))
                    })
                    .collect()
            })
            .collect()
    };
    let figures = Figures {
        height: part.height,
        width: part.width,
        channels: part.channels,
        class_names: part.class_names.clone(),
        sim_fn,
        most_similar: pick(&explanation.most_similar, &part.most_candidates)?,
        least_similar: pick(&explanation.least_similar, &part.least_candidates)?,
        by_label: explanation.scores.iter().map(|s| class_means(s, &reference.labels)).collect(),
        by_prediction: explanation
            .scores
            .iter()
            .map(|s| class_means(s, &reference.predictions))
            .collect(),
        instances: part.instances,
    };
    let instances = &figures.instances;
    let doc = json!({
        "manifest": manifest,
        "result": {
            "metric": metric,
            "sim_fn": sim_fn,
            "class_names": part.class_names,
            "fit": fit,
            "instances": {
                "rows": instances.iter().map(|s| s.row).collect::<Vec<_>>(),
                "labels": instances.iter().map(|s| s.label).collect::<Vec<_>>(),
                "predictions": instances.iter().map(|s| s.prediction).collect::<Vec<_>>(),
                "targets": explanation.targets,
            },
            "reference": reference,
            "explanation": explanation,
            "figures": figures,
        },
    });
    let explain_s = manifest_seconds(&doc, "explain");
    if let Some(out) = out {
        let t = Instant::now();
        let mut dir = OutDir::create(out)?;
        dir.manifest(MANIFEST, &doc)?;
        write_csv(&mut dir, &doc)?;
        draw(&mut dir, &figures)?;
        dir.commit()?;
        tracing::info!(out = %out.display(), seconds = t.elapsed().as_secs_f64(), "wrote the result files");
    }
    match ctx.format {
        Format::Json => print_json(&doc),
        Format::Table => {
            print_summary(&figures, &fit, explain_s);
            Ok(())
        }
    }
}

/// A timing of the manifest in a result document (0 where it has none).
fn manifest_seconds(doc: &serde_json::Value, what: &str) -> f64 {
    doc["manifest"]["timings_s"][what].as_f64().unwrap_or(0.0)
}

/// Height and width of an image of the dataset (`[h, w, c]` or `[h, w]`).
fn image_size(shape: &[usize]) -> (usize, usize) {
    match shape {
        [h, w, ..] => (*h, *w),
        [n] => (1, *n),
        [] => (1, 1),
    }
}

fn write_csv(out: &mut OutDir, doc: &serde_json::Value) -> Result<()> {
    let result = &doc["result"];
    let explanation: Explanation = serde_json::from_value(result["explanation"].clone())?;
    let ids = |key: &str, field: &str| -> Vec<usize> {
        serde_json::from_value(result[key][field].clone()).unwrap_or_default()
    };
    let (rows, ref_rows, ref_labels, ref_preds) = (
        ids("instances", "rows"),
        ids("reference", "rows"),
        ids("reference", "labels"),
        ids("reference", "predictions"),
    );
    let names: Vec<String> =
        serde_json::from_value(result["figures"]["class_names"].clone()).unwrap_or_default();
    let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    out.csv("scores.csv", |w| {
        w.write_record([
            "instance",
            "instance_row",
            "rank",
            "reference",
            "reference_row",
            "reference_label",
            "reference_prediction",
            "reference_label_name",
            "reference_prediction_name",
            "score",
        ])?;
        for (i, order) in explanation.ordered_indices.iter().enumerate() {
            for (rank, &j) in order.iter().enumerate() {
                w.write_record([
                    i.to_string(),
                    rows[i].to_string(),
                    (rank + 1).to_string(),
                    j.to_string(),
                    ref_rows[j].to_string(),
                    ref_labels[j].to_string(),
                    ref_preds[j].to_string(),
                    name(ref_labels[j]),
                    name(ref_preds[j]),
                    format!("{:e}", explanation.scores[i][j]),
                ])?;
            }
        }
        Ok(())
    })
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn caption(s: &Shown, names: &[String]) -> Vec<String> {
    let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let mut lines = vec![format!("Label: {} - Prediction: {}", s.label, s.prediction)];
    if names.iter().enumerate().any(|(i, n)| *n != i.to_string()) {
        lines.push(format!("({} / {})", name(s.label), name(s.prediction)));
    }
    match s.score {
        Some(score) => lines.push(format!("row {}, score {score:.4}", s.row)),
        None => lines.push(format!("row {}", s.row)),
    }
    lines
}

fn grid(figures: &Figures, which: &[Vec<Shown>], most: bool) -> ImageTable {
    let k = which.iter().map(Vec::len).max().unwrap_or(0);
    let kind = if most { "most" } else { "least" };
    let mut column_titles = vec!["Instance".to_string()];
    column_titles.extend((1..=k).map(|n| format!("{} {kind}\nsimilar", ordinal(n))));
    let cell = |s: &Shown| ImageCell {
        caption: caption(s, &figures.class_names),
        pixels: s.pixels.iter().map(|&v| f64::from(v)).collect(),
    };
    ImageTable {
        title: format!("{} {kind} similar reference images ({})", k, figures.sim_fn),
        column_titles,
        rows: figures
            .instances
            .iter()
            .zip(which)
            .map(|(inst, refs)| std::iter::once(cell(inst)).chain(refs.iter().map(cell)).collect())
            .collect(),
        height: figures.height,
        width: figures.width,
        channels: figures.channels,
        range: None,
    }
}

/// The seed's figures: each instance with its most (and least) similar reference images, and
/// per instance the mean score of each class of the reference set, by label and by prediction.
fn draw(out: &mut OutDir, figures: &Figures) -> Result<()> {
    both(out, "most_similar", |p| image_table(p, &grid(figures, &figures.most_similar, true)))?;
    both(out, "least_similar", |p| image_table(p, &grid(figures, &figures.least_similar, false)))?;
    for (i, inst) in figures.instances.iter().enumerate() {
        for (what, means) in
            [("label", &figures.by_label[i]), ("prediction", &figures.by_prediction[i])]
        {
            let chart = BarChart {
                title: format!(
                    "Instance {} (row {}, label {}, prediction {}): mean {} by reference {what}",
                    i, inst.row, inst.label, inst.prediction, figures.sim_fn
                ),
                y_label: format!("mean {} score", figures.sim_fn),
                labels: means.iter().map(|(c, _)| c.to_string()).collect(),
                values: means.iter().map(|(_, m)| *m).collect(),
                highlight: means.iter().position(|(c, _)| *c == inst.label),
            };
            both(out, &format!("instance_{i}_by_{what}"), |p| bar_chart(p, &chart))?;
        }
    }
    Ok(())
}

fn print_summary(figures: &Figures, fit: &FitReport, explain_s: f64) {
    nnlens_run::out!(
        "{} references x {} parameters: fit {:.2} s ({}), explain {:.2} s",
        fit.references,
        fit.parameters,
        fit.seconds,
        if fit.precomputed {
            format!("gradients stored: {:.1} MB", fit.gradient_bytes as f64 / 1e6)
        } else {
            "gradients recomputed per explain".to_string()
        },
        explain_s
    );
    let rows: Vec<Vec<String>> = figures
        .instances
        .iter()
        .zip(&figures.most_similar)
        .map(|(inst, most)| {
            vec![
                inst.row.to_string(),
                inst.label.to_string(),
                inst.prediction.to_string(),
                most.iter()
                    .map(|s| format!("{} ({}, {:.3})", s.row, s.label, s.score.unwrap_or(f64::NAN)))
                    .collect::<Vec<_>>()
                    .join("  "),
            ]
        })
        .collect();
    print_table(
        &[
            "row",
            "label",
            "prediction",
            &format!("most similar: reference row (label, {})", figures.sim_fn),
        ],
        &rows,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_means_are_sorted_best_first() {
        let m = class_means(&[1.0, 3.0, 2.0, 5.0], &[0, 1, 0, 2]);
        assert_eq!(m, [(2, 5.0), (1, 3.0), (0, 1.5)]);
        assert_eq!(ordinal(1), "1st");
        assert_eq!(ordinal(12), "12th");
        assert_eq!(ordinal(23), "23rd");
    }
}
