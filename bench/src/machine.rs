//! The limits of the machine a benchmark runs on, measured there: the f32 multiply-add peak of
//! all cores (with the widest vector instructions the CPU has, as tract and ONNX Runtime pick
//! theirs at run time) and the memory read bandwidth. A throughput is then reported as a
//! fraction of what the machine allows, in the same run.

use std::time::Instant;

/// What the machine allows.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Limits {
    /// Threads the measurements ran on (all cores).
    pub threads: usize,
    /// The instruction set of the multiply-add kernel (`avx512f`, `avx2+fma`, `scalar`).
    pub isa: &'static str,
    /// f32 multiply-adds per second over all threads (one multiply-add = 2 FLOP).
    pub fma_per_s: f64,
    /// Bytes per second read from memory over all threads (a 512 MiB array summed).
    pub read_bytes_per_s: f64,
}

/// Measures both limits on `threads` threads (the best of a few short repetitions each, about
/// a second in all).
pub fn measure(threads: usize) -> Limits {
    let threads = threads.max(1);
    let (isa, kernel) = fma_kernel();
    let fma_per_s = best_of(5, || on_threads(threads, |_| kernel(FMA_ITERATIONS)))
        * (threads * FMA_ITERATIONS * kernel_fma_per_iteration(isa)) as f64;
    let len = (512 << 20) / std::mem::size_of::<f32>();
    let data: Vec<f32> = (0..len).map(|i| (i % 7) as f32).collect();
    let per_thread = len.div_ceil(threads);
    let read_per_s = best_of(5, || {
        on_threads(threads, |t| {
            let start = (t * per_thread).min(len);
            let end = ((t + 1) * per_thread).min(len);
            sum(&data[start..end])
        })
    }) * (len * std::mem::size_of::<f32>()) as f64;
    Limits { threads, isa, fma_per_s, read_bytes_per_s: read_per_s }
}

/// Iterations of a multiply-add kernel per measurement (about 0.1 s).
const FMA_ITERATIONS: usize = 20_000_000;

/// `1 / seconds` of the fastest of `n` runs of `f`.
fn best_of(n: usize, mut f: impl FnMut() -> f32) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..n {
        let start = Instant::now();
        std::hint::black_box(f());
        best = best.min(start.elapsed().as_secs_f64());
    }
    1.0 / best
}

/// Runs `f(t)` on `threads` scoped threads at once; the sum of their results (kept alive).
fn on_threads(threads: usize, f: impl Fn(usize) -> f32 + Sync) -> f32 {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn({
                    let f = &f;
                    move || f(t)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    })
}

/// Sums a slice with independent lanes (the compiler vectorises it), reading each value once.
fn sum(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let chunks = x.chunks_exact(16);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// Multiply-adds per kernel iteration: 10 independent accumulators of one vector register.
fn kernel_fma_per_iteration(isa: &str) -> usize {
    ACCUMULATORS
        * match isa {
            "avx512f" => 16,
            "avx2+fma" => 8,
            _ => 1,
        }
}

/// Independent accumulators: enough to cover the latency of two multiply-add units.
const ACCUMULATORS: usize = 10;

type Kernel = fn(usize) -> f32;

/// The widest multiply-add kernel this CPU runs.
fn fma_kernel() -> (&'static str, Kernel) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return ("avx512f", |n| unsafe { x86::fma_avx512(n) });
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return ("avx2+fma", |n| unsafe { x86::fma_avx2(n) });
        }
    }
    ("scalar", scalar_fma)
}

fn scalar_fma(n: usize) -> f32 {
    let mut acc = [1.0f32; ACCUMULATORS];
    let (a, b) = (std::hint::black_box(0.999_999f32), std::hint::black_box(1e-7f32));
    for _ in 0..n {
        for x in &mut acc {
            *x = x.mul_add(a, b);
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::ACCUMULATORS;

    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_avx512(n: usize) -> f32 {
        let a = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm512_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); ACCUMULATORS];
        for _ in 0..n {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut total = 0.0;
        for x in acc {
            total += _mm512_reduce_add_ps(x);
        }
        total
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_avx2(n: usize) -> f32 {
        let a = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm256_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); ACCUMULATORS];
        for _ in 0..n {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut lanes = [0.0f32; 8];
        let mut total = 0.0;
        for x in acc {
            // SAFETY: `lanes` holds the 8 floats an unaligned store writes.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), x) };
            total += lanes.iter().sum::<f32>();
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_compute_what_the_scalar_one_does() {
        let (isa, kernel) = fma_kernel();
        let scalar = scalar_fma(1000) / ACCUMULATORS as f32;
        let lanes = kernel_fma_per_iteration(isa) / ACCUMULATORS;
        let vector = kernel(1000) / (ACCUMULATORS * lanes) as f32;
        assert!((scalar - vector).abs() < 1e-5, "{isa}: {vector} vs scalar {scalar}");
    }

    #[test]
    fn sum_reads_every_value_once() {
        let x: Vec<f32> = (0..1037).map(|i| i as f32).collect();
        assert_eq!(sum(&x), (0..1037).sum::<i32>() as f32);
    }
}
