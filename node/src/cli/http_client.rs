//! A minimal HTTP/1.1 client for the CLI: one request per connection, hyper's client handshake over
//! a connection opened through [`crate::io::Net`] ([`TokioNet`]).
//!
//! Owns: the agent address (`-http-addr`, `CONSUL_HTTP_ADDR`, default `127.0.0.1:8500`), the ACL
//! token (`-token`, `CONSUL_HTTP_TOKEN`, sent as `X-Consul-Token`), URL building with
//! percent-encoded keys, and deadlines on connect and on the whole exchange (except streams,
//! which run until the agent closes them). It never retries: a failed request is reported once,
//! with its cause.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::io::tokio::TokioNet;
use crate::io::Net;

/// Environment variable naming the agent's HTTP address (Consul's).
pub const HTTP_ADDR_ENV: &str = "CONSUL_HTTP_ADDR";
/// Environment variable holding the ACL token (Consul's).
pub const HTTP_TOKEN_ENV: &str = "CONSUL_HTTP_TOKEN";
/// Where the agent listens when nothing else is said (Consul's default).
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8500";
/// Port assumed when an address names only a host.
const DEFAULT_HTTP_PORT: u16 = 8500;
/// Deadline for the TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for a whole request/response exchange (writes through Raft take well under this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A response: status, the `X-Consul-Index` header if any, and the whole body.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub index: Option<u64>,
    pub body: Bytes,
}

impl Response {
    /// The body as (lossy) UTF-8 text, trimmed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }

    /// Consul's API client error for an unexpected status: `Unexpected response code: 400 (msg)`.
    pub fn unexpected(&self) -> String {
        format!("Unexpected response code: {} ({})", self.status.as_u16(), self.text())
    }
}

/// Talks to one agent's HTTP API.
#[derive(Clone)]
pub struct HttpClient {
    /// `host:port` as given (sent as the Host header).
    authority: String,
    /// ACL token sent as `X-Consul-Token`.
    token: Option<String>,
    /// Where connections come from: real sockets, or the simulator's network.
    net: Arc<dyn Net>,
    /// Deadline for a whole request/response exchange.
    request_timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("authority", &self.authority).field("token", &self.token.as_ref().map(|_| "<set>")).finish()
    }
}

impl HttpClient {
    /// Chooses the address: the flag, else `CONSUL_HTTP_ADDR`, else `127.0.0.1:8500`. Accepts
    /// `host:port`, `host`, and `http://host:port`. Errors: `https://` or another scheme, an empty
    /// or malformed address.
    pub fn from_flag_or_env(flag: Option<&str>) -> Result<Self, String> {
        let env = std::env::var(HTTP_ADDR_ENV).ok().filter(|v| !v.trim().is_empty());
        let raw = flag.map(str::to_string).or(env).unwrap_or_else(|| DEFAULT_HTTP_ADDR.to_string());
        Self::new(&raw)
    }

    /// Parses an address as [`HttpClient::from_flag_or_env`] does.
    pub fn new(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let rest = match raw.split_once("://") {
            None => raw,
            Some(("http", rest)) => rest,
            Some((scheme, _)) => return Err(format!("HTTP address {raw:?}: scheme {scheme:?} is not supported (use http)")),
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(format!("HTTP address {raw:?} is not host:port"));
        }
        let has_port = rest.rsplit_once(':').is_some_and(|(host, port)| {
            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && (!host.contains(':') || host.ends_with(']'))
        });
        let authority = if has_port { rest.to_string() } else { format!("{rest}:{DEFAULT_HTTP_PORT}") };
        Ok(Self { authority, token: None, net: Arc::new(TokioNet), request_timeout: REQUEST_TIMEOUT })
    }

    /// Opens connections through `net` instead of real sockets (the simulator runs CLI recipes
    /// such as `concord lock`'s over its own network). The address must then be an IP `ip:port`.
    pub fn with_net(mut self, net: Arc<dyn Net>) -> Self {
        self.net = net;
        self
    }

