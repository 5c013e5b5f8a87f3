//! Streaming a 2-D dataset through a model in blocks, as `Iterator` and `Block` of
//! transformational-measures-tf.
//!
//! ```text
//! for row in iterator.get_block(height, width)? {      // "vertical": rows of blocks
//!     for block in row {                                  // "horizontal": blocks of a row
//!         let block = block?;
//!         let a = block.at(i, j, l)?;                     // layer l of input (i, j)
//!         let f = block.feature(i, j, l, f)?;             // feature map f of it
//!     }
//! }
//! ```
//!
//! A block's inputs go through the model in batches of at most `batch_size`; only one block's
//! inputs and activations are held at a time, so memory is bounded by the block size and never
//! by the dataset size.

use ndarray::{ArrayD, ArrayViewD, Axis, IxDyn};

use crate::{CoreError, DataSet, LayerStructure, Model, Result, conform_input};

/// Streams blocks of a dataset's inputs through a model (see the module docs).
pub struct BlockIterator<'a> {
    model: &'a dyn Model,
    dataset: &'a dyn DataSet,
    layers: Vec<LayerStructure>,
    batch_size: usize,
}

impl std::fmt::Debug for BlockIterator<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockIterator")
            .field("layers", &self.layers.iter().map(|l| &l.name).collect::<Vec<_>>())
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

/// The default number of inputs per model call.
pub const DEFAULT_BATCH_SIZE: usize = 256;

impl<'a> BlockIterator<'a> {
    /// An iterator over every layer of `model`, for inputs from `dataset`.
    pub fn new(model: &'a dyn Model, dataset: &'a dyn DataSet) -> Self {
        let layers = model.structure().layers.clone();
        Self { model, dataset, layers, batch_size: DEFAULT_BATCH_SIZE }
    }

    /// Restricts the activations to the layers named (layer or tensor names), in that order.
    ///
    /// # Errors
    /// [`CoreError::UnknownLayer`], or [`CoreError::Empty`] for no names.
    pub fn with_layers(mut self, names: &[&str]) -> Result<Self> {
        if names.is_empty() {
            return Err(CoreError::Empty("the list of layers".into()));
        }
        let s = self.model.structure();
        self.layers =
            names.iter().map(|n| s.layer(n).cloned()).collect::<Result<Vec<LayerStructure>>>()?;
        Ok(self)
    }

    /// Sets how many inputs go through the model at once.
    ///
    /// # Errors
    /// [`CoreError::InvalidParameters`] for 0.
    pub fn with_batch_size(mut self, batch_size: usize) -> Result<Self> {
        if batch_size == 0 {
            return Err(CoreError::InvalidParameters {
                what: "block iterator".into(),
                reason: "batch size must be at least 1".into(),
            });
        }
        self.batch_size = batch_size;
        Ok(self)
    }

    /// The model.
    pub fn model(&self) -> &dyn Model {
        self.model
    }

    /// The dataset.
    pub fn dataset(&self) -> &dyn DataSet {
        self.dataset
    }

    /// The layers whose activations the blocks hold, in order (index `l` of a block).
    pub fn layers(&self) -> &[LayerStructure] {
        &self.layers
    }

    /// The rows of blocks of `height` x `width` inputs (the last row and column may be smaller).
    ///
    /// # Errors
    /// [`CoreError::InvalidParameters`] for a zero size, [`CoreError::Empty`] for an empty
    /// dataset.
    pub fn get_block(&self, height: usize, width: usize) -> Result<BlockRows<'_, 'a>> {
        if height == 0 || width == 0 {
            return Err(CoreError::InvalidParameters {
                what: "block iterator".into(),
                reason: format!("block size {height} x {width}: both must be at least 1"),
            });
        }
        if self.dataset.height() == 0 || self.dataset.width() == 0 {
            return Err(CoreError::Empty("the dataset".into()));
        }
        Ok(BlockRows { iterator: self, height, width, next: 0 })
    }

