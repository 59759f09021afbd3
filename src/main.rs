//! `aymara-mock`: the command line over the `aymara_mock` library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    limit_malloc_arenas();
    // clap exits with 2 on bad flags, after printing what is wrong.
    aymara_mock::cli::run(aymara_mock::cli::Cli::parse())
}

/// glibc gives every thread that allocates its own malloc arena, keeps freed
/// memory in them, and returns to the system only what is freed at the top of
/// a heap. Uploads are written by short-lived blocking threads, so after a
/// burst of concurrent uploads RSS stayed about twice as high as before it,
/// for good (see the soak test). Two arenas, and a trim every 10 s, give the
/// memory back once the burst is over. Buffers up to 32 MiB come from the
/// heap rather than fresh mmaps, so a long upload reuses pages instead of
/// faulting new ones in (W1 in BENCHMARKS.md). The trim threshold stays at its
/// default: a thread arena's free top is only given back at `free` (never by
/// `malloc_trim`), so a high threshold kept it for good (the soak test caught
/// +16 MiB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(
    unsafe_code,
    reason = "two libc allocator calls with no memory-safety preconditions"
)]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes allocator parameters; it is called first
    // thing in main, before the runtime starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
    let _ = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| loop {
            std::thread::sleep(std::time::Duration::from_secs(10));
            // SAFETY: malloc_trim is thread-safe (it takes each arena's lock) and
            // only releases free pages.
            unsafe {
                libc::malloc_trim(0);
            }
        });
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
