//! The process a command line runs in: allocator and thread-pool settings made before any
//! thread starts, whether standard output is open, and every error on one line.

/// Settings of the process made at the start of `main`: freed memory kept in the process, and
/// the gradient backend's own pool at one thread.
///
/// # Safety
/// Call it before any thread exists: it sets an environment variable and allocator parameters.
pub unsafe fn prepare() {
    keep_freed_memory();
    single_threaded_candle_pool();
}

/// Keeps freed memory in the process. Every block of activations is tens of MB, allocated and
/// freed once per block; glibc's defaults hand such allocations back to the kernel at every
/// free, and faulting the pages in again took a quarter of the time of `nnlens run nvi`
/// (system time 5.4 s -> 0.4 s, wall 18 s -> 14-16 s, for 1000 images x 9 translations on the
/// Fashion-MNIST CNN on 2 cores).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Hands the memory the allocator holds free back to the system, in every arena (glibc's
/// `malloc_trim`). [`prepare`] keeps freed memory for the blocks that come and go; memory a
/// one-off step freed on other threads (the listing of a folder on the rayon workers) would
/// otherwise stay resident beside the run's own, in arenas the run's threads do not use.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the system; it takes the arenas' locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// candle (the gradient backend) runs element-wise operations on a pool of its own threads,
/// which only competes with the per-example workers (measured: 5.2 s instead of 7.0 s for the
/// gradients of 1000 MNIST images on 2 busy cores); one thread unless the user set it.
fn single_threaded_candle_pool() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called at the start of main, before any thread exists.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// One line of an error and its causes, each cause once: a library error that names its
/// source in its message (`cannot read x.onnx: No such file`) is not followed by the source
/// again.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.contains(text.trim()) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A usage error of clap on one line, as every other error (clap's own spans several: the
/// error, the usage, a hint), with a pointer to `--help`.
pub fn usage_error(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let mut parts = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            break;
        }
        if !line.is_empty() {
            parts.push(line.trim_start_matches("error: "));
        }
    }
    format!("error: {} (see --help)", parts.join(" "))
}

/// Whether standard output is open. Rust's runtime reopens a closed standard descriptor on
/// `/dev/null` before `main` (read-write), so `nnlens metrics >&-` would succeed and print
/// nothing. A shell's `> /dev/null` opens it write-only, so a read-write `/dev/null` on
/// descriptor 1 is taken for a closed one.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn stdout_is_open() -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: F_GETFL only reads the descriptor's flags.
    let flags = unsafe { libc::fcntl(1, libc::F_GETFL) };
    if flags == -1 {
        return false;
    }
    if flags & libc::O_ACCMODE != libc::O_RDWR {
        return true;
    }
    let (Ok(out), Ok(null)) = (std::fs::metadata("/dev/stdout"), std::fs::metadata("/dev/null"))
    else {
        return true;
    };
    out.rdev() != null.rdev()
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn stdout_is_open() -> bool {
    true
}

/// The variable naming the file a finished command writes its peak resident memory into
/// (`nnlens bench --workload` sets it for each run it times).
pub const PEAK_MEMORY_FILE: &str = "NNLENS_PEAK_MEMORY_FILE";

/// The peak resident memory of this process so far, in bytes: `VmHWM` of `/proc/self/status`
/// (`None` where there is no such file).
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 =
        line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Writes [`peak_memory_bytes`] into the file [`PEAK_MEMORY_FILE`] names, when it is set.
/// A process's own high-water mark is the only exact one: the kernel's `ru_maxrss` of a child
/// also counts the memory of the parent it was forked from, until it runs its own program.
///
/// # Errors
/// The file cannot be written.
pub fn report_peak_memory() -> std::io::Result<()> {
    let Some(path) = std::env::var_os(PEAK_MEMORY_FILE) else { return Ok(()) };
    let bytes = peak_memory_bytes().unwrap_or(0);
    std::fs::write(path, format!("{bytes}\n"))
}
