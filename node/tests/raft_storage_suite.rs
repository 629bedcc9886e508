//! openraft's own storage conformance suite (`openraft::testing::Suite`) against Concord's Raft
//! log ([`LogStore`]) and state machine ([`StateMachine`]) on the simulator's in-memory disk
//! ([`MemDisk`]): vote, log reads/appends/truncation/purge, initial-state recovery, membership
//! tracking, apply, and snapshot build/install.
//!
//! The suite builds its own tokio runtimes, so this is a plain `#[test]`.

use std::sync::Arc;

use node::io::mem::MemDisk;
use node::io::{Disk, NoTrace};
use node::raft::log_store::LogStore;
use node::raft::state_machine::{SharedState, StateMachine};
use node::raft::{StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};

/// A fresh log store and state machine sharing one empty in-memory disk per build.
struct MemStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine> for MemStoreBuilder {
    async fn build(&self) -> Result<((), LogStore, StateMachine), StorageError> {
        let disk: Arc<dyn Disk> = Arc::new(MemDisk::new());
        let (log, _report) = LogStore::open(disk.clone()).await?;
        let sm = StateMachine::open(Arc::new(SharedState::default()), disk, Arc::new(NoTrace), "suite".into()).await?;
        Ok(((), log, sm))
    }
}

#[test]
fn log_store_and_state_machine_pass_openraft_storage_suite() {
    Suite::test_all(MemStoreBuilder).expect("openraft storage suite");
}
