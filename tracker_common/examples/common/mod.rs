//! What the examples share.

/// A field of /proc/self/status in bytes: `VmRSS:` (resident now) or `VmHWM:` (the peak).
pub(crate) fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .expect("field in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a size in kB");
    kib * 1024
}

/// Resident memory of this process, in bytes (VmRSS of /proc/self/status).
pub(crate) fn rss_bytes() -> u64 {
    status_bytes("VmRSS:")
}
