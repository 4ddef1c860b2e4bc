//! The Store on durable storage: recovery, CP and AP acknowledgement, poisoning, checkpoints.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

#[path = "log_tail/mod.rs"]
mod log_tail;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use statemesh::{
    Durability, Error, LogBytes, MemoryStorage, Recovered, Storage, StorageError, Store, Value,
};

async fn open(storage: &MemoryStorage, durability: Durability) -> Store {
    Store::builder()
        .durability(durability)
        .open_with_storage(storage.clone())
        .await
        .unwrap()
}

#[tokio::test]
async fn reopening_recovers_every_acknowledged_write() {
    let disk = MemoryStorage::new();
    let store = open(&disk, Durability::Cp).await;
    for i in 0..50i64 {
        store.put(&format!("a:k{i}"), i).await.unwrap();
    }
    store.delete("a:k7").await.unwrap();
    store.put_with_ttl("a:ttl", "x", 3_600_000).await.unwrap();
    store.increment("a:k1", 10).await.unwrap();
    let before = store.snapshot().await.unwrap();
    store.close().await;
    assert_eq!(disk.record_count(), 53);

    let reopened = open(&disk, Durability::Cp).await;
    assert_eq!(reopened.snapshot().await.unwrap(), before);
    assert_eq!(
        reopened.get("a:k1").await.unwrap(),
        Some(Value::Integer(11))
    );
    assert_eq!(reopened.get("a:k7").await.unwrap(), None);
    assert_eq!(reopened.revision(), 53);
}

#[tokio::test]
async fn checkpoints_drop_the_log_and_recovery_still_matches() {
    let disk = MemoryStorage::new();
    let store = Store::builder()
        .checkpoint_every(20)
        .open_with_storage(disk.clone())
        .await
        .unwrap();
    for i in 0..45i64 {
        store.put(&format!("a:k{}", i % 10), i).await.unwrap();
    }
    store.checkpoint().await.unwrap();
    assert_eq!(disk.record_count(), 0, "the snapshot covers every record");
    store.put("a:after", "checkpoint").await.unwrap();
    let before = store.snapshot().await.unwrap();
    store.close().await;
    let reopened = open(&disk, Durability::Cp).await;
    assert_eq!(reopened.snapshot().await.unwrap(), before);
}

#[tokio::test]
async fn a_storage_failure_poisons_and_reopen_recovers() {
    let disk = MemoryStorage::new();
    let store = open(&disk, Durability::Cp).await;
    store.put("a:kept", "durable").await.unwrap();
    disk.fail_next_write(StorageError::Io {
        op: "fsync",
        path: "wal".into(),
        message: "EIO".into(),
    });
    let err = store.put("a:lost", "never acknowledged").await.unwrap_err();
    assert!(
        matches!(err, Error::Poisoned(StorageError::Io { .. })),
        "{err}"
    );
    // Nothing more is accepted, reads included: memory may hold a write storage does not.
    assert!(matches!(
        store.put("a:x", "y").await,
        Err(Error::Poisoned(_))
    ));
    assert!(matches!(store.get("a:kept").await, Err(Error::Poisoned(_))));
    store.close().await;

    let reopened = open(&disk, Durability::Cp).await;
    assert_eq!(
        reopened.get("a:kept").await.unwrap(),
        Some(Value::from("durable"))
    );
    assert_eq!(reopened.get("a:lost").await.unwrap(), None);
    reopened.put("a:x", "y").await.unwrap();
}

#[tokio::test]
async fn ap_acknowledges_first_and_flush_persists() {
    let disk = MemoryStorage::new();
    let store = open(&disk, Durability::Ap).await;
    for i in 0..100i64 {
        store.put(&format!("a:k{i}"), i).await.unwrap();
    }
    store.flush().await.unwrap();
    assert_eq!(disk.record_count(), 100);
    store.close().await;
    let reopened = open(&disk, Durability::Ap).await;
    assert_eq!(reopened.keys("a:*").await.unwrap().len(), 100);
}

/// Storage whose appends block until the test opens the gate: a slow fsync under control.
#[derive(Debug, Clone)]
struct Gated {
    inner: MemoryStorage,
    open: Arc<(Mutex<bool>, Condvar)>,
}

impl Gated {
    fn new(open: bool) -> Gated {
        Gated {
            inner: MemoryStorage::new(),
            open: Arc::new((Mutex::new(open), Condvar::new())),
        }
    }

    fn set(&self, open: bool) {
        *self
            .open
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = open;
        self.open.1.notify_all();
    }

