//! Model-based property tests of interactive transactions.
//!
//! Random interleavings of `begin`, `get`, `put`, `delete`, `commit` and `rollback` by several
//! transactions, mixed with plain puts and deletes, over a few keys. [`Model`] is a plain
//! re-statement of the documented rules: a `BTreeMap` of key -> value, the revision of each
//! key's last change, and per transaction its isolation, snapshot (a copy of the values and the
//! revision), read set and buffered writes. It predicts every reply: the value a transactional
//! read returns, whether a commit succeeds or the exact key it conflicts on, the revision, and
//! all values afterwards. The history limit varies (0 keeps nothing but what open transactions
//! pin), so the pinning is exercised too.
//!
//! A second property adds two-phase commit: `prepare` (fail policy), `commit_prepared` and
//! `cancel_prepared`. The model then also predicts locks: which plain writes, commits and
//! prepares are refused with `Locked`, naming the key and the holder.
//!
//! A third property moves the clock: transactions with short timeouts are dropped at their
//! deadline, by the next engine call past it or by the host's timer (`handle_timeout`), answer
//! `TxnExpired` afterwards, and stop counting in `poll_timeout` and in the history pin.
//!
//! The bank-transfer property runs transfers between accounts as read-modify-write
//! transactions in random interleavings: the total never changes, and the final balances are
//! exactly the initial ones plus every committed transfer, once (no lost update).
#![allow(clippy::unwrap_used)]

mod common;
use common::cases;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use statemesh_core::{
    Engine, EngineConfig, EngineError, Isolation, Timestamp, TxnId, Value, WaitPolicy, WriteOp,
};

const NOW: Timestamp = Timestamp(1_000);
const KEYS: [&str; 4] = ["m:a", "m:b", "m:c", "m:d"];
const SLOTS: usize = 3;
const TIMEOUT_MS: u64 = 3_600_000;

#[derive(Debug, Clone)]
enum Step {
    Begin(usize, Isolation),
    Get(usize, usize),
    Put(usize, usize, i64),
    Delete(usize, usize),
    Commit(usize),
    Rollback(usize),
    PlainPut(usize, i64),
    PlainDelete(usize),
    Prepare(usize),
    /// Resolve the n-th pending transaction (modulo their number): commit when true.
    Resolve(usize, bool),
}

fn isolation() -> impl Strategy<Value = Isolation> {
    prop_oneof![Just(Isolation::Snapshot), Just(Isolation::Serializable)]
}

fn step() -> impl Strategy<Value = Step> {
    let slot = 0..SLOTS;
    let key = 0..KEYS.len();
    prop_oneof![
        2 => (slot.clone(), isolation()).prop_map(|(s, i)| Step::Begin(s, i)),
        4 => (slot.clone(), key.clone()).prop_map(|(s, k)| Step::Get(s, k)),
        3 => (slot.clone(), key.clone(), 0..5i64).prop_map(|(s, k, v)| Step::Put(s, k, v)),
        1 => (slot.clone(), key.clone()).prop_map(|(s, k)| Step::Delete(s, k)),
        2 => slot.clone().prop_map(Step::Commit),
        1 => slot.prop_map(Step::Rollback),
        2 => (key.clone(), 0..5i64).prop_map(|(k, v)| Step::PlainPut(k, v)),
        1 => key.prop_map(Step::PlainDelete),
    ]
}

fn step_2pc() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => step(),
        2 => (0..SLOTS).prop_map(Step::Prepare),
        1 => (0..4usize, any::<bool>()).prop_map(|(i, c)| Step::Resolve(i, c)),
    ]
}

/// A prepared transaction in the model: its writes, and the reads it locks (serializable only).
#[derive(Debug, Clone)]
struct ModelPending {
    id: TxnId,
    writes: BTreeMap<String, Option<i64>>,
    reads: BTreeSet<String>,
}

/// Who holds `key`: the pending transaction writing it, else the lowest-id one that read it.
fn holder(pending: &[ModelPending], key: &str) -> Option<TxnId> {
    writer(pending, key).or_else(|| {
        pending
            .iter()
            .filter(|p| p.reads.contains(key))
            .map(|p| p.id)
            .min()
    })
}

fn writer(pending: &[ModelPending], key: &str) -> Option<TxnId> {
    pending
        .iter()
        .find(|p| p.writes.contains_key(key))
        .map(|p| p.id)
}

