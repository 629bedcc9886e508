//! Where a Concord write's time goes, from the servers' own timers: each server's
//! `/v1/agent/metrics?format=prometheus` is read before and after a PUT row, and the deltas of
//! the HTTP handler, Raft commit, log fsync and state-machine apply histograms give mean times and
//! how many fsyncs and apply batches each write cost (below 1: writes were grouped).

use std::fmt::Write as _;

use crate::http::curl;

/// Sum (seconds) and count of the observations of one histogram.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SumCount {
    /// Sum of the observations, in seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

impl SumCount {
    fn minus(self, before: SumCount) -> SumCount {
        SumCount { sum: self.sum - before.sum, count: self.count - before.count }
    }

    /// Mean observation in microseconds (0 when nothing was observed).
    pub fn mean_us(self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count * 1e6
        } else {
            0.0
        }
    }
}

/// `<name>_sum` and `<name>_count` of a Prometheus text exposition, summed over every series
/// whose labels contain all of `labels` (e.g. `method="PUT"`).
pub fn histogram_sum_count(text: &str, name: &str, labels: &[&str]) -> SumCount {
    let mut out = SumCount::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let (metric, series_labels) = series.split_once('{').unwrap_or((series, ""));
        if !labels.iter().all(|l| series_labels.contains(l)) {
            continue;
        }
        let Ok(v) = value.trim().parse::<f64>() else { continue };
        match metric.strip_prefix(name) {
            Some("_sum") => out.sum += v,
            Some("_count") => out.count += v,
            _ => {}
        }
    }
    out
}

/// One server's write-path timers at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WriteTimers {
    /// `PUT /v1/kv/*key` handler time (on a follower this includes forwarding to the leader).
    pub http_put: SumCount,
    /// Leader: proposal to commit and apply (`consul.raft.commitTime`).
    pub commit: SumCount,
    /// Raft log fsyncs.
    pub fsync: SumCount,
    /// State-machine apply batches.
    pub apply: SumCount,
}

impl WriteTimers {
    /// Parses the four histograms out of a Prometheus text exposition.
    pub fn parse(text: &str) -> Self {
        Self {
            http_put: histogram_sum_count(text, "consul_http_request_duration_seconds", &["method=\"PUT\"", "path=\"/v1/kv/*key\""]),
            commit: histogram_sum_count(text, "consul_raft_commit_time_seconds", &[]),
            fsync: histogram_sum_count(text, "consul_raft_fsync_time_seconds", &[]),
            apply: histogram_sum_count(text, "consul_raft_fsm_apply_time_seconds", &[]),
        }
    }

    /// Reads server `http_port`'s metrics. Errors: the request fails or is not a 200.
    pub fn scrape(http_port: u16) -> Result<Self, String> {
        let r = curl("GET", &format!("http://127.0.0.1:{http_port}/v1/agent/metrics?format=prometheus"), None)?;
        if r.status != 200 {
            return Err(format!("metrics: status {}", r.status));
        }
        Ok(Self::parse(&r.text()))
    }

    /// What happened between `before` and `self`.
    pub fn minus(self, before: WriteTimers) -> WriteTimers {
        WriteTimers {
            http_put: self.http_put.minus(before.http_put),
            commit: self.commit.minus(before.commit),
            fsync: self.fsync.minus(before.fsync),
            apply: self.apply.minus(before.apply),
        }
    }
}

/// One breakdown row: a PUT row's client view and each server's timers (leader first).
#[derive(Clone, Debug)]
pub struct Breakdown {
    /// Servers in the cluster.
    pub servers: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Successful writes and their mean client-side latency.
    pub writes: u64,
    /// Mean client-side PUT latency in microseconds.
    pub client_mean_us: f64,
    /// Each server's timer deltas over the row, leader first.
    pub per_server: Vec<WriteTimers>,
}

