//! moecap's folders on this machine: the cache (measured ceilings, fetched data).

use std::path::PathBuf;

/// moecap's cache folder: `$MOECAP_CACHE_DIR`, else `$XDG_CACHE_HOME/moecap`, else
/// `~/.cache/moecap`.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("MOECAP_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("moecap")))
        .or_else(|| env("HOME").map(|p| p.join(".cache").join("moecap")))
}
