//! The room left on the filesystem that is to receive a checkpoint, and the check made before
//! writing one: a write that cannot fit stops with the figure it needs and the figure the disk
//! has, instead of filling the disk and failing once it is full.

use crate::error::{Error, Result};
use std::path::Path;

/// Bytes kept free beyond a write's own size: the files' metadata, and the room other programs
/// need to go on working.
const MARGIN_BYTES: u64 = 64 << 20;

/// Bytes available to this user on the filesystem that holds `path`, or that would hold it (its
/// nearest existing ancestor); `None` where the figure cannot be read on this platform.
pub fn available_bytes(path: &Path) -> Option<u64> {
    let mut at = path;
    loop {
        if at.as_os_str().is_empty() {
            return statvfs_available(Path::new("."));
        }
        if at.exists() {
            return statvfs_available(at);
        }
        at = at.parent()?;
    }
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn statvfs_available(path: &Path) -> Option<u64> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    extern "C" {
        fn statvfs(path: *const std::os::raw::c_char, buf: *mut u64) -> i32;
    }
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // `struct statvfs` on 64-bit Linux (glibc and musl): f_bsize, f_frsize, f_blocks, f_bfree,
    // f_bavail, ... each 8 bytes, then fields this code does not read; the buffer is larger
    // than the whole struct.
    let mut buf = [0u64; 32];
    // SAFETY: `c` is a NUL-terminated path and `buf` is larger than `struct statvfs`.
    if unsafe { statvfs(c.as_ptr(), buf.as_mut_ptr()) } != 0 {
        return None;
    }
    let (fragment, available) = (buf[1], buf[4]);
    Some(fragment.saturating_mul(available))
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn statvfs_available(_path: &Path) -> Option<u64> {
    None
}

/// Refuses to write `bytes` into `dir` when its filesystem has less room than that (and a
/// margin) left; passes where the room cannot be read.
pub fn check_disk_room(dir: &Path, bytes: u64) -> Result<()> {
    match available_bytes(dir) {
        Some(free) => check_room(dir, bytes, free),
        None => Ok(()),
    }
}

/// [`check_disk_room`] against a given amount of free space.
pub fn check_room(dir: &Path, bytes: u64, free: u64) -> Result<()> {
    if bytes.saturating_add(MARGIN_BYTES) <= free {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "{}: the checkpoint is {:.2} GB, but its filesystem has {:.2} GB free",
        dir.display(),
        bytes as f64 / 1e9,
        free as f64 / 1e9
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_refused_with_both_figures() {
        let dir = Path::new("/data/ckpt");
        assert!(check_room(dir, 1_000_000_000, 2_000_000_000).is_ok());
        let e = check_room(dir, 490_000_000_000, 80_000_000_000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/data/ckpt") && e.contains("490.00 GB") && e.contains("80.00 GB"));
        // the margin counts: a write that would leave less than it is refused
        assert!(check_room(dir, 1_000, MARGIN_BYTES).is_err());
    }

    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    #[test]
    fn this_filesystem_reports_room_for_a_folder_not_yet_made() {
        // a folder not made yet is looked up through its nearest existing ancestor
        let tmp = std::env::temp_dir();
        assert!(available_bytes(&tmp.join("no-such-folder/nor-this")).is_some_and(|f| f > 0));
        assert!(available_bytes(Path::new("")).is_some());
    }
}
