//! A metric family registered from outside the workspace's metric crates (this test crate) is
//! listed, gets its own flags, runs and redraws through the same `add_commands` and `dispatch`
//! the `nnlens` binary uses.

use std::sync::Mutex;

use anyhow::Result;
use clap::{ArgMatches, Args, Command, FromArgMatches};
use nnlens_core::{Metric, MetricEntry, RunManifest, register_metric};
use nnlens_run::{OutDir, RunContext, Runner};
use serde_json::{Value, json};

/// The probe family's one metric: the sum of its parameter `k` over `--repeat` copies.
struct ProbeSum;

impl Metric for ProbeSum {
    fn name(&self) -> &'static str {
        "probe-sum"
    }
    fn family(&self) -> &'static str {
        "probe"
    }
    fn parameters(&self) -> Value {
        json!({})
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

register_metric!(MetricEntry {
    name: "probe-sum",
    description: "test-only metric of the test-only probe family",
    family: "probe",
    build: |_| Ok(Box::new(ProbeSum)),
});

/// The probe family's flags.
#[derive(Debug, Args)]
struct ProbeArgs {
    /// The value summed.
    #[arg(long)]
    k: i64,
    /// How many copies.
    #[arg(long, default_value_t = 2)]
    repeat: i64,
    /// Where to write result.json.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// What the probe runner was asked to do, in order.
static CALLS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct ProbeRunner;

nnlens_run::register_runner!(ProbeRunner);

impl Runner for ProbeRunner {
    fn family(&self) -> &'static str {
        "probe"
    }

    fn command(&self, _metric: &str, base: Command) -> Command {
        ProbeArgs::augment_args(base)
    }

    fn run(&self, metric: &str, args: &ArgMatches, ctx: &RunContext) -> Result<()> {
        let args = ProbeArgs::from_arg_matches(args)?;
        let sum = args.k * args.repeat;
        CALLS.lock().unwrap().push(format!("run {metric} {sum} seed {}", ctx.seed));
        if let Some(out) = &args.out {
            let mut manifest = RunManifest::new("run", ctx.seed);
            manifest.metric = Some(metric.to_string());
            let mut dir = OutDir::create(out)?;
            dir.manifest(
                nnlens_run::MANIFEST,
                &json!({ "manifest": manifest, "result": { "sum": sum } }),
            )?;
            dir.commit()?;
        }
        Ok(())
    }

    fn write_files(&self, doc: &Value, out: &mut OutDir) -> Result<()> {
        let sum = doc["result"]["sum"].as_i64().unwrap_or_default();
        CALLS.lock().unwrap().push(format!("redraw {sum}"));
        out.bytes("sum.txt", sum.to_string().as_bytes())
    }
}

fn app() -> Command {
    nnlens_run::add_commands(Command::new("nnlens"))
}

fn dispatch(args: &[&str], ctx: &RunContext) -> Result<bool> {
    let matches = app().try_get_matches_from(args)?;
    nnlens_run::dispatch(&matches, ctx)
}

#[test]
fn a_family_registered_from_a_test_crate_is_listed_parsed_run_and_redrawn() {
    let runnable: Vec<&str> = nnlens_run::runnable().iter().map(|(m, _)| m.name).collect();
    assert_eq!(runnable, ["probe-sum"], "only this crate's family is linked here");
    assert_eq!(nnlens_run::runners().len(), 1);

    // Its subcommand of `run`, with its own flags and the registry's description.
    let mut app = app();
    let run = app.find_subcommand_mut("run").unwrap();
    let probe = run.find_subcommand_mut("probe-sum").unwrap();
    let help = probe.render_help().to_string();
    assert!(help.contains("--k") && help.contains("--repeat"), "{help}");
    assert!(help.contains("test-only metric"), "{help}");
    assert!(!help.contains("--transformations"), "{help}");

    // Run through the binary's dispatch.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("probe");
    let ctx = RunContext { seed: 7, ..RunContext::default() };
    let ran = dispatch(
        &[
            "nnlens",
            "run",
            "probe-sum",
            "--k",
            "3",
            "--repeat",
            "4",
            "--out",
            out.to_str().unwrap(),
        ],
        &ctx,
    );
    assert!(ran.unwrap());
    assert_eq!(CALLS.lock().unwrap().last().unwrap(), "run probe-sum 12 seed 7");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert_eq!(saved["manifest"]["metric"], "probe-sum");
    assert_eq!(saved["manifest"]["schema_version"], nnlens_core::MANIFEST_SCHEMA_VERSION);

    // `nnlens plot DIR` finds the runner from the manifest's metric.
    assert!(dispatch(&["nnlens", "plot", out.to_str().unwrap()], &ctx).unwrap());
    assert_eq!(CALLS.lock().unwrap().last().unwrap(), "redraw 12");
    assert_eq!(std::fs::read_to_string(out.join("sum.txt")).unwrap(), "12");
}

#[test]
fn bad_command_lines_are_usage_errors_or_registry_errors() {
    let ctx = RunContext::default();
    // Another family's flag is a usage error of clap.
    let e = app()
        .try_get_matches_from(["nnlens", "run", "probe-sum", "--k", "1", "--transformations", "x"])
        .unwrap_err();
    assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
    // A missing required flag too.
    let e = app().try_get_matches_from(["nnlens", "run", "probe-sum"]).unwrap_err();
    assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    // An unknown metric is answered from the registry, naming the registered ones.
    let e = dispatch(&["nnlens", "run", "nope", "--k", "1"], &ctx).unwrap_err().to_string();
    assert!(e.contains("nope") && e.contains("probe-sum"), "{e}");
    // A command that is not the registry's is left to the caller.
    let app = app().subcommand(Command::new("layers"));
    let matches = app.try_get_matches_from(["nnlens", "layers"]).unwrap();
    assert!(!nnlens_run::dispatch(&matches, &ctx).unwrap());
    // A directory without a result, and a result naming no metric.
    let dir = tempfile::tempdir().unwrap();
    let e = nnlens_run::plot(dir.path(), None).unwrap_err().to_string();
    assert!(e.contains("result.json"), "{e}");
    std::fs::write(dir.path().join("result.json"), r#"{"manifest": {}, "result": {}}"#).unwrap();
    let e = nnlens_run::plot(dir.path(), None).unwrap_err().to_string();
    assert!(e.contains("no metric"), "{e}");
}
