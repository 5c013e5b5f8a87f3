//! The layers of a TorchScript module: what its `forward` returns, named.
//!
//! - a tensor: one layer, `output`;
//! - a tuple or list of tensors: layers `0`, `1`, ... in order; the **last** is the output;
//! - a `Dict[str, Tensor]` (what `create_feature_extractor` returns): one layer per key, in
//!   the dictionary's order; the entry named `output` is the output, else the last entry.
//!
//! Every returned tensor has the batch as its first axis. Layers are channels-first, as
//! PyTorch lays them out: a layer with two or more axes per sample (`[C, H, W]`, `[C, L]`) has
//! its channels on axis 0; a vector (`[F]`) has none.

use nnlens_core::{InputStructure, LayerStructure, ModelStructure};

/// How `forward`'s result is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Returned {
    /// A single tensor.
    Tensor,
    /// A tuple or list of this many tensors.
    Sequence(usize),
    /// A dictionary of tensors with these keys, in order.
    Dict(Vec<String>),
}

impl Returned {
    /// The layers' names, in the order of the returned tensors, and which is the output.
    pub fn names(&self) -> (Vec<String>, usize) {
        match self {
            Returned::Tensor => (vec!["output".into()], 0),
            Returned::Sequence(n) => {
                ((0..*n).map(|i| i.to_string()).collect(), n.saturating_sub(1))
            }
            Returned::Dict(keys) => {
                let output =
                    keys.iter().position(|k| k == "output").unwrap_or(keys.len().saturating_sub(1));
                (keys.clone(), output)
            }
        }
    }
}

/// The channel axis of one sample of a layer (or input) of this shape: 0 when it has two or
/// more axes (PyTorch is channels-first), none for a vector.
pub fn channel_axis(sample: &[usize]) -> Option<usize> {
    (sample.len() >= 2).then_some(0)
}

/// The model's structure from the shapes of the returned tensors at batch sizes 1 and 2.
///
/// # Errors
/// Nothing returned, duplicate names, a tensor without a batch axis (whose first axis does
/// not follow the batch size), or a per-sample shape that changes with the batch size.
pub fn structure(
    input: InputStructure,
    returned: &Returned,
    at_batch_1: &[Vec<usize>],
    at_batch_2: &[Vec<usize>],
) -> Result<(ModelStructure, Vec<LayerStructure>), String> {
    let (names, output) = returned.names();
    if names.is_empty() {
        return Err("forward returns no tensor".into());
    }
    if at_batch_1.len() != names.len() || at_batch_2.len() != names.len() {
        return Err(format!(
            "forward returns {} tensors for a batch of 1 and {} for a batch of 2",
            at_batch_1.len(),
            at_batch_2.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut layers = Vec::with_capacity(names.len());
    for ((name, one), two) in names.iter().zip(at_batch_1).zip(at_batch_2) {
        if !seen.insert(name.as_str()) {
            return Err(format!("forward returns two entries named '{name}'"));
        }
        if one.first() != Some(&1) || two.first() != Some(&2) || one[1..] != two[1..] {
            return Err(format!(
                "forward's '{name}' is not batched: shape {one:?} for a batch of 1 and {two:?} for a batch of 2 (every returned tensor must be [batch, ...])"
            ));
        }
        let shape = one[1..].to_vec();
        layers.push(LayerStructure {
            name: name.clone(),
            tensor: name.clone(),
            op: if layers.len() == output { "output".into() } else { "returned".into() },
            channel_axis: channel_axis(&shape),
            shape,
        });
    }
    let structure =
        ModelStructure::new(input, layers.clone(), output).map_err(|e| e.to_string())?;
    Ok((structure, layers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> InputStructure {
        InputStructure {
            name: "input".into(),
            shape: vec![3, 8, 8],
            channel_axis: Some(0),
            dtype: "f32".into(),
        }
    }

    #[test]
    fn names_follow_what_forward_returns() {
        assert_eq!(Returned::Tensor.names(), (vec!["output".to_string()], 0));
        assert_eq!(Returned::Sequence(3).names(), (vec!["0".into(), "1".into(), "2".into()], 2));
        let keys = |k: &[&str]| Returned::Dict(k.iter().map(|s| s.to_string()).collect());
        assert_eq!(keys(&["layer1", "output", "pool"]).names().1, 1);
        assert_eq!(keys(&["layer1", "fc"]).names().1, 1);
    }

    #[test]
    fn shapes_become_channels_first_layers() {
        let returned = Returned::Dict(vec!["conv".into(), "output".into()]);
        let (structure, layers) = structure(
            input(),
            &returned,
            &[vec![1, 4, 8, 8], vec![1, 10]],
            &[vec![2, 4, 8, 8], vec![2, 10]],
        )
        .unwrap();
        assert_eq!(layers[0].channel_axis, Some(0));
        assert_eq!(layers[0].shape, vec![4, 8, 8]);
        assert_eq!(layers[1].channel_axis, None);
        assert_eq!(structure.output_layer().name, "output");
        assert_eq!(structure.output_layer().shape, vec![10]);
    }

    #[test]
    fn unbatched_or_duplicate_returns_are_refused() {
        let e = structure(input(), &Returned::Tensor, &[vec![10]], &[vec![10]]).unwrap_err();
        assert!(e.contains("not batched"), "{e}");
        let e = structure(input(), &Returned::Tensor, &[vec![1, 3]], &[vec![2, 4]]).unwrap_err();
        assert!(e.contains("not batched"), "{e}");
        let twice = Returned::Dict(vec!["a".into(), "a".into()]);
        let e = structure(input(), &twice, &[vec![1, 2], vec![1, 2]], &[vec![2, 2], vec![2, 2]])
            .unwrap_err();
        assert!(e.contains("two entries named 'a'"), "{e}");
        let e = structure(input(), &Returned::Sequence(0), &[], &[]).unwrap_err();
        assert!(e.contains("no tensor"), "{e}");
    }
}
