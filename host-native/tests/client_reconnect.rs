//! A Client outlives its connection: after a SIGKILL and a restart of the real binary on the
//! same port and data directory, the next call on the same Client dials again, while what was
//! in flight at the kill fails with the documented errors.

#[path = "server_jsonl_common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use common::Server;
use statemesh::{Client, Error, Isolation, Since, SubscriptionError, Value, WaitPolicy};
use tokio::sync::mpsc;

const TOKEN: &str = "s3cret";

/// `statemesh serve` on exactly `port`, with a data directory and a token.
fn start_on(dir: &Path, port: &str) -> Server {
    let dir = dir.to_str().expect("utf-8 temp dir");
    Server::start_args(&[
        "serve",
        "--port",
        port,
        "--data-dir",
        dir,
        "--auth-token",
        TOKEN,
    ])
    .expect("the server starts on its old port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_call_after_a_server_restart_dials_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = start_on(dir.path(), "0");
    let port = first.addr.rsplit(':').next().expect("a port").to_owned();
    let c = Client::connect_with_token(&first.addr, TOKEN)
        .await
        .expect("connect");
    let clone = c.clone();
    let before = c.put("r:a", 1i64).await.expect("put").revision;

    // In flight at the kill: a prepare waiting for a key another prepared transaction holds
    // (it would wait 30 s), a subscription, and a handler subscription.
    let holder = Client::connect_with_token(&first.addr, TOKEN)
        .await
        .expect("connect");
    let held = holder
        .begin(Isolation::Serializable, Duration::from_secs(30))
        .await
        .expect("begin");
    held.put("r:locked", 1i64).await.expect("txn put");
    let held = held.prepare(WaitPolicy::Fail).await.expect("prepare");
    let waiting = c
        .begin(Isolation::Serializable, Duration::from_secs(30))
        .await
        .expect("begin");
    waiting.put("r:locked", 2i64).await.expect("txn put");
    let in_flight = tokio::spawn(waiting.prepare(WaitPolicy::Wait));
    let mut feed = c.subscribe_pattern("r:**").await.expect("subscribe");
    let (tx, mut handled) = mpsc::unbounded_channel();
    let _handler = c
        .subscribe_with(Some("r:**"), move |e| {
            let _ = tx.send(e);
        })
        .await
        .expect("subscribe_with");
    let open_txn = c
        .begin(Isolation::Serializable, Duration::from_secs(30))
        .await
        .expect("begin");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!in_flight.is_finished(), "the prepare waits for the lock");

    first.kill();

    // The call in flight fails, saying it may or may not have been applied, and is not retried.
    let err = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the in-flight call ends at the kill")
        .expect("task")
        .expect_err("the connection broke under it");
    assert_eq!(err.code(), "CONNECTION");
    assert!(
        matches!(&err, Error::Connection(m) if m.contains("in flight") && m.contains("may or may not")),
        "{err}"
    );
    // Subscriptions end with an error saying the connection broke.
    let ended = tokio::time::timeout(Duration::from_secs(10), feed.recv())
        .await
        .expect("the subscription ends");
    assert_eq!(
        ended.expect_err("no event came before the kill"),
        SubscriptionError::Disconnected
    );
    let last = tokio::time::timeout(Duration::from_secs(10), handled.recv())
        .await
        .expect("the handler hears of it")
        .expect("the handler ran");
    assert_eq!(
        last.expect_err("no event came before the kill"),
        SubscriptionError::Disconnected
    );

    // While the server is down a call dials, fails with CONNECTION, and changes nothing for
    // the next one.
    assert_eq!(
        c.get("r:a").await.expect_err("server down").code(),
        "CONNECTION"
    );

    let _second = start_on(dir.path(), &port);
    // The same client (and its clone) dial again, authenticating with the same token.
    assert_eq!(
        c.get("r:a").await.expect("get after restart"),
        Some(Value::from(1i64))
    );
    let after = clone.put("r:b", 2i64).await.expect("put after restart");
    assert!(after.revision > before);
    // A transaction of the old connection stays with it: the server rolled it back.
    let err = open_txn
        .put("r:c", 3i64)
        .await
        .expect_err("its connection is gone");
    assert_eq!(err.code(), "CONNECTION");
    // The prepared transaction outlived the kill (it belongs to no connection).
    assert_eq!(c.prepared_transactions().await.expect("list"), vec![held]);
    c.cancel_prepared(held).await.expect("cancel");
    // Resuming the feed from the last revision seen misses nothing.
    let mut resumed = c
        .stream_changes(Since::Revision(before), Some("r:**"))
        .await
        .expect("resume");
    let event = tokio::time::timeout(Duration::from_secs(10), resumed.recv())
        .await
        .expect("an event")
        .expect("the write after the restart");
    assert_eq!(event.key, "r:b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_address_keeps_failing_and_close_stops_dialing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_on(dir.path(), "0");
    let c = Client::connect_with_token(&server.addr, TOKEN)
        .await
        .expect("connect");
    server.kill();
    for _ in 0..2 {
        assert_eq!(c.ping().await.expect_err("down").code(), "CONNECTION");
    }
    c.close().await;
    assert_eq!(c.ping().await.expect_err("closed").code(), "CLOSED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_break_with_a_full_event_buffer_still_ends_in_disconnected() {
    const BUFFER: usize = 4096;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory"]);
    let client = Client::connect(&server.addr).await.expect("connect");
    let mut sub = client.subscribe_pattern("full:*").await.expect("subscribe");
    // Exactly as many events as the subscription buffers, never read until the break.
    let items: Vec<(String, Value)> = (0..BUFFER)
        .map(|i| (format!("full:k{i:05}"), Value::from(i as i64)))
        .collect();
    client.multi_put(&items).await.expect("write");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while sub.buffered() < BUFFER {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {BUFFER} events arrived",
            sub.buffered()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();
    // Every buffered event comes out, in order, then the end: Disconnected, not Lagged (the
    // buffer was full, but nothing was dropped) and not Closed.
    for i in 0..BUFFER {
        let event = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .expect("buffered events are ready")
            .unwrap_or_else(|e| panic!("event {i}: {e:?}"));
        assert_eq!(event.key, format!("full:k{i:05}"));
    }
    let end = tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("the break is noticed");
    assert_eq!(
        end.expect_err("no more events"),
        SubscriptionError::Disconnected
    );
    assert_eq!(
        sub.recv().await.expect_err("ended"),
        SubscriptionError::Closed
    );
}
