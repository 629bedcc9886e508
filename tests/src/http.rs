//! HTTP requests through the real `curl` binary, as an operator would send them.
//!
//! Owns: running `curl` with a deadline and parsing its `-i` output into status, headers and body.
//! Uses `--path-as-is` so keys with `..` reach the server unnormalised, and sends no
//! `Expect: 100-continue`.

use std::io::Write;
use std::process::{Command, Stdio};

/// curl's own deadline for one request, in seconds.
const CURL_MAX_TIME_S: &str = "15";

/// A response as curl saw it.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// `X-Consul-Index` as a number; panics (naming the response) if absent or not a number.
    pub fn consul_index(&self) -> u64 {
        self.header("X-Consul-Index")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no numeric X-Consul-Index in {self:?}"))
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics (naming the body) if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }
}

/// Sends `method url` with an optional body via `curl -sS -i`. Errors: curl missing, curl failed
/// (connection refused, timeout), or unparseable output — as a message for a retry loop or panic.
pub fn curl(method: &str, url: &str, body: Option<&[u8]>) -> Result<Response, String> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--path-as-is", "--max-time", CURL_MAX_TIME_S, "-H", "Expect:", "-X", method]);
    if body.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    cmd.arg(url).stdin(if body.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run curl (is it installed?): {e}"))?;
    if let Some(body) = body {
        let mut stdin = child.stdin.take().expect("piped stdin");
        // A server may answer (413) before reading the whole body; a broken pipe is fine then.
        let _ = stdin.write_all(body);
    }
    let out = child.wait_with_output().map_err(|e| format!("curl: {e}"))?;
    if !out.status.success() {
        return Err(format!("curl {method} {url} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    parse_curl_i(&out.stdout).ok_or_else(|| format!("cannot parse curl output: {:?}", String::from_utf8_lossy(&out.stdout)))
}

/// Parses `curl -i` output, skipping interim `1xx` header blocks.
fn parse_curl_i(mut raw: &[u8]) -> Option<Response> {
    loop {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&raw[..split]).ok()?;
        let rest = &raw[split + 4..];
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        if (100..200).contains(&status) {
            raw = rest;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        return Some(Response { status, headers, body: rest.to_vec() });
    }
}

/// `curl` that panics on transport failure (for steps that must reach the server).
pub fn must(method: &str, url: &str, body: Option<&[u8]>) -> Response {
    curl(method, url, body).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_and_skips_continue() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nX-Consul-Index: 7\r\n\r\nbody";
        let r = parse_curl_i(raw).unwrap();
        assert_eq!((r.status, r.consul_index(), r.text().as_str()), (404, 7, "body"));
    }
}
