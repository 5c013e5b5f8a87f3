use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

/// The structure of one layer: the shape of one sample's activation tensor (batch axis removed)
/// and, for layers with spatial feature maps, where the channel axis is.
///
/// A *feature layer* is one with a channel axis and at least one spatial axis (a convolution or
/// pooling output); each of its channels is one feature map of shape [`Self::shape_feature`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerStructure {
    /// The layer's name as users write it (e.g. `conv_1`).
    pub name: String,
    /// The engine's name of the tensor that holds this layer's output (e.g. `model/conv_1/BiasAdd:0`).
    pub tensor: String,
    /// The operator that produces the tensor (e.g. `Conv`).
    pub op: String,
    /// The shape of one sample's activations, without the batch axis.
    pub shape: Vec<usize>,
    /// The channel axis within [`Self::shape`], where the layer has one.
    pub channel_axis: Option<usize>,
}

impl LayerStructure {
    /// The number of activations of one sample (the product of the shape).
    pub fn number_activations(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the layer has feature maps (a channel axis and at least one spatial axis).
    pub fn is_feature_layer(&self) -> bool {
        self.channel_axis.is_some() && self.shape.len() >= 2
    }

    /// The number of feature maps (channels) of a feature layer; 0 for other layers.
    pub fn number_features(&self) -> usize {
        match self.channel_axis {
            Some(c) if self.is_feature_layer() => self.shape[c],
            _ => 0,
        }
    }

    /// The shape of one feature map (the shape without the channel axis); empty for layers
    /// without features.
    pub fn shape_feature(&self) -> Vec<usize> {
        match self.channel_axis {
            Some(c) if self.is_feature_layer() => {
                self.shape.iter().enumerate().filter(|(i, _)| *i != c).map(|(_, d)| *d).collect()
            }
            _ => Vec::new(),
        }
    }

    /// "channels-first", "channels-last" or "none": the layout of the layer's feature maps.
    pub fn layout(&self) -> &'static str {
        match self.channel_axis {
            Some(_) if !self.is_feature_layer() => "none",
            Some(0) => "channels-first",
            Some(c) if c + 1 == self.shape.len() => "channels-last",
            Some(_) => "channel-axis-inside",
            None => "none",
        }
    }
}

/// The input a model takes, for one sample (batch axis removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputStructure {
    /// The engine's input name.
    pub name: String,
    /// The shape of one sample.
    pub shape: Vec<usize>,
    /// The channel axis within the shape, where it could be detected.
    pub channel_axis: Option<usize>,
    /// The element type the model declares (`f32`, `f64`, ...); nnlens always feeds `f32` and the
    /// backend converts.
    pub dtype: String,
}

impl InputStructure {
    /// Checks a batch given to the model labelled `label`: shape `[batch, ...shape]`, at least
    /// one input, every value finite. Returns the batch size.
    ///
    /// # Errors
    /// [`CoreError::Shape`], [`CoreError::Empty`] or [`CoreError::NonFinite`] (with the index).
    pub fn check_batch(&self, label: &str, x: &ndarray::ArrayViewD<'_, f32>) -> Result<usize> {
        if x.ndim() != self.shape.len() + 1 || x.shape()[1..] != self.shape[..] {
            return Err(CoreError::Shape {
                what: format!("input of {label}"),
                expected: format!(
                    "[batch, {}]",
                    self.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
                ),
                got: format!("{:?}", x.shape()),
            });
        }
        let batch = x.shape()[0];
        if batch == 0 {
            return Err(CoreError::Empty("the input batch".into()));
        }
        if let Some((index, &value)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(CoreError::NonFinite { what: "the input batch".into(), value, index });
        }
        Ok(batch)
    }

    /// The number of values in one sample.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether a sample has no values (a shape with a zero dimension).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The structure of a model: its input, its layers in evaluation order, the output layer, and
/// the map between layers and feature layers (as `ModelStructure` of transformational-measures-tf).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStructure {
    /// The input.
    pub input: InputStructure,
    /// Every layer, in evaluation order.
    pub layers: Vec<LayerStructure>,
    /// The index in [`Self::layers`] of the model's output (for classifiers, the class scores).
    pub output: usize,
}

