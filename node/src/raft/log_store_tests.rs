//! The Raft log store's unit tests (`log_store::tests`): recovery, votes, torn tails and
//! corruption, compaction, the trailing purge, and the bounded cache (entries evicted from memory
//! read back from the file exactly as appended).

use super::*;
use std::sync::Mutex;

use crate::io::mem::MemDisk;
use openraft::{CommittedLeaderId, EntryPayload};

fn no_trace() -> Arc<dyn TraceSink> {
    Arc::new(crate::io::NoTrace)
}

fn entry(term: u64, index: u64) -> Entry {
    Entry { log_id: LogId::new(CommittedLeaderId::new(term, 1), index), payload: EntryPayload::Blank }
}

pub(crate) async fn append_direct(store: &mut LogStore, entries: Vec<Entry>) {
    store.write_and_replay(entries.into_iter().map(LogRecord::Append).collect()).await.unwrap();
}

#[tokio::test]
async fn restart_recovers_synced_log_and_vote() {
    let disk = Arc::new(MemDisk::new());
    let (mut store, _) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
    append_direct(&mut store, vec![entry(1, 1), entry(1, 2), entry(2, 3)]).await;
    store.save_vote(&Vote::new(2, 7)).await.unwrap();
    store.truncate(LogId::new(CommittedLeaderId::new(2, 1), 3)).await.unwrap();
    disk.crash();
    let (mut again, report) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
    assert_eq!(report.torn_tail_bytes, 0);
    // Three appends and a truncation: compaction counts from what the file already holds.
    assert_eq!((report.records, again.records_in_file), (4, 4));
    assert_eq!(again.read_vote().await.unwrap(), Some(Vote::new(2, 7)));
    let st = again.get_log_state().await.unwrap();
    assert_eq!(st.last_log_id.map(|l| l.index), Some(2));
}

/// Collects trace events, for asserting what the store reports.
#[derive(Default)]
struct Recorded(Mutex<Vec<Event>>);
impl TraceSink for Recorded {
    fn event(&self, _node: &str, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

#[tokio::test]
async fn saved_votes_are_traced_and_restored_after_a_crash() {
    let disk = Arc::new(MemDisk::new());
    let sink = Arc::new(Recorded::default());
    let (mut store, _) = LogStore::open(disk.clone(), sink.clone(), "n1".into()).await.unwrap();
    store.save_vote(&Vote::new(2, 7)).await.unwrap();
    disk.crash();
    LogStore::open(disk.clone(), sink.clone(), "n1".into()).await.unwrap();
    let v = trace::Vote { term: 2, voted_for: Some(7), committed: false };
    assert_eq!(*sink.0.lock().unwrap(), vec![Event::VoteRestored(None), Event::VoteSaved(v), Event::VoteRestored(Some(v))]);
}

/// The `vote_in_memory` bug switch loses the vote on a crash, which the simulator must catch.
#[tokio::test]
async fn a_vote_kept_in_memory_is_lost_on_a_crash() {
    let disk = Arc::new(MemDisk::new());
    let (mut store, _) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
    store.set_vote_in_memory(true);
    store.save_vote(&Vote::new(2, 7)).await.unwrap();
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(2, 7)));
    disk.crash();
    let (mut again, _) = LogStore::open(disk, no_trace(), "n1".into()).await.unwrap();
    assert_eq!(again.read_vote().await.unwrap(), None);
}

#[tokio::test]
async fn an_inverted_range_is_an_error_and_an_empty_one_is_not() {
    let (mut store, _) = LogStore::open(Arc::new(MemDisk::new()), no_trace(), "n1".into()).await.unwrap();
    append_direct(&mut store, (1..=3).map(|i| entry(1, i)).collect()).await;
    assert_eq!(store.try_get_log_entries(2..4).await.unwrap().len(), 2);
    assert!(store.try_get_log_entries(3..3).await.unwrap().is_empty(), "n..n is empty, not inverted");
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = store.try_get_log_entries(3..2).await;
    assert!(inverted.is_err(), "start past end: the log and state machine disagree");
}

