//! The binary's own subcommands: models, data and backends, no metric.

use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::ArrayD;
use ndarray_npy::WriteNpyExt;
use nnlens_core::{Evaluation, LayerStructure, conform_input, in_batches_prefetched};
use nnlens_datasets::download::{default_cache_dir, fetch_file};
use nnlens_datasets::idx::gzip;
use nnlens_datasets::{Split, dataset_spec};
use nnlens_run::inputs::{LoadedData, LoadedModel, load_data, load_model, load_model_with};
use nnlens_run::output::{print_json, print_table, progress, write_json};
use nnlens_run::{Format, MANIFEST, OutDir, RunContext};
use rand::SeedableRng;
use serde_json::json;

use crate::{
    Command, EvaluateArgs, FetchArgs, LayersArgs, PredictArgs, SampleArgs, SampleFormat,
    TransformationsArgs,
};

/// Runs one of the binary's own commands.
pub fn run(cli: &RunContext, command: &Command) -> Result<()> {
    match command {
        Command::Layers(args) => layers(cli, args),
        Command::Evaluate(args) => evaluate(cli, args),
        Command::Predict(args) => predict(cli, args),
        Command::Metrics => metrics(cli),
        Command::Backends => backends(cli),
        Command::Fetch(args) => fetch(cli, args),
        Command::Sample(args) => sample(cli, args),
        Command::Transformations(args) => transformations(cli, args),
        Command::Bench(args) => nnlens_bench::run(cli, args),
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

fn layers(cli: &RunContext, args: &LayersArgs) -> Result<()> {
    let options = nnlens_core::BackendOptions {
        input_shape: args.input_shape.clone(),
        ..nnlens_core::BackendOptions::default()
    };
    let loaded = load_model_with(args.model.as_deref(), &args.backend, &options)?;
    let s = loaded.model.structure();
    if cli.format == Format::Json {
        return print_json(&json!({ "model": loaded.artifact, "structure": s }));
    }
    nnlens_run::out!(
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
    cli: &RunContext,
    command: &str,
    model: &LoadedModel,
    data: &LoadedData,
    parameters: serde_json::Value,
) -> nnlens_core::RunManifest {
    let mut m = model.manifest(command, cli);
    m.dataset = Some(data.reference.clone());
    m.parameters = parameters;
    m
}

/// The outputs of `each` on the dataset's inputs in batches of `batch_size`, shaped for
/// `model`'s input, joined along the batch axis ([`in_batches_prefetched`]: the next batch is
/// read while this one runs), with a progress bar:
/// `each(range of samples, inputs)`.
fn in_dataset_batches(
    cli: &RunContext,
    what: &str,
    model: &LoadedModel,
    data: &LoadedData,
    batch_size: usize,
    mut each: impl FnMut(Range<usize>, ArrayD<f32>) -> Result<Vec<ArrayD<f32>>>,
) -> Result<Vec<ArrayD<f32>>> {
    if batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let input = &model.model.structure().input;
    let bar = progress(data.data.len() as u64, what, cli.quiet);
    // The next batch is read, decoded and laid out for the model while this one runs.
    let joined = in_batches_prefetched(
        data.data.len(),
        batch_size,
        |rows| -> Result<ArrayD<f32>> { Ok(conform_input(data.data.batch(rows)?, input)?) },
        |rows, x| {
            bar.inc(rows.len() as u64);
            each(rows, x)
        },
    )?;
    bar.finish_and_clear();
    Ok(joined)
}

fn evaluate(cli: &RunContext, args: &EvaluateArgs) -> Result<()> {
    let shard = args.shard.resolve()?;
    if let Some(shard) = shard {
        nnlens_run::shard::shard_out(args.out.as_deref(), shard)?;
    }
    let t0 = Instant::now();
    let model = load_model(&args.model)?;
    let whole = load_data(&args.data, None)?;
    // A shard evaluates its contiguous part of the rows, in whole batches of the whole run (a
    // backend's results may depend on a row's place in its batch).
    let data = match shard {
        Some(shard) => {
            let block = args.batch_size.max(1);
            let rows: Vec<usize> = shard.range_aligned(whole.data.len(), block).collect();
            if rows.is_empty() {
                bail!(
                    "shard {shard} has no rows: {} rows make {} batches of {block}, fewer than {} \
                     shards",
                    whole.data.len(),
                    whole.data.len().div_ceil(block),
                    shard.count
                );
            }
            LoadedData { data: whole.data.subset(&rows)?, reference: whole.reference.clone() }
        }
        None => whole,
    };
    let loaded_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let labels = data.data.require_labels("evaluate")?;
    let mut total = Evaluation::default();
    in_dataset_batches(cli, "evaluate", &model, &data, args.batch_size, |samples, x| {
        let context = format!("samples {}..{}", samples.start, samples.end);
        total.merge(&model.model.evaluate(x.view(), &labels[samples]).context(context)?);
        Ok(Vec::new())
    })?;
    let mut m = manifest(
        cli,
        "evaluate",
        &model,
        &data,
        json!({ "batch_size": args.batch_size, "pixel_scale": args.data.pixel_scale.as_str() }),
    );
    m.timings_s.insert("load".into(), loaded_s);
    m.timings_s.insert("evaluate".into(), t1.elapsed().as_secs_f64());
    if let (Some(shard), Some(out)) = (shard, &args.out) {
        m.shard = Some(shard);
        return nnlens_run::shard::write_state(out, &m, &serde_json::to_value(total)?, cli.quiet);
    }
    finish_evaluate(cli, m, &total, args.out.as_deref())
}

/// The end of `evaluate`, whole or merged from shards: result.json written, the result
/// printed.
fn finish_evaluate(
    cli: &RunContext,
    m: nnlens_core::RunManifest,
    total: &Evaluation,
    out: Option<&Path>,
) -> Result<()> {
    let result = json!({
        "samples": total.samples,
        "loss": total.loss(),
        "accuracy": total.accuracy(),
        "state": total,
    });
    let model_path = m.model.as_ref().map_or(String::new(), |a| a.path.clone());
    let (name, split) =
        m.dataset.as_ref().map_or((String::new(), None), |d| (d.name.clone(), d.split.clone()));
    let doc = json!({ "manifest": m, "result": result });
    if let Some(out) = out {
        write_json(out, "result.json", &doc)?;
    }
    match cli.format {
        Format::Json => print_json(&doc),
        Format::Table => {
            nnlens_run::out!("model     {model_path}");
            nnlens_run::out!(
                "dataset   {name} {} ({} samples)",
                split.as_deref().unwrap_or("-"),
                total.samples
            );
            nnlens_run::out!("loss      {:.4}", total.loss());
            nnlens_run::out!("accuracy  {:.4}", total.accuracy());
            Ok(())
        }
    }
}

/// `nnlens merge` of `evaluate` shards: the evaluations summed (exactly), then as `evaluate`.
fn merge_evaluate(
    manifest: nnlens_core::RunManifest,
    states: nnlens_run::shard::ShardStates,
    cli: &RunContext,
    out: &Path,
) -> Result<()> {
    let total = states.fold("an evaluation", |total: &mut Evaluation, part| {
        total.merge(&part);
        Ok(())
    })?;
    finish_evaluate(cli, manifest, &total, Some(out))
}

nnlens_run::__inventory::submit! {
    nnlens_run::CommandMerger { command: "evaluate", merge: merge_evaluate }
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

fn predict(cli: &RunContext, args: &PredictArgs) -> Result<()> {
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
    let arrays = in_dataset_batches(cli, "predict", &model, &data, args.batch_size, |_, x| {
        let acts = model.model.predict(x.view(), Some(&refs))?;
        Ok(acts.into_pairs().into_iter().map(|(_, value)| value).collect())
    })?;
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

fn metrics(cli: &RunContext) -> Result<()> {
    let all = nnlens_core::metrics();
    if cli.format == Format::Json {
        let list: Vec<_> = all
            .iter()
            .map(|m| json!({ "name": m.name, "family": m.family, "description": m.description }))
            .collect();
        return print_json(&list);
    }
    if all.is_empty() {
        nnlens_run::out!("no metrics registered in this build");
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

fn backends(cli: &RunContext) -> Result<()> {
    let all = nnlens_core::backends();
    let usable = |b: &nnlens_core::BackendEntry| match (b.available)() {
        Ok(()) => "yes".to_string(),
        Err(why) => format!("no: {why}"),
    };
    let gradients =
        |b: &nnlens_core::BackendEntry| if b.gradients.is_some() { "yes" } else { "no" };
    let operators = |b: &nnlens_core::BackendEntry| {
        if b.operators.is_empty() {
            "the engine's own (the ONNX standard)".to_string()
        } else {
            b.operators.join(", ")
        }
    };
    let (auto, why) = nnlens_run::inputs::auto_backend();
    if cli.format == Format::Json {
        let list: Vec<_> = all
            .iter()
            .map(|b| {
                json!({
                    "name": b.name,
                    "usable": usable(b),
                    "gradients": b.gradients.is_some(),
                    "description": b.description,
                    "operators": b.operators,
                })
            })
            .collect();
        return print_json(&json!({ "backends": list, "auto": { "backend": auto, "why": why } }));
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|b| {
            vec![b.name.to_string(), usable(b), gradients(b).to_string(), b.description.to_string()]
        })
        .collect();
    print_table(&["backend", "usable", "gradients", "description"], &rows);
    nnlens_run::out!("--backend auto (the default) runs {auto} here: {why}");
    if cli.verbose > 0 {
        for b in &all {
            nnlens_run::out!("\n{} operators: {}", b.name, operators(b));
        }
    } else {
        nnlens_run::out!("(-v lists each backend's operators)");
    }
    Ok(())
}

fn fetch(cli: &RunContext, args: &FetchArgs) -> Result<()> {
    let mirrors = |official: &[&str]| -> Vec<String> {
        if args.mirror.is_empty() {
            official.iter().map(|m| m.to_string()).collect()
        } else {
            args.mirror.clone()
        }
    };
    let cache = args.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let mut paths = Vec::new();
    if let Some(cifar) = nnlens_datasets::cifar::cifar_spec(&args.dataset) {
        // One tarball holds both splits.
        paths.push(fetch_file(&cifar.archive, &mirrors(cifar.mirrors), &cache.join(cifar.name))?);
    } else {
        let spec = dataset_spec(&args.dataset).map_err(|_| {
            anyhow::anyhow!(
                "unknown dataset '{}'; nnlens fetches fashion-mnist, mnist, cifar10, cifar100",
                args.dataset
            )
        })?;
        let dir = cache.join(spec.name);
        for split in [Split::Train, Split::Test] {
            for file in spec.files(split) {
                paths.push(fetch_file(&file, &mirrors(spec.mirrors), &dir)?);
            }
        }
    }
    match cli.format {
        Format::Json => print_json(&paths),
        Format::Table => {
            for p in paths {
                nnlens_run::out!("{}", p.display());
            }
            Ok(())
        }
    }
}

fn sample(cli: &RunContext, args: &SampleArgs) -> Result<()> {
    let data = load_data(&args.data, None)?;
    let n = data.data.len();
    let count = args.count.unwrap_or(n);
    if count == 0 || count > n {
        bail!("--count must be between 1 and {n} (the samples of {})", data.data.name());
    }
    let indices: Vec<usize> = if count == n {
        (0..n).collect()
    } else {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cli.seed);
        let mut indices = rand::seq::index::sample(&mut rng, n, count).into_vec();
        indices.sort_unstable();
        indices
    };
    let subset = data.data.subset(&indices)?;
    let kind = data.reference.kind.as_deref();
    let idx_source = matches!(kind, Some("idx" | "embedded"));
    let format = match args.write_as {
        SampleFormat::Auto if idx_source && subset.image_shape()[2] == 1 => SampleFormat::Idx,
        SampleFormat::Auto if subset.is_bytes() => SampleFormat::Folder,
        SampleFormat::Auto => SampleFormat::Npy,
        f => f,
    };
    let about = json!({
        "source": data.reference,
        "seed": cli.seed,
        "count": count,
        "indices": indices,
        "format": format.as_str(),
    });
    match format {
        SampleFormat::Idx => {
            let (images, labels) = subset.to_idx()?;
            let split: Split = args.data.split.as_deref().unwrap_or("test").parse()?;
            let name =
                if kind == Some("idx") { args.data.dataset.as_str() } else { "fashion-mnist" };
            let [image_file, label_file] = dataset_spec(name)?.files(split);
            let mut dir = OutDir::create(&args.out)?;
            for (file, array) in [(image_file, images), (label_file, labels)] {
                dir.bytes(file.name, &gzip(&array.to_bytes()))?;
            }
            dir.manifest("sample.json", &about)?;
            dir.commit()?;
        }
        SampleFormat::Npy | SampleFormat::Inputs => {
            let inputs = format == SampleFormat::Inputs;
            let mut dir = OutDir::create(&args.out)?;
            let name = if inputs { "inputs.npy" } else { "images.npy" };
            dir.write(name, |w| Ok(nnlens_datasets::write::write_images_npy(&subset, inputs, w)?))?;
            if subset.has_labels() {
                dir.write("labels.npy", |w| {
                    Ok(nnlens_datasets::write::write_labels_npy(&subset, w)?)
                })?;
            }
            dir.bytes("classes.txt", classes_text(&subset).as_bytes())?;
            dir.manifest("sample.json", &about)?;
            dir.commit()?;
        }
        SampleFormat::Folder => write_folder(&subset, &args.out, &about)?,
        SampleFormat::Auto => unreachable!("resolved above"),
    }
    if cli.format == Format::Table {
        nnlens_run::out!(
            "wrote {count} of {n} samples to {} ({})",
            args.out.display(),
            format.as_str()
        );
    }
    Ok(())
}

fn classes_text(data: &nnlens_datasets::ImageDataSet) -> String {
    data.class_names().iter().map(|c| format!("{c}\n")).collect()
}

/// Writes `data` as an image folder at `out` (which must not exist or be empty): PNG files in
/// class folders, staged in a sibling folder and renamed into place when all are written.
fn write_folder(
    data: &nnlens_datasets::ImageDataSet,
    out: &Path,
    about: &serde_json::Value,
) -> Result<()> {
    use rayon::prelude::*;
    if out.is_file() {
        bail!("--out {} is a file; give a folder to write the image folder to", out.display());
    }
    if out.is_dir() && std::fs::read_dir(out)?.next().is_some() {
        bail!(
            "--out {} is not empty; an image folder is written to a new or empty folder",
            out.display()
        );
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = parent.join(format!(".{name}.nnlens-part-{}", std::process::id()));
    let written = (|| -> Result<()> {
        let paths = nnlens_datasets::write::folder_paths(data);
        for class in paths
            .iter()
            .filter_map(|p| p.split('/').next())
            .collect::<std::collections::BTreeSet<_>>()
        {
            std::fs::create_dir_all(staging.join(class))?;
        }
        paths.par_iter().enumerate().try_for_each(|(row, rel)| -> Result<()> {
            let png = nnlens_datasets::write::png_of(data, row)?;
            let path = staging.join(rel);
            std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
            Ok(())
        })?;
        std::fs::write(staging.join("sample.json"), serde_json::to_vec_pretty(about)?)?;
        if out.is_dir() {
            std::fs::remove_dir(out)?;
        }
        std::fs::rename(&staging, out).with_context(|| format!("writing {}", out.display()))?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
}

fn transformations(cli: &RunContext, args: &TransformationsArgs) -> Result<()> {
    let set = match (&args.spec, args.group) {
        (Some(spec), None) => nnlens_transforms::TransformationSet::parse(spec)?,
        (None, Some(group)) => nnlens_transforms::seed_group(group, args.n, args.size, args.size)?,
        _ => bail!("give a set spec (e.g. rotation:n=16) or --group G"),
    };
    if cli.format == Format::Json {
        return print_json(&set);
    }
    nnlens_run::out!("{}: {} transformations", set.spec, set.len());
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