    /// Opens the gate when dropped, so a failing assertion cannot leave the committer blocked
    /// (and the test hanging on the store's shutdown).
    fn guard(&self) -> impl Drop + use<> {
        struct OpenOnDrop(Gated);
        impl Drop for OpenOnDrop {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        OpenOnDrop(self.clone())
    }
}

#[async_trait::async_trait]
impl Storage for Gated {
    async fn load(&mut self) -> Result<Recovered, StorageError> {
        self.inner.load().await
    }
    async fn append(&mut self, records: &[LogBytes]) -> Result<(), StorageError> {
        {
            let (lock, cv) = &*self.open;
            let _open = cv.wait_while(lock.lock().unwrap(), |open| !*open).unwrap();
        }
        self.inner.append(records).await
    }
    async fn sync(&mut self) -> Result<(), StorageError> {
        self.inner.sync().await
    }
    async fn write_snapshot(&mut self, revision: u64, snapshot: &[u8]) -> Result<(), StorageError> {
        self.inner.write_snapshot(revision, snapshot).await
    }
}

/// A CP store on gated storage (gate open), and the guard that reopens the gate at exit.
async fn gated_cp_store() -> (Gated, impl Drop, Store) {
    let gate = Gated::new(true);
    let guard = gate.guard();
    let store = Store::builder()
        .open_with_storage(gate.clone())
        .await
        .unwrap();
    (gate, guard, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cp_reads_never_see_a_write_that_is_not_durable() {
    let (gate, _open_at_exit, store) = gated_cp_store().await;
    store.put("a:k", "old").await.unwrap();
    store.put("a:other", "untouched").await.unwrap();
    gate.set(false);

    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.put("a:k", "new").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !writer.is_finished(),
        "a CP write returns only once durable"
    );
    // A key the pending write does not touch reads at once.
    assert_eq!(
        store.get("a:other").await.unwrap(),
        Some(Value::from("untouched"))
    );
    // The pending key's read waits rather than show a write a crash could take back.
    let reader = {
        let store = store.clone();
        tokio::spawn(async move { store.get("a:k").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !reader.is_finished(),
        "read of a non-durable write must wait"
    );

    gate.set(true);
    writer.await.unwrap().unwrap();
    assert_eq!(reader.await.unwrap().unwrap(), Some(Value::from("new")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cp_writers_share_appends() {
    let disk = MemoryStorage::new();
    let store = open(&disk, Durability::Cp).await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100i64 {
                store.put(&format!("w{t}:k{i}"), i).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.revision(), 800);
    store.close().await;
    let reopened = open(&disk, Durability::Cp).await;
    assert_eq!(reopened.revision(), 800);
    assert_eq!(reopened.keys("w3:*").await.unwrap().len(), 100);
}

#[tokio::test]
async fn a_torn_log_tail_is_repaired_and_reported_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    for i in 0..20i64 {
        store.put(&format!("a:k{i}"), i).await.unwrap();
    }
    store.close().await;
    assert!(
        Store::open(dir.path())
            .await
            .unwrap()
            .recovery_repairs()
            .is_empty()
    );
    log_tail::tear_last_segment(dir.path());

    let store = Store::open(dir.path()).await.unwrap();
    assert_eq!(
        store.recovery_repairs().len(),
        1,
        "{:?}",
        store.recovery_repairs()
    );
    assert_eq!(store.revision(), 20);
    assert_eq!(store.get("a:k19").await.unwrap(), Some(Value::Integer(19)));
    store.put("a:after", "repair").await.unwrap();
    store.close().await;
    let store = Store::open(dir.path()).await.unwrap();
    assert!(
        store.recovery_repairs().is_empty(),
        "the repair was made durable"
    );
    assert_eq!(
        store.get("a:after").await.unwrap(),
        Some(Value::from("repair"))
    );
}

#[tokio::test]
async fn a_second_opener_of_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).await.unwrap();
    let err = Store::open(dir.path()).await.unwrap_err();
    assert!(
        matches!(err, Error::Storage(StorageError::Locked { .. })),
        "{err}"
    );
    store.close().await;
    Store::open(dir.path()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cp_subscribers_see_a_change_only_once_it_is_durable() {
    let (gate, _open_at_exit, store) = gated_cp_store().await;
    let mut feed = store.subscribe().unwrap();
    gate.set(false);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { store.put("a:k", "v").await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        feed.try_recv().is_none(),
        "an event of a write that is not durable was delivered"
    );
    gate.set(true);
    writer.await.unwrap().unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), feed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((event.key.as_str(), event.revision), ("a:k", 1));
}

#[tokio::test]
async fn ap_subscribers_see_changes_at_once() {
    let gate = Gated::new(false);
    let _open_at_exit = gate.guard();
    let store = Store::builder()
        .durability(Durability::Ap)
        .open_with_storage(gate.clone())
        .await
        .unwrap();
    let mut feed = store.subscribe().unwrap();
    store.put("a:k", "v").await.unwrap();
    assert_eq!(feed.try_recv().unwrap().unwrap().key, "a:k");
    gate.set(true);
    store.close().await;
}

#[tokio::test]
async fn ap_store_with_memory_limits_evicts_and_persists_the_evictions() {
    let disk = MemoryStorage::new();
    let store = Store::builder()
        .durability(Durability::Ap)
        .memory_limits(Some(100), None)
        .open_with_storage(disk.clone())
        .await
        .unwrap();
    let mut feed = store.subscribe().unwrap();
    for i in 0..150i64 {
        store.put(&format!("cache:k{i:03}"), i).await.unwrap();
    }
    assert_eq!(store.len(), 100);
    assert_eq!(
        store.get("cache:k000").await.unwrap(),
        None,
        "the oldest unused key went first"
    );
    let mut evicted = 0;
    while let Some(ev) = feed.try_recv() {
        evicted += usize::from(ev.unwrap().kind == statemesh::ChangeKind::Evict);
    }
    assert_eq!(evicted, 50);
    store.flush().await.unwrap();
    store.close().await;
    let reopened = Store::builder()
        .durability(Durability::Ap)
        .memory_limits(Some(100), None)
        .open_with_storage(disk)
        .await
        .unwrap();
    assert_eq!(reopened.keys("cache:*").await.unwrap().len(), 100);
    assert_eq!(
        reopened.get("cache:k149").await.unwrap(),
        Some(Value::Integer(149))
    );
}

#[tokio::test]
async fn relaxed_sync_policy_persists_on_flush_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::builder()
        .sync_policy(statemesh::SyncPolicy::EveryMillis(50))
        .open(dir.path())
        .await
        .unwrap();
    for i in 0..100i64 {
        store.put(&format!("a:k{i}"), i).await.unwrap();
    }
    store.flush().await.unwrap();
    store.close().await;
    let reopened = Store::open(dir.path()).await.unwrap();
    assert_eq!(reopened.revision(), 100);
    assert_eq!(
        reopened.get("a:k99").await.unwrap(),
        Some(Value::Integer(99))
    );
}

#[tokio::test]
async fn import_writes_durable_batches_and_stops_at_an_invalid_item() {
    let disk = MemoryStorage::new();
    let store = open(&disk, Durability::Cp).await;
    let items = (0..2_500i64).map(|i| (format!("imp:k{i:05}"), Value::Integer(i)));
    assert_eq!(store.import(items, 1_000).await.unwrap(), 2_500);
    // One revision (and one log record) per batch, all durable when import returns.
    assert_eq!(store.revision(), 3);
    assert_eq!(disk.record_count(), 3);
    // An invalid key in the third batch: the two batches before it stay, nothing after it.
    let items = (0..5_000i64).map(|i| {
        let key = if i == 2_100 {
            "imp:bad..key".to_owned()
        } else {
            format!("imp:n{i:05}")
        };
        (key, Value::Integer(i))
    });
    assert!(matches!(
        store.import(items, 1_000).await,
        Err(Error::Engine(_))
    ));
    store.close().await;
    let reopened = open(&disk, Durability::Cp).await;
    assert_eq!(reopened.len(), 2_500 + 2_000);
    assert_eq!(
        reopened.get("imp:n01999").await.unwrap(),
        Some(Value::Integer(1_999))
    );
    assert_eq!(reopened.get("imp:n02000").await.unwrap(), None);
    assert_eq!(
        reopened
            .scan("imp:k", 10_000, None)
            .await
            .unwrap()
            .items
            .len(),
        2_500
    );
}

#[tokio::test]
async fn a_few_large_writes_trigger_a_checkpoint_by_log_bytes() {
    let disk = MemoryStorage::new();
    let store = Store::builder()
        .checkpoint_bytes(64 << 10)
        .open_with_storage(disk.clone())
        .await
        .unwrap();
    // Ten writes of 10 KiB each: far below the record trigger, past the byte trigger.
    let big = Value::Bytes(vec![7; 10 << 10]);
    for i in 0..10 {
        store.put(&format!("a:big{i}"), big.clone()).await.unwrap();
    }
    let mut waited = 0;
    while disk.record_count() >= 7 && waited < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert!(
        disk.record_count() < 7,
        "a background checkpoint dropped the log it covers ({} records left)",
        disk.record_count()
    );
    let before = store.snapshot().await.unwrap();
    store.close().await;
    let reopened = open(&disk, Durability::Cp).await;
    assert_eq!(reopened.snapshot().await.unwrap(), before);
}

/// Waits (polling) until `done` holds, failing after `limit`.
async fn eventually(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// A writer hands its records to the committer's outbox and wakes it only when no round is
/// coming: no record may be left there waiting for a later write or a flush, wherever in the
/// committer's round the write lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ap_writes_reach_storage_without_a_flush_or_a_later_write() {
    let disk = MemoryStorage::new();
    let store = open(&disk, Durability::Ap).await;
    // One write at a time, each just after the round that appended the one before it.
    for i in 0..300usize {
        store.put(&format!("a:k{i}"), i as i64).await.unwrap();
        eventually(
            "a lone AP write is appended",
            Duration::from_secs(5),
            || disk.record_count() == i + 1,
        )
        .await;
    }
    // Concurrent writers, landing anywhere in the rounds.
    let mut tasks = Vec::new();
    for t in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..250i64 {
                store.put(&format!("w{t}:k{i}"), i).await.unwrap();
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_micros(700)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    eventually("every AP write is appended", Duration::from_secs(5), || {
        disk.record_count() == 1300
    })
    .await;
    // Writes spaced around the committer's pace, so some land just as a quiet round lets the
    // writers wake it again. A thread sleep: the runtime's timer counts whole milliseconds,
    // too coarse for gaps under the 1 ms round (this test's runtime has a second worker).
    for i in 0..200u64 {
        store.put(&format!("spaced:k{i}"), i as i64).await.unwrap();
        std::thread::sleep(Duration::from_micros(300 + (i * 137) % 2_400));
    }
    eventually(
        "every spaced AP write is appended",
        Duration::from_secs(5),
        || disk.record_count() == 1500,
    )
    .await;
    store.close().await;
    let reopened = open(&disk, Durability::Ap).await;
    assert_eq!(reopened.revision(), 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ap_writes_wait_for_storage_past_the_backlog_limit() {
    let gate = Gated::new(true);
    let _open_at_exit = gate.guard();
    let store = Store::builder()
        .durability(Durability::Ap)
        .max_backlog_bytes(64 << 10)
        .open_with_storage(gate.clone())
        .await
        .unwrap();
    gate.set(false);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let value = "v".repeat(4096);
            for i in 0..64 {
                store.put(&format!("a:k{i}"), value.as_str()).await?;
            }
            Ok::<_, Error>(())
        })
    };
    // The first round takes what the outbox holds and blocks in storage; the writes after
    // it pile up in the outbox until it holds more than 64 KiB (sixteen 4 KiB values), and
    // the write that finds that waits.
    eventually("writes fill the backlog", Duration::from_secs(5), || {
        store.revision() >= 16
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stalled_at = store.revision();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (still_at, finished) = (store.revision(), writer.is_finished());
    // Open before asserting: a store dropped with its committer blocked cannot shut down.
    gate.set(true);
    assert!(
        !finished && stalled_at < 64 && still_at == stalled_at,
        "AP writes past the backlog wait for storage (at revision {stalled_at}, then {still_at})"
    );
    writer.await.unwrap().unwrap();
    store.flush().await.unwrap();
    assert_eq!(gate.inner.record_count(), 64);
}

/// Checkpoints run while AP writers keep writing: the committer takes the outbox before each
/// snapshot, so no record a snapshot covers reaches storage after it (storage would refuse it
/// and poison the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ap_checkpoints_under_concurrent_writes_keep_every_write() {
    let disk = MemoryStorage::new();
    let store = Store::builder()
        .durability(Durability::Ap)
        .checkpoint_every(37)
        .open_with_storage(disk.clone())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..400i64 {
                store.put(&format!("w{t}:k{}", i % 90), i).await.unwrap();
                if i % 40 == 0 {
                    store.checkpoint().await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    store.flush().await.unwrap();
    let before = store.snapshot().await.unwrap();
    store.close().await;
    let reopened = open(&disk, Durability::Ap).await;
    assert_eq!(reopened.snapshot().await.unwrap(), before);
    assert_eq!(reopened.revision(), 1600);
}
