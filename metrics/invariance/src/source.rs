//! Where the activations of a samples x transformations (ST) matrix come from: a model run on a
//! [`TransformationsDataSet`] ([`ModelSource`]), or an array `A[sample, transformation, ...]`
//! computed elsewhere ([`ArraySource`]). Both stream the matrix in row chunks to a [`Visitor`];
//! the measures never see which one it is.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, Dimension};
use nnlens_core::{BlockIterator, LayerStructure, Model, TransformationsDataSet};

use crate::{InvarianceError, Result};

/// One layer's activations for a block of the ST matrix, `[rows, columns, ...activation]`, in
/// the source's own precision (models give `f32`; arrays may be `f64`).
#[derive(Debug, Clone)]
pub enum Values<'a> {
    /// Single precision.
    F32(ArrayViewD<'a, f32>),
    /// Double precision.
    F64(ArrayViewD<'a, f64>),
}

impl Values<'_> {
    /// The shape `[rows, columns, ...activation]`.
    pub fn shape(&self) -> &[usize] {
        match self {
            Values::F32(a) => a.shape(),
            Values::F64(a) => a.shape(),
        }
    }
}

/// Which index the rows of a pass run over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Rows are samples, columns transformations (the dataset as it is).
    SamplesFirst,
    /// Rows are transformations, columns samples (the dataset transposed).
    TransformationsFirst,
}

/// What one streaming pass over the ST matrix asks of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// What rows are.
    pub order: Order,
    /// Inverse-transform every activation by its own transformation first (same-equivariance).
    pub inverse: bool,
    /// Every block holds whole rows (all columns at once).
    pub whole_rows: bool,
    /// Also give, for every cell, the transformation applied (forward) to the activation of the
    /// same sample under the identity transformation (DSES). Needs [`Order::SamplesFirst`] and
    /// whole rows.
    pub reference: bool,
}

impl Pass {
    /// A plain pass: rows are samples, activations as the model gives them.
    pub fn samples_first(inverse: bool) -> Self {
        Self { order: Order::SamplesFirst, inverse, whole_rows: false, reference: false }
    }
}

/// Receives a pass's blocks: `begin_rows`, the row chunk's blocks (left to right, together
/// covering every column once), `end_rows`; then the next row chunk.
pub trait Visitor {
    /// A chunk of rows starts (dataset row indices; `columns` in all).
    ///
    /// # Errors
    /// Whatever the visitor reports.
    fn begin_rows(&mut self, rows: &[usize], columns: usize) -> Result<()>;

