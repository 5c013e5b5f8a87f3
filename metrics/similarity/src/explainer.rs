//! alibi's `GradientSimilarity`: fit on a reference set, explain instances by the reference
//! examples whose loss gradients are most like theirs.

use std::time::Instant;

use ndarray::{Array2, ArrayD, ArrayView2, ArrayViewD, Axis, Ix2, Slice};
use nnlens_core::{GradModel, Loss, Targets};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SimilarityError, invalid};
use crate::scores::{Explanation, Scores, dot_products, scores_from_dots, squared_norms};
use crate::spec::SimilaritySpec;

/// Targets owned by the explainer.
#[derive(Debug, Clone)]
enum OwnedTargets {
    Classes(Vec<usize>),
    Values(Array2<f32>),
}

impl OwnedTargets {
    fn from(t: Targets<'_>) -> Self {
        match t {
            Targets::Classes(c) => OwnedTargets::Classes(c.to_vec()),
            Targets::Values(v) => OwnedTargets::Values(v.to_owned()),
        }
    }

    fn slice(&self, start: usize, end: usize) -> Targets<'_> {
        match self {
            OwnedTargets::Classes(c) => Targets::Classes(&c[start..end]),
            OwnedTargets::Values(v) => {
                Targets::Values(v.slice_axis(Axis(0), Slice::from(start..end)))
            }
        }
    }
}

/// The reference set as fitted.
#[derive(Debug)]
struct Reference {
    len: usize,
    targets: OwnedTargets,
    /// The inputs, kept only to recompute gradients (no precompute).
    inputs: Option<ArrayD<f32>>,
    /// `len x parameters` gradients and their squared norms (precompute).
    gradients: Option<(Array2<f32>, Vec<f64>)>,
}

/// What `fit` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Reference examples.
    pub references: usize,
    /// Parameters per gradient.
    pub parameters: usize,
    /// Whether the reference gradients were computed and stored.
    pub precomputed: bool,
    /// Bytes of the stored gradients (`references x parameters x 4`; 0 without precompute).
    pub gradient_bytes: usize,
    /// Wall time of the fit, in seconds.
    pub seconds: f64,
}

/// Gradient similarity explanations (alibi's `GradientSimilarity`) of a model that gives
/// per-example parameter gradients.
///
/// Gradients are computed per example (batch of 1) in parallel by the model; scores are dot
/// products of the `f32` gradients accumulated in `f64`. With `precompute`, `fit` stores the
/// reference gradients (`n x parameters` `f32`, see [`FitReport::gradient_bytes`]); without,
/// `fit` keeps the reference inputs and every `explain` streams the reference gradients in
/// batches of `batch_size`, so that beyond the inputs memory stays
/// `(instances + batch_size) x parameters` floats.
pub struct GradientSimilarity<'m> {
    model: &'m dyn GradModel,
    spec: SimilaritySpec,
    reference: Option<Reference>,
}

impl std::fmt::Debug for GradientSimilarity<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GradientSimilarity")
            .field("spec", &self.spec)
            .field("references", &self.reference_len())
            .finish_non_exhaustive()
    }
}

impl<'m> GradientSimilarity<'m> {
    /// An explainer of `model` with the parameters of `spec`.
    ///
    /// # Errors
    /// Invalid parameters, or a model without trainable parameters.
    pub fn new(model: &'m dyn GradModel, spec: SimilaritySpec) -> Result<Self> {
        spec.validate()?;
        if model.parameter_count() == 0 {
            return Err(invalid!("the model has no trainable parameters"));
        }
        Ok(Self { model, spec, reference: None })
    }

    /// The parameters.
    pub fn spec(&self) -> &SimilaritySpec {
        &self.spec
    }

    /// The number of reference examples fitted (0 before `fit`).
    pub fn reference_len(&self) -> usize {
        self.reference.as_ref().map_or(0, |r| r.len)
    }

