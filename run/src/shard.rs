//! Runs split into shards: `--shard K/N` (or `auto`, from the scheduler's environment), the
//! state file each shard writes, and `nnlens merge`, which checks that the shards belong
//! together and hands their states to the family's runner.
//!
//! A shard does a contiguous part of the run's work ([`ShardRef::range`]): samples for
//! invariance, instances for linearity, reference rows for similarity, features for influence,
//! rows for evaluate. Every random choice is made as in the unsharded run (the same `--seed`
//! draws the same samples whatever the number of shards), and the part is cut from its result.
//! The shard writes `DIR/state.json` (`{"manifest": ..., "state": ...}`), atomically, and no
//! `result.json`: a directory with `state.json` holds a complete shard, one without it none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use nnlens_core::{RunManifest, ShardRef};
use serde_json::Value;

use crate::atomic::OutDir;

/// The file a shard writes its mergeable state to, in its `--out` directory.
pub const STATE: &str = "state.json";

/// `--shard` and `--shards`, flattened into every command that can be split.
#[derive(Debug, Clone, Default, Args)]
pub struct ShardArgs {
    /// Do only shard K of N (0-based `K/N`: a contiguous part of the work) and write its
    /// mergeable state to --out's state.json, for `nnlens merge`. `auto`: K and N from Slurm's
    /// SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT, or from a
    /// Kubernetes Indexed Job's JOB_COMPLETION_INDEX with --shards.
    #[arg(long, value_name = "K/N|auto")]
    pub shard: Option<String>,
    /// With --shard auto: the number of shards. Then Slurm's array index is the shard number
    /// itself (as `nnlens submit slurm` numbers them, so that a resubmitted subset keeps its
    /// numbers); needed with JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "N", requires = "shard")]
    pub shards: Option<usize>,
}

impl ShardArgs {
    /// The shard this run does, `None` for a whole run.
    ///
    /// # Errors
    /// A malformed `--shard`, `K >= N`, `auto` without the environment it reads.
    pub fn resolve(&self) -> Result<Option<ShardRef>> {
        self.resolve_with(&|name| std::env::var(name).ok())
    }

    /// [`Self::resolve`] with the environment given as a lookup (for tests).
    ///
    /// # Errors
    /// As [`Self::resolve`].
    pub fn resolve_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<ShardRef>> {
        let Some(text) = self.shard.as_deref() else { return Ok(None) };
        let shard = if text == "auto" {
            from_environment(self.shards, env)?
        } else {
            if self.shards.is_some() {
                bail!("--shards goes with --shard auto; --shard {text} already says N");
            }
            parse_shard(text)?
        };
        Ok(Some(shard))
    }
}

/// `K/N`.
fn parse_shard(text: &str) -> Result<ShardRef> {
    let parsed = text.split_once('/').and_then(|(k, n)| {
        Some((k.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?))
    });
    let Some((index, count)) = parsed else {
        bail!("--shard '{text}' is neither K/N (shard K of N, from 0) nor auto");
    };
    check(index, count, "--shard")
}

fn check(index: usize, count: usize, what: &str) -> Result<ShardRef> {
    if count == 0 {
        bail!("{what}: 0 shards; a run has at least one");
    }
    if index >= count {
        bail!("{what}: shard {index} of {count} does not exist (shards are 0 to {})", count - 1);
    }
    Ok(ShardRef { index, count })
}

fn number(env: &dyn Fn(&str) -> Option<String>, name: &str) -> Result<Option<usize>> {
    env(name)
        .map(|v| v.trim().parse::<usize>().with_context(|| format!("{name}='{v}' is not a number")))
        .transpose()
}

