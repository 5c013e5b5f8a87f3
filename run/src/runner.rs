//! The runner seam: each metric family registers one [`Runner`], and the command line is built
//! from the registry at start-up.
//!
//! `nnlens run <metric>` has one subcommand per registered metric ([`nnlens_core::metrics`])
//! whose family has a runner; its flags are the runner's own ([`Runner::command`]), so another
//! family's flag is a usage error and `--help` lists this family's flags only. `nnlens plot DIR`
//! reads the metric from the saved manifest and asks its family's runner to redraw the files
//! ([`Runner::write_files`]). A runner may add top-level commands of its own
//! ([`Runner::commands`], e.g. the invariance family's `analyze`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{ArgMatches, Command};
use nnlens_core::RunManifest;
use serde_json::Value;

use crate::args::RunContext;
use crate::atomic::{MANIFEST, OutDir};

/// How a metric family runs from the command line. Implement it in the family's crate (behind
/// its `cli` feature) and register it with [`register_runner!`](crate::register_runner).
pub trait Runner: Sync {
    /// The family this runner runs: every registered metric whose
    /// [`MetricEntry::family`](nnlens_core::MetricEntry::family) is this name becomes
    /// `nnlens run <metric>`.
    fn family(&self) -> &'static str;

    /// The flags of `nnlens run <metric>`: `base` (named and described already) with the
    /// family's arguments, usually `FamilyArgs::augment_args(base)` of a `#[derive(clap::Args)]`
    /// struct.
    fn command(&self, metric: &str, base: Command) -> Command;

    /// Runs `metric` with the flags clap parsed from [`Runner::command`]'s arguments: measure,
    /// print the result in `ctx.format`, and write the result directory where asked.
    ///
    /// # Errors
    /// Anything that stops the run, as one line a user can act on.
    fn run(&self, metric: &str, args: &ArgMatches, ctx: &RunContext) -> Result<()>;

    /// Redraws the files of a saved result (`doc` is its `result.json`: `manifest` and
    /// `result`) into `out`, for `nnlens plot`.
    ///
    /// # Errors
    /// A document this family did not write, or a file that cannot be drawn.
    fn write_files(&self, doc: &Value, out: &mut OutDir) -> Result<()>;

    /// Merges the states of a split run's shards (`states`: checked to belong together, in
    /// shard order, each read from its state file when the merge asks for it) and finishes the
    /// run as the unsharded run would: the same result printed, and the same files written to
    /// `out`. `manifest` is the run's (the shards' own, without the shard).
    ///
    /// # Errors
    /// A state this family did not write, states that do not merge, a family without shards.
    fn merge(
        &self,
        metric: &str,
        _manifest: RunManifest,
        _states: crate::shard::ShardStates,
        _ctx: &RunContext,
        _out: &Path,
    ) -> Result<()> {
        bail!(
            "'{metric}' runs cannot be split into shards: the {} family cannot merge them",
            self.family()
        )
    }

    /// Top-level commands of the family besides `nnlens run` (default none).
    fn commands(&self) -> Vec<Command> {
        Vec::new()
    }

    /// Runs one of [`Runner::commands`].
    ///
    /// # Errors
    /// As [`Runner::run`].
    fn run_command(&self, name: &str, _args: &ArgMatches, _ctx: &RunContext) -> Result<()> {
        bail!("the {} family has no command '{name}'", self.family())
    }
}

/// How a command outside `nnlens run` (the binary's `evaluate`) merges its shards for
/// `nnlens merge`: `merge(manifest, states, ctx, out)`, as [`Runner::merge`]. Register with
/// `inventory::submit!`.
pub struct CommandMerger {
    /// The manifest's `command`.
    pub command: &'static str,
    /// Merges the states (in shard order) and writes the whole run's result to `out`.
    pub merge: fn(RunManifest, crate::shard::ShardStates, &RunContext, &Path) -> Result<()>,
}

inventory::collect!(CommandMerger);

