use ndarray::{Array2, ArrayD, ArrayViewD, Ix2, IxDyn};

use crate::structure::InputStructure;
use crate::{Activations, CoreError, Evaluation, ModelStructure, Result, cross_entropy_of_output};

/// A trained network that nnlens can measure. Backends implement it; metrics use it only
/// through this trait, so no engine type ever reaches them.
///
/// Inputs and activations are `f32` with the batch as first axis; a backend converts to and from
/// whatever its engine needs (an `f64` input, say).
pub trait Model: Send + Sync {
    /// The backend's name (`tract`, `ort`, ...).
    fn backend(&self) -> &'static str;

    /// The model's structure: input, layers, output.
    fn structure(&self) -> &ModelStructure;

    /// Runs a batch `x` of shape `[batch, ...input shape]` and returns the activations of the
    /// layers named in `layers` (layer or tensor names), or of every layer when `layers` is
    /// `None`, each with the batch as first axis, in the order asked for.
    ///
    /// # Errors
    /// [`CoreError::UnknownLayer`] for a name the model does not have, [`CoreError::Shape`] for an
    /// input of the wrong shape, [`CoreError::Backend`] when the engine fails.
    fn predict(&self, x: ArrayViewD<'_, f32>, layers: Option<&[&str]>) -> Result<Activations>;

    /// Runs a batch and returns only the output layer's activations.
    ///
    /// # Errors
    /// As [`Self::predict`].
    fn predict_output(&self, x: ArrayViewD<'_, f32>) -> Result<ArrayD<f32>> {
        let output = self.structure().output_layer().name.clone();
        self.predict(x, Some(&[output.as_str()]))?
            .into_pairs()
            .pop()
            .map(|(_, value)| value)
            .ok_or_else(|| CoreError::UnknownLayer { name: output.clone(), known: output })
    }

    /// Loss (categorical cross-entropy) and accuracy of the model's output on a batch with
    /// integer labels. Evaluations of several batches [`merge`](Evaluation::merge).
    ///
    /// # Errors
    /// As [`Self::predict`], plus the errors of [`cross_entropy_of_output`].
    fn evaluate(&self, x: ArrayViewD<'_, f32>, labels: &[usize]) -> Result<Evaluation> {
        let output = self.predict_output(x)?;
        let shape = output.shape().to_vec();
        let output: Array2<f32> =
            output.into_dimensionality::<Ix2>().map_err(|_| CoreError::Shape {
                what: "the model's output".into(),
                expected: "[batch, classes]".into(),
                got: format!("{shape:?}"),
            })?;
        cross_entropy_of_output(output.view(), labels)
    }
}

/// Brings a batch of samples to the shape a model's input takes.
///
/// `x` is `[batch, ...sample shape]`, where an image sample is height x width x channels
/// (channels last, as the datasets give them) or height x width. When the sample shape is the
/// input's, `x` is returned as is. When only the number of values per sample agrees, the samples
/// are laid out for the input: transposed to channels-first for an input whose channel axis is
/// first and that has more than one channel, otherwise reshaped in row-major order (a flat
/// `[784]` input, an `[28, 28, 1]` input, or a one-channel `[1, 28, 28]` input).
///
/// # Errors
/// [`CoreError::Shape`] when the number of values per sample differs, [`CoreError::NonFinite`]
/// when an input value is NaN or infinite.
pub fn conform_input(x: ArrayD<f32>, input: &InputStructure) -> Result<ArrayD<f32>> {
    if let Some((index, &value)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(CoreError::NonFinite { what: "the input batch".into(), value, index });
    }
    let batch = x.shape().first().copied().unwrap_or(0);
    let sample: Vec<usize> = x.shape().iter().skip(1).copied().collect();
    if sample == input.shape {
        return Ok(x);
    }
    let per_sample: usize = sample.iter().product();
    if x.ndim() < 2 || per_sample != input.len() {
        return Err(CoreError::Shape {
            what: format!("input '{}'", input.name),
            expected: format!("samples of shape {:?} ({} values)", input.shape, input.len()),
            got: format!("samples of shape {:?} ({per_sample} values)", sample),
        });
    }
    // Images must have the input's height and width: 14 x 56 images have the values of 28 x 28
    // ones, but are not images of that size.
    if let (Some(got), Some(expected)) =
        (image_size(&sample, sample.len().checked_sub(1)), input_image_size(input))
        && got != expected
    {
        return Err(CoreError::Shape {
            what: format!("input '{}'", input.name),
            expected: format!(
                "images of {} x {} (height x width), as the model takes",
                expected.0, expected.1
            ),
            got: format!("images of {} x {}", got.0, got.1),
        });
    }
    let mut target = vec![batch];
    target.extend_from_slice(&input.shape);
    let channels_first = input.channel_axis == Some(0) && input.shape.len() >= 2;
    let data_channels = if sample.len() == 3 { sample[2] } else { 1 };
    let x = if channels_first && data_channels > 1 && input.shape[0] == data_channels {
        // [n, h, w, c] -> [n, c, h, w]
        x.permuted_axes(IxDyn(&[0, 3, 1, 2])).as_standard_layout().into_owned()
    } else {
        x.as_standard_layout().into_owned()
    };
    x.into_shape_with_order(IxDyn(&target)).map_err(|e| CoreError::Shape {
        what: format!("input '{}'", input.name),
        expected: format!("{target:?}"),
        got: e.to_string(),
    })
}

/// Height and width of an image of `shape` whose channel axis (if it has three axes) is
/// `channel_axis`; `None` for what is not an image (a vector, or three axes with no known
/// channel axis).
fn image_size(shape: &[usize], channel_axis: Option<usize>) -> Option<(usize, usize)> {
    match (shape, channel_axis) {
        ([h, w], _) => Some((*h, *w)),
        ([_, h, w], Some(0)) | ([h, w, _], Some(2)) => Some((*h, *w)),
        _ => None,
    }
}

/// Height and width of a model input that is an image: `[h, w]`, or three axes with its
/// channel axis first or last.
fn input_image_size(input: &InputStructure) -> Option<(usize, usize)> {
    image_size(&input.shape, input.channel_axis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    fn input(shape: &[usize], c: Option<usize>) -> InputStructure {
        InputStructure {
            name: "x".into(),
            shape: shape.to_vec(),
            channel_axis: c,
            dtype: "f32".into(),
        }
    }

    #[test]
    fn reshapes_to_flat_and_channel_inputs() {
        let x = Array::from_shape_fn(IxDyn(&[2, 3, 3]), |i| (i[0] * 9 + i[1] * 3 + i[2]) as f32);
        let flat = conform_input(x.clone(), &input(&[9], None)).unwrap();
        assert_eq!(flat.shape(), &[2, 9]);
        assert_eq!(flat[[1, 4]], 13.0);
        let nhwc = conform_input(x.clone(), &input(&[3, 3, 1], Some(2))).unwrap();
        assert_eq!(nhwc[[1, 1, 1, 0]], 13.0);
        let nchw = conform_input(x, &input(&[1, 3, 3], Some(0))).unwrap();
        assert_eq!(nchw[[1, 0, 1, 1]], 13.0);
    }

    #[test]
    fn transposes_colour_images_for_channels_first_inputs() {
        // value = 100 * c + 10 * h + w
        let x =
            Array::from_shape_fn(IxDyn(&[1, 2, 2, 3]), |i| (100 * i[3] + 10 * i[1] + i[2]) as f32);
        let y = conform_input(x, &input(&[3, 2, 2], Some(0))).unwrap();
        assert_eq!(y.shape(), &[1, 3, 2, 2]);
        assert_eq!(y[[0, 2, 1, 0]], 210.0);
    }

    #[test]
    fn rejects_wrong_sizes_and_nan() {
        let x = Array::<f32, _>::zeros(IxDyn(&[2, 5, 5]));
        let e = conform_input(x, &input(&[28, 28, 1], Some(2))).unwrap_err().to_string();
        assert!(e.contains("784") && e.contains("25"), "{e}");
        // The values of a 28 x 28 image, but 14 x 56: refused by image inputs, whichever their
        // layout; a flat input takes any image of its number of values.
        for model in
            [input(&[1, 28, 28], Some(0)), input(&[28, 28, 1], Some(2)), input(&[28, 28], None)]
        {
            let x = Array::<f32, _>::zeros(IxDyn(&[2, 14, 56]));
            let e = conform_input(x, &model).unwrap_err().to_string();
            assert!(e.contains("28 x 28") && e.contains("14 x 56"), "{e}");
            let x = Array::<f32, _>::zeros(IxDyn(&[2, 14, 56, 1]));
            assert!(conform_input(x, &model).is_err());
        }
        let x = Array::<f32, _>::zeros(IxDyn(&[2, 14, 56]));
        assert_eq!(conform_input(x, &input(&[784], None)).unwrap().shape(), [2, 784]);
        let mut x = Array::<f32, _>::zeros(IxDyn(&[1, 3]));
        x[[0, 1]] = f32::NAN;
        assert!(matches!(
            conform_input(x, &input(&[3], None)),
            Err(CoreError::NonFinite { index: 1, .. })
        ));
    }
}
