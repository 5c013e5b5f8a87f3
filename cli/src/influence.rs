//! `nnlens run influence` and `nnlens run performance` (ethik) and their result files.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::{Array2, ArrayView2, Axis};
use nnlens_core::{DataSet as _, RunManifest};
use nnlens_influence::{Influence, InfluenceMetric, Performance, PerformanceMetric, Score, Truth};
use nnlens_plots::{
    BarChart, ColourScale, LineChart, Series, bar_chart, image_heatmaps, line_chart,
};
use serde_json::json;

use crate::atomic::{MANIFEST, OutDir};
use crate::charts::both;
use crate::inputs::{load_data, load_model};
use crate::output::{print_json, print_table, progress};
use crate::{Cli, Format, RunArgs};

/// The features, predictions and truth of a run, and how to draw them.
struct Inputs {
    /// Rows x features.
    x: Array2<f64>,
    /// Rows x prediction columns.
    y_pred: Array2<f64>,
    /// Class labels (classification) or target values (regression), where known.
    labels: Option<Vec<usize>>,
    values: Option<Array2<f64>>,
    /// The feature names.
    features: Vec<String>,
    /// The prediction columns' names.
    classes: Vec<String>,
    /// `(height, width)` when the features are the pixels of images.
    image: Option<(usize, usize)>,
}

/// `nnlens run influence|performance`.
pub fn run(cli: &Cli, args: &RunArgs) -> Result<()> {
    let t0 = Instant::now();
    let performance = args.metric == "performance";
    if args.activations.is_some() || args.transformations.is_some() {
        bail!("{} takes no --activations or --transformations", args.metric);
    }
    let mut manifest = RunManifest::new("run", cli.seed);
    let inputs = read_inputs(args, &mut manifest)?;
    manifest.timings_s.insert("load".into(), t0.elapsed().as_secs_f64());
    let parameters = parameters(cli, args, inputs.image.is_some(), performance)?;
    manifest.parameters = json!({
        "metric": args.metric,
        "parameters": parameters,
        "rows": inputs.x.nrows(),
        "features": inputs.x.ncols(),
        "classes": inputs.y_pred.ncols(),
    });
    let t = Instant::now();
    let bar = progress(1, &args.metric, cli.quiet);
    let mut dir = args.out.as_deref().map(OutDir::create).transpose()?;
    let (doc_result, summary) = if performance {
        let metric = PerformanceMetric::from_json(&parameters)?;
        let truth = match (&inputs.labels, &inputs.values) {
            (Some(l), _) => Truth::Labels(l),
            (None, Some(v)) => Truth::Values(v.view()),
            (None, None) => bail!("performance needs the truth: a dataset's labels or --truth"),
        };
        let result = metric.explainer().performance(
            inputs.x.view(),
            inputs.y_pred.view(),
            &truth,
            metric.score,
        )?;
        let summary = performance_summary(&result, &inputs);
        if let Some(dir) = &mut dir {
            performance_files(dir, &result, &inputs)?;
        }
        (serde_json::to_value(&result)?, summary)
    } else {
        let metric = InfluenceMetric::from_json(&parameters)?;
        let result = metric.explainer().influence(inputs.x.view(), inputs.y_pred.view())?;
        let summary = influence_summary(&result, &inputs);
        if let Some(dir) = &mut dir {
            influence_files(dir, &result, &inputs)?;
        }
        (serde_json::to_value(&result)?, summary)
    };
    bar.finish_and_clear();
    manifest.timings_s.insert("explain".into(), t.elapsed().as_secs_f64());
    manifest.timings_s.insert("total".into(), t0.elapsed().as_secs_f64());
    let doc = json!({
        "manifest": manifest,
        "result": {
            "metric": args.metric,
            "features": inputs.features,
            "classes": inputs.classes,
            "image": inputs.image,
            "explanation": doc_result,
        },
    });
    if let Some(mut dir) = dir {
        dir.manifest(MANIFEST, &doc)?;
        dir.commit()?;
    }
    match cli.format {
        Format::Json => print_json(&doc),
        Format::Table => {
            crate::out!("{}", summary.0);
            print_table(&["feature", "class", "influence(+1) - influence(-1)"], &summary.1);
            Ok(())
        }
    }
}

/// The parameters of the registered metric, from the flags.
fn parameters(
    cli: &Cli,
    args: &RunArgs,
    images: bool,
    performance: bool,
) -> Result<serde_json::Value> {
    let o = &args.influence;
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
        p["seed"] = json!(cli.seed);
    }
    if performance {
        p["metric"] = json!(o.score);
    } else if o.score != "accuracy" {
        bail!("--metric is for `nnlens run performance`");
    }
    if !args.params.is_empty() {
        bail!("{} takes its options as flags (see `nnlens run --help`), not --param", args.metric);
    }
    Ok(p)
}

