//! The RPC server: accepts connections on the server port and hands each request to the handler.

use std::sync::Arc;

use super::wire::{read_msg, write_msg};
use super::{RequestFrame, ResponseFrame, RpcHandler};
use crate::io::{BoxStream, Listener};

/// Accepts connections forever, one task per connection.
pub async fn serve(handler: Arc<dyn RpcHandler>, mut listener: Box<dyn Listener>) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(handle_conn(handler.clone(), stream));
            }
            Err(e) => {
                tracing::warn!(error = %e, "rpc accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle_conn(handler: Arc<dyn RpcHandler>, mut stream: BoxStream) {
    loop {
        let req: RequestFrame = match read_msg(&mut *stream).await {
            Ok(req) => req,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    let _ = write_msg(&mut *stream, &ResponseFrame { result: Err(e.to_string()) }).await;
                }
                return;
            }
        };
        let result = handler.handle(req.method, req.body).await.map(serde_bytes::ByteBuf::from);
        if write_msg(&mut *stream, &ResponseFrame { result }).await.is_err() {
            return;
        }
    }
}
