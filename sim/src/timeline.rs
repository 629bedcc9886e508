//! The timeline: one self-contained HTML page showing a run's operations per client on a shared
//! simulated-time axis, beneath a lane per server showing its Raft role, term, crashes and
//! restarts ([`crate::server_lanes`]), with nemesis events as vertical markers and the ops of a
//! minimal failing sub-history outlined in red. Hosts are named (`s2`), never shown by address.
//! No external assets and no `<script>`: positions are CSS custom properties (in ms) scaled by
//! `--z` (px per ms), which a range input's inline handler sets.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use checker::linearizable::Violation;
use checker::{OkResult, Op, OpFn, Outcome};

use crate::run::RunResult;
use crate::server_lanes::{server_lanes, Phase, ServerLane};

/// Default scale: 1 px per 10 ms, reduced so the page is at most this wide at zoom 1.
const DEFAULT_PX_PER_MS: f64 = 0.1;
const MAX_DEFAULT_WIDTH_PX: f64 = 20_000.0;
const AXIS_H: usize = 26;
const LANE_H: usize = 28;

const CSS: &str = "body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}\
h1{font-size:18px;margin:0 0 8px}code,pre{background:#f4f4f4;padding:1px 4px}pre{white-space:pre-wrap}\
.wrap{display:flex;border:1px solid #ccc}.names{flex:none;width:64px;border-right:1px solid #ccc;background:#fafafa}\
.names div{height:28px;line-height:28px;padding-left:6px;font-weight:600}.scroll{overflow-x:auto;flex:1}\
#tl{position:relative;width:calc(var(--e)*var(--z)*1px + 60px)}\
#tl>div{position:absolute;box-sizing:border-box}\
.lane{left:0;right:0;height:28px;border-top:1px solid #eee}\
.tk{top:0;bottom:0;border-left:1px solid #eee;left:calc(var(--l)*var(--z)*1px);font-size:10px;color:#888;padding-left:2px}\
.op{left:calc(var(--l)*var(--z)*1px);width:calc(var(--w)*var(--z)*1px);min-width:2px;height:18px;\
font-size:11px;line-height:18px;white-space:nowrap;overflow:hidden;color:#fff;padding:0 2px;z-index:2;border-radius:2px}\
.ok{background:#2e9d4f}.fail{background:#9a9a9a}\
.info{z-index:1;color:#7a4a00;background:linear-gradient(to right,#f0a030 calc(var(--h)*var(--z)*1px),transparent 0),\
repeating-linear-gradient(45deg,rgba(240,160,48,.45) 0 3px,transparent 3px 8px)}\
.hl{outline:2px solid #e00;z-index:4}\
.f{top:0;bottom:0;width:7px;margin-left:-3px;left:calc(var(--l)*var(--z)*1px);border-left:2px dashed #8e44ad;z-index:3;\
font-size:10px;color:#8e44ad;padding-left:2px}.f.live{border-left-color:#2e9d4f;color:#2e9d4f}\
table{border-collapse:collapse;margin-top:6px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}\
.sw{display:inline-block;width:12px;height:10px;margin:0 4px 0 10px}\
.sv{left:calc(var(--l)*var(--z)*1px);width:calc(var(--w)*var(--z)*1px);height:18px;font-size:11px;line-height:18px;\
white-space:nowrap;overflow:hidden;padding:0 2px;border-right:1px solid #fff;background:#e4e4e4;color:#666}\
.sv.leader{background:#1f5fa8;color:#fff;font-weight:600}.sv.follower{background:#c9dcf0;color:#234}\
.sv.candidate{background:#f2c230;color:#432}.sv.down{background:repeating-linear-gradient(45deg,#555 0 4px,#777 4px 8px);color:#fff}\
.mk{top:0;left:calc(var(--l)*var(--z)*1px);margin-left:-5px;width:10px;font-size:12px;color:#c0392b;z-index:3;text-align:center}\
.names .srv{background:#eef3f9}";

/// Escapes text for HTML or XML element content and attribute values (also used by
/// [`crate::junit`]). Control characters XML 1.0 forbids even escaped become `?`.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn val(v: Option<u64>) -> String {
    v.map_or_else(|| "∅".to_string(), |v| v.to_string())
}

