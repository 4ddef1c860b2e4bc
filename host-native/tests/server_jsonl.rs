//! End to end through `statemesh::Client` against the real binary.

#[path = "server_jsonl_common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::Server;
use futures_core::Stream;
use serde_json::json;
use statemesh::{
    ChangeKind, Client, Error, Isolation, Metric, PutOptions, Since, TextIndexDef, Ttl, Value,
    ValueIndexDef, VectorIndexDef, WriteOp,
};

fn code<T: std::fmt::Debug>(r: statemesh::Result<T>) -> String {
    r.expect_err("an error").code().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_round_trips_every_key_value_op() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let c = Client::connect(&server.addr).await.expect("connect");
    c.ping().await.expect("ping");

    // Every value kind survives the wire.
    let kinds = [
        Value::from("text"),
        Value::from(42i64),
        Value::from(2.0f64),
        Value::from(false),
        Value::Json(json!({"a": [1, 2]})),
        Value::Json(json!("a JSON string")),
        Value::Bytes(vec![0, 1, 255]),
        Value::Document {
            content_type: "image/png".into(),
            data: vec![137, 80],
        },
    ];
    for (i, v) in kinds.iter().enumerate() {
        let w = c.put(&format!("kinds:k{i}"), v.clone()).await.expect("put");
        assert_eq!(w.op, WriteOp::Create);
        assert_eq!(
            c.get(&format!("kinds:k{i}")).await.expect("get"),
            Some(v.clone())
        );
    }
    assert_eq!(c.get("kinds:missing").await.expect("get"), None);
    assert!(c.exists("kinds:k0").await.expect("exists"));

    // Versions and optimistic concurrency keep the store's codes.
    let (_, version) = c
        .get_with_version("kinds:k0")
        .await
        .expect("get_with_version")
        .expect("present");
    assert_eq!(version, 1);
    assert_eq!(
        code(c.put_if_version("kinds:k0", "x", 7).await),
        "VERSION_CONFLICT"
    );
    let w = c
        .put_if_version("kinds:k0", "y", 1)
        .await
        .expect("put_if_version");
    assert_eq!(w.version, 2);
    assert_eq!(code(c.get("no namespace ::bad").await), "INVALID_KEY");

    // TTLs.
    c.put_with_ttl("s:t", "v", 60_000)
        .await
        .expect("put_with_ttl");
    assert!(
        matches!(c.get_ttl("s:t").await.expect("ttl"), Some(Ttl::Expires { remaining_ms, .. }) if remaining_ms <= 60_000)
    );
    c.extend_ttl("s:t", 1000).await.expect("extend");
    c.remove_ttl("s:t").await.expect("remove_ttl");
    assert_eq!(c.get_ttl("s:t").await.expect("ttl"), Some(Ttl::Persistent));
    c.set_ttl("s:t", 50).await.expect("set_ttl");
    assert_eq!(c.get_ttl("s:nope").await.expect("ttl"), None);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(c.get("s:t").await.expect("get"), None);

    // put_with: metadata and keep_ttl.
    let mut meta = serde_json::Map::new();
    meta.insert("owner".into(), json!("ann"));
    let mut opts = PutOptions::default();
    opts.metadata = Some(meta.clone());
    opts.ttl_ms = Some(60_000);
    c.put_with("s:m", "v", &opts).await.expect("put_with");
    meta.insert("owner".into(), json!("bob"));
    c.set_metadata("s:m", &meta).await.expect("set_metadata");

    // Counters, appends, compare-and-swap.
    assert_eq!(c.increment("n:c", 5).await.expect("incr").0, 5);
    assert_eq!(c.increment("n:c", -2).await.expect("incr").0, 3);
    assert_eq!(code(c.increment("kinds:k0", 1).await), "WRONG_TYPE");
    c.put("s:a", "ab").await.expect("put");
    assert_eq!(c.append("s:a", "cd").await.expect("append").0, 4);
    assert_eq!(
        code(
            c.compare_and_swap("s:a", Some(&Value::from("zz")), "x")
                .await
        ),
        "VALUE_CONFLICT"
    );
    c.compare_and_swap("s:a", Some(&Value::from("abcd")), "x")
        .await
        .expect("cas");
    c.compare_and_swap("s:new", None, "first")
        .await
        .expect("cas absent");
    assert_eq!(
        c.get("s:new").await.expect("get"),
        Some(Value::from("first"))
    );

    // Batches, patterns, scans.
    let items: Vec<(String, Value)> = (0..25)
        .map(|i| (format!("b:item.{i:02}"), Value::from(i as i64)))
        .collect();
    assert_eq!(c.multi_put(&items).await.expect("multi_put").affected, 25);
    let got = c
        .multi_get(&["b:item.00", "b:none", "b:item.24"])
        .await
        .expect("multi_get");
    assert_eq!(
        got,
        vec![Some(Value::from(0i64)), None, Some(Value::from(24i64))]
    );
    assert_eq!(c.keys("b:item.*").await.expect("keys").len(), 25);
    assert_eq!(
        c.get_pattern("b:item.1*").await.expect("get_pattern").len(),
        10
    );
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = c.scan("b:item.", 10, cursor.as_ref()).await.expect("scan");
        seen.extend(page.items.into_iter().map(|(k, _)| k));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "scan pages are in key order"
    );
    assert_eq!(
        c.multi_delete(&["b:item.00", "b:item.01"])
            .await
            .expect("multi_delete")
            .affected,
        2
    );
    assert_eq!(
        c.delete_pattern("b:item.1*")
            .await
            .expect("delete_pattern")
            .affected,
        10
    );
    assert_eq!(
        c.delete("b:item.24").await.expect("delete").op,
        WriteOp::Delete
    );
    assert_eq!(c.keys("b:**").await.expect("keys").len(), 12);

    // State and lifecycle.
    let stats = c.stats().await.expect("stats");
    assert_eq!(c.len().await.expect("len") as u64, stats.keys);
    assert!(stats.revision > 0);
    c.checkpoint().await.expect("checkpoint");
    c.flush().await.expect("flush");
    assert!(c.cleanup_expired().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_transactions_commit_roll_back_and_end_with_the_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--mode", "ap"]);
    let c = Client::connect(&server.addr).await.expect("connect");
    let other = Client::connect(&server.addr).await.expect("connect");

    let t = c
        .begin(Isolation::Serializable, Duration::from_secs(10))
        .await
        .expect("begin");
    t.put("t:a", "1").await.expect("txn put");
    t.put_with_ttl("t:b", "2", 60_000)
        .await
        .expect("txn put ttl");
    assert_eq!(t.get("t:a").await.expect("txn get"), Some(Value::from("1")));
    assert_eq!(
        other.get("t:a").await.expect("get"),
        None,
        "not visible before commit"
    );
    let w = t.commit().await.expect("commit");
    assert!(w.revision > 0);
    assert_eq!(other.get("t:a").await.expect("get"), Some(Value::from("1")));

    let t = c
        .begin(Isolation::Snapshot, Duration::from_secs(10))
        .await
        .expect("begin");
    t.delete("t:a").await.expect("txn delete");
    t.rollback().await.expect("rollback");
    assert_eq!(c.get("t:a").await.expect("get"), Some(Value::from("1")));

    // First committer wins.
    let t = c
        .begin(Isolation::Serializable, Duration::from_secs(10))
        .await
        .expect("begin");
    let _ = t.get("t:a").await.expect("read");
    t.put("t:a", "mine").await.expect("put");
    other.put("t:a", "theirs").await.expect("put");
    assert_eq!(code(t.commit().await), "TXN_CONFLICT");

    // Dropping a transaction handle rolls it back on the server.
    let t = c
        .begin(Isolation::Serializable, Duration::from_secs(10))
        .await
        .expect("begin");
    t.put("t:orphan", "x").await.expect("put");
    assert_eq!(other.stats().await.expect("stats").open_transactions, 1);
    drop(t);
    let mut open = 1;
    for _ in 0..100 {
        open = other.stats().await.expect("stats").open_transactions;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(open, 0);
    assert_eq!(other.get("t:orphan").await.expect("get"), None);
}

async fn next_event(s: &mut statemesh::RemoteSubscription) -> statemesh::ChangeEvent {
    tokio::time::timeout(Duration::from_secs(10), s.recv())
        .await
        .expect("an event in time")
        .expect("an event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_subscriptions_push_events_and_resume_from_a_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let c = Client::connect(&server.addr).await.expect("connect");
    let mut sub = c.subscribe_pattern("chat:room.*").await.expect("subscribe");
    let mut all = c.subscribe().await.expect("subscribe all");
    let first = c.put("chat:room.1", "hello").await.expect("put");
    c.put("other:x", "ignored by the pattern")
        .await
        .expect("put");
    c.put("chat:room.1", "again").await.expect("put");
    c.delete("chat:room.1").await.expect("delete");

    let e = next_event(&mut sub).await;
    assert_eq!(
        (e.key.as_str(), e.kind, e.revision),
        ("chat:room.1", ChangeKind::Create, first.revision)
    );
    assert_eq!(
        e.new.expect("new").decode().expect("decode"),
        Value::from("hello")
    );
    let e = next_event(&mut sub).await;
    assert_eq!(e.kind, ChangeKind::Update);
    assert_eq!(
        e.old.expect("old").decode().expect("decode"),
        Value::from("hello")
    );
    assert_eq!(next_event(&mut sub).await.kind, ChangeKind::Delete);
    assert_eq!(next_event(&mut all).await.key, "chat:room.1");
    assert_eq!(next_event(&mut all).await.key, "other:x");

    // Resume after the first change: history, then live.
    let mut resumed = c
        .stream_changes(Since::Revision(first.revision), None)
        .await
        .expect("stream_changes");
    assert_eq!(next_event(&mut resumed).await.key, "other:x");
    assert_eq!(next_event(&mut resumed).await.kind, ChangeKind::Update);
    assert_eq!(next_event(&mut resumed).await.kind, ChangeKind::Delete);
    c.put("chat:room.2", "live").await.expect("put");
    assert_eq!(next_event(&mut resumed).await.key, "chat:room.2");
    let changes = c
        .changes_since(first.revision, 100)
        .await
        .expect("changes_since");
    assert_eq!(changes.len(), 4);
    let bad = code(c.subscribe_pattern("a:[unclosed").await);
    assert!(bad.starts_with("INVALID_"), "{bad}");

    // A subscription is a Stream too, and unsubscribing stops it on the server.
    fn is_stream<S: Stream>(_: &S) {}
    is_stream(&sub);
    drop(sub);
    drop(all);
    drop(resumed);
    c.put("chat:room.3", "after").await.expect("put");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_search_text_values_and_vectors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory"]);
    let c = Client::connect(&server.addr).await.expect("connect");
    c.declare_text_index(TextIndexDef::new("notes", "notes:*").field("body"))
        .await
        .expect("text index");
    c.declare_value_index(ValueIndexDef::new("by_status", "tasks:*").field("status"))
        .await
        .expect("value index");
    c.declare_vector_index(VectorIndexDef::new("emb", "emb:*", 3, Metric::L2))
        .await
        .expect("vector index");
    c.put(
        "notes:1",
        Value::Json(json!({"body": "the quick brown fox"})),
    )
    .await
    .expect("put");
    c.put("notes:2", Value::Json(json!({"body": "a lazy dog sleeps"})))
        .await
        .expect("put");
    c.put("tasks:1", Value::Json(json!({"status": "open"})))
        .await
        .expect("put");
    c.put("tasks:2", Value::Json(json!({"status": "done"})))
        .await
        .expect("put");
    c.add_vector("emb", "emb:a", &[0.0, 0.0, 1.0])
        .await
        .expect("add_vector");
    c.add_vector("emb", "emb:b", &[1.0, 0.0, 0.0])
        .await
        .expect("add_vector");

    let hits = c
        .search_text("notes", "fox", None, 10)
        .await
        .expect("search_text");
    assert_eq!(
        hits.iter().map(|h| h.key.as_str()).collect::<Vec<_>>(),
        ["notes:1"]
    );
    let keys = c
        .search_by_value("by_status", Some("status"), &json!("open"), None)
        .await
        .expect("search_by_value");
    assert_eq!(keys, ["tasks:1"]);
    let near = c
        .vector_search("emb", &[0.9, 0.0, 0.1], 1, None)
        .await
        .expect("vector_search");
    assert_eq!(near[0].key, "emb:b");
    assert_eq!(
        c.index_stats("notes")
            .await
            .expect("stats")
            .expect("index")
            .entries,
        2
    );
    assert!(c.index_stats("none").await.expect("stats").is_none());
    assert!(c.drop_index("notes").await.expect("drop"));
    assert!(!c.drop_index("notes").await.expect("drop"));
    assert!(c.search_text("notes", "fox", None, 10).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_shared_by_many_tasks_pipelines_cp_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let c = Client::connect(&server.addr).await.expect("connect");
    let mut tasks = Vec::new();
    for t in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                c.put(&format!("p:t{t}.k{i}"), i as i64).await.expect("put");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(c.keys("p:**").await.expect("keys").len(), 800);
    let values = c
        .multi_get(&(0..100).map(|i| format!("p:t3.k{i}")).collect::<Vec<_>>())
        .await
        .expect("multi_get");
    assert!(
        values
            .iter()
            .enumerate()
            .all(|(i, v)| *v == Some(Value::from(i as i64)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_writes_and_keeps_every_acknowledged_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let c = Client::connect(&server.addr).await.expect("connect");
    let mut tasks = Vec::new();
    for t in 0..4 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = HashMap::new();
            for i in 0.. {
                let key = format!("g:t{t}.k{i}");
                match c.put(&key, i as i64).await {
                    Ok(_) => {
                        acked.insert(key, i as i64);
                    }
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );
    let mut acked = HashMap::new();
    for t in tasks {
        acked.extend(t.await.expect("task"));
    }
    assert!(!acked.is_empty());
    let after = Server::start(dir.path(), &[]);
    let c = Client::connect(&after.addr).await.expect("connect");
    for (key, value) in &acked {
        assert_eq!(
            c.get(key).await.expect("get"),
            Some(Value::from(*value)),
            "{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_connection_errors_have_their_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory", "--auth-token", "s3cret"]);
    let anonymous = Client::connect(&server.addr).await.expect("connect");
    assert_eq!(code(anonymous.get("a:b").await), "UNAUTHORIZED");
    assert_eq!(
        code(Client::connect_with_token(&server.addr, "wrong").await),
        "UNAUTHORIZED"
    );
    let c = Client::connect_with_token(&server.addr, "s3cret")
        .await
        .expect("auth");
    c.put("a:b", "ok").await.expect("put");
    drop(server);
    let e = c.get("a:b").await.expect_err("server gone");
    assert_eq!(e.code(), "CONNECTION");
    assert!(matches!(e, Error::Connection(_)));
    let refused = Client::connect("127.0.0.1:1")
        .await
        .expect_err("nothing listens");
    assert_eq!(refused.code(), "CONNECTION");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_history_ops_answer_as_the_embedded_store_does() {
    use statemesh::{Patch, Store};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let c = Client::connect(&server.addr).await.expect("connect");
    let local = Store::in_memory().await.expect("in-memory store");

    // The same writes on both: a create, a merge patch, a JSON patch, a delete, a re-create.
    let merge = Patch::merge(json!({"b": 2, "a": null}));
    let ops = Patch::json(json!([{"op": "add", "path": "/c", "value": [1, 2]}])).expect("ops");
    let bad = Patch::json(json!([{"op": "remove", "path": "/missing"}])).expect("ops");
    let mut revisions = Vec::new();
    for step in 0..5 {
        let (remote, embedded) = match step {
            0 => (
                c.put("doc:1", Value::Json(json!({"a": 1}))).await,
                local.put("doc:1", Value::Json(json!({"a": 1}))).await,
            ),
            1 => (
                c.patch("doc:1", &merge).await,
                local.patch("doc:1", &merge).await,
            ),
            2 => (
                c.patch("doc:1", &ops).await,
                local.patch("doc:1", &ops).await,
            ),
            3 => (c.delete("doc:1").await, local.delete("doc:1").await),
            _ => (
                c.put("doc:1", Value::from("again")).await,
                local.put("doc:1", Value::from("again")).await,
            ),
        };
        let (remote, embedded) = (remote.expect("remote"), embedded.expect("embedded"));
        assert_eq!(
            (remote.op, remote.version, remote.revision),
            (embedded.op, embedded.version, embedded.revision),
            "step {step}"
        );
        revisions.push(remote.revision);
    }
    assert_eq!(
        c.get("doc:1").await.expect("get"),
        Some(Value::from("again"))
    );
    // A patch that cannot apply fails with the same code on both, and changes nothing.
    let (r, l) = (
        c.patch("doc:1", &bad).await,
        local.patch("doc:1", &bad).await,
    );
    assert_eq!(code(r), code(l));

    for &rev in &revisions {
        let remote = c.get_at("doc:1", rev).await.expect("remote get_at");
        let embedded = local.get_at("doc:1", rev).await.expect("embedded get_at");
        assert_eq!(remote, embedded, "revision {rev}");
    }
    let at_patch = c
        .get_at("doc:1", revisions[2])
        .await
        .expect("get_at")
        .expect("present");
    assert_eq!(at_patch.value, Value::Json(json!({"b": 2, "c": [1, 2]})));
    assert_eq!(at_patch.version, 3);
    assert_eq!(c.get_at("doc:1", revisions[3]).await.expect("get_at"), None);

    let remote = c.key_history("doc:1").await.expect("remote history");
    let embedded = local.key_history("doc:1").await.expect("embedded history");
    assert_eq!(remote.len(), 5);
    // Commit times are each store's own clock; everything else must agree.
    let strip = |vs: &[statemesh::KeyVersion]| {
        vs.iter()
            .map(|v| (v.revision, v.kind, v.version, v.value.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&remote), strip(&embedded));
    assert!(remote.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(remote[3].kind, ChangeKind::Delete);

    // Compaction: below the floor both refuse with the same code; above it reads still work.
    c.compact(revisions[2]).await.expect("compact");
    local.compact(revisions[2]).await.expect("compact");
    let (r, l) = (
        c.get_at("doc:1", revisions[0]).await,
        local.get_at("doc:1", revisions[0]).await,
    );
    assert_eq!(code(r), "COMPACTED");
    assert_eq!(code(l), "COMPACTED");
    assert_eq!(
        c.get_at("doc:1", revisions[4]).await.expect("get_at"),
        local.get_at("doc:1", revisions[4]).await.expect("get_at")
    );
    assert_eq!(code(c.compact(revisions[4] + 100).await), "FUTURE_REVISION");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_txn_answers_as_the_embedded_store_does() {
    use statemesh::{Compare, CompareOp, Patch, Store, Txn, TxnOp};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let c = Client::connect(&server.addr).await.expect("connect");
    let local = Store::in_memory().await.expect("in-memory store");
    let txns = [
        Txn::new()
            .when(Compare::absent("t:a"))
            .then(TxnOp::put("t:a", Value::Json(json!({"n": 1}))))
            .then(TxnOp::put_with_ttl("t:b", "short", 60_000))
            .otherwise(TxnOp::get("t:a")),
        Txn::new()
            .when(Compare::version("t:a", CompareOp::Equal, 1))
            .when(Compare::value_equals("t:b", "short"))
            .then(TxnOp::patch("t:a", Patch::merge(json!({"m": 2}))))
            .then(TxnOp::delete("t:b"))
            .then(TxnOp::get("t:a")),
        // Fails (t:b is gone): the failure branch reads.
        Txn::new()
            .when(Compare::exists("t:b"))
            .then(TxnOp::delete("t:a"))
            .otherwise(TxnOp::get("t:a"))
            .otherwise(TxnOp::get("t:b")),
    ];
    for (i, txn) in txns.into_iter().enumerate() {
        let remote = c.txn(txn.clone()).await.expect("remote txn");
        let embedded = local.txn(txn).await.expect("embedded txn");
        assert_eq!(remote, embedded, "transaction {i}");
    }
    assert_eq!(
        c.get("t:a").await.expect("get"),
        Some(Value::Json(json!({"n": 1, "m": 2})))
    );
    // A branch that cannot apply fails with the same code on both and writes nothing.
    let bad = Txn::new().then(TxnOp::delete("t:a")).then(TxnOp::patch(
        "t:a",
        Patch::json(json!([{"op": "remove", "path": "/zz"}])).expect("ops"),
    ));
    let (r, l) = (c.txn(bad.clone()).await, local.txn(bad).await);
    assert_eq!(code(r), code(l));
    assert!(c.exists("t:a").await.expect("exists"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_commit_survives_the_connection_and_a_server_kill() {
    use statemesh::WaitPolicy;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let coordinator = Client::connect(&server.addr).await.expect("connect");
    let other = Client::connect(&server.addr).await.expect("connect");
    other.put("acct:a", 100i64).await.expect("put");

    let t = coordinator
        .begin(Isolation::Serializable, Duration::from_secs(30))
        .await
        .expect("begin");
    t.put("acct:a", 60i64).await.expect("txn put");
    t.put("acct:b", 40i64).await.expect("txn put");
    let id = t.prepare(WaitPolicy::Fail).await.expect("prepare");
    assert_eq!(other.prepared_transactions().await.expect("list"), vec![id]);
    // Its keys are locked for everyone else until it is resolved.
    assert_eq!(code(other.put("acct:a", 1i64).await), "KEY_LOCKED");
    // A second transaction on the same key cannot prepare while the first holds it.
    let t2 = other
        .begin(Isolation::Serializable, Duration::from_secs(30))
        .await
        .expect("begin");
    t2.put("acct:b", 7i64).await.expect("txn put");
    assert_eq!(code(t2.prepare(WaitPolicy::Fail).await), "KEY_LOCKED");

    // The coordinator's connection goes away and the server is killed: the prepared
    // transaction is durable and still pending after the restart.
    drop(coordinator);
    server.kill();
    let server = Server::start(dir.path(), &[]);
    let c = Client::connect(&server.addr).await.expect("reconnect");
    assert_eq!(c.prepared_transactions().await.expect("list"), vec![id]);
    assert_eq!(
        c.get("acct:a").await.expect("get"),
        Some(Value::from(100i64))
    );
    let written = c.commit_prepared(id).await.expect("commit_prepared");
    assert_eq!(written.affected, 2);
    assert_eq!(
        c.get("acct:a").await.expect("get"),
        Some(Value::from(60i64))
    );
    assert_eq!(
        c.get("acct:b").await.expect("get"),
        Some(Value::from(40i64))
    );
    assert!(c.prepared_transactions().await.expect("list").is_empty());
    assert_eq!(
        code(c.commit_prepared(id).await),
        code(c.cancel_prepared(id).await)
    );

    // Cancel drops the writes and releases the locks.
    let t = c
        .begin(Isolation::Snapshot, Duration::from_secs(30))
        .await
        .expect("begin");
    t.delete("acct:a").await.expect("txn delete");
    let id = t.prepare(WaitPolicy::Wait).await.expect("prepare");
    c.cancel_prepared(id).await.expect("cancel");
    assert_eq!(
        c.get("acct:a").await.expect("get"),
        Some(Value::from(60i64))
    );
    c.put("acct:a", 1i64).await.expect("put after cancel");
}

/// A server that answers every request correctly, but only after `delay`.
async fn slow_server(delay: Duration) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (read, write) = stream.into_split();
        let write = std::sync::Arc::new(tokio::sync::Mutex::new(write));
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let request: serde_json::Value = serde_json::from_str(&line).expect("request");
            let write = write.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let reply = json!({"id": request["id"], "ok": true, "result": "pong"});
                let mut w = write.lock().await;
                let _ = w.write_all(format!("{reply}\n").as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_gives_up_and_leaves_the_connection_usable() {
    let addr = slow_server(Duration::from_millis(300)).await;
    let patient = Client::connect(&addr).await.expect("connect");
    let hasty = patient
        .clone()
        .with_request_timeout(Duration::from_millis(50));
    let started = std::time::Instant::now();
    let err = hasty.ping().await.expect_err("times out");
    assert!(started.elapsed() < Duration::from_millis(250));
    assert_eq!(err.code(), "TIMEOUT");
    assert!(matches!(err, Error::Timeout { ref op, .. } if op == "ping"));
    // The late answer to the abandoned call is dropped; the connection and the handle without
    // a timeout still work, and so does the hasty one with a longer timeout.
    patient.ping().await.expect("patient ping");
    hasty
        .with_request_timeout(Duration::from_secs(5))
        .ping()
        .await
        .expect("ping with room");
}

/// Waits for racing tasks and adds up the conflicts each retried.
async fn total_conflicts(tasks: Vec<tokio::task::JoinHandle<u64>>) -> u64 {
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.expect("racing task");
    }
    conflicts
}

/// Tasks race interactive serializable transfers through the server: three connections, each
/// shared by two tasks (the client pipelines their requests), read two balances, write them back
/// moved by an amount together with a ledger entry, and retry on TXN_CONFLICT. Beside them a
/// reader's `multi_get` (one atomic read) must always see the whole sum. At the end no money may
/// have appeared or vanished, replaying the ledger must give every balance, and conflicts must
/// have happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_remote_transactions_keep_every_balance() {
    const ACCOUNTS: usize = 5;
    const TASKS: u64 = 6;
    const TRANSFERS: u64 = 25;
    const START: i64 = 1_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Client::connect(&server.addr).await.expect("connect"));
    }
    let accounts: Vec<String> = (0..ACCOUNTS).map(|i| format!("bank:acct.{i}")).collect();
    let seed: Vec<(String, Value)> = accounts
        .iter()
        .map(|a| (a.clone(), Value::Integer(START)))
        .collect();
    clients[0].multi_put(&seed).await.expect("seed");

    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (c, accounts, finished) = (clients[1].clone(), accounts.clone(), finished.clone());
        tokio::spawn(async move {
            let mut reads = 0usize;
            while !finished.load(std::sync::atomic::Ordering::Acquire) {
                let balances = c.multi_get(&accounts).await.expect("multi_get");
                let sum: i64 = balances
                    .iter()
                    .map(|b| match b {
                        Some(Value::Integer(i)) => *i,
                        other => panic!("balance {other:?}"),
                    })
                    .sum();
                assert_eq!(sum, START * ACCOUNTS as i64, "multi_get saw {balances:?}");
                reads += 1;
            }
            reads
        })
    };
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let c = clients[task as usize % clients.len()].clone();
        let accounts = accounts.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for n in 0..TRANSFERS {
                let from = ((task * 7 + n * 3) % ACCOUNTS as u64) as usize;
                let to = (from + 1 + (n % (ACCOUNTS as u64 - 1)) as usize) % ACCOUNTS;
                let amount = ((task + 1) * (n + 1) % 97) as i64 + 1;
                loop {
                    let t = c
                        .begin(Isolation::Serializable, Duration::from_secs(10))
                        .await
                        .expect("begin");
                    let (Some(Value::Integer(a)), Some(Value::Integer(b))) = (
                        t.get(&accounts[from]).await.expect("get"),
                        t.get(&accounts[to]).await.expect("get"),
                    ) else {
                        panic!("an account is missing");
                    };
                    t.put(&accounts[from], a - amount).await.expect("put");
                    t.put(&accounts[to], b + amount).await.expect("put");
                    let entry = format!("{from}>{to}:{amount}");
                    t.put(&format!("bank:ledger.{task}.{n}"), entry)
                        .await
                        .expect("ledger");
                    match t.commit().await {
                        Ok(_) => break,
                        Err(e) if e.code() == "TXN_CONFLICT" => conflicts += 1,
                        Err(e) => panic!("commit: {e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let conflicts = total_conflicts(tasks).await;
    finished.store(true, std::sync::atomic::Ordering::Release);
    let reads = reader.await.expect("reader");

    let mut replayed = vec![START; ACCOUNTS];
    let ledger = clients[2]
        .get_pattern("bank:ledger.**")
        .await
        .expect("ledger");
    assert_eq!(ledger.len() as u64, TASKS * TRANSFERS);
    for (key, entry) in ledger {
        let Value::String(entry) = entry else {
            panic!("{key}: not a ledger entry")
        };
        let parsed = entry.split_once(':').and_then(|(moved, amount)| {
            let (from, to) = moved.split_once('>')?;
            Some((
                from.parse::<usize>().ok()?,
                to.parse::<usize>().ok()?,
                amount.parse::<i64>().ok()?,
            ))
        });
        let Some((from, to, amount)) = parsed else {
            panic!("{key}: {entry}")
        };
        replayed[from] -= amount;
        replayed[to] += amount;
    }
    let balances: Vec<Option<Value>> = clients[2].multi_get(&accounts).await.expect("balances");
    let want: Vec<Option<Value>> = replayed
        .into_iter()
        .map(|b| Some(Value::Integer(b)))
        .collect();
    assert_eq!(balances, want, "balances against the ledger");
    // Six tasks on five accounts collide: with no conflict, the check was never exercised.
    assert!(conflicts > 0, "no commit ever conflicted");
    assert!(reads > 0);
}

/// A subscriber that keeps dropping its stream and resuming from the last revision it saw,
/// while three connections write as fast as they can: every resume replays history up to the
/// present and then goes live under the writes, the moment a gap or a duplicate would slip in.
/// The revisions it sees must run on without a gap or a repeat, and name every key written.
///
/// In CP mode, where the feed shows a change only once it is durable, so that a resume finds
/// writes applied but not yet durable on both sides of its cut; and in AP mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_feed_resumed_under_racing_writers_has_no_gap_and_no_repeat() {
    resume_under_racing_writers(&[]).await;
    resume_under_racing_writers(&["--mode", "ap"]).await;
}

async fn resume_under_racing_writers(flags: &[&str]) {
    const WRITERS: usize = 3;
    const WRITES: usize = 400;
    const RESUME_EVERY: usize = 150;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), flags);
    let reader = Client::connect(&server.addr).await.expect("connect");
    let start = reader.revision().await.expect("revision");
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let c = Client::connect(&server.addr).await.expect("connect");
        writers.push(tokio::spawn(async move {
            for n in 0..WRITES {
                c.put(&format!("feed:w{w}.k{n}"), n as i64)
                    .await
                    .expect("put");
            }
        }));
    }
    let total = WRITERS * WRITES;
    let mut seen = Vec::with_capacity(total);
    let mut last = start;
    let mut resumes = 0;
    while seen.len() < total {
        let mut stream = reader
            .stream_changes(Since::Revision(last), Some("feed:**"))
            .await
            .expect("stream_changes");
        resumes += 1;
        for _ in 0..RESUME_EVERY {
            if seen.len() == total {
                break;
            }
            let e = next_event(&mut stream).await;
            assert_eq!(
                e.revision,
                last + 1,
                "after revision {last} (resume {resumes}) came {} ({})",
                e.revision,
                e.key
            );
            last = e.revision;
            seen.push(e.key);
        }
    }
    for w in writers {
        w.await.expect("writer");
    }
    let mut want: Vec<String> = (0..WRITERS)
        .flat_map(|w| (0..WRITES).map(move |n| format!("feed:w{w}.k{n}")))
        .collect();
    want.sort();
    seen.sort();
    assert_eq!(seen, want);
    assert!(resumes >= total / RESUME_EVERY);
}

/// Optimistic concurrency over the wire: six tasks on three connections increment one counter
/// by reading it with its version and writing it back with `put_if_version`, retrying on
/// VERSION_CONFLICT. No increment may be lost or doubled, the key's version must count every
/// write, and conflicts must have happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_version_checked_puts_lose_no_update() {
    const TASKS: usize = 6;
    const INCREMENTS: i64 = 40;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--mode", "ap"]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Client::connect(&server.addr).await.expect("connect"));
    }
    let first = clients[0].put("occ:counter", 0i64).await.expect("seed");
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let c = clients[task % clients.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for _ in 0..INCREMENTS {
                loop {
                    let Some((Value::Integer(n), version)) =
                        c.get_with_version("occ:counter").await.expect("get")
                    else {
                        panic!("the counter is gone");
                    };
                    match c.put_if_version("occ:counter", n + 1, version).await {
                        Ok(_) => break,
                        Err(e) if e.code() == "VERSION_CONFLICT" => conflicts += 1,
                        Err(e) => panic!("put_if_version: {e}"),
                    }
                }
            }
            conflicts
        }));
    }
    let conflicts = total_conflicts(tasks).await;
    let total = TASKS as i64 * INCREMENTS;
    let (value, version) = clients[0]
        .get_with_version("occ:counter")
        .await
        .expect("get")
        .expect("the counter");
    assert_eq!(value, Value::Integer(total));
    assert_eq!(version, first.version + total as u64);
    assert!(conflicts > 0, "no write ever conflicted");
}
