//! The `statemesh` binary's operator commands, run as a user runs them: output, exit codes,
//! and import/export round trips on a real data directory.
#![allow(clippy::unwrap_used)]

#[path = "log_tail/mod.rs"]
mod log_tail;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn statemesh(dir: &Path, args: &[&str]) -> Output {
    statemesh_with_input(dir, args, None)
}

fn statemesh_with_input(dir: &Path, args: &[&str], input: Option<&str>) -> Output {
    let dir = dir.to_str().unwrap();
    run([args, &["--data-dir", dir][..]].concat(), input)
}

/// Runs the binary with `args`, feeding it `input` on stdin (none: stdin is closed).
fn run(args: Vec<&str>, input: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statemesh"))
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = input {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap()
}

#[test]
fn set_get_keys_ttl_del_and_their_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");

    // Reading a directory that does not exist creates nothing and says so.
    let missing = statemesh(&dir, &["get", "a"]);
    assert_eq!(code(&missing), 66);
    assert!(!dir.exists());

    assert_eq!(code(&statemesh(&dir, &["set", "sessions:u.1", "hello"])), 0);
    assert_eq!(
        code(&statemesh(
            &dir,
            &[
                "set",
                "--json",
                "sessions:u.2",
                r#"{"n":[1,2]}"#,
                "--ttl-ms",
                "600000"
            ]
        )),
        0
    );
    assert_eq!(code(&statemesh(&dir, &["set", "--json", "c:n", "41"])), 0);

    let got = statemesh(&dir, &["get", "sessions:u.1"]);
    assert_eq!((code(&got), stdout(&got).as_str()), (0, "hello\n"));
    let got = statemesh(&dir, &["get", "sessions:u.2"]);
    assert_eq!(stdout(&got), "{\"n\":[1,2]}\n");
    let absent = statemesh(&dir, &["get", "sessions:u.3"]);
    assert_eq!((code(&absent), stdout(&absent).as_str()), (1, ""));

    let keys = statemesh(&dir, &["keys", "sessions:**"]);
    assert_eq!(stdout(&keys), "sessions:u.1\nsessions:u.2\n");
    let scan = statemesh(&dir, &["scan", "sessions:u."]);
    assert_eq!(
        stdout(&scan),
        "sessions:u.1\thello\nsessions:u.2\t{\"n\":[1,2]}\n"
    );

    let ttl = statemesh(&dir, &["ttl", "sessions:u.2"]);
    let ms: u64 = stdout(&ttl).trim().parse().unwrap();
    assert!(ms > 500_000 && ms <= 600_000, "{ms}");
    assert_eq!(stdout(&statemesh(&dir, &["ttl", "sessions:u.1"])), "none\n");
    assert_eq!(code(&statemesh(&dir, &["ttl", "nope:x"])), 1);

    // Two keys named, one exists: one deleted.
    let del = statemesh(&dir, &["del", "sessions:u.1", "sessions:u.9"]);
    assert_eq!((code(&del), stdout(&del).as_str()), (0, "1\n"));
    assert_eq!(code(&statemesh(&dir, &["get", "sessions:u.1"])), 1);

    let bad = statemesh(&dir, &["get", "bad*key"]);
    assert_eq!(code(&bad), 65);
    let err = String::from_utf8(bad.stderr).unwrap();
    assert!(err.contains("invalid key"), "{err}");
    // The cause is not repeated after its own message.
    assert_eq!(err.matches("not allowed").count(), 1, "{err}");

    let stats = stdout(&statemesh(&dir, &["stats"]));
    assert!(stats.contains("keys 2\n"), "{stats}");
    let snap = statemesh(&dir, &["snapshot"]);
    assert_eq!(code(&snap), 0, "{}", String::from_utf8_lossy(&snap.stderr));
    assert_eq!(stdout(&statemesh(&dir, &["get", "c:n"])), "41\n");
}