/// The short bar label: `w 300`, `r 300`, `r ∅`, `r ?`, `cas 5→7 ✓`, `del`.
fn label(op: &Op) -> String {
    match (&op.f, &op.outcome) {
        (OpFn::Read, Outcome::Ok(OkResult::Read(v))) => format!("r {}", val(*v)),
        (OpFn::Read, _) => "r ?".to_string(),
        (OpFn::Write(v), _) => format!("w {v}"),
        (OpFn::Cas { expect, new }, outcome) => {
            let mark = match outcome {
                Outcome::Ok(OkResult::Cas(true)) => "✓",
                Outcome::Ok(_) => "✗",
                _ => "?",
            };
            format!("cas {}→{new} {mark}", val(*expect))
        }
        (OpFn::Delete, _) => "del".to_string(),
        (OpFn::DeleteCas { expect }, outcome) => {
            let mark = match outcome {
                Outcome::Ok(OkResult::Cas(true)) => "✓",
                Outcome::Ok(_) => "✗",
                _ => "?",
            };
            format!("del {expect} {mark}")
        }
    }
}

fn outcome_text(o: &Outcome) -> &'static str {
    match o {
        Outcome::Ok(_) => "ok",
        Outcome::Fail => "fail",
        Outcome::Info => "info",
    }
}

/// The server an op went to (`?` if not recorded).
fn server(op: &Op) -> &str {
    op.server.as_deref().unwrap_or("?")
}

/// A read's mode (`consistent`, `blocking index=4 wait=200ms`, …); empty for writes.
fn mode(op: &Op) -> String {
    if op.f == OpFn::Read { op.mode.label() } else { String::new() }
}

/// A one-line description of an op, for hover titles and the highlight table.
fn describe(op: &Op) -> String {
    let done = match op.outcome {
        Outcome::Info => format!("gave up at {:.3}ms (may take effect any time later)", ms(op.complete_ns)),
        _ => format!("completed {:.3}ms", ms(op.complete_ns)),
    };
    let mode = match mode(op) {
        m if m.is_empty() => m,
        m => format!(" ({m})"),
    };
    format!(
        "#{} {} via {} {} {}{mode} {}: invoked {:.3}ms, {done}",
        op.id,
        op.client_name(),
        server(op),
        op.key,
        label(op),
        outcome_text(&op.outcome),
        ms(op.invoke_ns)
    )
}

/// CSS class of a server segment.
fn phase_class(phase: Phase) -> &'static str {
    match phase {
        Phase::Role(concord_trace::RaftRole::Leader) => "leader",
        Phase::Role(concord_trace::RaftRole::Follower) => "follower",
        Phase::Role(concord_trace::RaftRole::Candidate) => "candidate",
        Phase::Down => "down",
        Phase::Role(_) | Phase::Starting => "other",
    }
}

/// The segments and marks of server lanes, the first at `top_px`, one [`LANE_H`] apart.
fn render_server_lanes(h: &mut String, lanes: &[ServerLane], top_px: usize, result: &RunResult) {
    for (row, lane) in lanes.iter().enumerate() {
        let top = top_px + row * LANE_H + 5;
        for s in &lane.segments {
            let leader = match s.leader {
                Some(id) => format!(", leader {}", result.host_names.name_hosts(&id.to_string())),
                None => String::new(),
            };
            let title = format!(
                "{} {} in term {}{leader}, {:.3}s to {:.3}s",
                lane.name,
                s.phase.long(),
                s.term,
                s.from_ms as f64 / 1e3,
                s.to_ms as f64 / 1e3
            );
            let _ = writeln!(
                h,
                "<div class=\"sv {}\" style=\"top:{top}px;--l:{};--w:{}\" title=\"{}\">{} t{}</div>",
                phase_class(s.phase),
                s.from_ms,
                s.to_ms - s.from_ms,
                esc(&title),
                s.phase.short(),
                s.term
            );
        }
        for m in &lane.marks {
            let title = format!("t={:.3}s {}", m.at_ms as f64 / 1e3, result.host_names.name_hosts(&m.what));
            let _ = writeln!(h, "<div class=\"mk\" style=\"top:{}px;--l:{}\" title=\"{}\">✕</div>", top - 5, m.at_ms, esc(&title));
        }
    }
}

