//! Result files are written atomically and Ctrl-C cleans up: a run killed (SIGKILL) at any
//! step of its writing phase leaves either nothing that looks complete or a complete result,
//! an overwrite keeps the old result until the new one is complete, and SIGINT exits 130
//! leaving no temporary file.
//!
//! The moments come from the binary's hidden test hook: with `NNLENS_TEST_PAUSE_AT_STEP=K`
//! it stops at the K-th writing step (a temporary file opened or complete, the old manifest
//! removed, a file renamed, the directory synced) and says so on stderr; the test kills it
//! there, so every step is hit deterministically, however loaded the machine.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::is_png;

const TEMP_PREFIX: &str = ".nnlens-tmp-";

/// `nnlens` with the pause hook at `step` (none for 0), stderr piped.
fn spawn(args: &[&str], step: usize) -> Child {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("nnlens"));
    cmd.env_remove("NNLENS_LOG")
        .env("NNLENS_CACHE_DIR", "/nonexistent-nnlens-cache")
        .arg("-q")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if step > 0 {
        cmd.env("NNLENS_TEST_PAUSE_AT_STEP", step.to_string());
    }
    cmd.spawn().unwrap()
}

/// Runs `args` paused at `step`: `Some(what)` when it paused there (the process still
/// running), `None` when it finished first (successfully: asserted).
fn run_to_step(child: &mut Child, step: usize) -> Option<String> {
    let stderr = child.stderr.take().unwrap();
    let marker = format!("nnlens-test: paused at step {step} (");
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if let Some(what) = line.strip_prefix(&marker) {
            return Some(what.trim_end_matches(')').to_string());
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "finished before step {step} with {status}: {seen}");
    None
}

fn run_ok(args: &[&str]) {
    let mut child = spawn(args, 0);
    assert!(run_to_step(&mut child, 1).is_none());
}

/// Every entry of `dir` by name, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return BTreeMap::new() };
    entries
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect()
}

fn temps(dir: &Path) -> Vec<String> {
    files(dir).into_keys().filter(|n| n.starts_with(TEMP_PREFIX)).collect()
}

fn parse(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("a manifest under its final name parses")
}

/// What a manifest says apart from timings: its `result` (or all of it, for `sample.json`).
fn content(manifest: &serde_json::Value) -> serde_json::Value {
    manifest.get("result").cloned().unwrap_or_else(|| manifest.clone())
}

/// Checks that `dir` holds either nothing that looks complete or one complete result: the
/// old one (every file of `old` as it was) or the new one (every file of `new`, the
/// uninterrupted run's), and no file under a final name that is not one of those.
fn check(
    dir: &Path,
    manifest: &str,
    new: &BTreeMap<String, Vec<u8>>,
    old: &BTreeMap<String, Vec<u8>>,
    when: &str,
) {
    let found = files(dir);
    let finals: BTreeMap<&String, &Vec<u8>> =
        found.iter().filter(|(n, _)| !n.starts_with(TEMP_PREFIX)).collect();
    for (name, bytes) in &finals {
        assert!(!bytes.is_empty(), "{when}: {name} is empty");
        if name.ends_with(".png") {
            assert!(is_png(&dir.join(name)), "{when}: {name} is not a PNG");
        }
    }
    let Some(m) = finals.get(&manifest.to_string()) else {
        // Nothing looks complete: each file there is still a whole file of one of the runs.
        for (name, bytes) in &finals {
            assert!(
                old.get(*name) == Some(*bytes) || new.get(*name) == Some(*bytes),
                "{when}: {name} is neither the old nor the new file"
            );
        }
        return;
    };
    let doc = parse(m);
    let is_old = old.get(manifest).is_some_and(|o| content(&parse(o)) == content(&doc));
    let expected = if is_old { old } else { new };
    if !is_old {
        assert_eq!(content(&doc), content(&parse(&new[manifest])), "{when}: a new manifest");
    }
    for (name, bytes) in expected {
        if name == manifest {
            continue;
        }
        let what = if is_old { "old" } else { "new" };
        assert_eq!(finals.get(name).copied(), Some(bytes), "{when}: {name} of the {what} result");
    }
}

/// Kills `args` (which write to `dir`) at every writing step in turn, checking `dir` after
/// each; `before` prepares `dir` each time. Returns the steps it paused at.
fn kill_at_every_step(
    args: &[&str],
    dir: &Path,
    manifest: &str,
    new: &BTreeMap<String, Vec<u8>>,
    before: impl Fn(),
) -> Vec<String> {
    let old = {
        before();
        files(dir)
    };
    let mut steps = Vec::new();
    for step in 1.. {
        before();
        let mut child = spawn(args, step);
        let Some(what) = run_to_step(&mut child, step) else {
            check(dir, manifest, new, &old, "after an uninterrupted run");
            assert_eq!(
                files(dir).get(manifest).map(|m| content(&parse(m))),
                Some(content(&parse(&new[manifest])))
            );
            break;
        };
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        check(dir, manifest, new, &old, &format!("killed at step {step} ({what})"));
        steps.push(what);
        assert!(step < 200, "too many steps");
    }
    // The next run removes what the killed ones left behind.
    run_ok(args);
    assert_eq!(temps(dir), Vec::<String>::new());
    steps
}

