//! `nnlens submit slurm`: a run split into a Slurm job array (one task per shard) and a merge
//! job that waits for it; `nnlens status`: which shards of such a run are done.
//!
//! `nnlens submit slurm --shards N -- run METRIC ... --out DIR` writes into `DIR/slurm/` an
//! array script (task K runs the command with `--shard auto --shards N --out DIR/shards/K`) and
//! a merge script (`nnlens merge DIR DIR/shards/0 ... DIR/shards/N-1`), submits the first with
//! `sbatch --parsable --array=0-(N-1)` and the second with `--dependency=afterok:JOB
//! --kill-on-invalid-dep=yes` (so a failed task cancels the merge instead of leaving it
//! pending forever), and records both job ids in `DIR/slurm/jobs.json`. `--resume` submits the
//! shards that have no complete state again (and a new merge job), `--dry-run` writes the
//! scripts and prints the `sbatch` commands without running them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use anyhow::{Context, Result, bail};
use clap::{Arg, ArgAction, ArgMatches, Command};
use serde::{Deserialize, Serialize};

use crate::args::RunContext;
use crate::atomic::{MANIFEST, OutDir};
use crate::output::print_table;
use crate::shard::{STATE, read_state};

/// The record of a submitted run, `DIR/slurm/jobs.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Jobs {
    /// Shards of the run.
    pub shards: usize,
    /// The command each task runs (before the shard's flags).
    pub command: Vec<String>,
    /// Every submission, the first one first.
    pub submissions: Vec<Submission>,
}

/// One `sbatch` of the array (all shards, or those a `--resume` resubmitted) and its merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// The array job's id.
    pub array_job: String,
    /// The shards it runs (its array indices).
    pub shards: Vec<usize>,
    /// The merge job's id.
    pub merge_job: String,
}

/// `nnlens submit`.
pub fn submit_command() -> Command {
    let slurm = Command::new("slurm")
        .about("Split a run into a Slurm job array of shards and a merge job that waits for them")
        .arg(
            Arg::new("shards")
                .long("shards")
                .required(true)
                .value_parser(clap::value_parser!(usize))
                .help("Number of shards (array tasks)"),
        )
        .arg(Arg::new("partition").long("partition").help("sbatch --partition"))
        .arg(Arg::new("time").long("time").help("sbatch --time of each task (e.g. 1:00:00)"))
        .arg(
            Arg::new("cpus-per-task")
                .long("cpus-per-task")
                .value_parser(clap::value_parser!(usize))
                .help("sbatch --cpus-per-task (each task runs on this many threads)"),
        )
        .arg(Arg::new("mem").long("mem").help("sbatch --mem of each task (e.g. 4G)"))
        .arg(Arg::new("gres").long("gres").help("sbatch --gres of each task (e.g. gpu:1)"))
        .arg(
            Arg::new("dry-run")
                .long("dry-run")
                .action(ArgAction::SetTrue)
                .help("Write the scripts and print the sbatch commands without submitting"),
        )
        .arg(
            Arg::new("resume")
                .long("resume")
                .action(ArgAction::SetTrue)
                .help("Submit again only the shards without a complete state (and a new merge)"),
        )
        .arg(
            Arg::new("command")
                .required(true)
                .num_args(1..)
                .last(true)
                .allow_hyphen_values(true)
                .value_name("COMMAND")
                .help("After --: the nnlens command to split (`run METRIC ... --out DIR` or `evaluate ... --out DIR`)"),
        );
    Command::new("submit")
        .about("Run a command as shards on a cluster scheduler, then merge them")
        .subcommand_required(true)
        .subcommand(slurm)
}

/// `nnlens status`.
pub fn status_command() -> Command {
    Command::new("status")
        .about("Which shards of a split run are done, running, failed or missing")
        .arg(
            Arg::new("dir")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf))
                .help("The --out directory of `nnlens submit slurm` (its shards are DIR/shards/K)"),
        )
}

/// The `--out` directory of a command line, and the line without it.
fn split_out(command: &[String]) -> Result<(PathBuf, Vec<String>)> {
    let mut rest = Vec::with_capacity(command.len());
    let mut out = None;
    let mut args = command.iter();
    while let Some(a) = args.next() {
        if a == "--out" {
            out = Some(PathBuf::from(args.next().context("--out needs a directory")?));
        } else if let Some(v) = a.strip_prefix("--out=") {
            out = Some(PathBuf::from(v));
        } else {
            rest.push(a.clone());
        }
    }
    let out = out.context(
        "the command to split needs --out DIR: the merged result is written there, the shards \
         under DIR/shards",
    )?;
    Ok((out, rest))
}

/// Quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn line(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// A shard's directory under a split run's `--out`.
pub fn shard_dir(out: &Path, index: usize) -> PathBuf {
    out.join("shards").join(index.to_string())
}

/// Whether shard `index` of `count` has a complete state.
fn is_done(out: &Path, index: usize, count: usize) -> bool {
    read_state(&shard_dir(out, index))
        .is_ok_and(|s| s.shard.index == index && s.shard.count == count)
}

/// `nnlens submit slurm`.
///
/// # Errors
/// A command without `--out` or with `--shard`, a scheduler that cannot be run or refuses.
pub fn submit(matches: &ArgMatches, ctx: &RunContext) -> Result<()> {
    let Some(("slurm", sub)) = matches.subcommand() else {
        bail!("nnlens submit needs a scheduler: `nnlens submit slurm`");
    };
    let shards = *sub.get_one::<usize>("shards").context("--shards")?;
    if shards == 0 {
        bail!("--shards 0: a run has at least one shard");
    }
    let command: Vec<String> =
        sub.get_many::<String>("command").into_iter().flatten().cloned().collect();
    match command.first().map(String::as_str) {
        Some("run" | "evaluate") => {}
        other => bail!(
            "nnlens submit slurm splits `run METRIC ...` or `evaluate ...`, not {}",
            other.map_or("nothing".into(), |o| format!("'{o}'"))
        ),
    }
    if command.iter().any(|a| a == "--shard" || a.starts_with("--shard=") || a == "--shards") {
        bail!("the command to split must not have --shard: each task gets its own");
    }
    let (out, rest) = split_out(&command)?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = out.canonicalize().with_context(|| format!("resolving {}", out.display()))?;
    let exe = std::env::current_exe().context("finding the nnlens executable")?;
    let exe = exe.to_string_lossy().into_owned();
    let slurm_dir = out.join("slurm");
    std::fs::create_dir_all(slurm_dir.join("logs"))
        .with_context(|| format!("creating {}", slurm_dir.display()))?;

    let resume = sub.get_flag("resume");
    let jobs_path = slurm_dir.join("jobs.json");
    let mut jobs = if resume {
        let text = std::fs::read_to_string(&jobs_path).ok();
        let jobs: Option<Jobs> = text.and_then(|t| serde_json::from_str(&t).ok());
        match jobs {
            Some(j) if j.shards != shards => bail!(
                "--resume: {} was submitted with --shards {}, not {shards}",
                out.display(),
                j.shards
            ),
            Some(j) => j,
            None => Jobs { shards, command: rest.clone(), submissions: Vec::new() },
        }
    } else {
        Jobs { shards, command: rest.clone(), submissions: Vec::new() }
    };
    let todo: Vec<usize> = (0..shards).filter(|&k| !resume || !is_done(&out, k, shards)).collect();

    // The array script: task K is shard K.
    let mut global = vec![exe.clone(), "--quiet".into(), "--seed".into(), ctx.seed.to_string()];
    if rest.iter().any(|a| a == "--seed" || a.starts_with("--seed=")) {
        global.truncate(2);
    }
    let mut task = global.clone();
    task.extend(rest.iter().cloned());
    let mut sbatch_options = vec![];
    for (flag, key) in
        [("--partition", "partition"), ("--time", "time"), ("--mem", "mem"), ("--gres", "gres")]
    {
        if let Some(v) = sub.get_one::<String>(key) {
            sbatch_options.push(format!("{flag}={v}"));
        }
    }
    if let Some(c) = sub.get_one::<usize>("cpus-per-task") {
        sbatch_options.push(format!("--cpus-per-task={c}"));
        task.extend(["--threads".into(), c.to_string()]);
    }
    let name = rest.get(1).filter(|_| rest[0] == "run").map_or("evaluate", String::as_str);
    let shard_root = out.join("shards");
    let mut array = String::from("#!/bin/bash\n");
    let _ = writeln!(array, "#SBATCH --job-name=nnlens-{name}");
    let _ = writeln!(array, "#SBATCH --output={}", slurm_dir.join("logs/shard-%a.out").display());
    for o in &sbatch_options {
        let _ = writeln!(array, "#SBATCH {o}");
    }
    let _ = writeln!(
        array,
        "# Shard $SLURM_ARRAY_TASK_ID of {shards}, written by nnlens submit slurm."
    );
    let _ = writeln!(array, "set -euo pipefail");
    let _ = writeln!(
        array,
        "exec {} --out {}/\"$SLURM_ARRAY_TASK_ID\" --shard auto --shards {shards}",
        line(&task),
        quote(&shard_root.to_string_lossy())
    );
    let mut merge_cmd =
        vec![exe.clone(), "--quiet".into(), "merge".into(), out.to_string_lossy().into_owned()];
    merge_cmd.extend((0..shards).map(|k| shard_dir(&out, k).to_string_lossy().into_owned()));
    let mut merge = String::from("#!/bin/bash\n");
    let _ = writeln!(merge, "#SBATCH --job-name=nnlens-{name}-merge");
    let _ = writeln!(merge, "#SBATCH --output={}", slurm_dir.join("logs/merge.out").display());
    for o in sbatch_options.iter().filter(|o| !o.starts_with("--gres")) {
        let _ = writeln!(merge, "#SBATCH {o}");
    }
    let _ = writeln!(merge, "# Merges the {shards} shards, written by nnlens submit slurm.");
    let _ = writeln!(merge, "set -euo pipefail");
    let _ = writeln!(merge, "exec {}", line(&merge_cmd));
    let mut files = OutDir::create(&slurm_dir)?;
    files.bytes("array.sh", array.as_bytes())?;
    files.bytes("merge.sh", merge.as_bytes())?;
    files.commit()?;
    let array_script = slurm_dir.join("array.sh").to_string_lossy().into_owned();
    let merge_script = slurm_dir.join("merge.sh").to_string_lossy().into_owned();

    if todo.is_empty() {
        crate::out!("every shard of {} is complete", out.display());
        if out.join(MANIFEST).exists() {
            crate::out!("and merged: {}", out.join(MANIFEST).display());
            return Ok(());
        }
    }
    let indices = ranges(&todo);
    let array_args: Vec<String> =
        vec!["--parsable".into(), format!("--array={indices}"), array_script];
    let dry = sub.get_flag("dry-run");
    if dry {
        if !todo.is_empty() {
            crate::out!("sbatch {}", line(&array_args));
        }
        crate::out!(
            "sbatch --parsable --dependency=afterok:ARRAY_JOB --kill-on-invalid-dep=yes {merge_script}"
        );
        crate::out!("scripts written to {}", slurm_dir.display());
        return Ok(());
    }
    // A merge job of an earlier submission still waiting on failed shards goes.
    if resume && let Some(last) = jobs.submissions.last() {
        let _ = Process::new("scancel").arg(&last.merge_job).output();
    }
    let array_job = if todo.is_empty() { None } else { Some(sbatch(&array_args)?) };
    let mut merge_args = vec!["--parsable".to_string()];
    if let Some(id) = &array_job {
        merge_args.push(format!("--dependency=afterok:{id}"));
        merge_args.push("--kill-on-invalid-dep=yes".into());
    }
    merge_args.push(merge_script);
    let merge_job = sbatch(&merge_args)?;
    jobs.submissions.push(Submission {
        array_job: array_job.clone().unwrap_or_default(),
        shards: todo.clone(),
        merge_job: merge_job.clone(),
    });
    let mut record = OutDir::create(&slurm_dir)?;
    record.bytes("jobs.json", serde_json::to_string_pretty(&jobs)?.as_bytes())?;
    record.commit()?;
    match &array_job {
        Some(id) => crate::out!("shards: job {id} (array {indices}), merge: job {merge_job}"),
        None => crate::out!("merge: job {merge_job}"),
    }
    Ok(())
}

