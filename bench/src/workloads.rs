//! `nnlens bench --workload`: the seed notebooks' workloads run end to end, each as its own
//! `nnlens run` process (as a user runs it, and as the Python peers are timed), with the wall
//! time of the process, the time of its measuring loop (the manifest's `timings_s.measure`),
//! its peak resident memory, and its throughput beside the limits of this machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::machine::Limits;

/// A seed workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// alibi's linearity notebook: `run linearity --per-class --nb-samples 20` on the first
    /// `--samples` images (default 10,000): 21 forwards per image.
    Linearity,
    /// tmeasures' NVI of every layer: `run nvi` over `--samples` images (default 1,000) x the 9
    /// translations `translation:dx=-2..2,dy=-2..2,step=2`.
    Nvi,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Linearity => "linearity per class",
            Workload::Nvi => "nvi every layer",
        }
    }

    fn default_samples(self) -> usize {
        match self {
            Workload::Linearity => 10_000,
            Workload::Nvi => 1_000,
        }
    }

    /// Forwards per sample.
    fn forwards_per_sample(self) -> usize {
        match self {
            Workload::Linearity => 21,
            Workload::Nvi => 9,
        }
    }

    fn arguments(self) -> Vec<String> {
        let args: &[&str] = match self {
            Workload::Linearity => &["linearity", "--per-class", "--nb-samples", "20"],
            Workload::Nvi => &["nvi", "--transformations", "translation:dx=-2..2,dy=-2..2,step=2"],
        };
        args.iter().map(|s| s.to_string()).collect()
    }
}

/// What the workloads run on.
#[derive(Debug)]
pub struct Setup<'a> {
    /// The ONNX model.
    pub model: &'a Path,
    /// The `--dataset` of the runs.
    pub dataset: &'a str,
    /// Its `--data-dir`.
    pub data_dir: Option<&'a Path>,
    /// Samples per run (each workload's own default otherwise).
    pub samples: Option<usize>,
    /// Backends to run them with.
    pub backends: &'a [String],
    /// `--threads` of each run.
    pub threads: Option<usize>,
    /// Runs of each (workload, backend).
    pub rounds: usize,
    /// The seed.
    pub seed: u64,
    /// Multiply-adds of one forward.
    pub fma_per_forward: f64,
    /// The machine's limits.
    pub limits: Limits,
}

/// One (workload, backend): the median of its runs, and their range.
#[derive(Debug, Serialize)]
pub struct WorkloadRow {
    /// The workload.
    pub workload: &'static str,
    /// The backend.
    pub backend: String,
    /// Samples (images) of each run.
    pub samples: usize,
    /// Model forwards of each run.
    pub forwards: usize,
    /// Runs.
    pub rounds: usize,
    /// Wall time of the whole process, median and range.
    pub wall_s: [f64; 3],
    /// The measuring loop (the manifest's `timings_s.measure`), median and range.
    pub measure_s: [f64; 3],
    /// Peak resident memory of the process (its own VmHWM at exit), MB, median and range.
    pub peak_rss_mb: [f64; 3],
    /// Forwards per second of the measuring loop (median).
    pub forwards_per_s: f64,
    /// Arithmetic of the measuring loop (median), GFLOP/s (2 per multiply-add).
    pub gflop_per_s: f64,
    /// The loop's time over the time the machine's multiply-add peak needs for its forwards.
    pub times_fma_limit: f64,
    /// Activation values accumulated per second (every layer's activations of every forward;
    /// NVI only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation_updates_per_s: Option<f64>,
    /// The loop's time over the time reading every activation value once from memory takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub times_bandwidth_limit: Option<f64>,
}

/// What one run of a workload gave.
struct RunResult {
    wall_s: f64,
    measure_s: f64,
    peak_rss_bytes: u64,
    /// Activation values per forward of the measured layers (NVI).
    activations_per_forward: usize,
}