#[derive(Debug, Clone)]
struct ModelTxn {
    isolation: Isolation,
    snapshot_revision: u64,
    snapshot: BTreeMap<String, i64>,
    reads: BTreeSet<String>,
    writes: BTreeMap<String, Option<i64>>,
}

#[derive(Debug, Default)]
struct Model {
    values: BTreeMap<String, i64>,
    /// Revision of each key's last change (a delete of an absent key is no change).
    changed: BTreeMap<String, u64>,
    revision: u64,
}

impl Model {
    /// Applies a set of writes as one revision when any changes something (or always, when
    /// `force`: a resolved prepared transaction is a revision of its own).
    fn apply(&mut self, writes: &BTreeMap<String, Option<i64>>, force: bool) -> WriteOp {
        let mut touched = Vec::new();
        for (key, write) in writes {
            match write {
                Some(v) => {
                    self.values.insert(key.clone(), *v);
                    touched.push(key.clone());
                }
                None => {
                    if self.values.remove(key).is_some() {
                        touched.push(key.clone());
                    }
                }
            }
        }
        if touched.is_empty() && !force {
            return WriteOp::Noop;
        }
        self.revision += 1;
        let op = if touched.is_empty() {
            WriteOp::Noop
        } else {
            WriteOp::Batch
        };
        for key in touched {
            self.changed.insert(key, self.revision);
        }
        op
    }

    fn begin(&self, isolation: Isolation) -> ModelTxn {
        ModelTxn {
            isolation,
            snapshot_revision: self.revision,
            snapshot: self.values.clone(),
            reads: BTreeSet::new(),
            writes: BTreeMap::new(),
        }
    }

    /// The conflict key a commit of `txn` predicts, if any.
    fn conflict(&self, txn: &ModelTxn) -> Option<String> {
        let changed = |k: &&String| {
            self.changed
                .get(*k)
                .is_some_and(|r| *r > txn.snapshot_revision)
        };
        match txn.isolation {
            Isolation::Serializable => txn.reads.iter().find(changed).cloned(),
            Isolation::Snapshot => txn.writes.keys().find(changed).cloned(),
        }
    }
}

fn model_get(txn: &mut ModelTxn, key: &str) -> Option<i64> {
    if let Some(w) = txn.writes.get(key) {
        return *w;
    }
    txn.reads.insert(key.to_owned());
    txn.snapshot.get(key).copied()
}

fn int(v: Option<Value>) -> Option<i64> {
    v.map(|v| match v {
        Value::Integer(i) => i,
        other => panic!("not an integer: {other:?}"),
    })
}

/// After every step: the revision, every value and the number of open transactions agree.
fn continue_checks(
    engine: &Engine,
    model: &Model,
    slots: &[Option<(TxnId, ModelTxn)>],
    i: usize,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(engine.revision(), model.revision, "step {}", i);
    for key in KEYS {
        prop_assert_eq!(
            int(engine.get(NOW, key).unwrap()),
            model.values.get(key).copied(),
            "step {} key {}",
            i,
            key
        );
    }
    let open = slots.iter().filter(|s| s.is_some()).count();
    prop_assert_eq!(engine.open_txns(), open, "step {}", i);
    Ok(())
}

