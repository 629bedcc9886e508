//! Consul's JSON metrics shape (`GET /v1/agent/metrics`), built from the Prometheus exposition.
//!
//! Consul's in-memory sink answers `{"Timestamp","Gauges":[{Name,Value,Labels}],"Points":[],
//! "Counters":[{Name,Count,Rate,Sum,Min,Max,Mean,Stddev,Labels}],"Samples":[same]}` for its last
//! 10-second interval. Concord's metrics are cumulative since start, so counters report their
//! total as `Count` and `Sum`, and samples (histograms) report `Count`, `Sum` and `Mean`; `Rate`,
//! `Min`, `Max` and `Stddev` are not tracked and are 0 (`Min`/`Max` of a sample are its mean).
//! Names are Consul's dotted form up to the subsystem: `consul_raft_term` becomes `consul.raft.term`,
//! `consul_kvs_apply` becomes `consul.kvs.apply`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// One parsed exposition line: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses `name{k="v",...} value` (label values may contain escaped quotes and braces).
fn parse_sample(line: &str) -> Option<Sample> {
    let (name_end, labels, rest) = match line.find('{') {
        Some(open) => {
            let mut labels = BTreeMap::new();
            let mut chars = line[open + 1..].char_indices();
            let mut key = String::new();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = Some(open + 1 + i + 1);
                        break;
                    }
                    ',' | ' ' => {}
                    '=' => {
                        let mut value = String::new();
                        chars.next(); // the opening quote
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(other) => value.push(other),
                                    None => return None,
                                },
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
            (open, labels, &line[end?..])
        }
        None => {
            let sp = line.find(' ')?;
            (sp, BTreeMap::new(), &line[sp..])
        }
    };
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some((line[..name_end].to_string(), labels, value))
}

fn dotted(name: &str) -> String {
    name.replacen('_', ".", 2)
}

fn labels_json(labels: &BTreeMap<String, String>) -> Value {
    Value::Object(labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<_, _>>())
}

/// Converts a Prometheus text exposition into Consul's JSON; `timestamp` is Consul's
/// `2006-01-02 15:04:05 +0000 UTC` form.
pub fn from_prometheus(text: &str, timestamp: &str) -> Value {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut gauges = Vec::new();
    let mut counters = Vec::new();
    // (base name, labels) → (count, sum)
    let mut histos: BTreeMap<(String, BTreeMap<String, String>), (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((name, labels, value)) = parse_sample(line) else { continue };
        let family_of = |suffix: &str| name.strip_suffix(suffix).filter(|base| types.get(*base).is_some_and(|t| t == "histogram"));
        if let Some(base) = family_of("_sum") {
            histos.entry((base.to_string(), labels)).or_default().1 = value;
        } else if let Some(base) = family_of("_count") {
            histos.entry((base.to_string(), labels)).or_default().0 = value;
        } else if family_of("_bucket").is_some() {
        } else if let Some(base) = name.strip_suffix("_total").filter(|_| types.get(&name).is_some_and(|t| t == "counter")) {
            counters.push(json!({
                "Name": dotted(base), "Count": value, "Rate": 0.0, "Sum": value, "Min": 0.0, "Max": 0.0,
                "Mean": 0.0, "Stddev": 0.0, "Labels": labels_json(&labels),
            }));
        } else {
            gauges.push(json!({ "Name": dotted(&name), "Value": value, "Labels": labels_json(&labels) }));
        }
    }
    let samples: Vec<Value> = histos
        .into_iter()
        .map(|((base, labels), (count, sum))| {
            let mean = if count > 0.0 { sum / count } else { 0.0 };
            json!({
                "Name": dotted(&base), "Count": count, "Rate": 0.0, "Sum": sum, "Min": mean, "Max": mean,
                "Mean": mean, "Stddev": 0.0, "Labels": labels_json(&labels),
            })
        })
        .collect();
    json!({ "Timestamp": timestamp, "Gauges": gauges, "Points": [], "Counters": counters, "Samples": samples })
}

/// Formats a wall-clock time as Go's `time.Time.String()` in UTC, as Consul's metrics do:
/// `2026-11-25 17:00:44 +0000 UTC`.
pub fn go_utc(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_and_histograms_map_to_consul_sections() {
        let text = "# TYPE consul_kvs_apply_total counter\nconsul_kvs_apply_total{verb=\"set\"} 3\n\
                    # TYPE consul_raft_term gauge\nconsul_raft_term 7\n\
                    # TYPE consul_http_request_duration_seconds histogram\n\
                    consul_http_request_duration_seconds_sum{method=\"GET\",path=\"/v1/kv/*key\"} 0.5\n\
                    consul_http_request_duration_seconds_count{method=\"GET\",path=\"/v1/kv/*key\"} 2\n\
                    consul_http_request_duration_seconds_bucket{le=\"+Inf\",method=\"GET\",path=\"/v1/kv/*key\"} 2\n";
        let v = from_prometheus(text, "t");
        assert_eq!(v["Counters"][0]["Name"], "consul.kvs.apply");
        assert_eq!(v["Counters"][0]["Count"], 3.0);
        assert_eq!(v["Counters"][0]["Labels"]["verb"], "set");
        assert_eq!(v["Gauges"][0]["Name"], "consul.raft.term");
        assert_eq!(v["Gauges"][0]["Value"], 7.0);
        assert_eq!(v["Samples"][0]["Name"], "consul.http.request_duration_seconds");
        assert_eq!(v["Samples"][0]["Mean"], 0.25);
        assert_eq!(v["Samples"][0]["Labels"]["path"], "/v1/kv/*key");
        assert_eq!(v["Samples"].as_array().map(Vec::len), Some(1), "buckets are not samples");
    }

    #[test]
    fn go_time_format_in_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_626_044);
        assert_eq!(go_utc(t), "2026-11-25 17:00:44 +0000 UTC");
    }
}
