//! Where the samples around each instance come from: alibi's grid and kNN samplers, and fixed
//! offsets replayed from a file.

use ndarray::{Array2, Array3, ArrayView1, ArrayView2, ArrayViewMut2, ArrayViewMut3, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{Result, invalid};
use crate::range::FeatureRange;

/// An instance whose neighbourhood is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceId {
    /// Its position in the run's list of instances (the row of a replayed offsets file).
    pub position: usize,
    /// Its row in the dataset (what seeds the grid sampler, so that an image gets the same
    /// samples whichever other instances are measured with it, and in whichever shard).
    pub index: usize,
}

/// A source of `nb_samples` perturbed copies `v_s` of each instance, in `f64` (alibi builds
/// its samples in float64; they are cast to `f32` only for the model).
pub trait Perturbations: Send + Sync {
    /// Samples per instance.
    fn nb_samples(&self) -> usize;

    /// The sampler and its parameters, for the run manifest.
    fn describe(&self) -> serde_json::Value;

    /// Writes the samples of one instance with flattened input `centre` into `out`
    /// (`nb_samples x features`).
    ///
    /// # Errors
    /// A centre of the wrong length or an instance the source has no samples for.
    fn fill(
        &self,
        id: InstanceId,
        centre: ArrayView1<'_, f32>,
        out: ArrayViewMut2<'_, f64>,
    ) -> Result<()>;

    /// Writes the samples of several instances (`centres` is instances x features, `out` is
    /// instances x nb_samples x features). The default calls [`Self::fill`] for each; sources
    /// that gain from batching (the kNN index) override it.
    ///
    /// # Errors
    /// As [`Self::fill`].
    fn fill_batch(
        &self,
        ids: &[InstanceId],
        centres: ArrayView2<'_, f32>,
        mut out: ArrayViewMut3<'_, f64>,
    ) -> Result<()> {
        for (i, id) in ids.iter().enumerate() {
            self.fill(*id, centres.row(i), out.index_axis_mut(Axis(0), i))?;
        }
        Ok(())
    }
}

fn check_len(what: &str, got: usize, expected: usize) -> Result<()> {
    if got == expected {
        Ok(())
    } else {
        Err(invalid!("{what}: an instance of {got} features, expected {expected}"))
    }
}

/// alibi's grid sampler: every feature `f` of every sample is shifted on its own by
/// `k * delta_f` with `k` uniform in `{-size..-1, 1..size}` (never 0), `size =
/// max(round_half_even(epsilon * res), 2)`, `delta_f = |max_f - min_f| / res`. Samples are not
/// clipped to the range. The shift is `k as f64 * delta_f as f64` added to the `f64` centre,
/// exactly alibi's float64 arithmetic.
///
/// Random draws come from ChaCha8 seeded with `seed`, one stream per dataset row, so the
/// samples of an instance depend only on the seed and its row.
#[derive(Debug, Clone)]
pub struct GridSampler {
    deltas: Vec<f32>,
    size: u32,
    nb_samples: usize,
    epsilon: f64,
    res: usize,
    seed: u64,
}

impl GridSampler {
    /// A grid sampler over `range`.
    ///
    /// # Errors
    /// `nb_samples` or `res` 0, or `epsilon` not finite and positive.
    pub fn new(
        range: &FeatureRange,
        epsilon: f64,
        res: usize,
        nb_samples: usize,
        seed: u64,
    ) -> Result<Self> {
        if nb_samples == 0 {
            return Err(invalid!("nb_samples must be at least 1"));
        }
        if res == 0 {
            return Err(invalid!("res must be at least 1"));
        }
        if !(epsilon.is_finite() && epsilon > 0.0) {
            return Err(invalid!("epsilon must be a positive number, got {epsilon}"));
        }
        let size = (epsilon * res as f64).round_ties_even().max(2.0);
        if size > f64::from(u32::MAX / 2) {
            return Err(invalid!("epsilon * res = {} is too large a grid", epsilon * res as f64));
        }
        Ok(Self { deltas: range.deltas(res), size: size as u32, nb_samples, epsilon, res, seed })
    }

    /// The largest step multiple `size`.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The step of every feature.
    pub fn deltas(&self) -> &[f32] {
        &self.deltas
    }
}

