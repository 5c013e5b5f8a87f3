//! Atomic result files and Ctrl-C.
//!
//! Every file a command writes goes through an [`OutDir`]: it is written to a temporary name in
//! the same directory (`.nnlens-tmp-<pid>-<name>`), flushed and synced, and only when every file
//! of the result is complete are they renamed into place, the manifest (`result.json`) last.
//! A directory that holds `result.json` therefore always holds a complete result: a run killed
//! at any moment leaves the previous complete result, the new complete one, or (for the
//! microseconds between removing the old manifest and renaming the new one) no manifest at all,
//! never a truncated file under a final name. Temporary files left by a killed run (whose
//! process no longer exists) are removed by the next run that writes to the directory.
//!
//! Live temporary files are listed in one registry. On Ctrl-C (SIGINT) the handler installed by
//! [`install_interrupt_handler`] takes the registry's lock, removes them, prints one line on
//! stderr and exits with status 130. [`OutDir::commit`] renames while holding the same lock, so
//! a temporary file is never renamed after the handler removed it, and the handler never runs in
//! the middle of a commit.
//!
//! Test hook (hidden): with `NNLENS_TEST_PAUSE_AT_STEP=K`, the process stops at the K-th step of
//! writing (1-based; the steps are: a temporary file opened, a temporary file complete, the old
//! manifest removed, a file renamed into place, the directory synced), prints
//! `nnlens-test: paused at step K (WHAT)` on stderr and sleeps for up to 60 seconds, so that a
//! test can kill it at exactly that moment.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

/// The prefix of every temporary file name.
const TEMP_PREFIX: &str = ".nnlens-tmp-";

/// The manifest of a result directory, renamed into place last.
pub const MANIFEST: &str = "result.json";

/// The temporary files that exist now, removed on Ctrl-C.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn live() -> MutexGuard<'static, Vec<PathBuf>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

fn unregister(live: &mut Vec<PathBuf>, path: &Path) {
    live.retain(|p| p != path);
}

/// Lists `path`, a temporary file written outside an [`OutDir`], for removal on Ctrl-C
/// (until [`forget_temp`]).
pub fn track_temp(path: &Path) {
    live().push(path.to_path_buf());
}

/// Takes `path` off the list of [`track_temp`].
pub fn forget_temp(path: &Path) {
    unregister(&mut live(), path);
}

/// Installs the Ctrl-C handler: it removes the live temporary files, prints one line on
/// stderr and exits with status 130. Nothing else needs to poll for the interruption.
pub fn install_interrupt_handler() {
    let installed = ctrlc::set_handler(|| {
        // Held until the process exits: no commit can start or rename after this point.
        let live = live();
        for path in live.iter() {
            let _ = std::fs::remove_file(path);
        }
        eprintln!("error: interrupted (Ctrl-C); its unfinished files are removed");
        std::process::exit(130);
    });
    if let Err(e) = installed {
        tracing::warn!("cannot install the Ctrl-C handler: {e}");
    }
}

/// The test hook's step counter (see the module documentation).
static STEP: AtomicUsize = AtomicUsize::new(0);

