//! The streaming state of a measure: per layer, sums and moments that one pass over the ST
//! matrix fills and that [`MeasureState::merge`] combines across shards of samples.

use ndarray::{ArrayView2, ArrayView3, ArrayViewD, Axis, Ix3, s};
use nnlens_core::LayerStructure;
use nnlens_core::stats::Moments;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::source::{Order, Pass, StSource, Values, Visitor};
use crate::{InvarianceError, Kind, MeasureSpec, Result};

/// Sums of per-row statistics over completed rows: `sum / rows` is their mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowSums {
    /// Completed rows.
    pub rows: u64,
    /// Per output element, the sum over rows.
    pub sum: Vec<f64>,
}

impl RowSums {
    fn new(len: usize) -> Self {
        Self { rows: 0, sum: vec![0.0; len] }
    }

    fn merge(&mut self, other: &RowSums) -> Result<()> {
        same_len("row sums", self.sum.len(), other.sum.len())?;
        self.rows += other.rows;
        self.sum.iter_mut().zip(&other.sum).for_each(|(a, b)| *a += b);
        Ok(())
    }

    /// The mean over rows (NaN where there were none).
    pub fn mean(&self) -> Vec<f64> {
        self.sum.iter().map(|s| s / self.rows as f64).collect()
    }
}

/// Firing counts of the Goodfellow measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiringCounts {
    /// The threshold of each activation.
    pub threshold: Vec<f64>,
    /// Inputs counted over the whole ST matrix.
    pub cells: u64,
    /// Per activation, how many of them fired (`sign * a > threshold`).
    pub fired: Vec<u64>,
    /// Inputs counted in the global set (identity columns).
    pub global_cells: u64,
    /// Per activation, how many of those fired.
    pub global_fired: Vec<u64>,
}

/// The accumulated statistics of one layer (see the crate docs for what each measure reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerState {
    /// The layer.
    pub layer: LayerStructure,
    /// Per activation, sums over rows of the ddof=1 standard deviation along the row
    /// (tmeasures' transformation variance).
    pub row_std: Option<RowSums>,
    /// The same with the ddof=1 variance (the seed package's).
    pub row_variance: Option<RowSums>,
    /// One [`Moments`] per transformation over the samples (sample variance, ANOVA, thresholds).
    pub columns: Option<Vec<Moments>>,
    /// Mean pairwise distances within each sample's row (transformations), summed over samples.
    pub transformation_distance: Option<RowSums>,
    /// Mean pairwise distances within each transformation's column (samples), summed over
    /// transformations.
    pub sample_distance: Option<RowSums>,
    /// DSES: per channel, sums over cells of the RMS difference with the transformed identity.
    pub dses: Option<RowSums>,
    /// Goodfellow firing counts (second pass).
    pub firing: Option<FiringCounts>,
    #[serde(skip)]
    chunk: Chunk,
}

/// The current row chunk (not part of the mergeable state: passes end on chunk boundaries).
#[derive(Debug, Clone, Default, PartialEq)]
struct Chunk {
    rows: usize,
    /// The samples (rows of the matrix) of the chunk, to name one in errors.
    row_ids: Vec<usize>,
    width: usize,
    moments: Vec<Moments>,
    buffer: Vec<f64>,
    /// Column sums of whole-row blocks not yet added to the column moments.
    pending: PendingColumns,
}

/// The shifted column sums of consecutive whole-row blocks (see
/// [`LayerState::whole_rows_moments`]): one batch of [`Moments::add_batch`] that spans blocks,
/// added to the column moments when it holds [`FLUSH_ROWS`] rows or the pass ends. Each array
/// is laid out tile by tile of activations (tile `t0` of `len` activations: `t0 * cols + j *
/// len + k` for column `j`, activation `t0 + k`), as the tiles of the blocks are read.
#[derive(Debug, Clone, Default, PartialEq)]
struct PendingColumns {
    /// Rows summed (0: none; the next block's first row becomes the shift).
    rows: usize,
    /// The matrix columns of the blocks, in block order.
    columns: Vec<usize>,
    /// Each column's first row (the shift), as `f64`.
    shift: Vec<f64>,
    /// Sums of the values less the shift.
    sum: Vec<f64>,
    /// Sums of their squares.
    squares: Vec<f64>,
}

fn same_len(what: &str, a: usize, b: usize) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(InvarianceError::Invalid(format!("cannot merge {what} of {a} and {b} elements")))
    }
}

fn merge_opt<T>(
    what: &str,
    a: &mut Option<T>,
    b: &Option<T>,
    f: impl FnOnce(&mut T, &T) -> Result<()>,
) -> Result<()> {
    match (a.as_mut(), b) {
        (Some(a), Some(b)) => f(a, b),
        (None, None) => Ok(()),
        _ => Err(InvarianceError::Invalid(format!("cannot merge states: {what} differ"))),
    }
}

/// The indices (into the flattened activation) of each feature map of a feature layer.
pub(crate) fn feature_indices(layer: &LayerStructure) -> Option<Vec<Vec<usize>>> {
    let c = layer.channel_axis.filter(|_| layer.is_feature_layer())?;
    let shape = &layer.shape;
    let strides: Vec<usize> =
        (0..shape.len()).map(|k| shape[k + 1..].iter().product::<usize>()).collect();
    let mut maps = vec![Vec::with_capacity(layer.number_activations() / shape[c]); shape[c]];
    for flat in 0..layer.number_activations() {
        let channel = (flat / strides[c]) % shape[c];
        maps[channel].push(flat);
    }
    Some(maps)
}

impl LayerState {
    fn new(layer: &LayerStructure, spec: &MeasureSpec, transformations: usize) -> Self {
        let a = layer.number_activations();
        let distance_len = distance_len(layer, spec);
        let needs = spec.kind.needs();
        Self {
            layer: layer.clone(),
            row_std: needs.row_moments.then(|| RowSums::new(a)),
            row_variance: needs.row_moments.then(|| RowSums::new(a)),
            columns: needs.column_moments.then(|| vec![Moments::new(a); transformations]),
            transformation_distance: needs
                .transformation_distance
                .then(|| RowSums::new(distance_len)),
            sample_distance: needs.sample_distance.then(|| RowSums::new(distance_len)),
            dses: needs
                .dses
                .then(|| RowSums::new(feature_indices(layer).map_or(0, |maps| maps.len()))),
            firing: None,
            chunk: Chunk::default(),
        }
    }