#[test]
fn export_then_import_keeps_every_kind_ttl_and_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let lines = [
        r#"{"key":"t:s","value":"text"}"#,
        r#"{"key":"t:i","value":-7}"#,
        r#"{"key":"t:f","value":2.5}"#,
        r#"{"key":"t:b","value":true}"#,
        r#"{"key":"t:j","value":{"deep":[null,{"x":1}]}}"#,
        r#"{"key":"t:tagged","value":{"$json":{"$bytes":"not bytes"}}}"#,
        r#"{"key":"t:raw","value":{"$bytes":"AAEC/w=="}}"#,
        r#"{"expires_at":99999999999999,"key":"t:ttl","value":"later"}"#,
        r#"{"key":"t:meta","metadata":{"owner":"ann"},"value":"m"}"#,
        r#"{"expires_at":1,"key":"t:gone","value":"expired long ago"}"#,
    ];
    let input = lines.join("\n") + "\n";
    let imported = statemesh_with_input(&a, &["import"], Some(&input));
    assert_eq!(
        (code(&imported), stdout(&imported).as_str()),
        (0, "imported 9 keys\n"),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );

    let exported = stdout(&statemesh(&a, &["export"]));
    let mut expected: Vec<&str> = lines[..9].to_vec();
    expected.sort_by_key(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["key"].as_str().unwrap().to_owned()
    });
    let got: Vec<&str> = exported.lines().collect();
    assert_eq!(got.len(), 9, "{exported}");
    for (got, want) in got.iter().zip(&expected) {
        let got: serde_json::Value = serde_json::from_str(got).unwrap();
        let want: serde_json::Value = serde_json::from_str(want).unwrap();
        assert_eq!(got, want);
    }

    // Into a second directory through a file: the same export again.
    let file = tmp.path().join("dump.jsonl");
    assert_eq!(
        code(&statemesh(&a, &["export", "--out", file.to_str().unwrap()])),
        0
    );
    assert_eq!(code(&statemesh(&b, &["import", file.to_str().unwrap()])), 0);
    assert_eq!(stdout(&statemesh(&b, &["export"])), exported);
    assert_eq!(
        stdout(&statemesh(&b, &["export", "t:{s,i}"]))
            .lines()
            .count(),
        2
    );
}

