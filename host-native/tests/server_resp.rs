//! The Redis-compatible port end to end: the real `statemesh serve` binary on free ports,
//! driven by the `redis` crate (a real client library), by raw TCP for protocol errors, and by
//! the real `redis-cli` when it is installed. A last test sends the same commands to a real
//! `redis-server` (when installed) and compares the reply bytes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::AsyncCommands;

/// A running `statemesh serve`, killed when dropped.
struct Server {
    child: Child,
    resp: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw connection whose reads give up after `secs` seconds.
fn raw_connect(addr: SocketAddr, secs: u64) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(secs)))
        .expect("timeout");
    stream
}

fn start(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let (child, resp) = spawn(dir.path(), extra);
    Server {
        child,
        resp,
        _dir: dir,
    }
}

/// Starts `statemesh serve` on `dir`; returns it and its RESP address.
fn spawn(dir: &std::path::Path, extra: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statemesh"))
        .args(["serve", "--port", "0", "--resp-port", "0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start statemesh serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let resp = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("resp="))
        .unwrap_or_else(|| panic!("no resp= in {line:?}"))
        .parse()
        .expect("resp address");
    (child, resp)
}

/// WATCH `key` on connection `w`.
async fn watch(w: &mut redis::aio::MultiplexedConnection, key: &str) {
    let _: () = redis::cmd("WATCH")
        .arg(key)
        .query_async(w)
        .await
        .expect("watch");
}

/// MULTI / INCR `key` / EXEC on `w`: `None` when EXEC aborted (a watched key changed).
async fn exec_incr(w: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<(i64,)> {
    redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg(key)
        .query_async(w)
        .await
        .expect("exec")
}

fn url(addr: SocketAddr) -> String {
    format!("redis://{addr}/")
}

async fn connect(server: &Server) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url(server.resp))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// Sends raw bytes and reads until `want` bytes of reply arrived or the server closed.
fn raw(addr: SocketAddr, request: &[u8], want: usize) -> Vec<u8> {
    let mut stream = raw_connect(addr, 5);
    stream.write_all(request).expect("write");
    read_reply(&mut stream, want)
}

fn read_reply(stream: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while got.len() < want {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    got
}

/// True when the server closed the connection (a read returns 0 bytes).
fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_commands_through_a_real_client() {
    let server = start(&["--mode", "ap"]);
    let mut c = connect(&server).await;
    let _: () = c.set("user:42", "alice").await.expect("set");
    let v: String = c.get("user:42").await.expect("get");
    assert_eq!(v, "alice");
    let missing: Option<String> = c.get("user:43").await.expect("get missing");
    assert_eq!(missing, None);
    // Binary values come back byte for byte.
    let blob = vec![0u8, 255, 13, 10, 7];
    let _: () = c.set("bin", blob.as_slice()).await.expect("set bytes");
    let back: Vec<u8> = c.get("bin").await.expect("get bytes");
    assert_eq!(back, blob);
    // INCR family over integers and decimal strings.
    let _: () = c.set("n", "10").await.expect("set n");
    assert_eq!(c.incr::<_, _, i64>("n", 5).await.expect("incrby"), 15);
    assert_eq!(c.decr::<_, _, i64>("n", 20).await.expect("decrby"), -5);
    let n: i64 = redis::cmd("INCR")
        .arg("counter")
        .query_async(&mut c)
        .await
        .expect("incr");
    assert_eq!(n, 1);
    let as_text: String = c.get("n").await.expect("get integer");
    assert_eq!(as_text, "-5");
    // APPEND, STRLEN, GETDEL, EXISTS, DEL, MSET, MGET.
    assert_eq!(c.append::<_, _, i64>("n", "0").await.expect("append"), 3);
    assert_eq!(c.get::<_, String>("n").await.expect("get"), "-50");
    assert_eq!(c.strlen::<_, i64>("user:42").await.expect("strlen"), 5);
    let _: () = c.mset(&[("a:1", "x"), ("a:2", "y")]).await.expect("mset");
    let got: Vec<Option<String>> = c.mget(&["a:1", "nope", "a:2"]).await.expect("mget");
    assert_eq!(got, vec![Some("x".into()), None, Some("y".into())]);
    assert_eq!(
        c.exists::<_, i64>(&["a:1", "a:2", "nope"])
            .await
            .expect("exists"),
        2
    );
    let gone: Option<String> = redis::cmd("GETDEL")
        .arg("a:1")
        .query_async(&mut c)
        .await
        .expect("getdel");
    assert_eq!(gone.as_deref(), Some("x"));
    assert_eq!(c.del::<_, i64>(&["a:1", "a:2"]).await.expect("del"), 1);
    // SET options.
    let set_nx: Option<String> = redis::cmd("SET")
        .arg("user:42")
        .arg("bob")
        .arg("NX")
        .query_async(&mut c)
        .await
        .expect("set nx");
    assert_eq!(set_nx, None);
    let old: Option<String> = redis::cmd("SET")
        .arg("user:42")
        .arg("bob")
        .arg("XX")
        .arg("GET")
        .query_async(&mut c)
        .await
        .expect("set xx get");
    assert_eq!(old.as_deref(), Some("alice"));
    let set_xx: Option<String> = redis::cmd("SET")
        .arg("fresh")
        .arg("v")
        .arg("XX")
        .query_async(&mut c)
        .await
        .expect("set xx");
    assert_eq!(set_xx, None);
    // Keys the store refuses get a clear error, not a panic or a silent miss.
    let err = c
        .set::<_, _, ()>("bad*key", "v")
        .await
        .expect_err("invalid key");
    assert!(err.to_string().contains("invalid key"), "{err}");
    // INCR on text is Redis's error; its overflow too.
    let err = c
        .incr::<_, _, i64>("user:42", 1)
        .await
        .expect_err("not a number");
    assert!(err.to_string().contains("not an integer"), "{err}");
    let _: () = c.set("big", i64::MAX).await.expect("set max");
    let err = c.incr::<_, _, i64>("big", 1).await.expect_err("overflow");
    assert!(err.to_string().contains("overflow"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_commands_follow_redis() {
    let server = start(&["--mode", "ap"]);
    let mut c = connect(&server).await;
    assert_eq!(c.ttl::<_, i64>("none").await.expect("ttl"), -2);
    let _: () = c.set("k", "v").await.expect("set");
    assert_eq!(c.ttl::<_, i64>("k").await.expect("ttl"), -1);
    assert!(c.expire::<_, bool>("k", 100).await.expect("expire"));
    let ttl: i64 = c.ttl("k").await.expect("ttl");
    assert!((99..=100).contains(&ttl), "{ttl}");
    let pttl: i64 = c.pttl("k").await.expect("pttl");
    assert!(pttl > 99_000 && pttl <= 100_000, "{pttl}");
    assert!(c.persist::<_, bool>("k").await.expect("persist"));
    assert!(!c.persist::<_, bool>("k").await.expect("persist again"));
    assert_eq!(c.ttl::<_, i64>("k").await.expect("ttl"), -1);
    // KEEPTTL keeps it; a plain SET clears it.
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("1")
        .arg("PX")
        .arg(60_000)
        .query_async(&mut c)
        .await
        .expect("set px");
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("2")
        .arg("KEEPTTL")
        .query_async(&mut c)
        .await
        .expect("keepttl");
    assert!(c.pttl::<_, i64>("t").await.expect("pttl") > 0);
    let _: () = c.set("t", "3").await.expect("set");
    assert_eq!(c.ttl::<_, i64>("t").await.expect("ttl"), -1);
    // Expiry really removes the key.
    let _: () = redis::cmd("SET")
        .arg("short")
        .arg("1")
        .arg("PX")
        .arg(50)
        .query_async(&mut c)
        .await
        .expect("set px");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        c.get::<_, Option<String>>("short").await.expect("get"),
        None
    );
    // EXPIRE with a time in the past deletes at once; on a missing key it answers 0.
    assert!(c.expire::<_, bool>("t", -1).await.expect("expire past"));
    assert_eq!(c.exists::<_, i64>("t").await.expect("exists"), 0);
    assert!(!c.expire::<_, bool>("t", 10).await.expect("expire missing"));
    // Redis's error for a bad expire time.
    let err = redis::cmd("SET")
        .arg("x")
        .arg("1")
        .arg("EX")
        .arg(0)
        .query_async::<()>(&mut c)
        .await
        .expect_err("ex 0");
    assert!(
        err.to_string()
            .contains("invalid expire time in 'set' command"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_scan_dbsize_flushdb() {
    let server = start(&[]);
    let mut c = connect(&server).await;
    for i in 0..25 {
        let _: () = c.set(format!("user:{i}"), i).await.expect("set");
    }
    let _: () = c.set("plain", "p").await.expect("set plain");
    let _: () = c.set("session:a.b", "s").await.expect("set session");
    let mut keys: Vec<String> = c.keys("user:1*").await.expect("keys");
    keys.sort();
    assert_eq!(keys.len(), 11, "{keys:?}");
    let all: Vec<String> = c.keys("*").await.expect("keys *");
    assert_eq!(all.len(), 27);
    assert!(
        all.contains(&"plain".to_owned()),
        "default namespace without prefix"
    );
    // `*` crosses the path separator, as in Redis.
    let sessions: Vec<String> = c.keys("session:*").await.expect("keys");
    assert_eq!(sessions, vec!["session:a.b".to_owned()]);
    // A full SCAN sees every key exactly once, page by page.
    let mut seen = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(4)
            .query_async(&mut c)
            .await
            .expect("scan");
        assert!(page.len() <= 4);
        seen.extend(page);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    seen.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(seen, expected);
    let mut matched: Vec<String> = Vec::new();
    let mut iter: redis::AsyncIter<'_, String> = c.scan_match("user:2*").await.expect("scan match");
    while let Some(k) = iter.next_item().await {
        matched.push(k.expect("item"));
    }
    drop(iter);
    matched.sort();
    assert_eq!(
        matched,
        vec![
            "user:2", "user:20", "user:21", "user:22", "user:23", "user:24"
        ]
    );
    let err = redis::cmd("SCAN")
        .arg("abc")
        .query_async::<()>(&mut c)
        .await
        .expect_err("bad cursor");
    assert!(err.to_string().contains("invalid cursor"), "{err}");
    let n: i64 = redis::cmd("DBSIZE")
        .query_async(&mut c)
        .await
        .expect("dbsize");
    assert_eq!(n, 27);
    let _: () = redis::cmd("FLUSHDB")
        .query_async(&mut c)
        .await
        .expect("flushdb");
    let n: i64 = redis::cmd("DBSIZE")
        .query_async(&mut c)
        .await
        .expect("dbsize");
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_and_watch_conflicts() {
    let server = start(&[]);
    let mut c = connect(&server).await;
    let mut other = connect(&server).await;
    // An atomic pipeline is MULTI ... EXEC.
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("tx:n")
        .cmd("INCRBY")
        .arg("tx:n")
        .arg(10)
        .query_async(&mut c)
        .await
        .expect("multi/exec");
    assert_eq!((a, b), (1, 11));
    // WATCH on a dedicated connection: a change by another client makes EXEC return nil.
    let client = redis::Client::open(url(server.resp)).expect("client");
    let mut w = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    watch(&mut w, "tx:n").await;
    let _: () = other.set("tx:n", 100).await.expect("conflicting write");
    let result = exec_incr(&mut w, "tx:n").await;
    assert_eq!(result, None, "EXEC after a watched key changed returns nil");
    assert_eq!(other.get::<_, i64>("tx:n").await.expect("get"), 100);
    // Without a conflict the watched transaction runs.
    watch(&mut w, "tx:n").await;
    let result = exec_incr(&mut w, "tx:n").await;
    assert_eq!(result, Some((101,)));
    // Watching a missing key: its creation by another client is a conflict.
    watch(&mut w, "tx:new").await;
    let _: () = other.set("tx:new", 1).await.expect("create");
    let result: Option<(String,)> = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("tx:new")
        .arg(2)
        .query_async(&mut w)
        .await
        .expect("exec");
    assert_eq!(result, None);
}

/// A small deterministic generator for the racing clients (xorshift64).
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// One client's share of [`racing_watch_transfers_keep_every_balance`]: transfers between
/// random accounts, each a WATCH of both, two GETs and a MULTI that SETs the balances it
/// computed from them, retried when EXEC aborts. Returns the transfers that ran, as
/// (from, to, amount), and how many EXECs aborted.
async fn transfer_client(
    addr: SocketAddr,
    seed: u64,
    accounts: usize,
    transfers: usize,
) -> (Vec<(usize, usize, i64)>, usize) {
    let mut c = redis::Client::open(url(addr))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut rng = seed;
    let mut done = Vec::with_capacity(transfers);
    let mut aborted = 0;
    while done.len() < transfers {
        let from = (next_random(&mut rng) % accounts as u64) as usize;
        let to = (from + 1 + (next_random(&mut rng) % (accounts as u64 - 1)) as usize) % accounts;
        let amount = 1 + (next_random(&mut rng) % 40) as i64;
        let (from_key, to_key) = (format!("bank:{from}"), format!("bank:{to}"));
        let _: () = redis::cmd("WATCH")
            .arg(&from_key)
            .arg(&to_key)
            .query_async(&mut c)
            .await
            .expect("watch");
        let from_balance: i64 = c.get(&from_key).await.expect("get");
        let to_balance: i64 = c.get(&to_key).await.expect("get");
        if from_balance < amount {
            let _: () = redis::cmd("UNWATCH")
                .query_async(&mut c)
                .await
                .expect("unwatch");
            continue;
        }
        let ran: Option<(String, String)> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&from_key)
            .arg(from_balance - amount)
            .cmd("SET")
            .arg(&to_key)
            .arg(to_balance + amount)
            .query_async(&mut c)
            .await
            .expect("exec");
        match ran {
            Some(_) => done.push((from, to, amount)),
            None => aborted += 1,
        }
    }
    (done, aborted)
}

/// Clients race WATCH/MULTI transfers over a few accounts, writing balances they computed from
/// what they read, so a WATCH that missed a conflicting write would lose or make money. Beside
/// them a reader's MGET (one atomic read) must always see the whole sum, and pipelined INCRs
/// from another connection must all count. At the end every balance must be what replaying
/// the transfers that committed gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_watch_transfers_keep_every_balance() {
    racing_watch_transfers(&[]).await;
}

/// The same in AP mode, where EXEC does not wait for the disk and transactions interleave
/// more tightly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_watch_transfers_keep_every_balance_in_ap_mode() {
    racing_watch_transfers(&["--mode", "ap"]).await;
}

async fn racing_watch_transfers(extra: &[&str]) {
    const ACCOUNTS: usize = 5;
    const CLIENTS: u64 = 6;
    const TRANSFERS: usize = 100;
    const START: i64 = 200;
    let server = start(extra);
    let keys: Vec<String> = (0..ACCOUNTS).map(|i| format!("bank:{i}")).collect();
    let mut setup = connect(&server).await;
    for key in &keys {
        let _: () = setup.set(key, START).await.expect("seed");
    }
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (mut c, keys, finished) = (connect(&server).await, keys.clone(), finished.clone());
        tokio::spawn(async move {
            let mut reads = 0usize;
            while !finished.load(std::sync::atomic::Ordering::Acquire) {
                let balances: Vec<i64> = c.mget(&keys).await.expect("mget");
                let sum: i64 = balances.iter().sum();
                assert_eq!(sum, START * ACCOUNTS as i64, "MGET saw {balances:?}");
                reads += 1;
            }
            reads
        })
    };
    let counter = {
        let mut c = connect(&server).await;
        tokio::spawn(async move {
            for _ in 0..40 {
                let mut pipe = redis::pipe();
                for _ in 0..25 {
                    pipe.cmd("INCR").arg("bank:ops").ignore();
                }
                let _: () = pipe.query_async(&mut c).await.expect("incr pipeline");
            }
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let seed = 0x9E37_79B9_7F4A_7C15 ^ (i + 1);
            tokio::spawn(transfer_client(server.resp, seed, ACCOUNTS, TRANSFERS))
        })
        .collect();
    let mut expected = vec![START; ACCOUNTS];
    let mut aborted = 0;
    for client in clients {
        let (done, client_aborted) = client.await.expect("transfer client");
        aborted += client_aborted;
        for (from, to, amount) in done {
            expected[from] -= amount;
            expected[to] += amount;
        }
    }
    counter.await.expect("counter");
    finished.store(true, std::sync::atomic::Ordering::Release);
    let reads = reader.await.expect("reader");
    let balances: Vec<i64> = setup.mget(&keys).await.expect("final mget");
    assert_eq!(
        balances, expected,
        "balances against the committed transfers"
    );
    assert_eq!(setup.get::<_, i64>("bank:ops").await.expect("ops"), 1000);
    // Six clients on five accounts collide: if no EXEC ever aborted, WATCH was not exercised.
    assert!(aborted > 0, "no transfer was ever aborted");
    assert!(reads > 0);
}

#[test]
fn multi_errors_match_redis() {
    let server = start(&[]);
    let want = "-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n+OK\r\n\
                -ERR MULTI calls can not be nested\r\n+QUEUED\r\n\
                -ERR wrong number of arguments for 'get' command\r\n\
                -EXECABORT Transaction discarded because of previous errors.\r\n\
                +OK\r\n+QUEUED\r\n+OK\r\n$-1\r\n";
    let reply = raw(
        server.resp,
        b"EXEC\r\nDISCARD\r\nMULTI\r\nMULTI\r\nSET a 1\r\nGET\r\nEXEC\r\nMULTI\r\nSET a 1\r\nDISCARD\r\nGET a\r\n",
        want.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), want);
}

/// The next pushed message, within 10 seconds.
async fn next_message(
    mut stream: std::pin::Pin<&mut impl futures_core::Stream<Item = redis::Msg>>,
) -> redis::Msg {
    tokio::time::timeout(
        Duration::from_secs(10),
        std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)),
    )
    .await
    .expect("a message in time")
    .expect("stream open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_subscribe() {
    let server = start(&[]);
    let client = redis::Client::open(url(server.resp)).expect("client");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe("news").await.expect("subscribe");
    pubsub.psubscribe("chat:*").await.expect("psubscribe");
    let mut c = connect(&server).await;
    let n: i64 = c.publish("news", "hello").await.expect("publish");
    assert_eq!(n, 1);
    let n: i64 = c.publish("chat:room1", "hi all").await.expect("publish");
    assert_eq!(n, 1);
    let n: i64 = c.publish("nobody", "x").await.expect("publish");
    assert_eq!(n, 0);
    let mut stream = std::pin::pin!(pubsub.on_message());
    let mut next = async || {
        let msg = next_message(stream.as_mut()).await;
        (
            msg.get_channel_name().to_owned(),
            msg.get_payload::<String>().expect("payload"),
        )
    };
    assert_eq!(next().await, ("news".to_owned(), "hello".to_owned()));
    assert_eq!(next().await, ("chat:room1".to_owned(), "hi all".to_owned()));
}

/// Three publishers race on one channel while a SUBSCRIBE and a PSUBSCRIBE connection listen:
/// every PUBLISH must count both listeners, and each listener must get every message once, each
/// publisher's in the order it published them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_publishers_reach_every_subscriber_in_order() {
    const PUBLISHERS: usize = 3;
    const MESSAGES: usize = 300;
    let server = start(&["--mode", "ap"]);
    let client = redis::Client::open(url(server.resp)).expect("client");
    let mut by_name = client.get_async_pubsub().await.expect("pubsub");
    by_name.subscribe("race:ch").await.expect("subscribe");
    let mut by_pattern = client.get_async_pubsub().await.expect("pubsub");
    by_pattern.psubscribe("race:*").await.expect("psubscribe");
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut c = client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("connect");
                for n in 0..MESSAGES {
                    let heard: i64 = c
                        .publish("race:ch", format!("{p}:{n}"))
                        .await
                        .expect("publish");
                    assert_eq!(heard, 2, "publisher {p}, message {n}");
                }
            })
        })
        .collect();
    for mut listener in [by_name, by_pattern] {
        let mut stream = std::pin::pin!(listener.on_message());
        let mut next_of = [0usize; PUBLISHERS];
        for _ in 0..PUBLISHERS * MESSAGES {
            let msg = next_message(stream.as_mut()).await;
            assert_eq!(msg.get_channel_name(), "race:ch");
            let payload: String = msg.get_payload().expect("payload");
            let parsed = payload
                .split_once(':')
                .and_then(|(p, n)| Some((p.parse::<usize>().ok()?, n.parse::<usize>().ok()?)));
            let Some((p, n)) = parsed.filter(|&(p, _)| p < PUBLISHERS) else {
                panic!("unexpected payload {payload:?}")
            };
            assert_eq!(n, next_of[p], "publisher {p}'s messages out of order");
            next_of[p] += 1;
        }
        assert_eq!(next_of, [MESSAGES; PUBLISHERS]);
    }
    for p in publishers {
        p.await.expect("publisher");
    }
}