    fn merge(&mut self, other: &LayerState) -> Result<()> {
        if self.layer != other.layer {
            return Err(InvarianceError::Invalid(format!(
                "cannot merge states of layers {} and {}",
                self.layer.name, other.layer.name
            )));
        }
        merge_opt("row statistics", &mut self.row_std, &other.row_std, RowSums::merge)?;
        merge_opt("row statistics", &mut self.row_variance, &other.row_variance, RowSums::merge)?;
        merge_opt("column statistics", &mut self.columns, &other.columns, |a, b| {
            same_len("columns", a.len(), b.len())?;
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y)?;
            }
            Ok(())
        })?;
        merge_opt(
            "transformation distances",
            &mut self.transformation_distance,
            &other.transformation_distance,
            RowSums::merge,
        )?;
        if self.sample_distance.is_some() || other.sample_distance.is_some() {
            return Err(InvarianceError::Invalid(
                "sample distances pair every two samples of a column: states of different \
                 samples cannot be merged (run sdi/ndi/sdse/ndse on all samples at once)"
                    .into(),
            ));
        }
        merge_opt("DSES sums", &mut self.dses, &other.dses, RowSums::merge)?;
        merge_opt("firing counts", &mut self.firing, &other.firing, |a, b| {
            if a.threshold != b.threshold {
                return Err(InvarianceError::Invalid(
                    "cannot merge firing counts made with different thresholds".into(),
                ));
            }
            a.cells += b.cells;
            a.global_cells += b.global_cells;
            a.fired.iter_mut().zip(&b.fired).for_each(|(x, y)| *x += y);
            a.global_fired.iter_mut().zip(&b.global_fired).for_each(|(x, y)| *x += y);
            Ok(())
        })?;
        Ok(())
    }
}

/// The number of values a distance measure gives for `layer`: one per feature map with
/// `keep_shape`, else one per activation.
pub(crate) fn distance_len(layer: &LayerStructure, spec: &MeasureSpec) -> usize {
    match feature_indices(layer) {
        Some(maps) if spec.parameters.keep_shape => maps.len(),
        _ => layer.number_activations(),
    }
}

/// The mergeable state of a measure over the samples seen so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureState {
    /// The measure.
    pub spec: MeasureSpec,
    /// Samples accumulated.
    pub samples: usize,
    /// Transformations (columns) of the matrix.
    pub transformations: usize,
    /// The columns whose transformation is the identity.
    pub identity_transformations: Vec<usize>,
    /// One state per layer.
    pub layers: Vec<LayerState>,
}

impl MeasureState {
    /// Streams `source` once per pass the measure needs and returns the accumulated state.
    ///
    /// # Errors
    /// An empty matrix, a measure that the source cannot serve (same-equivariance without
    /// transformations, DSES or Goodfellow without an identity column), and the source's errors.
    pub fn accumulate(spec: &MeasureSpec, source: &mut dyn StSource) -> Result<Self> {
        spec.validate()?;
        let (samples, transformations) = (source.samples(), source.transformations());
        if samples == 0 || transformations == 0 {
            return Err(InvarianceError::Invalid(format!(
                "the samples x transformations matrix is empty ({samples} x {transformations})"
            )));
        }
        if source.layers().is_empty() {
            return Err(InvarianceError::Invalid("no layers to measure".into()));
        }
        let layers: Vec<LayerState> =
            source.layers().iter().map(|l| LayerState::new(l, spec, transformations)).collect();
        let mut state = Self {
            spec: spec.clone(),
            samples,
            transformations,
            identity_transformations: source.identity_transformations(),
            layers,
        };
        let needs = spec.kind.needs();
        let inverse = spec.kind.same_equivariance();
        if needs.goodfellow_global_identity && state.identity_transformations.is_empty() {
            return Err(InvarianceError::Invalid(format!(
                "{} takes its thresholds from the untransformed samples: the transformations \
                 must include the identity",
                spec.kind.name()
            )));
        }
        if needs.row_moments || needs.column_moments {
            state.run(source, Pass::samples_first(inverse), Work::Moments)?;
        }
        if needs.transformation_distance {
            let pass = Pass { whole_rows: true, ..Pass::samples_first(inverse) };
            state.run(source, pass, Work::Distance(Order::SamplesFirst))?;
        }
        if needs.sample_distance {
            let pass = Pass {
                order: Order::TransformationsFirst,
                inverse,
                whole_rows: true,
                reference: false,
            };
            state.run(source, pass, Work::Distance(Order::TransformationsFirst))?;
        }
        if needs.dses {
            let pass = Pass { whole_rows: true, reference: true, ..Pass::samples_first(false) };
            state.run(source, pass, Work::Dses)?;
        }
        if needs.firing {
            state.set_thresholds()?;
            state.run(source, Pass::samples_first(inverse), Work::Firing)?;
        }
        Ok(state)
    }

    /// Adds the state of other samples (a shard) of the same measure, layers and
    /// transformations.
    ///
    /// # Errors
    /// [`InvarianceError::Invalid`] when the two states do not describe the same measurement.
    pub fn merge(&mut self, other: &MeasureState) -> Result<()> {
        if self.spec != other.spec
            || self.transformations != other.transformations
            || self.identity_transformations != other.identity_transformations
            || self.layers.len() != other.layers.len()
        {
            return Err(InvarianceError::Invalid(
                "cannot merge states of different measures, parameters, layers or \
                 transformations"
                    .into(),
            ));
        }
        for (a, b) in self.layers.iter_mut().zip(&other.layers) {
            a.merge(b)?;
        }
        self.samples += other.samples;
        Ok(())
    }