#[test]
fn a_bad_import_line_stops_the_import_after_the_lines_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    let input = "{\"key\":\"a:1\",\"value\":1}\n\n{\"key\":\"a:2\",\"value\":2}\nnot json\n{\"key\":\"a:3\",\"value\":3}\n";
    let out = statemesh_with_input(&dir, &["import"], Some(input));
    assert_eq!(code(&out), 65);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("line 4") && err.contains("imported before it: 2"),
        "{err}"
    );
    assert_eq!(stdout(&statemesh(&dir, &["keys", "a:*"])), "a:1\na:2\n");
    // Without a pattern, every namespace; `**` alone is the default namespace.
    statemesh(&dir, &["set", "loose", "1"]);
    assert_eq!(
        stdout(&statemesh(&dir, &["keys"])),
        "a:1\na:2\ndefault:loose\n"
    );
    assert_eq!(stdout(&statemesh(&dir, &["keys", "**"])), "default:loose\n");

    for (line, why) in [
        (r#"{"key":"a:x"}"#, "\"value\" is missing"),
        (r#"{"key":"a:x","value":1,"colour":"red"}"#, "unknown field"),
        (r#"{"key":"a:x","value":{"$bytes":"%%%"}}"#, "base64"),
        (r#"{"key":"a:x","value":{"$nope":1}}"#, "unknown value tag"),
        (
            r#"{"key":"a:x","value":1,"expires_at":"soon"}"#,
            "expires_at",
        ),
        (r#"["key","value"]"#, "expected an object"),
    ] {
        let out = statemesh_with_input(&dir, &["import"], Some(line));
        assert_eq!(code(&out), 65, "{line}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(why), "{line}: {err}");
    }
    // An invalid key is refused by the store, with the same exit code.
    let out = statemesh_with_input(&dir, &["import"], Some(r#"{"key":"a:*","value":1}"#));
    assert_eq!(code(&out), 65);
}

#[test]
fn a_data_directory_held_by_a_server_is_refused_with_exit_74() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("held");
    // `serve` returns once the server has printed its listening line, i.e. holds the lock.
    let server = serve(&dir, &[]);
    let out = statemesh(&dir, &["get", "a"]);
    drop(server);
    assert_eq!(code(&out), 74, "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bench_prints_throughput_and_percentiles() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bench");
    let out = statemesh(
        &dir,
        &[
            "bench",
            "--ops",
            "2000",
            "--clients",
            "4",
            "--keyspace",
            "100",
        ],
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    assert!(text.starts_with("2000 ops, 4 clients"), "{text}");
    let counts: u64 = text
        .lines()
        .filter(|l| l.starts_with("put ") || l.starts_with("get "))
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counts, 2000, "{text}");
    assert_eq!(code(&statemesh(&dir, &["bench", "--clients", "0"])), 65);
}

/// A server on a fresh directory; killed when dropped.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_statemesh"))
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening json=")
        .unwrap()
        .to_owned();
    Server { child, addr }
}

fn remote(addr: &str, args: &[&str], input: Option<&str>) -> Output {
    run([args, &["--server", addr][..]].concat(), input)
}

#[test]
fn every_operator_command_works_against_a_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("srv"), &[]);
    let addr = server.addr.as_str();

    assert_eq!(code(&remote(addr, &["set", "s:a", "one"], None)), 0);
    assert_eq!(
        code(&remote(
            addr,
            &["set", "--json", "s:b", "[1,2]", "--ttl-ms", "600000"],
            None
        )),
        0
    );
    assert_eq!(stdout(&remote(addr, &["get", "s:a"], None)), "one\n");
    assert_eq!(code(&remote(addr, &["get", "s:zz"], None)), 1);
    assert_eq!(stdout(&remote(addr, &["keys", "s:*"], None)), "s:a\ns:b\n");
    assert_eq!(
        stdout(&remote(addr, &["scan", "s:"], None)),
        "s:a\tone\ns:b\t[1,2]\n"
    );
    let ms: u64 = stdout(&remote(addr, &["ttl", "s:b"], None))
        .trim()
        .parse()
        .unwrap();
    assert!(ms > 500_000, "{ms}");

    // Import over the network, then export it back with TTL and metadata intact.
    let lines = "{\"key\":\"t:x\",\"value\":{\"$bytes\":\"AQI=\"}}\n\
                 {\"expires_at\":99999999999999,\"key\":\"t:y\",\"metadata\":{\"m\":1},\"value\":\"y\"}\n";
    let imported = remote(addr, &["import"], Some(lines));
    assert_eq!(
        stdout(&imported),
        "imported 2 keys\n",
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let exported = stdout(&remote(addr, &["export", "t:*"], None));
    assert_eq!(
        exported,
        "{\"key\":\"t:x\",\"value\":{\"$bytes\":\"AQI=\"}}\n\
         {\"expires_at\":99999999999999,\"key\":\"t:y\",\"metadata\":{\"m\":1},\"value\":\"y\"}\n"
    );
    let everything = stdout(&remote(addr, &["export"], None));
    assert_eq!(everything.lines().count(), 4, "{everything}");

    assert_eq!(stdout(&remote(addr, &["del", "s:a", "s:b"], None)), "2\n");
    assert!(stdout(&remote(addr, &["stats"], None)).contains("keys 2\n"));
    assert_eq!(code(&remote(addr, &["snapshot"], None)), 0);

    let bench = remote(
        addr,
        &[
            "bench",
            "--ops",
            "500",
            "--clients",
            "8",
            "--keyspace",
            "50",
        ],
        None,
    );
    assert_eq!(
        code(&bench),
        0,
        "{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    assert!(stdout(&bench).starts_with("500 ops, 8 clients"));
}

#[test]
fn remote_failures_have_their_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let server = serve(&tmp.path().join("srv"), &["--auth-token", "sesame"]);
    let denied = remote(&server.addr, &["get", "a:b"], None);
    assert_eq!(
        code(&denied),
        77,
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    let mut with_token = Command::new(env!("CARGO_BIN_EXE_statemesh"))
        .args([
            "set",
            "a:b",
            "v",
            "--server",
            &server.addr,
            "--auth-token",
            "sesame",
        ])
        .output()
        .unwrap();
    assert_eq!(
        code(&with_token),
        0,
        "{}",
        String::from_utf8_lossy(&with_token.stderr)
    );
    with_token = Command::new(env!("CARGO_BIN_EXE_statemesh"))
        .args(["get", "a:b", "--server", &server.addr])
        .env("STATEMESH_AUTH_TOKEN", "sesame")
        .output()
        .unwrap();
    assert_eq!(stdout(&with_token), "v\n");
    drop(server);

    // Nobody listens there any more.
    let gone = remote(
        &tmp.path().join("x").display().to_string(),
        &["get", "a:b"],
        None,
    );
    assert_eq!(code(&gone), 69, "{}", String::from_utf8_lossy(&gone.stderr));
}

#[test]
fn serve_keeps_as_many_changes_as_its_history_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let limited = serve(&tmp.path().join("limited"), &["--history-limit", "3"]);
    let none = serve(&tmp.path().join("none"), &["--history-limit", "0"]);
    let default = serve(&tmp.path().join("default"), &[]);
    for server in [&limited, &none, &default] {
        for i in 0..10 {
            let key = format!("h:k{i}");
            assert_eq!(code(&remote(&server.addr, &["set", &key, "v"], None)), 0);
        }
    }
    // The floor is the newest revision dropped: 10 writes, 3 kept, so revisions 1 to 7 are gone.
    for (server, floor) in [(&limited, 7), (&none, 10), (&default, 0)] {
        let stats = stdout(&remote(&server.addr, &["stats"], None));
        assert!(stats.contains("revision 10\n"), "{stats}");
        assert!(
            stats.contains(&format!("history_floor {floor}\n")),
            "floor {floor}: {stats}"
        );
    }
}

#[test]
fn serve_refuses_bad_flags_before_touching_the_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never-created");
    for args in [
        &["serve", "--fsync", "sometimes"][..],
        &["serve", "--fsync", "0"][..],
        &["serve", "--mode", "eventual"][..],
        &["serve", "--history-limit", "-1"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_statemesh"))
            .args(args)
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(!dir.exists());
    }
    // Off loopback without a token: refused, with the reason, and nothing listens.
    let out = Command::new(env!("CARGO_BIN_EXE_statemesh"))
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(code(&out), 65);
    assert!(String::from_utf8_lossy(&out.stderr).contains("without an auth token"));
    assert!(!dir.exists());
}

#[test]
fn stats_reports_revisions_and_what_the_open_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    for (k, v) in [("a:k1", "one"), ("a:k2", "two")] {
        assert_eq!(code(&statemesh(&dir, &["set", k, v])), 0);
    }
    let clean = stdout(&statemesh(&dir, &["stats"]));
    for line in [
        "keys 2\n",
        "revision 2\n",
        "history_floor 0\n",
        "open_transactions 0\n",
    ] {
        assert!(clean.contains(line), "{line:?} in {clean}");
    }
    assert!(clean.contains("index_build_ms "), "{clean}");
    assert!(!clean.contains("repair"), "{clean}");

    // A crash mid-append leaves a partial frame at the end of the last segment: the next open
    // truncates it, and `stats` says so, once.
    log_tail::tear_last_segment(&dir);
    let repaired = stdout(&statemesh(&dir, &["stats"]));
    assert!(repaired.contains("keys 2\n"), "{repaired}");
    assert_eq!(
        repaired.matches("repair truncated a torn tail").count(),
        1,
        "{repaired}"
    );
    let after = stdout(&statemesh(&dir, &["stats"]));
    assert!(!after.contains("repair"), "{after}");
}
