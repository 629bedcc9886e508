//! One run of an HTTP, TCP or script check, over [`crate::io::Net`] and
//! [`crate::io::process::Processes`] only (so the simulator can run it).
//!
//! Source: Consul "Health Checks" docs (HTTP: 2xx passing, 429 warning, anything else critical;
//! 10 s default timeout; output capped at 4 KB; TCP: a connection is passing; script: exit 0
//! passing, 1 warning, anything else critical) and `agent/checks/check.go` (`CheckHTTP.check`,
//! `CheckTCP.check`, `CheckMonitor.check`), whose output wording this follows. A probe never
//! retries and never outlives its timeout.
//!
//! Host names: the I/O abstraction has no resolver yet, so a check target must be an IP address
//! or `localhost`; another name reports critical with a message saying so.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

use super::definition::CheckKind;
use super::state::OUTPUT_MAX_BYTES;
use crate::io::process::Processes;
use crate::io::Net;
use crate::structs::HealthStatus;

/// Consul's health-check User-Agent.
const USER_AGENT: &str = "Consul Health Check";
/// Consul's default `Accept` for HTTP checks.
const ACCEPT: &str = "text/plain, text/*, */*";

/// The result of one run.
pub type ProbeResult = (HealthStatus, String);

/// Runs one probe of an interval check with its timeout. Kinds without a probe (TTL, alias,
/// manual) never reach here.
pub async fn run(net: &dyn Net, processes: &dyn Processes, kind: &CheckKind, timeout: Duration) -> ProbeResult {
    match kind {
        CheckKind::Http { url, method, header, body } => http(net, url, method, header, body, timeout).await,
        CheckKind::Tcp { addr } => tcp(net, addr, timeout).await,
        CheckKind::Script { args } => script(processes, args, timeout).await,
        CheckKind::Ttl { .. } | CheckKind::Alias { .. } | CheckKind::Manual => {
            debug_assert!(false, "TTL, alias and manual checks are not probed");
            (HealthStatus::Critical, "not a probed check".into())
        }
    }
}

/// `host:port` to a socket address: IP literals (`[v6]:port` too) and `localhost`.
pub fn resolve(host_port: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(sa) = host_port.parse::<SocketAddr>() {
        return Ok(sa);
    }
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
            (h, p.parse::<u16>().map_err(|_| format!("invalid port in {host_port:?}"))?)
        }
        _ => (host_port, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    host.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, port))
        .map_err(|_| format!("cannot resolve {host:?}: name resolution is not supported yet, use an IP address"))
}

/// Script: the exit code decides (0 passing, 1 warning, else critical); the output is what the
/// program printed. A program that cannot start, or outlives the timeout, is critical.
async fn script(processes: &dyn Processes, args: &[String], timeout: Duration) -> ProbeResult {
    match processes.run(args, timeout, OUTPUT_MAX_BYTES).await {
        Ok(out) if out.timed_out => (HealthStatus::Critical, format!("Timed out ({}) running check", go_duration(timeout))),
        Ok(out) => {
            let status = match out.code {
                Some(0) => HealthStatus::Passing,
                Some(1) => HealthStatus::Warning,
                _ => HealthStatus::Critical,
            };
            (status, String::from_utf8_lossy(&out.output).into_owned())
        }
        Err(e) => (HealthStatus::Critical, e.to_string()),
    }
}

/// A timeout as Go prints the common ones: `30s`, `1.5s`, `500ms`.
fn go_duration(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// TCP: connected within the timeout is passing.
async fn tcp(net: &dyn Net, target: &str, timeout: Duration) -> ProbeResult {
    let addr = match resolve(target, 0) {
        Ok(a) => a,
        Err(e) => return (HealthStatus::Critical, e),
    };
    match tokio::time::timeout(timeout, net.connect(addr)).await {
        Ok(Ok(_stream)) => (HealthStatus::Passing, format!("TCP connect {target}: Success")),
        Ok(Err(e)) => (HealthStatus::Critical, format!("dial tcp {target}: {e}")),
        Err(_) => (HealthStatus::Critical, format!("dial tcp {target}: i/o timeout")),
    }
}

/// Splits `http://host[:port][/path]` into the authority and the path (default `/`).
fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("unsupported URL {url:?}"))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

