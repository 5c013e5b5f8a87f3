//! [`TensorRequest`]: the layers a prediction asks for, as the distinct tensors an engine runs.

use std::ops::Range;

use ndarray::{ArrayD, ArrayViewD, Axis};

use crate::{Activations, CoreError, LayerStructure, Model, ModelStructure, Result};

/// The names a prediction asks for (layer names or raw tensor names), resolved to tensors: a
/// tensor asked for under several names is computed once and handed out under each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRequest {
    names: Vec<String>,
    /// For each name, its index in `distinct`.
    slots: Vec<usize>,
    distinct: Vec<String>,
}

impl TensorRequest {
    /// Resolves `layers` (`None`: every layer of `structure`) with
    /// [`ModelStructure::tensor_of`]; `tensors` are every activation tensor of the graph.
    ///
    /// # Errors
    /// [`crate::CoreError::UnknownLayer`] for a name that is neither a layer nor a tensor.
    pub fn new(
        structure: &ModelStructure,
        tensors: &[LayerStructure],
        layers: Option<&[&str]>,
    ) -> Result<Self> {
        let names: Vec<String> = match layers {
            Some(names) => names.iter().map(|n| n.to_string()).collect(),
            None => structure.layers.iter().map(|l| l.name.clone()).collect(),
        };
        let mut distinct: Vec<String> = Vec::new();
        let mut slots = Vec::with_capacity(names.len());
        for name in &names {
            let tensor = structure.tensor_of(name, tensors)?;
            let slot = match distinct.iter().position(|t| t == tensor) {
                Some(slot) => slot,
                None => {
                    distinct.push(tensor.to_string());
                    distinct.len() - 1
                }
            };
            slots.push(slot);
        }
        Ok(Self { names, slots, distinct })
    }

    /// The distinct tensors to compute, in the order of their first request.
    pub fn distinct(&self) -> &[String] {
        &self.distinct
    }

    /// The activations under the requested names, from one array per distinct tensor (in the
    /// order of [`Self::distinct`]); an array asked for under several names is cloned for all
    /// but its last.
    ///
    /// # Panics
    /// When `arrays` does not hold one array per distinct tensor (an engine's bug).
    pub fn assemble(&self, arrays: Vec<ArrayD<f32>>) -> Activations {
        assert_eq!(arrays.len(), self.distinct.len(), "one array per distinct tensor");
        let mut arrays: Vec<Option<ArrayD<f32>>> = arrays.into_iter().map(Some).collect();
        let mut last = vec![0; self.distinct.len()];
        for (i, &slot) in self.slots.iter().enumerate() {
            last[slot] = i;
        }
        let mut result = Activations::new();
        for (i, (name, &slot)) in self.names.iter().zip(&self.slots).enumerate() {
            let array = if last[slot] == i {
                arrays[slot].take().expect("each array is moved once, at its last request")
            } else {
                arrays[slot].clone().expect("moved only at the last request")
            };
            result.push(name.clone(), array);
        }
        result
    }
}

/// Joins the activations of consecutive chunks of a batch along the batch axis: `chunks[c][t]`
/// is tensor `t` of chunk `c`; one chunk is returned as it is.
///
/// # Errors
/// [`crate::CoreError::Shape`] when the chunks' arrays do not agree beyond the batch axis, or a
/// chunk lacks a tensor.
pub fn join_chunks(chunks: Vec<Vec<ArrayD<f32>>>) -> Result<Vec<ArrayD<f32>>> {
    let tensors = chunks.first().map_or(0, Vec::len);
    if chunks.len() == 1 {
        return Ok(chunks.into_iter().next().expect("one chunk"));
    }
    (0..tensors)
        .map(|t| {
            let views: Vec<_> = chunks
                .iter()
                .map(|c| c.get(t).map(|a| a.view()))
                .collect::<Option<_>>()
                .ok_or_else(|| crate::CoreError::Shape {
                    what: "the chunks of a batch".into(),
                    expected: format!("{tensors} tensors per chunk"),
                    got: "a chunk with fewer".into(),
                })?;
            ndarray::concatenate(ndarray::Axis(0), &views).map_err(|e| crate::CoreError::Shape {
                what: "the chunks of a batch".into(),
                expected: "equal shapes beyond the batch axis".into(),
                got: e.to_string(),
            })
        })
        .collect()
}