impl Perturbations for GridSampler {
    fn nb_samples(&self) -> usize {
        self.nb_samples
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "method": "grid", "epsilon": self.epsilon, "res": self.res, "size": self.size,
            "nb_samples": self.nb_samples, "seed": self.seed, "rng": "ChaCha8, one stream per dataset row",
        })
    }

    fn fill(
        &self,
        id: InstanceId,
        centre: ArrayView1<'_, f32>,
        mut out: ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        check_len("grid sampler", centre.len(), self.deltas.len())?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(id.index as u64);
        let size = self.size as i64;
        for mut sample in out.rows_mut() {
            for ((v, &x), &d) in sample.iter_mut().zip(centre.iter()).zip(&self.deltas) {
                let u = i64::from(rng.random_range(0..2 * self.size));
                let k = if u < size { u - size } else { u - size + 1 };
                *v = f64::from(x) + k as f64 * f64::from(d);
            }
        }
        Ok(())
    }
}

/// Fixed integer offsets, replayed: sample `s` of the instance at position `i` is
/// `x_i + offsets[i, s, :] * deltas` (in `f64`, deltas as [`FeatureRange::deltas`]), so that
/// another tool's grid draws (alibi's `rnd_sign * rnd`) can be reproduced exactly.
#[derive(Debug, Clone)]
pub struct OffsetSampler {
    offsets: Array3<f64>,
    deltas: Vec<f32>,
    res: usize,
}

impl OffsetSampler {
    /// Offsets `[instances, nb_samples, features]` over `range` with `res` steps.
    ///
    /// # Errors
    /// An empty array, a feature count other than the range's, non-integer or non-finite
    /// offsets, or `res` 0.
    pub fn new(offsets: Array3<f64>, range: &FeatureRange, res: usize) -> Result<Self> {
        let (n, s, f) = offsets.dim();
        if n == 0 || s == 0 {
            return Err(invalid!("offsets: no instances or no samples (shape [{n}, {s}, {f}])"));
        }
        if f != range.len() {
            return Err(invalid!(
                "offsets: {f} features per sample, the feature range has {}",
                range.len()
            ));
        }
        if res == 0 {
            return Err(invalid!("res must be at least 1"));
        }
        if let Some((i, v)) =
            offsets.iter().enumerate().find(|(_, v)| !v.is_finite() || v.fract() != 0.0)
        {
            return Err(invalid!("offsets: value {v} at flat index {i} is not an integer"));
        }
        Ok(Self { offsets, deltas: range.deltas(res), res })
    }

    /// The number of instances the offsets are for.
    pub fn instances(&self) -> usize {
        self.offsets.dim().0
    }
}

impl Perturbations for OffsetSampler {
    fn nb_samples(&self) -> usize {
        self.offsets.dim().1
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "method": "offsets", "res": self.res, "nb_samples": self.nb_samples(),
            "instances": self.instances(),
        })
    }

    fn fill(
        &self,
        id: InstanceId,
        centre: ArrayView1<'_, f32>,
        mut out: ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        check_len("offsets", centre.len(), self.deltas.len())?;
        if id.position >= self.instances() {
            return Err(invalid!(
                "offsets: instance {} has no offsets (the file has {} instances)",
                id.position,
                self.instances()
            ));
        }
        let rows = self.offsets.index_axis(Axis(0), id.position);
        for (mut sample, offsets) in out.rows_mut().into_iter().zip(rows.rows()) {
            for (((v, &x), &k), &d) in
                sample.iter_mut().zip(centre.iter()).zip(offsets.iter()).zip(&self.deltas)
            {
                *v = f64::from(x) + k * f64::from(d);
            }
        }
        Ok(())
    }
}

/// An exact Euclidean nearest-neighbour index over reference rows: squared distances of a
/// block of queries to every row come from one matrix product (`|q|^2 - 2 q.r + |r|^2`, in
/// `f32`), and the candidates within a rounding margin of the k-th are re-ranked by their
/// exact `f64` distance; ties go to the lower row. One index serves every query (alibi refits
/// a ball tree per instance).
#[derive(Debug, Clone)]
pub struct KnnIndex {
    rows: Array2<f32>,
    norms: Vec<f32>,
}

