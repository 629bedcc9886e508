//! kv-bench's markdown tables: one row per (servers, clients, operation) with Concord's and etcd's
//! figures and the Concord/etcd throughput ratio, the fan-out rows, and per-server resources.

use std::fmt::Write as _;
use std::time::Duration;

use super::fanout::FanOut;
use super::load::Op;
use super::stats::{fmt_latency, fmt_rate, fmt_ratio, ProcStats, Summary};

/// One store's figures for one row.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Throughput and latency.
    pub summary: Summary,
    /// CPU seconds all server processes used during the row.
    pub cpu_secs: f64,
}

/// One table row.
#[derive(Clone, Debug)]
pub struct Row {
    /// Servers (or etcd members) in the cluster.
    pub servers: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// The operation.
    pub op: Op,
    /// Concord's figures.
    pub concord: Measured,
    /// etcd's, when it ran.
    pub etcd: Option<Measured>,
}

fn rate_cell(m: &Measured) -> String {
    let errors = if m.summary.errors > 0 { format!(" ({} errors)", m.summary.errors) } else { String::new() };
    format!("{}{errors}", fmt_rate(m.summary.per_sec))
}

fn latency_cell(s: &Summary) -> String {
    format!("{} / {} / {}", fmt_latency(s.p50_us), fmt_latency(s.p99_us), fmt_latency(s.p999_us))
}

/// The main table: throughput, p50/p99/p999, server CPU seconds, and the ratio.
pub fn rows_table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| servers | clients | load (Concord / etcd) | Concord | p50 / p99 / p999 | CPU s | etcd | p50 / p99 / p999 | CPU s | Concord/etcd |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let (e_rate, e_lat, e_cpu) = match &r.etcd {
            Some(e) => (rate_cell(e), latency_cell(&e.summary), format!("{:.2}", e.cpu_secs)),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {:.2} | {e_rate} | {e_lat} | {e_cpu} | {} |",
            r.servers,
            r.clients,
            r.op.label(),
            rate_cell(&r.concord),
            latency_cell(&r.concord.summary),
            r.concord.cpu_secs,
            fmt_ratio(r.concord.summary.per_sec, r.etcd.as_ref().map(|e| e.summary.per_sec)),
        );
    }
    t
}

/// One fan-out row: servers, Concord's outcome, etcd's (when it ran).
pub type FanOutRow = (usize, Result<FanOut, String>, Option<Result<FanOut, String>>);

/// Fan-out rows: `(servers, Concord, etcd)`. The ratio is etcd's time / Concord's time for the
/// last watcher (above 1: Concord answered everyone sooner).
pub fn fanout_table(rows: &[FanOutRow]) -> String {
    fn cell(f: &Result<FanOut, String>) -> String {
        match f {
            Ok(f) => format!(
                "{}/{} answered; all {} (p50 {}, p99 {}); write {}",
                f.answered,
                f.watchers,
                fmt_latency(micros(f.all)),
                fmt_latency(micros(f.p50)),
                fmt_latency(micros(f.p99)),
                fmt_latency(micros(f.write))
            ),
            Err(e) => format!("failed: {e}"),
        }
    }
    let mut t = String::from("| servers | Concord blocking GET `?index=` | etcd `/v3/watch` | etcd/Concord time to all |\n|---|---|---|---|\n");
    for (servers, concord, etcd) in rows {
        let ratio = match (concord, etcd) {
            (Ok(c), Some(Ok(e))) if c.answered == c.watchers && e.answered == e.watchers => {
                fmt_ratio(e.all.as_secs_f64(), Some(c.all.as_secs_f64()))
            }
            _ => "–".into(),
        };
        let e = etcd.as_ref().map_or("–".to_string(), cell);
        let _ = writeln!(t, "| {servers} | {} | {e} | {ratio} |", cell(concord));
    }
    t
}

/// Per-server resources over a whole configuration: CPU seconds and peak RSS (VmHWM).
pub fn resources_line(system: &str, servers: usize, procs: &[Option<ProcStats>]) -> String {
    let cells: Vec<String> = procs
        .iter()
        .map(|p| match p {
            Some(p) => format!("{:.1} CPU s, peak RSS {} MB", p.cpu_secs, p.peak_rss_kib / 1024),
            None => "gone".into(),
        })
        .collect();
    format!("| {servers} | {system} | {} |", cells.join("; "))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(per_sec: f64, errors: u64) -> Measured {
        let summary = Summary { ops: 100, errors, per_sec, mean_us: 1000.0, p50_us: 900, p99_us: 21_000, p999_us: 102_000 };
        Measured { summary, cpu_secs: 1.3 }
    }

    #[test]
    fn a_row_prints_both_stores_and_the_ratio() {
        let rows = [
            Row { servers: 3, clients: 64, op: Op::Put, concord: measured(2738.0, 0), etcd: Some(measured(6948.0, 2)) },
            Row { servers: 1, clients: 1, op: Op::GetStale, concord: measured(751.0, 0), etcd: None },
        ];
        let t = rows_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            "| 3 | 64 | PUT / put | 2,738/s | 0.90 ms / 21.0 ms / 102 ms | 1.30 | 6,948/s (2 errors) | 0.90 ms / 21.0 ms / 102 ms | 1.30 | 0.39× |"
        );
        assert!(lines[3].ends_with("| – | – | – | – |"), "{}", lines[3]);
    }

    #[test]
    fn fanout_ratio_only_when_everyone_answered() {
        let f = |all_ms: u64, answered| FanOut {
            watchers: 10,
            answered,
            all: Duration::from_millis(all_ms),
            p50: Duration::from_millis(1),
            p99: Duration::from_millis(2),
            write: Duration::from_millis(3),
        };
        let t = fanout_table(&[(1, Ok(f(50, 10)), Some(Ok(f(100, 10)))), (3, Ok(f(50, 9)), Some(Err("boom".into())))]);
        assert!(t.contains("| 1 | 10/10 answered; all 50.0 ms (p50 1.00 ms, p99 2.00 ms); write 3.00 ms |"), "{t}");
        assert!(t.contains("| 2.00× |"), "{t}");
        assert!(t.contains("| failed: boom | – |"), "{t}");
    }
}
