//! The RPC server: accepts connections on the server port and dispatches each request.

use std::sync::Arc;

use super::wire::{read_msg, write_msg};
use super::{RaftMessage, RpcRequest, RpcResponse};
use crate::agent::Agent;
use crate::io::{BoxStream, Listener};

/// Accepts connections forever, one task per connection.
pub async fn serve(agent: Arc<Agent>, mut listener: Box<dyn Listener>) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(handle_conn(agent.clone(), stream));
            }
            Err(e) => {
                tracing::warn!(error = %e, "rpc accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle_conn(agent: Arc<Agent>, mut stream: BoxStream) {
    loop {
        let req: RpcRequest = match read_msg(&mut *stream).await {
            Ok(req) => req,
            Err(e) => {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    let _ = write_msg(&mut *stream, &RpcResponse::Error(e.to_string())).await;
                }
                return;
            }
        };
        let endpoint = crate::telemetry::metrics::rpc_endpoint(&req);
        let resp = dispatch(&agent, req).await;
        agent.telemetry.metrics.rpc(endpoint, crate::telemetry::metrics::rpc_failed(&resp));
        if write_msg(&mut *stream, &resp).await.is_err() {
            return;
        }
    }
}

async fn dispatch(agent: &Agent, req: RpcRequest) -> RpcResponse {
    match req {
        RpcRequest::Raft { target, .. } if target != agent.id => {
            RpcResponse::Error(format!("raft message for {target:016x} reached {:016x}", agent.id))
        }
        RpcRequest::Raft { msg: RaftMessage::AppendEntries(rpc), .. } => {
            let result = agent.raft.append_entries(rpc).await;
            if result.as_ref().is_ok_and(|r| r.is_success()) {
                *agent.last_leader_contact.lock().unwrap_or_else(|e| e.into_inner()) = Some(tokio::time::Instant::now());
            }
            RpcResponse::AppendEntries(result)
        }
        RpcRequest::Raft { msg: RaftMessage::Vote(rpc), .. } => RpcResponse::Vote(agent.raft.vote(rpc).await),
        RpcRequest::Raft { msg: RaftMessage::InstallSnapshot(rpc), .. } => {
            RpcResponse::InstallSnapshot(agent.raft.install_snapshot(rpc).await)
        }
        RpcRequest::ForwardWrite(cmd) => RpcResponse::ForwardWrite(agent.write_as_leader(cmd).await),
        RpcRequest::ForwardQuery(q) => RpcResponse::ForwardQuery(agent.query_local(q).await),
        RpcRequest::Join { peer, replaces } => RpcResponse::Join(agent.join_server(peer, replaces).await),
        RpcRequest::Leave { node_id } => RpcResponse::Leave(agent.remove_leaving_server(node_id).await),
        RpcRequest::Hello(peer) => {
            let initialized = agent.raft.is_initialized().await.unwrap_or(false);
            let known = {
                let mut peers = agent.peers.lock().unwrap_or_else(|e| e.into_inner());
                if peer.datacenter == agent.config.datacenter {
                    peers.insert(peer.node_id, peer);
                }
                peers.values().cloned().collect()
            };
            RpcResponse::Hello { me: agent.me(), initialized, known }
        }
    }
}
