//! The `moecap` binary: parses the command line and runs it (see the `cli` module).

mod cli;

use clap::Parser;

/// Piping into `head` closes standard output early: end quietly, as other command-line tools
/// do, instead of reporting a failed write.
#[cfg(unix)]
fn quiet_on_closed_pipe() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

/// Every forward pass allocates and frees buffers of megabytes (activations, logits). glibc's
/// allocator maps blocks that large afresh each time, and hands the top of its heap back to the
/// system after frees, so that every pass faults its pages in and has them zeroed again (7 % of
/// an eval's wall time, measured on HellaSwag). Every block is kept in the heap for reuse
/// instead, however large (raising the mapping threshold to its 32 MiB maximum still left the
/// logits of a scoring pass, 86 MB for 439 positions of a 49,152-token vocabulary, faulted in
/// afresh every pass), and freed memory is not trimmed while the process runs.
/// The peak resident memory stays the same (an eval and a bench sweep, measured).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_MAX: i32 = -4;
    // SAFETY: tuning glibc's allocator before any thread starts; every value is in range.
    unsafe {
        mallopt(M_TRIM_THRESHOLD, i32::MAX);
        mallopt(M_MMAP_MAX, 0);
    }
}

fn main() {
    #[cfg(unix)]
    quiet_on_closed_pipe();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    keep_freed_memory();
    let cli = cli::options::Cli::parse();
    if let Err(e) = cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
