//! What Ctrl-C (SIGINT) or SIGTERM says during a long run: the folder that keeps what was
//! finished, and the command that continues it. Every finished point and item is already on
//! disk (written whole, then renamed), so the handler only prints the prepared message and
//! exits with the conventional status 130.

use std::sync::atomic::{AtomicPtr, Ordering};

/// The message, swapped whole: a pointer to a leaked slice (messages are few and small, and a
/// handler may still be reading an old one).
static MESSAGE: AtomicPtr<&'static [u8]> = AtomicPtr::new(std::ptr::null_mut());

/// Sets what an interruption prints from now on (and installs the handler).
pub(crate) fn say_on_interrupt(message: &str) {
    let text: &'static [u8] = Box::leak(
        format!("\ninterrupted: {message}\n")
            .into_bytes()
            .into_boxed_slice(),
    );
    MESSAGE.store(Box::into_raw(Box::new(text)), Ordering::SeqCst);
    install();
}

/// The command line that continues this run: the arguments as given, with `--out DIR` added
/// where the folder was chosen by default, and `--resume` where it is missing.
pub(crate) fn resume_command(out: &std::path::Path) -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.first_mut() {
        *first = "moecap".into();
    }
    if !args.iter().any(|a| a == "--out" || a.starts_with("--out=")) {
        args.push("--out".into());
        args.push(out.display().to_string());
    }
    // the run keeps its folder and its ceilings
    args.retain(|a| a != "--force" && a != "--remeasure");
    if !args.iter().any(|a| a == "--resume") {
        args.push("--resume".into());
    }
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$;&|".contains(c)) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(unix)]
fn install() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    // SAFETY: the handler only calls async-signal-safe functions (write, _exit) on a message
    // that stays allocated for the life of the process.
    unsafe {
        signal(SIGINT, on_signal as *const () as usize);
        signal(SIGTERM, on_signal as *const () as usize);
    }
}

#[cfg(not(unix))]
fn install() {}

#[cfg(unix)]
extern "C" fn on_signal(_signum: i32) {
    extern "C" {
        fn write(fd: i32, buf: *const u8, count: usize) -> isize;
        fn _exit(status: i32) -> !;
    }
    let message = MESSAGE.load(Ordering::SeqCst);
    // SAFETY: a non-null `message` points at a leaked slice reference, never freed; write and
    // _exit are async-signal-safe.
    unsafe {
        if let Some(text) = message.as_ref() {
            write(2, text.as_ptr(), text.len());
        }
        _exit(130);
    }
}