    /// A block of the current rows: `layers[l]` is `[rows, columns.len(), ...activation]`;
    /// `reference`, when the pass asks for it, is laid out the same way.
    ///
    /// # Errors
    /// Whatever the visitor reports.
    fn block(
        &mut self,
        columns: &[usize],
        layers: &[Values<'_>],
        reference: Option<&[Values<'_>]>,
    ) -> Result<()>;

    /// The current row chunk is complete.
    ///
    /// # Errors
    /// Whatever the visitor reports.
    fn end_rows(&mut self) -> Result<()>;
}

/// A samples x transformations matrix of activations that can be streamed.
pub trait StSource {
    /// The number of samples.
    fn samples(&self) -> usize;
    /// The number of transformations.
    fn transformations(&self) -> usize;
    /// The layers measured (shape without batch, channel axis of feature layers).
    fn layers(&self) -> &[LayerStructure];
    /// The columns whose transformation is the identity.
    fn identity_transformations(&self) -> Vec<usize>;
    /// Streams the whole matrix once, as `pass` asks, to `visitor`.
    ///
    /// # Errors
    /// Model, dataset and shape errors, and the visitor's.
    fn stream(&mut self, pass: Pass, visitor: &mut dyn Visitor) -> Result<()>;
    /// What the run used (model, dataset, transformations), for the manifest.
    fn describe(&self) -> serde_json::Value;
}

/// The transformations of an [`ArraySource`], as applied to activation tensors.
pub trait ActivationTransformations: Send + Sync {
    /// A short name for the manifest (`roll`).
    fn name(&self) -> String;
    /// Whether transformation `t` is the identity.
    fn is_identity(&self, t: usize) -> bool;
    /// Applies the inverse of transformation `t` to `a` (one sample's activation tensor of
    /// `layer`), writing into `out` (same shape).
    ///
    /// # Errors
    /// When the tensor cannot be transformed.
    fn inverse(
        &self,
        layer: &LayerStructure,
        t: usize,
        a: ArrayViewD<'_, f64>,
        out: ArrayViewMutD<'_, f64>,
    ) -> Result<()>;
    /// Applies transformation `t` itself, as [`Self::inverse`].
    ///
    /// # Errors
    /// When the tensor cannot be transformed.
    fn forward(
        &self,
        layer: &LayerStructure,
        t: usize,
        a: ArrayViewD<'_, f64>,
        out: ArrayViewMutD<'_, f64>,
    ) -> Result<()>;
}

/// Transformation `t` is a circular shift by `+t` along the last activation axis, its inverse a
/// shift by `-t` (the transformations of tmeasures' golden tests, for activations computed
/// elsewhere).
#[derive(Debug, Clone, Copy, Default)]
pub struct Roll;

impl Roll {
    fn shift(a: ArrayViewD<'_, f64>, mut out: ArrayViewMutD<'_, f64>, by: isize) -> Result<()> {
        let last = a.ndim().checked_sub(1).ok_or_else(|| {
            InvarianceError::Invalid("roll needs activations with at least one axis".into())
        })?;
        let n = a.shape()[last] as isize;
        for k in 0..n {
            let to = (k + by).rem_euclid(n);
            out.index_axis_mut(Axis(last), to as usize)
                .assign(&a.index_axis(Axis(last), k as usize));
        }
        Ok(())
    }
}

impl ActivationTransformations for Roll {
    fn name(&self) -> String {
        "roll".into()
    }

    fn is_identity(&self, t: usize) -> bool {
        t == 0
    }

    fn inverse(
        &self,
        _layer: &LayerStructure,
        t: usize,
        a: ArrayViewD<'_, f64>,
        out: ArrayViewMutD<'_, f64>,
    ) -> Result<()> {
        Self::shift(a, out, -(t as isize))
    }

    fn forward(
        &self,
        _layer: &LayerStructure,
        t: usize,
        a: ArrayViewD<'_, f64>,
        out: ArrayViewMutD<'_, f64>,
    ) -> Result<()> {
        Self::shift(a, out, t as isize)
    }
}

/// Activations computed elsewhere: one layer, `A[sample, transformation, ...activation]`.
pub struct ArraySource {
    values: ArrayD<f64>,
    layers: Vec<LayerStructure>,
    transformations: Option<Box<dyn ActivationTransformations>>,
    rows_per_chunk: usize,
    origin: serde_json::Value,
}

impl std::fmt::Debug for ArraySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArraySource")
            .field("shape", &self.values.shape())
            .field("layer", &self.layers[0].name)
            .finish_non_exhaustive()
    }
}