    /// Computes the block of inputs `rows` x `columns` of the dataset.
    ///
    /// # Errors
    /// As [`DataSet::get_matrix`] and [`Model::predict`].
    pub fn block(&self, rows: &[usize], columns: &[usize]) -> Result<Block> {
        let x = self.dataset.get_matrix(rows, columns)?;
        let (h, w) = (rows.len(), columns.len());
        let mut flat_shape = vec![h * w];
        flat_shape.extend_from_slice(&x.shape()[2..]);
        let x = x.into_shape_with_order(IxDyn(&flat_shape)).map_err(|e| CoreError::Shape {
            what: "block inputs".into(),
            expected: format!("{flat_shape:?}"),
            got: e.to_string(),
        })?;
        let x = conform_input(x, &self.model.structure().input)?;
        let names: Vec<&str> = self.layers.iter().map(|l| l.name.as_str()).collect();
        let joined =
            crate::predict_in_batches(self.model, x.view(), Some(&names), self.batch_size)?;
        let mut values = Vec::with_capacity(names.len());
        for (layer, joined) in self.layers.iter().zip(joined) {
            let mut shape = vec![h, w];
            shape.extend_from_slice(&layer.shape);
            let got = format!("{:?}", joined.shape());
            values.push(joined.into_shape_with_order(IxDyn(&shape)).map_err(|_| {
                CoreError::Shape {
                    what: format!("layer {}", layer.name),
                    expected: format!("{shape:?}"),
                    got,
                }
            })?);
        }
        Ok(Block {
            rows: rows.to_vec(),
            columns: columns.to_vec(),
            transposed: self.dataset.is_transposed(),
            layers: self.layers.clone(),
            values,
        })
    }
}

/// The "vertical" iterator: one [`BlockRow`] per `height` rows of the dataset.
#[derive(Debug)]
pub struct BlockRows<'i, 'a> {
    iterator: &'i BlockIterator<'a>,
    height: usize,
    width: usize,
    next: usize,
}

impl<'i, 'a> Iterator for BlockRows<'i, 'a> {
    type Item = BlockRow<'i, 'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let total = self.iterator.dataset.height();
        if self.next >= total {
            return None;
        }
        let end = (self.next + self.height).min(total);
        let rows = (self.next..end).collect();
        self.next = end;
        Some(BlockRow { iterator: self.iterator, rows, width: self.width, next: 0 })
    }
}

/// The "horizontal" iterator over the blocks of some rows; each item is computed when reached.
#[derive(Debug)]
pub struct BlockRow<'i, 'a> {
    iterator: &'i BlockIterator<'a>,
    rows: Vec<usize>,
    width: usize,
    next: usize,
}

impl BlockRow<'_, '_> {
    /// The number of dataset rows in this row of blocks.
    pub fn height(&self) -> usize {
        self.rows.len()
    }

    /// The dataset rows.
    pub fn rows(&self) -> &[usize] {
        &self.rows
    }
}

impl Iterator for BlockRow<'_, '_> {
    type Item = Result<Block>;

    fn next(&mut self) -> Option<Self::Item> {
        let total = self.iterator.dataset.width();
        if self.next >= total {
            return None;
        }
        let end = (self.next + self.width).min(total);
        let columns: Vec<usize> = (self.next..end).collect();
        self.next = end;
        Some(self.iterator.block(&self.rows, &columns))
    }
}

/// The activations of a block of `height` x `width` inputs for some layers: indexable by
/// `(i, j, l)` (input at block row i, column j; layer l) and `(i, j, l, f)` (its feature map f).
/// It knows which dataset rows and columns it holds and whether the dataset was transposed.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    rows: Vec<usize>,
    columns: Vec<usize>,
    transposed: bool,
    layers: Vec<LayerStructure>,
    values: Vec<ArrayD<f32>>,
}

impl Block {
    /// The number of rows.
    pub fn height(&self) -> usize {
        self.rows.len()
    }

    /// The number of columns.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// The dataset rows of the block's rows.
    pub fn rows_dataset(&self) -> &[usize] {
        &self.rows
    }

    /// The dataset columns of the block's columns.
    pub fn columns_dataset(&self) -> &[usize] {
        &self.columns
    }

    /// Whether the dataset was transposed when the block was made.
    pub fn is_dataset_transposed(&self) -> bool {
        self.transposed
    }

    /// The layers, in index order.
    pub fn layers(&self) -> &[LayerStructure] {
        &self.layers
    }

