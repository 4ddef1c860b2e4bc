//! Chaos: a CP server SIGKILLed and restarted every 1-2 s under a write load from several
//! clients. Every write the server acknowledged must be there after the last restart.

#[path = "server_jsonl_common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Server;
use statemesh::{Client, Value};

const WRITERS: usize = 4;
const ROUNDS: u64 = 7;

/// One writer: puts `chaos:w{w}.k{n}` = n (and bumps a counter key) until the connection
/// breaks; returns what was acknowledged.
async fn write_until_killed(
    addr: String,
    writer: usize,
    start: i64,
) -> (HashMap<String, i64>, Option<(String, i64)>) {
    let mut acked = HashMap::new();
    let mut counter = None;
    let Ok(client) = Client::connect(&addr).await else {
        return (acked, counter);
    };
    for n in start.. {
        let key = format!("chaos:w{writer}.k{n}");
        if client.put(&key, n).await.is_err() {
            break;
        }
        acked.insert(key, n);
        // Overwrites too: the last acknowledged version of one key must survive.
        let hot = format!("chaos:hot.w{writer}");
        if client.put(&hot, n).await.is_err() {
            break;
        }
        counter = Some((hot, n));
    }
    (acked, counter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_repeated_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acked: HashMap<String, i64> = HashMap::new();
    let mut hot: HashMap<String, i64> = HashMap::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let server = Server::start(dir.path(), &[]);
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let start = i64::try_from(round * 1_000_000).expect("fits");
                tokio::spawn(write_until_killed(server.addr.clone(), w, start))
            })
            .collect();
        // 1.0 to 1.9 s, varied so kills land at different points of the group commit.
        let pause = 1000 + (round * 373) % 900;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        tokio::task::spawn_blocking(move || server.kill())
            .await
            .expect("kill");
        for t in tasks {
            let (got, last) = t.await.expect("writer");
            acked.extend(got);
            if let Some((key, n)) = last {
                hot.insert(key, n);
            }
        }
    }
    assert!(acked.len() > 100, "the load wrote little: {}", acked.len());

    let server = Server::start(dir.path(), &[]);
    let client = Client::connect(&server.addr).await.expect("connect");
    let keys: Vec<&String> = acked.keys().collect();
    for chunk in keys.chunks(500) {
        let values = client.multi_get(chunk).await.expect("multi_get");
        for (key, value) in chunk.iter().zip(values) {
            assert_eq!(
                value,
                Some(Value::from(acked[*key])),
                "acknowledged {key} lost"
            );
        }
    }
    for (key, n) in &hot {
        // A later write may have landed without its acknowledgement; never an older one.
        let value = client.get(key).await.expect("get").expect("present");
        let found = value.as_i64().expect("integer");
        assert!(found >= *n, "{key}: acknowledged {n}, found {found}");
    }
    eprintln!(
        "chaos: {} acknowledged writes over {ROUNDS} SIGKILLs in {:?}, all present",
        acked.len(),
        started.elapsed()
    );
}