/// `0-3` or `1,3,5-7`: Slurm's array syntax for sorted indices.
fn ranges(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end += 1;
        }
        parts.push(if end == start { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(",")
}

/// Runs `sbatch ARGS` and returns the job id it prints (`--parsable`: `ID` or `ID;CLUSTER`).
fn sbatch(args: &[String]) -> Result<String> {
    let output = Process::new("sbatch")
        .args(args)
        .output()
        .context("running sbatch (is Slurm's client installed and on PATH?)")?;
    if !output.status.success() {
        bail!(
            "sbatch {} failed: {}",
            line(args),
            String::from_utf8_lossy(&output.stderr).trim().replace('\n', "; ")
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        bail!("sbatch {} printed '{}', not a job id", line(args), text.trim());
    }
    Ok(id)
}

/// What Slurm says of job `id` (`JobState`), `None` when it does not know it (any more).
fn job_state(id: &str) -> Option<String> {
    let output = Process::new("scontrol").args(["-o", "show", "job", id]).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let state = text.split_whitespace().find_map(|w| w.strip_prefix("JobState="))?;
    Some(state.to_string())
}

/// `nnlens status DIR`.
///
/// # Errors
/// A directory that holds no split run.
pub fn status(matches: &ArgMatches, _ctx: &RunContext) -> Result<()> {
    let dir = matches.get_one::<PathBuf>("dir").context("nnlens status needs a directory")?;
    let jobs: Option<Jobs> = std::fs::read_to_string(dir.join("slurm/jobs.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let count = match &jobs {
        Some(j) => j.shards,
        None => {
            let states: Vec<_> = std::fs::read_dir(dir.join("shards"))
                .with_context(|| {
                    format!("{}: no split run here (no slurm/jobs.json, no shards/)", dir.display())
                })?
                .filter_map(|e| e.ok())
                .filter_map(|e| read_state(&e.path()).ok())
                .collect();
            states.iter().map(|s| s.shard.count).max().with_context(|| {
                format!(
                    "{}: no shard has finished yet, and no slurm/jobs.json says how many there are",
                    dir.display()
                )
            })?
        }
    };
    let mut rows = Vec::new();
    let (mut done, mut failed, mut waiting, mut missing) = (0, 0, 0, 0);
    for k in 0..count {
        let (state, detail) = if is_done(dir, k, count) {
            done += 1;
            ("done".to_string(), shard_dir(dir, k).join(STATE).display().to_string())
        } else {
            // The latest submission that ran shard k, if Slurm still knows its task.
            let task = jobs.as_ref().and_then(|j| {
                j.submissions
                    .iter()
                    .rev()
                    .find(|s| s.shards.contains(&k))
                    .map(|s| format!("{}_{k}", s.array_job))
            });
            match task.as_deref().and_then(|t| job_state(t).map(|s| (t.to_string(), s))) {
                Some((t, s))
                    if matches!(
                        s.as_str(),
                        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING"
                    ) =>
                {
                    waiting += 1;
                    (s.to_lowercase(), format!("task {t}"))
                }
                Some((t, s)) => {
                    failed += 1;
                    (
                        "failed".into(),
                        format!(
                            "task {t} {} with no complete state; see {}",
                            s.to_lowercase(),
                            dir.join(format!("slurm/logs/shard-{k}.out")).display()
                        ),
                    )
                }
                None => {
                    missing += 1;
                    ("missing".into(), "no complete state".into())
                }
            }
        };
        rows.push(vec![k.to_string(), state, detail]);
    }
    print_table(&["shard", "state", "detail"], &rows);
    let merged = dir.join(MANIFEST).exists();
    crate::out!(
        "{count} shards: {done} done, {waiting} pending or running, {failed} failed, {missing} missing; merged: {}",
        if merged { "yes" } else { "no" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_indices_in_slurm_syntax() {
        assert_eq!(ranges(&[0, 1, 2, 3]), "0-3");
        assert_eq!(ranges(&[1, 3, 5, 6, 7]), "1,3,5-7");
        assert_eq!(ranges(&[4]), "4");
    }

    #[test]
    fn the_out_directory_is_taken_from_the_command() {
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let (out, rest) = split_out(&words("run nvi --out /tmp/x --samples 10")).unwrap();
        assert_eq!(out, PathBuf::from("/tmp/x"));
        assert_eq!(rest, words("run nvi --samples 10"));
        let (out, _) = split_out(&words("run nvi --out=/tmp/y")).unwrap();
        assert_eq!(out, PathBuf::from("/tmp/y"));
        assert!(split_out(&words("run nvi")).unwrap_err().to_string().contains("--out DIR"));
    }

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(quote("a-b/c.onnx"), "a-b/c.onnx");
        assert_eq!(quote("it's here"), r"'it'\''s here'");
        assert_eq!(quote("translation:dx=-2..2,dy=-2..2"), "translation:dx=-2..2,dy=-2..2");
        assert_eq!(quote("A*B"), "'A*B'");
    }
}
