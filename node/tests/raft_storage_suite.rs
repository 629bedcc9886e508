//! openraft's own storage conformance suite (`openraft::testing::Suite`) against Concord's Raft
//! log ([`LogStore`]) and state machine ([`StateMachine`]) on the simulator's in-memory disk
//! ([`MemDisk`]): vote, log reads/appends/truncation/purge, initial-state recovery, membership
//! tracking, apply, and snapshot build/install.
//!
//! `Suite::test_all` stops at the first failure, so each case runs on its own (fresh disk,
//! fresh runtime, panics caught) and the test compares the set of failing cases with
//! [`REFUSED_BY_DESIGN`]: a new failure, or a refused case that starts passing, fails the test.

use std::future::Future;
use std::panic::AssertUnwindSafe;
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
        let (log, _report) = LogStore::open(disk.clone(), Arc::new(NoTrace), "suite".into()).await?;
        let sm = StateMachine::open(Arc::new(SharedState::default()), disk, Arc::new(NoTrace), "suite".into()).await?;
        Ok(((), log, sm))
    }
}

type S = Suite<TypeConfig, LogStore, StateMachine, MemStoreBuilder, ()>;

/// Suite cases our state machine refuses on purpose (none: `StateMachine::apply` asserts only
/// that apply moves strictly forward, which openraft's contract allows with gaps, e.g. the
/// `last_applied_state` fixture applies index 3, then 5).
const REFUSED_BY_DESIGN: &[&str] = &[];

/// Runs one case on a fresh store in its own runtime; `Err` carries the error or panic text.
fn run_case<F, Fut>(case: F) -> Result<(), String>
where
    F: FnOnce(LogStore, StateMachine) -> Fut,
    Fut: Future<Output = Result<(), StorageError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            let ((), log, sm) = MemStoreBuilder.build().await.map_err(|e| e.to_string())?;
            case(log, sm).await.map_err(|e| e.to_string())
        })
    }));
    match outcome {
        Ok(r) => r,
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())),
    }
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), run_case(S::$name))),*]
    };
}

#[test]
fn log_store_and_state_machine_pass_openraft_storage_suite() {
    let mut results = cases![
        last_membership_in_log_initial,
        last_membership_in_log,
        last_membership_in_log_multi_step,
        get_membership_initial,
        get_membership_from_log_and_empty_sm,
        get_membership_from_empty_log_and_sm,
        get_membership_from_log_le_sm_last_applied,
        get_membership_from_log_gt_sm_last_applied_1,
        get_membership_from_log_gt_sm_last_applied_2,
        get_initial_state_without_init,
        get_initial_state_membership_from_log_and_sm,
        get_initial_state_with_state,
        get_initial_state_last_log_gt_sm,
        get_initial_state_last_log_lt_sm,
        get_initial_state_log_ids,
        get_initial_state_re_apply_committed,
        save_vote,
        get_log_entries,
        limited_get_log_entries,
        try_get_log_entry,
        initial_logs,
        get_log_state,
        get_log_id,
        last_id_in_log,
        last_applied_state,
        purge_logs_upto_0,
        purge_logs_upto_5,
        purge_logs_upto_20,
        delete_logs_since_11,
        delete_logs_since_0,
        append_to_log,
        snapshot_meta,
        apply_single,
        apply_multiple,
    ];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let transfer = std::panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async { S::transfer_snapshot(&MemStoreBuilder).await.map_err(|e| e.to_string()) })
    }));
    results.push(("transfer_snapshot", transfer.unwrap_or_else(|_| Err("panic".to_string()))));

    let failed: Vec<&str> = results.iter().filter(|(_, r)| r.is_err()).map(|(name, _)| *name).collect();
    for (name, r) in &results {
        if let Err(e) = r {
            eprintln!("{name}: {e}");
        }
    }
    assert_eq!(failed, REFUSED_BY_DESIGN, "openraft storage suite cases failing (expected only the refused-by-design ones)");
}
