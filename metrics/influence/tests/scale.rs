//! The size of ethik's MNIST example (2000 images x 784 pixels x 10 classes, 3 taus) on
//! synthetic sparse images: every pair solved, values consistent, and fast.

use std::time::Instant;

use ndarray::Array2;
use nnlens_influence::{Explainer, Options, Score, Solver, Status, Truth};

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn synthetic_mnist() -> (Array2<f64>, Array2<f64>, Vec<usize>) {
    let (n, p, k) = (2000, 784, 10);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let labels: Vec<usize> = (0..n).map(|_| (rng.next() % k as u64) as usize).collect();
    // Pixel (r, c) lights up more often near the centre and for some classes; border pixels are
    // mostly (some always) off, as in MNIST.
    let x = Array2::from_shape_fn((n, p), |(i, j)| {
        let (r, c) = ((j / 28) as f64 - 13.5, (j % 28) as f64 - 13.5);
        let centre = (-(r * r + c * c) / 60.0).exp();
        let class_bias = if (j + labels[i] * 37) % 10 < 3 { 0.3 } else { 0.0 };
        let u = (rng.next() % 10_000) as f64 / 10_000.0;
        if u < centre * 0.6 + class_bias * centre { (rng.next() % 256) as f64 } else { 0.0 }
    });
    let y = Array2::from_shape_fn((n, k), |(i, c)| if c == labels[i] { 0.82 } else { 0.02 });
    (x, y, labels)
}

#[test]
fn mnist_sized_influence_is_fast_and_complete() {
    let (x, y, labels) = synthetic_mnist();
    for solver in [Solver::Exact, Solver::ethik()] {
        let explainer = Explainer::new(Options::images(solver)).unwrap();
        let start = Instant::now();
        let fit = explainer.fit(x.view()).unwrap();
        let solved = start.elapsed();
        let influence = fit.influence(y.view()).unwrap();
        let total = start.elapsed();
        println!("{solver:?}: fit {solved:?}, fit + influence {total:?}");
        let accuracy = fit.performance(y.view(), &Truth::Labels(&labels), Score::Accuracy).unwrap();
        assert_eq!(influence.values.shape(), [3, 784, 10]);
        assert_eq!(accuracy.values.dim(), (3, 784));
        assert!(influence.values.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        assert!(influence.projection.issues.is_empty(), "{:?}", &influence.projection.issues[..1]);
        // Each row of y sums to 1, so each re-weighted mean does too.
        for t in 0..3 {
            for f in 0..784 {
                let s: f64 = (0..10).map(|k| influence.values[[t, f, k]]).sum();
                assert!((s - 1.0).abs() < 1e-12);
            }
        }
        if solver == Solver::Exact {
            let statuses = fit.solutions();
            assert!(statuses.row(0).iter().any(|s| s.status == Status::EdgeLimit));
            assert!(statuses.row(2).iter().any(|s| s.status == Status::Converged));
        }
        // Generous bound (the measured time is printed): a regression to per-pair loops of
        // weighted means or a solver that creeps towards infinity would exceed it.
        assert!(total.as_secs_f64() < 30.0, "{total:?}");
    }
}
