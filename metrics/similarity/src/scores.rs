//! Scores of test gradients against reference gradients (dot products of `f32` gradients
//! accumulated in `f64`), their ordering, and the explanation built from them.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::spec::SimFn;

/// Floats of one block of the gradients that stay in cache while every reference row visits it.
const BLOCK: usize = 8192;

/// `sum a_i b_i` in `f64`, eight independent sums (vectorised by the compiler).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += f64::from(x[k]) * f64::from(y[k]);
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
    acc.iter().sum::<f64>() + tail
}

/// The squared norm of every row, in `f64`.
pub fn squared_norms(rows: ArrayView2<'_, f32>) -> Vec<f64> {
    (0..rows.nrows())
        .into_par_iter()
        .map(|i| {
            let r = rows.row(i);
            match r.as_slice() {
                Some(s) => dot(s, s),
                None => r.iter().map(|&v| f64::from(v) * f64::from(v)).sum(),
            }
        })
        .collect()
}

/// The dot products of every test row with every reference row (`tests x references`), in
/// `f64`. The columns are blocked so that a block of the test rows stays in cache while the
/// reference rows stream past it; references are split across threads.
pub fn dot_products(
    tests: ArrayView2<'_, f32>,
    references: ArrayView2<'_, f32>,
) -> Result<Array2<f64>> {
    if tests.ncols() != references.ncols() {
        return Err(invalid!(
            "test gradients have {} values, reference gradients {}",
            tests.ncols(),
            references.ncols()
        ));
    }
    let tests = tests.as_standard_layout();
    let references = references.as_standard_layout();
    let (n, m, p) = (tests.nrows(), references.nrows(), tests.ncols());
    let t = tests.as_slice().expect("standard layout");
    let r = references.as_slice().expect("standard layout");
    // One column of results per reference, each computed by one thread.
    let columns: Vec<Vec<f64>> = (0..m)
        .into_par_iter()
        .with_min_len(4)
        .map(|j| {
            let rj = &r[j * p..(j + 1) * p];
            let mut col = vec![0.0f64; n];
            for start in (0..p).step_by(BLOCK) {
                let end = (start + BLOCK).min(p);
                for (i, c) in col.iter_mut().enumerate() {
                    *c += dot(&t[i * p + start..i * p + end], &rj[start..end]);
                }
            }
            col
        })
        .collect();
    let mut out = Array2::zeros((n, m));
    for (j, col) in columns.into_iter().enumerate() {
        out.column_mut(j).assign(&ndarray::Array1::from(col));
    }
    Ok(out)
}

/// The scores of `sim_fn` from dot products and squared norms.
pub fn scores_from_dots(
    sim_fn: SimFn,
    dots: &Array2<f64>,
    test_norms_sq: &[f64],
    reference_norms_sq: &[f64],
) -> Array2<f64> {
    Array2::from_shape_fn(dots.dim(), |(i, j)| {
        sim_fn.score(dots[[i, j]], test_norms_sq[i], reference_norms_sq[j])
    })
}

/// The scores of `sim_fn` between every test gradient and every reference gradient (rows):
/// alibi's `sim_fn(X, Y)`, accumulated in `f64`.
///
/// # Errors
/// Rows of different lengths.
pub fn similarity(
    sim_fn: SimFn,
    tests: ArrayView2<'_, f32>,
    references: ArrayView2<'_, f32>,
) -> Result<Array2<f64>> {
    let dots = dot_products(tests, references)?;
    Ok(scores_from_dots(sim_fn, &dots, &squared_norms(tests), &squared_norms(references)))
}

/// The reference indices of a row of scores, most similar first; equal scores keep the
/// lower index first (a stable order, unlike alibi's reversed `argsort`).
///
/// # Errors
/// A NaN score.
pub fn order(scores: &[f64]) -> Result<Vec<usize>> {
    if let Some(j) = scores.iter().position(|s| s.is_nan()) {
        return Err(invalid!("the score of reference {j} is NaN"));
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    Ok(idx)
}

/// Scores of test instances against a set of reference examples, before ordering: the
/// mergeable state of an explanation. Scores against disjoint shards of a reference set
/// [`append`](Self::append) into the scores against the whole set (each score depends only on
/// its pair).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// The similarity function.
    pub sim_fn: SimFn,
    /// `rows[i][j]`: test instance `i` against reference `j`.
    pub rows: Vec<Vec<f64>>,
}

impl Scores {
    /// Scores from a `tests x references` matrix.
    pub fn from_matrix(sim_fn: SimFn, scores: &Array2<f64>) -> Self {
        Self { sim_fn, rows: scores.outer_iter().map(|r| r.to_vec()).collect() }
    }

    /// The number of reference examples scored.
    pub fn references(&self) -> usize {
        self.rows.first().map_or(0, Vec::len)
    }

    /// Appends the scores against further reference examples (a later shard) as columns.
    ///
    /// # Errors
    /// Another similarity function or another number of test instances.
    pub fn append(&mut self, other: &Scores) -> Result<()> {
        if other.sim_fn != self.sim_fn {
            return Err(invalid!(
                "cannot merge {} scores into {} scores",
                other.sim_fn,
                self.sim_fn
            ));
        }
        if other.rows.len() != self.rows.len() {
            return Err(invalid!(
                "cannot merge scores of {} instances into scores of {}",
                other.rows.len(),
                self.rows.len()
            ));
        }
        for (mine, theirs) in self.rows.iter_mut().zip(&other.rows) {
            mine.extend_from_slice(theirs);
        }
        Ok(())
    }

