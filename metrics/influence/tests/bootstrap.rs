//! Bootstrap bands: seeded, deterministic, and sensible.

use ndarray::Array2;
use nnlens_influence::{Bootstrap, Explainer, Options, Score, Truth, quantile_linear};

fn data(n: usize) -> (Array2<f64>, Array2<f64>, Vec<usize>) {
    // Feature 0 drives class 1; feature 1 is noise; feature 2 is binary with a rare maximum.
    let x = Array2::from_shape_fn((n, 3), |(i, j)| match j {
        0 => ((i * 37) % 101) as f64,
        1 => ((i * 53 + 11) % 17) as f64,
        _ => f64::from(u8::from(i % 40 == 0)),
    });
    let y = Array2::from_shape_fn((n, 2), |(i, k)| {
        let p = 0.1 + 0.8 * x[[i, 0]] / 100.0;
        if k == 1 { p } else { 1.0 - p }
    });
    let labels = (0..n).map(|i| usize::from((i * 13) % 10 < 6)).collect();
    (x, y, labels)
}

fn options(seed: u64) -> Options {
    Options {
        taus: vec![-1.0, -0.5, 0.0, 0.5, 1.0],
        bootstrap: Some(Bootstrap { n_samples: 60, sample_frac: 0.8, conf_level: 0.05, seed }),
        ..Options::default()
    }
}

#[test]
fn bands_are_deterministic_for_a_seed() {
    let (x, y, _) = data(300);
    let a = Explainer::new(options(7)).unwrap().influence(x.view(), y.view()).unwrap();
    let b = Explainer::new(options(7)).unwrap().influence(x.view(), y.view()).unwrap();
    let c = Explainer::new(options(8)).unwrap().influence(x.view(), y.view()).unwrap();
    assert_eq!(a, b);
    let (ba, bc) = (a.bands.unwrap(), c.bands.unwrap());
    assert_eq!(ba.n_samples, 60);
    assert_ne!(ba.low, bc.low);
    // The point estimate does not depend on the masks.
    assert_eq!(a.values, c.values);
}

#[test]
fn bands_contain_the_estimate_at_tau_zero() {
    let (x, y, labels) = data(400);
    let explainer = Explainer::new(options(3)).unwrap();
    let fit = explainer.fit(x.view()).unwrap();
    let influence = fit.influence(y.view()).unwrap();
    let bands = influence.bands.as_ref().unwrap();
    for f in 0..3 {
        for k in 0..2 {
            let (v, lo, hi) =
                (influence.values[[2, f, k]], bands.low[[2, f, k]], bands.high[[2, f, k]]);
            assert!(lo < v && v < hi, "feature {f} class {k}: {v} not in [{lo}, {hi}]");
            assert!((bands.mean[[2, f, k]] - v).abs() < hi - lo);
        }
    }
    // Everywhere: low <= mean <= high, and a non-degenerate band.
    for ((lo, m), hi) in bands.low.iter().zip(&bands.mean).zip(&bands.high) {
        assert!(lo <= m && m <= hi && lo < hi, "{lo} {m} {hi}");
    }
    let perf = fit.performance(y.view(), &Truth::Labels(&labels), Score::Accuracy).unwrap();
    let pb = perf.bands.as_ref().unwrap();
    for f in 0..3 {
        let v = perf.values[[2, f]];
        assert!(pb.low[[2, f]] < v && v < pb.high[[2, f]]);
    }
}

#[test]
fn masks_without_the_extreme_rows_use_the_masks_extreme() {
    // Feature 2 is 1 on rows 0, 40 and 80 only; its target 1 is its maximum (an edge). With
    // 10 % masks most masks miss those rows and fall back to the rows at the mask's own maximum.
    let (x, y, _) = data(120);
    let targets = ndarray::array![[50.0, 8.0, 1.0]];
    let mut opts = options(1);
    opts.bootstrap =
        Some(Bootstrap { n_samples: 200, sample_frac: 0.1, conf_level: 0.05, seed: 1 });
    let fit = Explainer::new(opts).unwrap().fit_targets(x.view(), targets.view()).unwrap();
    let influence = fit.influence(y.view()).unwrap();
    let bands = influence.bands.unwrap();
    for v in bands.low.iter().chain(bands.high.iter()).chain(bands.mean.iter()) {
        assert!(v.is_finite() && (0.0..=1.0).contains(v), "{v}");
    }
    let rows: Vec<usize> = (0..120).filter(|i| i % 40 == 0).collect();
    let edge: f64 = rows.iter().map(|&i| y[[i, 1]]).sum::<f64>() / rows.len() as f64;
    assert!((influence.values[[0, 2, 1]] - edge).abs() < 1e-15);
    assert!(bands.low[[0, 2, 1]] < edge);
}

/// The band of one (tau, feature, class) computed naively: for each mask the softmax of
/// `xi z` over the mask's rows, the weighted mean, then numpy's linear quantiles.
fn brute_force_band(
    fit: &nnlens_influence::Fit,
    x: &Array2<f64>,
    y: &Array2<f64>,
    masks: &[Vec<bool>],
    (t, f, k): (usize, usize, usize),
    conf: f64,
) -> (f64, f64, f64) {
    let st = fit.stats()[f];
    let xi = fit.solutions()[[t, f]].tilt.xi();
    let mut values: Vec<f64> = masks
        .iter()
        .map(|mask| {
            let rows: Vec<usize> = (0..x.nrows()).filter(|&i| mask[i]).collect();
            let logits: Vec<f64> = rows.iter().map(|&i| xi * st.standardise(x[[i, f]])).collect();
            let c = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = logits.iter().map(|l| (l - c).exp()).collect();
            let sum: f64 = e.iter().sum();
            rows.iter().zip(&e).map(|(&i, w)| w / sum * y[[i, k]]).sum()
        })
        .collect();
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    values.sort_by(f64::total_cmp);
    (mean, quantile_linear(&values, conf), quantile_linear(&values, 1.0 - conf))
}

#[test]
fn bands_match_a_brute_force_bootstrap() {
    // 3000 rows and 300 masks: the masks are processed in more than one chunk.
    let (x, y, _) = data(3000);
    let boot = Bootstrap { n_samples: 300, sample_frac: 0.5, conf_level: 0.1, seed: 5 };
    let mut opts = options(5);
    opts.bootstrap = Some(boot);
    let fit = Explainer::new(opts).unwrap().fit(x.view()).unwrap();
    let influence = fit.influence(y.view()).unwrap();
    let bands = influence.bands.as_ref().unwrap();
    let masks = boot.masks(3000).unwrap();
    assert_eq!(masks, boot.masks(3000).unwrap());
    let kept = masks.iter().flatten().filter(|&&m| m).count() as f64 / (300.0 * 3000.0);
    assert!((kept - 0.5).abs() < 0.01, "{kept}");
    for (t, f, k) in [(0, 0, 1), (4, 0, 0), (1, 1, 1), (3, 1, 0)] {
        let (mean, low, high) = brute_force_band(&fit, &x, &y, &masks, (t, f, k), 0.1);
        assert!((bands.mean[[t, f, k]] - mean).abs() < 1e-12, "{t} {f} {k}");
        assert!((bands.low[[t, f, k]] - low).abs() < 1e-12, "{t} {f} {k}");
        assert!((bands.high[[t, f, k]] - high).abs() < 1e-12, "{t} {f} {k}");
    }
}