impl ModelStructure {
    /// Builds a structure, checking that the output index is a layer.
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] when `output` is not a layer index, [`CoreError::Empty`] when
    /// there are no layers.
    pub fn new(input: InputStructure, layers: Vec<LayerStructure>, output: usize) -> Result<Self> {
        if layers.is_empty() {
            return Err(CoreError::Empty("the model's list of layers".into()));
        }
        if output >= layers.len() {
            return Err(CoreError::OutOfRange {
                what: "output layer".into(),
                index: output,
                len: layers.len(),
            });
        }
        Ok(Self { input, layers, output })
    }

    /// The number of layers.
    pub fn number_layers(&self) -> usize {
        self.layers.len()
    }

    /// The layer names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.layers.iter().map(|l| l.name.as_str()).collect()
    }

    /// The output layer.
    pub fn output_layer(&self) -> &LayerStructure {
        &self.layers[self.output]
    }

    /// The indices (into [`Self::layers`]) of the feature layers, in order.
    pub fn layers_features(&self) -> Vec<usize> {
        (0..self.layers.len()).filter(|&i| self.layers[i].is_feature_layer()).collect()
    }

    /// The number of feature layers.
    pub fn number_layers_features(&self) -> usize {
        self.layers.iter().filter(|l| l.is_feature_layer()).count()
    }

    /// For each layer, its position among the feature layers (`None` for layers without
    /// features): the seed's `map_layers_features`.
    pub fn map_layers_features(&self) -> Vec<Option<usize>> {
        let mut next = 0;
        self.layers
            .iter()
            .map(|l| {
                l.is_feature_layer().then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect()
    }

    /// The index of the layer called `name`, which may be the layer's name or its engine tensor
    /// name.
    ///
    /// # Errors
    /// [`CoreError::UnknownLayer`] naming the known layers.
    pub fn layer_index(&self, name: &str) -> Result<usize> {
        self.layers
            .iter()
            .position(|l| l.name == name)
            .or_else(|| self.layers.iter().position(|l| l.tensor == name))
            .ok_or_else(|| CoreError::UnknownLayer {
                name: name.to_string(),
                known: self.names().join(", "),
            })
    }

    /// The tensor behind `name`: a layer's chosen tensor (see [`Self::layer_index`]), else the
    /// tensor of that name among `tensors` (every activation tensor of the graph).
    ///
    /// # Errors
    /// [`CoreError::UnknownLayer`] naming the known layers.
    pub fn tensor_of<'a>(&'a self, name: &str, tensors: &'a [LayerStructure]) -> Result<&'a str> {
        match self.layer_index(name) {
            Ok(i) => Ok(&self.layers[i].tensor),
            Err(e) => tensors.iter().find(|t| t.tensor == name).map(|t| t.tensor.as_str()).ok_or(e),
        }
    }

    /// The layer called `name` (see [`Self::layer_index`]).
    ///
    /// # Errors
    /// [`CoreError::UnknownLayer`].
    pub fn layer(&self, name: &str) -> Result<&LayerStructure> {
        Ok(&self.layers[self.layer_index(name)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, shape: &[usize], c: Option<usize>) -> LayerStructure {
        LayerStructure {
            name: name.into(),
            tensor: format!("t/{name}"),
            op: "Op".into(),
            shape: shape.to_vec(),
            channel_axis: c,
        }
    }

    fn structure() -> ModelStructure {
        ModelStructure::new(
            InputStructure {
                name: "x".into(),
                shape: vec![28, 28, 1],
                channel_axis: Some(2),
                dtype: "f32".into(),
            },
            vec![
                layer("conv", &[8, 28, 28], Some(0)),
                layer("pool", &[14, 14, 8], Some(2)),
                layer("dense", &[10], None),
                layer("probs", &[10], Some(0)),
            ],
            3,
        )
        .unwrap()
    }

    #[test]
    fn features_follow_the_channel_axis() {
        let s = structure();
        assert_eq!(s.layers[0].number_features(), 8);
        assert_eq!(s.layers[0].shape_feature(), vec![28, 28]);
        assert_eq!(s.layers[0].layout(), "channels-first");
        assert_eq!(s.layers[1].number_features(), 8);
        assert_eq!(s.layers[1].shape_feature(), vec![14, 14]);
        assert_eq!(s.layers[1].layout(), "channels-last");
        assert_eq!(s.layers[1].number_activations(), 14 * 14 * 8);
        // A 1-D layer is never a feature layer, even with a channel axis recorded.
        assert!(!s.layers[3].is_feature_layer());
        assert_eq!(s.layers[3].number_features(), 0);
        assert!(s.layers[3].shape_feature().is_empty());
    }

    #[test]
    fn map_between_layers_and_feature_layers() {
        let s = structure();
        assert_eq!(s.layers_features(), vec![0, 1]);
        assert_eq!(s.number_layers_features(), 2);
        assert_eq!(s.map_layers_features(), vec![Some(0), Some(1), None, None]);
    }

    #[test]
    fn unknown_layer_names_the_known_ones() {
        let s = structure();
        assert_eq!(s.layer_index("pool").unwrap(), 1);
        assert_eq!(s.layer_index("t/dense").unwrap(), 2);
        let e = s.layer_index("conv_9").unwrap_err().to_string();
        assert!(e.contains("conv_9") && e.contains("conv, pool, dense, probs"), "{e}");
    }

    #[test]
    fn output_index_is_checked() {
        let s = structure();
        assert!(ModelStructure::new(s.input.clone(), s.layers.clone(), 4).is_err());
        assert!(ModelStructure::new(s.input, vec![], 0).is_err());
    }
}