#[tokio::test]
async fn torn_tail_is_cut_not_applied() {
    let disk = Arc::new(MemDisk::new());
    let (mut store, _) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
    append_direct(&mut store, vec![entry(1, 1)]).await;
    store.set_skip_fsync(true);
    append_direct(&mut store, vec![entry(1, 2)]).await;
    disk.tear_on_crash();
    disk.crash();
    let (mut again, report) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
    assert!(report.torn_tail_bytes > 0);
    assert_eq!(again.get_log_state().await.unwrap().last_log_id.map(|l| l.index), Some(1));
    // The cut is durable: a second restart sees a clean log.
    let (_, report2) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
    assert_eq!(report2.torn_tail_bytes, 0);
}

#[tokio::test]
async fn corruption_before_the_tail_refuses_to_start() {
    let disk = Arc::new(MemDisk::new());
    let (mut store, _) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
    append_direct(&mut store, vec![entry(1, 1), entry(1, 2), entry(1, 3)]).await;
    assert!(disk.flip_bit(LOG_FILE, crate::codec::FRAME_HEADER_BYTES + 2, 3));
    assert!(LogStore::open(disk.clone(), no_trace(), "n1".into()).await.is_err());
}

/// Regression (sim disk-corruption seed 89): a flipped bit in the last frame's length made it
/// look like a frame running to the end of the file, i.e. a torn write, and 20 KB of
/// acknowledged log was cut. The length now has its own checksum.
#[tokio::test]
async fn flipped_length_in_a_synced_frame_is_corruption_not_a_torn_tail() {
    let disk = Arc::new(MemDisk::new());
    let (mut store, _) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
    append_direct(&mut store, vec![entry(1, 1), entry(1, 2)]).await;
    let second_frame = disk.len(LOG_FILE) / 2;
    let (_, next) = crate::codec::unframe(&disk.read(LOG_FILE).await.unwrap().unwrap(), 0).unwrap();
    assert!(next <= second_frame + 64);
    assert!(disk.flip_bit(LOG_FILE, next + 1, 4), "flip a bit in the second frame's length");
    assert!(check_integrity(disk.as_ref()).await.unwrap().is_some());
    assert!(LogStore::open(disk.clone(), no_trace(), "n1".into()).await.is_err());
}

#[tokio::test]
async fn purge_then_compaction_keeps_live_entries() {
    let disk = Arc::new(MemDisk::new());
    let (mut store, _) = LogStore::open(disk.clone(), no_trace(), "n1".into()).await.unwrap();
    let entries: Vec<Entry> = (1..=5000).map(|i| entry(1, i)).collect();
    append_direct(&mut store, entries).await;
    store.purge(LogId::new(CommittedLeaderId::new(1, 1), 4990)).await.unwrap();
    assert!(store.records_in_file < 20, "compacted to {} records", store.records_in_file);
    disk.crash();
    let (mut again, _) = LogStore::open(disk, no_trace(), "n1".into()).await.unwrap();
    let st = again.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(4990));
    assert_eq!(st.last_log_id.map(|l| l.index), Some(5000));
}

fn normal(index: u64, bytes: usize) -> Entry {
    use crate::structs::command::{MessageType, COMMAND_VERSION};
    let body = (0..bytes).map(|b| (b as u64 ^ index) as u8).collect();
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(crate::structs::Command { msg_type: MessageType::KVS, version: COMMAND_VERSION, body }),
    }
}

#[test]
fn the_trailing_purge_keeps_at_most_the_byte_budget_behind_the_snapshot() {
    // Indexes 1..=10 of 100 B each, a blank entry at 11, and 12..=14 past the snapshot at 11.
    // A zero cache budget: the purge target comes from the slots, not the decoded entries.
    let mut index = LogIndex::new(0);
    let at = FramePos { offset: 0, len: 0 };
    (1..=10).for_each(|i| index.append(normal(i, 100), at));
    index.append(entry(1, 11), at);
    (12..=14).for_each(|i| index.append(normal(i, 10_000), at));
    assert_eq!(index.cached_len(), 1);
    // 250 B of budget keeps 9 and 10 (and the blank 11); 8 would make it 300 B.
    assert_eq!(index.trailing_purge_target(11, 250), Some(8));
    assert_eq!(index.trailing_purge_target(11, 200), Some(8), "exactly at the budget is kept");
    assert_eq!(index.trailing_purge_target(11, 199), Some(9));
    assert_eq!(index.trailing_purge_target(11, 1_000), None, "everything behind fits");
    assert_eq!(index.trailing_purge_target(11, 0), Some(10), "entries past the snapshot never count");
}