/// A verdict summary from what the result and the highlight say (the judgement is not at hand).
fn verdict_summary(result: &RunResult, focus_key: Option<&str>, highlight: &[usize]) -> String {
    let mut parts = Vec::new();
    if !highlight.is_empty() {
        let key = focus_key.map_or_else(String::new, |k| format!(" on key {k:?}"));
        parts.push(format!("NOT LINEARIZABLE{key}: minimal failing sub-history of {} ops (outlined in red)", highlight.len()));
    }
    match result.live_at {
        Some(at) => parts.push(format!("liveness ok ({:.3}s after the final heal)", at.saturating_sub(result.healed_at).as_secs_f64())),
        None => parts.push("liveness NOT proven".to_string()),
    }
    if let Some(e) = &result.host_error {
        parts.push(format!("host FAILED: {}", result.host_names.name_hosts(e)));
    }
    parts.join("; ")
}

/// Renders the timeline page. `focus_key`: show only that key's ops (`None`: all keys);
/// `highlight`: op ids to outline in red and list (the minimal failing sub-history).
pub fn render_timeline(result: &RunResult, focus_key: Option<&str>, highlight: &[usize]) -> String {
    render(result, focus_key, highlight, None)
}

fn render(result: &RunResult, focus_key: Option<&str>, highlight: &[usize], detail: Option<&str>) -> String {
    let o = &result.options;
    let hl: BTreeSet<usize> = highlight.iter().copied().collect();
    let ops: Vec<&Op> = result.history.ops.iter().filter(|op| focus_key.is_none_or(|k| op.key == k)).collect();
    let end_ms = ops
        .iter()
        .map(|op| ms(op.complete_ns))
        .chain(result.faults.iter().map(|(at, _)| at.as_secs_f64() * 1e3))
        .fold(result.sim_elapsed.as_secs_f64() * 1e3, f64::max)
        .max(1.0);
    let z0 = DEFAULT_PX_PER_MS.min(MAX_DEFAULT_WIDTH_PX / end_ms);
    let mut lanes: BTreeMap<u32, usize> = ops.iter().map(|op| (op.client, 0)).collect();
    for (i, lane) in lanes.values_mut().enumerate() {
        *lane = i;
    }
    let servers = server_lanes(&result.servers, &result.trace, end_ms.ceil() as u64);
    let clients_top = AXIS_H + LANE_H * servers.len();
    let height = clients_top + LANE_H * lanes.len().max(1) + 4;
    let named = |text: &str| result.host_names.name_hosts(text);
    let scope = focus_key.map_or_else(|| "all keys".to_string(), |k| format!("key {k}"));

    let mut h = String::with_capacity(4096 + ops.len() * 200);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>concord sim seed {} {}</title><style>{CSS}</style></head><body>\n",
        o.seed,
        esc(&o.scenario)
    );
    let _ = writeln!(h, "<h1>concord sim — seed {} — scenario {} — {}</h1>", o.seed, esc(&o.scenario), esc(&scope));
    let _ = writeln!(h, "<div>options: <code>{}</code></div>", esc(&o.to_string()));
    if let Some(d) = &result.scenario_detail {
        let _ = writeln!(h, "<div>scenario options: <code>{}</code></div>", esc(d));
    }
    let _ = writeln!(h, "<div>replay: <code>{}</code></div>", esc(&o.replay_command()));
    let _ = writeln!(h, "<div>verdict: <b>{}</b></div>", esc(&verdict_summary(result, focus_key, highlight)));
    if let Some(d) = detail {
        let _ = writeln!(h, "<pre>{}</pre>", esc(&named(d)));
    }
    let (ok, fail, info) = ops.iter().fold((0, 0, 0), |c, op| match op.outcome {
        Outcome::Ok(_) => (c.0 + 1, c.1, c.2),
        Outcome::Fail => (c.0, c.1 + 1, c.2),
        Outcome::Info => (c.0, c.1, c.2 + 1),
    });
    let _ = writeln!(
        h,
        "<p>{} ops shown (ok {ok}, fail {fail}, info {info}); simulated {:.3}s.\
<span class=\"sw ok\"></span>ok<span class=\"sw fail\"></span>fail<span class=\"sw info\"></span>info (hatched: may take effect until the end)\
<span class=\"sw\" style=\"outline:2px solid #e00\"></span>failing sub-history\
<span class=\"sw\" style=\"border-left:2px dashed #8e44ad\"></span>nemesis<br>servers (<b>L</b>/<b>F</b>/<b>C</b> t<i>term</i>):\
<span class=\"sw\" style=\"background:#1f5fa8\"></span>leader<span class=\"sw\" style=\"background:#c9dcf0\"></span>follower\
<span class=\"sw\" style=\"background:#f2c230\"></span>candidate<span class=\"sw\" style=\"background:#666\"></span>crashed\
<span class=\"sw\" style=\"background:#e4e4e4\"></span>learner / starting; ✕ crash, restart or fatal error</p>",
        ops.len(),
        end_ms / 1e3
    );
    let _ = writeln!(
        h,
        "<p>zoom <input type=\"range\" min=\"-4\" max=\"8\" step=\"0.5\" value=\"0\" \
oninput=\"document.getElementById('tl').style.setProperty('--z',{z0}*Math.pow(2,this.value))\"> (hover a bar or marker for details)</p>"
    );

    // Lane names, then the scrolling timeline.
    let _ = write!(h, "<div class=\"wrap\"><div class=\"names\"><div style=\"height:{AXIS_H}px\"></div>");
    for lane in &servers {
        let _ = write!(h, "<div class=\"srv\">{}</div>", esc(&lane.name));
    }
    for client in lanes.keys() {
        let _ = write!(h, "<div>{}</div>", checker::history::client_name(*client));
    }
    let _ = writeln!(h, "</div><div class=\"scroll\"><div id=\"tl\" style=\"--z:{z0};--e:{end_ms:.3};height:{height}px\">");
    for i in 0..servers.len() + lanes.len() {
        let _ = writeln!(h, "<div class=\"lane\" style=\"top:{}px\"></div>", AXIS_H + i * LANE_H);
    }
    render_server_lanes(&mut h, &servers, AXIS_H, result);
    for s in 0..=(end_ms / 1e3) as u64 {
        let text = if s % 5 == 0 { format!("{s}s") } else { String::new() };
        let _ = writeln!(h, "<div class=\"tk\" style=\"--l:{}\">{text}</div>", s * 1000);
    }
    for (n, (at, what)) in result.faults.iter().enumerate() {
        let t = at.as_secs_f64();
        let _ = writeln!(h, "<div class=\"f\" style=\"--l:{:.3}\" title=\"t={t:.3}s {}\">{}</div>", t * 1e3, esc(&named(what)), n + 1);
    }
    if let Some(at) = result.live_at {
        let t = at.as_secs_f64();
        let _ = writeln!(h, "<div class=\"f live\" style=\"--l:{:.3}\" title=\"t={t:.3}s liveness proven\">live</div>", t * 1e3);
    }
    for op in &ops {
        let start = ms(op.invoke_ns);
        let top = clients_top + lanes[&op.client] * LANE_H + 5;
        let (class, width, extra) = match op.outcome {
            Outcome::Ok(_) => ("ok", ms(op.complete_ns) - start, String::new()),
            Outcome::Fail => ("fail", ms(op.complete_ns) - start, String::new()),
            Outcome::Info => ("info", end_ms - start, format!(";--h:{:.3}", ms(op.complete_ns.max(op.invoke_ns)) - start)),
        };
        let mark = if hl.contains(&op.id) { " hl" } else { "" };
        let text = if focus_key.is_none() { format!("{}: {}", op.key, label(op)) } else { label(op) };
        let _ = writeln!(
            h,
            "<div id=\"op{}\" class=\"op {class}{mark}\" style=\"top:{top}px;--l:{start:.3};--w:{:.3}{extra}\" title=\"{}\">{}</div>",
            op.id,
            width.max(0.0),
            esc(&describe(op)),
            esc(&text)
        );
    }
    h.push_str("</div></div></div>\n");
    if ops.is_empty() {
        h.push_str("<p>No operations on this key.</p>\n");
    }

    if !highlight.is_empty() {
        let _ = writeln!(h, "<h2>Minimal failing sub-history ({} ops)</h2>\n<table><tr><th>op</th><th>client</th><th>server</th><th>key</th><th>op</th><th>read mode</th><th>outcome</th><th>invoke ms</th><th>complete ms</th></tr>", hl.len());
        let mut listed: Vec<&Op> = result.history.ops.iter().filter(|op| hl.contains(&op.id)).collect();
        listed.sort_by_key(|op| (op.invoke_ns, op.id));
        for op in listed {
            let complete = match op.outcome {
                Outcome::Info => format!("never (gave up {:.3})", ms(op.complete_ns)),
                _ => format!("{:.3}", ms(op.complete_ns)),
            };
            let _ = writeln!(
                h,
                "<tr><td><a href=\"#op{0}\">#{0}</a></td><td>{1}</td><td>{7}</td><td>{2}</td><td>{3}</td><td>{8}</td><td>{4}</td><td>{5:.3}</td><td>{6}</td></tr>",
                op.id,
                op.client_name(),
                esc(&op.key),
                esc(&label(op)),
                outcome_text(&op.outcome),
                ms(op.invoke_ns),
                complete,
                esc(server(op)),
                esc(&mode(op)),
            );
        }
        h.push_str("</table>\n");
    }
    let _ = writeln!(h, "<h2>Nemesis ({} events)</h2>\n<ol>", result.faults.len());
    for (at, what) in &result.faults {
        let _ = writeln!(h, "<li>t={:.3}s {}</li>", at.as_secs_f64(), esc(&named(what)));
    }
    h.push_str("</ol>\n</body></html>\n");
    h
}