/// Counts one writing step and pauses there if `NNLENS_TEST_PAUSE_AT_STEP` names it.
fn step(what: &str, name: &str) {
    let k = STEP.fetch_add(1, Ordering::SeqCst) + 1;
    let Some(pause) = std::env::var("NNLENS_TEST_PAUSE_AT_STEP").ok() else { return };
    if pause.trim().parse() == Ok(k) {
        eprintln!("nnlens-test: paused at step {k} ({what} {name})");
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// A file written to its temporary name, waiting for [`OutDir::commit`].
#[derive(Debug)]
struct Staged {
    temp: PathBuf,
    target: PathBuf,
}

/// The files of one result, written to temporary names in `dir` and renamed into place
/// together by [`commit`](Self::commit). Dropped without a commit, it removes them.
#[derive(Debug)]
pub struct OutDir {
    dir: PathBuf,
    staged: Vec<Staged>,
    manifest: Option<Staged>,
}

impl OutDir {
    /// Creates `dir` if needed and removes the temporary files of killed runs in it.
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        remove_stale_temps(dir);
        Ok(Self { dir: dir.to_path_buf(), staged: Vec::new(), manifest: None })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the file `name` through `write` (buffered) to its temporary name, then flushes
    /// and syncs it. It appears under `name` at [`commit`](Self::commit).
    pub fn write(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
    ) -> Result<()> {
        let staged = self.stage(name, write)?;
        self.staged.retain(|s| s.target != staged.target);
        self.staged.push(staged);
        Ok(())
    }

    /// Writes `bytes` as the file `name` (see [`write`](Self::write)).
    pub fn bytes(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.write(name, |w| Ok(w.write_all(bytes)?))
    }

    /// Writes a CSV file `name` through `write` (see [`write`](Self::write)).
    pub fn csv(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut csv::Writer<&mut BufWriter<File>>) -> Result<()>,
    ) -> Result<()> {
        self.write(name, |w| {
            let mut csv = csv::Writer::from_writer(w);
            write(&mut csv)?;
            csv.flush()?;
            Ok(())
        })
    }

    /// Writes `value` as pretty JSON to the manifest `name` (`result.json`): the file that says
    /// the directory holds a complete result, renamed into place after every other file.
    pub fn manifest(&mut self, name: &str, value: &impl Serialize) -> Result<()> {
        let staged = self.stage(name, |w| Ok(serde_json::to_writer_pretty(w, value)?))?;
        if let Some(old) = self.manifest.replace(staged) {
            let _ = std::fs::remove_file(&old.temp);
            unregister(&mut live(), &old.temp);
        }
        Ok(())
    }

    fn stage(
        &mut self,
        name: &str,
        write: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
    ) -> Result<Staged> {
        let target = self.dir.join(name);
        let temp = self.dir.join(format!("{TEMP_PREFIX}{}-{name}", std::process::id()));
        let file = {
            let mut live = live();
            let file =
                File::create(&temp).with_context(|| format!("writing {}", target.display()))?;
            live.push(temp.clone());
            file
        };
        let staged = Staged { temp, target };
        step("opened", name);
        let written = (|| -> Result<()> {
            let mut w = BufWriter::new(file);
            write(&mut w)?;
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(())
        })();
        if let Err(e) = written {
            remove(&staged);
            return Err(e.context(format!("writing {}", staged.target.display())));
        }
        step("staged", name);
        Ok(staged)
    }

    /// Renames every staged file into place: when a manifest is staged, the old one is removed
    /// first (so that it never describes a mix of old and new files), the manifest is renamed
    /// last, and then the directory is synced.
    pub fn commit(mut self) -> Result<()> {
        let staged = std::mem::take(&mut self.staged);
        let manifest = self.manifest.take();
        let mut live = live();
        let result = (|| -> Result<()> {
            if let Some(m) = &manifest
                && std::fs::symlink_metadata(&m.target).is_ok()
            {
                std::fs::remove_file(&m.target)
                    .with_context(|| format!("removing the old {}", m.target.display()))?;
                sync_dir(&self.dir);
                step("removed", MANIFEST);
            }
            for s in staged.iter().chain(&manifest) {
                std::fs::rename(&s.temp, &s.target)
                    .with_context(|| format!("writing {}", s.target.display()))?;
                unregister(&mut live, &s.temp);
                step("renamed", &s.target.file_name().unwrap_or_default().to_string_lossy());
            }
            sync_dir(&self.dir);
            step("synced", &self.dir.display().to_string());
            Ok(())
        })();
        for s in staged.iter().chain(&manifest) {
            if live.contains(&s.temp) {
                let _ = std::fs::remove_file(&s.temp);
                unregister(&mut live, &s.temp);
            }
        }
        result
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        for s in self.staged.drain(..).chain(self.manifest.take()) {
            remove(&s);
        }
    }
}

/// Removes a staged file's temporary file and forgets it.
fn remove(staged: &Staged) {
    let mut live = live();
    let _ = std::fs::remove_file(&staged.temp);
    unregister(&mut live, &staged.temp);
}

/// Syncs a directory's entries (its renames and removals) to disk; best effort, as some file
/// systems cannot sync a directory.
fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), "cannot sync the directory: {e}");
    }
}

/// Whether the process `pid` exists, when that can be known (`/proc`); `None` otherwise.
fn alive(pid: u32) -> Option<bool> {
    Path::new("/proc/self").exists().then(|| Path::new("/proc").join(pid.to_string()).exists())
}

/// Removes the temporary files in `dir` of processes that no longer exist.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let own = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != own && alive(pid) == Some(false) {
            let path = entry.path();
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(path = %path.display(), "removed a killed run's file"),
                Err(e) => tracing::debug!(path = %path.display(), "cannot remove: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn files_appear_only_at_commit_and_replace_the_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), "old").unwrap();
        std::fs::write(dir.path().join("a.csv"), "old").unwrap();
        let mut out = OutDir::create(dir.path()).unwrap();
        out.bytes("a.csv", b"new").unwrap();
        out.manifest(MANIFEST, &serde_json::json!({ "x": 1 })).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("a.csv")).unwrap(), "old");
        assert_eq!(names(dir.path()).len(), 4);
        out.commit().unwrap();
        assert_eq!(names(dir.path()), ["a.csv", MANIFEST]);
        assert_eq!(std::fs::read_to_string(dir.path().join("a.csv")).unwrap(), "new");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(MANIFEST)).unwrap())
                .unwrap();
        assert_eq!(doc["x"], 1);
        assert!(live().iter().all(|p| !p.starts_with(dir.path())));
    }

    #[test]
    fn a_failed_or_dropped_result_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = OutDir::create(dir.path()).unwrap();
        out.bytes("a.csv", b"1").unwrap();
        let err = out.write("b.csv", |_| anyhow::bail!("no")).unwrap_err();
        assert!(format!("{err:#}").contains("b.csv"), "{err:#}");
        drop(out);
        assert!(names(dir.path()).is_empty());
        assert!(live().iter().all(|p| !p.starts_with(dir.path())));
    }

    #[test]
    fn temps_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // Far above any pid_max: no such process.
        let dead = dir.path().join(format!("{TEMP_PREFIX}4294967290-result.json"));
        let mine = dir.path().join(format!("{TEMP_PREFIX}{}-x.csv", std::process::id()));
        std::fs::write(&dead, "").unwrap();
        std::fs::write(&mine, "").unwrap();
        std::fs::write(dir.path().join(".nnlens-tmp-abc"), "").unwrap();
        let _out = OutDir::create(dir.path()).unwrap();
        if alive(1).is_some() {
            assert!(!dead.exists());
        }
        assert!(mine.exists());
        assert!(dir.path().join(".nnlens-tmp-abc").exists());
    }
}
