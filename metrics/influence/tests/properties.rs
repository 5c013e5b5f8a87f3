//! Properties of the exact projection, on random data.

use ndarray::{Array1, Array2};
use nnlens_influence::{Explainer, Options, Score, Solver, Status, Tilt, Truth};
use proptest::prelude::*;

/// A feature matrix `n x p` of small integers (many ties, as pixels) or reals.
fn matrix(n: usize, p: usize) -> impl Strategy<Value = Array2<f64>> {
    prop_oneof![
        prop::collection::vec(0u8..6, n * p).prop_map(move |v| Array2::from_shape_vec(
            (n, p),
            v.into_iter().map(f64::from).collect()
        )
        .unwrap()),
        prop::collection::vec(-50.0f64..50.0, n * p).prop_map(move |v| Array2::from_shape_vec(
            (n, p),
            v
        )
        .unwrap()),
    ]
}

/// Predictions `n x k` in [0, 1].
fn predictions(n: usize, k: usize) -> impl Strategy<Value = Array2<f64>> {
    prop::collection::vec(0.0f64..1.0, n * k)
        .prop_map(move |v| Array2::from_shape_vec((n, k), v).unwrap())
}

fn data() -> impl Strategy<Value = (Array2<f64>, Array2<f64>)> {
    (2usize..40, 1usize..5, 1usize..4).prop_flat_map(|(n, p, k)| (matrix(n, p), predictions(n, k)))
}

