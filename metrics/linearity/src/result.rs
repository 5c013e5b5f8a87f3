//! The state of a linearity run (mergeable across shards) and its summaries.

use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::layer::{LayerSpec, ModelType};

/// What a linearity run measured: one value per layer and instance. The state of a shard of a
/// run: [`Self::merge`] joins shards (the values are per instance, so merging is exact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearityState {
    /// The layers, in the order of `values`.
    pub layers: Vec<LayerSpec>,
    /// The dataset row of every instance.
    pub indices: Vec<usize>,
    /// The label of every instance, where known.
    pub labels: Option<Vec<usize>>,
    /// `values[layer][instance]`: the linearity L (0 = linear).
    pub values: Vec<Vec<f64>>,
}

impl LinearityState {
    /// Appends the instances of another shard of the same run.
    ///
    /// # Errors
    /// Shards of different layers or model types, or one with labels and one without.
    pub fn merge(&mut self, other: LinearityState) -> Result<()> {
        if other.layers != self.layers {
            return Err(invalid!("cannot merge linearity runs of different layers"));
        }
        match (&mut self.labels, other.labels) {
            (Some(a), Some(b)) => a.extend(b),
            (None, None) => {}
            _ => return Err(invalid!("cannot merge a run with labels and one without")),
        }
        self.indices.extend(other.indices);
        for (a, b) in self.values.iter_mut().zip(other.values) {
            a.extend(b);
        }
        Ok(())
    }

    /// The number of instances.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether there are no instances.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Summaries per layer and, with labels, per class and layer (histograms of `bins` bins).
    ///
    /// # Errors
    /// No instances, or `bins` 0.
    pub fn summarise(&self, bins: usize) -> Result<LinearityResult> {
        if self.is_empty() {
            return Err(invalid!("a linearity result of no instances"));
        }
        if bins == 0 {
            return Err(invalid!("histograms need at least one bin"));
        }
        let mut classes: Vec<usize> = self.labels.clone().unwrap_or_default();
        classes.sort_unstable();
        classes.dedup();
        let layers = self
            .layers
            .iter()
            .zip(&self.values)
            .map(|(spec, values)| LayerLinearity {
                name: spec.name.clone(),
                model_type: spec.model_type,
                summary: Summary::of(values, bins),
                classes: classes
                    .iter()
                    .map(|&class| {
                        let labels = self.labels.as_deref().unwrap_or_default();
                        let of_class: Vec<f64> = values
                            .iter()
                            .zip(labels)
                            .filter(|(_, l)| **l == class)
                            .map(|(v, _)| *v)
                            .collect();
                        ClassLinearity { class, summary: Summary::of(&of_class, bins) }
                    })
                    .collect(),
            })
            .collect();
        Ok(LinearityResult { instances: self.len(), layers })
    }
}

/// The summaries of a linearity run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearityResult {
    /// The number of instances.
    pub instances: usize,
    /// One entry per layer, in the order asked.
    pub layers: Vec<LayerLinearity>,
}

/// The linearity of one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerLinearity {
    /// The layer.
    pub name: String,
    /// How its output was compared.
    pub model_type: ModelType,
    /// Over all instances.
    pub summary: Summary,
    /// Per class (label), when the instances have labels.
    pub classes: Vec<ClassLinearity>,
}

/// The linearity of one class at one layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassLinearity {
    /// The label.
    pub class: usize,
    /// Over the instances of that label.
    pub summary: Summary,
}

/// The distribution of a set of values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many values.
    pub count: usize,
    /// Their mean.
    pub mean: f64,
    /// Their standard deviation (ddof = 1; 0 for one value).
    pub std: f64,
    /// Smallest.
    pub min: f64,
    /// 5% quantile (linear interpolation, numpy's default).
    pub q05: f64,
    /// 25% quantile.
    pub q25: f64,
    /// Median.
    pub median: f64,
    /// 75% quantile.
    pub q75: f64,
    /// 95% quantile.
    pub q95: f64,
    /// Largest.
    pub max: f64,
    /// Equal-width histogram over `[min, max]`.
    pub histogram: Histogram,
}

