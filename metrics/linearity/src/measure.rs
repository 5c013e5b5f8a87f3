//! The linearity measure: `L(x) = || M(sum_s a_s v_s) - sum_s a_s M(v_s) ||` around every
//! instance, for every requested layer from the same forwards.

use std::collections::BTreeMap;

use ndarray::{Array2, Array3, ArrayView2, ArrayViewD, IxDyn, s};
use nnlens_core::{Metric, MetricEntry, MetricFamily, Model, conform_input};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{LinearityError, Result, invalid};
use crate::layer::{LayerSpec, ModelType};
use crate::perturb::{InstanceId, Perturbations};
use crate::result::LinearityState;

/// How the samples are superposed: alibi's `agg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    /// `|| M(sum_s a_s v_s) - sum_s a_s M(v_s) ||` over all samples at once (alphas default
    /// `1/nb_samples` each).
    Global,
    /// The mean over samples of `|| M(a_0 x + a_1 v_s) - (a_0 M(x) + a_1 M(v_s)) ||`, each
    /// sample paired with the instance itself (alphas default `0.5, 0.5`).
    Pairwise,
}

impl std::str::FromStr for Aggregation {
    type Err = LinearityError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "global" => Ok(Aggregation::Global),
            "pairwise" => Ok(Aggregation::Pairwise),
            _ => Err(invalid!("unknown aggregation '{s}'; use global or pairwise")),
        }
    }
}

/// How the samples around an instance are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// [`crate::GridSampler`].
    Grid,
    /// [`crate::KnnSampler`].
    Knn,
    /// [`crate::OffsetSampler`]: integer grid offsets replayed from a file.
    Offsets,
}

impl std::str::FromStr for Method {
    type Err = LinearityError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "grid" => Ok(Method::Grid),
            "knn" => Ok(Method::Knn),
            "offsets" => Ok(Method::Offsets),
            _ => Err(invalid!("unknown method '{s}'; use grid, knn or offsets")),
        }
    }
}

/// The parameters of a linearity run (the `linearity` metric): alibi's, with its defaults
/// (those of the function `linearity_measure`, whose `agg` is `global`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinearitySpec {
    /// Grid, kNN or replayed offsets.
    pub method: Method,
    /// Global or pairwise.
    pub agg: Aggregation,
    /// Samples per instance (alibi: 10).
    pub nb_samples: usize,
    /// Grid half-width as a fraction of the range (alibi: 0.04).
    pub epsilon: f64,
    /// Grid resolution: the range is cut in `res` steps (alibi: 100).
    pub res: usize,
    /// Superposition weights; `None` for alibi's defaults. Used as given (not normalised).
    pub alphas: Option<Vec<f64>>,
    /// Model type of every layer not in `model_types` (`None`: classifier for a probability
    /// vector, regressor otherwise; decided by the caller).
    pub model_type: Option<ModelType>,
    /// Model type per layer name, overriding the rest.
    pub model_types: BTreeMap<String, ModelType>,
}

impl Default for LinearitySpec {
    fn default() -> Self {
        Self {
            method: Method::Grid,
            agg: Aggregation::Global,
            nb_samples: 10,
            epsilon: 0.04,
            res: 100,
            alphas: None,
            model_type: None,
            model_types: BTreeMap::new(),
        }
    }
}

impl LinearitySpec {
    /// Parses parameters (a JSON object of the fields above; null for the defaults).
    ///
    /// # Errors
    /// Unknown keys, values of the wrong type, or values [`Self::validate`] refuses.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let spec: Self = if value.is_null() {
            Self::default()
        } else {
            serde_json::from_value(value.clone())
                .map_err(|e| invalid!("linearity parameters: {e}"))?
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// `nb_samples` or `res` 0, `epsilon` not positive, alphas of the wrong length or not finite.
    pub fn validate(&self) -> Result<()> {
        if self.nb_samples == 0 {
            return Err(invalid!("nb_samples must be at least 1"));
        }
        if self.res == 0 {
            return Err(invalid!("res must be at least 1"));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(invalid!("epsilon must be a positive number, got {}", self.epsilon));
        }
        if let Some(alphas) = &self.alphas {
            self.check_alphas(alphas, self.nb_samples)?;
        }
        Ok(())
    }

    fn check_alphas(&self, alphas: &[f64], nb_samples: usize) -> Result<()> {
        let expected = match self.agg {
            Aggregation::Global => nb_samples,
            Aggregation::Pairwise => 2,
        };
        if alphas.len() != expected {
            return Err(invalid!(
                "{} alphas given; {:?} aggregation needs {expected}",
                alphas.len(),
                self.agg
            ));
        }
        if let Some(a) = alphas.iter().find(|a| !a.is_finite()) {
            return Err(invalid!("alpha {a} is not finite"));
        }
        Ok(())
    }

    /// The alphas used with `nb_samples` samples: the given ones, or alibi's defaults.
    ///
    /// # Errors
    /// Given alphas of the wrong length.
    pub fn alphas_for(&self, nb_samples: usize) -> Result<Vec<f64>> {
        match &self.alphas {
            Some(a) => {
                self.check_alphas(a, nb_samples)?;
                Ok(a.clone())
            }
            None => Ok(match self.agg {
                Aggregation::Global => vec![1.0 / nb_samples as f64; nb_samples],
                Aggregation::Pairwise => vec![0.5, 0.5],
            }),
        }
    }

    /// The model type of layer `name`, given whether its output is a probability vector.
    pub fn model_type_of(&self, name: &str, is_probability: bool) -> ModelType {
        self.model_types.get(name).copied().or(self.model_type).unwrap_or(if is_probability {
            ModelType::Classifier
        } else {
            ModelType::Regressor
        })
    }
}