    /// Gives every exchange `timeout` instead of 30 s.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sends `token` (if any and non-empty) as `X-Consul-Token` on every request.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.filter(|t| !t.trim().is_empty());
        self
    }

    /// The token this client sends.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// `host:port` this client talks to.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Sends one request for `path_and_query` (which must start with `/`). Errors: connection,
    /// protocol or timeout, as a message naming the address.
    pub async fn request(&self, method: Method, path_and_query: &str, body: Vec<u8>) -> Result<Response, String> {
        let what = format!("{method} http://{}{path_and_query}", self.authority);
        tokio::time::timeout(self.request_timeout, self.exchange(method, path_and_query, body))
            .await
            .map_err(|_| format!("{what}: no answer within {:?}", self.request_timeout))?
            .map_err(|e| format!("{what}: {e}"))
    }

    fn build(&self, method: Method, path_and_query: &str, body: Vec<u8>) -> Result<Request<Full<Bytes>>, String> {
        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::USER_AGENT, concat!("concord/", env!("CARGO_PKG_VERSION")));
        if let Some(token) = &self.token {
            req = req.header("X-Consul-Token", token);
        }
        req.body(Full::new(Bytes::from(body))).map_err(|e| format!("bad request: {e}"))
    }

    async fn handshake(
        &self,
    ) -> Result<(hyper::client::conn::http1::SendRequest<Full<Bytes>>, tokio::task::JoinHandle<()>), String> {
        let stream = self.connect().await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "http client connection ended");
            }
        });
        Ok((sender, driver))
    }

    /// Sends a GET and hands each chunk of the body to `on_chunk` as it arrives, until the agent
    /// ends the response (`Ok(status)`). A non-2xx answer is returned whole as an error.
    /// Errors: connection, protocol, or a non-success status with its body.
    pub async fn stream(&self, path_and_query: &str, mut on_chunk: impl FnMut(&[u8])) -> Result<StatusCode, String> {
        let what = format!("GET http://{}{path_and_query}", self.authority);
        let req = self.build(Method::GET, path_and_query, Vec::new())?;
        let (mut sender, driver) = tokio::time::timeout(self.request_timeout, self.handshake())
            .await
            .map_err(|_| format!("{what}: no answer within {:?}", self.request_timeout))?
            .map_err(|e| format!("{what}: {e}"))?;
        let result = async {
            let resp = sender.send_request(req).await.map_err(|e| format!("{what}: request failed: {e}"))?;
            let status = resp.status();
            let mut body = resp.into_body();
            if !status.is_success() {
                let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let text = String::from_utf8_lossy(&bytes).trim().to_string();
                return Err(format!("Unexpected response code: {} ({text})", status.as_u16()));
            }
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("{what}: reading body: {e}"))?;
                if let Some(data) = frame.data_ref() {
                    on_chunk(data);
                }
            }
            Ok(status)
        }
        .await;
        driver.abort();
        result
    }

    async fn exchange(&self, method: Method, path_and_query: &str, body: Vec<u8>) -> Result<Response, String> {
        let req = self.build(method, path_and_query, body)?;
        let (mut sender, driver) = self.handshake().await?;
        let result = async {
            let resp = sender.send_request(req).await.map_err(|e| format!("request failed: {e}"))?;
            let status = resp.status();
            let index = resp
                .headers()
                .get("X-Consul-Index")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let body = resp.into_body().collect().await.map_err(|e| format!("reading body: {e}"))?.to_bytes();
            Ok(Response { status, index, body })
        }
        .await;
        driver.abort();
        result
    }

    async fn connect(&self) -> Result<crate::io::BoxStream, String> {
        // An IP address needs no resolver (and the simulator's network has none).
        let addrs: Vec<SocketAddr> = match self.authority.parse::<SocketAddr>() {
            Ok(addr) => vec![addr],
            Err(_) => tokio::net::lookup_host(self.authority.as_str())
                .await
                .map_err(|e| format!("cannot resolve {}: {e}", self.authority))?
                .collect(),
        };
        let mut last_err = format!("{} resolved to no address", self.authority);
        for addr in addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, self.net.connect(addr)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => last_err = format!("connect {addr}: {e}"),
                Err(_) => last_err = format!("connect {addr}: timed out after {CONNECT_TIMEOUT:?}"),
            }
        }
        Err(last_err)
    }
}

/// Percent-encodes a KV key for a URL path: keeps unreserved characters and `/`.
pub fn encode_path(key: &str) -> String {
    encode(key, |b| b == b'/')
}

/// Percent-encodes a query-parameter value.
pub fn encode_query_value(v: &str) -> String {
    encode(v, |_| false)
}

fn encode(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_accept_consul_forms() {
        assert_eq!(HttpClient::new("127.0.0.1:8501").unwrap().authority(), "127.0.0.1:8501");
        assert_eq!(HttpClient::new("http://127.0.0.1:8501/").unwrap().authority(), "127.0.0.1:8501");
        assert_eq!(HttpClient::new("localhost").unwrap().authority(), "localhost:8500");
        assert_eq!(HttpClient::new("[::1]:9").unwrap().authority(), "[::1]:9");
        assert!(HttpClient::new("https://x:1").unwrap_err().contains("https"));
        assert!(HttpClient::new("").is_err());
    }

    #[test]
    fn a_token_is_sent_only_when_non_empty() {
        let c = HttpClient::new("127.0.0.1:1").unwrap();
        assert_eq!(c.clone().with_token(Some("  ".into())).token(), None);
        let req = c.with_token(Some("s3cr3t".into())).build(Method::GET, "/v1/kv/x", Vec::new()).unwrap();
        assert_eq!(req.headers().get("X-Consul-Token").unwrap(), "s3cr3t");
    }

    #[test]
    fn keys_are_percent_encoded_but_slashes_kept() {
        assert_eq!(encode_path("a b/c?d#e%"), "a%20b/c%3Fd%23e%25");
        assert_eq!(encode_query_value("a/b"), "a%2Fb");
    }
}