/// Runs `rows` inputs in consecutive batches of at most `batch_size`: `run(range)` gives the
/// tensors of the rows in `range`, and each tensor's batches are joined along the batch axis
/// ([`join_chunks`]). The one "run in batches, then join" loop of nnlens: block activations,
/// predictions, gradient models' outputs.
///
/// # Errors
/// [`CoreError::InvalidParameters`] for a `batch_size` of 0; what `run` returns (any error
/// type a [`CoreError`] converts into); as [`join_chunks`].
pub fn in_batches<E: From<CoreError>>(
    rows: usize,
    batch_size: usize,
    mut run: impl FnMut(Range<usize>) -> std::result::Result<Vec<ArrayD<f32>>, E>,
) -> std::result::Result<Vec<ArrayD<f32>>, E> {
    if batch_size == 0 {
        return Err(CoreError::InvalidParameters {
            what: "batch size".into(),
            reason: "must be at least 1".into(),
        }
        .into());
    }
    let chunks = (0..rows)
        .step_by(batch_size)
        .map(|start| run(start..(start + batch_size).min(rows)))
        .collect::<std::result::Result<Vec<_>, E>>()?;
    Ok(join_chunks(chunks)?)
}

/// As [`in_batches`], with the inputs of each batch made by `fetch` on another thread, one batch
/// ahead of `run`: reading and decoding the next batch overlaps the model's work on this one, and
/// at most two batches of inputs are alive at a time. The first error of either side ends both.
///
/// # Errors
/// As [`in_batches`]; what `fetch` or `run` returns.
pub fn in_batches_prefetched<X: Send, E: From<CoreError> + Send>(
    rows: usize,
    batch_size: usize,
    fetch: impl Fn(Range<usize>) -> std::result::Result<X, E> + Sync,
    mut run: impl FnMut(Range<usize>, X) -> std::result::Result<Vec<ArrayD<f32>>, E>,
) -> std::result::Result<Vec<ArrayD<f32>>, E> {
    if batch_size == 0 {
        return in_batches(rows, batch_size, |_| Ok(Vec::new()));
    }
    let fetch = &fetch;
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            for start in (0..rows).step_by(batch_size) {
                let range = start..(start + batch_size).min(rows);
                let item = fetch(range.clone()).map(|x| (range, x));
                let failed = item.is_err();
                if sender.send(item).is_err() || failed {
                    return;
                }
            }
        });
        let mut chunks = Vec::new();
        for item in receiver {
            let (range, x) = item?;
            chunks.push(run(range, x)?);
        }
        Ok(join_chunks(chunks)?)
    })
}

