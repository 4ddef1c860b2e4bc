//! The Redis port against the real Redis tools: `redis-cli` (plain commands, `--pipe` mass
//! insert, `--scan`), and a reply-for-reply comparison with a real `redis-server`. Each test is
//! skipped, with a notice, when the tool is not installed (tests/run installs redis-tools and
//! redis-server).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Proc {
    child: Child,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn installed(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // tests/run installs the tools and sets this, so there a missing tool fails instead of
    // quietly skipping the comparison.
    if !found && std::env::var_os("STATEMESH_REQUIRE_REDIS").is_some() {
        panic!("{tool} is not installed and STATEMESH_REQUIRE_REDIS is set");
    }
    if !found {
        eprintln!("NOTICE: {tool} is not installed; skipping (tests/run installs it)");
    }
    found
}

fn statemesh() -> (Proc, SocketAddr) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_statemesh"))
        .args([
            "serve",
            "--port",
            "0",
            "--resp-port",
            "0",
            "--mode",
            "ap",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start statemesh");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("resp="))
        .expect("resp=")
        .parse()
        .expect("addr");
    (
        Proc {
            child,
            _dir: Some(dir),
        },
        addr,
    )
}

fn redis_server() -> (Proc, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--daemonize", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Proc { child, _dir: None }, addr)
}

fn cli(addr: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_commands_pipe_and_scan() {
    if !installed("redis-cli") {
        return;
    }
    let (_server, addr) = statemesh();
    assert_eq!(cli(addr, &["PING"]), "PONG\n");
    assert_eq!(cli(addr, &["SET", "user:1", "ann"]), "OK\n");
    assert_eq!(cli(addr, &["GET", "user:1"]), "ann\n");
    assert_eq!(cli(addr, &["INCR", "hits"]), "1\n");
    assert_eq!(cli(addr, &["GET", "nope"]), "\n");
    assert!(cli(addr, &["INFO", "server"]).contains("redis_version"));
    // --pipe: a mass insert in RESP, answered with Redis's own summary line.
    let mut input = Vec::new();
    for i in 0..2000 {
        let key = format!("bulk:{i}");
        let value = format!("value-{i}");
        input.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
                key.len(),
                value.len()
            )
            .as_bytes(),
        );
    }
    let mut child = Command::new("redis-cli")
        .args(["-p", &addr.port().to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("redis-cli --pipe");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&input)
        .expect("feed");
    let out = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors: 0, replies: 2000"), "{text}");
    assert_eq!(cli(addr, &["GET", "bulk:1999"]), "value-1999\n");
    // --scan walks SCAN cursors to the end.
    let scanned = cli(addr, &["--scan", "--pattern", "bulk:1*"]);
    assert_eq!(scanned.lines().count(), 1111, "bulk:1, 1x, 1xx, 1xxx");
    let all = cli(addr, &["--scan"]);
    assert_eq!(all.lines().count(), 2002);
    assert_eq!(cli(addr, &["DBSIZE"]), "2002\n");
}

/// Reads one RESP reply (any type, nested arrays included) and returns its bytes.
fn read_one(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).expect("reply line");
    let mut out = line.clone();
    let n: i64 = std::str::from_utf8(&line[1..line.len().saturating_sub(2)])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    match line.first() {
        Some(b'$') if n >= 0 => {
            let mut data = vec![0u8; usize::try_from(n).expect("len") + 2];
            reader.read_exact(&mut data).expect("bulk");
            out.extend_from_slice(&data);
        }
        Some(b'*') if n > 0 => {
            for _ in 0..n {
                out.extend(read_one(reader));
            }
        }
        _ => {}
    }
    out
}

fn session(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let reader = BufReader::new(stream.try_clone().expect("clone"));
    (stream, reader)
}

