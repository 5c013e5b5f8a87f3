//! Bad inputs are errors that say what is wrong; the metrics are registered.

use ndarray::{Array2, array};
use nnlens_core::CoreError;
use nnlens_influence::{
    Bootstrap, Explainer, InfluenceError, InfluenceMetric, Options, PerformanceMetric, Score,
    Solver, Truth,
};

fn explainer() -> Explainer {
    Explainer::new(Options::images(Solver::Exact)).unwrap()
}

#[test]
fn empty_inputs() {
    let e = explainer().fit(Array2::<f64>::zeros((0, 3)).view()).unwrap_err();
    assert!(matches!(e, InfluenceError::Empty { .. }), "{e}");
    let e = explainer().fit(Array2::<f64>::zeros((4, 0)).view()).unwrap_err();
    assert!(e.to_string().contains("no columns"), "{e}");
    let x = array![[1.0], [2.0]];
    let e = explainer().influence(x.view(), Array2::<f64>::zeros((2, 0)).view()).unwrap_err();
    assert!(e.to_string().contains("predictions"), "{e}");
    let e = explainer().fit_targets(x.view(), Array2::<f64>::zeros((0, 1)).view()).unwrap_err();
    assert!(e.to_string().contains("targets"), "{e}");
}

#[test]
fn row_mismatches() {
    let x = array![[1.0], [2.0], [3.0]];
    let y = array![[0.5], [0.5]];
    let e = explainer().influence(x.view(), y.view()).unwrap_err();
    assert_eq!(
        e,
        InfluenceError::RowMismatch { what: "the predictions".into(), features: 3, got: 2 }
    );
    let fit = explainer().fit(x.view()).unwrap();
    assert!(fit.influence(y.view()).is_err());
    let y3 = array![[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]];
    let e = fit.performance(y3.view(), &Truth::Labels(&[0, 1]), Score::Accuracy).unwrap_err();
    assert!(matches!(e, InfluenceError::RowMismatch { got: 2, .. }), "{e}");
    let targets = array![[1.0, 2.0]];
    let e = explainer().fit_targets(x.view(), targets.view()).unwrap_err();
    assert!(matches!(e, InfluenceError::Shape { .. }), "{e}");
}

#[test]
fn non_finite_values_are_located() {
    let x = array![[1.0, 2.0], [3.0, f64::NAN], [0.0, 1.0]];
    let e = explainer().fit(x.view()).unwrap_err();
    assert_eq!(e.to_string(), "the features: non-finite value (NaN) at row 1, column 1");
    let x = array![[1.0], [2.0]];
    let y = array![[0.5, 0.5], [f64::INFINITY, 0.0]];
    let e = explainer().influence(x.view(), y.view()).unwrap_err();
    assert!(
        matches!(e, InfluenceError::NonFinite { row: 1, column: 0, value, .. } if value == f64::INFINITY),
        "{e}"
    );
}

#[test]
fn labels_outside_the_classes() {
    let x = array![[1.0], [2.0], [3.0]];
    let y = array![[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]];
    let e = explainer()
        .performance(x.view(), y.view(), &Truth::Labels(&[0, 2, 1]), Score::LogLoss)
        .unwrap_err();
    assert_eq!(e, InfluenceError::Label { label: 2, row: 1, classes: 2 });
    assert!(matches!(CoreError::from(e), CoreError::Label { label: 2, row: 1, classes: 2 }));
}

#[test]
fn options_out_of_their_domain() {
    let bad = |o: Options| Explainer::new(o).unwrap_err().to_string();
    for alpha in [0.0, 0.5, -0.1, f64::NAN] {
        assert!(bad(Options { alpha, ..Options::default() }).contains("'alpha'"), "{alpha}");
    }
    assert!(bad(Options { taus: vec![], ..Options::default() }).contains("'taus'"));
    assert!(bad(Options { taus: vec![0.0, 1.5], ..Options::default() }).contains("tau 1 is 1.5"));
    assert!(bad(Options { taus: vec![f64::NAN], ..Options::default() }).contains("'taus'"));
    let solver = Solver::EthikCompatible { tol: 0.0 };
    assert!(bad(Options { solver, ..Options::default() }).contains("'tol'"));
    let boot = |n_samples, sample_frac, conf_level| Options {
        bootstrap: Some(Bootstrap { n_samples, sample_frac, conf_level, seed: 0 }),
        ..Options::default()
    };
    assert!(bad(boot(1, 0.8, 0.05)).contains("'n_samples'"));
    assert!(bad(boot(10, 1.0, 0.05)).contains("'sample_frac'"));
    assert!(bad(boot(10, 0.8, 0.5)).contains("'conf_level'"));
    assert!(Explainer::new(boot(10, 0.8, 0.05)).is_ok());
    let zero = Bootstrap { n_samples: 3, sample_frac: 0.0, conf_level: 0.05, seed: 0 };
    assert!(zero.masks(10).is_err());
}

#[test]
fn errors_convert_into_core_errors() {
    let e: CoreError = InfluenceError::parameter("alpha", "bad").into();
    assert!(matches!(e, CoreError::InvalidParameters { .. }));
    let e: CoreError = InfluenceError::Empty { what: "x".into() }.into();
    assert!(matches!(e, CoreError::Empty(_)));
}

#[test]
fn both_metrics_are_registered() {
    let entry = nnlens_core::metric("influence").unwrap();
    assert_eq!(entry.family, "influence");
    let m = (entry.build)(&serde_json::json!({"taus": [-1, 0, 1], "solver": "ethik"})).unwrap();
    assert_eq!(m.name(), "influence");
    let concrete = m.as_any().downcast_ref::<InfluenceMetric>().unwrap();
    assert_eq!(concrete.options.solver, Solver::ethik());
    assert_eq!(concrete.explainer().options().taus, vec![-1.0, 0.0, 1.0]);
    assert_eq!(m.parameters()["tol"], 1e-4);

    let entry = nnlens_core::metric("performance").unwrap();
    assert_eq!(entry.family, "influence");
    let m = (entry.build)(&serde_json::Value::Null).unwrap();
    let concrete = m.as_any().downcast_ref::<PerformanceMetric>().unwrap();
    assert_eq!(concrete.score, Score::Accuracy);
    assert_eq!(m.parameters()["metric"], "accuracy");
    let e = (entry.build)(&serde_json::json!({"metric": "auc"})).err().unwrap();
    assert!(matches!(e, CoreError::InvalidParameters { .. }), "{e}");
    let e = (nnlens_core::metric("influence").unwrap().build)(&serde_json::json!({"x": 1}));
    assert!(e.err().unwrap().to_string().contains("unknown parameter"));
}

#[test]
fn results_serialise() {
    let x = array![[0.0, 1.0], [0.0, 1.0], [2.0, 1.0], [5.0, 1.0]];
    let y = array![[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]];
    let influence = explainer().influence(x.view(), y.view()).unwrap();
    let json = serde_json::to_value(&influence).unwrap();
    assert_eq!(json["options"]["solver"]["kind"], "exact");
    assert_eq!(json["projection"]["status"]["data"][0], "edge-limit");
    assert_eq!(json["projection"]["xi"]["data"][0], "-inf");
    let back: nnlens_influence::Influence = serde_json::from_value(json).unwrap();
    assert_eq!(back, influence);
}