impl ArraySource {
    /// The array `A[sample, transformation, ...activation]` of layer `name`; `channel_axis` (an
    /// axis of the activation, after the two leading ones) marks feature maps.
    ///
    /// # Errors
    /// [`InvarianceError::Invalid`] for fewer than 3 axes, an empty axis, a channel axis out of
    /// range, or a non-finite value (named by its index).
    pub fn new(values: ArrayD<f64>, name: &str, channel_axis: Option<usize>) -> Result<Self> {
        let shape = values.shape().to_vec();
        if shape.len() < 3 {
            return Err(InvarianceError::Invalid(format!(
                "activations must be A[sample, transformation, ...activation] (3 axes or more), \
                 got shape {shape:?}"
            )));
        }
        if let Some(axis) = shape.iter().position(|&n| n == 0) {
            return Err(InvarianceError::Invalid(format!(
                "activations of shape {shape:?} are empty along axis {axis}"
            )));
        }
        if let Some((index, v)) = values.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(InvarianceError::Invalid(format!(
                "activation {:?} is {v}: every value must be finite",
                index.slice()
            )));
        }
        let act = shape[2..].to_vec();
        if let Some(c) = channel_axis
            && (act.len() != 3 || c >= 3)
        {
            return Err(InvarianceError::Invalid(format!(
                "channel axis {c} needs activations of 3 axes (channels and a 2-D map), got \
                 {act:?}"
            )));
        }
        let layer = LayerStructure {
            name: name.to_string(),
            tensor: name.to_string(),
            op: "external".into(),
            shape: act,
            channel_axis,
        };
        Ok(Self {
            values,
            layers: vec![layer],
            transformations: None,
            rows_per_chunk: 64,
            origin: serde_json::json!({ "layer": name }),
        })
    }

    /// The transformations of the columns (needed by the same-equivariance measures and by
    /// those that need to know which column is the identity).
    pub fn with_transformations(mut self, t: Box<dyn ActivationTransformations>) -> Self {
        self.transformations = Some(t);
        self
    }

    /// What the manifest records about where the array came from.
    pub fn with_origin(mut self, origin: serde_json::Value) -> Self {
        self.origin = origin;
        self
    }

    /// Rows per chunk (default 64).
    pub fn with_rows_per_chunk(mut self, rows: usize) -> Self {
        self.rows_per_chunk = rows.max(1);
        self
    }

    fn transformations_for(&self, what: &str) -> Result<&dyn ActivationTransformations> {
        self.transformations.as_deref().ok_or_else(|| {
            InvarianceError::Invalid(format!(
                "{what} needs the transformations of the activations (e.g. `roll`)"
            ))
        })
    }
}

impl StSource for ArraySource {
    fn samples(&self) -> usize {
        self.values.shape()[0]
    }

    fn transformations(&self) -> usize {
        self.values.shape()[1]
    }

    fn layers(&self) -> &[LayerStructure] {
        &self.layers
    }

    fn identity_transformations(&self) -> Vec<usize> {
        match &self.transformations {
            Some(t) => (0..self.transformations()).filter(|&j| t.is_identity(j)).collect(),
            None => Vec::new(),
        }
    }

    fn stream(&mut self, pass: Pass, visitor: &mut dyn Visitor) -> Result<()> {
        let (samples, transformations) = (self.samples(), self.transformations());
        let layer = &self.layers[0];
        let transformations_of = if pass.inverse || pass.reference {
            Some(self.transformations_for("same-equivariance")?)
        } else {
            None
        };
        // Rows-first view: [rows, columns, ...].
        let view = match pass.order {
            Order::SamplesFirst => self.values.view(),
            Order::TransformationsFirst => {
                let mut v = self.values.view();
                v.swap_axes(0, 1);
                v
            }
        };
        let (height, width) = (view.shape()[0], view.shape()[1]);
        let transformation_of = |row: usize, col: usize| match pass.order {
            Order::SamplesFirst => col,
            Order::TransformationsFirst => row,
        };
        let mut start = 0;
        while start < height {
            let end = (start + self.rows_per_chunk).min(height);
            let rows: Vec<usize> = (start..end).collect();
            let columns: Vec<usize> = (0..width).collect();
            visitor.begin_rows(&rows, width)?;
            let chunk = view.slice_axis(Axis(0), (start..end).into());
            let mut owned = chunk.to_owned();
            if pass.inverse {
                let t = transformations_of.expect("checked above");
                for (i, &row) in rows.iter().enumerate() {
                    for &col in &columns {
                        let a = cell(&chunk, i, col);
                        let out = cell_mut(&mut owned, i, col);
                        t.inverse(layer, transformation_of(row, col), a, out)?;
                    }
                }
            }
            let reference = if pass.reference {
                let t = transformations_of.expect("checked above");
                let identity = identity_column(&self.identity_transformations(), "dses")?;
                let mut r = ArrayD::<f64>::zeros(chunk.raw_dim());
                for i in 0..rows.len() {
                    let base = cell(&chunk, i, identity);
                    for &col in &columns {
                        t.forward(layer, col, base.view(), cell_mut(&mut r, i, col))?;
                    }
                }
                Some(r)
            } else {
                None
            };
            let layers = [Values::F64(owned.view())];
            let reference_values = reference.as_ref().map(|r| [Values::F64(r.view())]);
            visitor.block(&columns, &layers, reference_values.as_ref().map(|r| &r[..]))?;
            visitor.end_rows()?;
            start = end;
        }
        debug_assert!(samples > 0 && transformations > 0);
        Ok(())
    }