    /// Layer `l` for the whole block: `[height, width, ...layer shape]`.
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] for a layer index past the end.
    pub fn layer(&self, l: usize) -> Result<&ArrayD<f32>> {
        self.values.get(l).ok_or(CoreError::OutOfRange {
            what: "block layers".into(),
            index: l,
            len: self.values.len(),
        })
    }

    /// The activations of layer `l` for the input at block row `i`, column `j`.
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] for any index past the end.
    pub fn at(&self, i: usize, j: usize, l: usize) -> Result<ArrayViewD<'_, f32>> {
        let layer = self.layer(l)?;
        for (what, index, len) in
            [("block rows", i, self.height()), ("block columns", j, self.width())]
        {
            if index >= len {
                return Err(CoreError::OutOfRange { what: what.into(), index, len });
            }
        }
        Ok(layer.index_axis(Axis(0), i).index_axis_move(Axis(0), j))
    }

    /// Feature map `f` of layer `l` for the input at block row `i`, column `j`.
    ///
    /// # Errors
    /// [`CoreError::OutOfRange`] for any index past the end, [`CoreError::InvalidParameters`]
    /// for a layer without feature maps.
    pub fn feature(&self, i: usize, j: usize, l: usize, f: usize) -> Result<ArrayViewD<'_, f32>> {
        let a = self.at(i, j, l)?;
        let layer = &self.layers[l];
        let Some(c) = layer.channel_axis.filter(|_| layer.is_feature_layer()) else {
            return Err(CoreError::InvalidParameters {
                what: format!("layer {}", layer.name),
                reason: "it has no feature maps".into(),
            });
        };
        if f >= layer.number_features() {
            return Err(CoreError::OutOfRange {
                what: format!("features of {}", layer.name),
                index: f,
                len: layer.number_features(),
            });
        }
        Ok(a.index_axis_move(Axis(c), f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Activations, InputStructure, ModelStructure};
    use ndarray::Array;

    /// A model of 2-value inputs with two layers: "map" [2, 2, 2] (channels first) where
    /// map[c, y, x] = x0 * (c + 1) + y * 10 + x * 100 + x1, and "sum" [1] = x0 + x1.
    struct Mock {
        structure: ModelStructure,
        calls: std::sync::Mutex<Vec<usize>>,
    }

    impl Mock {
        fn new() -> Self {
            let layer = |name: &str, shape: Vec<usize>, c| LayerStructure {
                name: name.into(),
                tensor: name.into(),
                op: "Mock".into(),
                shape,
                channel_axis: c,
            };
            let structure = ModelStructure::new(
                InputStructure {
                    name: "x".into(),
                    shape: vec![2],
                    channel_axis: None,
                    dtype: "f32".into(),
                },
                vec![layer("map", vec![2, 2, 2], Some(0)), layer("sum", vec![1], None)],
                1,
            )
            .unwrap();
            Self { structure, calls: Default::default() }
        }
    }

    impl Model for Mock {
        fn backend(&self) -> &'static str {
            "mock"
        }
        fn structure(&self) -> &ModelStructure {
            &self.structure
        }
        fn predict(&self, x: ArrayViewD<'_, f32>, layers: Option<&[&str]>) -> Result<Activations> {
            let n = x.shape()[0];
            self.calls.lock().unwrap().push(n);
            let mut out = Activations::new();
            for &name in layers.unwrap_or(&["map", "sum"]) {
                let value = match name {
                    "map" => Array::from_shape_fn(IxDyn(&[n, 2, 2, 2]), |i| {
                        x[[i[0], 0]] * (i[1] + 1) as f32
                            + (i[2] * 10 + i[3] * 100) as f32
                            + x[[i[0], 1]]
                    }),
                    "sum" => Array::from_shape_fn(IxDyn(&[n, 1]), |i| x[[i[0], 0]] + x[[i[0], 1]]),
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

    /// Samples x transformations where input (s, t) = [s, 1000 * t].
    struct Grid {
        samples: usize,
        transformations: usize,
        transposed: bool,
    }

    impl DataSet for Grid {
        fn height(&self) -> usize {
            if self.transposed { self.transformations } else { self.samples }
        }
        fn width(&self) -> usize {
            if self.transposed { self.samples } else { self.transformations }
        }
        fn data_shape(&self) -> &[usize] {
            &[2]
        }
        fn get_matrix(&self, rows: &[usize], cols: &[usize]) -> Result<ArrayD<f32>> {
            crate::check_indices("rows", rows, self.height())?;
            crate::check_indices("columns", cols, self.width())?;
            Ok(Array::from_shape_fn(IxDyn(&[rows.len(), cols.len(), 2]), |i| {
                let (s, t) = if self.transposed {
                    (cols[i[1]], rows[i[0]])
                } else {
                    (rows[i[0]], cols[i[1]])
                };
                if i[2] == 0 { s as f32 } else { 1000.0 * t as f32 }
            }))
        }
        fn transpose(&mut self) {
            self.transposed = !self.transposed;
        }
        fn is_transposed(&self) -> bool {
            self.transposed
        }
    }

    fn visit(dataset: &Grid, h: usize, w: usize, batch: usize) -> Vec<Vec<usize>> {
        let model = Mock::new();
        let it = BlockIterator::new(&model, dataset).with_batch_size(batch).unwrap();
        let mut seen = vec![vec![0usize; dataset.width()]; dataset.height()];
        for row in it.get_block(h, w).unwrap() {
            assert!(row.height() <= h);
            for block in row {
                let block = block.unwrap();
                assert!(block.width() <= w);
                assert_eq!(block.is_dataset_transposed(), dataset.transposed);
                for (i, &r) in block.rows_dataset().iter().enumerate() {
                    for (j, &c) in block.columns_dataset().iter().enumerate() {
                        seen[r][c] += 1;
                        let (s, t) = if dataset.transposed { (c, r) } else { (r, c) };
                        let x = Array::from_shape_vec(
                            IxDyn(&[1, 2]),
                            vec![s as f32, 1000.0 * t as f32],
                        )
                        .unwrap();
                        let alone = model.predict(x.view(), None).unwrap();
                        assert_eq!(
                            block.at(i, j, 0).unwrap(),
                            alone.values()[0].index_axis(Axis(0), 0)
                        );
                        assert_eq!(
                            block.at(i, j, 1).unwrap(),
                            alone.values()[1].index_axis(Axis(0), 0)
                        );
                        let f1 = block.feature(i, j, 0, 1).unwrap();
                        assert_eq!(f1.shape(), &[2, 2]);
                        assert_eq!(f1[[1, 0]], s as f32 * 2.0 + 10.0 + 1000.0 * t as f32);
                    }
                }
            }
        }
        assert!(model.calls.lock().unwrap().iter().all(|&n| n <= batch));
        seen
    }

    #[test]
    fn every_input_is_visited_once_with_its_own_activations() {
        for transposed in [false, true] {
            let grid = Grid { samples: 23, transformations: 9, transposed };
            let seen = visit(&grid, 7, 4, 5);
            assert!(seen.iter().flatten().all(|&k| k == 1), "{seen:?}");
        }
    }

    #[test]
    fn bad_sizes_and_indices_are_errors() {
        let model = Mock::new();
        let grid = Grid { samples: 3, transformations: 2, transposed: false };
        let it = BlockIterator::new(&model, &grid);
        assert!(it.get_block(0, 1).is_err());
        assert!(BlockIterator::new(&model, &grid).with_batch_size(0).is_err());
        assert!(BlockIterator::new(&model, &grid).with_layers(&["nope"]).is_err());
        let block = it.block(&[0, 1], &[1]).unwrap();
        assert!(block.at(2, 0, 0).is_err());
        assert!(block.at(0, 1, 0).is_err());
        assert!(block.at(0, 0, 2).is_err());
        assert!(block.feature(0, 0, 1, 0).is_err(), "sum has no feature maps");
        assert!(block.feature(0, 0, 0, 2).is_err());
        assert!(it.block(&[3], &[0]).is_err());
        let only_sum = BlockIterator::new(&model, &grid).with_layers(&["sum"]).unwrap();
        let b = only_sum.block(&[2], &[1]).unwrap();
        assert_eq!(b.layers().len(), 1);
        assert_eq!(b.at(0, 0, 0).unwrap()[[0]], 1002.0);
    }
}