/// The file name for a run's timeline: `concord-sim-<scenario>-seed<seed>.html`.
pub fn timeline_file_name(result: &RunResult) -> String {
    let scenario: String =
        result.options.scenario.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("concord-sim-{scenario}-seed{}.html", result.options.seed)
}

/// Writes [`render_timeline`] to `dir/concord-sim-<scenario>-seed<seed>.html` (creating `dir`)
/// and returns the path.
pub fn write_timeline(result: &RunResult, focus_key: Option<&str>, highlight: &[usize], dir: &Path) -> std::io::Result<PathBuf> {
    write_page(result, dir, &render_timeline(result, focus_key, highlight))
}

/// Writes the timeline of a run's linearizability violations: focused on their key if they share
/// one (else all keys), their ops highlighted, their explanations in the header.
pub fn write_violation_timeline(result: &RunResult, violations: &[&Violation], dir: &Path) -> std::io::Result<PathBuf> {
    let keys: BTreeSet<&str> = violations.iter().map(|v| v.key.as_str()).collect();
    let focus = if keys.len() == 1 { keys.first().copied() } else { None };
    let ids: Vec<usize> = violations.iter().flat_map(|v| v.ops.iter().map(|op| op.id)).collect();
    let detail: Vec<String> = violations.iter().map(|v| format!("key {:?}:\n{}", v.key, v.explanation)).collect();
    write_page(result, dir, &render(result, focus, &ids, Some(&detail.join("\n\n"))))
}

