//! `nnlens run linearity` and its result files.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::{Array2, Array3, Axis, Ix2, Ix3};
use nnlens_core::{DataSet as _, Model, RunManifest};
use nnlens_datasets::ImageDataSet;
use nnlens_datasets::npy::read_npy_f64;
use nnlens_linearity::{
    Execution, FeatureRange, GridSampler, Instances, KnnIndex, KnnSampler, LayerSpec,
    LinearityResult, LinearitySpec, LinearityState, Method, ModelType, OffsetSampler,
    Perturbations, flatten_rows, is_probability_vector, measure,
};
use rand::SeedableRng;
use serde_json::json;

use crate::atomic::{MANIFEST, OutDir};
use crate::inputs::{LoadedData, load_data, load_model};
use crate::output::{print_json, print_table, progress};
use crate::{Cli, Format, LinearityArgs, RunArgs, charts};

/// Instances measured when neither `--instances`, `--per-class` nor `--indices` is given (the
/// seed's per-layer workload).
pub const DEFAULT_INSTANCES: usize = 100;

/// `nnlens run linearity`.
pub fn run(cli: &Cli, args: &RunArgs) -> Result<()> {
    let t0 = Instant::now();
    let lin = &args.linearity;
    if args.activations.is_some() || args.transformations.is_some() {
        bail!(
            "linearity runs a model on perturbed inputs: it takes no --activations or --transformations"
        );
    }
    let loaded = load_model(&args.model)?;
    let model = loaded.model.as_ref();
    let data = load_data(&args.data, None)?;
    let mut manifest = RunManifest::new("run", cli.seed);
    manifest.backend = Some(loaded.backend.clone());
    manifest.model = Some(loaded.artifact.clone());
    manifest.dataset = Some(data.reference.clone());
    let t = Instant::now();

    let (rows, selection) = select_instances(lin, &data.data, cli.seed)?;
    let pool = flatten_rows(data.data.batch(0..data.data.len())?.view())?;
    let inputs = pool.select(Axis(0), &rows);
    let labels: Vec<usize> = rows.iter().map(|&r| data.data.labels()[r]).collect();
    let range = feature_range(lin, &pool)?;
    let spec = linearity_spec(args)?;
    let sampler = sampler(cli, args, &spec, &range, rows.len())?;
    let layers = layer_specs(model, &args.layers, &spec, inputs.view(), data.data.data_shape())?;
    manifest.timings_s.insert("load".into(), t.elapsed().as_secs_f64());
    manifest.parameters = json!({
        "metric": "linearity",
        "linearity": spec,
        "sampler": sampler.describe(),
        "layers": layers,
        "instances": selection,
        "feature_range": lin.feature_range,
        "batch_size": args.batch_size,
        "threads": rayon::current_num_threads(),
    });
    drop(pool);

    let t = Instant::now();
    let bar = progress(rows.len() as u64, "linearity", cli.quiet);
    let instances = Instances {
        inputs: inputs.view(),
        data_shape: data.data.data_shape(),
        indices: &rows,
        labels: Some(&labels),
    };
    let execution = Execution { batch_size: args.batch_size.max(1) };
    let state = measure(model, &spec, instances, sampler.as_ref(), &layers, execution, &|n| {
        bar.inc(n as u64)
    })?;
    bar.finish_and_clear();
    manifest.timings_s.insert("measure".into(), t.elapsed().as_secs_f64());
    let summary = state.summarise(lin.bins)?;
    manifest.timings_s.insert("total".into(), t0.elapsed().as_secs_f64());
    let classes = crate::inputs::class_names(&args.data.dataset, data.data.classes());
    let output = model.structure().output_layer().name.clone();
    let doc = json!({
        "manifest": manifest,
        "result": {
            "metric": "linearity",
            "output_layer": output,
            "class_names": classes,
            "summary": summary,
            "state": state,
        },
    });
    if let Some(out) = &args.out {
        let mut dir = OutDir::create(out)?;
        dir.manifest(MANIFEST, &doc)?;
        write_csv(&mut dir, &state, &summary)?;
        charts::linearity_charts(&mut dir, &summary, &output, &classes)?;
        dir.commit()?;
    }
    match cli.format {
        Format::Json => print_json(&doc),
        Format::Table => {
            print_summary(&summary, &output, &classes);
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
        let rows = read_indices(spec)?;
        if rows.is_empty() {
            bail!("--indices: no rows given");
        }
        if let Some(&r) = rows.iter().find(|&&r| r >= n) {
            bail!("--indices: row {r} is outside the {n} samples of {}", data.name());
        }
        return Ok((rows.clone(), json!({ "rule": "indices", "rows": rows.len() })));
    }
    if lin.per_class {
        let cap = lin.per_class_max.unwrap_or(usize::MAX);
        if cap == 0 {
            bail!("--per-class-max 0: nothing to measure");
        }
        let mut rows = Vec::new();
        for class in 0..data.classes() {
            rows.extend((0..n).filter(|&r| data.labels()[r] == class).take(cap));
        }
        return Ok((rows, json!({ "rule": "per-class", "per_class_max": lin.per_class_max })));
    }
    let count = lin.instances.unwrap_or(DEFAULT_INSTANCES.min(n));
    if count == 0 {
        bail!("--instances 0: nothing to measure");
    }
    if count > n {
        bail!("--instances {count} is more than the {n} samples of {}", data.name());
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut rows = rand::seq::index::sample(&mut rng, n, count).into_vec();
    rows.sort_unstable();
    Ok((rows, json!({ "rule": "random", "count": count, "seed": seed })))
}

/// Rows from `1,5,9`, or from a file: NPY of integers, or text with one row per line.
pub(crate) fn read_indices(spec: &str) -> Result<Vec<usize>> {
    let path = Path::new(spec);
    // Whole numbers, read as integers (a float would round 10^12 to another row).
    let row = |s: &str, what: &dyn Fn() -> String| -> Result<u64> {
        s.parse::<u64>()
            .ok()
            .or_else(|| {
                // `3.0` is a row too; `2.5`, `-1` and `1e30` are not.
                s.parse::<f64>()
                    .ok()
                    .filter(|v| *v >= 0.0 && v.fract() == 0.0 && *v < 9e15)
                    .map(|v| v as u64)
            })
            .with_context(|| format!("{}: '{s}' is not a row number (a whole number >= 0)", what()))
    };
    let values: Vec<u64> = if path.is_file() {
        if spec.ends_with(".npy") {
            nnlens_datasets::npy::read_npy_indices(path).context("--indices")?
        } else {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--indices: reading {}", path.display()))?;
            text.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(|s| row(s, &|| format!("--indices {}", path.display())))
                .collect::<Result<_>>()?
        }
    } else if path.is_dir() {
        bail!("--indices {spec} is a directory, not a file of row numbers");
    } else {
        spec.split(',')
            .map(|s| {
                row(s.trim(), &|| {
                    format!("--indices '{spec}' is neither a file nor comma-separated rows")
                })
            })
            .collect::<Result<_>>()?
    };
    values
        .into_iter()
        .map(|v| usize::try_from(v).with_context(|| format!("--indices: {v} is not a row number")))
        .collect()
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

fn linearity_spec(args: &RunArgs) -> Result<LinearitySpec> {
    let lin = &args.linearity;
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
    if !args.params.is_empty() {
        bail!("linearity takes its options as flags (see `nnlens run --help`), not --param");
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
    cli: &Cli,
    args: &RunArgs,
    spec: &LinearitySpec,
    range: &FeatureRange,
    instances: usize,
) -> Result<Box<dyn Perturbations>> {
    let lin = &args.linearity;
    Ok(match spec.method {
        Method::Grid => {
            Box::new(GridSampler::new(range, spec.epsilon, spec.res, spec.nb_samples, cli.seed)?)
        }
        Method::Offsets => {
            let path = lin.offsets.as_ref().expect("offsets method comes from --offsets");
            let a = read_npy_f64(path)?;
            let a: Array3<f64> = a.into_dimensionality::<Ix3>().with_context(|| {
                format!("--offsets {}: expected [instances, nb_samples, features]", path.display())
            })?;
            let s = OffsetSampler::new(a, range, spec.res)
                .with_context(|| format!("--offsets {}", path.display()))?;
            if s.instances() != instances {
                bail!(
                    "--offsets {}: offsets for {} instances, {instances} selected",
                    path.display(),
                    s.instances()
                );
            }
            Box::new(s)
        }
        Method::Knn => {
            let mut reference_args = args.data.clone();
            reference_args.split = lin.knn_split.clone();
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

fn summary_cells(s: &nnlens_linearity::Summary) -> Vec<String> {
    [s.mean, s.std, s.min, s.q05, s.q25, s.median, s.q75, s.q95, s.max]
        .iter()
        .map(|v| format!("{v}"))
        .collect()
}

const SUMMARY_HEADER: [&str; 9] =
    ["mean", "std", "min", "q05", "q25", "median", "q75", "q95", "max"];

fn write_csv(out: &mut OutDir, state: &LinearityState, summary: &LinearityResult) -> Result<()> {
    out.csv("instances.csv", |w| {
        let mut header = vec!["index".to_string(), "label".to_string()];
        header.extend(state.layers.iter().map(|l| l.name.clone()));
        w.write_record(&header)?;
        for i in 0..state.len() {
            let mut row = vec![
                state.indices[i].to_string(),
                state.labels.as_ref().map_or(String::new(), |l| l[i].to_string()),
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
        let mut header = vec!["layer", "class", "count"];
        header.extend(SUMMARY_HEADER);
        w.write_record(&header)?;
        for l in &summary.layers {
            for c in &l.classes {
                let mut row =
                    vec![l.name.clone(), c.class.to_string(), c.summary.count.to_string()];
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
pub fn focus_layer<'a>(
    summary: &'a LinearityResult,
    output: &str,
) -> Option<&'a nnlens_linearity::LayerLinearity> {
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
    crate::out!("linearity of {} instances (0 = linear)", summary.instances);
    print_table(&["layer", "model type", "mean L", "std", "median"], &rows);
    if let Some(focus) = focus_layer(summary, output).filter(|l| l.classes.len() > 1) {
        crate::out!("");
        crate::out!("per class at {}", focus.name);
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

/// Redraws the plots of a saved linearity result.
pub fn plot(result: &serde_json::Value, out: &mut OutDir, path: &Path) -> Result<()> {
    let summary: LinearityResult = serde_json::from_value(result["summary"].clone())
        .with_context(|| format!("{}: not a linearity result", path.display()))?;
    let output = result["output_layer"].as_str().unwrap_or_default();
    let classes: Vec<String> =
        serde_json::from_value(result["class_names"].clone()).unwrap_or_default();
    charts::linearity_charts(out, &summary, output, &classes)
}
