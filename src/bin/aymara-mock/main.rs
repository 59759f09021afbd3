//! `aymara-mock`: the command line over the `aymara_mock` library. The
//! command line lives here, not in the library (as ripgrep keeps its flags
//! in its binary): the library's users never compile clap, and the binary
//! reaches the server only through the public API a Rust user has.
//!
//! - `cli.rs`: the flags, each with its `AYMARA_MOCK_*` twin (clap);
//! - `serve.rs`: `serve`, the default: logs, the server, signals;
//! - `fixtures.rs`: `check`, `schema` and `scenarios`;
//! - `health.rs`: `health`, the container image's health check.

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

mod cli;
mod fixtures;
mod health;
mod serve;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often the server asks mimalloc to give memory back. mimalloc has no
/// thread of its own: it returns freed memory to the OS (after its purge
/// delay) only from inside its own calls, and takes back the blocks other
/// threads freed into a thread's pages only when that thread collects. An
/// upload's chunks are allocated on a runtime worker (hyper's reads) and
/// freed on a writer thread of the storage pool; once a burst of uploads
/// ends, an idle server makes no calls, and kept what the burst had used
/// (140 MiB after 256 uploads of 2 MiB at once, against 10 idle; with this
/// timer, about 30, most of it the journal: BENCHMARKS.md, issue 30).
pub(crate) const COLLECT_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// `mi_collect(false)`: this thread's heap gives back what it can, and the
/// arenas the memory whose purge delay has passed.
#[allow(
    unsafe_code,
    reason = "mi_collect has no preconditions: it only works on the calling thread's heap"
)]
pub(crate) fn collect() {
    // SAFETY: mi_collect takes no pointers and may be called at any time
    // from any thread; it collects the calling thread's heap.
    unsafe { libmimalloc_sys::mi_collect(false) }
}

/// Runs a subcommand; the exit code is 2 for bad flags or fixtures.
fn main() -> ExitCode {
    // clap exits with 2 on bad flags, after printing what is wrong.
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { paths }) => fixtures::check(&paths),
        Some(Command::Schema) => fixtures::schema(),
        Some(Command::Scenarios) => fixtures::list_scenarios(),
        Some(Command::Serve(args)) => serve::serve(args),
        Some(Command::Health(args)) => health::check_health(&args),
        None => serve::serve(cli.serve),
    }
}

/// The binary allocates with mimalloc: with glibc's malloc, allocation was
/// 13% of the server's time under many small uploads (W2 in BENCHMARKS.md)
/// and kept a burst's memory unless capped to two arenas and trimmed.
/// mimalloc's defaults favour speed over footprint: it commits its arenas
/// eagerly and returns freed memory only after a second, which put a 1 GiB
/// upload's peak RSS at 50 MiB instead of 17. Committing on demand and giving
/// freed memory back after 100 ms keeps the footprint of the glibc setup.
/// The options must be set before the first allocation reserves an arena,
/// which the Rust runtime makes before `main`: hence a constructor, run by
/// the loader with the other `.init_array` entries. A library user keeps
/// their own allocator.
#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "a constructor entry; mi_option_set has no memory-safety preconditions"
)]
#[used]
#[link_section = ".init_array"]
static CONFIGURE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn configure_allocator() {
        // The values of `mi_option_e` in mimalloc.h (v3, the version
        // Cargo.lock pins); the Rust bindings leave them out on purpose.
        const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
        const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
        // SAFETY: the loader runs constructors on one thread, before `main`
        // starts any other (mi_option_set is not thread-safe); the options
        // only tune the allocator.
        unsafe {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 100);
        }
    }
    configure_allocator
};
