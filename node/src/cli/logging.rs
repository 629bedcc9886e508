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

/// Formats each event as Consul's monitor does, once as text (`<time> [LEVEL] <module>: <message>:
/// k=v`) and once as JSON (Consul's `-log-json` keys: `@level`, `@message`, `@module`,
/// `@timestamp`, then the event's fields), and publishes both to the log hub.
struct MonitorLayer;

impl<S: tracing::Subscriber> Layer<S> for MonitorLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _cx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = LineVisitor::default();
        event.record(&mut fields);
        let mut timestamp = String::new();
        let _ = tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut timestamp));
        let level = LogLevel::parse(meta.level().as_str()).unwrap_or(LogLevel::Info);
        let mut text = format!("{timestamp} {} {}: {}", level.label(), meta.target(), fields.message);
        if !fields.rest.is_empty() {
            text.push(':');
            for (name, value) in &fields.rest {
                let _ = write!(text, " {name}={value}");
            }
        }
        let mut json = serde_json::Map::new();
        json.insert("@level".into(), meta.level().as_str().to_ascii_lowercase().into());
        json.insert("@message".into(), fields.message.into());
        json.insert("@module".into(), meta.target().into());
        json.insert("@timestamp".into(), timestamp.into());
        for (name, value) in fields.rest {
            json.insert(name, value.into());
        }
        hub().publish(LogLine { level, text, json: serde_json::Value::Object(json).to_string() });
    }
}

#[derive(Default)]
struct LineVisitor {
    message: String,
    /// The other fields, in the order recorded, values as printed.
    rest: Vec<(String, String)>,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.rest.push((field.name().to_string(), value.to_string()));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.rest.push((field.name().to_string(), format!("{value:?}")));
        }
    }
}
