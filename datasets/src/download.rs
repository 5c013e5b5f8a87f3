//! Checksummed downloads into a cache directory.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::files::{Checksum, FileSpec};
use crate::{DatasetError, Result};

/// No dataset file nnlens fetches is larger than this.
const MAX_BYTES: u64 = 256 << 20;

/// The cache directory: `$NNLENS_CACHE_DIR`, else the user's cache directory + `nnlens`
/// (`~/.cache/nnlens` on Linux), else `.nnlens-cache` in the working directory.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("NNLENS_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir().map(|d| d.join("nnlens")).unwrap_or_else(|| PathBuf::from(".nnlens-cache"))
}

/// A running digest of one of the checksums' algorithms.
enum Hasher {
    Sha256(Sha256),
    Md5(md5::Md5),
}

impl Hasher {
    fn new(checksum: &Checksum) -> Self {
        match checksum {
            Checksum::Sha256(_) => Hasher::Sha256(Sha256::new()),
            Checksum::Md5(_) => Hasher::Md5(md5::Md5::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Md5(h) => h.update(bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Md5(h) => hex::encode(h.finalize()),
        }
    }
}

/// The digest of a file in `checksum`'s algorithm, hex, streaming.
///
/// # Errors
/// [`DatasetError::Io`].
pub fn digest_file(path: &Path, checksum: &Checksum) -> Result<String> {
    digest_with(path, Hasher::new(checksum))
}

/// SHA-256 of a file, hex, streaming.
///
/// # Errors
/// [`DatasetError::Io`].
pub fn sha256_file(path: &Path) -> Result<String> {
    digest_with(path, Hasher::Sha256(Sha256::new()))
}

fn digest_with(path: &Path, mut hasher: Hasher) -> Result<String> {
    let io = |source| DatasetError::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}

/// Returns the path of `file` in `dir`, downloading it from the first mirror that has it when
/// it is not there (or is there with another checksum). The content is checked against the
/// file's published checksum before it is moved into place, so the cache never holds a bad
/// file.
///
/// # Errors
/// [`DatasetError::Checksum`] when a mirror serves other content, [`DatasetError::Download`]
/// when no mirror could be reached, [`DatasetError::Io`] when the cache cannot be written.
pub fn fetch_file(file: &FileSpec, mirrors: &[String], dir: &Path) -> Result<PathBuf> {
    let dest = dir.join(file.name);
    if dest.is_file() {
        if digest_file(&dest, &file.checksum)? == file.checksum.expected() {
            return Ok(dest);
        }
        tracing::warn!(path = %dest.display(), "cached file has the wrong checksum; fetching it again");
    }
    std::fs::create_dir_all(dir).map_err(|source| DatasetError::Io { path: dir.into(), source })?;
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(300))).build().into();
    let mut failures = Vec::new();
    for mirror in mirrors {
        let url = format!("{}/{}", mirror.trim_end_matches('/'), file.name);
        tracing::info!(%url, "downloading");
        match download_checked(&agent, &url, file, &dest) {
            Ok(()) => return Ok(dest),
            Err(e @ DatasetError::Checksum { .. }) => return Err(e),
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(DatasetError::Download {
        url: file.name.to_string(),
        reason: if failures.is_empty() {
            "no mirror configured".into()
        } else {
            failures.join("; ")
        },
    })
}

fn download_checked(agent: &ureq::Agent, url: &str, file: &FileSpec, dest: &Path) -> Result<()> {
    let fail = |reason: String| DatasetError::Download { url: url.to_string(), reason };
    let mut response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    let mut reader = response.body_mut().with_config().limit(MAX_BYTES).reader();
    let part = dest.with_extension("part");
    let io = |source| DatasetError::Io { path: part.clone(), source };
    let mut out = std::fs::File::create(&part).map_err(io)?;
    let mut hasher = Hasher::new(&file.checksum);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(fail(e.to_string()));
            }
        };
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io)?;
    }
    out.sync_all().map_err(io)?;
    drop(out);
    let got = hasher.finish();
    if got != file.checksum.expected() {
        let _ = std::fs::remove_file(&part);
        return Err(DatasetError::Checksum {
            what: format!("{url} ({})", file.checksum.algorithm()),
            expected: file.checksum.expected().to_string(),
            got,
        });
    }
    std::fs::rename(&part, dest).map_err(|source| DatasetError::Io { path: dest.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A one-thread HTTP server on 127.0.0.1 serving `files` (path -> bytes), 404 otherwise.
    /// Returns its base address and a counter of requests served. It stops after `max` requests.
    fn serve(files: Vec<(&'static str, Vec<u8>)>, max: usize) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/data/", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let served = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(max) {
                let Ok(mut stream) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                served.fetch_add(1, Ordering::SeqCst);
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let body = files.iter().find(|(p, _)| path.ends_with(p)).map(|(_, b)| b.clone());
                let (status, body) = match body {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", b"not here".to_vec()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        (base, count)
    }

    fn spec_for(name: &'static str, content: &[u8]) -> FileSpec {
        let digest: &'static str = Box::leak(hex::encode(Sha256::digest(content)).into_boxed_str());
        FileSpec { name, checksum: Checksum::Sha256(digest) }
    }

    #[test]
    fn fetches_checks_and_caches() {
        let content = b"pretend IDX bytes".to_vec();
        let spec = spec_for("f.gz", &content);
        let (base, count) = serve(vec![("/data/f.gz", content.clone())], 8);
        let dir = tempfile::tempdir().unwrap();
        // The first mirror has nothing; the second is used.
        let mirrors = vec![format!("{base}missing/"), base.clone()];
        let path = fetch_file(&spec, &mirrors, dir.path()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), content);
        let requests = count.load(Ordering::SeqCst);
        assert_eq!(requests, 2);
        // A second call uses the cache and asks nothing.
        fetch_file(&spec, &mirrors, dir.path()).unwrap();
        assert_eq!(count.load(Ordering::SeqCst), requests);
        // A corrupted cache file is replaced.
        std::fs::write(&path, b"bitrot").unwrap();
        fetch_file(&spec, &mirrors, dir.path()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), content);
    }

    #[test]
    fn wrong_content_is_rejected_and_not_cached() {
        let spec = spec_for("g.gz", b"the real thing");
        let (base, _) = serve(vec![("/data/g.gz", b"something else".to_vec())], 4);
        let dir = tempfile::tempdir().unwrap();
        let e = fetch_file(&spec, &[base], dir.path()).unwrap_err();
        assert!(matches!(e, DatasetError::Checksum { .. }), "{e}");
        assert!(!dir.path().join("g.gz").exists());
        assert!(!dir.path().join("g.part").exists());
    }

    #[test]
    fn md5_checksums_are_checked() {
        let content = b"a CIFAR tarball".to_vec();
        let digest: &'static str =
            Box::leak(hex::encode(md5::Md5::digest(&content)).into_boxed_str());
        let spec = FileSpec { name: "c.tar.gz", checksum: Checksum::Md5(digest) };
        let (base, _) = serve(vec![("/data/c.tar.gz", content.clone())], 4);
        let dir = tempfile::tempdir().unwrap();
        let path = fetch_file(&spec, std::slice::from_ref(&base), dir.path()).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), content);
        let wrong = FileSpec { name: "c.tar.gz", checksum: Checksum::Md5("00") };
        std::fs::remove_file(dir.path().join("c.tar.gz")).unwrap();
        let e = fetch_file(&wrong, &[base], dir.path()).unwrap_err().to_string();
        assert!(e.contains("MD5"), "{e}");
    }

    #[test]
    fn unreachable_mirrors_are_reported() {
        let spec = spec_for("h.gz", b"x");
        let (base, _) = serve(vec![], 4);
        let dir = tempfile::tempdir().unwrap();
        let e = fetch_file(&spec, &[base], dir.path()).unwrap_err().to_string();
        assert!(e.contains("h.gz") && e.contains("404"), "{e}");
    }
}