/// An equal-width histogram: `counts[i]` values in `[edges[i], edges[i+1])` (the last bin
/// closed), as numpy's `histogram`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// `bins + 1` edges.
    pub edges: Vec<f64>,
    /// `bins` counts.
    pub counts: Vec<usize>,
}

impl Summary {
    /// The summary of `values` (all finite; an empty set gives NaN statistics and an empty
    /// histogram).
    pub fn of(values: &[f64], bins: usize) -> Self {
        let count = values.len();
        if count == 0 {
            return Self {
                count,
                mean: f64::NAN,
                std: f64::NAN,
                min: f64::NAN,
                q05: f64::NAN,
                q25: f64::NAN,
                median: f64::NAN,
                q75: f64::NAN,
                q95: f64::NAN,
                max: f64::NAN,
                histogram: Histogram { edges: Vec::new(), counts: Vec::new() },
            };
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / count as f64;
        let std = if count > 1 {
            (sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (count - 1) as f64).sqrt()
        } else {
            0.0
        };
        let (min, max) = (sorted[0], sorted[count - 1]);
        let (lo, hi) = if min == max { (min - 0.5, max + 0.5) } else { (min, max) };
        let edges: Vec<f64> = (0..=bins).map(|i| lo + (hi - lo) * i as f64 / bins as f64).collect();
        let mut counts = vec![0usize; bins];
        for &v in &sorted {
            let b = (((v - lo) / (hi - lo)) * bins as f64).floor() as usize;
            counts[b.min(bins - 1)] += 1;
        }
        Self {
            count,
            mean,
            std,
            min,
            q05: quantile(&sorted, 0.05),
            q25: quantile(&sorted, 0.25),
            median: quantile(&sorted, 0.5),
            q75: quantile(&sorted, 0.75),
            q95: quantile(&sorted, 0.95),
            max,
            histogram: Histogram { edges, counts },
        }
    }
}

/// The `q` quantile of sorted values, linear interpolation (numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    if i + 1 < sorted.len() { sorted[i] + frac * (sorted[i + 1] - sorted[i]) } else { sorted[i] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_by_hand() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0], 3);
        assert_eq!((s.count, s.mean, s.min, s.max, s.median), (4, 2.5, 1.0, 4.0, 2.5));
        assert!((s.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert!((s.q25 - 1.75).abs() < 1e-15 && (s.q95 - 3.85).abs() < 1e-12);
        assert_eq!(s.histogram.counts, vec![1, 1, 2]);
        assert_eq!(s.histogram.edges, vec![1.0, 2.0, 3.0, 4.0]);
        let one = Summary::of(&[2.0], 2);
        assert_eq!((one.std, one.histogram.counts.clone()), (0.0, vec![0, 1]));
        assert!(Summary::of(&[], 2).mean.is_nan());
    }

    #[test]
    fn shards_merge_to_the_whole() {
        let layer = |n: &str| LayerSpec { name: n.into(), model_type: ModelType::Regressor };
        let whole = LinearityState {
            layers: vec![layer("a"), layer("b")],
            indices: vec![7, 8, 9],
            labels: Some(vec![0, 1, 0]),
            values: vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]],
        };
        let mut a = LinearityState {
            indices: vec![7],
            labels: Some(vec![0]),
            values: vec![vec![1.0], vec![4.0]],
            ..whole.clone()
        };
        let b = LinearityState {
            indices: vec![8, 9],
            labels: Some(vec![1, 0]),
            values: vec![vec![2.0, 3.0], vec![5.0, 6.0]],
            ..whole.clone()
        };
        a.merge(b).unwrap();
        assert_eq!(a, whole);
        let r = whole.summarise(4).unwrap();
        assert_eq!(r.layers[0].classes.len(), 2);
        assert_eq!(r.layers[0].classes[0].summary.mean, 2.0);
        assert_eq!(r.layers[1].classes[1].summary.mean, 5.0);
        let mut c = whole.clone();
        c.layers[0].model_type = ModelType::Classifier;
        assert!(c.merge(whole).is_err());
    }
}