fn run(history_limit: usize, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut engine =
        Engine::new(EngineConfig::default().with_history_limit(history_limit)).unwrap();
    let mut model = Model::default();
    let mut slots: Vec<Option<(TxnId, ModelTxn)>> = vec![None; SLOTS];
    let mut pending: Vec<ModelPending> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Begin(s, isolation) => {
                if let Some((id, _)) = slots[*s].take() {
                    engine.rollback_txn(NOW, id).unwrap();
                }
                let id = engine.begin_txn(NOW, *isolation, TIMEOUT_MS).unwrap();
                slots[*s] = Some((id, model.begin(*isolation)));
            }
            Step::Get(s, k) => {
                if let Some((id, txn)) = slots[*s].as_mut() {
                    let got = int(engine.txn_get(NOW, *id, KEYS[*k]).unwrap());
                    prop_assert_eq!(got, model_get(txn, KEYS[*k]), "step {} {:?}", i, step);
                }
            }
            Step::Put(s, k, v) => {
                if let Some((id, txn)) = slots[*s].as_mut() {
                    engine
                        .txn_put(NOW, *id, KEYS[*k], &Value::Integer(*v))
                        .unwrap();
                    txn.writes.insert(KEYS[*k].to_owned(), Some(*v));
                }
            }
            Step::Delete(s, k) => {
                if let Some((id, txn)) = slots[*s].as_mut() {
                    engine.txn_delete(NOW, *id, KEYS[*k]).unwrap();
                    txn.writes.insert(KEYS[*k].to_owned(), None);
                }
            }
            Step::Commit(s) => {
                if let Some((id, txn)) = slots[*s].take() {
                    let got = engine.commit_txn(NOW, id);
                    let locked = txn
                        .writes
                        .keys()
                        .find_map(|k| holder(&pending, k).map(|h| (k.clone(), h)));
                    match (model.conflict(&txn), locked) {
                        (Some(key), _) => {
                            prop_assert_eq!(
                                got,
                                Err(EngineError::TxnConflict { key }),
                                "step {}",
                                i
                            );
                        }
                        (None, Some((key, txn_holder))) => {
                            prop_assert_eq!(
                                got,
                                Err(EngineError::Locked {
                                    key,
                                    txn: txn_holder
                                }),
                                "step {}",
                                i
                            );
                            // Refused for a lock: still open.
                            slots[*s] = Some((id, txn));
                            continue_checks(&engine, &model, &slots, i)?;
                            continue;
                        }
                        (None, None) => {
                            let op = model.apply(&txn.writes, false);
                            let got = got.unwrap();
                            prop_assert_eq!(got.op, op, "step {}", i);
                            prop_assert_eq!(got.revision, model.revision, "step {}", i);
                        }
                    }
                    // Committed or not, it is over.
                    prop_assert_eq!(
                        engine.rollback_txn(NOW, id),
                        Err(EngineError::TxnNotFound { id })
                    );
                }
            }
            Step::Rollback(s) => {
                if let Some((id, _)) = slots[*s].take() {
                    engine.rollback_txn(NOW, id).unwrap();
                }
            }
            Step::PlainPut(k, v) => {
                let got = engine.put(NOW, KEYS[*k], &Value::Integer(*v));
                match holder(&pending, KEYS[*k]) {
                    Some(txn) => prop_assert_eq!(
                        got.unwrap_err(),
                        EngineError::Locked {
                            key: KEYS[*k].into(),
                            txn
                        }
                    ),
                    None => {
                        got.unwrap();
                        model.apply(&BTreeMap::from([(KEYS[*k].to_owned(), Some(*v))]), false);
                    }
                }
            }
            Step::PlainDelete(k) => {
                let got = engine.delete(NOW, KEYS[*k]);
                match holder(&pending, KEYS[*k]) {
                    Some(txn) => prop_assert_eq!(
                        got.unwrap_err(),
                        EngineError::Locked {
                            key: KEYS[*k].into(),
                            txn
                        }
                    ),
                    None => {
                        got.unwrap();
                        model.apply(&BTreeMap::from([(KEYS[*k].to_owned(), None)]), false);
                    }
                }
            }
            Step::Prepare(s) => {
                if let Some((id, txn)) = slots[*s].take() {
                    let got = engine.prepare_txn(NOW, id, WaitPolicy::Fail);
                    let reads = match txn.isolation {
                        Isolation::Serializable => txn.reads.clone(),
                        Isolation::Snapshot => BTreeSet::new(),
                    };
                    let locked = txn
                        .writes
                        .keys()
                        .find_map(|k| holder(&pending, k).map(|h| (k.clone(), h)))
                        .or_else(|| {
                            reads
                                .iter()
                                .find_map(|k| writer(&pending, k).map(|h| (k.clone(), h)))
                        });
                    match (model.conflict(&txn), locked) {
                        (Some(key), _) => {
                            prop_assert_eq!(
                                got,
                                Err(EngineError::TxnConflict { key }),
                                "step {}",
                                i
                            );
                        }
                        (None, Some((key, holder))) => {
                            prop_assert_eq!(
                                got,
                                Err(EngineError::Locked { key, txn: holder }),
                                "step {}",
                                i
                            );
                            slots[*s] = Some((id, txn));
                        }
                        (None, None) => {
                            model.revision += 1;
                            prop_assert_eq!(got, Ok(model.revision), "step {}", i);
                            pending.push(ModelPending {
                                id,
                                writes: txn.writes,
                                reads,
                            });
                            pending.sort_by_key(|p| p.id);
                        }
                    }
                }
            }
            Step::Resolve(n, commit) => {
                if !pending.is_empty() {
                    let p = pending.remove(n % pending.len());
                    if *commit {
                        let got = engine.commit_prepared(NOW, p.id).unwrap();
                        let op = model.apply(&p.writes, true);
                        prop_assert_eq!(got.op, op, "step {}", i);
                        prop_assert_eq!(got.revision, model.revision, "step {}", i);
                    } else {
                        model.revision += 1;
                        prop_assert_eq!(engine.cancel_prepared(NOW, p.id), Ok(model.revision));
                    }
                }
            }
        }
        continue_checks(&engine, &model, &slots, i)?;
        let ids: Vec<TxnId> = pending.iter().map(|p| p.id).collect();
        prop_assert_eq!(engine.prepared_txns(), ids, "step {}", i);
    }
    // With every transaction ended, the history is back within its limit.
    for (id, _) in slots.into_iter().flatten() {
        engine.rollback_txn(NOW, id).unwrap();
    }
    for p in pending {
        engine.cancel_prepared(NOW, p.id).unwrap();
    }
    engine.put(NOW, "m:end", &Value::Integer(0)).unwrap();
    prop_assert!(engine.history_len() <= history_limit.max(1));
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    /// Transactional reads, commit outcomes (with the exact conflict key), revisions and values
    /// agree with the model.
    #[test]
    fn transactions_agree_with_model(
        history_limit in prop_oneof![Just(0usize), Just(1), Just(3), Just(10_000)],
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        run(history_limit, &steps)?;
    }

    /// The same with two-phase commit: prepares, resolutions and the locks they hold.
    #[test]
    fn two_phase_commit_agrees_with_model(
        history_limit in prop_oneof![Just(0usize), Just(10_000)],
        steps in proptest::collection::vec(step_2pc(), 1..120),
    ) {
        run(history_limit, &steps)?;
    }
}