    /// Orders every row and picks the `top_k` most and least similar references.
    ///
    /// # Errors
    /// `top_k` 0, or a NaN score.
    pub fn explain(self, top_k: usize, targets: Vec<usize>) -> Result<Explanation> {
        if top_k == 0 {
            return Err(invalid!("top_k must be at least 1"));
        }
        let ordered = self.rows.iter().map(|r| order(r)).collect::<Result<Vec<_>>>()?;
        let k = top_k.min(self.references());
        let most = ordered.iter().map(|o| o[..k].to_vec()).collect();
        let least = ordered.iter().map(|o| o.iter().rev().take(k).copied().collect()).collect();
        Ok(Explanation {
            sim_fn: self.sim_fn,
            scores: self.rows,
            ordered_indices: ordered,
            most_similar: most,
            least_similar: least,
            targets,
        })
    }
}

/// What explains each test instance: its scores against every reference example and the
/// references ordered by them (alibi's `Explanation.data`, with indices where alibi returns the
/// reference inputs themselves).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The similarity function.
    pub sim_fn: SimFn,
    /// `scores[i][j]`: instance `i` against reference `j` (in the reference set's order; alibi
    /// returns each row sorted, which is `ordered_indices` applied to it).
    pub scores: Vec<Vec<f64>>,
    /// Per instance, every reference index, most similar first (ties: lower index first).
    pub ordered_indices: Vec<Vec<usize>>,
    /// Per instance, the `top_k` most similar references, most similar first.
    pub most_similar: Vec<Vec<usize>>,
    /// Per instance, the `top_k` least similar references, least similar first.
    pub least_similar: Vec<Vec<usize>>,
    /// The class each instance's gradient was taken for (the given label, or the model's
    /// prediction); empty for regression targets.
    pub targets: Vec<usize>,
}

impl Explanation {
    /// Instance `i`'s scores in the order of `ordered_indices` (what alibi's `scores` holds).
    pub fn sorted_scores(&self, i: usize) -> Vec<f64> {
        self.ordered_indices[i].iter().map(|&j| self.scores[i][j]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn similarity_functions_by_hand() {
        // x0 = (1, 2, 2) (|x0| = 3), x1 = (0, 0, 0); y0 = (2, 0, 0), y1 = (0, 3, 4) (|y1| = 5).
        let x = array![[1.0f32, 2.0, 2.0], [0.0, 0.0, 0.0]];
        let y = array![[2.0f32, 0.0, 0.0], [0.0, 3.0, 4.0]];
        let dot = similarity(SimFn::GradDot, x.view(), y.view()).unwrap();
        assert_eq!(dot, array![[2.0, 14.0], [0.0, 0.0]]);
        let cos = similarity(SimFn::GradCos, x.view(), y.view()).unwrap();
        assert!((cos[[0, 0]] - 2.0 / (6.0 + 1e-7)).abs() < 1e-15);
        assert!((cos[[0, 1]] - 14.0 / (15.0 + 1e-7)).abs() < 1e-15);
        assert_eq!(cos[[1, 0]], 0.0);
        let asym = similarity(SimFn::GradAsymDot, x.view(), y.view()).unwrap();
        assert!((asym[[0, 0]] - 2.0 / (4.0 + 1e-7)).abs() < 1e-15);
        assert!((asym[[0, 1]] - 14.0 / (25.0 + 1e-7)).abs() < 1e-15);
        assert!(similarity(SimFn::GradDot, x.view(), array![[1.0f32, 2.0]].view()).is_err());
    }

    #[test]
    fn long_rows_are_blocked_and_summed_in_f64() {
        // 20,003 values (several blocks and a remainder): 1e8 + many small terms keeps them.
        let p = 20_003;
        let mut a = vec![1.0f32; p];
        a[0] = 1e4;
        let b = a.clone();
        let x = Array2::from_shape_vec((1, p), a).unwrap();
        let y = Array2::from_shape_vec((1, p), b).unwrap();
        let d = dot_products(x.view(), y.view()).unwrap();
        assert_eq!(d[[0, 0]], 1e8 + (p - 1) as f64);
    }

    #[test]
    fn order_is_descending_and_stable() {
        assert_eq!(order(&[0.5, 2.0, 0.5, -1.0, 2.0]).unwrap(), [1, 4, 0, 2, 3]);
        assert!(order(&[0.0, f64::NAN]).is_err());
        let s = Scores::from_matrix(SimFn::GradDot, &array![[0.5, 2.0, 0.5, -1.0, 2.0]]);
        let e = s.explain(2, vec![3]).unwrap();
        assert_eq!(e.most_similar, [[1, 4]]);
        assert_eq!(e.least_similar, [[3, 2]]);
        assert_eq!(e.sorted_scores(0), [2.0, 2.0, 0.5, 0.5, -1.0]);
        // top_k larger than the reference set lists all of it.
        let s = Scores::from_matrix(SimFn::GradDot, &array![[1.0, 0.0]]);
        assert_eq!(s.explain(5, vec![]).unwrap().most_similar, [[0, 1]]);
    }

    #[test]
    fn shards_append() {
        let mut a = Scores::from_matrix(SimFn::GradCos, &array![[1.0], [2.0]]);
        let b = Scores::from_matrix(SimFn::GradCos, &array![[3.0, 4.0], [5.0, 6.0]]);
        a.append(&b).unwrap();
        assert_eq!(a.rows, [[1.0, 3.0, 4.0], [2.0, 5.0, 6.0]]);
        let c = Scores::from_matrix(SimFn::GradDot, &array![[1.0], [2.0]]);
        assert!(a.append(&c).is_err());
        let d = Scores::from_matrix(SimFn::GradCos, &array![[1.0]]);
        assert!(a.append(&d).is_err());
    }
}
