//! Small cases checked against closed forms and a brute-force solution computed here.

use ndarray::{Array1, Array2, array};
use nnlens_influence::{
    Explainer, FeatureStats, Options, Score, Solver, Status, Tilt, Truth, quantile_linear,
    taus_from_count,
};

fn options(taus: Vec<f64>) -> Options {
    Options { taus, ..Options::default() }
}

/// The root of `sum softmax(xi z) z = t` by 300 bisection steps (no Newton, no shortcuts).
fn bisect_xi(z: &[f64], t: f64) -> f64 {
    let m = |xi: f64| {
        let c = z.iter().map(|v| xi * v).fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (xi * v - c).exp()).collect();
        e.iter().zip(z).map(|(e, z)| e * z).sum::<f64>() / e.iter().sum::<f64>()
    };
    let (mut lo, mut hi) = (-1e3, 1e3);
    for _ in 0..300 {
        let mid = 0.5 * (lo + hi);
        if m(mid) < t {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[test]
fn four_rows_match_a_brute_force_solution() {
    let x = array![[0.0], [1.0], [3.0], [6.0]];
    let y = array![[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8]];
    let fit = Explainer::new(options(vec![-0.7, 0.0, 0.4, 1.0])).unwrap().fit(x.view()).unwrap();
    let st = fit.stats()[0];
    // mean 2.5, std sqrt(7); quantiles 0.15 and 5.55 (numpy linear).
    assert_eq!(st.mean, 2.5);
    assert!((st.std - 7.0f64.sqrt()).abs() < 1e-15);
    assert!((st.q_low - 0.15).abs() < 1e-12 && (st.q_high - 5.55).abs() < 1e-12);
    let influence = fit.influence(y.view()).unwrap();
    let z: Vec<f64> = x.column(0).iter().map(|v| (v - st.mean) / st.std).collect();
    for (t, tau) in [-0.7, 0.0, 0.4, 1.0].into_iter().enumerate() {
        let target = if tau < 0.0 { 2.5 + tau * (2.5 - 0.15) } else { 2.5 + tau * (5.55 - 2.5) };
        assert!((fit.targets()[[t, 0]] - target).abs() < 1e-12);
        let xi = bisect_xi(&z, (target - st.mean) / st.std);
        let sol = fit.solutions()[[t, 0]];
        assert!((sol.tilt.xi() - xi).abs() < 1e-9, "tau {tau}: {sol:?} vs {xi}");
        let e: Vec<f64> = z.iter().map(|v| (xi * v).exp()).collect();
        let sum: f64 = e.iter().sum();
        let w = fit.weights(t, 0).unwrap().unwrap();
        for i in 0..4 {
            assert!((w[i] - e[i] / sum).abs() < 1e-12, "tau {tau} row {i}");
        }
        for k in 0..2 {
            let want: f64 = (0..4).map(|i| e[i] / sum * y[[i, k]]).sum();
            assert!((influence.values[[t, 0, k]] - want).abs() < 1e-12);
        }
    }
    assert_eq!(fit.solutions()[[1, 0]].status, Status::Mean);
    assert_eq!(fit.solutions()[[1, 0]].tilt, Tilt::Finite(0.0));
}

#[test]
fn two_valued_feature_has_closed_form_weights() {
    // For x in {0, 1} the weighted mean is the weight on the 1s: a target t puts t / n1 on each
    // row at 1 and (1 - t) / n0 on each row at 0.
    let xs = [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    let x = Array2::from_shape_vec((8, 1), xs.to_vec()).unwrap();
    let targets = array![[0.1], [0.3], [0.375], [0.8], [0.999]];
    let fit =
        Explainer::new(Options::default()).unwrap().fit_targets(x.view(), targets.view()).unwrap();
    for (r, &t) in targets.column(0).iter().enumerate() {
        let w = fit.weights(r, 0).unwrap().unwrap();
        for (i, &v) in xs.iter().enumerate() {
            let want = if v == 1.0 { t / 3.0 } else { (1.0 - t) / 5.0 };
            assert!((w[i] - want).abs() < 1e-13, "target {t}, row {i}: {} vs {want}", w[i]);
        }
    }
    assert_eq!(fit.solutions()[[2, 0]].status, Status::Mean); // 3/8 is the mean
}

#[test]
fn edge_targets_give_the_limit_weights() {
    let x = array![[2.0, 5.0], [0.0, 5.0], [0.0, 9.0], [7.0, 9.0], [7.0, 1.0]];
    let y = array![[1.0], [2.0], [3.0], [4.0], [5.0]];
    let targets = array![[0.0, 1.0], [7.0, 9.0]];
    let fit =
        Explainer::new(Options::default()).unwrap().fit_targets(x.view(), targets.view()).unwrap();
    assert_eq!(fit.solutions()[[0, 0]].tilt, Tilt::ToMinimum);
    assert_eq!(fit.solutions()[[1, 1]].tilt, Tilt::ToMaximum);
    assert_eq!(fit.solutions()[[0, 0]].status, Status::EdgeLimit);
    let w = fit.weights(0, 0).unwrap().unwrap();
    assert_eq!(w.to_vec(), vec![0.0, 0.5, 0.5, 0.0, 0.0]);
    let w = fit.weights(1, 1).unwrap().unwrap();
    assert_eq!(w.to_vec(), vec![0.0, 0.0, 0.5, 0.5, 0.0]);
    let w = fit.weights(0, 1).unwrap().unwrap();
    assert_eq!(w.to_vec(), vec![0.0, 0.0, 0.0, 0.0, 1.0]);
    let influence = fit.influence(y.view()).unwrap();
    assert_eq!(influence.values[[0, 0, 0]], 2.5);
    assert_eq!(influence.values[[1, 0, 0]], 4.5);
    assert_eq!(influence.values[[1, 1, 0]], 3.5);
    assert_eq!(influence.projection.xi[[0, 0]], f64::NEG_INFINITY);
    assert!(influence.projection.issues.is_empty());
}

#[test]
fn a_target_outside_the_range_is_an_issue_not_a_number() {
    let x = array![[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]];
    let y = array![[0.1, 0.9], [0.5, 0.5], [0.9, 0.1]];
    let targets = array![[2.5, 2.0], [-0.5, 3.0 + 1e-9]];
    let fit =
        Explainer::new(Options::default()).unwrap().fit_targets(x.view(), targets.view()).unwrap();
    let influence = fit.influence(y.view()).unwrap();
    let issues = &influence.projection.issues;
    assert_eq!(issues.len(), 3, "{issues:?}");
    let where_: Vec<(usize, usize)> = issues.iter().map(|i| (i.tau_index, i.feature)).collect();
    assert_eq!(where_, vec![(0, 0), (1, 0), (1, 1)]);
    assert!(issues.iter().all(|i| i.status == Status::OutsideRange && i.tau.is_none()));
    assert!(issues[0].message.contains("outside the range [0, 2]"), "{}", issues[0].message);
    for (t, f) in where_ {
        assert!(influence.values[[t, f, 0]].is_nan() && influence.values[[t, f, 1]].is_nan());
        assert!(influence.projection.xi[[t, f]].is_nan());
        assert!(fit.weights(t, f).unwrap().is_none());
    }
    // The pair in range still has its value (target 2 is interior for feature 1).
    assert!(influence.values[[0, 1, 0]].is_finite());
    let perf = fit.performance(y.view(), &Truth::Labels(&[1, 0, 0]), Score::Accuracy).unwrap();
    assert!(perf.values[[0, 0]].is_nan() && perf.values[[0, 1]].is_finite());
    // NaN serialises (as null) instead of failing.
    let json = serde_json::to_string(&influence).unwrap();
    assert!(json.contains("null") && json.contains("outside-range"));
}

#[test]
fn a_constant_feature_has_uniform_weights() {
    let x = array![[3.0, 0.0], [3.0, 1.0], [3.0, 2.0]];
    let y = array![[0.0], [3.0], [9.0]];
    let fit = Explainer::new(options(vec![-1.0, 0.5, 1.0])).unwrap().fit(x.view()).unwrap();
    let influence = fit.influence(y.view()).unwrap();
    for t in 0..3 {
        assert_eq!(fit.solutions()[[t, 0]].status, Status::Constant);
        assert_eq!(fit.targets()[[t, 0]], 3.0);
        assert_eq!(influence.values[[t, 0, 0]], 4.0);
    }
    assert_eq!(fit.stats()[0].standardise(3.0), 0.0);
}

#[test]
fn weighted_accuracy_and_losses_by_hand() {
    let x = array![[0.0], [1.0], [1.0], [2.0]];
    let y = array![[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]];
    let labels = [0, 1, 1, 1];
    let fit = Explainer::new(options(vec![0.0, 1.0])).unwrap().fit(x.view()).unwrap();
    let w = fit.weights(1, 0).unwrap().unwrap();
    let acc = fit.performance(y.view(), &Truth::Labels(&labels), Score::Accuracy).unwrap();
    let want = w[0] + w[1] + w[3]; // row 2 predicts class 0
    assert!((acc.values[[1, 0]] - want).abs() < 1e-14);
    assert!((acc.values[[0, 0]] - 0.75).abs() < 1e-15);
    let ll = fit.performance(y.view(), &Truth::Labels(&labels), Score::LogLoss).unwrap();
    let want: f64 =
        -(w[0] * 0.8f64.ln() + w[1] * 0.7f64.ln() + w[2] * 0.4f64.ln() + w[3] * 0.9f64.ln());
    assert!((ll.values[[1, 0]] - want).abs() < 1e-14);
    let truth = array![[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]];
    let mse =
        fit.performance(y.view(), &Truth::Values(truth.view()), Score::MeanSquaredError).unwrap();
    let sq = |i: usize| {
        ((y[[i, 0]] - truth[[i, 0]]).powi(2) + (y[[i, 1]] - truth[[i, 1]]).powi(2)) / 2.0
    };
    let want: f64 = (0..4).map(|i| w[i] * sq(i)).sum();
    assert!((mse.values[[1, 0]] - want).abs() < 1e-14);
    let d = acc.difference(1, 0).unwrap();
    assert!((d[0] - (acc.values[[1, 0]] - 0.75)).abs() < 1e-15);
    assert!(acc.difference(2, 0).is_err());
}

#[test]
fn ethiks_tau_grid_and_quantiles() {
    let g = taus_from_count(41).unwrap();
    assert_eq!(g.len(), 41);
    assert_eq!((g[0], g[1], g[20], g[39], g[40]), (-1.0, -0.95, 0.0, 0.95, 1.0));
    assert_eq!(taus_from_count(2).unwrap(), vec![-1.0, 0.0, 1.0]);
    assert_eq!(taus_from_count(1).unwrap(), vec![0.0]);
    let g = taus_from_count(6).unwrap();
    assert_eq!(g.len(), 7);
    assert_eq!((g[3], g[6]), (0.0, 1.0));
    assert!(taus_from_count(0).is_err());
    assert_eq!(quantile_linear(&[0.0, 10.0], 0.25), 2.5);
    let st = FeatureStats { mean: 1.0, std: 1.0, min: 0.0, max: 5.0, q_low: 0.5, q_high: 0.8 };
    // The upper quantile is below the mean: that side is flat.
    assert_eq!(st.target(1.0), 1.0);
    assert_eq!(st.target(-1.0), 0.5);
}

#[test]
fn ethik_compatible_mode_matches_scipy() {
    // xi from ethik 0.0.4's compute_ksi (scipy BFGS, tol 1e-4) on this feature, computed with
    // scipy 1.17: `minimize(F, [0.0], jac=True, method="BFGS")` with F raising when
    // (m - t)^2 < 1e-4; the targets are tau = -1, -0.5, 0.5, 1 with alpha = 0.05.
    let values: Vec<f64> =
        (0..40).map(|i| ((i * 37) % 23) as f64 + if i % 7 == 0 { 30.0 } else { 0.0 }).collect();
    let x = Array2::from_shape_vec((40, 1), values.clone()).unwrap();
    let explainer = Explainer::new(Options {
        taus: vec![-1.0, -0.5, 0.5, 1.0],
        solver: Solver::ethik(),
        ..Options::default()
    })
    .unwrap();
    let fit = explainer.fit(x.view()).unwrap();
    let st = fit.stats()[0];
    let z: Array1<f64> = x.column(0).mapv(|v| (v - st.mean) / st.std);
    for t in 0..4 {
        let sol = fit.solutions()[[t, 0]];
        assert_eq!(sol.status, Status::Converged);
        let w = fit.weights(t, 0).unwrap().unwrap();
        let m: f64 = w.dot(&z);
        let tz = (fit.targets()[[t, 0]] - st.mean) / st.std;
        assert!((m - tz).powi(2) < 1e-4, "tau row {t}: {m} vs {tz}");
    }
    let want = SCIPY_XI;
    for (t, &xi) in want.iter().enumerate() {
        let got = fit.solutions()[[t, 0]].tilt.xi();
        assert!((got - xi).abs() < 1e-9, "tau row {t}: {got} vs scipy {xi}");
    }
}

/// See `ethik_compatible_mode_matches_scipy`.
const SCIPY_XI: [f64; 4] =
    [-5.086414549143434, -0.9000160294390483, 0.7227451610957936, 1.3986338789756936];