    fn run(&mut self, source: &mut dyn StSource, pass: Pass, work: Work) -> Result<()> {
        let identities = self.identity_transformations.clone();
        let mut visitor = PassVisitor {
            layers: &mut self.layers,
            work,
            sign: self.spec.parameters.sign,
            normalize: self.spec.parameters.normalize,
            keep_shape: self.spec.parameters.keep_shape,
            identities: &identities,
        };
        source.stream(pass, &mut visitor)?;
        // The column sums of the last whole-row blocks (every value was checked as its block
        // was added, so only sums beyond f64 fail here).
        let flushed: Vec<bool> =
            self.layers.par_iter_mut().map(LayerState::flush_columns).collect();
        match flushed.iter().position(|ok| !ok) {
            Some(l) => Err(InvarianceError::Invalid(format!(
                "layer {}: a non-finite column statistic from finite activations",
                self.layers[l].layer.name
            ))),
            None => Ok(()),
        }
    }

    /// Thresholds from the column moments: over the identity columns (Goodfellow, as
    /// tmeasures' PyTorch version) or all columns (GoodfellowNormal, as its numpy version).
    fn set_thresholds(&mut self) -> Result<()> {
        let p = &self.spec.parameters;
        let z = crate::special::normal_quantile(p.alpha)?;
        let identity_only = self.spec.kind == Kind::Goodfellow;
        for layer in &mut self.layers {
            let columns = layer.columns.as_ref().expect("goodfellow accumulates columns");
            let mut global = Moments::new(layer.layer.number_activations());
            for (t, m) in columns.iter().enumerate() {
                if !identity_only || self.identity_transformations.contains(&t) {
                    global.merge(m)?;
                }
            }
            let std = global.std(1);
            let threshold = global
                .mean()
                .iter()
                .zip(&std)
                .map(|(&mean, &sd)| {
                    let mu = p.sign * mean;
                    if identity_only {
                        // tmeasures' NormalPValueThreshold: sd floored at 1e-16.
                        mu + sd.max(1e-16) * z
                    } else if sd > 0.0 {
                        mu + sd * z
                    } else {
                        // scipy's norm.ppf with scale 0 is undefined; tmeasures uses the mean.
                        mu
                    }
                })
                .collect();
            let a = layer.layer.number_activations();
            layer.firing = Some(FiringCounts {
                threshold,
                cells: 0,
                fired: vec![0; a],
                global_cells: 0,
                global_fired: vec![0; a],
            });
        }
        Ok(())
    }
}

/// What a pass accumulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Moments,
    Distance(Order),
    Dses,
    Firing,
}

struct PassVisitor<'s> {
    layers: &'s mut [LayerState],
    work: Work,
    sign: f64,
    normalize: bool,
    keep_shape: bool,
    identities: &'s [usize],
}

macro_rules! with_values {
    ($v:expr, |$a:ident| $body:expr) => {
        match $v {
            Values::F32($a) => $body,
            Values::F64($a) => $body,
        }
    };
}

/// Whether [`Moments::add_batch`] took its batch: `false` when it refused a NaN or infinite
/// value (the caller names it), its other errors as they are.
fn accepted(added: nnlens_core::Result<()>) -> Result<bool> {
    match added {
        Err(nnlens_core::CoreError::NonFinite { .. }) => Ok(false),
        other => Ok(other.map(|()| true)?),
    }
}

/// `[rows, columns, ...act]` as `[rows, columns, activations]` (a view when contiguous).
fn as_3d<'a, T: Clone>(
    a: &'a ArrayViewD<'a, T>,
    activations: usize,
) -> Result<ndarray::CowArray<'a, T, Ix3>> {
    let (h, w) = (a.shape()[0], a.shape()[1]);
    a.to_shape((h, w, activations))
        .map_err(|e| InvarianceError::Invalid(format!("activations of shape {:?}: {e}", a.shape())))
}