// ---- bank transfers ----

const ACCOUNTS: usize = 4;
const INITIAL: i64 = 100;

fn account(i: usize) -> String {
    format!("bank:acct.{i}")
}

/// One transfer's progress: begin, read both accounts, write both, commit.
#[derive(Debug, Clone)]
struct Transfer {
    from: usize,
    to: usize,
    amount: i64,
    isolation: Isolation,
}

fn transfer() -> impl Strategy<Value = Transfer> {
    (0..ACCOUNTS, 1..ACCOUNTS, 1..50i64, isolation()).prop_map(|(from, off, amount, isolation)| {
        Transfer {
            from,
            to: (from + off) % ACCOUNTS,
            amount,
            isolation,
        }
    })
}

#[derive(Debug)]
enum Phase {
    Begun(TxnId),
    Read(TxnId, i64, i64),
    Written(TxnId),
}

proptest! {
    #![proptest_config(cases(256))]

    /// Interleaved read-modify-write transfers: the total never changes, and the balances are the
    /// initial ones plus exactly the committed transfers.
    #[test]
    fn bank_transfers_keep_the_total(
        transfers in proptest::collection::vec(transfer(), 1..24),
        schedule in proptest::collection::vec(0..6usize, 1..200),
        history_limit in prop_oneof![Just(0usize), Just(10_000)],
    ) {
        let mut engine =
            Engine::new(EngineConfig::default().with_history_limit(history_limit)).unwrap();
        let items: Vec<_> = (0..ACCOUNTS).map(|i| (account(i), Value::Integer(INITIAL))).collect();
        engine.multi_put(NOW, &items).unwrap();
        let mut expected = [INITIAL; ACCOUNTS];
        let mut pending: Vec<(Transfer, Option<Phase>)> =
            transfers.into_iter().map(|t| (t, None)).collect();
        let (mut committed, mut conflicts) = (0, 0);
        // Each schedule entry advances one of the live transfers a step; then the rest finish.
        let finish = std::iter::repeat_n(0usize, 5 * pending.len() + 5);
        for pick in schedule.into_iter().chain(finish) {
            if pending.is_empty() {
                break;
            }
            let slot = pick % pending.len();
            let (t, phase) = &mut pending[slot];
            let next = match phase.take() {
                None => Some(Phase::Begun(engine.begin_txn(NOW, t.isolation, TIMEOUT_MS).unwrap())),
                Some(Phase::Begun(id)) => {
                    let a = int(engine.txn_get(NOW, id, &account(t.from)).unwrap()).unwrap();
                    let b = int(engine.txn_get(NOW, id, &account(t.to)).unwrap()).unwrap();
                    Some(Phase::Read(id, a, b))
                }
                Some(Phase::Read(id, a, b)) => {
                    engine.txn_put(NOW, id, &account(t.from), &Value::Integer(a - t.amount)).unwrap();
                    engine.txn_put(NOW, id, &account(t.to), &Value::Integer(b + t.amount)).unwrap();
                    Some(Phase::Written(id))
                }
                Some(Phase::Written(id)) => {
                    match engine.commit_txn(NOW, id) {
                        Ok(_) => {
                            committed += 1;
                            expected[t.from] -= t.amount;
                            expected[t.to] += t.amount;
                        }
                        Err(EngineError::TxnConflict { key }) => {
                            conflicts += 1;
                            prop_assert!(key == account(t.from) || key == account(t.to));
                        }
                        Err(e) => return Err(TestCaseError::fail(e.to_string())),
                    }
                    None
                }
            };
            match next {
                Some(p) => *phase = Some(p),
                None => {
                    pending.remove(slot);
                }
            }
            let total: i64 = (0..ACCOUNTS)
                .map(|i| int(engine.get(NOW, &account(i)).unwrap()).unwrap())
                .sum();
            prop_assert_eq!(total, INITIAL * ACCOUNTS as i64);
        }
        prop_assert!(pending.is_empty());
        for (i, want) in expected.iter().enumerate() {
            prop_assert_eq!(int(engine.get(NOW, &account(i)).unwrap()), Some(*want));
        }
        prop_assert_eq!(engine.revision(), 1 + committed);
        let _ = conflicts;
    }
}