/// Runs every workload with every backend, `rounds` times each (the backends in turn within a
/// round), and summarises them.
///
/// # Errors
/// A run that fails (its message), or a result file without its timings.
pub fn run(setup: &Setup<'_>, workloads: &[Workload]) -> Result<Vec<WorkloadRow>> {
    let exe = std::env::current_exe().context("cannot find the nnlens executable")?;
    let scratch = tempfile_dir()?;
    let mut rows = Vec::new();
    for &workload in workloads {
        let samples = setup.samples.unwrap_or(workload.default_samples());
        let forwards = samples * workload.forwards_per_sample();
        let mut results: Vec<Vec<RunResult>> = setup.backends.iter().map(|_| Vec::new()).collect();
        for round in 0..setup.rounds {
            for (b, backend) in setup.backends.iter().enumerate() {
                let out = scratch.path.join(format!("{round}-{b}"));
                let result = run_once(&exe, setup, workload, backend, samples, &out)
                    .with_context(|| format!("{} with {backend}", workload.name()))?;
                tracing::info!(
                    workload = workload.name(),
                    backend,
                    round,
                    wall_s = result.wall_s,
                    measure_s = result.measure_s,
                    "ran"
                );
                results[b].push(result);
            }
        }
        for (backend, runs) in setup.backends.iter().zip(results) {
            let wall = summary(runs.iter().map(|r| r.wall_s));
            let measure = summary(runs.iter().map(|r| r.measure_s));
            let rss = summary(runs.iter().map(|r| r.peak_rss_bytes as f64 / 1e6));
            let loop_s = measure[0];
            let fma = forwards as f64 * setup.fma_per_forward;
            let activations = runs.first().map_or(0, |r| r.activations_per_forward);
            let updates = (workload == Workload::Nvi).then(|| (forwards * activations) as f64);
            rows.push(WorkloadRow {
                workload: workload.name(),
                backend: backend.clone(),
                samples,
                forwards,
                rounds: setup.rounds,
                wall_s: wall,
                measure_s: measure,
                peak_rss_mb: rss,
                forwards_per_s: forwards as f64 / loop_s,
                gflop_per_s: 2.0 * fma / loop_s / 1e9,
                times_fma_limit: loop_s / (fma / setup.limits.fma_per_s),
                activation_updates_per_s: updates.map(|u| u / loop_s),
                times_bandwidth_limit: updates.map(|u| {
                    loop_s / (u * std::mem::size_of::<f32>() as f64 / setup.limits.read_bytes_per_s)
                }),
            });
        }
    }
    Ok(rows)
}

/// `[median, min, max]` (NaN for no values).
pub(crate) fn summary(values: impl Iterator<Item = f64>) -> [f64; 3] {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return [f64::NAN; 3];
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    [median, v[0], v[n - 1]]
}

fn run_once(
    exe: &Path,
    setup: &Setup<'_>,
    workload: Workload,
    backend: &str,
    samples: usize,
    out: &Path,
) -> Result<RunResult> {
    let mut command = Command::new(exe);
    command.arg("-q").arg("run").args(workload.arguments());
    command.arg("--model").arg(setup.model).args(["--backend", backend]);
    command.args(["--dataset", setup.dataset, "--samples", &samples.to_string()]);
    command.args(["--seed", &setup.seed.to_string()]).arg("--out").arg(out);
    if let Some(dir) = setup.data_dir {
        command.arg("--data-dir").arg(dir);
    }
    if let Some(threads) = setup.threads {
        command.args(["--threads", &threads.to_string()]);
    }
    let peak_file = out.with_extension("peak-memory");
    command.env(nnlens_run::process::PEAK_MEMORY_FILE, &peak_file);
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let start = Instant::now();
    let output = command.output().with_context(|| format!("cannot start {}", exe.display()))?;
    let wall_s = start.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "the run failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let peak_rss_bytes: u64 = std::fs::read_to_string(&peak_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .with_context(|| format!("the run wrote no peak memory into {}", peak_file.display()))?;
    let _ = std::fs::remove_file(&peak_file);
    let result_file = out.join("result.json");
    let text = std::fs::read_to_string(&result_file)
        .with_context(|| format!("cannot read {}", result_file.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", result_file.display()))?;
    let measure_s = doc["manifest"]["timings_s"]["measure"]
        .as_f64()
        .with_context(|| format!("{} has no timings_s.measure", result_file.display()))?;
    let activations_per_forward = doc["result"]["layers"]
        .as_array()
        .map(|layers| {
            layers
                .iter()
                .filter_map(|l| l["shape"].as_array())
                .map(|s| s.iter().filter_map(serde_json::Value::as_u64).product::<u64>() as usize)
                .sum()
        })
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(out);
    Ok(RunResult { wall_s, measure_s, peak_rss_bytes, activations_per_forward })
}

/// A scratch directory for the runs' outputs, removed on drop.
struct ScratchDir {
    path: PathBuf,
}

fn tempfile_dir() -> Result<ScratchDir> {
    let path = std::env::temp_dir().join(format!("nnlens-bench-runs-{}", std::process::id()));
    std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(ScratchDir { path })
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_median_min_max() {
        assert_eq!(summary([3.0, 1.0, 2.0].into_iter()), [2.0, 1.0, 3.0]);
        assert_eq!(summary([4.0, 1.0, 2.0, 3.0].into_iter()), [2.5, 1.0, 4.0]);
        assert!(summary(std::iter::empty()).iter().all(|v| v.is_nan()));
    }
}