/// A registered [`Runner`].
pub struct RunnerEntry(pub &'static dyn Runner);

inventory::collect!(RunnerEntry);

/// Registers a runner: `register_runner!(MyRunner);` at item level, where `MyRunner` is a unit
/// struct (or any constant expression) implementing [`Runner`].
#[macro_export]
macro_rules! register_runner {
    ($runner:expr) => {
        $crate::__inventory::submit! { $crate::RunnerEntry(&$runner) }
    };
}

/// Every registered runner, by family name.
pub fn runners() -> Vec<&'static dyn Runner> {
    let mut all: Vec<&'static dyn Runner> =
        inventory::iter::<RunnerEntry>.into_iter().map(|e| e.0).collect();
    all.sort_by_key(|r| r.family());
    all
}

/// The runner of `family`.
fn runner_of(family: &str) -> Option<&'static dyn Runner> {
    runners().into_iter().find(|r| r.family() == family)
}

/// The registered metrics that `nnlens run` can run: those whose family has a runner, with it.
pub fn runnable() -> Vec<(&'static nnlens_core::MetricEntry, &'static dyn Runner)> {
    nnlens_core::metrics().into_iter().filter_map(|m| runner_of(m.family).map(|r| (m, r))).collect()
}

/// `app` with the registered commands added: `run` (one subcommand per runnable metric),
/// `plot`, and every runner's own commands.
pub fn add_commands(app: Command) -> Command {
    let mut run = Command::new("run")
        .about("Run a registered metric (`nnlens metrics` lists them) and write its result files")
        .subcommand_required(true)
        .subcommand_value_name("METRIC")
        // An unknown metric is answered from the registry (exit 1, naming the metrics), not
        // with clap's usage error.
        .allow_external_subcommands(true);
    for (metric, runner) in runnable() {
        // The registry's description, also over a doc comment the flags' struct brings.
        let command = runner.command(metric.name, Command::new(metric.name));
        run = run.subcommand(command.about(metric.description).long_about(None));
    }
    let plot = Command::new("plot")
        .about("Redraw the plots of a saved result (a directory holding result.json)")
        .arg(
            clap::Arg::new("dir")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("A directory written by `run --out` or `analyze --out`"),
        )
        .arg(
            clap::Arg::new("out")
                .long("out")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Where to write the plots (default: the same directory)"),
        );
    let merge = Command::new("merge")
        .about(
            "Merge the shards of a split run (`--shard K/N`) into the result the whole run writes",
        )
        .arg(
            clap::Arg::new("out")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("Where to write the merged result (result.json, CSV, plots)"),
        )
        .arg(
            clap::Arg::new("shards")
                .required(true)
                .num_args(1..)
                .value_parser(clap::value_parser!(PathBuf))
                .help("The shards' --out directories, each holding a state.json"),
        );
    let mut app = app
        .subcommand(run)
        .subcommand(plot)
        .subcommand(merge)
        .subcommand(crate::slurm::submit_command())
        .subcommand(crate::slurm::status_command());
    for runner in runners() {
        for command in runner.commands() {
            app = app.subcommand(command);
        }
    }
    app
}

