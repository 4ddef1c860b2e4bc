//! Transactions through the Store: compare-then-else, interactive transactions, two-phase commit
//! across a reopen, the wait policy, and concurrent bank transfers.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use statemesh::{
    Compare, EngineError, Error, Isolation, Store, Txn, TxnOp, TxnOpResult, Value, WaitPolicy,
};

const LONG: Duration = Duration::from_secs(60);

#[tokio::test]
async fn compare_then_else_through_the_store() {
    let store = Store::in_memory().await.unwrap();
    store.put("a:lock", "free").await.unwrap();
    let claim = Txn::new()
        .when(Compare::value_equals("a:lock", "free"))
        .then(TxnOp::put("a:lock", "taken"))
        .then(TxnOp::put_with_ttl("a:lease", "me", 60_000))
        .otherwise(TxnOp::get("a:lock"));
    let first = store.txn(claim.clone()).await.unwrap();
    assert!(first.succeeded);
    assert_eq!(first.revision, 2);
    let second = store.txn(claim).await.unwrap();
    assert!(!second.succeeded);
    assert_eq!(second.revision, 2, "a read-only branch takes no revision");
    assert!(matches!(
        &second.results[0],
        TxnOpResult::Get(Some(v)) if v.value == Value::from("taken")
    ));
    assert_eq!(store.get("a:lease").await.unwrap(), Some(Value::from("me")));
}

#[tokio::test]
async fn interactive_transactions_commit_conflict_and_roll_back() {
    let store = Store::in_memory().await.unwrap();
    store.put("a:x", 1i64).await.unwrap();
    let t1 = store.begin(Isolation::Serializable, LONG).await.unwrap();
    assert_eq!(t1.get("a:x").await.unwrap(), Some(Value::Integer(1)));
    t1.put("a:x", 2i64).await.unwrap();
    assert_eq!(t1.get("a:x").await.unwrap(), Some(Value::Integer(2)));
    assert_eq!(store.get("a:x").await.unwrap(), Some(Value::Integer(1)));
    let t2 = store.begin(Isolation::Serializable, LONG).await.unwrap();
    assert_eq!(t2.get("a:x").await.unwrap(), Some(Value::Integer(1)));
    t2.put("a:x", 3i64).await.unwrap();
    t1.commit().await.unwrap();
    let err = t2.commit().await.unwrap_err();
    assert_eq!(
        err,
        Error::Engine(EngineError::TxnConflict { key: "a:x".into() })
    );
    assert_eq!(store.get("a:x").await.unwrap(), Some(Value::Integer(2)));
    let t3 = store.begin(Isolation::Snapshot, LONG).await.unwrap();
    t3.delete("a:x").await.unwrap();
    t3.rollback().await.unwrap();
    // Dropping a handle rolls back too.
    {
        let t4 = store.begin(Isolation::Snapshot, LONG).await.unwrap();
        t4.put("a:x", 99i64).await.unwrap();
    }
    assert_eq!(store.get("a:x").await.unwrap(), Some(Value::Integer(2)));
}

#[tokio::test]
async fn an_abandoned_transaction_times_out() {
    let store = Store::in_memory().await.unwrap();
    let t = store
        .begin(Isolation::Serializable, Duration::from_millis(200))
        .await
        .unwrap();
    let id = t.id();
    t.put("a:x", 1i64).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        t.commit().await.unwrap_err(),
        Error::Engine(EngineError::TxnExpired { id })
    );
    assert_eq!(store.get("a:x").await.unwrap(), None);
}