fn taus() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1.0f64..=1.0, 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn tau_zero_gives_the_plain_mean_prediction((x, y) in data(), alpha in 0.01f64..0.49) {
        let options = Options { alpha, taus: vec![-1.0, 0.0, 1.0], ..Options::default() };
        let influence = Explainer::new(options).unwrap().influence(x.view(), y.view()).unwrap();
        let mean = y.mean_axis(ndarray::Axis(0)).unwrap();
        for f in 0..x.ncols() {
            for k in 0..y.ncols() {
                prop_assert!((influence.values[[1, f, k]] - mean[k]).abs() <= 1e-12);
            }
        }
    }

    #[test]
    fn an_independent_feature_has_the_mean_influence(
        y in predictions(12, 3),
        levels in prop::collection::btree_set(-20i32..20, 2..5),
        tau in prop::sample::select(vec![-1.0, -0.6, -0.1, 0.3, 0.8, 1.0]),
    ) {
        // Every prediction row appears once with every level of the feature: the feature is
        // exactly independent of the predictions, so no re-weighting of it moves their mean.
        let levels: Vec<f64> = levels.into_iter().map(f64::from).collect();
        let n = y.nrows() * levels.len();
        let x = Array2::from_shape_fn((n, 1), |(i, _)| levels[i % levels.len()]);
        let yy = Array2::from_shape_fn((n, y.ncols()), |(i, k)| y[[i / levels.len(), k]]);
        let options = Options { taus: vec![tau], ..Options::default() };
        let influence = Explainer::new(options).unwrap().influence(x.view(), yy.view()).unwrap();
        let mean = yy.mean_axis(ndarray::Axis(0)).unwrap();
        for k in 0..y.ncols() {
            prop_assert!((influence.values[[0, 0, k]] - mean[k]).abs() <= 1e-12,
                "{} vs {}", influence.values[[0, 0, k]], mean[k]);
        }
    }

    #[test]
    fn weights_sum_to_one_and_hit_interior_targets((x, _y) in data(), taus in taus()) {
        let fit = Explainer::new(Options { taus, ..Options::default() }).unwrap().fit(x.view()).unwrap();
        for ((t, f), sol) in fit.solutions().indexed_iter() {
            let st = fit.stats()[f];
            let w = fit.weights(t, f).unwrap().expect("quantile targets are in range");
            prop_assert!((w.sum() - 1.0).abs() <= 1e-12);
            prop_assert!(w.iter().all(|&v| v >= 0.0));
            if sol.status == Status::Converged {
                let z: Array1<f64> = x.column(f).mapv(|v| st.standardise(v));
                let tz = (fit.targets()[[t, f]] - st.mean) / st.std;
                prop_assert!((w.dot(&z) - tz).abs() <= 1e-9, "{} vs {tz}: {sol:?}", w.dot(&z));
                prop_assert!(sol.residual.abs() <= 1e-12);
            }
            prop_assert!(sol.status != Status::NotConverged && sol.status != Status::OutsideRange);
        }
    }

    #[test]
    fn edge_targets_give_uniform_weights_on_the_extreme_rows((x, _y) in data()) {
        let p = x.ncols();
        let mins: Vec<f64> = (0..p).map(|f| x.column(f).fold(f64::INFINITY, |a, &b| a.min(b))).collect();
        let maxs: Vec<f64> = (0..p).map(|f| x.column(f).fold(f64::NEG_INFINITY, |a, &b| a.max(b))).collect();
        let targets = Array2::from_shape_fn((2, p), |(r, f)| if r == 0 { mins[f] } else { maxs[f] });
        let fit = Explainer::new(Options::default()).unwrap().fit_targets(x.view(), targets.view()).unwrap();
        for f in 0..p {
            for (r, ext) in [(0, mins[f]), (1, maxs[f])] {
                let w = fit.weights(r, f).unwrap().unwrap();
                let hits = x.column(f).iter().filter(|&&v| v == ext).count() as f64;
                for (i, &v) in x.column(f).iter().enumerate() {
                    let want = if v == ext { 1.0 / hits } else { 0.0 };
                    prop_assert!((w[i] - want).abs() <= 1e-15);
                }
                let sol = fit.solutions()[[r, f]];
                if mins[f] == maxs[f] {
                    prop_assert_eq!(sol.status, Status::Constant);
                } else {
                    prop_assert_eq!(sol.tilt, if r == 0 { Tilt::ToMinimum } else { Tilt::ToMaximum });
                }
            }
        }
    }

    #[test]
    fn targets_outside_the_range_are_reported((x, y) in data(), beyond in 1e-6f64..10.0) {
        let p = x.ncols();
        let targets = Array2::from_shape_fn((2, p), |(r, f)| {
            let col = x.column(f);
            if r == 0 { col.fold(f64::INFINITY, |a, &b| a.min(b)) - beyond * (1.0 + col[0].abs()) }
            else { col.fold(f64::NEG_INFINITY, |a, &b| a.max(b)) + beyond * (1.0 + col[0].abs()) }
        });
        let fit = Explainer::new(Options::default()).unwrap().fit_targets(x.view(), targets.view()).unwrap();
        let influence = fit.influence(y.view()).unwrap();
        prop_assert_eq!(influence.projection.issues.len(), 2 * p);
        prop_assert!(influence.values.iter().all(|v| v.is_nan()));
        prop_assert!(fit.solutions().iter().all(|s| s.status == Status::OutsideRange));
    }

    #[test]
    fn uniform_weights_give_the_plain_metric((x, y) in data(), seed in 0u64..1000) {
        let n = x.nrows();
        let k = y.ncols();
        let labels: Vec<usize> = (0..n).map(|i| (i * 7 + seed as usize) % k.max(2)).collect();
        let targets = y.mapv(|v| (v * 3.0).round() / 3.0);
        let fit = Explainer::new(Options { taus: vec![0.0], ..Options::default() }).unwrap().fit(x.view()).unwrap();
        for score in Score::ALL {
            let truth = if score == Score::MeanSquaredError { Truth::Values(targets.view()) } else { Truth::Labels(&labels) };
            let plain = score.plain(y.view(), &truth).unwrap();
            let perf = fit.performance(y.view(), &truth, score).unwrap();
            for f in 0..x.ncols() {
                prop_assert!((perf.values[[0, f]] - plain).abs() <= 1e-12 * plain.abs().max(1.0));
            }
        }
    }

    #[test]
    fn ethik_mode_lands_in_its_tolerance_band((x, _y) in data(), taus in taus()) {
        let options = Options { taus, solver: Solver::ethik(), ..Options::default() };
        let fit = Explainer::new(options).unwrap().fit(x.view()).unwrap();
        for ((t, f), sol) in fit.solutions().indexed_iter() {
            let st = fit.stats()[f];
            if sol.status == Status::Converged {
                let w = fit.weights(t, f).unwrap().unwrap();
                let z: Array1<f64> = x.column(f).mapv(|v| st.standardise(v));
                let tz = (fit.targets()[[t, f]] - st.mean) / st.std;
                prop_assert!((w.dot(&z) - tz).powi(2) < 1e-4);
            } else {
                prop_assert!(matches!(sol.status, Status::Mean | Status::Constant | Status::NotConverged));
                prop_assert_eq!(sol.tilt, Tilt::Finite(0.0));
            }
        }
    }

    #[test]
    fn feature_shards_concatenate_to_the_whole((x, y) in data(), taus in taus()) {
        let explainer = Explainer::new(Options { taus, ..Options::default() }).unwrap();
        let whole = explainer.influence(x.view(), y.view()).unwrap();
        let cut = x.ncols() / 2;
        let parts: Vec<_> = [x.slice(ndarray::s![.., ..cut]), x.slice(ndarray::s![.., cut..])]
            .into_iter()
            .filter(|v| v.ncols() > 0)
            .map(|v| explainer.influence(v, y.view()).unwrap())
            .collect();
        let merged = nnlens_influence::Influence::concat_features(&parts).unwrap();
        prop_assert_eq!(merged.values.shape(), whole.values.shape());
        for (a, b) in merged.values.iter().zip(whole.values.iter()) {
            prop_assert!((a - b).abs() <= 1e-15 || (a.is_nan() && b.is_nan()));
        }
    }
}
