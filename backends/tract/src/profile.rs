//! Where tract spends its time and how much arithmetic a forward is: the per-operator table
//! of `nnlens bench --profile`, and the multiply-adds that put a throughput beside the
//! machine's limit.

use std::collections::HashMap;
use std::time::Instant;

use tract_onnx::prelude::tract_ndarray::ArrayViewD;
use tract_onnx::prelude::*;

use crate::model::{CHUNK_ROWS, TractError, TractModel};

/// The time one kind of operator took over the profiled runs.
#[derive(Debug, Clone)]
pub struct OperatorTime {
    /// tract's operator name after optimisation (`Conv`, `OptMatMul`, `MaxPool`, ...).
    pub op: String,
    /// How many nodes of the plan run it.
    pub nodes: usize,
    /// Seconds per input, summed over those nodes.
    pub seconds_per_input: f64,
    /// Multiply-adds per input of those nodes (0 for operators without arithmetic).
    pub fma_per_input: f64,
}

impl TractModel {
    /// Multiply-adds one input costs, by tract's own count of each operator of the typed
    /// (decluttered, not yet optimised) graph at a batch of [`CHUNK_ROWS`], divided by it.
    ///
    /// # Errors
    /// tract cannot type the graph, or an operator's cost depends on a symbol.
    pub fn fma_per_input(&self) -> Result<f64, TractError> {
        let typed = self.typed(CHUNK_ROWS)?;
        let mut total = 0.0;
        for node in &typed.nodes {
            total += node_fma(&typed, node).map_err(|e| self.engine_error(e))?;
        }
        Ok(total / CHUNK_ROWS as f64)
    }

    /// Runs the plan of the model's output on chunks of `x` (`rounds` times over every chunk,
    /// after one untimed warm-up chunk) on this thread, timing every node, and sums the times
    /// per operator, slowest first.
    ///
    /// # Errors
    /// Shape errors, or tract fails to run the model.
    pub fn profile(
        &self,
        x: ArrayViewD<'_, f32>,
        rounds: usize,
    ) -> Result<Vec<OperatorTime>, TractError> {
        let structure = nnlens_core::Model::structure(self);
        let batch = structure.input.check_batch(self.label(), &x)?;
        let output = structure.output_layer().tensor.clone();
        let plan = self.runnable(CHUNK_ROWS, &[output])?;
        let model = plan.model();
        let mut fma: HashMap<usize, f64> = HashMap::new();
        for node in &model.nodes {
            fma.insert(node.id, node_fma(model, node).map_err(|e| self.engine_error(e))?);
        }
        let mut state = plan.spawn().map_err(|e| self.engine_error(e))?;
        let chunks = batch / CHUNK_ROWS;
        if chunks == 0 {
            return Err(TractError::Engine {
                label: self.label().to_string(),
                message: format!("profiling needs at least {CHUNK_ROWS} inputs, got {batch}"),
            });
        }
        let x = x.as_standard_layout();
        let chunk = |c: usize| -> Tensor {
            x.slice_axis(
                tract_ndarray::Axis(0),
                tract_ndarray::Slice::from(c * CHUNK_ROWS..(c + 1) * CHUNK_ROWS),
            )
            .to_owned()
            .into()
        };
        state.run(tvec!(chunk(0).into())).map_err(|e| self.engine_error(e))?;
        let mut seconds: HashMap<usize, f64> = HashMap::new();
        for _ in 0..rounds.max(1) {
            for c in 0..chunks {
                state
                    .run_plan_with_eval(tvec!(chunk(c).into()), |session, op_state, node, input| {
                        let start = Instant::now();
                        let out =
                            tract_onnx::tract_core::plan::eval(session, op_state, node, input);
                        *seconds.entry(node.id).or_default() += start.elapsed().as_secs_f64();
                        out
                    })
                    .map_err(|e| self.engine_error(e))?;
            }
        }
        let inputs = (rounds.max(1) * chunks * CHUNK_ROWS) as f64;
        let mut by_op: HashMap<String, OperatorTime> = HashMap::new();
        for node in &model.nodes {
            let op = node.op().name().to_string();
            let entry = by_op.entry(op.clone()).or_insert(OperatorTime {
                op,
                nodes: 0,
                seconds_per_input: 0.0,
                fma_per_input: 0.0,
            });
            entry.nodes += 1;
            entry.seconds_per_input += seconds.get(&node.id).copied().unwrap_or(0.0) / inputs;
            entry.fma_per_input += fma[&node.id] / CHUNK_ROWS as f64;
        }
        let mut table: Vec<OperatorTime> = by_op.into_values().collect();
        table.sort_by(|a, b| b.seconds_per_input.total_cmp(&a.seconds_per_input));
        Ok(table)
    }
}

/// tract's count of the multiply-adds of one node (its `Cost::FMA` entries), at the concrete
/// shapes of the graph.
fn node_fma(model: &TypedModel, node: &TypedNode) -> TractResult<f64> {
    let inputs = model.node_input_facts(node.id)?;
    let mut total = 0.0;
    for (cost, count) in node.op.cost(&inputs)? {
        if matches!(cost, tract_onnx::tract_core::ops::Cost::FMA(_)) {
            total += count.to_i64()? as f64;
        }
    }
    Ok(total)
}