#[tokio::test]
async fn the_timer_drops_an_abandoned_transaction_on_an_idle_store() {
    let store = Store::in_memory().await.unwrap();
    let t = store
        .begin(Isolation::Serializable, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(store.open_transactions(), 1);
    // No call touches the store: only its timer can drop the transaction.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.open_transactions(), 0);
    drop(t);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_transaction_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = Store::builder().open(dir.path()).await.unwrap();
        store.put("bank:a", 100i64).await.unwrap();
        let t = store.begin(Isolation::Serializable, LONG).await.unwrap();
        let a = t.get("bank:a").await.unwrap();
        assert_eq!(a, Some(Value::Integer(100)));
        t.put("bank:a", 70i64).await.unwrap();
        t.put("bank:b", 30i64).await.unwrap();
        let id = t.prepare(WaitPolicy::Fail).await.unwrap();
        assert!(matches!(
            store.put("bank:a", 0i64).await,
            Err(Error::Engine(EngineError::Locked { txn, .. })) if txn == id
        ));
        store.close().await;
        id
    };
    let store = Store::builder().open(dir.path()).await.unwrap();
    assert_eq!(store.prepared_transactions(), vec![id]);
    assert_eq!(store.get("bank:b").await.unwrap(), None);
    assert!(matches!(
        store.delete("bank:b").await,
        Err(Error::Engine(EngineError::Locked { txn, .. })) if txn == id
    ));
    // Across a checkpoint too (the snapshot carries it).
    store.checkpoint().await.unwrap();
    store.close().await;
    let store = Store::builder().open(dir.path()).await.unwrap();
    assert_eq!(store.prepared_transactions(), vec![id]);
    let r = store.commit_prepared(id).await.unwrap();
    assert_eq!(r.affected, 2);
    assert_eq!(store.get("bank:a").await.unwrap(), Some(Value::Integer(70)));
    store.put("bank:a", 71i64).await.unwrap();
    store.close().await;
    let store = Store::builder().open(dir.path()).await.unwrap();
    assert!(store.prepared_transactions().is_empty());
    assert_eq!(store.get("bank:a").await.unwrap(), Some(Value::Integer(71)));
    assert_eq!(store.get("bank:b").await.unwrap(), Some(Value::Integer(30)));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_policy_resolves_when_the_holder_does() {
    let store = Store::in_memory().await.unwrap();
    let holder = store.begin(Isolation::Snapshot, LONG).await.unwrap();
    holder.put("a:k", "holder").await.unwrap();
    let holder = holder.prepare(WaitPolicy::Fail).await.unwrap();

    // Cancelled holder: the waiter prepares and commits.
    let waiter = store.begin(Isolation::Snapshot, LONG).await.unwrap();
    waiter.put("a:k", "waiter").await.unwrap();
    let task = tokio::spawn(async move { waiter.prepare(WaitPolicy::Wait).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!task.is_finished(), "it waits for the holder");
    store.cancel_prepared(holder).await.unwrap();
    let id = task.await.unwrap().unwrap();
    store.commit_prepared(id).await.unwrap();
    assert_eq!(store.get("a:k").await.unwrap(), Some(Value::from("waiter")));

    // Committed holder: the waiter wakes and finds its write conflicting.
    let holder = store.begin(Isolation::Snapshot, LONG).await.unwrap();
    holder.put("a:k", "holder2").await.unwrap();
    let holder = holder.prepare(WaitPolicy::Fail).await.unwrap();
    let waiter = store.begin(Isolation::Snapshot, LONG).await.unwrap();
    waiter.put("a:k", "late").await.unwrap();
    let task = tokio::spawn(async move { waiter.prepare(WaitPolicy::Wait).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!task.is_finished());
    store.commit_prepared(holder).await.unwrap();
    assert_eq!(
        task.await.unwrap().unwrap_err(),
        Error::Engine(EngineError::TxnConflict { key: "a:k".into() })
    );

    // A holder that never resolves: the waiter gives up at its own timeout.
    let holder = store.begin(Isolation::Snapshot, LONG).await.unwrap();
    holder.put("a:k", "stuck").await.unwrap();
    let holder = holder.prepare(WaitPolicy::Fail).await.unwrap();
    let waiter = store
        .begin(Isolation::Snapshot, Duration::from_millis(300))
        .await
        .unwrap();
    waiter.put("a:k", "never").await.unwrap();
    let id = waiter.id();
    let err = waiter.prepare(WaitPolicy::Wait).await.unwrap_err();
    assert_eq!(
        err,
        Error::LockTimeout {
            id,
            key: "a:k".into(),
            holder
        }
    );
    // Fail policy answers at once.
    let other = store.begin(Isolation::Snapshot, LONG).await.unwrap();
    other.put("a:k", "x").await.unwrap();
    assert!(matches!(
        other.prepare(WaitPolicy::Fail).await,
        Err(Error::Engine(EngineError::Locked { txn, .. })) if txn == holder
    ));
}

const ACCOUNTS: usize = 5;
const INITIAL: i64 = 1_000;

fn account(i: usize) -> String {
    format!("bank:acct.{i}")
}

async fn balance(store: &Store, key: &str) -> i64 {
    match store.get(key).await.unwrap() {
        Some(Value::Integer(i)) => i,
        other => panic!("{key}: {other:?}"),
    }
}

/// Concurrent read-modify-write transfers that retry on conflict: no money appears or vanishes,
/// and every committed transfer (each records itself in a ledger key in the same transaction)
/// is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bank_transfers_keep_the_total() {
    for isolation in [Isolation::Serializable, Isolation::Snapshot] {
        let store = Store::in_memory().await.unwrap();
        let items: Vec<_> = (0..ACCOUNTS)
            .map(|i| (account(i), Value::Integer(INITIAL)))
            .collect();
        store.multi_put(&items).await.unwrap();
        let conflicts = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for task in 0..8u64 {
            let store = store.clone();
            let conflicts = conflicts.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..40u64 {
                    // A deterministic spread of accounts and amounts per task and transfer.
                    let from = ((task * 7 + n * 3) % ACCOUNTS as u64) as usize;
                    let to = (from + 1 + (n % (ACCOUNTS as u64 - 1)) as usize) % ACCOUNTS;
                    let amount = ((task + 1) * (n + 1) % 97) as i64 + 1;
                    loop {
                        let t = store.begin(isolation, LONG).await.unwrap();
                        let a = t.get(&account(from)).await.unwrap();
                        let b = t.get(&account(to)).await.unwrap();
                        let (Some(Value::Integer(a)), Some(Value::Integer(b))) = (a, b) else {
                            panic!("accounts missing");
                        };
                        tokio::task::yield_now().await;
                        t.put(&account(from), a - amount).await.unwrap();
                        t.put(&account(to), b + amount).await.unwrap();
                        let entry = format!("{from}>{to}:{amount}");
                        t.put(&format!("bank:ledger.{task}.{n}"), entry)
                            .await
                            .unwrap();
                        match t.commit().await {
                            Ok(_) => break,
                            Err(Error::Engine(EngineError::TxnConflict { .. })) => {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let mut total = 0;
        let mut balances = Vec::new();
        for i in 0..ACCOUNTS {
            let b = balance(&store, &account(i)).await;
            total += b;
            balances.push(b);
        }
        assert_eq!(total, INITIAL * ACCOUNTS as i64, "{isolation:?}");
        // Replaying the ledger from the initial balances gives exactly the final ones.
        let ledger = store.get_pattern("bank:ledger.**").await.unwrap();
        assert_eq!(ledger.len(), 8 * 40);
        let mut replayed = vec![INITIAL; ACCOUNTS];
        for (_, entry) in ledger {
            let Value::String(entry) = entry else {
                panic!("ledger entry")
            };
            let (accounts, amount) = entry.split_once(':').unwrap();
            let (from, to) = accounts.split_once('>').unwrap();
            let amount: i64 = amount.parse().unwrap();
            replayed[from.parse::<usize>().unwrap()] -= amount;
            replayed[to.parse::<usize>().unwrap()] += amount;
        }
        assert_eq!(replayed, balances, "{isolation:?}");
        // Every transfer is one revision: the initial load plus 320 commits.
        assert_eq!(store.revision(), 1 + 8 * 40);
        eprintln!(
            "{isolation:?}: {} conflicts",
            conflicts.load(Ordering::Relaxed)
        );
    }
}
