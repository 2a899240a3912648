//! Progress lines: one `==> ` line on stderr per step a user waits for. A leaf: it uses nothing of
//! the crate.

/// Prints one progress line on stderr.
pub fn progress(line: &str) {
    eprintln!("==> {line}");
}