/// The activations of `layers` (`None`: every layer, in structure order) for the inputs `x`,
/// computed in batches of at most `batch_size` rows ([`in_batches`]).
///
/// # Errors
/// As [`in_batches`] and [`Model::predict`].
pub fn predict_in_batches(
    model: &dyn Model,
    x: ArrayViewD<'_, f32>,
    layers: Option<&[&str]>,
    batch_size: usize,
) -> Result<Vec<ArrayD<f32>>> {
    in_batches(x.shape().first().copied().unwrap_or(0), batch_size, |rows| {
        let part = x.slice_axis(Axis(0), rows.into());
        Ok(model.predict(part, layers)?.into_pairs().into_iter().map(|(_, a)| a).collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InputStructure;
    use ndarray::IxDyn;

    #[test]
    fn prefetched_batches_join_as_in_batches_and_stop_at_errors() {
        let value = |r: Range<usize>| -> Result<ArrayD<f32>> {
            Ok(ArrayD::from_shape_fn(IxDyn(&[r.len(), 2]), |i| {
                (r.start + i[0]) as f32 * 10.0 + i[1] as f32
            }))
        };
        let plain = in_batches(7, 3, |r| Ok::<_, CoreError>(vec![value(r)?])).unwrap();
        let ahead = in_batches_prefetched(7, 3, value, |_, x| Ok::<_, CoreError>(vec![x])).unwrap();
        assert_eq!(plain, ahead);
        let mut seen = Vec::new();
        let failed = in_batches_prefetched(
            10,
            2,
            |r| if r.start == 4 { Err(CoreError::Empty("batch 2".into())) } else { value(r) },
            |r, x| {
                seen.push(r.start);
                Ok(vec![x])
            },
        );
        assert!(matches!(failed, Err(CoreError::Empty(_))));
        assert_eq!(seen, [0, 2], "no batch after the failed one runs");
        assert!(in_batches_prefetched(3, 0, value, |_, x| Ok::<_, CoreError>(vec![x])).is_err());
    }

    fn structure() -> (ModelStructure, Vec<LayerStructure>) {
        let layer = |name: &str, tensor: &str| LayerStructure {
            name: name.into(),
            tensor: tensor.into(),
            op: "Relu".into(),
            shape: vec![2],
            channel_axis: None,
        };
        let input = InputStructure {
            name: "x".into(),
            shape: vec![2],
            channel_axis: None,
            dtype: "f32".into(),
        };
        let layers = vec![layer("a", "t_a"), layer("b", "t_b")];
        let tensors = vec![layer("t_a", "t_a"), layer("t_hidden", "t_hidden"), layer("t_b", "t_b")];
        (ModelStructure::new(input, layers, 1).unwrap(), tensors)
    }

    #[test]
    fn names_share_tensors_and_come_back_in_order() {
        let (s, tensors) = structure();
        let r = TensorRequest::new(&s, &tensors, Some(&["b", "t_hidden", "t_b", "a"])).unwrap();
        assert_eq!(r.distinct(), ["t_b", "t_hidden", "t_a"]);
        let arrays = (0..3).map(|i| ArrayD::from_elem(vec![1, 2], i as f32)).collect();
        let acts = r.assemble(arrays);
        assert_eq!(acts.names(), ["b", "t_hidden", "t_b", "a"]);
        let firsts: Vec<f32> = acts.values().iter().map(|a| a[[0, 0]]).collect();
        assert_eq!(firsts, [0.0, 1.0, 0.0, 2.0]);
    }

    #[test]
    fn no_names_means_every_layer_and_unknown_names_are_errors() {
        let (s, tensors) = structure();
        let r = TensorRequest::new(&s, &tensors, None).unwrap();
        assert_eq!(r.distinct(), ["t_a", "t_b"]);
        let e = TensorRequest::new(&s, &tensors, Some(&["nope"])).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains('a'), "{e}");
    }

    #[test]
    fn chunks_join_along_the_batch_axis() {
        let chunk = |rows: usize, v: f32| vec![ArrayD::from_elem(vec![rows, 2], v)];
        let joined = join_chunks(vec![chunk(2, 1.0), chunk(1, 2.0)]).unwrap();
        assert_eq!(joined[0].shape(), [3, 2]);
        assert_eq!(joined[0][[2, 1]], 2.0);
        assert_eq!(join_chunks(vec![chunk(4, 3.0)]).unwrap()[0].shape(), [4, 2]);
        let odd = vec![ArrayD::from_elem(vec![1, 3], 0.0)];
        assert!(join_chunks(vec![chunk(2, 1.0), odd]).is_err());
        assert!(join_chunks(vec![chunk(2, 1.0), vec![]]).is_err());
    }

    #[test]
    fn in_batches_covers_every_row_once_in_order() {
        let mut seen = Vec::new();
        let joined = in_batches::<CoreError>(7, 3, |rows| {
            seen.push(rows.clone());
            let values: Vec<f32> = rows.map(|r| r as f32).collect();
            Ok(vec![ArrayD::from_shape_vec(vec![values.len(), 1], values).unwrap()])
        })
        .unwrap();
        assert_eq!(seen, [0..3, 3..6, 6..7]);
        assert_eq!(joined[0].iter().copied().collect::<Vec<_>>(), [0., 1., 2., 3., 4., 5., 6.]);
        assert!(in_batches::<CoreError>(3, 0, |_| Ok(vec![])).is_err());
        assert!(in_batches::<CoreError>(0, 4, |_| unreachable!()).unwrap().is_empty());
    }

    #[test]
    fn batches_are_checked() {
        let (s, _) = structure();
        let ok = ndarray::ArrayD::<f32>::zeros(vec![3, 2]);
        assert_eq!(s.input.check_batch("m", &ok.view()).unwrap(), 3);
        let wrong = ndarray::ArrayD::<f32>::zeros(vec![3, 4]);
        assert!(s.input.check_batch("m", &wrong.view()).unwrap_err().to_string().contains("m"));
        let empty = ndarray::ArrayD::<f32>::zeros(vec![0, 2]);
        assert!(s.input.check_batch("m", &empty.view()).is_err());
        let mut nan = ok.clone();
        nan[[1, 1]] = f32::NAN;
        let e = s.input.check_batch("m", &nan.view()).unwrap_err().to_string();
        assert!(e.contains("NaN") || e.contains("finite"), "{e}");
    }
}
