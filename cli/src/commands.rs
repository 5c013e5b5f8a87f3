//! The subcommands.

use std::ops::Range;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::{ArrayD, Axis};
use ndarray_npy::WriteNpyExt;
use nnlens_core::{Evaluation, LayerStructure, RunManifest, conform_input};
use nnlens_datasets::download::{default_cache_dir, fetch_file};
use nnlens_datasets::idx::gzip;
use nnlens_datasets::{Split, dataset_spec};
use rand::SeedableRng;
use serde_json::json;

use crate::atomic::{MANIFEST, OutDir};
use crate::inputs::{LoadedData, LoadedModel, load_data, load_model, load_model_from};
use crate::output::{print_json, print_table, progress, write_json};
use crate::{
    Cli, Command, EvaluateArgs, FetchArgs, Format, LayersArgs, PredictArgs, SampleArgs,
    TransformationsArgs,
};

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Layers(args) => layers(cli, args),
        Command::Evaluate(args) => evaluate(cli, args),
        Command::Predict(args) => predict(cli, args),
        Command::Metrics => metrics(cli),
        Command::Backends => backends(cli),
        Command::Fetch(args) => fetch(cli, args),
        Command::Sample(args) => sample(cli, args),
        Command::Transformations(args) => transformations(cli, args),
        Command::Run(args) => run_metric(cli, args),
        Command::Bench(args) => crate::bench::run(cli, args),
        Command::Analyze(args) => crate::invariance::analyze(cli, args),
        Command::Plot(args) => crate::invariance::plot(&args.dir, args.out.as_ref()),
    }
}

/// `nnlens run`: finds the metric in the registry and runs it with its family's runner.
fn run_metric(cli: &Cli, args: &crate::RunArgs) -> Result<()> {
    let entry = nnlens_core::metric(&args.metric)?;
    match entry.family {
        nnlens_core::MetricFamily::Invariance => {
            let spec = crate::invariance::measure_spec(&args.metric, &args.params)?;
            crate::invariance::run(cli, args, spec)
        }
        nnlens_core::MetricFamily::Linearity => crate::linearity::run(cli, args),
        nnlens_core::MetricFamily::Influence => crate::influence::run(cli, args),
        nnlens_core::MetricFamily::Similarity => crate::similarity::run(cli, args),
    }
}

fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("(N, {})", dims.join(", "))
}

fn features_text(layer: &LayerStructure) -> String {
    if layer.is_feature_layer() {
        let f: Vec<String> = layer.shape_feature().iter().map(|d| d.to_string()).collect();
        format!("{} x {} ({})", layer.number_features(), f.join("x"), layer.layout())
    } else {
        "-".into()
    }
}

fn layers(cli: &Cli, args: &LayersArgs) -> Result<()> {
    let loaded = load_model_from(args.model.as_deref(), &args.backend, None)?;
    let s = loaded.model.structure();
    if cli.format == Format::Json {
        return print_json(&json!({ "model": loaded.artifact, "structure": s }));
    }
    crate::out!(
        "model {} ({} layers, {} with feature maps; input {} {})",
        loaded.artifact.path,
        s.number_layers(),
        s.number_layers_features(),
        s.input.dtype,
        shape_text(&s.input.shape)
    );
    let rows: Vec<Vec<String>> = s
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            vec![
                i.to_string(),
                if i == s.output { format!("{} (output)", l.name) } else { l.name.clone() },
                shape_text(&l.shape),
                l.op.clone(),
                features_text(l),
                l.tensor.clone(),
            ]
        })
        .collect();
    print_table(&["#", "layer", "shape", "op", "features", "tensor"], &rows);
    Ok(())
}

fn manifest(
    cli: &Cli,
    command: &str,
    model: &LoadedModel,
    data: &LoadedData,
    parameters: serde_json::Value,
) -> RunManifest {
    let mut m = RunManifest::new(command, cli.seed);
    m.backend = Some(model.backend.clone());
    m.model = Some(model.artifact.clone());
    m.dataset = Some(data.reference.clone());
    m.parameters = parameters;
    m
}

