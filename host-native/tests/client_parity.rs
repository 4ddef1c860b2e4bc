//! The Client methods that mirror the Store's bulk, streaming and lifecycle calls (`import`,
//! `scan_stream`, `subscribe_with`, `history_floor`, `open_transactions`, `index_origin`,
//! `set_vector_search_effort`, `close`): each answers as an embedded
//! store doing the same thing, against the real binary.

#[path = "server_jsonl_common/mod.rs"]
mod common;
#[path = "log_tail/mod.rs"]
mod log_tail;

use std::time::Duration;

use common::Server;
use serde_json::json;
use statemesh::{ChangeEvent, Client, Store, SubscriptionError, Value};
use tokio::sync::mpsc;

fn code<T: std::fmt::Debug>(r: statemesh::Result<T>) -> String {
    r.expect_err("an error").code().to_owned()
}

/// A server without persistence, a client of it, and an embedded store to compare it with.
/// The server and its directory live as long as the tuple's first two fields.
async fn remote_and_local() -> (tempfile::TempDir, Server, Client, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory"]);
    let client = Client::connect(&server.addr).await.expect("connect");
    let store = Store::in_memory().await.expect("store");
    (dir, server, client, store)
}

fn items(n: usize) -> Vec<(String, Value)> {
    (0..n)
        .map(|i| {
            let value = match i % 3 {
                0 => Value::from(i as i64),
                1 => Value::from(format!("text {i}")),
                _ => Value::Json(json!({"n": i})),
            };
            (format!("bulk:k{i:03}"), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_writes_the_same_keys_in_the_same_batches_as_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let client = Client::connect(&server.addr).await.expect("connect");
    let store = Store::in_memory().await.expect("store");

    // 10 items in batches of 3: 4 revisions, on both.
    let local = store.import(items(10), 3).await.expect("store import");
    let remote = client.import(items(10), 3).await.expect("client import");
    assert_eq!((local, remote), (10, 10));
    assert_eq!(store.revision(), 4);
    assert_eq!(client.revision().await.expect("revision"), 4);
    assert_eq!(
        client.get_pattern("bulk:**").await.expect("read back"),
        store.get_pattern("bulk:**").await.expect("read back")
    );

    // A batch of 0 is taken as 1, as by the store: one revision per item.
    assert_eq!(store.import(items(2), 0).await.expect("store"), 2);
    assert_eq!(client.import(items(2), 0).await.expect("client"), 2);
    assert_eq!(store.revision(), 6);
    assert_eq!(client.revision().await.expect("revision"), 6);

    // An invalid item stops the import with the store's code; the batches before it stay,
    // its own batch is not applied, and nothing after it is sent.
    let mut bad: Vec<(String, Value)> = items(8)
        .into_iter()
        .map(|(k, v)| (k.replace("bulk:", "bad:"), v))
        .collect();
    bad[5].0 = "no namespace ::bad".into();
    let local = code(store.import(bad.clone(), 2).await);
    let remote = code(client.import(bad, 2).await);
    assert_eq!(local, "INVALID_KEY");
    assert_eq!(remote, local);
    let local_keys = store.keys("bad:**").await.expect("keys");
    assert_eq!(local_keys, ["bad:k000", "bad:k001", "bad:k002", "bad:k003"]);
    assert_eq!(client.keys("bad:**").await.expect("keys"), local_keys);
    assert_eq!(store.revision(), 8);
    assert_eq!(client.revision().await.expect("revision"), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_cuts_batches_to_the_servers_request_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory", "--max-request-bytes", "2048"]);
    let client = Client::connect(&server.addr).await.expect("connect");
    let stats = client.stats().await.expect("stats");
    assert_eq!(stats.max_request_bytes, 2048);
    assert_eq!(stats.max_batch, 100_000);

    // 12 values of 400 bytes cannot go in one 2 KiB request: the import splits them where
    // the store would have written one batch, and every one arrives.
    let big: Vec<(String, Value)> = (0..12)
        .map(|i| (format!("big:k{i:02}"), Value::from("x".repeat(400))))
        .collect();
    assert_eq!(client.import(big.clone(), 100).await.expect("import"), 12);
    let revisions = client.revision().await.expect("revision");
    assert!(revisions > 1 && revisions < 12, "{revisions} revisions");
    let stored = client.get_pattern("big:**").await.expect("read back");
    assert_eq!(stored, big);

    // One item too large for any request fails before it is sent: the connection (which a
    // too-long line would close) stays up, and the batches before it stay.
    let huge = vec![
        ("huge:a".to_owned(), Value::from("small")),
        ("huge:b".to_owned(), Value::from("y".repeat(4000))),
    ];
    let err = client.import(huge, 1).await.expect_err("too large");
    assert_eq!(err.code(), "TOO_LARGE");
    client.ping().await.expect("still connected");
    assert_eq!(client.keys("huge:*").await.expect("keys"), ["huge:a"]);
}

/// Every page of a scan stream.
async fn pages(mut stream: statemesh::ScanStream) -> Vec<Vec<(String, Value)>> {
    let mut pages = Vec::new();
    while let Some(page) = stream.next_batch().await {
        pages.push(page.expect("page"));
    }
    pages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_stream_yields_the_stores_pages() {
    let (_dir, _server, client, store) = remote_and_local().await;
    let mut writes: Vec<(String, Value)> = (0..25)
        .map(|i| (format!("s:k{i:02}"), Value::from(i as i64)))
        .collect();
    writes.push(("t:other".into(), Value::from("not under the prefix")));
    store.multi_put(&writes).await.expect("store writes");
    client.multi_put(&writes).await.expect("client writes");

    let local = pages(store.scan_stream("s:", 10)).await;
    let remote = pages(client.scan_stream("s:", 10)).await;
    assert_eq!(local.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(remote, local);

    // Also as a futures Stream, and an empty prefix ends at once.
    let mut stream = client.scan_stream("s:k2", 4);
    let mut streamed = Vec::new();
    while let Some(page) = std::future::poll_fn(|cx| {
        futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
    })
    .await
    {
        streamed.push(page.expect("page"));
    }
    assert_eq!(streamed, pages(store.scan_stream("s:k2", 4)).await);
    assert!(pages(client.scan_stream("none:", 10)).await.is_empty());

    // A refused scan ends the stream with the store's error code.
    let mut local = store.scan_stream("s:", 0);
    let mut remote = client.scan_stream("s:", 0);
    let local = local.next_batch().await.expect("an item");
    let remote = remote.next_batch().await.expect("an item");
    assert_eq!(code(remote), code(local));
}

/// What the tests compare of an event (`at` is the writer's clock).
fn seen(e: &ChangeEvent) -> (u64, String, String, u64, String) {
    (
        e.revision,
        e.key.to_string(),
        format!("{:?}", e.kind),
        e.version,
        format!("{:?}", e.new),
    )
}

/// The handler's deliveries until `n` events (or an error) arrived.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Result<ChangeEvent, SubscriptionError>>,
    n: usize,
) -> Vec<(u64, String, String, u64, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event within 10 s")
            .expect("the handler is running");
        out.push(seen(&next.expect("an event")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_with_calls_the_handler_as_the_store_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let client = Client::connect(&server.addr).await.expect("connect");
    let store = Store::in_memory().await.expect("store");

    let (local_tx, mut local_rx) = mpsc::unbounded_channel();
    let (remote_tx, mut remote_rx) = mpsc::unbounded_channel();
    let local = store
        .subscribe_with(Some("app:**"), move |e| {
            let _ = local_tx.send(e);
        })
        .expect("store subscribe_with");
    let remote = client
        .subscribe_with(Some("app:**"), move |e| {
            let _ = remote_tx.send(e);
        })
        .await
        .expect("client subscribe_with");

    store.put("app:a", 1i64).await.expect("put");
    store.put("other:x", 1i64).await.expect("put");
    store.put("app:a", 2i64).await.expect("put");
    store.delete("app:a").await.expect("delete");
    client.put("app:a", 1i64).await.expect("put");
    client.put("other:x", 1i64).await.expect("put");
    client.put("app:a", 2i64).await.expect("put");
    client.delete("app:a").await.expect("delete");

    let local_seen = collect(&mut local_rx, 3).await;
    assert_eq!(local_seen.len(), 3);
    assert_eq!(local_seen[0].1, "app:a");
    assert_eq!(collect(&mut remote_rx, 3).await, local_seen);

    // Dropping the handle stops the handler: its sender goes with it.
    drop(local);
    drop(remote);
    for rx in [&mut local_rx, &mut remote_rx] {
        let end = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(end, Ok(None)), "the handler is gone: {end:?}");
    }
    // The server dropped the remote subscription too: writes go on without it.
    client
        .put("app:b", 1i64)
        .await
        .expect("put after unsubscribe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_floor_follows_compaction_as_on_the_store() {
    let (_dir, _server, client, store) = remote_and_local().await;
    assert_eq!(
        client.history_floor().await.expect("floor"),
        store.history_floor()
    );
    for i in 0..5i64 {
        store.put("h:a", i).await.expect("put");
        client.put("h:a", i).await.expect("put");
    }
    store.compact(3).await.expect("compact");
    client.compact(3).await.expect("compact");
    assert_eq!(store.history_floor(), 3);
    assert_eq!(client.history_floor().await.expect("floor"), 3);
    assert_eq!(
        code(client.get_at("h:a", 2).await),
        code(store.get_at("h:a", 2).await)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_client_as_it_ends_a_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory"]);
    let client = Client::connect(&server.addr).await.expect("connect");
    let clone = client.clone();
    let store = Store::in_memory().await.expect("store");
    let mut local_feed = store.subscribe().expect("subscribe");
    let mut remote_feed = client.subscribe().await.expect("subscribe");
    let txn = client
        .begin(statemesh::Isolation::Serializable, Duration::from_secs(30))
        .await
        .expect("begin");
    txn.put("c:txn", 1i64).await.expect("txn put");

    store.close().await;
    client.close().await;
    assert_eq!(code(store.get("c:a").await), "CLOSED");
    assert_eq!(code(client.get("c:a").await), "CLOSED");
    assert_eq!(code(clone.put("c:a", 1i64).await), "CLOSED");
    assert_eq!(code(txn.commit().await), "CLOSED");
    assert_eq!(
        local_feed.recv().await.expect_err("ended"),
        SubscriptionError::Closed
    );
    assert_eq!(
        remote_feed.recv().await.expect_err("ended"),
        SubscriptionError::Closed
    );
    // Closing again is harmless. The server serves on, and rolled the open transaction back
    // when the connection went.
    client.close().await;
    let other = Client::connect(&server.addr).await.expect("connect");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while other.stats().await.expect("stats").open_transactions > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the transaction is rolled back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(other.get("c:txn").await.expect("get"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_transactions_counts_as_on_the_store() {
    let (_dir, _server, client, store) = remote_and_local().await;
    let timeout = Duration::from_secs(30);
    assert_eq!(client.open_transactions().await.expect("count"), 0);
    let local = store
        .begin(statemesh::Isolation::Snapshot, timeout)
        .await
        .expect("begin");
    let first = client
        .begin(statemesh::Isolation::Snapshot, timeout)
        .await
        .expect("begin");
    let second = client
        .begin(statemesh::Isolation::Serializable, timeout)
        .await
        .expect("begin");
    assert_eq!(store.open_transactions(), 1);
    assert_eq!(client.open_transactions().await.expect("count"), 2);
    first.rollback().await.expect("rollback");
    local.rollback().await.expect("rollback");
    assert_eq!(store.open_transactions(), 0);
    assert_eq!(client.open_transactions().await.expect("count"), 1);
    second.rollback().await.expect("rollback");
    assert_eq!(client.open_transactions().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_origin_and_search_effort_answer_as_on_the_store() {
    use statemesh::{Metric, VectorIndexDef};
    let (_dir, _server, client, store) = remote_and_local().await;
    for i in 0..3i64 {
        let key = format!("emb:{i}");
        let v = json!({ "v": [i as f64, 1.0, 0.5] });
        store.put(&key, Value::Json(v.clone())).await.expect("put");
        client.put(&key, Value::Json(v)).await.expect("put");
    }
    let def = || VectorIndexDef::new("emb", "emb:*", 3, Metric::Cosine).field("v");
    store.declare_vector_index(def()).await.expect("declare");
    client.declare_vector_index(def()).await.expect("declare");
    let origin = store.index_origin("emb").expect("origin");
    assert_eq!(origin.map(|o| o.backfilled), Some(3));
    assert_eq!(client.index_origin("emb").await.expect("origin"), origin);
    assert_eq!(client.index_origin("nope").await.expect("origin"), None);
    assert_eq!(store.index_origin("nope").expect("origin"), None);

    for effort in [0, 1, 512] {
        store
            .set_vector_search_effort("emb", effort)
            .expect("effort");
        client
            .set_vector_search_effort("emb", effort)
            .await
            .expect("effort");
        let query = [2.0, 1.0, 0.5];
        let keys =
            |hits: Vec<statemesh::VectorHit>| hits.into_iter().map(|h| h.key).collect::<Vec<_>>();
        let local = store.vector_search("emb", &query, 3, None).await;
        let remote = client.vector_search("emb", &query, 3, None).await;
        assert_eq!(keys(remote.expect("search")), keys(local.expect("search")));
    }
    assert_eq!(
        code(client.set_vector_search_effort("nope", 8).await),
        code(store.set_vector_search_effort("nope", 8))
    );
}

/// Values of every kind a client can send, under `kinds:` keys.
fn kinds() -> Vec<(String, Value)> {
    vec![
        ("kinds:text".into(), Value::from("hello")),
        ("kinds:int".into(), Value::from(-42i64)),
        ("kinds:float".into(), Value::Float(2.5)),
        ("kinds:bool".into(), Value::Bool(true)),
        (
            "kinds:json".into(),
            Value::Json(json!({"a": [1, 2], "b": null})),
        ),
        (
            "kinds:bytes".into(),
            Value::Bytes(vec![0, 159, 146, 150, 255]),
        ),
        (
            "kinds:doc".into(),
            Value::Document {
                content_type: "image/png".into(),
                data: vec![137, 80, 78, 71],
            },
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_stored_returns_the_stores_own_bytes() {
    let (_dir, _server, client, store) = remote_and_local().await;
    for (key, value) in kinds() {
        store.put(&key, value.clone()).await.expect("put");
        client.put(&key, value.clone()).await.expect("put");
        let local = store.get_stored(&key).await.expect("get_stored");
        let remote = client.get_stored(&key).await.expect("get_stored");
        let (local, remote) = (local.expect("stored"), remote.expect("stored"));
        assert_eq!(remote.as_bytes(), local.as_bytes(), "{key}");
        assert_eq!(remote.decode().expect("decode"), value, "{key}");
    }
    assert!(
        client
            .get_stored("kinds:none")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        code(client.get_stored("kinds:bad*").await),
        code(store.get_stored("kinds:bad*").await)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_snapshot_opens_as_the_servers_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let client = Client::connect(&server.addr).await.expect("connect");
    for (key, value) in kinds() {
        client.put(&key, value).await.expect("put");
    }
    client.delete("kinds:bool").await.expect("delete");
    client
        .put_with_ttl("kinds:later", "expires", 3_600_000)
        .await
        .expect("put");
    let bytes = client.snapshot().await.expect("snapshot");
    let copy = Store::builder()
        .open_snapshot(&bytes)
        .await
        .expect("open the snapshot");
    assert_eq!(copy.revision(), client.revision().await.expect("revision"));
    assert_eq!(
        copy.get_pattern("**").await.expect("read"),
        client.get_pattern("**").await.expect("read")
    );
    assert!(copy.get_ttl("kinds:later").await.expect("ttl").is_some());
    assert_eq!(copy.get("kinds:bool").await.expect("get"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_repairs_report_what_the_servers_open_repaired() {
    // Two copies of one directory whose log ends in a torn frame: an embedded store opens one,
    // the server the other, and both report the same repair.
    let (embedded, served) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let store = Store::open(embedded.path()).await.expect("open");
    for i in 0..20i64 {
        store.put(&format!("a:k{i}"), i).await.expect("put");
    }
    store.close().await;
    log_tail::tear_last_segment(embedded.path());
    for file in log_tail::segments(embedded.path()) {
        let name = file.file_name().expect("name");
        std::fs::copy(&file, served.path().join(name)).expect("copy");
    }

    let local = Store::open(embedded.path()).await.expect("open");
    let server = Server::start(served.path(), &[]);
    let client = Client::connect(&server.addr).await.expect("connect");
    let remote = client.recovery_repairs().await.expect("repairs");
    assert_eq!(remote.len(), 1, "{remote:?}");
    // The same repair, of the same file, in the other directory.
    let served_dir = served.path().to_str().expect("utf-8");
    let embedded_dir = embedded.path().to_str().expect("utf-8");
    let moved: Vec<String> = local
        .recovery_repairs()
        .iter()
        .map(|r| r.replace(embedded_dir, served_dir))
        .collect();
    assert_eq!(remote, moved);
    assert_eq!(
        client.stats().await.expect("stats").recovery_repairs,
        remote
    );
    assert_eq!(client.revision().await.expect("revision"), 20);
    local.close().await;

    // After a clean restart nothing is left to repair, on the server as on the store.
    server.terminate();
    let server = Server::start(served.path(), &[]);
    let client = Client::connect(&server.addr).await.expect("connect");
    assert!(client.recovery_repairs().await.expect("repairs").is_empty());
    assert!(
        Store::open(embedded.path())
            .await
            .expect("open")
            .recovery_repairs()
            .is_empty()
    );
}