    /// Bytes of the stored reference gradients (0 without precompute or before `fit`).
    pub fn gradient_bytes(&self) -> usize {
        self.reference
            .as_ref()
            .and_then(|r| r.gradients.as_ref())
            .map_or(0, |(g, _)| g.len() * std::mem::size_of::<f32>())
    }

    /// The stored reference gradients (`references x parameters`), with precompute.
    pub fn reference_gradients(&self) -> Option<ArrayView2<'_, f32>> {
        self.reference.as_ref().and_then(|r| r.gradients.as_ref()).map(|(g, _)| g.view())
    }

    fn check_inputs(&self, x: &ArrayViewD<'_, f32>, what: &str) -> Result<usize> {
        let input = &self.model.structure().input;
        if x.ndim() != input.shape.len() + 1 || x.shape()[1..] != input.shape[..] {
            return Err(invalid!(
                "{what} of shape {:?} do not fit the model's input [n, {}]",
                x.shape(),
                input.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
        match x.shape()[0] {
            0 => Err(invalid!("{what} are empty")),
            n => Ok(n),
        }
    }

    fn check_targets(&self, targets: Targets<'_>, n: usize, what: &str) -> Result<()> {
        if targets.len() != n {
            return Err(invalid!("{} {what} targets for {n} examples", targets.len()));
        }
        match (self.spec.loss, targets) {
            (Loss::MeanSquaredError, Targets::Classes(_)) => {
                Err(invalid!("the mean squared error needs real-valued {what} targets"))
            }
            (
                Loss::CrossEntropyFromLogits | Loss::CrossEntropyFromProbabilities,
                Targets::Values(_),
            ) => Err(invalid!("a cross-entropy needs class labels as {what} targets")),
            _ => Ok(()),
        }
    }

    /// Fits the reference set: stores the targets and either the gradients (precompute,
    /// computed `batch_size` examples at a time, each batch in parallel) or the inputs.
    ///
    /// # Errors
    /// Inputs that do not fit the model, targets of another length or kind than the loss needs,
    /// a label outside the model's classes, or a model error (a non-finite gradient...).
    pub fn fit(&mut self, inputs: ArrayViewD<'_, f32>, targets: Targets<'_>) -> Result<FitReport> {
        let started = Instant::now();
        let n = self.check_inputs(&inputs, "reference inputs")?;
        self.check_targets(targets, n, "reference")?;
        self.reference = None;
        let owned = OwnedTargets::from(targets);
        let p = self.model.parameter_count();
        let reference = if self.spec.precompute {
            let mut data: Vec<f32> = Vec::new();
            let values = n.saturating_mul(p);
            data.try_reserve_exact(values).map_err(|_| {
                invalid!(
                    "cannot hold {n} x {p} reference gradients ({:.2} GB): recompute them at each \
                     explain instead (--no-precompute), take the gradients over fewer layers \
                     (--parameters, say the last ones), or use fewer references (--reference)",
                    n as f64 * p as f64 * 4.0 / 1e9
                )
            })?;
            for start in (0..n).step_by(self.spec.batch_size) {
                let end = (start + self.spec.batch_size).min(n);
                let x = inputs.slice_axis(Axis(0), Slice::from(start..end));
                let g =
                    self.model.per_example_gradients(x, owned.slice(start, end), self.spec.loss)?;
                data.extend_from_slice(
                    g.as_slice().ok_or_else(|| invalid!("gradients not in standard layout"))?,
                );
            }
            let gradients = Array2::from_shape_vec((n, p), data).map_err(|e| invalid!("{e}"))?;
            let norms = squared_norms(gradients.view());
            Reference { len: n, targets: owned, inputs: None, gradients: Some((gradients, norms)) }
        } else {
            Reference { len: n, targets: owned, inputs: Some(inputs.to_owned()), gradients: None }
        };
        self.reference = Some(reference);
        let report = FitReport {
            references: n,
            parameters: p,
            precomputed: self.spec.precompute,
            gradient_bytes: self.gradient_bytes(),
            seconds: started.elapsed().as_secs_f64(),
        };
        tracing::debug!(?report, "gradient similarity fitted");
        Ok(report)
    }

    /// The class of every instance as the model predicts it (argmax of its output).
    ///
    /// # Errors
    /// A model error, or an output that is not class scores.
    pub fn predict_classes(&self, inputs: ArrayViewD<'_, f32>) -> Result<Vec<usize>> {
        let out = self.model.output(inputs)?;
        let shape = out.shape().to_vec();
        let out = out.into_dimensionality::<Ix2>().map_err(|_| {
            invalid!("the model's output {shape:?} is not class scores [n, classes]")
        })?;
        Ok(out
            .outer_iter()
            .map(|r| (0..r.len()).fold(0, |b, k| if r[k] > r[b] { k } else { b }))
            .collect())
    }

    /// The scores of every instance against every reference example (the mergeable state of
    /// an explanation), and the classes the instances' gradients were taken for.
    ///
    /// `targets` `None` takes the model's predicted classes (classification losses only).
    ///
    /// # Errors
    /// [`SimilarityError::NotFitted`] before `fit`, and the errors of [`Self::fit`].
    pub fn scores(
        &self,
        inputs: ArrayViewD<'_, f32>,
        targets: Option<Targets<'_>>,
    ) -> Result<(Scores, Vec<usize>)> {
        let reference = self.reference.as_ref().ok_or(SimilarityError::NotFitted)?;
        let n = self.check_inputs(&inputs, "inputs")?;
        let predicted = match targets {
            Some(_) => Vec::new(),
            None if self.spec.loss == Loss::MeanSquaredError => {
                return Err(invalid!(
                    "regression (mean squared error) needs the instances' targets"
                ));
            }
            None => self.predict_classes(inputs.view())?,
        };
        // (Rebuilt, not moved: `Targets` is invariant in its lifetime.)
        let targets = match targets {
            Some(Targets::Classes(c)) => Targets::Classes(c),
            Some(Targets::Values(v)) => Targets::Values(v.reborrow()),
            None => Targets::Classes(&predicted),
        };
        self.check_targets(targets, n, "instance")?;
        let classes = match targets {
            Targets::Classes(c) => c.to_vec(),
            Targets::Values(_) => Vec::new(),
        };
        let loss = self.spec.loss;
        let tests = self.model.per_example_gradients(inputs, targets, loss)?;
        let test_norms = squared_norms(tests.view());
        let sim_fn = self.spec.sim_fn;
        let scores = match (&reference.gradients, &reference.inputs) {
            (Some((g, norms)), _) => {
                let dots = dot_products(tests.view(), g.view())?;
                Scores::from_matrix(sim_fn, &scores_from_dots(sim_fn, &dots, &test_norms, norms))
            }
            (None, Some(x)) => {
                let mut all = Scores { sim_fn, rows: vec![Vec::with_capacity(reference.len); n] };
                for start in (0..reference.len).step_by(self.spec.batch_size) {
                    let end = (start + self.spec.batch_size).min(reference.len);
                    let xs = x.slice_axis(Axis(0), Slice::from(start..end));
                    let g = self.model.per_example_gradients(
                        xs,
                        reference.targets.slice(start, end),
                        loss,
                    )?;
                    let dots = dot_products(tests.view(), g.view())?;
                    let shard =
                        scores_from_dots(sim_fn, &dots, &test_norms, &squared_norms(g.view()));
                    all.append(&Scores::from_matrix(sim_fn, &shard))?;
                }
                all
            }
            (None, None) => unreachable!("a fitted reference keeps its gradients or its inputs"),
        };
        Ok((scores, classes))
    }

    /// Explains every instance: its scores against the reference set, the references ordered
    /// by them (most similar first, ties by lower index), and the `top_k` most and least
    /// similar.
    ///
    /// # Errors
    /// As [`Self::scores`], plus a NaN score.
    pub fn explain(
        &self,
        inputs: ArrayViewD<'_, f32>,
        targets: Option<Targets<'_>>,
    ) -> Result<Explanation> {
        let (scores, classes) = self.scores(inputs, targets)?;
        scores.explain(self.spec.top_k, classes)
    }
}
