//! Values by hand and properties of the measures, on small models and arrays built here.

use ndarray::{Array, ArrayD, ArrayViewD, Axis, IxDyn};
use nnlens_core::{
    Activations, ArrayDataSet, CoreError, DataSet, InputStructure, LayerStructure, Model,
    ModelStructure, TransformationsDataSet,
};
use nnlens_invariance::{
    ArraySource, Kind, MeasureResult, MeasureSpec, MeasureState, ModelSource, Roll, compute,
};
use proptest::prelude::*;

fn array(shape: &[usize], values: Vec<f64>) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), values).unwrap()
}

fn run(kind: Kind, a: &ArrayD<f64>) -> MeasureResult {
    let mut source =
        ArraySource::new(a.clone(), "l", None).unwrap().with_transformations(Box::new(Roll));
    compute(&MeasureSpec::new(kind), &mut source).unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn values_by_hand() {
    // Three samples (rows), two transformations (columns), one activation:
    // rows (1, 3), (2, 2), (0, 4); columns (1, 2, 0), (3, 2, 4).
    let a = array(&[3, 2, 1], vec![1.0, 3.0, 2.0, 2.0, 0.0, 4.0]);
    let sqrt2 = 2f64.sqrt();
    let expect = [
        // Row stds sqrt(2), 0, 2 sqrt(2): mean sqrt(2). Column stds 1 and 1.
        (Kind::Tvi, sqrt2),
        (Kind::Svi, 1.0),
        (Kind::Nvi, sqrt2),
        // Row variances 2, 0, 8: mean 10/3; column variances 1, 1.
        (Kind::Variance, 10.0 / 3.0),
        (Kind::NormalizedVariance, 10.0 / 3.0),
        // Group means 1 and 3: MSB = 3 * (1 + 1) / 1 = 6; MSW = (2 + 2) / ((3 - 1) * 2) = 1.
        (Kind::AnovaF, 6.0),
        // Row distances 2, 0, 4; column mean distances (1 + 1 + 2) / 3 each.
        (Kind::Tdi, 2.0),
        (Kind::Sdi, 4.0 / 3.0),
        (Kind::Ndi, 1.5),
    ];
    for (kind, want) in expect {
        let r = run(kind, &a);
        assert!(close(r.layers[0].values[0], want, 1e-14), "{kind:?}: {:?}", r.layers[0].values);
        assert!(close(r.total, want, 1e-14), "{kind:?} total {}", r.total);
    }
}

#[test]
fn seed_and_tmeasures_divide_differently() {
    // Constant activations: the seed package divides 0 by 0 (NaN), tmeasures says 1.
    let a = array(&[3, 2, 1], vec![2.0; 6]);
    assert!(run(Kind::NormalizedVariance, &a).total.is_nan());
    assert_eq!(run(Kind::Nvi, &a).total, 1.0);
    // Identical samples: SV = 0, TV > 0: inf, and a layer with no finite value is NaN.
    let b = array(&[2, 2, 1], vec![1.0, 2.0, 1.0, 2.0]);
    let nvi = run(Kind::Nvi, &b);
    assert_eq!(nvi.layers[0].values[0], f64::INFINITY);
    assert!(nvi.layers[0].value.is_nan());
}

#[test]
fn bad_inputs_are_clear_errors() {
    let nan = array(&[2, 2, 1], vec![1.0, f64::NAN, 0.0, 0.0]);
    let e = ArraySource::new(nan, "l", None).unwrap_err().to_string();
    assert!(e.contains("NaN") && e.contains("[0, 1, 0]"), "{e}");
    assert!(ArraySource::new(array(&[2, 2], vec![0.0; 4]), "l", None).is_err());
    assert!(ArraySource::new(array(&[0, 2, 1], vec![]), "l", None).is_err());
    assert!(ArraySource::new(array(&[1, 2, 3], vec![0.0; 6]), "l", Some(0)).is_err());
    // DSES needs feature maps; same-equivariance needs the transformations.
    let a = array(&[2, 2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 1.0, 2.0]);
    let mut s =
        ArraySource::new(a.clone(), "l", None).unwrap().with_transformations(Box::new(Roll));
    let e = compute(&MeasureSpec::new(Kind::Dses), &mut s).unwrap_err().to_string();
    assert!(e.contains("feature maps"), "{e}");
    let mut s = ArraySource::new(a, "l", None).unwrap();
    let e = compute(&MeasureSpec::new(Kind::Tvse), &mut s).unwrap_err().to_string();
    assert!(e.contains("transformations"), "{e}");
    let e = compute(&MeasureSpec::new(Kind::Goodfellow), &mut s).unwrap_err().to_string();
    assert!(e.contains("identity"), "{e}");
    let e = MeasureSpec::from_json("anova", &serde_json::json!({ "alpha": 1.5 })).unwrap_err();
    assert!(e.to_string().contains("alpha"), "{e}");
    let e = MeasureSpec::from_json("nvi", &serde_json::json!({ "nope": 1 })).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

#[test]
fn result_json_round_trips_with_non_finite_values() {
    let b = array(&[2, 2, 1], vec![1.0, 2.0, 1.0, 2.0]);
    let r = run(Kind::Nvi, &b);
    let text = serde_json::to_string(&r).unwrap();
    assert!(text.contains("\"inf\"") && text.contains("\"nan\""), "{text}");
    let back: MeasureResult = serde_json::from_str(&text).unwrap();
    assert_eq!(back.layers[0].values[0], f64::INFINITY);
    assert!(back.total.is_nan());
}

fn merged_equals_whole(kind: Kind, a: &ArrayD<f64>, split: usize) -> Result<(), TestCaseError> {
    let spec = MeasureSpec::new(kind);
    let source = |a: ArrayD<f64>| {
        ArraySource::new(a, "l", None)
            .unwrap()
            .with_transformations(Box::new(Roll))
            .with_rows_per_chunk(2)
    };
    let whole = MeasureState::accumulate(&spec, &mut source(a.clone())).unwrap().finish().unwrap();
    let first = a.slice_axis(Axis(0), (0..split).into()).to_owned();
    let second = a.slice_axis(Axis(0), (split..a.shape()[0]).into()).to_owned();
    let mut merged = MeasureState::accumulate(&spec, &mut source(first)).unwrap();
    merged.merge(&MeasureState::accumulate(&spec, &mut source(second)).unwrap()).unwrap();
    // The state travels as JSON between shards.
    let merged: MeasureState =
        serde_json::from_str(&serde_json::to_string(&merged).unwrap()).unwrap();
    let merged = merged.finish().unwrap();
    for (x, y) in merged.layers[0].values.iter().zip(&whole.layers[0].values) {
        prop_assert!(
            (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-12 * y.abs().max(1.0),
            "{kind:?}: {x} vs {y}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn merging_two_halves_equals_the_whole(
        (s, t, n, values) in (2usize..9, 2usize..5, 1usize..5).prop_flat_map(|(s, t, n)| {
            (Just(s), Just(t), Just(n), prop::collection::vec(-100.0f64..100.0, s * t * n))
        }),
        split in 1usize..8,
    ) {
        let a = array(&[s, t, n], values);
        let split = split.min(s - 1);
        for kind in [
            Kind::Tvi, Kind::Svi, Kind::Nvi, Kind::Tvse, Kind::Svse, Kind::Variance,
            Kind::NormalizedVariance, Kind::AnovaF, Kind::Tdi,
        ] {
            merged_equals_whole(kind, &a, split)?;
        }
    }

    #[test]
    fn identical_columns_give_zero_transformation_variance(
        (s, t, values) in (2usize..7, 2usize..5).prop_flat_map(|(s, t)| {
            (Just(s), Just(t), prop::collection::vec(-10.0f64..10.0, s * 3))
        }),
    ) {
        // Every transformation is the identity: each row repeats its sample.
        let a = Array::from_shape_fn(IxDyn(&[s, t, 3]), |i| values[i[0] * 3 + i[2]]);
        prop_assert!(run(Kind::Tvi, &a).layers[0].values.iter().all(|&v| v == 0.0));
        prop_assert!(run(Kind::Variance, &a).total == 0.0);
        prop_assert!(run(Kind::Tdi, &a).total == 0.0);
    }
}

// ---- Models and datasets for the model path -------------------------------------------------

fn layer(name: &str, shape: Vec<usize>, channel_axis: Option<usize>) -> LayerStructure {
    LayerStructure {
        name: name.into(),
        tensor: name.into(),
        op: "Test".into(),
        shape,
        channel_axis,
    }
}

/// Images `[h, w]` in; layers `map` (the image as one channel, `[1, h, w]`), `square`
/// (`[1, h, w]`, x squared), `gap` (the image's mean, `[1]`) and `constant` (`[2]`, ignores the
/// input).
struct MapModel {
    structure: ModelStructure,
}

impl MapModel {
    fn new(h: usize, w: usize) -> Self {
        let input = InputStructure {
            name: "x".into(),
            shape: vec![h, w],
            channel_axis: None,
            dtype: "f32".into(),
        };
        let layers = vec![
            layer("map", vec![1, h, w], Some(0)),
            layer("square", vec![1, h, w], Some(0)),
            layer("gap", vec![1], None),
            layer("constant", vec![2], None),
        ];
        Self { structure: ModelStructure::new(input, layers, 2).unwrap() }
    }
}

impl Model for MapModel {
    fn backend(&self) -> &'static str {
        "test"
    }
    fn structure(&self) -> &ModelStructure {
        &self.structure
    }
    fn predict(
        &self,
        x: ArrayViewD<'_, f32>,
        layers: Option<&[&str]>,
    ) -> nnlens_core::Result<Activations> {
        let n = x.shape()[0];
        let mut out = Activations::new();
        for &name in layers.unwrap_or(&["map", "square", "gap", "constant"]) {
            let value = match name {
                "map" => x.to_owned().insert_axis(Axis(1)),
                "square" => x.mapv(|v| v * v).insert_axis(Axis(1)),
                "gap" => {
                    let flat = x.to_shape((n, x.len() / n)).unwrap().to_owned();
                    flat.mean_axis(Axis(1)).unwrap().insert_axis(Axis(1)).into_dyn()
                }
                "constant" => Array::from_elem(IxDyn(&[n, 2]), 0.5f32),
                other => {
                    return Err(CoreError::UnknownLayer {
                        name: other.into(),
                        known: String::new(),
                    });
                }
            };
            out.push(name, value);
        }
        Ok(out)
    }
}

/// Samples crossed with circular shifts: column t rolls the image by t pixels to the right.
#[derive(Clone)]
struct Rolls {
    base: ArrayDataSet,
    shifts: usize,
    transposed: bool,
}

fn roll(a: ArrayViewD<'_, f32>, by: isize) -> ArrayD<f32> {
    let last = a.ndim() - 1;
    let n = a.shape()[last] as isize;
    let mut out = a.to_owned();
    for k in 0..n {
        out.index_axis_mut(Axis(last), (k + by).rem_euclid(n) as usize)
            .assign(&a.index_axis(Axis(last), k as usize));
    }
    out
}

impl DataSet for Rolls {
    fn height(&self) -> usize {
        if self.transposed { self.shifts } else { self.base.samples() }
    }
    fn width(&self) -> usize {
        if self.transposed { self.base.samples() } else { self.shifts }
    }
    fn data_shape(&self) -> &[usize] {
        &self.base.data().shape()[1..]
    }
    fn get_matrix(&self, rows: &[usize], cols: &[usize]) -> nnlens_core::Result<ArrayD<f32>> {
        let shape = [&[rows.len(), cols.len()][..], self.data_shape()].concat();
        let mut out = ArrayD::zeros(IxDyn(&shape));
        for (i, &r) in rows.iter().enumerate() {
            for (j, &c) in cols.iter().enumerate() {
                let (s, t) = if self.transposed { (c, r) } else { (r, c) };
                let image = self.base.data().index_axis(Axis(0), s);
                out.index_axis_mut(Axis(0), i)
                    .index_axis_mut(Axis(0), j)
                    .assign(&roll(image, t as isize));
            }
        }
        Ok(out)
    }
    fn transpose(&mut self) {
        self.transposed = !self.transposed;
    }
    fn is_transposed(&self) -> bool {
        self.transposed
    }
}

impl TransformationsDataSet for Rolls {
    fn number_of_transformations(&self) -> usize {
        self.shifts
    }
    fn apply_inverse_transformation(
        &self,
        tensor: ArrayViewD<'_, f32>,
        _channel_axis: Option<usize>,
        t: usize,
    ) -> nnlens_core::Result<ArrayD<f32>> {
        Ok(roll(tensor, -(t as isize)))
    }
    fn apply_transformation(
        &self,
        tensor: ArrayViewD<'_, f32>,
        _channel_axis: Option<usize>,
        t: usize,
    ) -> nnlens_core::Result<ArrayD<f32>> {
        Ok(roll(tensor, t as isize))
    }
    fn is_identity(&self, t: usize) -> bool {
        t == 0
    }
    fn number_of_groups(&self) -> usize {
        1
    }
    fn set_transformation_group(&mut self, _group: usize, n: usize) -> nnlens_core::Result<()> {
        self.shifts = n;
        Ok(())
    }
}

/// `samples` images of `h x w` with dyadic values (k / 8: sums of them are exact in f32).
fn images(samples: usize, h: usize, w: usize, seed: &[u8]) -> ArrayDataSet {
    let data = Array::from_shape_fn(IxDyn(&[samples, h, w]), |i| {
        let k = seed[(i[0] * h * w + i[1] * w + i[2]) % seed.len()] as usize;
        (k % 16) as f32 / 8.0
    });
    ArrayDataSet::new(data, None).unwrap()
}

fn on_model(kind: Kind, dataset: &mut Rolls, layers: &[&str], batch: usize) -> MeasureResult {
    let model = MapModel::new(3, 5);
    let mut source =
        ModelSource::new(&model, dataset).with_layers(layers).unwrap().with_batch_size(batch);
    compute(&MeasureSpec::new(kind), &mut source).unwrap()
}

/// A model whose activations overflow to infinity (the square of 1e20 in f32) for one sample:
/// every kind of measure fails, naming the layer, the sample and the transformation, instead of
/// reporting a value computed from infinities.
#[test]
fn non_finite_activations_are_errors_naming_the_layer_and_sample() {
    let mut data = images(4, 3, 5, &[1, 2, 3]).data().clone();
    data[[2, 1, 3]] = 1e20;
    let base = ArrayDataSet::new(data, None).unwrap();
    let model = MapModel::new(3, 5);
    for kind in
        [Kind::Nvi, Kind::Tdi, Kind::Sdi, Kind::Nvse, Kind::Anova, Kind::Dses, Kind::Goodfellow]
    {
        let mut d = Rolls { base: base.clone(), shifts: 3, transposed: false };
        let mut source = ModelSource::new(&model, &mut d)
            .with_layers(&["map", "square"])
            .unwrap()
            .with_batch_size(5);
        let e = compute(&MeasureSpec::new(kind), &mut source).unwrap_err().to_string();
        assert!(
            e.contains("layer square") && e.contains("inf") && e.contains("sample 2"),
            "{kind:?}: {e}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_model_that_ignores_its_input_has_variance_0_and_nvi_1(
        seed in prop::collection::vec(any::<u8>(), 8..64),
        samples in 2usize..6,
        shifts in 2usize..5,
    ) {
        let mut d = Rolls { base: images(samples, 3, 5, &seed), shifts, transposed: false };
        prop_assert_eq!(on_model(Kind::Variance, &mut d, &["constant"], 7).total, 0.0);
        let nvi = on_model(Kind::Nvi, &mut d, &["constant"], 7);
        prop_assert!(nvi.layers[0].values.iter().all(|&v| v == 1.0));
        prop_assert_eq!(nvi.total, 1.0);
    }

    #[test]
    fn global_average_pooling_is_invariant_to_circular_shifts(
        seed in prop::collection::vec(any::<u8>(), 8..64),
        samples in 2usize..6,
        shifts in 2usize..6,
    ) {
        let mut d = Rolls { base: images(samples, 3, 5, &seed), shifts, transposed: false };
        let tvi = on_model(Kind::Tvi, &mut d, &["gap"], 4);
        prop_assert_eq!(tvi.total, 0.0);
        let nvi = on_model(Kind::Nvi, &mut d, &["gap"], 4);
        // 0 where the samples differ (SV > 0); 0/0 = 1 where they are all the same.
        prop_assert!(nvi.layers[0].values.iter().all(|&v| v == 0.0 || v == 1.0));
        // The map itself is not invariant, but it is exactly same-equivariant.
        let tvse = on_model(Kind::Tvse, &mut d, &["map", "square"], 4);
        prop_assert!(tvse.layers.iter().all(|l| l.value == 0.0));
        let se = on_model(Kind::SameEquivariance, &mut d, &["map", "gap"], 4);
        prop_assert_eq!(se.total, 0.0);
        prop_assert_eq!(se.skipped_layers.clone(), vec!["gap".to_string()]);
        prop_assert_eq!(on_model(Kind::Dses, &mut d, &["map"], 4).total, 0.0);
        prop_assert!(!d.is_transposed());
    }

    #[test]
    fn block_and_batch_sizes_do_not_change_values(
        seed in prop::collection::vec(any::<u8>(), 8..64),
        samples in 2usize..7,
        shifts in 2usize..5,
        batch in 1usize..20,
    ) {
        let mut d = Rolls { base: images(samples, 3, 5, &seed), shifts, transposed: false };
        for kind in [Kind::Nvi, Kind::NormalizedVariance, Kind::AnovaF, Kind::Ndi, Kind::Goodfellow] {
            let a = on_model(kind, &mut d, &["square", "map"], batch);
            let b = on_model(kind, &mut d, &["square", "map"], 1000);
            for (x, y) in a.layers.iter().zip(&b.layers) {
                for (u, v) in x.values.iter().zip(&y.values) {
                    prop_assert!(u.to_bits() == v.to_bits() || (u - v).abs() <= 1e-12 * v.abs().max(1.0), "{:?}: {} vs {}", kind, u, v);
                }
            }
        }
    }
}

#[test]
fn model_path_equals_array_path() {
    // The same activations through the model and as an array give the same values.
    let mut d = Rolls {
        base: images(4, 3, 5, &[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]),
        shifts: 3,
        transposed: false,
    };
    let model = MapModel::new(3, 5);
    let x = d.get_matrix(&[0, 1, 2, 3], &[0, 1, 2]).unwrap();
    let a = x.mapv(|v| f64::from(v * v)).insert_axis(Axis(2));
    for kind in [Kind::Nvi, Kind::Tvse, Kind::NormalizedSameEquivariance, Kind::AnovaF] {
        let mut source = ModelSource::new(&model, &mut d).with_layers(&["square"]).unwrap();
        let m = compute(&MeasureSpec::new(kind), &mut source).unwrap();
        let mut array = ArraySource::new(a.clone(), "square", Some(0))
            .unwrap()
            .with_transformations(Box::new(RollMaps));
        let r = compute(&MeasureSpec::new(kind), &mut array).unwrap();
        for (u, v) in m.layers[0].values.iter().zip(&r.layers[0].values) {
            assert!(
                (u - v).abs() <= 1e-12 * v.abs().max(1.0) || (u.is_nan() && v.is_nan()),
                "{kind:?}: {u} vs {v}"
            );
        }
    }
}

/// Roll along the last axis by the column index: as [`Roll`] (the maps' width is last).
struct RollMaps;

impl nnlens_invariance::ActivationTransformations for RollMaps {
    fn name(&self) -> String {
        "roll".into()
    }
    fn is_identity(&self, t: usize) -> bool {
        t == 0
    }
    fn inverse(
        &self,
        layer: &LayerStructure,
        t: usize,
        a: ArrayViewD<'_, f64>,
        out: ndarray::ArrayViewMutD<'_, f64>,
    ) -> nnlens_invariance::Result<()> {
        Roll.inverse(layer, t, a, out)
    }
    fn forward(
        &self,
        layer: &LayerStructure,
        t: usize,
        a: ArrayViewD<'_, f64>,
        out: ndarray::ArrayViewMutD<'_, f64>,
    ) -> nnlens_invariance::Result<()> {
        Roll.forward(layer, t, a, out)
    }
}
