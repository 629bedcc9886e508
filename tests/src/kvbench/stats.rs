//! kv-bench figures: latency histograms and their one-line summaries, and a server process's CPU
//! seconds and peak RSS read from /proc.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Largest latency a histogram records, in microseconds (larger samples are clamped to it).
const MAX_LATENCY_US: u64 = 120_000_000;

/// A latency histogram in microseconds, 3 significant digits (0.1% resolution at any scale).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// Records `d` in `h` in microseconds (at least 1 µs; clamped to the histogram's maximum).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_LATENCY_US);
    h.saturating_record(us);
}

/// Throughput and latency percentiles of one measured row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Operations that succeeded.
    pub ops: u64,
    /// Operations that failed (transport error or an unexpected answer); not in the histogram.
    pub errors: u64,
    /// Successful operations per second of wall time.
    pub per_sec: f64,
    /// Mean latency in microseconds.
    pub mean_us: f64,
    /// Median latency in microseconds.
    pub p50_us: u64,
    /// 99th percentile latency in microseconds.
    pub p99_us: u64,
    /// 99.9th percentile latency in microseconds.
    pub p999_us: u64,
}

impl Summary {
    /// Summarises `h` (microseconds) over `elapsed` wall time.
    pub fn of(h: &Histogram<u64>, errors: u64, elapsed: Duration) -> Self {
        let ops = h.len();
        let secs = elapsed.as_secs_f64();
        Self {
            ops,
            errors,
            per_sec: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
            mean_us: if ops == 0 { 0.0 } else { h.mean() },
            p50_us: if ops == 0 { 0 } else { h.value_at_quantile(0.50) },
            p99_us: if ops == 0 { 0 } else { h.value_at_quantile(0.99) },
            p999_us: if ops == 0 { 0 } else { h.value_at_quantile(0.999) },
        }
    }
}

/// A latency in microseconds for a table cell: `0.90 ms`, `12.3 ms`, `102 ms`, `1.25 s`.
pub fn fmt_latency(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// A rate for a table cell with thousands separators: `6,948/s`.
pub fn fmt_rate(per_sec: f64) -> String {
    let n = per_sec.round() as u64;
    let digits = n.to_string();
    // The leading group has 1-3 digits, every later group 3.
    let head = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        r => r,
    };
    let mut out = digits[..head].to_string();
    for group in digits.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).unwrap_or_default());
    }
    out + "/s"
}

/// `a / b` as a table cell (`0.39×`), or `–` when `b` is missing or zero.
pub fn fmt_ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_string(),
    }
}

/// A process's resource use so far, from /proc.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcStats {
    /// User + system CPU seconds since the process started.
    pub cpu_secs: f64,
    /// Peak resident set size (VmHWM) in KiB.
    pub peak_rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`; `None` if the process is gone or the files
/// do not parse.
pub fn proc_stats(pid: u32) -> Option<ProcStats> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcStats { cpu_secs: cpu_secs_from_stat(&stat, clock_ticks())?, peak_rss_kib: vm_hwm_kib(&status)? })
}

/// utime + stime (fields 14 and 15 of proc(5)'s stat) in seconds. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
fn cpu_secs_from_stat(stat: &str, ticks_per_sec: u64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the `)`, index 0 is field 3 (state): field 14 is index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / ticks_per_sec as f64)
}

/// `VmHWM:` of /proc/<pid>/status in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux if that fails).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_cells_keep_three_significant_figures() {
        assert_eq!(fmt_latency(900), "0.90 ms");
        assert_eq!(fmt_latency(1_254), "1.25 ms");
        assert_eq!(fmt_latency(21_300), "21.3 ms");
        assert_eq!(fmt_latency(102_400), "102 ms");
        assert_eq!(fmt_latency(1_250_000), "1.25 s");
    }

    #[test]
    fn rates_have_thousands_separators_and_ratios_handle_missing_etcd() {
        assert_eq!(fmt_rate(6948.4), "6,948/s");
        assert_eq!(fmt_rate(751.0), "751/s");
        assert_eq!(fmt_rate(0.0), "0/s");
        assert_eq!(fmt_rate(12_345.0), "12,345/s");
        assert_eq!(fmt_rate(1_234_567.0), "1,234,567/s");
        assert_eq!(fmt_ratio(2738.0, Some(6948.0)), "0.39×");
        assert_eq!(fmt_ratio(1.0, None), "–");
        assert_eq!(fmt_ratio(1.0, Some(0.0)), "–");
    }

    #[test]
    fn summary_percentiles_come_from_the_histogram() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us));
        }
        let s = Summary::of(&h, 2, Duration::from_secs(2));
        assert_eq!((s.ops, s.errors), (1000, 2));
        assert!((s.per_sec - 500.0).abs() < 1e-9);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.p999_us, 999);
        // Zero and over-range samples are clamped, not dropped.
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(3600));
        assert_eq!(h.len(), 1002);
        assert_eq!(Summary::of(&new_histogram(), 0, Duration::from_secs(1)), Summary::default());
    }

    #[test]
    fn proc_stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis; utime 250, stime 50 ticks.
        let stat = "1234 (con cord) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 5 0 0";
        assert_eq!(cpu_secs_from_stat(stat, 100), Some(3.0));
        assert_eq!(cpu_secs_from_stat("garbage", 100), None);
        let status = "Name:\tconcord\nVmPeak:\t  900 kB\nVmHWM:\t  156000 kB\nVmRSS:\t 150000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(156_000));
        // This test process exists, so its own figures parse.
        assert!(proc_stats(std::process::id()).is_some_and(|p| p.peak_rss_kib > 0));
    }
}