fn nvi_args(samples: &str, out: &Path) -> Vec<String> {
    [
        "run",
        "nvi",
        "--samples",
        samples,
        "--transformations",
        "rotation:n=4",
        "--layers",
        "conv_1,softmax",
        "--out",
        out.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn a_killed_run_leaves_nothing_complete_or_a_complete_result() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    let new_args = nvi_args("8", &reference);
    run_ok(&strs(&new_args));
    let new = files(&reference);
    for name in [
        "result.json",
        "layers.csv",
        "features.csv",
        "layers.png",
        "layers.svg",
        "features.png",
        "features.svg",
    ] {
        assert!(new.contains_key(name), "{name}: {:?}", new.keys());
    }

    let out = tmp.path().join("fresh");
    let args = nvi_args("8", &out);
    let steps = kill_at_every_step(&strs(&args), &out, "result.json", &new, || {
        let _ = std::fs::remove_dir_all(&out);
    });
    // Every file opened, complete and renamed, the manifest last, then the directory synced.
    assert_eq!(steps.len(), 3 * new.len() + 1, "{steps:?}");
    assert_eq!(steps[steps.len() - 2], "renamed result.json", "{steps:?}");
    assert!(steps.last().unwrap().starts_with("synced"), "{steps:?}");
}

#[test]
fn a_killed_overwrite_keeps_the_old_result_until_the_new_one_is_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("reference");
    run_ok(&strs(&nvi_args("8", &reference)));
    let new = files(&reference);
    let finished = tmp.path().join("finished");
    run_ok(&strs(&nvi_args("5", &finished)));
    let old = files(&finished);
    assert_ne!(content(&parse(&old["result.json"])), content(&parse(&new["result.json"])));

    let out = tmp.path().join("overwritten");
    let args = nvi_args("8", &out);
    let steps = kill_at_every_step(&strs(&args), &out, "result.json", &new, || {
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir(&out).unwrap();
        for (name, bytes) in &old {
            std::fs::write(out.join(name), bytes).unwrap();
        }
    });
    assert!(steps.contains(&"removed result.json".to_string()), "{steps:?}");
    // Until the old manifest goes, the old result is there whole.
    let removed = steps.iter().position(|s| s == "removed result.json").unwrap();
    assert!(steps[..removed].iter().all(|s| s.starts_with("opened") || s.starts_with("staged")));
}

#[test]
fn killed_predict_and_sample_leave_no_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    for (command, manifest) in [
        (vec!["predict", "--layers", "conv_1,softmax", "--samples", "32"], "result.json"),
        (vec!["--seed", "3", "sample", "--count", "20"], "sample.json"),
    ] {
        let reference = tmp.path().join(format!("{}-reference", command[0]));
        let with_out = |dir: &Path| {
            let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
            args.extend(["--out".to_string(), dir.to_str().unwrap().to_string()]);
            args
        };
        run_ok(&strs(&with_out(&reference)));
        let new = files(&reference);
        assert!(new.len() >= 3, "{:?}", new.keys());
        let out = tmp.path().join(command[0]);
        let steps = kill_at_every_step(&strs(&with_out(&out)), &out, manifest, &new, || {
            let _ = std::fs::remove_dir_all(&out);
        });
        assert_eq!(steps.len(), 3 * new.len() + 1, "{command:?}: {steps:?}");
    }
}

fn interrupt(child: &Child) {
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn ctrl_c_exits_130_and_removes_its_temporary_files() {
    let tmp = tempfile::tempdir().unwrap();
    let finished = tmp.path().join("finished");
    run_ok(&strs(&nvi_args("5", &finished)));
    let old = files(&finished);
    // 1: result.json opened; 4: layers.csv complete; 6: features.csv complete (an overwrite).
    for (step, overwrite) in [(1, false), (4, false), (6, true)] {
        let out = tmp.path().join(format!("out-{step}"));
        if overwrite {
            std::fs::create_dir(&out).unwrap();
            for (name, bytes) in &old {
                std::fs::write(out.join(name), bytes).unwrap();
            }
        }
        let mut child = spawn(&strs(&nvi_args("8", &out)), step);
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let marker = format!("nnlens-test: paused at step {step} ");
        let paused = lines.by_ref().map(Result::unwrap).find(|l| l.starts_with(&marker));
        assert!(paused.is_some(), "step {step}: never paused");
        assert!(!temps(&out).is_empty(), "step {step}: no temporary file to clean");
        let started = std::time::Instant::now();
        interrupt(&child);
        let rest: Vec<String> = lines.map(Result::unwrap).collect();
        let status = child.wait().unwrap();
        assert!(started.elapsed().as_secs_f64() < 5.0, "{:?}", started.elapsed());
        assert_eq!(status.code(), Some(130), "step {step}: {status} {rest:?}");
        assert_eq!(rest.len(), 1, "step {step}: not one line: {rest:?}");
        assert!(rest[0].contains("interrupted"), "{rest:?}");
        assert_eq!(temps(&out), Vec::<String>::new(), "step {step}");
        if overwrite {
            assert_eq!(files(&out), old, "step {step}: the old result changed");
        } else {
            assert!(files(&out).is_empty(), "step {step}: {:?}", files(&out).keys());
        }
    }
}
