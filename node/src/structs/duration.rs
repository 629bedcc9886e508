//! Go duration strings as Consul reads and prints them (`10s`, `1m30s`, `500ms`): `?wait=`, and
//! check `Interval`, `Timeout`, `TTL` and `DeregisterCriticalServiceAfter`.
//!
//! Source: Go `time.ParseDuration` and `time.Duration.String`, which Consul uses for both.

use std::time::Duration;

/// Parses a Go duration string: a sequence of `<number><unit>` with units ns, us, µs, ms, s, m, h
/// (e.g. `10s`, `1m30s`, `1.5s`). A bare number is taken as seconds, as Consul's `wait` accepts.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    if !total.is_finite() || total < 0.0 || total > 1e9 {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

/// Prints a duration as Go's `time.Duration.String` does: `0s`, `500ms`, `10s`, `1m30s`,
/// `1h0m0s`, `1.5s` (Consul shows check intervals and timeouts this way).
pub fn format_go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, scale) = if ns < 1_000 {
            ("ns", 1u128)
        } else if ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", trim_fraction(ns, scale));
    }
    let total_s = ns / 1_000_000_000;
    let (h, m) = (total_s / 3600, (total_s % 3600) / 60);
    let s = trim_fraction(ns % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `value / scale` with its fractional digits, trailing zeros dropped.
fn trim_fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        let cases = [(0, "0s"), (500, "500ms"), (1_500, "1.5s"), (10_000, "10s"), (90_000, "1m30s"), (3_600_000, "1h0m0s")];
        for (ms, want) in cases {
            assert_eq!(format_go_duration(Duration::from_millis(ms)), want);
            assert_eq!(parse_go_duration(want), Some(Duration::from_millis(ms)));
        }
    }
}