/// `--shard auto`.
fn from_environment(
    shards: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ShardRef> {
    if let Some(id) = number(env, "SLURM_ARRAY_TASK_ID")? {
        return match shards {
            Some(count) => check(id, count, "SLURM_ARRAY_TASK_ID with --shards"),
            None => {
                let min = number(env, "SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                let count = number(env, "SLURM_ARRAY_TASK_COUNT")?.context(
                    "--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not",
                )?;
                let index = id.checked_sub(min).with_context(|| {
                    format!(
                        "--shard auto: SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}"
                    )
                })?;
                check(index, count, "--shard auto (Slurm)")
            }
        };
    }
    if let Some(index) = number(env, "JOB_COMPLETION_INDEX")? {
        let count = shards.context(
            "--shard auto: JOB_COMPLETION_INDEX is set; give the number of shards with --shards N \
             (the Indexed Job's completions)",
        )?;
        return check(index, count, "JOB_COMPLETION_INDEX with --shards");
    }
    bail!(
        "--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor JOB_COMPLETION_INDEX \
         (a Kubernetes Indexed Job) is set; give --shard K/N"
    )
}

/// The `--out` directory a shard must have.
///
/// # Errors
/// No `--out`.
pub fn shard_out(out: Option<&Path>, shard: ShardRef) -> Result<&Path> {
    out.with_context(|| {
        format!(
            "--shard {shard} writes its state for `nnlens merge`: give the directory with --out"
        )
    })
}

/// Writes a shard's `state` with its `manifest` (which names the shard) to `dir/state.json`,
/// atomically, and says so on stderr unless `quiet`.
///
/// # Errors
/// The directory or the file cannot be written.
pub fn write_state(dir: &Path, manifest: &RunManifest, state: &Value, quiet: bool) -> Result<()> {
    let shard = manifest.shard.context("a shard's manifest names its shard")?;
    // Test hook (hidden): NNLENS_TEST_FAIL_SHARD=K makes shard K fail here, after its work and
    // before its state, as a task killed at that moment would (CI's resume check).
    if std::env::var("NNLENS_TEST_FAIL_SHARD").is_ok_and(|k| k.trim() == shard.index.to_string()) {
        bail!("shard {shard} fails on purpose (NNLENS_TEST_FAIL_SHARD)");
    }
    let mut out = OutDir::create(dir)?;
    out.manifest(STATE, &serde_json::json!({ "manifest": manifest, "state": state }))?;
    out.commit()?;
    if !quiet {
        eprintln!("shard {shard}: state written to {}", dir.join(STATE).display());
    }
    Ok(())
}

/// One shard's state file: where it is and its manifest. The state itself, which can be
/// large (every activation's moments), is read when the merge needs it ([`ShardState::load`]),
/// one shard at a time.
#[derive(Debug, Clone)]
pub struct ShardState {
    /// The directory it was read from.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: RunManifest,
    /// The shard.
    pub shard: ShardRef,
}

/// A state file's manifest, its state skipped over (parsed, not kept).
#[derive(serde::Deserialize)]
struct Head {
    manifest: RunManifest,
    state: Option<serde::de::IgnoredAny>,
}

/// A state file's state as `T`, with the shard its manifest names.
#[derive(serde::Deserialize)]
struct Body<T> {
    manifest: ShardOnly,
    state: T,
}

#[derive(serde::Deserialize)]
struct ShardOnly {
    shard: Option<ShardRef>,
}

/// Parses `path` (JSON) as `T`: the file's bytes and `T` in memory, for one file at a time
/// (parsing from the bytes is about three times as fast as from a reader).
fn parse_file<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "{}: no complete shard state (the shard has not finished, or failed)",
            path.display()
        )
    })?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a shard state nnlens wrote (parsing it)", path.display()))
}

/// Reads the manifest of `dir/state.json` (the state is checked to be there, not kept).
///
/// # Errors
/// A missing or unreadable file, one that is not a shard's state.
pub fn read_state(dir: &Path) -> Result<ShardState> {
    let path = dir.join(STATE);
    let head: Head = parse_file(&path)?;
    let shard = head
        .manifest
        .shard
        .with_context(|| format!("{}: its manifest names no shard", path.display()))?;
    if head.state.is_none() {
        bail!("{}: not a shard state nnlens wrote (no state)", path.display());
    }
    Ok(ShardState { dir: dir.to_path_buf(), manifest: head.manifest, shard })
}

impl ShardState {
    /// Reads the shard's state as `T` (`what` names it in errors).
    ///
    /// # Errors
    /// The file cannot be read, is not a `T`, or now names another shard.
    pub fn load<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T> {
        let path = self.dir.join(STATE);
        let body: Body<T> =
            parse_file(&path).with_context(|| format!("shard {}: not {what}", self.shard))?;
        if body.manifest.shard != Some(self.shard) {
            bail!("{}: the file changed during the merge (another shard now)", path.display());
        }
        Ok(body.state)
    }
}

/// The shards of one run, checked to belong together, in shard order; their states are read
/// one at a time, so that a merge holds the merged state and one shard's.
#[derive(Debug, Clone)]
pub struct ShardStates {
    shards: Vec<ShardState>,
}

impl ShardStates {
    /// Shards already checked ([`check_shards`]), in shard order.
    pub fn new(shards: Vec<ShardState>) -> Self {
        Self { shards }
    }