impl Metric for LinearitySpec {
    fn name(&self) -> &'static str {
        "linearity"
    }
    fn family(&self) -> MetricFamily {
        "linearity"
    }
    fn parameters(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn build(value: &serde_json::Value) -> nnlens_core::Result<Box<dyn Metric>> {
    Ok(Box::new(LinearitySpec::from_json(value)?))
}

nnlens_core::register_metric!(MetricEntry {
    name: "linearity",
    description: "alibi: linearity of the model around each instance, per layer and per class",
    family: "linearity",
    build,
});

/// Whether every row of `output` (rows x values) is a probability vector: non-negative values
/// summing to 1 within 1e-3. How the default model type of a layer is chosen.
pub fn is_probability_vector(output: ArrayView2<'_, f32>) -> bool {
    output.nrows() > 0
        && output.ncols() > 1
        && output.rows().into_iter().all(|r| {
            r.iter().all(|&v| (0.0..=1.0).contains(&v))
                && (r.iter().map(|&v| f64::from(v)).sum::<f64>() - 1.0).abs() < 1e-3
        })
}

/// The instances to measure: flattened inputs with their dataset rows and labels.
#[derive(Debug, Clone, Copy)]
pub struct Instances<'a> {
    /// Instances x features, flattened as the dataset stores them.
    pub inputs: ArrayView2<'a, f32>,
    /// The shape of one input as the dataset stores it (e.g. `[28, 28, 1]`).
    pub data_shape: &'a [usize],
    /// The dataset row of every instance.
    pub indices: &'a [usize],
    /// The label of every instance, where known (for per-class summaries).
    pub labels: Option<&'a [usize]>,
}

/// Options of the computation that do not change its result.
#[derive(Debug, Clone, Copy)]
pub struct Execution {
    /// Rows per model call (each instance needs `nb_samples + 1` rows, pairwise
    /// `2 nb_samples + 1`); memory is bounded by it, not by the number of instances.
    pub batch_size: usize,
}

impl Default for Execution {
    fn default() -> Self {
        Self { batch_size: 256 }
    }
}

/// Instances per model call of [`measure`] with `nb_samples` samples each: every batch of
/// instances but the last has this many, from the first instance on. A run split into parts
/// that start at multiples of it runs exactly the whole run's batches.
pub fn instances_per_batch(agg: Aggregation, nb_samples: usize, execution: Execution) -> usize {
    let per_instance = match agg {
        Aggregation::Global => nb_samples + 1,
        Aggregation::Pairwise => 2 * nb_samples + 1,
    };
    (execution.batch_size / per_instance).max(1)
}

