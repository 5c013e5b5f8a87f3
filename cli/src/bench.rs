//! `nnlens bench`: inference throughput of every backend on one model, side by side.

use std::time::Instant;

use anyhow::{Result, bail};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::inputs::load_model_from;
use crate::output::{print_json, print_table};
use crate::{BenchArgs, Cli, Format};

/// One measured configuration.
#[derive(Debug, Serialize)]
struct Row {
    backend: String,
    threads: Option<usize>,
    batch: usize,
    images: usize,
    seconds: f64,
    images_per_s: f64,
    /// Throughput relative to tract on one thread.
    vs_tract_1_thread: f64,
}

/// `nnlens bench`.
pub fn run(cli: &Cli, args: &BenchArgs) -> Result<()> {
    if args.batch == 0 || args.images == 0 {
        bail!("--batch and --images must be at least 1");
    }
    let backends: Vec<String> = if args.backend.is_empty() {
        nnlens_core::backends()
            .iter()
            .filter(|b| (b.available)().is_ok())
            .map(|b| b.name.to_string())
            .collect()
    } else {
        args.backend.clone()
    };
    // The reference: tract on one thread, then every backend with its thread setting.
    let mut configs: Vec<(String, Option<usize>)> = vec![("tract".into(), Some(1))];
    configs.extend(backends.iter().map(|b| (b.clone(), args.threads)));
    let mut rows: Vec<Row> = Vec::new();
    for (backend, threads) in configs {
        let loaded = load_model_from(args.model.as_deref(), &backend, threads)?;
        let model = loaded.model.as_ref();
        let input = &model.structure().input;
        let mut shape = vec![args.batch];
        shape.extend_from_slice(&input.shape);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cli.seed);
        let x = ArrayD::from_shape_simple_fn(IxDyn(&shape), || rng.random::<f32>());
        // Warm-up: plan optimisation, allocations.
        model.predict_output(x.view())?;
        let batches = args.images.div_ceil(args.batch);
        let t = Instant::now();
        for _ in 0..batches {
            std::hint::black_box(model.predict_output(x.view())?);
        }
        let seconds = t.elapsed().as_secs_f64();
        let images = batches * args.batch;
        let rate = images as f64 / seconds;
        let reference = rows.first().map_or(rate, |r| r.images_per_s);
        tracing::info!(backend, ?threads, rate, "measured");
        rows.push(Row {
            backend,
            threads,
            batch: args.batch,
            images,
            seconds,
            images_per_s: rate,
            vs_tract_1_thread: rate / reference,
        });
    }
    match cli.format {
        Format::Json => print_json(&rows),
        Format::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.backend.clone(),
                        r.threads.map_or("all".into(), |t| t.to_string()),
                        r.batch.to_string(),
                        r.images.to_string(),
                        format!("{:.2}", r.seconds),
                        format!("{:.0}", r.images_per_s),
                        format!("{:.2}x", r.vs_tract_1_thread),
                    ]
                })
                .collect();
            print_table(
                &[
                    "backend",
                    "threads",
                    "batch",
                    "images",
                    "seconds",
                    "images/s",
                    "vs tract 1 thread",
                ],
                &cells,
            );
            Ok(())
        }
    }
}