fn read_inputs(args: &RunArgs, manifest: &mut RunManifest) -> Result<Inputs> {
    let o = &args.influence;
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
        });
        let classes = (0..y_pred.ncols()).map(|c| c.to_string()).collect();
        return Ok(Inputs { x, y_pred, labels, values, features, classes, image: None });
    }
    let data = load_data(&args.data, None)?;
    manifest.dataset = Some(data.reference.clone());
    let n = data.data.len();
    let images = data.data.batch(0..n)?;
    let shape = data.data.data_shape().to_vec();
    let (height, width) = (shape[0], shape[1]);
    let x: Array2<f64> = images
        .mapv(f64::from)
        .into_shape_with_order((n, shape.iter().product::<usize>()))
        .context("flattening the images")?;
    let y_pred = match (&o.predictions, &args.model.model) {
        (Some(_), Some(_)) => bail!("give --model or --predictions, not both"),
        (Some(path), None) => read_matrix(path, "--predictions")?,
        (None, _) => {
            let loaded = load_model(&args.model)?;
            manifest.backend = Some(loaded.backend.clone());
            manifest.model = Some(loaded.artifact.clone());
            let model = loaded.model.as_ref();
            let mut parts = Vec::new();
            for start in (0..n).step_by(args.batch_size.max(1)) {
                let end = (start + args.batch_size.max(1)).min(n);
                let batch = nnlens_core::conform_input(
                    data.data.batch(start..end)?,
                    &model.structure().input,
                )?;
                let out = model.predict_output(batch.view())?;
                let (rows, len) = (out.shape()[0], out.len());
                parts.push(out.into_shape_with_order((rows, len / rows.max(1)))?.mapv(f64::from));
            }
            let views: Vec<ArrayView2<'_, f64>> = parts.iter().map(|p| p.view()).collect();
            ndarray::concatenate(Axis(0), &views)?
        }
    };
    if y_pred.nrows() != n {
        bail!("{} predictions for the {n} images of {}", y_pred.nrows(), data.data.name());
    }
    let features =
        (0..height * width).map(|i| format!("pixel {},{}", i / width, i % width)).collect();
    let classes = crate::inputs::class_names(&args.data.dataset, y_pred.ncols())
        .iter()
        .enumerate()
        .map(|(c, name)| crate::inputs::class_label(c, name))
        .collect();
    Ok(Inputs {
        x,
        y_pred,
        labels: Some(data.data.labels().to_vec()),
        values: None,
        features,
        classes,
        image: Some((height, width)),
    })
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
fn influence_summary(result: &Influence, inputs: &Inputs) -> (String, Vec<Vec<String>>) {
    let taus = result.projection.taus.clone().unwrap_or_default();
    let (lo, hi) = (0, taus.len().saturating_sub(1));
    let issues = result.projection.issues.len();
    let head = format!(
        "influence of {} features on {} classes ({} rows, taus {:?}); {issues} targets outside their feature's range",
        inputs.x.ncols(),
        inputs.y_pred.ncols(),
        inputs.x.nrows(),
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
            rows.push(vec![
                inputs.features[f].clone(),
                inputs.classes[c].clone(),
                format!("{v:.6}"),
            ]);
        }
    }
    (head, rows)
}

fn performance_summary(result: &Performance, inputs: &Inputs) -> (String, Vec<Vec<String>>) {
    let taus = result.projection.taus.clone().unwrap_or_default();
    let head = format!(
        "{:?} of the predictions re-weighted per feature ({} features, {} rows, taus {:?})",
        result.score,
        inputs.x.ncols(),
        inputs.x.nrows(),
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
            rows.push(vec![inputs.features[f].clone(), "-".into(), format!("{v:.6}")]);
        }
    }
    (head, rows)
}

fn influence_files(out: &mut OutDir, result: &Influence, inputs: &Inputs) -> Result<()> {
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
                .map(|c| (inputs.classes[c].clone(), diff.column(c).to_vec()))
                .collect();
            let title = format!(
                "influence of each pixel: mean prediction at tau = {} minus tau = {}",
                taus.get(hi).copied().unwrap_or(1.0),
                taus.get(lo).copied().unwrap_or(-1.0)
            );
            both(out, "influence", |p| {
                image_heatmaps(p, &title, &panels, h, w, ColourScale::Diverging)
            })
        }
        None => {
            for c in 0..inputs.y_pred.ncols() {
                let series: Vec<Series> = (0..inputs.x.ncols())
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
                let mut order: Vec<usize> = (0..inputs.x.ncols()).collect();
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

fn performance_files(out: &mut OutDir, result: &Performance, inputs: &Inputs) -> Result<()> {
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
                .map(|(t, tau)| (format!("tau = {tau}"), result.values.row(t).to_vec()))
                .collect();
            let title = format!("{name} when each pixel's mean is shifted");
            both(out, "performance", |p| {
                image_heatmaps(p, &title, &panels, h, w, ColourScale::Sequential)
            })
        }
        None => {
            let series: Vec<Series> = (0..inputs.x.ncols())
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
