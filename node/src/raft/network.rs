//! The Raft transport: openraft's `RaftNetwork` over server RPC.
//!
//! Every call runs under openraft's `hard_ttl` deadline; a timeout or connection failure maps to
//! `Unreachable`, so openraft backs off instead of hanging on a partitioned peer.

use std::net::SocketAddr;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;

use super::{NodeId, TypeConfig};
use crate::rpc::RpcClient;
use crate::server::endpoints::{RaftRpc, RAFT_APPEND_ENTRIES, RAFT_INSTALL_SNAPSHOT, RAFT_VOTE};

/// Creates per-peer clients.
pub struct NetworkFactory {
    pub rpc: RpcClient,
}

/// A client for one peer.
pub struct PeerNetwork {
    rpc: RpcClient,
    target: NodeId,
    addr: Result<SocketAddr, String>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        let addr = node.addr.parse::<SocketAddr>().map_err(|e| format!("bad peer address {:?}: {e}", node.addr));
        PeerNetwork { rpc: self.rpc.clone(), target, addr }
    }
}

type Err<E> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

fn unreachable<E: std::error::Error>(msg: impl Into<String>) -> Err<E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(msg.into())))
}

impl PeerNetwork {
    /// Sends one openraft message to the peer's `method`; transport failures are `Unreachable`
    /// (openraft backs off), the peer's own Raft errors are `RemoteError`.
    async fn send<Req: serde::Serialize, Resp: serde::de::DeserializeOwned, E: std::error::Error + serde::de::DeserializeOwned>(
        &self,
        method: &str,
        msg: Req,
        option: &RPCOption,
    ) -> Result<Resp, Err<E>> {
        let addr = self.addr.clone().map_err(unreachable)?;
        let req = RaftRpc { target: self.target, msg };
        let answer: Result<Resp, RaftError<NodeId, E>> =
            self.rpc.call(addr, method, &req, option.hard_ttl()).await.map_err(|e| unreachable(e.to_string()))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, Err<openraft::error::Infallible>> {
        self.send(RAFT_APPEND_ENTRIES, rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Err<InstallSnapshotError>> {
        self.send(RAFT_INSTALL_SNAPSHOT, rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, Err<openraft::error::Infallible>> {
        self.send(RAFT_VOTE, rpc, &option).await
    }
}
