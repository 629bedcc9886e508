//! kv-bench: Concord's KV API side by side with etcd 3.4's HTTP/JSON gateway, in one run on
//! loopback (the `kv-bench` binary drives it; see README "KV performance").
//!
//! Owns: Concord's write-path timers from its metrics ([`breakdown`]), the keep-alive HTTP client ([`client`]), what each operation is on either store and the
//! closed-loop load ([`load`]), the blocking-query fan-out ([`fanout`]), etcd processes and
//! gateway JSON ([`etcd`]), server RSS in the memory modes ([`memory`]), and figures: histograms and /proc CPU/RSS ([`stats`]) and the
//! markdown tables ([`report`]).

pub mod breakdown;
pub mod client;
pub mod etcd;
pub mod fanout;
pub mod load;
pub mod memory;
pub mod report;
pub mod stats;
