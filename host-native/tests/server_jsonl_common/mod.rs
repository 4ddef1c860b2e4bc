//! Shared by the server tests: start the real `statemesh` binary on a free port, and talk raw
//! JSON lines to it.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A running `statemesh serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
}

impl Server {
    /// `statemesh serve --port 0 --data-dir DIR EXTRA...`, once it prints its address.
    pub(crate) fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--port", "0"];
        if !extra.contains(&"--in-memory") {
            args.push("--data-dir");
            args.push(dir.to_str().expect("utf-8 temp dir"));
        }
        args.extend_from_slice(extra);
        Server::start_args(&args).expect("server starts")
    }

    /// Starts the binary with exactly `args`; `Err` with its exit status when it exits instead
    /// of printing the listening line.
    pub(crate) fn start_args(args: &[&str]) -> Result<Server, ExitStatus> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_statemesh"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn statemesh");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read stdout");
        let Some(rest) = line.trim().strip_prefix("listening json=") else {
            return Err(child.wait().expect("wait"));
        };
        let addr = rest.split(' ').next().expect("address").to_owned();
        Ok(Server { child, addr })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the process to exit.
    pub(crate) fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        self.child.wait().expect("wait")
    }

    /// SIGKILL, then waits (so the data directory's lock is released).
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw JSON-lines connection.
pub(crate) struct Raw {
    reader: BufReader<OwnedReadHalf>,
    pub(crate) writer: OwnedWriteHalf,
}

impl Raw {
    pub(crate) async fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (r, w) = stream.into_split();
        Raw {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    pub(crate) async fn send_line(&mut self, line: &str) {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.writer.write_all(&bytes).await.expect("write");
    }

    /// The next line as JSON; `None` at end of stream. Fails the test after 10 s.
    pub(crate) async fn recv(&mut self) -> Option<Json> {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
            .await
            .expect("a line within 10 s")
            .ok()?;
        if n == 0 {
            return None;
        }
        Some(serde_json::from_str(&line).expect("the server sends JSON"))
    }

    /// Sends a request and returns the next line.
    pub(crate) async fn call(&mut self, request: Json) -> Json {
        self.send_line(&request.to_string()).await;
        self.recv().await.expect("a response")
    }

    /// Reads until the server closes, returning every line; fails after `limit`.
    pub(crate) async fn drain(&mut self, limit: Duration) -> Vec<Json> {
        let mut lines = Vec::new();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout_at(deadline, self.reader.read_line(&mut line))
                .await
                .expect("the server closes the connection in time");
            match read {
                Ok(0) | Err(_) => return lines,
                Ok(_) => lines.push(serde_json::from_str(&line).expect("JSON")),
            }
        }
    }
}

/// The error code of a response, if it is an error.
pub(crate) fn code(response: &Json) -> Option<&str> {
    response["error"]["code"].as_str()
}