fn encode(cmd: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", cmd.len()).into_bytes();
    for arg in cmd {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

/// The same commands to redis-server and to statemesh: the same reply bytes, command by command.
#[test]
fn replies_match_a_real_redis_server() {
    if !installed("redis-server") {
        return;
    }
    let (_redis, redis_addr) = redis_server();
    let (_ours, our_addr) = statemesh();
    let script: &[&[&str]] = &[
        &["PING"],
        &["PING", "hello"],
        &["PING", "a", "b"],
        &["ECHO", "x y"],
        &["SET", "a", "1"],
        &["GET", "a"],
        &["INCR", "a"],
        &["INCRBY", "a", "10"],
        &["DECR", "a"],
        &["DECRBY", "a", "3"],
        &["INCRBY", "a", "x"],
        &["INCRBY", "a", "01"],
        &["GET", "a"],
        &["APPEND", "a", "5"],
        &["GET", "a"],
        &["STRLEN", "a"],
        &["STRLEN", "nope"],
        &["SET", "p", "+5"],
        &["INCR", "p"],
        &["SET", "z", "05"],
        &["INCR", "z"],
        &["SET", "z", "-0"],
        &["DECR", "z"],
        &["SET", "z", "-7"],
        &["INCRBY", "z", "2"],
        &["SET", "s", "hello"],
        &["INCR", "s"],
        &["APPEND", "s", " world"],
        &["GET", "s"],
        &["GETDEL", "s"],
        &["GETDEL", "s"],
        &["EXISTS", "a", "s", "a"],
        &["DEL", "a", "s", "nope"],
        &["GET", "a"],
        &["SET", "k", "v", "NX"],
        &["SET", "k", "w", "NX"],
        &["SET", "k", "w", "NX", "GET"],
        &["SET", "k", "w", "XX", "GET"],
        &["SET", "k2", "v", "XX"],
        &["SET", "k", "v", "EX", "0"],
        &["SET", "k", "v", "EX", "-5"],
        &["SET", "k", "v", "EX", "abc"],
        &["SET", "k", "v", "NX", "XX"],
        &["SET", "k", "v", "KEEPTTL", "EX", "10"],
        &["SET", "k", "v", "PX", "100", "EX", "10"],
        &["SET", "k", "v", "BOGUS"],
        &["SET", "k", "v", "EX"],
        &["SET", "k", "v", "EX", "100"],
        &["TTL", "k"],
        &["SET", "k", "w", "KEEPTTL"],
        &["TTL", "k"],
        &["TTL", "nope"],
        &["PTTL", "nope"],
        &["PERSIST", "k"],
        &["PERSIST", "k"],
        &["TTL", "k"],
        &["PERSIST", "nope"],
        &["EXPIRE", "k", "abc"],
        &["EXPIRE", "nope", "10"],
        &["EXPIRE", "k", "100", "NX"],
        &["EXPIRE", "k", "100", "NX"],
        &["EXPIRE", "k", "50", "GT"],
        &["EXPIRE", "k", "500", "GT"],
        &["EXPIRE", "k", "10", "NX", "XX"],
        &["EXPIRE", "k", "10", "GT", "LT"],
        &["EXPIRE", "k", "10", "FOO"],
        &["EXPIRE", "k", "0"],
        &["EXISTS", "k"],
        &["PEXPIRE", "nope", "100"],
        &["MSET", "a", "1", "b", "2"],
        &["MSET", "a", "1", "b"],
        &["MGET", "a", "b", "c"],
        &["SET", "big", "9223372036854775807"],
        &["INCR", "big"],
        &["SET", "small", "-9223372036854775808"],
        &["DECR", "small"],
        &["DECRBY", "a", "-9223372036854775808"],
        &["GET"],
        &["SET", "x"],
        &["FOO", "bar", "baz"],
        &["SELECT", "0"],
        &["SELECT", "x"],
        &["MULTI"],
        &["SET", "t", "1"],
        &["INCR", "t"],
        &["GET", "t"],
        &["EXEC"],
        &["MULTI"],
        &["GET"],
        &["SET", "t", "2"],
        &["EXEC"],
        &["GET", "t"],
        &["EXEC"],
        &["DISCARD"],
        &["MULTI"],
        &["MULTI"],
        &["DISCARD"],
        &["WATCH"],
        &["UNWATCH"],
        &["WATCH", "t"],
        &["MULTI"],
        &["WATCH", "t"],
        &["INCR", "t"],
        &["EXEC"],
        &["UNSUBSCRIBE"],
        &["PUNSUBSCRIBE"],
        &["PUBLISH", "ch", "x"],
        &["CLIENT", "SETNAME", "a b"],
        &["CLIENT", "SETNAME", "name"],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "SETNAME"],
        &["AUTH", "x"],
        &["AUTH", "someone", "x"],
        &["ECHO"],
        &["HELLO", "4"],
        &["HELLO", "x"],
        &["HELLO", "2", "FOO"],
        &["HELLO", "2", "AUTH", "a", "b"],
        &["KEYS", "b"],
        &["SCAN", "x"],
        &["SCAN", "0", "COUNT", "0"],
        &["SCAN", "0", "COUNT"],
        &["MULTI"],
        &["SET", "s", "abc"],
        &["INCR", "s"],
        &["APPEND", "s", "d"],
        &["EXEC"],
        &["CONFIG", "GET", "appendonly"],
        &["SET", "e", ""],
        &["GET", "e"],
        &["STRLEN", "e"],
        &["FLUSHDB"],
        &["DBSIZE"],
        &["GET", "a"],
        &["SUBSCRIBE", "c1", "c2"],
        &["GET", "a"],
        &["PING"],
        &["PSUBSCRIBE", "c*"],
        &["UNSUBSCRIBE", "c1"],
        &["PUNSUBSCRIBE"],
        &["UNSUBSCRIBE"],
        &["PING"],
        &["QUIT"],
    ];
    let (mut rs, mut rr) = session(redis_addr);
    let (mut os, mut or) = session(our_addr);
    let mut mismatches = Vec::new();
    for cmd in script {
        let request = encode(cmd);
        rs.write_all(&request).expect("write redis");
        os.write_all(&request).expect("write statemesh");
        let want = read_one(&mut rr);
        let got = read_one(&mut or);
        if want != got {
            mismatches.push(format!(
                "{cmd:?}\n   redis: {:?}\n  ours:  {:?}",
                String::from_utf8_lossy(&want),
                String::from_utf8_lossy(&got)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} replies differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
