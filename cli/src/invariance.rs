//! `nnlens run <invariance measure>`, `nnlens analyze` and their result files.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::{ArrayViewD, ArrayViewMutD};
use nnlens_core::{LayerStructure, RunManifest, TransformationsDataSet as _};
use nnlens_datasets::npy::read_npy_f64;
use nnlens_invariance::{
    ActivationTransformations, Analyzer, AnalyzerRow, ArraySource, MeasureResult, MeasureSpec,
    ModelSource, Roll, compute,
};
use nnlens_transforms::{
    Fill, ImageTransformationsDataSet, Interpolation, Resample, TransformationSet,
};
use serde_json::json;

use crate::atomic::{MANIFEST, OutDir};
use crate::inputs::{load_data, load_model};
use crate::output::{print_json, print_table, progress};
use crate::{AnalyzeArgs, Cli, Format, Interp, RunArgs, charts};

/// Samples used when `--samples` is not given.
pub const DEFAULT_SAMPLES: usize = 1000;

/// The measure named on the command line, with its `--param`s.
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

/// `key=value` pairs as a JSON object; values are JSON (`true`, `0.8`) or else strings.
pub fn parse_params(params: &[String]) -> Result<serde_json::Value> {
    let mut map = serde_json::Map::new();
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param '{p}' is not key=value");
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| json!(v));
        map.insert(k.trim().replace('-', "_"), value);
    }
    Ok(if map.is_empty() { serde_json::Value::Null } else { serde_json::Value::Object(map) })
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
    ) -> nnlens_invariance::Result<()> {
        let transformation = self.set.get(t).ok_or_else(|| {
            nnlens_invariance::InvarianceError::Invalid(format!(
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
            .map_err(|e| nnlens_invariance::InvarianceError::Invalid(e.to_string()))?;
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
    ) -> nnlens_invariance::Result<()> {
        self.apply(layer, t, true, a, out)
    }

    fn forward(
        &self,
        layer: &LayerStructure,
        t: usize,
        a: ArrayViewD<'_, f64>,
        out: ArrayViewMutD<'_, f64>,
    ) -> nnlens_invariance::Result<()> {
        self.apply(layer, t, false, a, out)
    }
}

/// `nnlens run <invariance measure>`.
pub fn run(cli: &Cli, args: &RunArgs, spec: MeasureSpec) -> Result<()> {
    let t0 = Instant::now();
    let mut manifest = RunManifest::new("run", cli.seed);
    let result = match &args.activations {
        Some(path) => run_on_activations(args, &spec, path, &mut manifest)?,
        None => run_on_model(cli, args, &spec, &mut manifest)?,
    };
    manifest.timings_s.insert("total".into(), t0.elapsed().as_secs_f64());
    let doc = json!({ "manifest": manifest, "result": result });
    if let Some(out) = &args.out {
        write_result_files(out, &doc, &result)?;
    }
    match cli.format {
        Format::Json => print_json(&doc),
        Format::Table => {
            print_result(&result);
            Ok(())
        }
    }
}

fn run_on_activations(
    args: &RunArgs,
    spec: &MeasureSpec,
    path: &Path,
    manifest: &mut RunManifest,
) -> Result<MeasureResult> {
    if args.model.model.is_some() || args.transformations.is_some() {
        bail!(
            "--activations runs on activations computed elsewhere: it takes no --model or \
             --transformations (use --inverse for same-equivariance)"
        );
    }
    let t = Instant::now();
    let values = read_npy_f64(path)?;
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
        "measure": spec.kind.name(),
        "measure_parameters": spec.relevant_parameters(),
        "source": source_description(&source),
        "channel_axis": args.channel_axis,
        "inverse": args.inverse,
    });
    let t = Instant::now();
    let result = compute(spec, &mut source)?;
    manifest.timings_s.insert("measure".into(), t.elapsed().as_secs_f64());
    Ok(result)
}

fn source_description(source: &dyn nnlens_invariance::StSource) -> serde_json::Value {
    source.describe()
}

fn run_on_model(
    cli: &Cli,
    args: &RunArgs,
    spec: &MeasureSpec,
    manifest: &mut RunManifest,
) -> Result<MeasureResult> {
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
    let mut dataset = ImageTransformationsDataSet::new(data.data.clone(), set, resample)?;
    manifest.timings_s.insert("load".into(), t.elapsed().as_secs_f64());
    let layers: Vec<&str> = args.layers.iter().map(String::as_str).collect();
    let cells = data.data.len() * dataset.number_of_transformations() * spec.kind.passes();
    let bar = progress(cells as u64, spec.kind.name(), cli.quiet);
    let t = Instant::now();
    let result = {
        let mut source = ModelSource::new(model.model.as_ref(), &mut dataset)
            .with_batch_size(args.batch_size)
            .with_progress(|n| bar.inc(n as u64));
        if !layers.is_empty() {
            source = source.with_layers(&layers)?;
        }
        compute(spec, &mut source)?
    };
    bar.finish_and_clear();
    manifest.timings_s.insert("measure".into(), t.elapsed().as_secs_f64());
    manifest.backend = Some(model.backend.clone());
    manifest.model = Some(model.artifact.clone());
    manifest.dataset = Some(data.reference.clone());
    manifest.parameters = json!({
        "measure": spec.kind.name(),
        "measure_parameters": spec.relevant_parameters(),
        "transformations": set_description,
        "layers": result.layers.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
        "batch_size": args.batch_size,
        "pixel_scale": format!("{:?}", args.data.pixel_scale).to_lowercase(),
    });
    Ok(result)
}

fn number(v: f64) -> String {
    if v.is_finite() { format!("{v:.6}") } else { format!("{v}") }
}

fn print_result(result: &MeasureResult) {
    crate::out!(
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
    crate::out!("total  {}", number(result.total));
    if !result.skipped_layers.is_empty() {
        crate::out!("(no feature maps, left out: {})", result.skipped_layers.join(", "));
    }
}

/// Writes result.json, layers.csv, features.csv and the plots of a measure into `out`,
/// atomically (see [`crate::atomic`]).
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
                v.as_ref().map_or(String::new(), |v| nnlens_invariance::plain_mean(v).to_string())
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
    charts::measure_charts(&mut dir, result)?;
    dir.commit()
}

/// `nnlens analyze`.
pub fn analyze(cli: &Cli, args: &AnalyzeArgs) -> Result<()> {
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
    let labels = data.data.labels().to_vec();
    let analyzer = Analyzer::new(model.model.as_ref(), &dataset, &labels, spec.clone())?
        .with_batch_size(args.batch_size);
    let groups = dataset.number_of_groups();
    let bar = progress(groups as u64, "analyze (groups)", cli.quiet);
    let rows = analyzer.run(args.n, |g| bar.set_position(g as u64))?;
    bar.finish_and_clear();
    let mut manifest = RunManifest::new("analyze", cli.seed);
    manifest.backend = Some(model.backend.clone());
    manifest.model = Some(model.artifact.clone());
    manifest.dataset = Some(data.reference.clone());
    manifest.parameters = json!({
        "measure": spec.kind.name(),
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
    match cli.format {
        Format::Json => print_json(&doc),
        Format::Table => {
            crate::out!("{} vs accuracy, {} transformations per group", spec.kind.name(), args.n);
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
    charts::analysis_chart(out, measure, rows)
}

/// `nnlens plot DIR`: redraws the plots of a saved result.
pub fn plot(dir: &Path, out: Option<&PathBuf>) -> Result<()> {
    let path = dir.join("result.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let Some(result) = doc.get("result").filter(|r| r.is_object()) else {
        bail!(
            "{} is not a result nnlens wrote (no \"result\" object); give a directory that \
             `nnlens run` or `nnlens analyze` wrote with --out",
            path.display()
        );
    };
    let mut out = OutDir::create(out.map_or(dir, PathBuf::as_path))?;
    if result["metric"] == "linearity" {
        crate::linearity::plot(result, &mut out, &path)?;
        return out.commit();
    }
    if result["metric"] == "similarity" {
        crate::similarity::plot(result, &mut out, &path)?;
        return out.commit();
    }
    if let Some(groups) = result.get("groups") {
        let rows: Vec<AnalyzerRow> = serde_json::from_value(groups.clone())
            .with_context(|| format!("{}: not an analysis result", path.display()))?;
        let measure = result["measure"].as_str().unwrap_or("measure");
        charts::analysis_chart(&mut out, measure, &rows)?;
        return out.commit();
    }
    let measure: MeasureResult = serde_json::from_value(result.clone())
        .with_context(|| format!("{}: not a measure result", path.display()))?;
    charts::measure_charts(&mut out, &measure)?;
    out.commit()
}