// ---- timeouts ----

#[derive(Debug, Clone)]
enum Timed {
    Begin(usize, Isolation, u64),
    Get(usize, usize),
    Put(usize, usize, i64),
    Commit(usize),
    Rollback(usize),
    PlainPut(usize, i64),
    /// Moves the clock; with `true` the host's timer fires (`handle_timeout`).
    Advance(u64, bool),
}

fn timed_step() -> impl Strategy<Value = Timed> {
    let slot = 0..SLOTS;
    let key = 0..KEYS.len();
    prop_oneof![
        2 => (slot.clone(), isolation(), 1..40u64).prop_map(|(s, i, t)| Timed::Begin(s, i, t)),
        3 => (slot.clone(), key.clone()).prop_map(|(s, k)| Timed::Get(s, k)),
        3 => (slot.clone(), key.clone(), 0..5i64).prop_map(|(s, k, v)| Timed::Put(s, k, v)),
        2 => slot.clone().prop_map(Timed::Commit),
        1 => slot.prop_map(Timed::Rollback),
        2 => (key, 0..5i64).prop_map(|(k, v)| Timed::PlainPut(k, v)),
        3 => (0..20u64, any::<bool>()).prop_map(|(ms, fire)| Timed::Advance(ms, fire)),
    ]
}

/// A slot of the timed model: a live transaction with its deadline, or one that timed out (its
/// id is kept so the next call on it can check the `TxnExpired` answer).
#[derive(Debug, Clone)]
enum Slot {
    Empty,
    Open(TxnId, ModelTxn, Timestamp),
    Gone(TxnId),
}

/// Every engine call first drops the transactions whose deadline is at or before its `now`.
fn expire(slots: &mut [Slot], now: Timestamp) {
    for slot in slots.iter_mut() {
        if let Slot::Open(id, _, deadline) = slot
            && *deadline <= now
        {
            *slot = Slot::Gone(*id);
        }
    }
}

