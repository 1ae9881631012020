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

fn main() {
    #[cfg(unix)]
    quiet_on_closed_pipe();
    let cli = cli::options::Cli::parse();
    if let Err(e) = cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