/// HTTP: one request; status mapped as Consul does, output `HTTP <method> <url>: <status> Output:
/// <body>` with at most [`OUTPUT_MAX_BYTES`] of body read.
async fn http(
    net: &dyn Net,
    url: &str,
    method: &str,
    header: &std::collections::BTreeMap<String, Vec<String>>,
    body: &str,
    timeout: Duration,
) -> ProbeResult {
    let exchange = async {
        let (authority, path) = split_url(url)?;
        let addr = resolve(authority, 80)?;
        let stream = net.connect(addr).await.map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP handshake: {e}"))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "http check connection ended");
            }
        });
        let mut req = Request::builder().method(method).uri(path).header(hyper::header::HOST, authority);
        let has = |name: &str| header.keys().any(|k| k.eq_ignore_ascii_case(name));
        if !has("user-agent") {
            req = req.header(hyper::header::USER_AGENT, USER_AGENT);
        }
        if !has("accept") {
            req = req.header(hyper::header::ACCEPT, ACCEPT);
        }
        for (k, vs) in header {
            for v in vs {
                req = req.header(k.as_str(), v.as_str());
            }
        }
        let req = req.body(Full::new(Bytes::from(body.to_string()))).map_err(|e| format!("bad request: {e}"))?;
        let result = async {
            let resp = sender.send_request(req).await.map_err(|e| format!("request failed: {e}"))?;
            let status = resp.status();
            let mut body = resp.into_body();
            let mut out = Vec::new();
            while out.len() < OUTPUT_MAX_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            out.extend_from_slice(data);
                        }
                    }
                    Some(Err(e)) => return Err(format!("reading body: {e}")),
                    None => break,
                }
            }
            out.truncate(OUTPUT_MAX_BYTES);
            Ok::<_, String>((status, String::from_utf8_lossy(&out).into_owned()))
        }
        .await;
        driver.abort();
        result
    };
    let what = format!("{method} {url}");
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => (HealthStatus::Critical, format!("{what}: timed out after {}", crate::structs::duration::format_go_duration(timeout))),
        Ok(Err(e)) => (HealthStatus::Critical, format!("{what}: {e}")),
        Ok(Ok((status, text))) => {
            let health = match status.as_u16() {
                200..=299 => HealthStatus::Passing,
                429 => HealthStatus::Warning,
                _ => HealthStatus::Critical,
            };
            let reason = status.canonical_reason().map(|r| format!(" {r}")).unwrap_or_default();
            (health, format!("HTTP {what}: {}{reason} Output: {text}", status.as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_for_ip_literals_and_localhost_only() {
        assert_eq!(resolve("127.0.0.1:80", 0).unwrap(), "127.0.0.1:80".parse().unwrap());
        assert_eq!(resolve("localhost:9", 0).unwrap(), "127.0.0.1:9".parse().unwrap());
        assert_eq!(resolve("[::1]:5", 0).unwrap(), "[::1]:5".parse().unwrap());
        assert_eq!(resolve("10.0.0.1", 80).unwrap(), "10.0.0.1:80".parse().unwrap());
        assert!(resolve("example.com:80", 0).unwrap_err().contains("name resolution"));
        assert_eq!(split_url("http://1.2.3.4:5/a?b").unwrap(), ("1.2.3.4:5", "/a?b"));
        assert_eq!(split_url("http://1.2.3.4").unwrap(), ("1.2.3.4", "/"));
    }

    #[tokio::test]
    async fn http_probe_maps_status_codes_like_consul() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let net = crate::io::tokio::TokioNet;
        for (code, want) in [(200, HealthStatus::Passing), (429, HealthStatus::Warning), (503, HealthStatus::Critical)] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi");
                s.write_all(reply.as_bytes()).await.unwrap();
            });
            let url = format!("http://{addr}/health");
            let (status, output) = http(&net, &url, "GET", &Default::default(), "", Duration::from_secs(5)).await;
            assert_eq!(status, want, "{output}");
            assert!(output.starts_with(&format!("HTTP GET {url}: {code}")) && output.ends_with("Output: hi"), "{output}");
            server.await.unwrap();
        }
        let (status, _) = tcp(&net, "127.0.0.1:1", Duration::from_secs(2)).await;
        assert_eq!(status, HealthStatus::Critical);
    }
}