/// The breakdown table: mean client latency, then leader and follower timers with per-write
/// fsync and apply-batch counts.
pub fn breakdown_table(rows: &[Breakdown]) -> String {
    let mut t = String::from(
        "| servers | clients | writes | client mean | leader: HTTP PUT handler | leader: commit (propose→applied) | leader: fsync mean, fsyncs/write | apply batch mean, batches/write | followers: HTTP PUT (incl. forward) | followers: fsync mean, fsyncs/write |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    let ms = |us: f64| format!("{:.2} ms", us / 1000.0);
    for b in rows {
        let w = b.writes.max(1) as f64;
        let Some(leader) = b.per_server.first() else { continue };
        let followers = &b.per_server[1..];
        let fold = |f: fn(&WriteTimers) -> SumCount| {
            followers.iter().map(f).fold(SumCount::default(), |a, x| SumCount { sum: a.sum + x.sum, count: a.count + x.count })
        };
        let (f_http, f_fsync) = (fold(|t| t.http_put), fold(|t| t.fsync));
        let follower_cells = if followers.is_empty() {
            "– | –".to_string()
        } else {
            format!(
                "{} ({:.0}) | {}, {:.2}",
                ms(f_http.mean_us()),
                f_http.count,
                ms(f_fsync.mean_us()),
                f_fsync.count / w / followers.len() as f64
            )
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} ({:.0}) | {} | {}, {:.2} | {}, {:.2} | {follower_cells} |",
            b.servers,
            b.clients,
            b.writes,
            ms(b.client_mean_us),
            ms(leader.http_put.mean_us()),
            leader.http_put.count,
            ms(leader.commit.mean_us()),
            ms(leader.fsync.mean_us()),
            leader.fsync.count / w,
            ms(leader.apply.mean_us()),
            leader.apply.count / w,
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP consul_raft_fsync_time_seconds Time to fsync\n\
        # TYPE consul_raft_fsync_time_seconds histogram\n\
        consul_raft_fsync_time_seconds_sum 0.5\n\
        consul_raft_fsync_time_seconds_count 100\n\
        consul_raft_fsync_time_seconds_bucket{le=\"0.005\"} 90\n\
        consul_http_request_duration_seconds_sum{method=\"PUT\",path=\"/v1/kv/*key\"} 2.0\n\
        consul_http_request_duration_seconds_count{method=\"PUT\",path=\"/v1/kv/*key\"} 1000\n\
        consul_http_request_duration_seconds_sum{method=\"GET\",path=\"/v1/kv/*key\"} 9.0\n\
        consul_http_request_duration_seconds_count{method=\"GET\",path=\"/v1/kv/*key\"} 9\n";

    #[test]
    fn histograms_are_summed_over_matching_series_only() {
        let t = WriteTimers::parse(TEXT);
        assert_eq!(t.fsync, SumCount { sum: 0.5, count: 100.0 });
        assert_eq!(t.http_put, SumCount { sum: 2.0, count: 1000.0 });
        assert_eq!(t.commit, SumCount::default());
        assert!((t.http_put.mean_us() - 2000.0).abs() < 1e-6);
        assert_eq!(SumCount::default().mean_us(), 0.0);
        let d = t.minus(WriteTimers { fsync: SumCount { sum: 0.1, count: 20.0 }, ..Default::default() });
        assert_eq!(d.fsync.count, 80.0);
    }

    #[test]
    fn breakdown_rows_divide_by_writes() {
        let t = WriteTimers::parse(TEXT);
        let b = Breakdown { servers: 3, clients: 64, writes: 1000, client_mean_us: 2500.0, per_server: vec![t, t, t] };
        let table = breakdown_table(&[b]);
        let row = table.lines().nth(2).expect("one row");
        assert_eq!(row, "| 3 | 64 | 1000 | 2.50 ms | 2.00 ms (1000) | 0.00 ms | 5.00 ms, 0.10 | 0.00 ms, 0.00 | 2.00 ms (2000) | 5.00 ms, 0.10 |");
    }
}