/// Runs the subcommand of `matches` if it is one [`add_commands`] added; `Ok(false)` when it
/// is another (the caller's own).
///
/// # Errors
/// An unknown metric (naming the registered ones), and what the runner returns.
pub fn dispatch(matches: &ArgMatches, ctx: &RunContext) -> Result<bool> {
    let Some((name, sub)) = matches.subcommand() else { return Ok(false) };
    match name {
        "run" => {
            let Some((metric, args)) = sub.subcommand() else {
                bail!("nnlens run needs a metric (`nnlens metrics` lists them)");
            };
            let entry = nnlens_core::metric(metric)?;
            let runner = runner_of(entry.family).with_context(|| {
                format!(
                    "metric '{metric}' is registered, but no runner of its family '{}' is linked",
                    entry.family
                )
            })?;
            runner.run(metric, args, ctx)?;
            Ok(true)
        }
        "merge" => {
            let out = sub.get_one::<PathBuf>("out").context("nnlens merge needs OUT")?;
            let dirs: Vec<PathBuf> =
                sub.get_many::<PathBuf>("shards").into_iter().flatten().cloned().collect();
            merge(out, &dirs, ctx)?;
            Ok(true)
        }
        "submit" => {
            crate::slurm::submit(sub, ctx)?;
            Ok(true)
        }
        "status" => {
            crate::slurm::status(sub, ctx)?;
            Ok(true)
        }
        "plot" => {
            let dir = sub.get_one::<PathBuf>("dir").context("nnlens plot needs a directory")?;
            plot(dir, sub.get_one::<PathBuf>("out").map(PathBuf::as_path))?;
            Ok(true)
        }
        _ => {
            for runner in runners() {
                if runner.commands().iter().any(|c| c.get_name() == name) {
                    runner.run_command(name, sub, ctx)?;
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}

/// `nnlens merge OUT SHARD_DIR...`: reads and checks the shards' states, and has the runner of
/// their metric's family merge them into `out`.
///
/// # Errors
/// What [`crate::shard::read_shards`] finds wrong, a metric no runner runs, the merge's errors.
pub fn merge(out: &Path, dirs: &[PathBuf], ctx: &RunContext) -> Result<()> {
    let t = std::time::Instant::now();
    let shards = crate::shard::read_shards(dirs)?;
    let mut manifest = crate::shard::merged_manifest(&shards);
    let metric = manifest.metric.clone().unwrap_or_default();
    if manifest.command == "run" && metric.is_empty() {
        bail!("{}: the shards' manifest names no metric", shards[0].dir.display());
    }
    let states = crate::shard::ShardStates::new(shards);
    manifest.timings_s.insert("merge".into(), t.elapsed().as_secs_f64());
    if manifest.command != "run" {
        let command = manifest.command.clone();
        let merger = inventory::iter::<CommandMerger>
            .into_iter()
            .find(|m| m.command == command)
            .with_context(|| format!("shards of `nnlens {command}` cannot be merged"))?;
        return (merger.merge)(manifest, states, ctx, out);
    }
    let family = nnlens_core::metric(&metric)?.family;
    let runner = runner_of(family).with_context(|| {
        format!("metric '{metric}': no runner of its family '{family}' is linked")
    })?;
    runner.merge(&metric, manifest, states, ctx, out)
}

/// The metric a saved manifest names: the `metric` key (schema 1), else where earlier
/// versions kept it (`parameters.measure` or `parameters.metric`).
fn saved_metric(doc: &Value) -> Option<&str> {
    let manifest = doc.get("manifest")?;
    manifest
        .get("metric")
        .and_then(Value::as_str)
        .or_else(|| manifest.pointer("/parameters/measure").and_then(Value::as_str))
        .or_else(|| manifest.pointer("/parameters/metric").and_then(Value::as_str))
}

/// `nnlens plot DIR`: redraws the files of the result saved in `dir` (into `out`, default
/// `dir`) with the runner of its metric's family.
///
/// # Errors
/// No readable `result.json`, a document that is not a result, a metric no runner runs.
pub fn plot(dir: &Path, out: Option<&Path>) -> Result<()> {
    let path = dir.join(MANIFEST);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let (Some(_), Some(metric)) = (doc.get("result").filter(|r| r.is_object()), saved_metric(&doc))
    else {
        bail!(
            "{} is not a result nnlens wrote (no \"result\" object or no metric in its \
             manifest); give a directory that `nnlens run` or `nnlens analyze` wrote with --out",
            path.display()
        );
    };
    let entry = nnlens_core::metric(metric).with_context(|| path.display().to_string())?;
    let runner = runner_of(entry.family).with_context(|| {
        format!("{}: no runner of the family '{}' is linked", path.display(), entry.family)
    })?;
    let mut out = OutDir::create(out.unwrap_or(dir))?;
    runner.write_files(&doc, &mut out).with_context(|| path.display().to_string())?;
    out.commit()
}