    /// The shards' states read as `T` one after the other (in shard order) and folded into
    /// the first with `merge(into, next)`.
    ///
    /// # Errors
    /// No shards, a state that is not a `T`, what `merge` returns (with the shard's number).
    pub fn fold<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        mut merge: impl FnMut(&mut T, T) -> Result<()>,
    ) -> Result<T> {
        let mut merged: Option<T> = None;
        for s in &self.shards {
            let part: T = s.load(what)?;
            match merged.as_mut() {
                None => merged = Some(part),
                Some(m) => merge(m, part).with_context(|| format!("merging shard {}", s.shard))?,
            }
            // The part is gone; the allocator hands its pages back (parsing leaves them
            // scattered between live blocks, where the next part's would not fit).
            crate::process::release_freed_memory();
        }
        merged.context("no shards to merge")
    }

    /// Every shard's state as `T`, in shard order (for states that are small, or that the
    /// merge needs all at once).
    ///
    /// # Errors
    /// A state that is not a `T`.
    pub fn read_all<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<Vec<T>> {
        self.shards.iter().map(|s| s.load(what)).collect()
    }
}

/// Manifest fields that differ between shards of one run: when each ran, for how long, on how
/// many threads, and which shard it was.
const PER_SHARD: &[&str] =
    &["/timings_s", "/started_unix_s", "/shard", "/backend_choice", "/parameters/threads"];

/// The manifest as compared between shards: without [`PER_SHARD`] fields.
fn comparable(manifest: &RunManifest) -> Result<Value> {
    let mut v = serde_json::to_value(manifest)?;
    for pointer in PER_SHARD {
        let (parent, key) = pointer.rsplit_once('/').expect("pointers start with /");
        // (The empty pointer is the whole manifest.)
        if let Some(Value::Object(map)) = v.pointer_mut(parent) {
            map.remove(key);
        }
    }
    Ok(v)
}

/// The first field (a dotted path) where `a` and `b` differ.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let sub = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => first_difference(p, q, &sub),
                    _ => Some(sub),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(if path.is_empty() { "the manifest".into() } else { path.to_string() }),
    }
}

/// The shards of one run, checked, in shard order.
///
/// # Errors
/// No directories, an unreadable state, shards of different runs (naming the first field that
/// differs), a shard given twice, missing shards (listing them).
pub fn read_shards(dirs: &[PathBuf]) -> Result<Vec<ShardState>> {
    if dirs.is_empty() {
        bail!("nnlens merge needs the shards' directories");
    }
    let states = dirs.iter().map(|d| read_state(d)).collect::<Result<Vec<_>>>()?;
    check_shards(states)
}

/// [`read_shards`] of states already read.
///
/// # Errors
/// As [`read_shards`].
pub fn check_shards(states: Vec<ShardState>) -> Result<Vec<ShardState>> {
    let first = states.first().context("no shards to merge")?;
    let reference = comparable(&first.manifest)?;
    let count = first.shard.count;
    let mut by_index: BTreeMap<usize, ShardState> = BTreeMap::new();
    for s in states.iter() {
        if s.shard.count != count {
            bail!(
                "{} is shard {} but {} is shard {}: not the same split",
                s.dir.display(),
                s.shard,
                first.dir.display(),
                first.shard
            );
        }
        if let Some(field) = first_difference(&reference, &comparable(&s.manifest)?, "") {
            bail!(
                "{} (shard {}) is not a shard of the run of {} (shard {}): its {field} differs",
                s.dir.display(),
                s.shard,
                first.dir.display(),
                first.shard
            );
        }
    }
    for s in states {
        if let Some(earlier) = by_index.get(&s.shard.index) {
            bail!(
                "shard {} is given twice: {} and {}",
                s.shard,
                earlier.dir.display(),
                s.dir.display()
            );
        }
        by_index.insert(s.shard.index, s);
    }
    let missing: Vec<String> =
        (0..count).filter(|k| !by_index.contains_key(k)).map(|k| k.to_string()).collect();
    if !missing.is_empty() {
        bail!("missing shards of {count}: {} (give every shard's directory)", missing.join(", "));
    }
    Ok(by_index.into_values().collect())
}

