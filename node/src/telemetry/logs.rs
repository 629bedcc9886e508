//! Log policy and the live log stream.
//!
//! Policy ([`LogPolicy`]): Concord's own events at the operator's level (`-log-level`, Consul's
//! names: trace, debug, info, warn, err); openraft's chatter only at `debug` and below. At `info`
//! and above, openraft's ERRORs still surface — except the network errors it prints for every
//! failed RPC to an unreachable peer (several a second per peer), which Concord reports itself,
//! once and then summarised ([`crate::server::events`]).
//!
//! Stream ([`hub`]): the `concord` binary installs a `tracing` layer that formats each event once
//! and publishes it here; `GET /v1/agent/monitor` subscribes. `tracing` is process-global, so the
//! hub is too; in the simulator nobody publishes and a monitor stream stays silent.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::{Level, Metadata};

/// Lines buffered for a slow `monitor` reader before it starts losing the oldest.
pub const MONITOR_BUFFER_LINES: usize = 1024;

/// A log level as Consul names it (`-log-level`, `?loglevel=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

impl LogLevel {
    /// Parses Consul's level names (`trace`, `debug`, `info`, `warn`, `err`/`error`), any case.
    /// Errors: an unknown name, with the accepted ones.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "trace" => Ok(Self::Trace),
            "debug" => Ok(Self::Debug),
            "info" => Ok(Self::Info),
            "warn" | "warning" => Ok(Self::Warn),
            "err" | "error" => Ok(Self::Error),
            other => Err(format!("Invalid log level: {other:?}. Valid log levels are: [TRACE DEBUG INFO WARN ERR]")),
        }
    }

    /// The `tracing` level.
    pub fn tracing(self) -> Level {
        match self {
            Self::Error => Level::ERROR,
            Self::Warn => Level::WARN,
            Self::Info => Level::INFO,
            Self::Debug => Level::DEBUG,
            Self::Trace => Level::TRACE,
        }
    }

    fn from_tracing(level: &Level) -> Self {
        match *level {
            Level::ERROR => Self::Error,
            Level::WARN => Self::Warn,
            Level::INFO => Self::Info,
            Level::DEBUG => Self::Debug,
            _ => Self::Trace,
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        [Self::Error, Self::Warn, Self::Info, Self::Debug, Self::Trace].into_iter().find(|l| *l as u8 == v)
    }

    /// Consul's bracketed label: `[INFO] `, `[ERROR]`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Error => "[ERROR]",
            Self::Warn => "[WARN] ",
            Self::Info => "[INFO] ",
            Self::Debug => "[DEBUG]",
            Self::Trace => "[TRACE]",
        }
    }
}

/// openraft messages that are network noise: every failed RPC to a down peer logs one of these,
/// several times a second (openraft 0.9.25: `replication/mod.rs`, `core/raft_core.rs`).
const OPENRAFT_NETWORK_NOISE: [&str; 7] = [
    "RPCError",
    "error replication to target",
    "while requesting vote",
    "timeout",
    "heartbeat error",
    "InstallSnapshot RPC",
    "error sending InstallSnapshot",
];

fn is_openraft(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("openraft")
}

/// Which events reach a log output at `level`.
#[derive(Clone, Copy, Debug)]
pub struct LogPolicy {
    pub level: LogLevel,
}

impl LogPolicy {
    /// Whether events from this callsite can pass (before looking at the message).
    pub fn allows(&self, meta: &Metadata<'_>) -> bool {
        let event_level = LogLevel::from_tracing(meta.level());
        if is_openraft(meta) && self.level < LogLevel::Debug {
            // Library chatter is DEBUG; only its errors surface at info and above.
            return event_level == LogLevel::Error;
        }
        event_level <= self.level
    }

    /// Whether this event passes: [`LogPolicy::allows`], and at info and above not openraft's
    /// per-RPC network errors.
    pub fn allows_event(&self, event: &tracing::Event<'_>) -> bool {
        let meta = event.metadata();
        if !self.allows(meta) {
            return false;
        }
        if is_openraft(meta) && self.level < LogLevel::Debug {
            let mut message = MessageVisitor::default();
            event.record(&mut message);
            return !OPENRAFT_NETWORK_NOISE.iter().any(|noise| message.0.contains(noise));
        }
        true
    }
}

#[derive(Default)]
struct MessageVisitor(String);

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.push_str(&format!("{value:?}"));
        }
    }
}

/// A `tracing-subscriber` per-layer filter applying a fixed [`LogPolicy`].
pub struct PolicyFilter(pub LogPolicy);

impl<S> tracing_subscriber::layer::Filter<S> for PolicyFilter {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        self.0.allows(meta)
    }
    fn event_enabled(&self, event: &tracing::Event<'_>, _cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        self.0.allows_event(event)
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::from_level(self.0.level.tracing()))
    }
}