impl Visitor for PassVisitor<'_> {
    fn begin_rows(&mut self, rows: &[usize], columns: usize) -> Result<()> {
        let work = self.work;
        for layer in self.layers.iter_mut() {
            let a = layer.layer.number_activations();
            let chunk = &mut layer.chunk;
            chunk.rows = rows.len();
            chunk.row_ids.clear();
            chunk.row_ids.extend_from_slice(rows);
            chunk.width = columns;
            match work {
                // Made by the first block that does not hold whole rows (see add_block).
                Work::Moments => chunk.moments.clear(),
                Work::Distance(_) => {
                    chunk.buffer.clear();
                    chunk.buffer.resize(rows.len() * columns * a, 0.0);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn block(
        &mut self,
        columns: &[usize],
        layers: &[Values<'_>],
        reference: Option<&[Values<'_>]>,
    ) -> Result<()> {
        if layers.len() != self.layers.len() {
            return Err(InvarianceError::Invalid(format!(
                "a block has {} layers, the measure {}",
                layers.len(),
                self.layers.len()
            )));
        }
        let (work, sign, normalize, identities) =
            (self.work, self.sign, self.normalize, self.identities);
        // Every layer's outcome, then the first error in layer order: the error a user sees
        // (the first layer with a non-finite value) does not depend on which thread was first.
        let outcomes: Vec<Result<()>> = self
            .layers
            .par_iter_mut()
            .zip(layers.par_iter())
            .enumerate()
            .map(|(l, (state, values))| -> Result<()> {
                let reference = reference.map(|r| &r[l]);
                with_values!(values, |a| state
                    .add_block(work, columns, a, reference, sign, normalize, identities))
            })
            .collect();
        outcomes.into_iter().collect()
    }

    fn end_rows(&mut self) -> Result<()> {
        let (work, normalize, keep_shape) = (self.work, self.normalize, self.keep_shape);
        let outcomes: Vec<Result<()>> = self
            .layers
            .par_iter_mut()
            .map(|state| state.end_rows(work, normalize, keep_shape))
            .collect();
        outcomes.into_iter().collect()
    }
}

impl LayerState {
    #[allow(clippy::too_many_arguments)]
    fn add_block<T: Copy + Into<f64> + Send + Sync>(
        &mut self,
        work: Work,
        columns: &[usize],
        values: &ArrayViewD<'_, T>,
        reference: Option<&Values<'_>>,
        sign: f64,
        normalize: bool,
        identities: &[usize],
    ) -> Result<()> {
        let n = self.layer.number_activations();
        let expected: Vec<usize> = [self.chunk.rows, columns.len()]
            .into_iter()
            .chain(self.layer.shape.iter().copied())
            .collect();
        if values.shape() != expected.as_slice() {
            return Err(InvarianceError::Invalid(format!(
                "layer {}: a block of shape {:?}, expected {:?}",
                self.layer.name,
                values.shape(),
                expected
            )));
        }
        let a = as_3d(values, n)?;
        // Every path checks for NaN and infinities as it goes, at the cost of a test per
        // accumulated element, not per value: a non-finite value leaves a non-finite sum.
        // Only then is the block searched for the first one, to name it.
        // Rows are transformations in the sample-distance pass.
        let transposed = matches!(work, Work::Distance(Order::TransformationsFirst));
        let non_finite = |state: &LayerState| {
            state.non_finite(a.view(), columns, transposed).unwrap_or_else(|| {
                InvarianceError::Invalid(format!(
                    "layer {}: a non-finite statistic from finite activations",
                    state.layer.name
                ))
            })
        };
        match work {
            Work::Moments
                if columns.len() == self.chunk.width
                    && self.chunk.moments.is_empty()
                    && (self.row_std.is_some() || self.columns.is_some()) =>
            {
                if let Some(data) = a.as_slice() {
                    let (rows, cols) = (self.chunk.rows, columns.len());
                    if !self.whole_rows_moments(data, rows, cols, n, columns) {
                        return Err(non_finite(self));
                    }
                    return Ok(());
                }
                self.moments_block(&a.view(), columns, &non_finite)?;
            }
            Work::Moments => self.moments_block(&a.view(), columns, &non_finite)?,
            Work::Distance(_) => {
                let width = self.chunk.width;
                // 0 for finite values, NaN for any other: NaN once one is seen.
                let mut check = 0.0f64;
                for i in 0..self.chunk.rows {
                    for (j, &c) in columns.iter().enumerate() {
                        let at = (i * width + c) * n;
                        let dst = &mut self.chunk.buffer[at..at + n];
                        for (d, &v) in dst.iter_mut().zip(a.slice(s![i, j, ..])) {
                            *d = v.into();
                            check += *d * 0.0;
                        }
                    }
                }
                if check.is_nan() {
                    return Err(non_finite(self));
                }
            }
            Work::Dses => {
                let Some(maps) = feature_indices(&self.layer) else { return Ok(()) };
                let reference = reference.ok_or_else(|| {
                    InvarianceError::Invalid("DSES needs the transformed identity".into())
                })?;
                let sums = self.dses.as_mut().expect("dses state");
                with_values!(reference, |r| {
                    let r = as_3d(r, n)?;
                    dses_block(sums, &maps, a.view(), r.view(), normalize);
                });
                // (The run ends with the error, so the spoilt sums are never used. Normalised
                // DSES of an all-zero map is NaN by its formula, from finite activations: no
                // error then. A bad reference is the same model's output, seen in its turn.)
                if sums.sum.iter().any(|v| !v.is_finite())
                    && let Some(e) = self.non_finite(a.view(), columns, false)
                {
                    return Err(e);
                }
            }
            Work::Firing => {
                let firing = self.firing.as_mut().expect("thresholds set");
                for (j, &c) in columns.iter().enumerate() {
                    let global = identities.contains(&c);
                    for row in a.slice(s![.., j, ..]).rows() {
                        firing.cells += 1;
                        if global {
                            firing.global_cells += 1;
                        }
                        for (k, &v) in row.iter().enumerate() {
                            if sign * v.into() > firing.threshold[k] {
                                firing.fired[k] += 1;
                                if global {
                                    firing.global_fired[k] += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds a block to the row and column moments (any block: rows may span several).
    fn moments_block<T: Copy + Into<f64>>(
        &mut self,
        a: &ArrayView3<'_, T>,
        columns: &[usize],
        non_finite: &dyn Fn(&LayerState) -> InvarianceError,
    ) -> Result<()> {
        // The column sums of earlier whole-row blocks go first, as the batches come.
        if !self.flush_columns() {
            return Err(non_finite(self));
        }
        if self.row_std.is_some() {
            if self.chunk.moments.is_empty() {
                let n = self.layer.number_activations();
                self.chunk.moments = vec![Moments::new(n); self.chunk.rows];
            }
            for i in 0..self.chunk.rows {
                if !accepted(self.chunk.moments[i].add_batch(a.slice(s![i, .., ..])))? {
                    return Err(non_finite(self));
                }
            }
        }
        for (j, &c) in columns.iter().enumerate() {
            let Some(cols) = self.columns.as_mut() else { break };
            if !accepted(cols[c].add_batch(a.slice(s![.., j, ..])))? {
                return Err(non_finite(self));
            }
        }
        Ok(())
    }

    /// The moments of a block that holds whole rows (`data`: `[rows, cols, n]`, row-major): each
    /// row's ddof=1 variance along the row goes straight into the row sums, and each column's
    /// shifted sums into the pending column sums ([`PendingColumns`]), which are added to the
    /// column moments every [`FLUSH_ROWS`] rows and at the end of the pass. The arithmetic of
    /// each element is exactly that of [`Moments::add_batch`] on the row, and on the column's
    /// rows since the last flush, so the row sums are bitwise those of the general path and
    /// the column moments those of batches of that many rows; the block is read from memory
    /// once, in one pass, tile by tile of activations (see [`Self::whole_rows_moments_any`]),
    /// and no block merges or zeroes per-column buffers. `false` when a statistic is not
    /// finite (a NaN or infinite value).
    ///
    /// It runs with the widest vectors the CPU has (the crate is built for the baseline
    /// x86-64, two f64 lanes); every element's arithmetic is the same whatever the width (no
    /// fused multiply-add), so are the results.
    fn whole_rows_moments<T: Copy + Into<f64>>(
        &mut self,
        data: &[T],
        rows: usize,
        cols: usize,
        n: usize,
        columns: &[usize],
    ) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F.
                return unsafe { self.whole_rows_moments_avx512(data, rows, cols, n, columns) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                return unsafe { self.whole_rows_moments_avx2(data, rows, cols, n, columns) };
            }
        }
        self.whole_rows_moments_any(data, rows, cols, n, columns)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn whole_rows_moments_avx512<T: Copy + Into<f64>>(
        &mut self,
        data: &[T],
        rows: usize,
        cols: usize,
        n: usize,
        columns: &[usize],
    ) -> bool {
        self.whole_rows_moments_any(data, rows, cols, n, columns)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn whole_rows_moments_avx2<T: Copy + Into<f64>>(
        &mut self,
        data: &[T],
        rows: usize,
        cols: usize,
        n: usize,
        columns: &[usize],
    ) -> bool {
        self.whole_rows_moments_any(data, rows, cols, n, columns)
    }

    /// [`Self::whole_rows_moments`] for any CPU; inlined into each vector width's copy.
    ///
    /// One pass over the block: each value, shifted by its column's first row (since the last
    /// flush) and by its row's first column, is added to the shifted sums and sums of squares
    /// of both (see [`Moments::add_batch`]). A tile of activations is [`GROUP`]s of them; a
    /// row's sums of a group stay in registers while the row's columns go by, the tile's
    /// column shifts and sums in the L1 cache, and the block streams from memory once.
    #[inline(always)]
    fn whole_rows_moments_any<T: Copy + Into<f64>>(
        &mut self,
        data: &[T],
        rows: usize,
        cols: usize,
        n: usize,
        columns: &[usize],
    ) -> bool {
        let col_stats = self.columns.is_some();
        if col_stats && self.chunk.pending.rows > 0 && self.chunk.pending.columns != columns {
            // Other columns than the pending sums': those first.
            if !self.flush_columns() {
                return false;
            }
        }
        let pending = &mut self.chunk.pending;
        let tile = tile_len(cols);
        let fresh = col_stats && pending.rows == 0;
        if fresh {
            pending.columns.clear();
            pending.columns.extend_from_slice(columns);
            for v in [&mut pending.shift, &mut pending.sum, &mut pending.squares] {
                v.clear();
                v.resize(cols * n, 0.0);
            }
        }
        let (col_shift, col_s, col_q) = if col_stats {
            (&mut pending.shift[..], &mut pending.sum[..], &mut pending.squares[..])
        } else {
            (&mut [][..], &mut [][..], &mut [][..])
        };
        let mut row_sums = match (self.row_std.as_mut(), self.row_variance.as_mut()) {
            (Some(std), Some(var)) => Some((std, var)),
            _ => None,
        };
        // Whether a statistic was not finite. An `or` of flags, not a sum: a floating-point
        // sum is an ordered reduction, which kept the loops below on one lane at a time.
        let mut bad = false;
        let k_cols = cols as f64;
        // Moments::variance(1): NaN with a single observation.
        let row_ddof = if cols <= 1 { f64::NAN } else { (cols - 1) as f64 };
        for t0 in (0..n).step_by(tile) {
            let len = tile.min(n - t0);
            let at_tile = t0 * cols..t0 * cols + cols * len;
            let (shift, cs, cq) = if col_stats {
                (&mut col_shift[at_tile.clone()], &mut col_s[at_tile.clone()], &mut col_q[at_tile])
            } else {
                (&mut [][..], &mut [][..], &mut [][..])
            };
            if fresh {
                for j in 0..cols {
                    let first = &data[j * n + t0..j * n + t0 + len];
                    for (d, &v) in shift[j * len..(j + 1) * len].iter_mut().zip(first) {
                        *d = v.into();
                    }
                }
            }
            for i in 0..rows {
                let mut k = 0;
                while k < len {
                    let at = Group { data, row: i, cols, n, offset: t0 + k };
                    let (s, q) = if len - k >= GROUP {
                        if col_stats {
                            at.sums::<GROUP, true>(shift, cs, cq, len, k)
                        } else {
                            at.sums::<GROUP, false>(&[], &mut [], &mut [], len, k)
                        }
                    } else if col_stats {
                        let (s, q) = at.sums::<1, true>(shift, cs, cq, len, k);
                        ([s[0]; GROUP], [q[0]; GROUP])
                    } else {
                        let (s, q) = at.sums::<1, false>(&[], &mut [], &mut [], len, k);
                        ([s[0]; GROUP], [q[0]; GROUP])
                    };
                    let g = if len - k >= GROUP { GROUP } else { 1 };
                    if let Some((std, var)) = row_sums.as_mut() {
                        let at = t0 + k;
                        let (std, var) = (&mut std.sum[at..at + g], &mut var.sum[at..at + g]);
                        bad |= if g == GROUP {
                            add_row_std::<GROUP>(std, var, &s, &q, k_cols, row_ddof)
                        } else {
                            add_row_std::<1>(std, var, &s[..1], &q[..1], k_cols, row_ddof)
                        };
                    }
                    k += g;
                }
            }
            // A non-finite value leaves its column's sum of squares non-finite.
            bad |= cq.iter().fold(false, |b, q| b | !q.is_finite());
        }
        if bad {
            return false;
        }
        if let Some((std, var)) = row_sums {
            std.rows += rows as u64;
            var.rows += rows as u64;
        }
        if col_stats {
            self.chunk.pending.rows += rows;
            if self.chunk.pending.rows >= FLUSH_ROWS {
                return self.flush_columns();
            }
        }
        true
    }

    /// Adds the pending column sums of whole-row blocks to the column moments, as one batch of
    /// [`Moments::add_batch`]: mean = shift + sum / k, M2 = squares - sum^2 / k (clamped at
    /// zero). `false` when a statistic is not finite.
    fn flush_columns(&mut self) -> bool {
        let pending = &mut self.chunk.pending;
        let (Some(moments), rows) = (self.columns.as_mut(), pending.rows) else { return true };
        if rows == 0 {
            return true;
        }
        let (cols, n) = (pending.columns.len(), self.layer.number_activations());
        let tile = tile_len(cols);
        let k_rows = rows as f64;
        let mut bad = false;
        let (mut mean, mut m2) = (vec![0.0f64; n], vec![0.0f64; n]);
        for (j, &c) in pending.columns.iter().enumerate() {
            for t0 in (0..n).step_by(tile) {
                let len = tile.min(n - t0);
                let at = t0 * cols + j * len..t0 * cols + (j + 1) * len;
                let (f, s, q) =
                    (&pending.shift[at.clone()], &pending.sum[at.clone()], &pending.squares[at]);
                let (mean, m2) = (&mut mean[t0..t0 + len], &mut m2[t0..t0 + len]);
                for ((((mean, m2), &f), &s), &q) in mean.iter_mut().zip(m2).zip(f).zip(s).zip(q) {
                    let raw = q - s * s / k_rows;
                    bad |= !raw.is_finite();
                    *mean = f + s / k_rows;
                    *m2 = raw.max(0.0);
                }
            }
            if bad || moments[c].add_summary(rows as u64, &mean, &m2).is_err() {
                return false;
            }
        }
        pending.rows = 0;
        pending.sum.fill(0.0);
        pending.squares.fill(0.0);
        true
    }

    /// The error naming the first non-finite value of a block (`[rows, columns, activations]`
    /// of the current chunk's rows and of `columns`; rows are transformations when
    /// `transposed`), in row-major order; `None` when all are finite.
    fn non_finite<T: Copy + Into<f64>>(
        &self,
        a: ArrayView3<'_, T>,
        columns: &[usize],
        transposed: bool,
    ) -> Option<InvarianceError> {
        let (h, w, _) = a.dim();
        let (i, j, value) =
            (0..h).flat_map(|i| (0..w).map(move |j| (i, j))).find_map(|(i, j)| {
                let mut values = a.slice(s![i, j, ..]).into_iter().map(|&v| v.into());
                values.find(|v: &f64| !v.is_finite()).map(|v| (i, j, v))
            })?;
        let (row, column) =
            (self.chunk.row_ids.get(i).copied().unwrap_or(i), columns.get(j).copied().unwrap_or(j));
        let (sample, transformation) = if transposed { (column, row) } else { (row, column) };
        Some(InvarianceError::NonFinite {
            layer: self.layer.name.clone(),
            sample,
            transformation,
            value,
        })
    }

    fn end_rows(&mut self, work: Work, normalize: bool, keep_shape: bool) -> Result<()> {
        match work {
            Work::Moments => {
                if let (Some(std_sums), Some(var_sums)) =
                    (self.row_std.as_mut(), self.row_variance.as_mut())
                {
                    for m in self.chunk.moments.drain(..) {
                        let variance = m.variance(1);
                        for ((s, v), &x) in
                            std_sums.sum.iter_mut().zip(var_sums.sum.iter_mut()).zip(&variance)
                        {
                            *s += x.sqrt();
                            *v += x;
                        }
                        std_sums.rows += 1;
                        var_sums.rows += 1;
                    }
                }
            }
            Work::Distance(order) => {
                let n = self.layer.number_activations();
                let maps = if keep_shape { feature_indices(&self.layer) } else { None };
                let sums = match order {
                    Order::SamplesFirst => self.transformation_distance.as_mut(),
                    Order::TransformationsFirst => self.sample_distance.as_mut(),
                }
                .expect("distance state");
                let width = self.chunk.width;
                let mut scratch = Vec::with_capacity(width);
                for i in 0..self.chunk.rows {
                    let row = &self.chunk.buffer[i * width * n..(i + 1) * width * n];
                    let row = ArrayView2::from_shape((width, n), row).expect("buffer size");
                    match &maps {
                        Some(maps) => {
                            for (c, idx) in maps.iter().enumerate() {
                                sums.sum[c] += mean_pairwise_vector_distance(row, idx, normalize);
                            }
                        }
                        None => {
                            for (k, col) in row.axis_iter(Axis(1)).enumerate() {
                                scratch.clear();
                                scratch.extend(col.iter().copied());
                                sums.sum[k] += mean_pairwise_abs_difference(&mut scratch);
                            }
                        }
                    }
                    sums.rows += 1;
                }
            }
            Work::Dses | Work::Firing => {}
        }
        Ok(())
    }
}

/// Adds the ddof=1 standard deviation and variance of `G` activations of one row, from their
/// shifted sums `s` and sums of squares `q` over the row's `k_cols` values (`row_ddof` =
/// `k_cols - 1`, or NaN for a single value), to the row sums `std` and `var`: the arithmetic
/// of [`Moments::add_batch`] then [`Moments::variance`]. `true` when a statistic is not
/// finite. Its own function of a constant `G`, so that the loop runs on whole vectors.
#[inline(always)]
fn add_row_std<const G: usize>(
    std: &mut [f64],
    var: &mut [f64],
    s: &[f64],
    q: &[f64],
    k_cols: f64,
    row_ddof: f64,
) -> bool {
    let (std, var): (&mut [f64; G], &mut [f64; G]) =
        (std.try_into().expect("G sums"), var.try_into().expect("G sums"));
    let (s, q): (&[f64; G], &[f64; G]) = (s.try_into().expect("G"), q.try_into().expect("G"));
    let mut bad = false;
    for e in 0..G {
        let raw = q[e] - s[e] * s[e] / k_cols;
        bad |= !raw.is_finite();
        let x = raw.max(0.0) / row_ddof;
        std[e] += x.sqrt();
        var[e] += x;
    }
    bad
}

/// Activations a row's sums keep in registers at a time in
/// [`LayerState::whole_rows_moments`] (four vectors of four `f64`, or two of eight).
const GROUP: usize = 16;

/// The most activations per tile of [`LayerState::whole_rows_moments`].
const MAX_TILE: usize = 256;

/// Rows of whole-row blocks whose column sums are added to the column moments at once: the
/// shifted sums then lose at most log2(FLUSH_ROWS + 1) of their 53 bits (see
/// [`Moments::add_batch`]), and the cost of adding them is spread over that many rows.
const FLUSH_ROWS: usize = 256;

/// Activations per tile for blocks of `cols` columns: the tile's column shifts and sums (three
/// `f64` per column and activation) take 24 KiB, three quarters of a small L1 cache; a
/// multiple of [`GROUP`].
fn tile_len(cols: usize) -> usize {
    (24 * 1024 / (24 * cols.max(1))).clamp(GROUP, MAX_TILE) / GROUP * GROUP
}

/// The values of one row of a whole-rows block (`[rows, cols, n]`, row-major) at the
/// activations `offset..offset + G` of every column.
struct Group<'d, T> {
    data: &'d [T],
    row: usize,
    cols: usize,
    n: usize,
    offset: usize,
}

impl<T: Copy + Into<f64>> Group<'_, T> {
    /// The row's shifted sum and sum of squares of its `G` activations over its columns (each
    /// value less the row's first column's), returned; with `COLS`, each value less its
    /// column's shift (`col_shift[j * len + k..]`, of a tile of `len`) added to the column's
    /// sums (`col_s`, `col_q`, the same places). The arithmetic of [`Moments::add_batch`],
    /// element by element, whatever `G`.
    #[inline(always)]
    fn sums<const G: usize, const COLS: bool>(
        &self,
        col_shift: &[f64],
        col_s: &mut [f64],
        col_q: &mut [f64],
        len: usize,
        k: usize,
    ) -> ([f64; G], [f64; G]) {
        let Self { data, row, cols, n, offset } = *self;
        let base = row * cols * n + offset;
        let shift = &data[base..base + G];
        let mut shift_f64 = [0.0f64; G];
        for (d, &v) in shift_f64.iter_mut().zip(shift) {
            *d = v.into();
        }
        let (mut s, mut q) = ([0.0f64; G], [0.0f64; G]);
        for j in 0..cols {
            let v = &data[base + j * n..base + j * n + G];
            if COLS {
                let first = &col_shift[j * len + k..j * len + k + G];
                let cs = &mut col_s[j * len + k..j * len + k + G];
                let cq = &mut col_q[j * len + k..j * len + k + G];
                for e in 0..G {
                    let x: f64 = v[e].into();
                    let dc = x - first[e];
                    cs[e] += dc;
                    cq[e] += dc * dc;
                    let dr = x - shift_f64[e];
                    s[e] += dr;
                    q[e] += dr * dr;
                }
            } else {
                for e in 0..G {
                    let dr = v[e].into() - shift_f64[e];
                    s[e] += dr;
                    q[e] += dr * dr;
                }
            }
        }
        (s, q)
    }
}

/// The mean of `|x_i - x_j|` over the `n (n - 1) / 2` pairs (NaN for fewer than two values).
/// Small rows sum the pairs directly; longer ones sort and weight (O(n log n)).
pub(crate) fn mean_pairwise_abs_difference(x: &mut [f64]) -> f64 {
    let n = x.len();
    let pairs = (n * n.saturating_sub(1) / 2) as f64;
    let mut total = 0.0;
    if n <= 64 {
        for i in 0..n {
            for j in i + 1..n {
                total += (x[i] - x[j]).abs();
            }
        }
    } else {
        x.sort_unstable_by(f64::total_cmp);
        for (i, &v) in x.iter().enumerate() {
            total += v * (2.0 * i as f64 - n as f64 + 1.0);
        }
    }
    total / pairs
}

/// The mean Euclidean distance over pairs of rows of `row` restricted to the elements `idx`
/// (one feature map per item); with `normalize`, each vector is divided by its L2 norm first
/// (a zero vector then gives NaN, as in tmeasures).
fn mean_pairwise_vector_distance(row: ArrayView2<'_, f64>, idx: &[usize], normalize: bool) -> f64 {
    let n = row.nrows();
    let scale: Vec<f64> = (0..n)
        .map(|i| {
            if normalize && idx.len() > 1 {
                1.0 / idx.iter().map(|&k| row[[i, k]] * row[[i, k]]).sum::<f64>().sqrt()
            } else {
                1.0
            }
        })
        .collect();
    let mut total = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            let d2: f64 = idx
                .iter()
                .map(|&k| {
                    let d = row[[i, k]] * scale[i] - row[[j, k]] * scale[j];
                    d * d
                })
                .sum();
            total += d2.sqrt();
        }
    }
    total / (n * n.saturating_sub(1) / 2) as f64
}

/// DSES of one block: for each cell and feature map, the root mean square difference between
/// the activation and the reference (the transformed identity), summed per map.
fn dses_block<T: Copy + Into<f64>, U: Copy + Into<f64>>(
    sums: &mut RowSums,
    maps: &[Vec<usize>],
    a: ArrayView3<'_, T>,
    r: ArrayView3<'_, U>,
    normalize: bool,
) {
    let (h, w, _) = a.dim();
    for i in 0..h {
        for j in 0..w {
            let (x, y) = (a.slice(s![i, j, ..]), r.slice(s![i, j, ..]));
            for (c, idx) in maps.iter().enumerate() {
                let norm = |v: &dyn Fn(usize) -> f64| {
                    if normalize && idx.len() > 1 {
                        1.0 / idx.iter().map(|&k| v(k) * v(k)).sum::<f64>().sqrt()
                    } else {
                        1.0
                    }
                };
                let (sx, sy) = (norm(&|k| x[k].into()), norm(&|k| y[k].into()));
                let mse = idx
                    .iter()
                    .map(|&k| {
                        let d = x[k].into() * sx - y[k].into() * sy;
                        d * d
                    })
                    .sum::<f64>()
                    / idx.len() as f64;
                sums.sum[c] += mse.sqrt();
            }
            sums.rows += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;
    use proptest::prelude::*;

    fn fresh(rows: usize, cols: usize, n: usize) -> LayerState {
        let layer = LayerStructure {
            name: "l".into(),
            tensor: "l".into(),
            op: "Test".into(),
            shape: vec![n],
            channel_axis: None,
        };
        let mut state = LayerState::new(&layer, &MeasureSpec::new(Kind::Nvi), cols);
        state.chunk.rows = rows;
        state.chunk.row_ids = (0..rows).collect();
        state.chunk.width = cols;
        state
    }

    fn general(state: &mut LayerState, a: &Array3<f32>) {
        let columns: Vec<usize> = (0..a.dim().1).collect();
        let fail = |_: &LayerState| InvarianceError::Invalid("non-finite".into());
        state.moments_block(&a.view(), &columns, &fail).unwrap();
        state.end_rows(Work::Moments, false, false).unwrap();
    }

    fn tiled(state: &mut LayerState, a: &Array3<f32>) -> bool {
        let (rows, cols, n) = a.dim();
        let columns: Vec<usize> = (0..cols).collect();
        let ok = state.whole_rows_moments(a.as_slice().unwrap(), rows, cols, n, &columns);
        state.end_rows(Work::Moments, false, false).unwrap();
        ok
    }

    /// The column moments of `blocks` of whole rows: every column's rows in batches of
    /// [`Moments::add_batch`] that end where the tiled path adds its pending sums (at the
    /// first block end with [`FLUSH_ROWS`] rows or more, and at the end).
    fn column_moments(blocks: &[Array3<f32>]) -> Vec<Moments> {
        let (cols, n) = (blocks[0].dim().1, blocks[0].dim().2);
        let mut moments = vec![Moments::new(n); cols];
        let mut batch: Vec<&Array3<f32>> = Vec::new();
        let add = |moments: &mut Vec<Moments>, batch: &mut Vec<&Array3<f32>>| {
            if batch.is_empty() {
                return;
            }
            let views: Vec<_> = batch.iter().map(|b| b.view()).collect();
            let all = ndarray::concatenate(Axis(0), &views).unwrap();
            for (j, m) in moments.iter_mut().enumerate() {
                m.add_batch(all.slice(s![.., j, ..])).unwrap();
            }
            batch.clear();
        };
        for block in blocks {
            batch.push(block);
            if batch.iter().map(|b| b.dim().0).sum::<usize>() >= FLUSH_ROWS {
                add(&mut moments, &mut batch);
            }
        }
        add(&mut moments, &mut batch);
        moments
    }

    proptest! {
        /// The tiled path of whole-row blocks is bitwise the general one per row, and per
        /// column bitwise `Moments::add_batch` of the rows of the blocks it adds at once, over
        /// several blocks (past a flush of the pending column sums), for tiles cut anywhere.
        #[test]
        fn whole_row_blocks_give_bitwise_the_moments_of_the_general_path(
            rows in 1usize..6,
            cols in 1usize..11,
            n in 1usize..(2 * MAX_TILE + 7),
            blocks in prop_oneof![1usize..3, Just(FLUSH_ROWS / 5 + 3)],
            seed in any::<u64>(),
        ) {
            let (mut a_state, mut b_state) = (fresh(rows, cols, n), fresh(rows, cols, n));
            let mut x = seed | 1;
            let mut all = Vec::new();
            for _ in 0..blocks {
                let a = Array3::from_shape_simple_fn((rows, cols, n), || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 2001) as f32 / 100.0 - 10.0
                });
                general(&mut a_state, &a);
                prop_assert!(tiled(&mut b_state, &a));
                all.push(a);
            }
            prop_assert!(b_state.flush_columns());
            a_state.columns = Some(column_moments(&all));
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let (ra, rb) = (a_state.row_std.as_ref().unwrap(), b_state.row_std.as_ref().unwrap());
            prop_assert_eq!(ra.rows, rb.rows);
            prop_assert_eq!(bits(&ra.sum), bits(&rb.sum));
            let (va, vb) = (a_state.row_variance.unwrap(), b_state.row_variance.unwrap());
            prop_assert_eq!(bits(&va.sum), bits(&vb.sum));
            for (ca, cb) in a_state.columns.unwrap().iter().zip(b_state.columns.as_ref().unwrap()) {
                prop_assert_eq!(ca.count(), cb.count());
                prop_assert_eq!(bits(ca.mean()), bits(cb.mean()));
                prop_assert_eq!(bits(ca.m2()), bits(cb.m2()));
            }
        }
    }

    #[test]
    fn a_measure_of_row_moments_only_takes_the_tiled_path() {
        let layer = LayerStructure {
            name: "l".into(),
            tensor: "l".into(),
            op: "Test".into(),
            shape: vec![3],
            channel_axis: None,
        };
        let mut state = LayerState::new(&layer, &MeasureSpec::new(Kind::Tvi), 2);
        assert!(state.columns.is_none());
        state.chunk.rows = 1;
        state.chunk.width = 2;
        let a = Array3::from_shape_vec((1, 2, 3), vec![0.0f32, 1.0, 2.0, 2.0, 1.0, 0.0]).unwrap();
        assert!(tiled(&mut state, &a));
        assert_eq!(state.row_variance.as_ref().unwrap().sum, vec![2.0, 0.0, 2.0]);
    }

    #[test]
    fn a_nan_in_a_whole_row_block_is_refused() {
        let mut state = fresh(2, 3, 5);
        let mut a = Array3::<f32>::ones((2, 3, 5));
        a[[1, 2, 4]] = f32::NAN;
        assert!(!tiled(&mut state, &a));
    }

    #[test]
    fn variances_by_hand() {
        // One row of three transformations, two activations: [1, 2, 3] and [2, 2, 2].
        let mut state = fresh(1, 3, 2);
        let a = Array3::from_shape_vec((1, 3, 2), vec![1.0f32, 2.0, 2.0, 2.0, 3.0, 2.0]).unwrap();
        assert!(tiled(&mut state, &a));
        assert!(state.flush_columns());
        assert_eq!(state.row_variance.as_ref().unwrap().sum, vec![1.0, 0.0]);
        assert_eq!(state.row_std.as_ref().unwrap().sum, vec![1.0, 0.0]);
        let columns = state.columns.as_ref().unwrap();
        assert_eq!(columns[0].mean(), &[1.0, 2.0]);
        assert_eq!(columns[2].mean(), &[3.0, 2.0]);
    }
}