    fn describe(&self) -> serde_json::Value {
        let mut d = self.origin.clone();
        if let Some(obj) = d.as_object_mut() {
            obj.insert("shape".into(), serde_json::json!(self.values.shape()));
            obj.insert(
                "transformations".into(),
                serde_json::json!(self.transformations.as_ref().map(|t| t.name())),
            );
        }
        d
    }
}

/// Cell `(i, j)` of a `[rows, columns, ...]` array.
fn cell<'v, T>(a: &'v ArrayViewD<'_, T>, i: usize, j: usize) -> ArrayViewD<'v, T> {
    a.index_axis(Axis(0), i).index_axis_move(Axis(0), j)
}

/// Cell `(i, j)` of a `[rows, columns, ...]` array, mutable.
fn cell_mut<T>(a: &mut ArrayD<T>, i: usize, j: usize) -> ArrayViewMutD<'_, T> {
    a.index_axis_mut(Axis(0), i).index_axis_move(Axis(0), j)
}

/// The first identity column, or an error saying that `what` needs one.
pub(crate) fn identity_column(identities: &[usize], what: &str) -> Result<usize> {
    identities.first().copied().ok_or_else(|| {
        InvarianceError::Invalid(format!(
            "{what} needs the identity among the transformations (the untransformed samples)"
        ))
    })
}

/// A model run on a [`TransformationsDataSet`] through the [`BlockIterator`]: only one block's
/// inputs and activations are held at a time.
pub struct ModelSource<'a> {
    model: &'a dyn Model,
    dataset: &'a mut dyn TransformationsDataSet,
    layers: Vec<LayerStructure>,
    batch_size: usize,
    on_block: Option<Box<dyn FnMut(usize) + 'a>>,
    describe: serde_json::Value,
}

impl std::fmt::Debug for ModelSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSource")
            .field("layers", &self.layers.iter().map(|l| &l.name).collect::<Vec<_>>())
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl<'a> ModelSource<'a> {
    /// Every layer of `model` on `dataset` (rows samples, columns transformations; a transposed
    /// dataset is transposed back for the run and left as it was found).
    pub fn new(model: &'a dyn Model, dataset: &'a mut dyn TransformationsDataSet) -> Self {
        let layers = model.structure().layers.clone();
        Self {
            model,
            dataset,
            layers,
            batch_size: nnlens_core::DEFAULT_BATCH_SIZE,
            on_block: None,
            describe: serde_json::Value::Null,
        }
    }

    /// Only these layers (names or tensor names), in this order.
    ///
    /// # Errors
    /// An unknown layer, or no names.
    pub fn with_layers(mut self, names: &[&str]) -> Result<Self> {
        if names.is_empty() {
            return Err(InvarianceError::Invalid("the list of layers is empty".into()));
        }
        let s = self.model.structure();
        self.layers =
            names.iter().map(|n| s.layer(n).cloned()).collect::<nnlens_core::Result<_>>()?;
        Ok(self)
    }

    /// Inputs per model call; blocks hold about this many cells.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Called after every block with the number of cells (inputs) it held (progress bars).
    pub fn with_progress(mut self, on_block: impl FnMut(usize) + 'a) -> Self {
        self.on_block = Some(Box::new(on_block));
        self
    }

    /// What the manifest records about the model and dataset.
    pub fn with_description(mut self, describe: serde_json::Value) -> Self {
        self.describe = describe;
        self
    }

    /// The cells of every pass of the ST matrix (for progress bars).
    pub fn cells(&self) -> usize {
        self.dataset.height() * self.dataset.width()
    }
}

