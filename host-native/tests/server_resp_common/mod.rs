//! Shared by the Redis-port tests that need the real Redis tools: start `statemesh serve` and
//! `redis-server` on free ports, and talk raw RESP to either.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Proc {
    child: Child,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn installed(tool: &str) -> bool {
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

pub(crate) fn statemesh() -> (Proc, SocketAddr) {
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

pub(crate) fn redis_server() -> (Proc, SocketAddr) {
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

/// Reads one RESP reply (any type, nested arrays included) and returns its bytes.
pub(crate) fn read_one(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
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

pub(crate) fn session(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let reader = BufReader::new(stream.try_clone().expect("clone"));
    (stream, reader)
}

pub(crate) fn encode<A: AsRef<[u8]>>(cmd: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", cmd.len()).into_bytes();
    for arg in cmd {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}