fn write_page(result: &RunResult, dir: &Path, html: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(timeline_file_name(result));
    std::fs::write(&path, html)?;
    Ok(path)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use checker::History;

    use super::*;
    use crate::options::RunOptions;

    fn op(client: u32, key: &str, f: OpFn, t: (u64, u64), outcome: Outcome) -> Op {
        let ms = 1_000_000;
        Op { id: 0, client, key: key.into(), f, invoke_ns: t.0 * ms, complete_ns: t.1 * ms, outcome, server: Some(format!("s{client}")), mode: Default::default() }
    }

    fn sample() -> RunResult {
        let mut history = History::default();
        history.push(op(1, "k1", OpFn::Write(3000000260), (100, 120), Outcome::Ok(OkResult::Done)));
        history.push(op(2, "k1", OpFn::Read, (110, 130), Outcome::Ok(OkResult::Read(None))));
        history.push(op(1, "k0", OpFn::Write(7), (125, 140), Outcome::Ok(OkResult::Done)));
        history.push(op(2, "k1", OpFn::Cas { expect: Some(5), new: 7 }, (140, 900), Outcome::Info));
        history.push(op(3, "k1", OpFn::Delete, (150, 160), Outcome::Fail));
        history.push(op(3, "k1", OpFn::Read, (170, 180), Outcome::Ok(OkResult::Read(Some(3000000260)))));
        RunResult {
            options: RunOptions::derive(1, "partition-heal", 3, vec![], false),
            history,
            faults: vec![
                (Duration::from_millis(105), "partition [s1] | [s2, s3]".into()),
                (Duration::from_millis(1500), "evil <b>bold</b> & \"quoted\"".into()),
            ],
            trace_hash: 0,
            trace_events: 0,
            trace: vec![],
            live_at: Some(Duration::from_millis(2500)),
            healed_at: Duration::from_millis(2000),
            host_error: None,
            panic: None,
            sim_elapsed: Duration::from_secs(3),
            wall: Duration::from_millis(10),
            scenario_detail: Some("swarm <n=2>".into()),
            buggified: vec![],
            disturbed: vec![],
            servers: vec![],
            host_names: checker::HostNames::new(),
        }
    }

    /// [`sample`] with three servers: s1 leads term 2 until the nemesis crashes it at 1.5 s, s2
    /// then leads term 3; s3 follows throughout. Hosts are at 192.168.0.1..3.
    pub(crate) fn sample_with_servers() -> RunResult {
        use concord_trace::{Event, Nemesis, RaftRole, Record, NEMESIS};
        let mut r = sample();
        r.servers = vec!["s1".into(), "s2".into(), "s3".into()];
        let ip = |i: u8| std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 168, 0, i));
        r.host_names = crate::run::host_names(&[("s1".into(), ip(1)), ("s2".into(), ip(2)), ("s3".into(), ip(3))], &[]);
        let s1 = node::raft::node_id_for("s1");
        let s2 = node::raft::node_id_for("s2");
        let rec = |time_ms, who: &str, event| Record { time_ms, who: who.into(), event };
        let state = |term, role, leader| Event::RaftState { term, role, leader };
        r.trace = vec![
            rec(50, "s1", state(1, RaftRole::Candidate, None)),
            rec(60, "s1", state(2, RaftRole::Leader, Some(s1))),
            rec(70, "s2", state(2, RaftRole::Follower, Some(s1))),
            rec(70, "s3", state(2, RaftRole::Follower, Some(s1))),
            rec(1500, NEMESIS, Event::Nemesis(Nemesis::Crash { node: "s1".into(), torn: false })),
            rec(1800, "s2", state(3, RaftRole::Leader, Some(s2))),
        ];
        r.faults.push((Duration::from_millis(1600), "operator: PUT /v1/operator/raft/peer?node=s3&address=192.168.0.3:8300: done".into()));
        r
    }

    /// Issue 8: the timeline had no server lanes, so a stale read could not be lined up with the
    /// leader changes that explain it.
    #[test]
    fn timeline_has_a_lane_per_server_with_roles_terms_and_crashes() {
        let r = sample_with_servers();
        let html = render_timeline(&r, Some("k1"), &[1]);
        for name in ["s1", "s2", "s3"] {
            assert!(html.contains(&format!("<div class=\"srv\">{name}</div>")), "no lane name for {name}");
        }
        // Server lanes sit above the client lanes (the axis is 26 px, lanes 28 px).
        assert!(html.contains("<div class=\"sv leader\" style=\"top:31px;--l:60;--w:1440\" title=\"s1 leader in term 2, leader s1, 0.060s to 1.500s\">L t2</div>"), "{html}");
        assert!(html.contains("<div class=\"sv down\" style=\"top:31px;--l:1500;--w:1500\""), "s1 down to the end");
        assert!(html.contains("<div class=\"mk\" style=\"top:26px;--l:1500\" title=\"t=1.500s crash s1\">✕</div>"));
        assert!(html.contains("<div class=\"sv follower\" style=\"top:59px;--l:70;--w:1730\" title=\"s2 follower in term 2, leader s1,"));
        assert!(html.contains(">L t3</div>") && html.contains(">F t2</div>") && html.contains(">C t1</div>"));
        // Client lanes start below the three server lanes; w2's read #1 is in the second.
        assert!(html.contains("id=\"op1\" class=\"op ok hl\" style=\"top:143px;"), "{html}");
        // Fault text names servers instead of their addresses.
        assert!(html.contains("peer?node=s3&amp;address=s3: done"));
        assert!(!html.contains("192.168."), "an address leaked into the page");
    }

    #[test]
    fn timeline_renders_focused_key() {
        let r = sample();
        let html = render_timeline(&r, Some("k1"), &[1, 5]);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains(&esc(&r.options.replay_command())));
        assert!(html.contains(&esc(&r.options.to_string())));
        assert!(html.contains("NOT LINEARIZABLE on key"));
        assert!(html.contains("scenario options: <code>swarm &lt;n=2&gt;</code>"));
        // One element per op of k1 (ids 0, 1, 3, 4, 5), none for k0.
        assert_eq!(html.matches("class=\"op ").count(), 5);
        assert!(!html.contains("id=\"op2\""));
        for (id, class) in [(0, "op ok\""), (1, "op ok hl\""), (3, "op info\""), (4, "op fail\""), (5, "op ok hl\"")] {
            assert!(html.contains(&format!("id=\"op{id}\" class=\"{class}")), "op {id} should have class {class}");
        }
        assert!(html.contains(".hl{outline:2px solid #e00"));
        assert!(html.contains("<a href=\"#op1\">#1</a>") && html.contains("<a href=\"#op5\">#5</a>"));
        // Labels.
        for l in [">w 3000000260<", ">r ∅<", ">cas 5→7 ?<", ">del<", ">r 3000000260<"] {
            assert!(html.contains(l), "missing label {l}");
        }
        // Fault markers, escaped.
        assert_eq!(html.matches("class=\"f\"").count(), 2);
        assert!(html.contains("title=\"t=0.105s partition [s1] | [s2, s3]\""));
        assert!(html.contains("<div>w1</div>"), "lanes are named by host");
        assert!(html.contains("evil &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;"));
        assert!(!html.contains("<b>bold"));
        assert!(!html.contains("<script"));
        // The info op runs to the end of the run (3000 ms) with its head up to 900 ms.
        assert!(html.contains("--l:140.000;--w:2860.000;--h:760.000"));
    }

    #[test]
    fn timeline_all_keys_and_file() {
        let r = sample();
        let html = render_timeline(&r, None, &[]);
        assert_eq!(html.matches("class=\"op ").count(), r.history.ops.len());
        assert!(html.contains(">k0: w 7<"));
        assert!(!html.contains(" hl\"") && !html.contains("NOT LINEARIZABLE"));
        let dir = std::env::temp_dir().join(format!("concord-timeline-test-{}", std::process::id()));
        let path = write_timeline(&r, Some("k1"), &[1], &dir.join("sub")).unwrap();
        assert!(path.ends_with("concord-sim-partition-heal-seed1.html"));
        assert!(std::fs::read_to_string(&path).unwrap().contains("id=\"op1\" class=\"op ok hl\""));
        let v = Violation { key: "k1".into(), ops: vec![r.history.ops[1].clone()], explanation: "because <x>".into() };
        let path = write_violation_timeline(&r, &[&v], &dir).unwrap();
        let page = std::fs::read_to_string(&path).unwrap();
        assert!(page.contains("because &lt;x&gt;") && page.contains("id=\"op1\" class=\"op ok hl\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