impl KnnIndex {
    /// Indexes `rows` (reference samples x features).
    ///
    /// # Errors
    /// No rows, or a non-finite value.
    pub fn new(rows: Array2<f32>) -> Result<Self> {
        if rows.nrows() == 0 || rows.ncols() == 0 {
            return Err(invalid!("kNN reference set: no rows or no features"));
        }
        if let Some((i, v)) = rows.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(invalid!(
                "kNN reference set: value {v} at row {}, feature {}",
                i / rows.ncols(),
                i % rows.ncols()
            ));
        }
        let norms = rows.rows().into_iter().map(|r| r.dot(&r)).collect();
        Ok(Self { rows, norms })
    }

    /// The number of reference rows.
    pub fn len(&self) -> usize {
        self.rows.nrows()
    }

    /// Whether the index has no rows (never: [`Self::new`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.rows.nrows() == 0
    }

    /// The reference row `i`.
    pub fn row(&self, i: usize) -> ArrayView1<'_, f32> {
        self.rows.row(i)
    }

    /// The `k` nearest reference rows of every query (queries x features), nearest first.
    ///
    /// # Errors
    /// `k` 0 or above the number of rows, or queries of another feature count.
    pub fn query(&self, queries: ArrayView2<'_, f32>, k: usize) -> Result<Vec<Vec<usize>>> {
        if k == 0 || k > self.len() {
            return Err(invalid!(
                "kNN: cannot find {k} neighbours among {} reference rows",
                self.len()
            ));
        }
        check_len("kNN query", queries.ncols(), self.rows.ncols())?;
        let products = queries.dot(&self.rows.t());
        let found = (0..queries.nrows())
            .into_par_iter()
            .map(|i| self.nearest(queries.row(i), products.row(i), k))
            .collect();
        Ok(found)
    }

    fn nearest(&self, q: ArrayView1<'_, f32>, dots: ArrayView1<'_, f32>, k: usize) -> Vec<usize> {
        let qn = q.dot(&q);
        let mut approx: Vec<(f32, usize)> = dots
            .iter()
            .zip(&self.norms)
            .enumerate()
            .map(|(i, (&d, &n))| (qn - 2.0 * d + n, i))
            .collect();
        approx.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let kth = approx[k - 1].0;
        let largest = self.norms.iter().fold(0.0f32, |a, &b| a.max(b));
        // f32 rounding of a squared distance is far below 1e-4 of |q|^2 + max |r|^2.
        let margin = 1e-4 * (qn + largest) + f32::MIN_POSITIVE;
        let mut exact: Vec<(f64, usize)> = approx
            .iter()
            .filter(|(d, _)| *d <= kth + margin)
            .map(|&(_, i)| {
                let d = self
                    .rows
                    .row(i)
                    .iter()
                    .zip(q.iter())
                    .map(|(&r, &x)| (f64::from(r) - f64::from(x)).powi(2))
                    .sum::<f64>();
                (d, i)
            })
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        exact.truncate(k);
        exact.into_iter().map(|(_, i)| i).collect()
    }
}

/// alibi's kNN sampler: the samples of an instance are its `nb_samples` nearest reference
/// rows (Euclidean; an instance that is itself a reference row is its own first neighbour).
#[derive(Debug, Clone)]
pub struct KnnSampler {
    index: KnnIndex,
    nb_samples: usize,
}

impl KnnSampler {
    /// A sampler of `nb_samples` neighbours from `index`.
    ///
    /// # Errors
    /// `nb_samples` 0 or above the number of reference rows.
    pub fn new(index: KnnIndex, nb_samples: usize) -> Result<Self> {
        if nb_samples == 0 || nb_samples > index.len() {
            return Err(invalid!(
                "kNN: nb_samples {nb_samples} must be between 1 and the {} reference rows",
                index.len()
            ));
        }
        Ok(Self { index, nb_samples })
    }
}