/// Measures the linearity of `layers` of `model` around every instance, every layer from the
/// same forwards, batches running in parallel. `progress` is called with the number of
/// instances finished after each batch.
///
/// # Errors
/// Inputs of another size than the model's, no instances or layers, an unknown layer, a
/// sampler error, or a non-finite linearity (a classifier layer that is not a probability
/// vector, a model that outputs NaN) named by layer and dataset row.
pub fn measure(
    model: &dyn Model,
    spec: &LinearitySpec,
    instances: Instances<'_>,
    perturbations: &dyn Perturbations,
    layers: &[LayerSpec],
    execution: Execution,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<LinearityState> {
    let n = instances.inputs.nrows();
    if n == 0 {
        return Err(LinearityError::Core(nnlens_core::CoreError::Empty("the instances".into())));
    }
    if layers.is_empty() {
        return Err(invalid!("no layers to measure"));
    }
    if instances.indices.len() != n || instances.labels.is_some_and(|l| l.len() != n) {
        return Err(invalid!("instances: {n} inputs but a different number of indices or labels"));
    }
    let features = instances.inputs.ncols();
    let data_len: usize = instances.data_shape.iter().product();
    if data_len != features {
        return Err(invalid!(
            "instances of {features} features cannot have the shape {:?}",
            instances.data_shape
        ));
    }
    let input = &model.structure().input;
    if input.len() != features {
        return Err(nnlens_core::CoreError::Shape {
            what: format!("input '{}'", input.name),
            expected: format!("{} values per sample {:?}", input.len(), input.shape),
            got: format!("{features} values per instance"),
        }
        .into());
    }
    let ns = perturbations.nb_samples();
    let alphas = spec.alphas_for(ns)?;
    let chunk = instances_per_batch(spec.agg, ns, execution);
    let job = Job { model, spec, instances, perturbations, layers, alphas, ns, features };
    // The results are allocated before the chunks run, each chunk writing its rows of every
    // layer: nothing a chunk allocates outlives it. (Small results allocated by the chunks
    // themselves were left between the large buffers the next chunks freed and asked for
    // again, and the heap grew with every chunk: 0.2 to 4 GB for 10,000 instances.)
    let mut per_layer = vec![vec![0.0f64; n]; layers.len()];
    let mut slots: Vec<Vec<&mut [f64]>> =
        (0..n.div_ceil(chunk)).map(|_| Vec::with_capacity(layers.len())).collect();
    for values in &mut per_layer {
        for (slot, part) in slots.iter_mut().zip(values.chunks_mut(chunk)) {
            slot.push(part);
        }
    }
    slots.into_par_iter().enumerate().try_for_each(|(k, mut out)| -> Result<()> {
        let start = k * chunk;
        let end = (start + chunk).min(n);
        job.chunk(start, end, &mut out)?;
        progress(end - start);
        Ok(())
    })?;
    Ok(LinearityState {
        layers: layers.to_vec(),
        indices: instances.indices.to_vec(),
        labels: instances.labels.map(<[usize]>::to_vec),
        values: per_layer,
    })
}

struct Job<'a, 'i> {
    model: &'a dyn Model,
    spec: &'a LinearitySpec,
    instances: Instances<'i>,
    perturbations: &'a dyn Perturbations,
    layers: &'a [LayerSpec],
    alphas: Vec<f64>,
    ns: usize,
    features: usize,
}

impl Job<'_, '_> {
    /// The linearity of instances `start..end`, into `out[layer][instance - start]`.
    fn chunk(&self, start: usize, end: usize, out: &mut [&mut [f64]]) -> Result<()> {
        let (c, ns, f) = (end - start, self.ns, self.features);
        let centres = self.instances.inputs.slice(s![start..end, ..]);
        let ids: Vec<InstanceId> = (start..end)
            .map(|p| InstanceId { position: p, index: self.instances.indices[p] })
            .collect();
        let mut samples = Array3::<f64>::zeros((c, ns, f));
        self.perturbations.fill_batch(&ids, centres, samples.view_mut())?;
        // Rows: the samples (instance-major), then the superpositions (global: one per
        // instance; pairwise: the centres, then one pair per sample).
        let rows = match self.spec.agg {
            Aggregation::Global => c * ns + c,
            Aggregation::Pairwise => c * ns + c + c * ns,
        };
        let mut batch = Array2::<f32>::zeros((rows, f));
        for i in 0..c {
            for s_ in 0..ns {
                batch
                    .row_mut(i * ns + s_)
                    .iter_mut()
                    .zip(samples.slice(s![i, s_, ..]))
                    .for_each(|(b, &v)| *b = v as f32);
            }
        }
        match self.spec.agg {
            Aggregation::Global => {
                for i in 0..c {
                    let mut sum = vec![0.0f64; f];
                    for (s_, &a) in self.alphas.iter().enumerate() {
                        for (acc, &v) in sum.iter_mut().zip(samples.slice(s![i, s_, ..])) {
                            *acc += a * v;
                        }
                    }
                    batch
                        .row_mut(c * ns + i)
                        .iter_mut()
                        .zip(&sum)
                        .for_each(|(b, &v)| *b = v as f32);
                }
            }
            Aggregation::Pairwise => {
                let (a0, a1) = (self.alphas[0], self.alphas[1]);
                for i in 0..c {
                    batch.row_mut(c * ns + i).assign(&centres.row(i));
                    for s_ in 0..ns {
                        let row = c * ns + c + i * ns + s_;
                        batch
                            .row_mut(row)
                            .iter_mut()
                            .zip(centres.row(i).iter().zip(samples.slice(s![i, s_, ..])))
                            .for_each(|(b, (&x, &v))| *b = (a0 * f64::from(x) + a1 * v) as f32);
                    }
                }
            }
        }
        let mut shape = vec![rows];
        shape.extend_from_slice(self.instances.data_shape);
        let input = batch
            .into_shape_with_order(IxDyn(&shape))
            .map_err(|e| invalid!("instances cannot take the shape {shape:?}: {e}"))?;
        let input = conform_input(input, &self.model.structure().input)?;
        let names: Vec<&str> = self.layers.iter().map(|l| l.name.as_str()).collect();
        let outputs = self.model.predict(input.view(), Some(&names))?;
        for (layer, values) in self.layers.iter().zip(out.iter_mut()) {
            let output = outputs.get(&layer.name).ok_or_else(|| {
                invalid!("the model returned no output for layer '{}'", layer.name)
            })?;
            self.layer_values(layer, output.view(), start, rows, values)?;
        }
        Ok(())
    }

    fn layer_values(
        &self,
        layer: &LayerSpec,
        out: ArrayViewD<'_, f32>,
        start: usize,
        rows: usize,
        values: &mut [f64],
    ) -> Result<()> {
        let c = values.len();
        if out.shape().first() != Some(&rows) {
            return Err(invalid!(
                "layer '{}': the model returned an output of shape {:?} for {rows} inputs",
                layer.name,
                out.shape()
            ));
        }
        let width = out.len() / rows;
        let out = out.as_standard_layout();
        let out = out.view().into_shape_with_order((rows, width)).map_err(|e| {
            invalid!("layer '{}': output of shape {:?}: {e}", layer.name, out.shape())
        })?;
        let (ns, g) = (self.ns, layer.model_type);
        let mut diff = vec![0.0f64; width];
        for (i, slot) in values.iter_mut().enumerate() {
            let value = match self.spec.agg {
                Aggregation::Global => {
                    // diff = g(M(sum a v)) - sum a g(M(v))
                    for (d, &v) in diff.iter_mut().zip(out.row(c * ns + i)) {
                        *d = g.apply(v);
                    }
                    for (s_, &a) in self.alphas.iter().enumerate() {
                        for (d, &v) in diff.iter_mut().zip(out.row(i * ns + s_)) {
                            *d -= a * g.apply(v);
                        }
                    }
                    diff.iter().map(|d| d * d).sum::<f64>().sqrt()
                }
                Aggregation::Pairwise => {
                    let (a0, a1) = (self.alphas[0], self.alphas[1]);
                    let centre = out.row(c * ns + i);
                    let mut total = 0.0;
                    for s_ in 0..ns {
                        let pair = out.row(c * ns + c + i * ns + s_);
                        let sample = out.row(i * ns + s_);
                        let mut sq = 0.0;
                        for ((&p, &x), &v) in pair.iter().zip(centre).zip(sample) {
                            let d = g.apply(p) - (a0 * g.apply(x) + a1 * g.apply(v));
                            sq += d * d;
                        }
                        total += sq.sqrt();
                    }
                    total / ns as f64
                }
            };
            if !value.is_finite() {
                let row = self.instances.indices[start + i];
                let hint = match g {
                    ModelType::Classifier => {
                        " (a classifier layer needs probabilities; make it a regressor)"
                    }
                    ModelType::Regressor => "",
                };
                return Err(invalid!(
                    "layer '{}': the linearity of dataset row {row} is {value}{hint}",
                    layer.name
                ));
            }
            *slot = value;
        }
        Ok(())
    }
}

/// Flattens `[samples, ...]` into `[samples, features]` (row-major), as [`Instances`] wants.
///
/// # Errors
/// A 0-D array.
pub fn flatten_rows(x: ArrayViewD<'_, f32>) -> Result<Array2<f32>> {
    let n = x.shape().first().copied().ok_or_else(|| invalid!("cannot flatten a scalar"))?;
    let f = x.len().checked_div(n).unwrap_or_else(|| x.shape()[1..].iter().product());
    x.as_standard_layout()
        .into_owned()
        .into_shape_with_order((n, f))
        .map_err(|e| invalid!("cannot flatten an array of shape {:?}: {e}", x.shape()))
}