/// Runs `each` on the dataset's inputs in batches of `batch_size`, shaped for `model`'s input,
/// with a progress bar: `each(range of samples, inputs)`.
fn for_each_batch(
    cli: &Cli,
    what: &str,
    model: &LoadedModel,
    data: &LoadedData,
    batch_size: usize,
    mut each: impl FnMut(Range<usize>, ArrayD<f32>) -> Result<()>,
) -> Result<()> {
    if batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let n = data.data.len();
    let input = &model.model.structure().input;
    let bar = progress(n as u64, what, cli.quiet);
    for start in (0..n).step_by(batch_size) {
        let end = (start + batch_size).min(n);
        let x = conform_input(data.data.batch(start..end)?, input)?;
        each(start..end, x)?;
        bar.inc((end - start) as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

fn evaluate(cli: &Cli, args: &EvaluateArgs) -> Result<()> {
    let t0 = Instant::now();
    let model = load_model(&args.model)?;
    let data = load_data(&args.data, None)?;
    let loaded_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let labels = data.data.labels();
    let mut total = Evaluation::default();
    for_each_batch(cli, "evaluate", &model, &data, args.batch_size, |samples, x| {
        let context = format!("samples {}..{}", samples.start, samples.end);
        total.merge(&model.model.evaluate(x.view(), &labels[samples]).context(context)?);
        Ok(())
    })?;
    let mut m = manifest(
        cli,
        "evaluate",
        &model,
        &data,
        json!({ "batch_size": args.batch_size, "pixel_scale": format!("{:?}", args.data.pixel_scale).to_lowercase() }),
    );
    m.timings_s.insert("load".into(), loaded_s);
    m.timings_s.insert("evaluate".into(), t1.elapsed().as_secs_f64());
    let result = json!({
        "samples": total.samples,
        "loss": total.loss(),
        "accuracy": total.accuracy(),
        "state": total,
    });
    let doc = json!({ "manifest": m, "result": result });
    if let Some(out) = &args.out {
        write_json(out, "result.json", &doc)?;
    }
    match cli.format {
        Format::Json => print_json(&doc),
        Format::Table => {
            crate::out!("model     {}", model.artifact.path);
            crate::out!(
                "dataset   {} {} ({} samples)",
                data.reference.name,
                data.reference.split.as_deref().unwrap_or("-"),
                total.samples
            );
            crate::out!("loss      {:.4}", total.loss());
            crate::out!("accuracy  {:.4}", total.accuracy());
            Ok(())
        }
    }
}

/// Default number of inputs for `predict` (all layers of many images is a lot of memory).
const PREDICT_DEFAULT_SAMPLES: usize = 16;

fn safe_file_name(layer: &str) -> String {
    layer
        .chars()
        .map(
            |c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' },
        )
        .collect()
}

/// What `predict` reports of one layer's activations.
#[derive(Debug, serde::Serialize)]
struct LayerSummary {
    layer: String,
    shape: Vec<usize>,
    mean: f64,
    std: f64,
    min: f32,
    max: f32,
    file: String,
}

impl LayerSummary {
    fn of(layer: &str, a: &ArrayD<f32>) -> Self {
        let len = a.len().max(1) as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / len;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len;
        Self {
            layer: layer.to_string(),
            shape: a.shape().to_vec(),
            mean,
            std: var.sqrt(),
            min: a.iter().copied().fold(f32::INFINITY, f32::min),
            max: a.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            file: format!("{}.npy", safe_file_name(layer)),
        }
    }
}

fn predict(cli: &Cli, args: &PredictArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let data = load_data(&args.data, Some(PREDICT_DEFAULT_SAMPLES))?;
    let structure = model.model.structure();
    let names: Vec<String> = if args.layers.is_empty() {
        structure.names().iter().map(|s| s.to_string()).collect()
    } else {
        args.layers.clone()
    };
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    let mut gathered: Vec<Vec<ArrayD<f32>>> = vec![Vec::new(); names.len()];
    for_each_batch(cli, "predict", &model, &data, args.batch_size, |_, x| {
        let acts = model.model.predict(x.view(), Some(&refs))?;
        for (slot, (_, value)) in gathered.iter_mut().zip(acts.into_pairs()) {
            slot.push(value);
        }
        Ok(())
    })?;
    let mut arrays = Vec::with_capacity(names.len());
    for parts in gathered {
        let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
        arrays.push(ndarray::concatenate(Axis(0), &views)?);
    }
    let summary: Vec<LayerSummary> =
        names.iter().zip(&arrays).map(|(name, a)| LayerSummary::of(name, a)).collect();
    let mut m = manifest(
        cli,
        "predict",
        &model,
        &data,
        json!({ "layers": names, "batch_size": args.batch_size }),
    );
    m.timings_s.insert("predict".into(), t0.elapsed().as_secs_f64());
    let doc = json!({ "manifest": m, "result": summary });
    if let Some(out) = &args.out {
        let mut dir = OutDir::create(out)?;
        for (s, a) in summary.iter().zip(&arrays) {
            dir.write(&s.file, |w| Ok(a.write_npy(w)?))?;
        }
        dir.manifest(MANIFEST, &doc)?;
        dir.commit()?;
    }
    match cli.format {
        Format::Json => print_json(&doc),
        Format::Table => {
            let rows: Vec<Vec<String>> = summary
                .iter()
                .map(|s| {
                    vec![
                        s.layer.clone(),
                        serde_json::to_string(&s.shape).unwrap_or_default(),
                        format!("{:.5}", s.mean),
                        format!("{:.5}", s.std),
                        format!("{:.5}", s.min),
                        format!("{:.5}", s.max),
                    ]
                })
                .collect();
            print_table(&["layer", "shape", "mean", "std", "min", "max"], &rows);
            Ok(())
        }
    }
}

fn metrics(cli: &Cli) -> Result<()> {
    let all = nnlens_core::metrics();
    if cli.format == Format::Json {
        let list: Vec<_> = all
            .iter()
            .map(|m| json!({ "name": m.name, "family": m.family, "description": m.description }))
            .collect();
        return print_json(&list);
    }
    if all.is_empty() {
        crate::out!("no metrics registered in this build");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|m| {
            vec![
                m.name.to_string(),
                serde_json::to_value(m.family)
                    .map(|v| v.as_str().unwrap_or("").to_string())
                    .unwrap_or_default(),
                m.description.to_string(),
            ]
        })
        .collect();
    print_table(&["metric", "family", "description"], &rows);
    Ok(())
}

fn backends(cli: &Cli) -> Result<()> {
    let all = nnlens_core::backends();
    let status: Vec<(String, String, String)> = all
        .iter()
        .map(|b| {
            let usable = match (b.available)() {
                Ok(()) => "yes".to_string(),
                Err(why) => format!("no: {why}"),
            };
            (b.name.to_string(), usable, b.description.to_string())
        })
        .collect();
    if cli.format == Format::Json {
        let list: Vec<_> = status
            .iter()
            .map(|(n, u, d)| json!({ "name": n, "usable": u, "description": d }))
            .collect();
        return print_json(&list);
    }
    let rows: Vec<Vec<String>> = status.into_iter().map(|(n, u, d)| vec![n, u, d]).collect();
    print_table(&["backend", "usable", "description"], &rows);
    Ok(())
}

fn fetch(cli: &Cli, args: &FetchArgs) -> Result<()> {
    let spec = dataset_spec(&args.dataset)?;
    let mirrors: Vec<String> = if args.mirror.is_empty() {
        spec.mirrors.iter().map(|m| m.to_string()).collect()
    } else {
        args.mirror.clone()
    };
    let dir = args.cache_dir.clone().unwrap_or_else(default_cache_dir).join(spec.name);
    let mut paths = Vec::new();
    for split in [Split::Train, Split::Test] {
        for file in spec.files(split) {
            paths.push(fetch_file(&file, &mirrors, &dir)?);
        }
    }
    match cli.format {
        Format::Json => print_json(&paths),
        Format::Table => {
            for p in paths {
                crate::out!("{}", p.display());
            }
            Ok(())
        }
    }
}

fn sample(cli: &Cli, args: &SampleArgs) -> Result<()> {
    let data = load_data(&args.data, None)?;
    let n = data.data.len();
    if args.count == 0 || args.count > n {
        bail!("--count must be between 1 and {n} (the samples of {})", data.data.name());
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cli.seed);
    let mut indices = rand::seq::index::sample(&mut rng, n, args.count).into_vec();
    indices.sort_unstable();
    let subset = data.data.subset(&indices)?;
    let (images, labels) = subset.to_idx();
    let split: Split = args.data.split.parse()?;
    let [image_file, label_file] = if args.data.dataset == "embedded" {
        dataset_spec("fashion-mnist")?.files(split)
    } else {
        dataset_spec(&args.data.dataset)?.files(split)
    };
    let mut dir = OutDir::create(&args.out)?;
    for (file, array) in [(image_file, images), (label_file, labels)] {
        dir.bytes(file.name, &gzip(&array.to_bytes()))?;
    }
    dir.manifest(
        "sample.json",
        &json!({ "source": data.reference, "seed": cli.seed, "count": args.count, "indices": indices }),
    )?;
    dir.commit()?;
    if cli.format == Format::Table {
        crate::out!("wrote {} of {} samples to {}", args.count, n, args.out.display());
    }
    Ok(())
}

fn transformations(cli: &Cli, args: &TransformationsArgs) -> Result<()> {
    let set = match (&args.spec, args.group) {
        (Some(spec), None) => nnlens_transforms::TransformationSet::parse(spec)?,
        (None, Some(group)) => nnlens_transforms::seed_group(group, args.n, args.size, args.size)?,
        _ => bail!("give a set spec (e.g. rotation:n=16) or --group G"),
    };
    if cli.format == Format::Json {
        return print_json(&set);
    }
    crate::out!("{}: {} transformations", set.spec, set.len());
    let rows: Vec<Vec<String>> = set
        .transformations
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let m = t.matrix;
            vec![
                i.to_string(),
                t.name.clone(),
                format!("[{:.4} {:.4}; {:.4} {:.4}]", m[0][0], m[0][1], m[1][0], m[1][1]),
                format!("({:.3}, {:.3})", t.translation[0], t.translation[1]),
            ]
        })
        .collect();
    print_table(&["#", "transformation", "matrix", "translation (px)"], &rows);
    Ok(())
}
