use ndarray::ArrayD;

/// The activations of some layers for one batch of inputs, each with the batch as first axis,
/// in the order they were asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activations {
    names: Vec<String>,
    values: Vec<ArrayD<f32>>,
}

impl Activations {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the activations of one layer.
    pub fn push(&mut self, name: impl Into<String>, value: ArrayD<f32>) {
        self.names.push(name.into());
        self.values.push(value);
    }

    /// The activations of the layer called `name`, if it was asked for.
    pub fn get(&self, name: &str) -> Option<&ArrayD<f32>> {
        self.names.iter().position(|n| n == name).map(|i| &self.values[i])
    }

    /// The layer names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The arrays, in the order of [`Self::names`].
    pub fn values(&self) -> &[ArrayD<f32>] {
        &self.values
    }

    /// The number of layers held.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no layer is held.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// (name, array) pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ArrayD<f32>)> {
        self.names.iter().map(String::as_str).zip(self.values.iter())
    }

    /// Consumes the set into (name, array) pairs.
    pub fn into_pairs(self) -> Vec<(String, ArrayD<f32>)> {
        self.names.into_iter().zip(self.values).collect()
    }
}
