//! The JSON-lines protocol byte for byte: request shapes, bad input, limits, auth, slow readers.

#[path = "server_jsonl_common/mod.rs"]
mod common;

use std::time::Duration;

use common::{Raw, Server, code};
use serde_json::json;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_responses_match_the_documented_shapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory"]);
    let mut c = Raw::connect(&server.addr).await;
    // Any JSON id comes back as sent.
    let r = c
        .call(json!({"id": {"trace": [1, "x"]}, "op": "ping"}))
        .await;
    assert_eq!(
        r,
        json!({"id": {"trace": [1, "x"]}, "ok": true, "result": "pong"})
    );

    let r = c
        .call(json!({"id": 1, "op": "put", "key": "app:a", "value": "text"}))
        .await;
    assert_eq!(r["ok"], true);
    assert_eq!(r["result"]["op"], "create");
    assert_eq!(r["result"]["version"], 1);

    // Tagged values, and plain JSON kinds.
    let cases = [
        json!("text"),
        json!(7),
        json!(1.5),
        json!(true),
        json!(null),
        json!([1, 2]),
        json!({"a": 1}),
        json!({"$bytes": "AAEC"}),
        json!({"$json": "a JSON string"}),
        json!({"$json": {"$bytes": "not bytes"}}),
        json!({"$float": "NaN"}),
        json!({"$document": {"content_type": "text/plain", "data": "aGk="}}),
    ];
    for (i, value) in cases.iter().enumerate() {
        let key = format!("kinds:k{i}");
        let r = c
            .call(json!({"id": i, "op": "put", "key": key, "value": value}))
            .await;
        assert_eq!(r["ok"], true, "{r}");
        let r = c.call(json!({"id": i, "op": "get", "key": key})).await;
        assert_eq!(&r["result"], value, "{key}");
    }
    let r = c
        .call(json!({"id": 2, "op": "get", "key": "app:none"}))
        .await;
    assert_eq!(r["result"], json!(null));

    // multi_put takes pairs or an object; scan pages carry a cursor.
    let r = c
        .call(json!({"id": 3, "op": "multi_put", "items": [["m:a", 1], ["m:b", 2]]}))
        .await;
    assert_eq!(r["result"]["affected"], 2);
    let r = c
        .call(json!({"id": 4, "op": "multi_put", "items": {"m:c": 3}}))
        .await;
    assert_eq!(r["result"]["affected"], 1);
    let r = c
        .call(json!({"id": 5, "op": "scan", "prefix": "m:", "limit": 2}))
        .await;
    assert_eq!(r["result"]["items"], json!([["m:a", 1], ["m:b", 2]]));
    let cursor = r["result"]["next"].clone();
    let r = c
        .call(json!({"id": 6, "op": "scan", "prefix": "m:", "limit": 2, "cursor": cursor}))
        .await;
    assert_eq!(r["result"], json!({"items": [["m:c", 3]], "next": null}));
    let r = c
        .call(json!({"id": 7, "op": "increment", "key": "m:a", "delta": 41}))
        .await;
    assert_eq!(r["result"]["value"], 42);
    let r = c
        .call(json!({"id": 8, "op": "get_ttl", "key": "m:a"}))
        .await;
    assert_eq!(r["result"], json!({"persistent": true}));
    let r = c
        .call(json!({"id": 9, "op": "get_record", "key": "m:a"}))
        .await;
    assert_eq!(r["result"]["meta"]["kind"], "integer");
    let r = c
        .call(json!({"id": 10, "op": "get_metadata", "key": "m:a"}))
        .await;
    assert_eq!(r["result"]["version"], 2);

    // Transactions by id; a connection's transactions roll back when it drops.
    let r = c.call(json!({"id": 11, "op": "begin"})).await;
    let txn = r["result"]["txn"].clone();
    let r = c
        .call(json!({"id": 12, "op": "txn_put", "txn": txn, "key": "t:x", "value": 1}))
        .await;
    assert_eq!(r["result"], true);
    let mut other = Raw::connect(&server.addr).await;
    let r = other
        .call(json!({"id": 1, "op": "commit", "txn": txn}))
        .await;
    assert_eq!(
        code(&r),
        Some("TXN_NOT_FOUND"),
        "another connection's transaction"
    );
    drop(c);
    let mut open = json!(1);
    for _ in 0..100 {
        open = other.call(json!({"id": 2, "op": "stats"})).await["result"]["open_transactions"]
            .clone();
        if open == json!(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(open, json!(0));
    let r = other
        .call(json!({"id": 3, "op": "get", "key": "t:x"}))
        .await;
    assert_eq!(r["result"], json!(null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_error_and_the_connection_stays_usable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory"]);
    let mut c = Raw::connect(&server.addr).await;
    let cases: [(&str, &str); 12] = [
        ("{not json", "BAD_JSON"),
        ("[1,2]", "BAD_REQUEST"),
        (r#"{"id":1}"#, "BAD_ARGUMENT"),
        (r#"{"id":1,"op":7}"#, "BAD_ARGUMENT"),
        (r#"{"id":1,"op":"frobnicate"}"#, "UNKNOWN_OP"),
        (r#"{"id":1,"op":"get"}"#, "BAD_ARGUMENT"),
        (r#"{"id":1,"op":"get","key":5}"#, "BAD_ARGUMENT"),
        (r#"{"id":1,"op":"put","key":"a:b"}"#, "BAD_ARGUMENT"),
        (
            r#"{"id":1,"op":"put","key":"a:b","value":{"$what":1}}"#,
            "BAD_ARGUMENT",
        ),
        (
            r#"{"id":1,"op":"put","key":"a:b","value":1,"ttl_ms":-5}"#,
            "BAD_ARGUMENT",
        ),
        (
            r#"{"id":1,"op":"put","key":"a:b","value":18446744073709551615}"#,
            "BAD_ARGUMENT",
        ),
        (r#"{"id":1,"op":"get","key":"a:"}"#, "INVALID_KEY"),
    ];
    for (line, expected) in cases {
        c.send_line(line).await;
        let r = c.recv().await.expect("a response");
        assert_eq!(r["ok"], false, "{line}");
        assert_eq!(code(&r), Some(expected), "{line} -> {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Blank lines are skipped; the connection still answers.
    c.send_line("").await;
    let r = c.call(json!({"id": "after", "op": "ping"})).await;
    assert_eq!(r["result"], "pong");
    // Absurd sizes are refused or capped, never allocated.
    let huge = u64::MAX;
    for request in [
        json!({"id": 1, "op": "scan", "prefix": "a:", "limit": huge}),
        json!({"id": 1, "op": "changes", "since": 0, "limit": huge}),
        json!({"id": 1, "op": "begin", "timeout_ms": huge}),
        json!({"id": 1, "op": "put", "key": "a:t", "value": 1, "ttl_ms": huge}),
        json!({"id": 1, "op": "declare_vector_index", "name": "v", "pattern": "v:*", "dimension": huge}),
        json!({"id": 1, "op": "increment", "key": "a:i", "delta": i64::MAX}),
        json!({"id": 1, "op": "increment", "key": "a:i", "delta": 1}),
    ] {
        let r = c.call(request.clone()).await;
        assert!(r["ok"].is_boolean(), "{request} -> {r}");
    }
    let r = c.call(json!({"id": "alive", "op": "ping"})).await;
    assert_eq!(r["result"], "pong");
    // A wrong-type store error keeps the store's code.
    c.call(json!({"id": 1, "op": "put", "key": "a:s", "value": "text"}))
        .await;
    let r = c
        .call(json!({"id": 2, "op": "increment", "key": "a:s"}))
        .await;
    assert_eq!(code(&r), Some("WRONG_TYPE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_line_is_refused_without_being_buffered_and_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory", "--max-request-bytes", "4096"]);
    let mut big = Raw::connect(&server.addr).await;
    let mut bystander = Raw::connect(&server.addr).await;
    // 64 MiB with no newline: the server must answer long before it could have buffered it.
    let chunk = vec![b'x'; 64 * 1024];
    let writer = tokio::spawn(async move {
        for _ in 0..1024 {
            if big.writer.write_all(&chunk).await.is_err() {
                break;
            }
        }
        big
    });
    let r = bystander.call(json!({"id": 1, "op": "ping"})).await;
    assert_eq!(r["result"], "pong");
    let mut big = tokio::time::timeout(Duration::from_secs(20), writer)
        .await
        .expect("the server stops reading the big line")
        .expect("join");
    let lines = big.drain(Duration::from_secs(10)).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(code(&lines[0]), Some("TOO_LARGE"));
    // A line just under the limit is fine.
    let value = "v".repeat(3000);
    let r = bystander
        .call(json!({"id": 2, "op": "put", "key": "a:b", "value": value}))
        .await;
    assert_eq!(r["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_refuses_the_next_client_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory", "--max-connections", "2"]);
    let mut a = Raw::connect(&server.addr).await;
    let mut b = Raw::connect(&server.addr).await;
    assert_eq!(
        a.call(json!({"id": 1, "op": "ping"})).await["result"],
        "pong"
    );
    assert_eq!(
        b.call(json!({"id": 1, "op": "ping"})).await["result"],
        "pong"
    );
    let mut c = Raw::connect(&server.addr).await;
    let lines = c.drain(Duration::from_secs(5)).await;
    assert_eq!(code(&lines[0]), Some("TOO_MANY_CONNECTIONS"));
    drop(a);
    // The freed slot is given back once the server sees the close.
    let mut ok = false;
    for _ in 0..50 {
        let mut d = Raw::connect(&server.addr).await;
        d.send_line(r#"{"id":1,"op":"ping"}"#).await;
        if d.recv().await.is_some_and(|r| r["result"] == "pong") {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_close_but_subscribed_ones_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory", "--idle-timeout", "1"]);
    let mut idle = Raw::connect(&server.addr).await;
    let mut subscribed = Raw::connect(&server.addr).await;
    let r = subscribed
        .call(json!({"id": 1, "op": "subscribe", "pattern": "feed:*"}))
        .await;
    let sub = r["result"]["sub"].clone();
    assert!(sub.is_u64(), "{r}");
    let started = std::time::Instant::now();
    let lines = idle.drain(Duration::from_secs(5)).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(code(&lines[0]), Some("IDLE_TIMEOUT"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut writer = Raw::connect(&server.addr).await;
    writer
        .call(json!({"id": 1, "op": "put", "key": "feed:x", "value": 1}))
        .await;
    let event = subscribed.recv().await.expect("still open, an event");
    assert_eq!(event["sub"], sub);
    assert_eq!(event["event"]["key"], "feed:x");
    assert_eq!(event["event"]["kind"], "create");
    assert_eq!(event["event"]["new"], 1);
    // Unsubscribed, it is idle again.
    let r = subscribed
        .call(json!({"id": 2, "op": "unsubscribe", "sub": sub}))
        .await;
    assert_eq!(r["result"], true);
    let lines = subscribed.drain(Duration::from_secs(5)).await;
    assert_eq!(code(&lines[0]), Some("IDLE_TIMEOUT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_cut_off_without_stalling_writers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory"]);
    let mut slow = Raw::connect(&server.addr).await;
    let r = slow.call(json!({"id": 1, "op": "subscribe"})).await;
    assert!(r["result"]["sub"].is_u64());
    // ~40 MB of events, far past the 8 MiB outbox and the socket buffers, never read.
    let mut writer = Raw::connect(&server.addr).await;
    let value = "x".repeat(20_000);
    let started = std::time::Instant::now();
    for i in 0..2000 {
        let r = writer
            .call(json!({"id": i, "op": "put", "key": format!("big:k{}", i % 50), "value": value}))
            .await;
        assert_eq!(r["ok"], true);
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "writers are not held up"
    );
    // Reading now: the queued events, then the reason, then the close.
    let lines = slow.drain(Duration::from_secs(30)).await;
    let last = lines.last().expect("lines");
    assert_eq!(code(last), Some("SLOW_CONSUMER"), "{}", last);
    assert!(lines.len() < 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_op_and_binding_off_loopback_needs_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory", "--auth-token", "t0ken"]);
    let mut c = Raw::connect(&server.addr).await;
    for op in ["ping", "get", "stats", "subscribe"] {
        let r = c.call(json!({"id": 1, "op": op, "key": "a:b"})).await;
        assert_eq!(code(&r), Some("UNAUTHORIZED"), "{op}");
    }
    let r = c
        .call(json!({"id": 2, "op": "auth", "token": "t0ke"}))
        .await;
    assert_eq!(code(&r), Some("UNAUTHORIZED"));
    let r = c
        .call(json!({"id": 3, "op": "auth", "token": "t0ken"}))
        .await;
    assert_eq!(r["result"], true);
    let r = c.call(json!({"id": 4, "op": "ping"})).await;
    assert_eq!(r["result"], "pong");

    let refused = Server::start_args(&["serve", "--in-memory", "--host", "0.0.0.0", "--port", "0"]);
    let status = refused
        .err()
        .expect("refuses to bind 0.0.0.0 without a token");
    assert!(!status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_take_effect_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let mut c = Raw::connect(&server.addr).await;
    // All sent before any is answered: in CP mode the puts wait for fsync, yet each get sees
    // the put before it (or a later one: a read that waits for durability reads again).
    let mut batch = String::new();
    for i in 0..50 {
        batch.push_str(
            &json!({"id": format!("p{i}"), "op": "put", "key": "o:k", "value": i}).to_string(),
        );
        batch.push('\n');
        batch.push_str(&json!({"id": format!("g{i}"), "op": "get", "key": "o:k"}).to_string());
        batch.push('\n');
    }
    c.writer.write_all(batch.as_bytes()).await.expect("write");
    let mut gets = std::collections::HashMap::new();
    for _ in 0..100 {
        let r = c.recv().await.expect("response");
        assert_eq!(r["ok"], true, "{r}");
        let id = r["id"].as_str().expect("id").to_owned();
        if let Some(i) = id.strip_prefix('g') {
            gets.insert(
                i.parse::<i64>().expect("n"),
                r["result"].as_i64().expect("int"),
            );
        }
    }
    assert_eq!(gets.len(), 50);
    for (i, seen) in gets {
        assert!(
            seen >= i,
            "get {i} saw {seen}, older than the put before it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_ops_patch_and_read_back_in_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory"]);
    let mut c = Raw::connect(&server.addr).await;
    let r = c
        .call(json!({"id": 1, "op": "put", "key": "doc:a", "value": {"n": 1, "tags": ["x"]}}))
        .await;
    let first = r["result"]["revision"].as_u64().expect("revision");
    let r = c
        .call(json!({"id": 2, "op": "patch", "key": "doc:a", "merge": {"n": 2}}))
        .await;
    assert_eq!(r["result"]["op"], "update", "{r}");
    let r = c
        .call(json!({"id": 3, "op": "patch", "key": "doc:a", "ops": [{"op": "add", "path": "/tags/-", "value": "y"}]}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let r = c.call(json!({"id": 4, "op": "get", "key": "doc:a"})).await;
    assert_eq!(r["result"], json!({"n": 2, "tags": ["x", "y"]}));
    let r = c
        .call(json!({"id": 5, "op": "patch", "key": "doc:a"}))
        .await;
    assert_eq!(code(&r), Some("BAD_ARGUMENT"));
    let r = c
        .call(json!({"id": 6, "op": "patch", "key": "doc:a", "ops": [{"op": "nope"}]}))
        .await;
    assert_eq!(code(&r), Some("INVALID_PATCH"));

    let r = c
        .call(json!({"id": 7, "op": "get_at", "key": "doc:a", "revision": first}))
        .await;
    assert_eq!(r["result"]["value"], json!({"n": 1, "tags": ["x"]}));
    assert_eq!(r["result"]["version"], 1);
    let r = c
        .call(json!({"id": 8, "op": "key_history", "key": "doc:a"}))
        .await;
    let versions = r["result"].as_array().expect("list");
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[0]["kind"], "create");
    let r = c
        .call(json!({"id": 9, "op": "compact", "revision": first + 1}))
        .await;
    assert_eq!(r["result"], true);
    let r = c
        .call(json!({"id": 10, "op": "get_at", "key": "doc:a", "revision": first}))
        .await;
    assert_eq!(code(&r), Some("COMPACTED"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_idle_and_subscribed_clients_exits_promptly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let mut idle = Raw::connect(&server.addr).await;
    let mut subscribed = Raw::connect(&server.addr).await;
    subscribed.call(json!({"id": 1, "op": "subscribe"})).await;
    idle.call(json!({"id": 1, "op": "put", "key": "a:b", "value": 1}))
        .await;
    let event = subscribed.recv().await.expect("the put's event");
    assert_eq!(event["event"]["key"], "a:b");
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    assert!(status.success(), "{status:?}");
    // Well inside the 10 s grace: open connections do not hold a shutdown up.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(subscribed.drain(Duration::from_secs(5)).await.is_empty());
    assert!(idle.drain(Duration::from_secs(5)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_transaction_ops_apply_before_the_commit_behind_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let mut c = Raw::connect(&server.addr).await;
    let r = c.call(json!({"id": 0, "op": "begin"})).await;
    let txn = r["result"]["txn"].clone();
    let mut batch = String::new();
    for i in 0..300 {
        let put = json!({"id": i + 1, "op": "txn_put", "txn": txn, "key": format!("tp:k{i}"), "value": i});
        batch.push_str(&put.to_string());
        batch.push('\n');
    }
    batch.push_str(&json!({"id": "commit", "op": "commit", "txn": txn}).to_string());
    batch.push('\n');
    c.writer.write_all(batch.as_bytes()).await.expect("write");
    let mut commit = None;
    for _ in 0..301 {
        let r = c.recv().await.expect("response");
        assert_eq!(r["ok"], true, "{r}");
        if r["id"] == "commit" {
            commit = Some(r);
        }
    }
    let commit = commit.expect("the commit answered");
    assert_eq!(commit["result"]["affected"], 300, "{commit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_then_else_txn_takes_one_branch_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--in-memory"]);
    let mut c = Raw::connect(&server.addr).await;
    let r = c
        .call(json!({"id": 1, "op": "put", "key": "acct:a", "value": 10}))
        .await;
    assert_eq!(r["result"]["version"], 1);

    // Every compare holds: the success branch runs as one revision.
    let r = c
        .call(json!({"id": 2, "op": "txn",
            "compare": [{"key": "acct:a", "version": 1}, {"key": "acct:b", "exists": false}],
            "success": [{"op": "put", "key": "acct:a", "value": 5},
                        {"op": "put", "key": "acct:b", "value": 5, "ttl_ms": 60000},
                        {"op": "get", "key": "acct:b"}],
            "failure": [{"op": "get", "key": "acct:a"}]}))
        .await;
    assert_eq!(r["ok"], true, "{r}");
    let result = &r["result"];
    assert_eq!(result["succeeded"], true);
    assert_eq!(result["revision"], 2);
    assert_eq!(
        result["results"],
        json!([{"op": "put", "version": 2}, {"op": "put", "version": 1},
               {"op": "get", "found": true, "value": 5, "version": 1, "mod_revision": 2}])
    );

    // A compare fails: the failure branch runs instead, and writes nothing.
    let r = c
        .call(json!({"id": 3, "op": "txn",
            "compare": [{"key": "acct:a", "cmp": "greater", "value": 7}],
            "success": [{"op": "delete", "key": "acct:a"}],
            "failure": [{"op": "get", "key": "acct:a"}, {"op": "get", "key": "acct:none"}]}))
        .await;
    assert_eq!(r["result"]["succeeded"], false);
    assert_eq!(r["result"]["revision"], 2);
    assert_eq!(r["result"]["results"][0]["value"], 5);
    assert_eq!(
        r["result"]["results"][1],
        json!({"op": "get", "found": false})
    );

    // A branch whose patch cannot apply changes nothing at all.
    let r = c
        .call(json!({"id": 4, "op": "txn",
            "success": [{"op": "delete", "key": "acct:b"},
                        {"op": "patch", "key": "acct:a", "ops": [{"op": "remove", "path": "/x"}]}]}))
        .await;
    assert_eq!(r["ok"], false);
    let r = c
        .call(json!({"id": 5, "op": "exists", "key": "acct:b"}))
        .await;
    assert_eq!(r["result"], true);

    // Malformed transactions name the part that is wrong.
    for (bad, needle) in [
        (json!({"compare": [{"key": "acct:a"}]}), "compare[0]"),
        (
            json!({"success": [{"op": "fly", "key": "k"}]}),
            "success[0]",
        ),
        (json!({"failure": "get"}), "\"failure\" must be an array"),
    ] {
        let mut req = bad.clone();
        req["id"] = json!(6);
        req["op"] = json!("txn");
        let r = c.call(req).await;
        assert_eq!(code(&r), Some("BAD_ARGUMENT"), "{bad}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{message}");
    }
}

/// A subscribe's response keeps its place among pipelined responses (AP mode answers in
/// order), and still comes before the subscription's first event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_subscribe_is_answered_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--mode", "ap"]);
    let mut c = Raw::connect(&server.addr).await;
    let mut batch = String::new();
    for i in 0..20 {
        for request in [
            json!({"id": format!("s{i}"), "op": "subscribe", "pattern": format!("o{i}:**")}),
            json!({"id": format!("p{i}"), "op": "put", "key": format!("o{i}:k"), "value": i}),
            json!({"id": format!("g{i}"), "op": "ping"}),
        ] {
            batch.push_str(&request.to_string());
            batch.push('\n');
        }
    }
    c.writer.write_all(batch.as_bytes()).await.expect("write");
    let mut responses = Vec::new();
    let mut subs = std::collections::HashMap::new();
    while responses.len() < 60 {
        let r = c.recv().await.expect("a line");
        if let Some(sub) = r.get("sub") {
            // An event: its subscription was answered already, and it is the put's.
            let i = subs.get(&sub.as_u64().expect("sub")).copied();
            let i: usize =
                i.unwrap_or_else(|| panic!("event before its subscribe's response: {r}"));
            assert_eq!(r["event"]["key"], format!("o{i}:k"), "{r}");
            continue;
        }
        assert_eq!(r["ok"], true, "{r}");
        let id = r["id"].as_str().expect("id").to_owned();
        if let Some(i) = id.strip_prefix('s') {
            subs.insert(
                r["result"]["sub"].as_u64().expect("sub"),
                i.parse().expect("n"),
            );
        }
        responses.push(id);
    }
    let sent: Vec<String> = (0..20)
        .flat_map(|i| [format!("s{i}"), format!("p{i}"), format!("g{i}")])
        .collect();
    assert_eq!(responses, sent, "responses out of the order sent");
}