/// One log event, formatted once both ways, and its level.
#[derive(Clone, Debug)]
pub struct LogLine {
    pub level: LogLevel,
    /// The line as text, without a trailing newline (`<time> [LEVEL] <module>: <message>: k=v`).
    pub text: String,
    /// The line as one JSON object, without a trailing newline, in Consul's `-log-json` shape
    /// (`{"@level":"info","@message":…,"@module":…,"@timestamp":…, field: value…}`).
    pub json: String,
}

/// The process's live log stream: lines published by the binary's log layer, read by
/// `/v1/agent/monitor` subscribers, each at its own level.
pub struct LogHub {
    tx: tokio::sync::broadcast::Sender<LogLine>,
    /// The most verbose level any subscriber asked for (0: no subscriber).
    max_level: AtomicU8,
    subscribers: AtomicUsize,
    /// Levels of the current subscribers, to recompute `max_level` when one leaves.
    levels: std::sync::Mutex<Vec<LogLevel>>,
}

/// The process-wide log hub.
pub fn hub() -> &'static LogHub {
    static HUB: OnceLock<LogHub> = OnceLock::new();
    HUB.get_or_init(|| LogHub {
        tx: tokio::sync::broadcast::channel(MONITOR_BUFFER_LINES).0,
        max_level: AtomicU8::new(0),
        subscribers: AtomicUsize::new(0),
        levels: std::sync::Mutex::new(Vec::new()),
    })
}

impl LogHub {
    /// The most verbose level any current subscriber wants, if any subscriber exists.
    pub fn max_level(&self) -> Option<LogLevel> {
        LogLevel::from_u8(self.max_level.load(Ordering::Relaxed))
    }

    /// Publishes a line (dropped when nobody listens).
    pub fn publish(&self, line: LogLine) {
        if self.subscribers.load(Ordering::Relaxed) > 0 {
            let _ = self.tx.send(line);
        }
    }

    /// Subscribes at `level`, receiving lines as text or (`json`) as JSON objects; the
    /// subscription ends when the returned guard drops.
    pub fn subscribe(&'static self, level: LogLevel, json: bool) -> Subscription {
        let rx = self.tx.subscribe();
        {
            let mut levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
            levels.push(level);
            self.update_max(&levels);
        }
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        Subscription { hub: self, level, json, rx }
    }

    fn update_max(&self, levels: &[LogLevel]) {
        let max = levels.iter().max().map(|l| *l as u8).unwrap_or(0);
        if self.max_level.swap(max, Ordering::Relaxed) != max {
            // Callsites cache whether they are enabled; a new level must be seen by all of them.
            tracing::callsite::rebuild_interest_cache();
        }
    }
}

/// A live subscription to the [`LogHub`] at one level.
pub struct Subscription {
    hub: &'static LogHub,
    pub level: LogLevel,
    /// Whether lines are delivered in their JSON form.
    pub json: bool,
    rx: tokio::sync::broadcast::Receiver<LogLine>,
}

impl Subscription {
    /// The next line at this subscription's level; `None` when the hub is gone. Lines lost to a
    /// full buffer are reported as one line saying how many.
    pub async fn next(&mut self) -> Option<String> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match self.rx.recv().await {
                Ok(line) if line.level <= self.level => return Some(if self.json { line.json } else { line.text }),
                Ok(_) => continue,
                Err(RecvError::Lagged(n)) => {
                    let message = format!("{n} log lines dropped (reader too slow)");
                    return Some(if self.json {
                        serde_json::json!({"@level": "warn", "@module": "monitor", "@message": message}).to_string()
                    } else {
                        format!("[WARN]  monitor: {message}")
                    });
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.subscribers.fetch_sub(1, Ordering::Relaxed);
        let mut levels = self.hub.levels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = levels.iter().position(|l| *l == self.level) {
            levels.swap_remove(i);
        }
        self.hub.update_max(&levels);
    }
}

/// A per-layer filter for the monitor layer: passes what the most verbose subscriber wants, under
/// the same policy as the log output (nothing when nobody is subscribed).
pub struct MonitorFilter;

impl<S> tracing_subscriber::layer::Filter<S> for MonitorFilter {
    fn enabled(&self, meta: &Metadata<'_>, _cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        hub().max_level().is_some_and(|level| LogPolicy { level }.allows(meta))
    }
    fn event_enabled(&self, event: &tracing::Event<'_>, _cx: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        hub().max_level().is_some_and(|level| LogPolicy { level }.allows_event(event))
    }
    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        match hub().max_level() {
            Some(level) if LogPolicy { level }.allows(meta) => tracing::subscriber::Interest::sometimes(),
            _ => tracing::subscriber::Interest::never(),
        }
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(match hub().max_level() {
            Some(level) => tracing::level_filters::LevelFilter::from_level(level.tracing()),
            None => tracing::level_filters::LevelFilter::OFF,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consul_level_names_parse() {
        assert_eq!(LogLevel::parse("ERR").unwrap(), LogLevel::Error);
        assert_eq!(LogLevel::parse("warn").unwrap(), LogLevel::Warn);
        assert_eq!(LogLevel::parse("Trace").unwrap(), LogLevel::Trace);
        assert!(LogLevel::parse("loud").unwrap_err().contains("Valid log levels"));
    }
}
