//! One keep-alive HTTP/1.1 connection per benchmark client (hyper's connection-level client, no
//! pool): a closed-loop client sends its next request on the same socket as soon as the previous
//! answer has been read.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A finished answer: status, `X-Consul-Index` if present, whole body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// `X-Consul-Index` (Concord answers only).
    pub consul_index: Option<u64>,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// The body as text (lossy), for error messages and small checks.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One open keep-alive connection.
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    /// Connects to `addr` (TCP_NODELAY, so the server's pace, not delayed ACKs, sets latency) and
    /// runs the connection's I/O in a spawned task.
    pub async fn connect(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        let (send, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake {addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self { send, host: addr.to_string() })
    }

    /// Sends one request and returns its head; the caller reads (or streams) the body.
    pub async fn send(&mut self, method: Method, path: &str, body: Bytes) -> Result<Response<Incoming>, String> {
        self.send.ready().await.map_err(|e| format!("connection closed: {e}"))?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| format!("bad request {path}: {e}"))?;
        self.send.send_request(req).await.map_err(|e| format!("{path}: {e}"))
    }

    /// Sends one request and reads the whole answer.
    pub async fn request(&mut self, method: Method, path: &str, body: Bytes) -> Result<Reply, String> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status().as_u16();
        let consul_index = resp
            .headers()
            .get("x-consul-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = resp.into_body().collect().await.map_err(|e| format!("{path}: body: {e}"))?.to_bytes();
        Ok(Reply { status, consul_index, body })
    }
}