fn run_timed(steps: &[Timed]) -> Result<(), TestCaseError> {
    let mut engine = Engine::new(EngineConfig::default().with_history_limit(0)).unwrap();
    let mut model = Model::default();
    let mut slots = vec![Slot::Empty; SLOTS];
    let mut now = NOW;
    for (i, step) in steps.iter().enumerate() {
        let gone = |slots: &[Slot], s: usize| match slots[s] {
            Slot::Gone(id) => Some(id),
            _ => None,
        };
        match step {
            Timed::Advance(ms, fire) => {
                now = now.saturating_add_millis(*ms);
                if *fire {
                    expire(&mut slots, now);
                    engine.handle_timeout(now);
                }
            }
            Timed::Begin(s, isolation, timeout) => {
                expire(&mut slots, now);
                if let Slot::Open(id, _, _) = slots[*s] {
                    engine.rollback_txn(now, id).unwrap();
                }
                let id = engine.begin_txn(now, *isolation, *timeout).unwrap();
                let deadline = now.saturating_add_millis(*timeout);
                slots[*s] = Slot::Open(id, model.begin(*isolation), deadline);
            }
            Timed::Get(s, _) | Timed::Put(s, _, _) | Timed::Commit(s) | Timed::Rollback(s)
                if !matches!(slots[*s], Slot::Empty) =>
            {
                expire(&mut slots, now);
                if let Some(id) = gone(&slots, *s) {
                    let got = match step {
                        Timed::Get(_, k) => engine.txn_get(now, id, KEYS[*k]).map(|_| ()),
                        Timed::Put(_, k, v) => {
                            engine.txn_put(now, id, KEYS[*k], &Value::Integer(*v))
                        }
                        Timed::Commit(_) => engine.commit_txn(now, id).map(|_| ()),
                        _ => engine.rollback_txn(now, id),
                    };
                    prop_assert_eq!(got, Err(EngineError::TxnExpired { id }), "step {}", i);
                    slots[*s] = Slot::Empty;
                } else if let Slot::Open(id, txn, _) = &mut slots[*s] {
                    let id = *id;
                    match step {
                        Timed::Get(_, k) => {
                            let got = int(engine.txn_get(now, id, KEYS[*k]).unwrap());
                            prop_assert_eq!(got, model_get(txn, KEYS[*k]), "step {}", i);
                        }
                        Timed::Put(_, k, v) => {
                            engine
                                .txn_put(now, id, KEYS[*k], &Value::Integer(*v))
                                .unwrap();
                            txn.writes.insert(KEYS[*k].to_owned(), Some(*v));
                        }
                        Timed::Commit(_) => {
                            let got = engine.commit_txn(now, id);
                            match model.conflict(txn) {
                                Some(key) => prop_assert_eq!(
                                    got,
                                    Err(EngineError::TxnConflict { key }),
                                    "step {}",
                                    i
                                ),
                                None => {
                                    let writes = txn.writes.clone();
                                    model.apply(&writes, false);
                                    prop_assert_eq!(got.unwrap().revision, model.revision);
                                }
                            }
                            slots[*s] = Slot::Empty;
                        }
                        _ => {
                            engine.rollback_txn(now, id).unwrap();
                            slots[*s] = Slot::Empty;
                        }
                    }
                }
            }
            Timed::PlainPut(k, v) => {
                expire(&mut slots, now);
                engine.put(now, KEYS[*k], &Value::Integer(*v)).unwrap();
                model.apply(&BTreeMap::from([(KEYS[*k].to_owned(), Some(*v))]), false);
            }
            _ => {}
        }
        prop_assert_eq!(engine.revision(), model.revision, "step {}", i);
        let open: Vec<Timestamp> = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Open(_, _, deadline) => Some(*deadline),
                _ => None,
            })
            .collect();
        prop_assert_eq!(engine.open_txns(), open.len(), "step {}", i);
        prop_assert_eq!(
            engine.poll_timeout(),
            open.iter().min().copied(),
            "step {}",
            i
        );
        // What no open transaction pins is let go (the limit is 0).
        if open.is_empty() {
            prop_assert_eq!(engine.history_len(), 0, "step {}", i);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(256))]

    /// Transactions time out exactly at their deadline on the next call (or timer fire) past
    /// it, answer `TxnExpired` afterwards, leave `poll_timeout` and unpin the history; the rest
    /// agrees with the model as above.
    #[test]
    fn timeouts_agree_with_model(steps in proptest::collection::vec(timed_step(), 1..150)) {
        run_timed(&steps)?;
    }
}