#[test]
fn subscribed_mode_refuses_other_commands_and_pushes_messages() {
    let server = start(&[]);
    let mut sub = raw_connect(server.resp, 5);
    sub.write_all(b"SUBSCRIBE a b\r\n").expect("write");
    let want =
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n";
    assert_eq!(read_reply(&mut sub, want.len()), want);
    sub.write_all(b"GET x\r\nPING\r\n").expect("write");
    let want = b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n";
    assert_eq!(read_reply(&mut sub, want.len()), want);
    assert_eq!(raw(server.resp, b"PUBLISH b hey\r\n", 4), b":1\r\n");
    let want = b"*3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$3\r\nhey\r\n";
    assert_eq!(read_reply(&mut sub, want.len()), want);
    sub.write_all(b"UNSUBSCRIBE\r\n").expect("write");
    let want = b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n";
    assert_eq!(read_reply(&mut sub, want.len()), want);
    // Out of subscribed mode, commands work again.
    sub.write_all(b"SET k v\r\n").expect("write");
    assert_eq!(read_reply(&mut sub, 5), b"+OK\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelining_many_commands() {
    let server = start(&["--mode", "ap"]);
    let mut c = connect(&server).await;
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.cmd("SET").arg(format!("p:{i}")).arg(i).ignore();
    }
    for i in 0..1000 {
        pipe.cmd("GET").arg(format!("p:{i}"));
    }
    let values: Vec<i64> = pipe.query_async(&mut c).await.expect("pipeline");
    assert_eq!(values, (0..1000).collect::<Vec<i64>>());
    // Raw: many commands in one write get all their replies, in order.
    let mut batch = Vec::new();
    for _ in 0..500 {
        batch.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$7\r\nraw:ctr\r\n");
    }
    let reply = raw(server.resp, &batch, usize::MAX);
    let text = String::from_utf8_lossy(&reply);
    let want: String = (1..=500).map(|i| format!(":{i}\r\n")).collect();
    assert_eq!(text, want);
}