/// A store on `disk` keeping `budget` bytes of command decoded; `normal` entries of 100 B
/// with a 250 B budget keep the last two or three.
async fn tiny_cache(disk: &Arc<MemDisk>, budget: u64) -> LogStore {
    LogStore::open_with_cache(disk.clone(), no_trace(), "n1".into(), budget).await.unwrap().0
}

fn cached(store: &LogStore) -> usize {
    store.shared.index.lock().unwrap().cached_len()
}

#[tokio::test]
async fn evicted_entries_read_back_as_appended_and_across_a_reopen() {
    let disk = Arc::new(MemDisk::new());
    let mut store = tiny_cache(&disk, 250).await;
    let appended: Vec<Entry> = (1..=40).map(|i| normal(i, 100)).collect();
    // Two batches, so the reads cross from one append's frames to the next.
    append_direct(&mut store, appended[..25].to_vec()).await;
    append_direct(&mut store, appended[25..].to_vec()).await;
    assert_eq!(cached(&store), 2, "only the newest entries stay decoded");
    assert_eq!(store.try_get_log_entries(1..=40).await.unwrap(), appended);
    assert_eq!(store.reader().try_get_log_entries(10..30).await.unwrap(), appended[9..29]);
    disk.crash();
    let mut again = tiny_cache(&disk, 250).await;
    assert_eq!(cached(&again), 2, "replaying the log keeps only its tail decoded");
    assert_eq!(again.try_get_log_entries(..).await.unwrap(), appended);
    assert_eq!(again.get_log_state().await.unwrap().last_log_id.map(|l| l.index), Some(40));
}

#[tokio::test]
async fn a_truncation_into_the_evicted_entries_reads_back_the_new_last_entry() {
    let disk = Arc::new(MemDisk::new());
    let mut store = tiny_cache(&disk, 250).await;
    let mut want: Vec<Entry> = (1..=30).map(|i| normal(i, 100)).collect();
    append_direct(&mut store, want.clone()).await;
    store.truncate(LogId::new(CommittedLeaderId::new(1, 1), 11)).await.unwrap();
    want.truncate(10);
    assert_eq!(store.get_log_state().await.unwrap().last_log_id.map(|l| l.index), Some(10), "read back from disk");
    assert_eq!(store.try_get_log_entries(..).await.unwrap(), want);
    // New entries at the truncated indexes land after the truncation record.
    let new: Vec<Entry> = (11..=14).map(|i| normal(i, 120)).collect();
    append_direct(&mut store, new.clone()).await;
    want.extend(new);
    assert_eq!(store.try_get_log_entries(..).await.unwrap(), want);
    disk.crash();
    let mut again = tiny_cache(&disk, 250).await;
    assert_eq!(again.try_get_log_entries(..).await.unwrap(), want);
    // A log ending in a deep truncation reopens with its last entry read back.
    again.truncate(LogId::new(CommittedLeaderId::new(1, 1), 3)).await.unwrap();
    disk.crash();
    let (mut third, _) = LogStore::open_with_cache(disk.clone(), no_trace(), "n1".into(), 0).await.unwrap();
    assert_eq!(third.get_log_state().await.unwrap().last_log_id.map(|l| l.index), Some(2));
    assert_eq!(third.try_get_log_entries(..).await.unwrap(), want[..2]);
}

/// Offsets after a torn tail is cut: the next append goes where the whole frames end.
#[tokio::test]
async fn entries_appended_after_a_torn_tail_read_back() {
    let disk = Arc::new(MemDisk::new());
    let mut store = tiny_cache(&disk, 250).await;
    let mut want: Vec<Entry> = (1..=10).map(|i| normal(i, 100)).collect();
    append_direct(&mut store, want.clone()).await;
    store.set_skip_fsync(true);
    append_direct(&mut store, vec![normal(11, 500)]).await;
    disk.tear_on_crash();
    disk.crash();
    let (mut again, report) = LogStore::open_with_cache(disk.clone(), no_trace(), "n1".into(), 250).await.unwrap();
    assert!(report.torn_tail_bytes > 0);
    let new: Vec<Entry> = (11..=15).map(|i| normal(i, 90)).collect();
    append_direct(&mut again, new.clone()).await;
    want.extend(new);
    assert_eq!(again.try_get_log_entries(..).await.unwrap(), want);
}

