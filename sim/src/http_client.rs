//! A minimal HTTP/1.1 client over turmoil TCP, for workload clients: one connection per request,
//! as a Consul client library would open through a load balancer.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// Why a request produced no response.
#[derive(Debug)]
pub enum ClientError {
    /// The connection could not be opened: the request was never sent.
    Connect(String),
    /// Failed after the request may have been sent.
    Io(String),
}

/// A response: status, headers, body.
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends one request to `addr` and reads the whole response. Callers wrap this in a timeout.
pub async fn request(addr: SocketAddr, method: Method, path: &str, body: Vec<u8>) -> Result<Response, ClientError> {
    let stream = turmoil::net::TcpStream::connect(addr).await.map_err(|e| ClientError::Connect(e.to_string()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| ClientError::Connect(e.to_string()))?;
    let resp = sender.send_request(req).await.map_err(|e| ClientError::Io(e.to_string()))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.map_err(|e| ClientError::Io(e.to_string()))?.to_bytes();
    Ok(Response { status, headers, body })
}
