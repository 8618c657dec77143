use std::process::ExitCode;

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc_malloc::return_large_blocks();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the Tokio runtime starts")
        .block_on(mitra::cli::run())
}

/// glibc's malloc, tuned for a long-running server (see benches/soak.sh and
/// benches/README.md: memory under sustained load).
///
/// By default glibc raises its mmap threshold to the size of the largest
/// block freed so far (up to 32 MiB), and its trim threshold to twice
/// that: after a few large buffers (a batch of conversions, a burst of
/// clicks) every later large buffer is carved out of the arenas, where
/// its freed pages stay resident among live chunks. Under redirects and
/// sales together half of the arenas' memory was free this way, and
/// resident memory crept up minute by minute. Fixed thresholds keep
/// blocks from 128 KiB up in their own mappings, returned whole on free,
/// and let the arenas give back free tops from 128 KiB. (Capping the
/// number of arenas, MALLOC_ARENA_MAX=2, changed nothing measurable, and
/// mimalloc doubled resident memory, so neither is used.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc_malloc {
    use std::ffi::c_int;

    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;
    const THRESHOLD: c_int = 128 * 1024;

    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }

    /// Sets both thresholds, unless the environment set them already
    /// (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ stay the operator's).
    pub fn return_large_blocks() {
        for (param, var) in [
            (M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
            (M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_"),
        ] {
            if std::env::var_os(var).is_none() {
                // SAFETY: mallopt only sets one of malloc's tuning
                // parameters; it is called before any other thread exists.
                unsafe { mallopt(param, THRESHOLD) };
            }
        }
    }
}