impl Perturbations for KnnSampler {
    fn nb_samples(&self) -> usize {
        self.nb_samples
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "method": "knn", "nb_samples": self.nb_samples, "reference_rows": self.index.len(),
        })
    }

    fn fill(
        &self,
        id: InstanceId,
        centre: ArrayView1<'_, f32>,
        out: ArrayViewMut2<'_, f64>,
    ) -> Result<()> {
        let centres = centre.insert_axis(Axis(0));
        let mut out = out.insert_axis(Axis(0));
        self.fill_batch(&[id], centres, out.view_mut())
    }

    fn fill_batch(
        &self,
        ids: &[InstanceId],
        centres: ArrayView2<'_, f32>,
        mut out: ArrayViewMut3<'_, f64>,
    ) -> Result<()> {
        if centres.nrows() != ids.len() {
            return Err(invalid!("kNN: {} centres for {} instances", centres.nrows(), ids.len()));
        }
        let found = self.index.query(centres, self.nb_samples)?;
        for (i, neighbours) in found.iter().enumerate() {
            for (s, &r) in neighbours.iter().enumerate() {
                out.index_axis_mut(Axis(0), i)
                    .row_mut(s)
                    .iter_mut()
                    .zip(self.index.row(r).iter())
                    .for_each(|(v, &x)| *v = f64::from(x));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn grid_steps_are_non_zero_multiples_within_size() {
        let range = FeatureRange::new(vec![0.0, 0.0, 1.0], vec![1.0, 2.0, 1.0]).unwrap();
        let g = GridSampler::new(&range, 0.04, 100, 50, 7).unwrap();
        assert_eq!(g.size(), 4);
        let centre = array![0.5f32, 1.0, 1.0];
        let mut out = Array2::zeros((50, 3));
        let id = InstanceId { position: 0, index: 3 };
        g.fill(id, centre.view(), out.view_mut()).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for row in out.rows() {
            for (f, &v) in row.iter().enumerate() {
                let k = (v - f64::from(centre[f])) / f64::from(g.deltas()[f]).max(1e-300);
                if f == 2 {
                    assert_eq!(v, 1.0, "a constant feature never moves");
                    continue;
                }
                let r = k.round();
                assert!((k - r).abs() < 1e-9 && r != 0.0 && r.abs() <= 4.0, "k = {k}");
                seen.insert(r as i64);
            }
        }
        assert_eq!(seen.len(), 8, "all of -4..-1, 1..4 drawn: {seen:?}");
        let mut again = Array2::zeros((50, 3));
        g.fill(InstanceId { position: 9, index: 3 }, centre.view(), again.view_mut()).unwrap();
        assert_eq!(out, again, "the dataset row, not the position, seeds the draws");
        g.fill(InstanceId { position: 0, index: 4 }, centre.view(), again.view_mut()).unwrap();
        assert_ne!(out, again);
        // Small grids are widened to 2 steps, half-way products round to even.
        assert_eq!(GridSampler::new(&range, 0.01, 100, 1, 0).unwrap().size(), 2);
        assert_eq!(GridSampler::new(&range, 0.025, 100, 1, 0).unwrap().size(), 2);
        assert_eq!(GridSampler::new(&range, 0.035, 100, 1, 0).unwrap().size(), 4);
        assert!(GridSampler::new(&range, 0.0, 100, 1, 0).is_err());
        assert!(GridSampler::new(&range, 0.04, 100, 0, 0).is_err());
    }

    #[test]
    fn offsets_replay_exactly() {
        let range = FeatureRange::new(vec![0.0, 0.0], vec![1.0, 0.5]).unwrap();
        let offsets = array![[[1.0, -2.0], [3.0, 4.0]]];
        let s = OffsetSampler::new(offsets, &range, 100).unwrap();
        let mut out = Array2::zeros((2, 2));
        s.fill(InstanceId { position: 0, index: 5 }, array![0.5f32, 0.25].view(), out.view_mut())
            .unwrap();
        let d0 = f64::from(1.0f32 / 100.0);
        let d1 = f64::from(0.5f32 / 100.0);
        assert_eq!(out, array![[0.5 + d0, 0.25 - 2.0 * d1], [0.5 + 3.0 * d0, 0.25 + 4.0 * d1]]);
        let e = s
            .fill(InstanceId { position: 1, index: 0 }, array![0.5f32, 0.25].view(), out.view_mut())
            .unwrap_err()
            .to_string();
        assert!(e.contains("instance 1 has no offsets"), "{e}");
        assert!(OffsetSampler::new(array![[[0.5, 1.0]]], &range, 100).is_err());
        assert!(OffsetSampler::new(array![[[1.0, 1.0, 1.0]]], &range, 100).is_err());
    }

    #[test]
    fn knn_equals_brute_force_with_ties_by_index() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let rows = Array2::from_shape_fn((300, 16), |_| f32::from(rng.random_range(0u8..4)));
        let index = KnnIndex::new(rows.clone()).unwrap();
        let queries = Array2::from_shape_fn((9, 16), |_| f32::from(rng.random_range(0u8..4)));
        let found = index.query(queries.view(), 7).unwrap();
        for (q, got) in queries.rows().into_iter().zip(&found) {
            let mut all: Vec<(f64, usize)> = rows
                .rows()
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    (r.iter().zip(q.iter()).map(|(&a, &b)| f64::from(a - b).powi(2)).sum(), i)
                })
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let expected: Vec<usize> = all.iter().take(7).map(|p| p.1).collect();
            assert_eq!(got, &expected);
        }
        // A reference row is its own nearest neighbour.
        assert_eq!(index.query(rows.slice(ndarray::s![5..6, ..]), 1).unwrap()[0][0], 5);
        assert!(index.query(queries.view(), 301).is_err());
        assert!(KnnIndex::new(array![[f32::NAN]]).is_err());
    }
}
