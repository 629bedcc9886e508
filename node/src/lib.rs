//! Concord's agent: a Consul-compatible, Raft-replicated service-discovery and KV agent written
//! against an I/O abstraction ([`io`]) so the same code runs on real sockets or inside the
//! deterministic simulator.

pub mod agent;
pub mod buggify;
pub mod cli;
pub mod codec;
pub mod config;
pub mod config_file;
pub mod dns;
pub mod filter;
pub mod gossip;
pub mod http;
pub mod io;
pub mod local;
pub mod raft;
pub mod rpc;
pub mod server;
pub mod state;
pub mod structs;
pub mod telemetry;
pub mod version;
