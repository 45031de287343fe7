//! VmRSS of this process, and memory sizes in MiB.

/// VmRSS of this process in KiB (the server, when in-process, and the load generator).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// KiB as whole MiB, or `n/a`.
pub fn mib(kib: Option<u64>) -> String {
    mib_f64(kib.map(|k| k as f64))
}

/// KiB (a peak or a mean, not necessarily whole) as whole MiB, or `n/a`.
pub fn mib_f64(kib: Option<f64>) -> String {
    kib.map_or_else(|| "n/a".into(), |k| format!("{:.0}", k / 1024.0))
}