#[tokio::test]
async fn a_compaction_rewrite_moves_the_offsets_of_evicted_entries() {
    let disk = Arc::new(MemDisk::new());
    let mut store = tiny_cache(&disk, 250).await;
    let appended: Vec<Entry> = (1..=5000).map(|i| normal(i, 20)).collect();
    append_direct(&mut store, appended.clone()).await;
    let before = disk.len(LOG_FILE);
    // 500 live entries of 5001 records: the purge rewrites the file.
    store.purge(LogId::new(CommittedLeaderId::new(1, 1), 4500)).await.unwrap();
    assert_eq!(store.records_in_file, 501);
    assert!(disk.len(LOG_FILE) < before / 5, "rewritten: {} of {before} bytes", disk.len(LOG_FILE));
    assert!(cached(&store) < 20);
    assert_eq!(store.try_get_log_entries(4501..=5000).await.unwrap(), appended[4500..]);
    // Appends after the rewrite go after its end.
    append_direct(&mut store, vec![normal(5001, 20)]).await;
    assert_eq!(store.try_get_log_entries(4990..).await.unwrap(), [&appended[4989..], &[normal(5001, 20)]].concat());
    disk.crash();
    let mut again = tiny_cache(&disk, 250).await;
    assert_eq!(again.try_get_log_entries(4501..=5000).await.unwrap(), appended[4500..]);
}

#[tokio::test]
async fn a_corrupted_frame_among_evicted_entries_is_an_error_not_wrong_data() {
    let disk = Arc::new(MemDisk::new());
    let mut store = tiny_cache(&disk, 250).await;
    let appended: Vec<Entry> = (1..=10).map(|i| normal(i, 100)).collect();
    append_direct(&mut store, appended.clone()).await;
    // Entry 2's frame starts where entry 1's ends; flip a bit in its payload.
    let (_, second) = unframe(&disk.read(LOG_FILE).await.unwrap().unwrap(), 0).unwrap();
    assert!(disk.flip_bit(LOG_FILE, second + FRAME_HEADER_BYTES + 40, 2));
    assert!(store.try_get_log_entries(2..=2).await.is_err());
    assert!(store.reader().try_get_log_entries(1..=5).await.is_err(), "a range holding it fails whole");
    assert_eq!(store.try_get_log_entries(3..=10).await.unwrap(), appended[2..], "the others still read");
    // An injected read error is an error too, and the next read succeeds.
    disk.fail_next_read();
    assert!(store.try_get_log_entries(3..=4).await.is_err());
    assert_eq!(store.try_get_log_entries(3..=4).await.unwrap(), appended[2..4]);
    // A compaction will not copy the corrupted frame into a fresh file: 4990 dead records
    // (appended, then truncated away) make the next purge rewrite the file.
    append_direct(&mut store, (11..=5000).map(|i| normal(i, 1)).collect()).await;
    store.truncate(LogId::new(CommittedLeaderId::new(1, 1), 11)).await.unwrap();
    assert!(store.purge(LogId::new(CommittedLeaderId::new(1, 1), 1)).await.is_err());
}

/// Readers hold a `LogReader` beside the store: one reading evicted entries while a purge
/// rewrites the file must get the right entries (the rename waits for its read), never
/// frames of the new file at the old offsets.
#[tokio::test]
async fn a_reader_racing_a_compaction_reads_the_right_entries() {
    let disk = Arc::new(MemDisk::with_latency(7));
    let mut store = LogStore::open_with_cache(disk.clone(), no_trace(), "n1".into(), 250).await.unwrap().0;
    let appended: Vec<Entry> = (1..=5000).map(|i| normal(i, 20)).collect();
    append_direct(&mut store, appended.clone()).await;
    let mut reader = store.reader();
    let reads = async {
        let mut results = Vec::new();
        for _ in 0..60 {
            results.push(reader.try_get_log_entries(4600..4700).await);
        }
        results
    };
    let (purged, results) = tokio::join!(store.purge(LogId::new(CommittedLeaderId::new(1, 1), 4500)), reads);
    purged.unwrap();
    assert_eq!(store.records_in_file, 501, "the purge rewrote the file");
    for r in results {
        assert_eq!(r.unwrap(), appended[4599..4699]);
    }
}
