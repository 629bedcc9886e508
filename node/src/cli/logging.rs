//! Logging for `concord agent`: stderr output (text, or JSON with `-log-json`) under Concord's
//! [`LogPolicy`], and the layer that feeds `/v1/agent/monitor` ([`crate::telemetry::logs::hub`]).
//!
//! `CONCORD_LOG` or `RUST_LOG`, when set, replace the policy for stderr with a `tracing`
//! env-filter directive (for developers: `CONCORD_LOG=openraft=trace`).

use std::fmt::Write as _;

use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::telemetry::logs::{hub, LogLevel, LogLine, LogPolicy, MonitorFilter, PolicyFilter};

/// Environment variables read, in order, for a developer's filter override.
const LOG_ENV_VARS: [&str; 2] = ["CONCORD_LOG", "RUST_LOG"];

/// Installs the process's logging: stderr at `level` (or the env override), JSON when `json`,
/// plus the monitor layer. Colour only on a terminal. A second call does nothing.
pub fn init(level: LogLevel, json: bool) {
    use std::io::IsTerminal;
    let env_override = LOG_ENV_VARS
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
        .and_then(|spec| EnvFilter::try_new(spec).ok());
    let policy = PolicyFilter(LogPolicy { level });
    let stderr: Box<dyn Layer<_> + Send + Sync> = match (json, env_override) {
        (true, Some(env)) => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_filter(env).boxed(),
        (true, None) => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_filter(policy).boxed(),
        (false, env) => {
            let fmt = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal());
            match env {
                Some(env) => fmt.with_filter(env).boxed(),
                None => fmt.with_filter(policy).boxed(),
            }
        }
    };
    let _ = tracing_subscriber::registry().with(stderr).with(MonitorLayer.with_filter(MonitorFilter)).try_init();
}

/// Formats each event as Consul's monitor does (`<time> [LEVEL] <module>: <message>: k=v`) and
/// publishes it to the log hub.
struct MonitorLayer;

impl<S: tracing::Subscriber> Layer<S> for MonitorLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = LineVisitor::default();
        event.record(&mut fields);
        let mut text = String::new();
        let _ = tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut text));
        let level = LogLevel::parse(meta.level().as_str()).unwrap_or(LogLevel::Info);
        let _ = write!(text, " {} {}: {}", level.label(), meta.target(), fields.message);
        if !fields.rest.is_empty() {
            let _ = write!(text, ":{}", fields.rest);
        }
        hub().publish(LogLine { level, text });
    }
}

#[derive(Default)]
struct LineVisitor {
    message: String,
    rest: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={:?}", field.name(), value);
        }
    }
}