impl StSource for ModelSource<'_> {
    fn samples(&self) -> usize {
        if self.dataset.is_transposed() { self.dataset.width() } else { self.dataset.height() }
    }

    fn transformations(&self) -> usize {
        self.dataset.number_of_transformations()
    }

    fn layers(&self) -> &[LayerStructure] {
        &self.layers
    }

    fn identity_transformations(&self) -> Vec<usize> {
        (0..self.transformations()).filter(|&t| self.dataset.is_identity(t)).collect()
    }

    fn stream(&mut self, pass: Pass, visitor: &mut dyn Visitor) -> Result<()> {
        let want_transposed = pass.order == Order::TransformationsFirst;
        let was_transposed = self.dataset.is_transposed();
        if was_transposed != want_transposed {
            self.dataset.transpose();
        }
        let result = self.stream_as_is(pass, visitor);
        if self.dataset.is_transposed() != was_transposed {
            self.dataset.transpose();
        }
        result
    }

    fn describe(&self) -> serde_json::Value {
        self.describe.clone()
    }
}

impl ModelSource<'_> {
    fn stream_as_is(&mut self, pass: Pass, visitor: &mut dyn Visitor) -> Result<()> {
        let (height, width) = (self.dataset.height(), self.dataset.width());
        if height == 0 || width == 0 {
            return Err(InvarianceError::Invalid(format!(
                "the samples x transformations matrix is empty ({height} x {width})"
            )));
        }
        let identity = if pass.reference {
            Some(identity_column(&self.identity_transformations(), "dses")?)
        } else {
            None
        };
        // Blocks of about one batch: whole rows when asked (or when a row fits in a batch).
        let block_width = if pass.whole_rows { width } else { width.min(self.batch_size) };
        let block_height = (self.batch_size / block_width).clamp(1, height);
        let names: Vec<&str> = self.layers.iter().map(|l| l.name.as_str()).collect();
        let dataset: &dyn TransformationsDataSet = &*self.dataset;
        let iterator = BlockIterator::new(self.model, dataset)
            .with_layers(&names)?
            .with_batch_size(self.batch_size)?;
        let transformation_of = |row: usize, col: usize| match pass.order {
            Order::SamplesFirst => col,
            Order::TransformationsFirst => row,
        };
        let structures = &self.layers;
        let on_block = &mut self.on_block;
        // Inference runs on its own thread, one block ahead of the accumulation (which uses
        // the rayon pool): the two overlap, at the cost of one more block in memory. One
        // message per block, handed over when the accumulation takes it (a channel of no
        // capacity): the producer computes the next block while the consumer accumulates this
        // one, and no more than those two blocks are held. (With the start and end of a row of
        // blocks as messages of their own in a channel of one, the producer waited on the
        // row's end for the whole accumulation: inference and accumulation took turns, with
        // each core idle a fifth of the time.)
        std::thread::scope(|scope| -> Result<()> {
            let (sender, receiver) = std::sync::mpsc::sync_channel::<Message>(0);
            let producer = scope.spawn(move || {
                let rows = match iterator.get_block(block_height, block_width) {
                    Ok(rows) => rows,
                    Err(e) => {
                        let _ = sender.send(Message::Failed(e.into()));
                        return;
                    }
                };
                for row in rows {
                    let mut begin = Some(row.rows().to_vec());
                    for block in row {
                        let message = match block {
                            Ok(block) => {
                                // Blocks cover a row's columns left to right.
                                let end = block.columns_dataset().last() == Some(&(width - 1));
                                Message::Block { begin: begin.take(), block, end }
                            }
                            Err(e) => Message::Failed(e.into()),
                        };
                        let failed = matches!(message, Message::Failed(_));
                        if sender.send(message).is_err() || failed {
                            return;
                        }
                    }
                }
            });
            let mut rows = Vec::new();
            let consumed = (|| -> Result<()> {
                for message in receiver.iter() {
                    match message {
                        Message::Failed(e) => return Err(e),
                        Message::Block { begin, block, end } => {
                            if let Some(r) = begin {
                                rows = r;
                                visitor.begin_rows(&rows, width)?;
                            }
                            let columns = block.columns_dataset().to_vec();
                            let mut owned: Vec<ArrayD<f32>> = Vec::new();
                            if pass.inverse {
                                for (l, layer) in structures.iter().enumerate() {
                                    let mut a = block.layer(l)?.clone();
                                    if layer.is_feature_layer() {
                                        for (i, &r) in rows.iter().enumerate() {
                                            for (j, &c) in columns.iter().enumerate() {
                                                let cell = block.at(i, j, l)?;
                                                let inv = dataset.apply_inverse_transformation(
                                                    cell,
                                                    layer.channel_axis,
                                                    transformation_of(r, c),
                                                )?;
                                                cell_mut(&mut a, i, j).assign(&inv);
                                            }
                                        }
                                    }
                                    owned.push(a);
                                }
                            }
                            let layers: Vec<Values<'_>> = if pass.inverse {
                                owned.iter().map(|a| Values::F32(a.view())).collect()
                            } else {
                                (0..structures.len())
                                    .map(|l| Ok(Values::F32(block.layer(l)?.view())))
                                    .collect::<Result<_>>()?
                            };
                            let reference = match identity {
                                Some(id) => {
                                    let mut refs = Vec::with_capacity(structures.len());
                                    for (l, layer) in structures.iter().enumerate() {
                                        let mut r = ArrayD::<f32>::zeros(block.layer(l)?.raw_dim());
                                        if layer.is_feature_layer() {
                                            let at = columns
                                                .iter()
                                                .position(|&c| c == id)
                                                .ok_or_else(|| {
                                                    InvarianceError::Invalid(
                                                        "dses needs whole rows in every block"
                                                            .into(),
                                                    )
                                                })?;
                                            for i in 0..rows.len() {
                                                let base = block.at(i, at, l)?;
                                                for (j, &c) in columns.iter().enumerate() {
                                                    let f = dataset.apply_transformation(
                                                        base.view(),
                                                        layer.channel_axis,
                                                        c,
                                                    )?;
                                                    cell_mut(&mut r, i, j).assign(&f);
                                                }
                                            }
                                        }
                                        refs.push(r);
                                    }
                                    Some(refs)
                                }
                                None => None,
                            };
                            let reference_values: Option<Vec<Values<'_>>> = reference
                                .as_ref()
                                .map(|r| r.iter().map(|a| Values::F32(a.view())).collect());
                            visitor.block(&columns, &layers, reference_values.as_deref())?;
                            if let Some(on_block) = on_block.as_mut() {
                                on_block(rows.len() * columns.len());
                            }
                            if end {
                                visitor.end_rows()?;
                            }
                        }
                    }
                }
                Ok(())
            })();
            // Stops the producer if the accumulation failed (its next send fails).
            drop(receiver);
            producer
                .join()
                .map_err(|_| InvarianceError::Invalid("the inference thread panicked".into()))?;
            consumed
        })
    }
}

/// What the inference thread sends to the accumulation.
enum Message {
    /// A block, with its row of blocks' dataset rows when it is the row's first, and `end`
    /// when it is the row's last.
    Block {
        begin: Option<Vec<usize>>,
        block: nnlens_core::Block,
        end: bool,
    },
    Failed(InvarianceError),
}