#[test]
fn protocol_errors_close_the_connection() {
    let server = start(&["--max-request-bytes", "4096"]);
    // A bulk announcing more than the limit is refused before it is buffered.
    let mut s = raw_connect(server.resp, 5);
    s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n")
        .expect("write");
    let want = b"-ERR Protocol error: invalid bulk length\r\n";
    assert_eq!(read_reply(&mut s, want.len()), want);
    assert!(closed(&mut s));
    for (request, reply) in [
        (
            &b"*x\r\n"[..],
            &b"-ERR Protocol error: invalid multibulk length\r\n"[..],
        ),
        (
            b"*1\r\n:5\r\n",
            b"-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"*100000\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"SET \"a b\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ] {
        let mut s = raw_connect(server.resp, 5);
        s.write_all(request).expect("write");
        assert_eq!(read_reply(&mut s, reply.len()), reply);
        assert!(
            closed(&mut s),
            "closed after {:?}",
            String::from_utf8_lossy(request)
        );
    }
    // An inline request that never ends is cut off at the limit, not buffered forever.
    let mut s = raw_connect(server.resp, 5);
    let junk = vec![b'a'; 8192];
    let _ = s.write_all(&junk);
    let got = read_reply(&mut s, 40);
    assert!(
        got.starts_with(b"-ERR Protocol error: too big inline request"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    // The server is still fine for everyone else.
    assert_eq!(raw(server.resp, b"PING\r\n", 7), b"+PONG\r\n");
}

#[test]
fn inline_commands_and_server_commands() {
    let server = start(&[]);
    let reply = raw(
        server.resp,
        b"PING\r\nPING hi\r\nECHO \"a b\"\r\nSELECT 0\r\nSELECT 1\r\nSELECT x\r\nCLIENT SETNAME app\r\nCLIENT GETNAME\r\nAUTH pw\r\nfoo bar baz\r\nQUIT\r\n",
        1 << 12,
    );
    let want = "+PONG\r\n$2\r\nhi\r\n$3\r\na b\r\n+OK\r\n-ERR DB index is out of range\r\n\
                -ERR value is not an integer or out of range\r\n+OK\r\n$3\r\napp\r\n\
                -ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n\
                -ERR unknown command 'foo', with args beginning with: 'bar' 'baz' \r\n+OK\r\n";
    assert_eq!(String::from_utf8_lossy(&reply), want);
    let info = raw(server.resp, b"INFO\r\nQUIT\r\n", usize::MAX);
    let info = String::from_utf8_lossy(&info);
    for needle in [
        "# Server",
        "redis_version:",
        "# Clients",
        "connected_clients:",
        "# Keyspace",
    ] {
        assert!(info.contains(needle), "INFO lacks {needle}: {info}");
    }
    let count = raw(server.resp, b"COMMAND COUNT\r\n", 3);
    assert!(count.starts_with(b":"), "{count:?}");
}

#[test]
fn auth_token_is_required_when_configured() {
    let server = start(&["--auth-token", "s3cret"]);
    let want = "-NOAUTH Authentication required.\r\n\
                -WRONGPASS invalid username-password pair or user is disabled.\r\n\
                -NOAUTH Authentication required.\r\n+OK\r\n$-1\r\n";
    let reply = raw(
        server.resp,
        b"GET a\r\nAUTH wrong\r\nGET a\r\nAUTH s3cret\r\nGET a\r\n",
        want.len(),
    );
    assert_eq!(String::from_utf8_lossy(&reply), want);
    // HELLO can authenticate too (clients that start with HELLO 3 fall back to HELLO 2).
    let reply = raw(
        server.resp,
        b"HELLO 3 AUTH default s3cret\r\nHELLO 2\r\nHELLO 2 AUTH default s3cret SETNAME app\r\nCLIENT GETNAME\r\nQUIT\r\n",
        usize::MAX,
    );
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.starts_with("-NOPROTO unsupported protocol version\r\n-NOAUTH HELLO must be called"),
        "{text}"
    );
    assert!(
        text.contains("*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{text}"
    );
    assert!(text.ends_with("$3\r\napp\r\n+OK\r\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cp_mode_writes_survive_a_kill() {
    let mut server = start(&[]);
    {
        let mut c = connect(&server).await;
        for i in 0..50 {
            // A create, then an update (logged as `LogOp::Update`, rebuilt by replay).
            let _: () = c.set(format!("d:{i}"), -1).await.expect("set");
            let _: () = c.set(format!("d:{i}"), i).await.expect("set");
        }
        let _: i64 = c.incr("d:ctr", 3).await.expect("incr");
        let _: i64 = c.incr("d:ctr", 4).await.expect("incr");
    }
    // SIGKILL: no graceful flush. CP acknowledged every write only once durable.
    kill_and_restart(&mut server);
    assert_survived(&server, 50).await;
}

/// AP fsyncs once a second by default, but writes the log every round (about 1 ms): a killed
/// process (the page cache survives it) loses none of the writes acknowledged before its last
/// round, fsynced or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ap_mode_writes_survive_a_kill_after_their_round() {
    let mut server = start(&["--mode", "ap"]);
    {
        let mut c = connect(&server).await;
        let mut pipe = redis::pipe();
        for i in 0..2000 {
            // A create, then an update (logged as `LogOp::Update`, rebuilt by replay).
            pipe.set(format!("d:{i}"), -1).ignore();
            pipe.set(format!("d:{i}"), i).ignore();
        }
        for _ in 0..7 {
            pipe.incr("d:ctr", 1).ignore();
        }
        let _: () = pipe.query_async(&mut c).await.expect("pipeline");
    }
    // Well past the 1 ms round, well inside the 1 s fsync period.
    tokio::time::sleep(Duration::from_millis(100)).await;
    kill_and_restart(&mut server);
    assert_survived(&server, 2000).await;
}

/// One client of [`exec_is_all_or_nothing_across_sigkill`]: MULTI, DECRBY one account, INCRBY
/// another, INCR its own count of transactions, EXEC, until the server goes away. Returns how
/// many EXECs were acknowledged.
async fn transfer_until_killed(addr: SocketAddr, client: usize, seed: u64) -> i64 {
    let Ok(mut c) = redis::Client::open(url(addr))
        .expect("client")
        .get_multiplexed_async_connection()
        .await
    else {
        return 0;
    };
    let mut rng = seed;
    let mut acked = 0;
    loop {
        let from = next_random(&mut rng) % 4;
        let to = (from + 1 + next_random(&mut rng) % 3) % 4;
        let amount = 1 + (next_random(&mut rng) % 100) as i64;
        let ran: redis::RedisResult<Option<(i64, i64, i64)>> = redis::pipe()
            .atomic()
            .cmd("DECRBY")
            .arg(format!("acct:{from}"))
            .arg(amount)
            .cmd("INCRBY")
            .arg(format!("acct:{to}"))
            .arg(amount)
            .cmd("INCR")
            .arg(format!("acct:done.{client}"))
            .query_async(&mut c)
            .await;
        match ran {
            Ok(Some(_)) => acked += 1,
            Ok(None) => panic!("EXEC aborted without a WATCH"),
            Err(_) => return acked,
        }
    }
}

/// EXEC runs its commands under one hold of the lock, but each is a revision of its own: a
/// SIGKILL must still never leave part of one on disk. Four clients move amounts between
/// accounts in MULTI/EXEC (each also counting its EXECs in a key of its own) while the server
/// is killed and restarted under them, six times. After every restart the accounts hold their
/// whole sum, which a torn EXEC would change, and each client's count holds at most one EXEC
/// per kill beyond those it saw acknowledged (the one in flight). In CP mode the count also
/// holds every EXEC acknowledged; in AP mode the last millisecond's may be lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_is_all_or_nothing_across_sigkill() {
    exec_across_sigkill(&[], true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_is_all_or_nothing_across_sigkill_in_ap_mode() {
    exec_across_sigkill(&["--mode", "ap"], false).await;
}

async fn exec_across_sigkill(flags: &[&str], acknowledged_survive: bool) {
    const CLIENTS: usize = 4;
    const START: i64 = 1_000_000;
    let mut server = start(flags);
    let accounts: Vec<String> = (0..4).map(|i| format!("acct:{i}")).collect();
    {
        let mut c = connect(&server).await;
        for account in &accounts {
            let _: () = c.set(account, START).await.expect("seed");
        }
    }
    let mut acked = [0i64; CLIENTS];
    for cycle in 0..6u64 {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let seed = 0x2545_F491_4F6C_DD1D ^ ((cycle << 8) | (client as u64 + 1));
                tokio::spawn(transfer_until_killed(server.resp, client, seed))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150 + 97 * cycle)).await;
        kill_and_restart_with(&mut server, flags);
        for (client, task) in clients.into_iter().enumerate() {
            acked[client] += task.await.expect("client task");
        }
        let mut c = connect(&server).await;
        let balances: Vec<i64> = c.mget(&accounts).await.expect("balances");
        assert_eq!(
            balances.iter().sum::<i64>(),
            4 * START,
            "after kill {cycle}: {balances:?}"
        );
        for (client, &acked) in acked.iter().enumerate() {
            let done: Option<i64> = c.get(format!("acct:done.{client}")).await.expect("count");
            let done = done.unwrap_or(0);
            let kills = cycle as i64 + 1;
            let least = if acknowledged_survive { acked } else { 0 };
            assert!(
                (least..=acked + kills).contains(&done),
                "client {client} after kill {cycle}: {done} EXECs on disk, {acked} acknowledged"
            );
        }
    }
    assert!(
        acked.iter().all(|&n| n > 0),
        "some client never committed: {acked:?}"
    );
}

/// SIGKILLs the server and starts it again on its data directory (without `start`'s extra
/// flags: a CP server reads what any mode wrote).
fn kill_and_restart(server: &mut Server) {
    kill_and_restart_with(server, &[]);
}

/// SIGKILLs the server and starts it again on its data directory with `flags`.
fn kill_and_restart_with(server: &mut Server, flags: &[&str]) {
    server.child.kill().expect("kill");
    server.child.wait().expect("wait");
    let (child, resp) = spawn(server._dir.path(), flags);
    server.child = child;
    server.resp = resp;
}

/// Keys `d:0` .. `d:{count - 1}` hold their numbers and `d:ctr` holds 7.
async fn assert_survived(server: &Server, count: i64) {
    let mut c = connect(server).await;
    for i in 0..count {
        assert_eq!(c.get::<_, i64>(format!("d:{i}")).await.expect("get"), i);
    }
    assert_eq!(c.get::<_, i64>("d:ctr").await.expect("get"), 7);
}

#[test]
fn graceful_shutdown_on_sigterm() {
    let mut server = start(&[]);
    assert_eq!(raw(server.resp, b"SET k v\r\n", 5), b"+OK\r\n");
    let mut idle = raw_connect(server.resp, 10);
    let pid = server.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    // The open connection is closed by the server, and the process exits cleanly.
    assert!(closed(&mut idle));
    let exit = server.child.wait().expect("wait");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn idle_connections_are_closed_but_subscribers_stay() {
    let server = start(&["--idle-timeout", "1"]);
    let mut idle = raw_connect(server.resp, 10);
    let mut sub = raw_connect(server.resp, 10);
    sub.write_all(b"SUBSCRIBE c\r\n").expect("write");
    let confirm = b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n";
    assert_eq!(read_reply(&mut sub, confirm.len()), confirm);
    let started = std::time::Instant::now();
    assert!(closed(&mut idle), "the idle connection is closed");
    assert!(started.elapsed() >= Duration::from_millis(500));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(raw(server.resp, b"PUBLISH c still-here\r\n", 4), b":1\r\n");
    let want = b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$10\r\nstill-here\r\n";
    assert_eq!(read_reply(&mut sub, want.len()), want);
}

#[test]
fn connections_over_the_limit_get_redis_error() {
    let server = start(&["--max-connections", "2"]);
    let mut a = raw_connect(server.resp, 5);
    a.write_all(b"PING\r\n").expect("write");
    assert_eq!(read_reply(&mut a, 7), b"+PONG\r\n");
    let mut b = raw_connect(server.resp, 5);
    b.write_all(b"PING\r\n").expect("write");
    assert_eq!(read_reply(&mut b, 7), b"+PONG\r\n");
    let mut c = raw_connect(server.resp, 5);
    let want = b"-ERR max number of clients reached\r\n";
    assert_eq!(read_reply(&mut c, want.len()), want);
    assert!(closed(&mut c));
}

#[test]
fn a_subscriber_that_stops_reading_is_disconnected() {
    let server = start(&["--mode", "ap"]);
    let mut slow = raw_connect(server.resp, 20);
    slow.write_all(b"SUBSCRIBE firehose\r\n").expect("write");
    let confirm = b"*3\r\n$9\r\nsubscribe\r\n$8\r\nfirehose\r\n:1\r\n";
    assert_eq!(read_reply(&mut slow, confirm.len()), confirm);
    // 64 messages of 1 MiB, twice the subscriber's 32 MiB buffer, while it reads nothing.
    let mut publisher = raw_connect(server.resp, 20);
    let payload = vec![b'x'; 1 << 20];
    let mut request = format!(
        "*3\r\n$7\r\nPUBLISH\r\n$8\r\nfirehose\r\n${}\r\n",
        payload.len()
    )
    .into_bytes();
    request.extend_from_slice(&payload);
    request.extend_from_slice(b"\r\n");
    let mut receivers = Vec::new();
    for _ in 0..64 {
        publisher.write_all(&request).expect("publish");
        receivers.push(read_reply(&mut publisher, 4));
    }
    assert_eq!(receivers.first().map(Vec::as_slice), Some(&b":1\r\n"[..]));
    assert_eq!(
        receivers.last().map(Vec::as_slice),
        Some(&b":0\r\n"[..]),
        "the subscriber was dropped once its buffer was full"
    );
    // Its connection ends (after what was already written to it), and the server goes on.
    let mut drained = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match slow.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => drained += n,
            Err(e) => panic!("the slow subscriber was not disconnected: {e}"),
        }
    }
    assert!(drained < 40 << 20, "bounded: {drained} bytes");
    assert_eq!(raw(server.resp, b"PING\r\n", 7), b"+PONG\r\n");
}

#[test]
fn a_client_that_stops_reading_its_replies_is_cut_off() {
    let server = start(&["--idle-timeout", "1", "--mode", "ap"]);
    let value = "v".repeat(100_000);
    let set = format!(
        "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n{value}\r\n",
        value.len()
    );
    assert_eq!(raw(server.resp, set.as_bytes(), 5), b"+OK\r\n");
    // 2000 GETs of 100 kB: 200 MB of replies that this client never reads.
    let mut greedy = raw_connect(server.resp, 30);
    let gets = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(2000);
    greedy.write_all(&gets).expect("write");
    std::thread::sleep(Duration::from_secs(3));
    // The server gave up on it: what it had written before is there, then the end.
    let mut received = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match greedy.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received += n,
            // Closed with requests still unread on its side: the kernel resets the connection.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
    assert!(
        received < 100 << 20,
        "{received} bytes: bounded by socket buffers"
    );
    assert_eq!(raw(server.resp, b"PING\r\n", 7), b"+PONG\r\n");
}