/// The manifest of the merged run: the shards' own, without the shard, its timings the sums
/// of the shards' (`merge` added by the caller).
pub fn merged_manifest(shards: &[ShardState]) -> RunManifest {
    let mut manifest = shards[0].manifest.clone();
    manifest.shard = None;
    manifest.timings_s.clear();
    for s in shards {
        for (k, v) in &s.manifest.timings_s {
            *manifest.timings_s.entry(k.clone()).or_insert(0.0) += v;
        }
    }
    manifest.started_unix_s =
        shards.iter().map(|s| s.manifest.started_unix_s).fold(f64::INFINITY, f64::min);
    manifest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    fn args(shard: &str, shards: Option<usize>) -> ShardArgs {
        ShardArgs { shard: Some(shard.into()), shards }
    }

    #[test]
    fn k_of_n_is_parsed_and_checked() {
        let none = env(&[]);
        assert_eq!(
            args("2/7", None).resolve_with(&none).unwrap(),
            Some(ShardRef { index: 2, count: 7 })
        );
        assert_eq!(ShardArgs::default().resolve_with(&none).unwrap(), None);
        for bad in ["7/7", "1/0", "a/3", "3", "-1/3"] {
            let e = args(bad, None).resolve_with(&none).unwrap_err().to_string();
            assert!(e.contains("--shard"), "{bad}: {e}");
        }
    }

    #[test]
    fn auto_reads_slurm_then_kubernetes() {
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "12"),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            args("auto", None).resolve_with(&slurm).unwrap(),
            Some(ShardRef { index: 2, count: 4 })
        );
        // With --shards, the array index is the shard number (a resubmitted subset).
        let resumed = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ]);
        assert_eq!(
            args("auto", Some(4)).resolve_with(&resumed).unwrap(),
            Some(ShardRef { index: 3, count: 4 })
        );
        let k8s = env(&[("JOB_COMPLETION_INDEX", "5")]);
        assert_eq!(
            args("auto", Some(6)).resolve_with(&k8s).unwrap(),
            Some(ShardRef { index: 5, count: 6 })
        );
        let e = args("auto", None).resolve_with(&k8s).unwrap_err().to_string();
        assert!(e.contains("--shards"), "{e}");
        let e = args("auto", None).resolve_with(&env(&[])).unwrap_err().to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_ID") && e.contains("JOB_COMPLETION_INDEX"), "{e}");
        let e =
            args("auto", Some(4)).resolve_with(&env(&[("JOB_COMPLETION_INDEX", "4")])).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    fn shard_state(index: usize, count: usize, seed: u64) -> ShardState {
        let mut manifest = RunManifest::new("run", seed);
        manifest.metric = Some("nvi".into());
        manifest.parameters = serde_json::json!({ "batch_size": 32, "threads": index + 1 });
        manifest.shard = Some(ShardRef { index, count });
        manifest.timings_s.insert("measure".into(), 1.0 + index as f64);
        ShardState {
            dir: PathBuf::from(format!("s{index}")),
            manifest,
            shard: ShardRef { index, count },
        }
    }

    #[test]
    fn shards_are_checked_and_ordered() {
        let ok =
            check_shards(vec![shard_state(2, 3, 1), shard_state(0, 3, 1), shard_state(1, 3, 1)])
                .unwrap();
        let order: Vec<usize> = ok.iter().map(|s| s.shard.index).collect();
        assert_eq!(order, vec![0, 1, 2]);
        let merged = merged_manifest(&ok);
        assert_eq!(merged.shard, None);
        assert_eq!(merged.timings_s["measure"], 6.0);

        let e = check_shards(vec![shard_state(0, 3, 1), shard_state(2, 3, 1)]).unwrap_err();
        assert_eq!(e.to_string(), "missing shards of 3: 1 (give every shard's directory)");
        let e = check_shards(vec![shard_state(0, 2, 1), shard_state(0, 2, 1)]).unwrap_err();
        assert!(e.to_string().starts_with("shard 0/2 is given twice"), "{e}");
        let e = check_shards(vec![shard_state(0, 2, 1), shard_state(1, 2, 9)]).unwrap_err();
        assert!(e.to_string().ends_with("its seed differs"), "{e}");
        let mut other = shard_state(1, 2, 1);
        other.manifest.parameters["batch_size"] = serde_json::json!(64);
        let e = check_shards(vec![shard_state(0, 2, 1), other]).unwrap_err();
        assert!(e.to_string().ends_with("its parameters.batch_size differs"), "{e}");
        let e = check_shards(vec![shard_state(0, 2, 1), shard_state(1, 3, 1)]).unwrap_err();
        assert!(e.to_string().contains("not the same split"), "{e}");
    }

    #[test]
    fn a_state_file_round_trips_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = shard_state(1, 2, 3);
        let state = serde_json::json!({ "values": [0.1, 1e-300, 2.5] });
        write_state(dir.path(), &s.manifest, &state, true).unwrap();
        let back = read_state(dir.path()).unwrap();
        assert_eq!(back.manifest, s.manifest);
        assert_eq!(back.load::<Value>("a test state").unwrap(), state);
        let e = back.load::<Vec<f64>>("a list").unwrap_err();
        assert!(format!("{e:#}").contains("shard 1/2: not a list"), "{e:#}");
        let e = read_state(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("state.json") && e.contains("no complete shard state"), "{e}");
    }
}
