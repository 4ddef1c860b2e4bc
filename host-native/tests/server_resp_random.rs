//! Random command sequences sent to a real `redis-server` and to statemesh side by side: the
//! same reply for every command, and the same value for every key after it. The generator is
//! seeded (a failure names its seed and reproduces) and draws from the commands this port
//! supports, with the arguments that trip implementations up: integers at the edges of i64,
//! repeated and conflicting SET options, expiry times zero, negative, past and far away,
//! MULTI/EXEC with WATCH, wrong arities, mixed-case names, subcommands. What docs/resp.md lists
//! as differences (keys the store refuses, other databases, unsupported commands) is not
//! generated. Skipped with a notice when redis-server is not installed.

mod server_resp_common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use server_resp_common::{Proc, encode, installed, read_one, redis_server, session, statemesh};

const SEEDS: [u64; 3] = [1, 2, 3];
const COMMANDS_PER_SEED: usize = 4000;
const KEYS: [&str; 6] = ["a", "b", "c", "n", "x:1", "x:2"];
/// Valid statemesh keys of other shapes, written to now and then.
const ODD_KEYS: [&str; 5] = ["a b", "x::y", "/p", "é", "a-b_c.d"];
const VALUES: [&str; 13] = [
    "1",
    "0",
    "-5",
    "10",
    "abc",
    "",
    "9223372036854775807",
    "-9223372036854775808",
    "1.5",
    " 1",
    "007",
    "+3",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];
const INTEGERS: [&str; 11] = [
    "1",
    "0",
    "-1",
    "100",
    "abc",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "1.5",
    "",
    "-0",
];
/// Expiry arguments: invalid, zero, negative, in the past (as EXAT), far away. None is short
/// enough to run out during the test, which would make the comparison depend on timing.
const EXPIRIES: [&str; 7] = [
    "100000",
    "0",
    "-1",
    "abc",
    "1000000",
    "9223372036854775807",
    "4000000000",
];

/// One RESP2 reply, parsed.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
    /// A reply whose content rightly differs between the servers (a connection id, the
    /// command table): only that it was not an error is compared.
    Varies,
}

impl Reply {
    fn parse(bytes: &[u8]) -> Reply {
        let mut at = 0;
        Reply::parse_at(bytes, &mut at)
    }

    fn parse_at(bytes: &[u8], at: &mut usize) -> Reply {
        let rest = &bytes[*at..];
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a reply line");
        let line = &rest[1..end];
        *at += end + 2;
        let number = || -> i64 {
            std::str::from_utf8(line)
                .ok()
                .and_then(|s| s.parse().ok())
                .expect("a number")
        };
        match rest[0] {
            b'+' => Reply::Simple(line.to_vec()),
            b'-' => Reply::Error(line.to_vec()),
            b':' => Reply::Int(number()),
            b'$' => {
                let Ok(len) = usize::try_from(number()) else {
                    return Reply::Bulk(None);
                };
                let data = bytes[*at..*at + len].to_vec();
                *at += len + 2;
                Reply::Bulk(Some(data))
            }
            b'*' => {
                let Ok(len) = usize::try_from(number()) else {
                    return Reply::Array(None);
                };
                Reply::Array(Some((0..len).map(|_| Reply::parse_at(bytes, at)).collect()))
            }
            other => panic!("not a RESP reply: {:?}", char::from(other)),
        }
    }
}

/// `reply` to `cmd` with what rightly differs between the servers taken out.
fn normalized(cmd: &[Vec<u8>], reply: Reply) -> Reply {
    let name = cmd[0].to_ascii_uppercase();
    let sub = cmd
        .get(1)
        .map(|s| s.to_ascii_uppercase())
        .unwrap_or_default();
    match (name.as_slice(), reply) {
        (_, error @ Reply::Error(_)) => error,
        // The time left moves between the two requests, and an expiry set relatively lands
        // on each server's own clock: compare the sign only.
        (b"TTL" | b"PTTL" | b"EXPIRETIME" | b"PEXPIRETIME", Reply::Int(n)) if n > 0 => {
            Reply::Int(1)
        }
        (b"HELLO" | b"INFO", _) => Reply::Varies,
        (b"CLIENT", _) if matches!(sub.as_slice(), b"ID" | b"LIST" | b"INFO" | b"HELP") => {
            Reply::Varies
        }
        (b"COMMAND" | b"CONFIG", _) if sub.as_slice() != b"NOPE" => Reply::Varies,
        // KEYS lists in namespace order, Redis in hash order.
        (b"KEYS", Reply::Array(Some(mut keys))) => {
            keys.sort_by_key(|k| format!("{k:?}"));
            Reply::Array(Some(keys))
        }
        (b"SCAN", Reply::Array(Some(mut parts))) if parts.len() == 2 => {
            if let Reply::Array(Some(keys)) = &mut parts[1] {
                keys.sort_by_key(|k| format!("{k:?}"));
            }
            Reply::Array(Some(parts))
        }
        (_, reply) => reply,
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self {
            Reply::Simple(s) => write!(f, "+{}", text(s)),
            Reply::Error(e) => write!(f, "-{}", text(e)),
            Reply::Int(n) => write!(f, ":{n}"),
            Reply::Bulk(None) | Reply::Array(None) => write!(f, "(nil)"),
            Reply::Bulk(Some(b)) => write!(f, "{:?}", text(b)),
            Reply::Array(Some(items)) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
            Reply::Varies => write!(f, "(varies)"),
        }
    }
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from.choose(rng).copied().unwrap_or_default()
}

/// Appends `count` options drawn from `options`; an expiry option mostly gets a time after it.
fn push_options(
    rng: &mut StdRng,
    cmd: &mut Vec<String>,
    options: &[&str],
    count: std::ops::RangeInclusive<usize>,
) {
    for _ in 0..rng.random_range(count) {
        let option = pick(rng, options);
        cmd.push(option.into());
        let takes_time = ["EX", "PX", "EXAT", "PXAT"]
            .iter()
            .any(|o| o.eq_ignore_ascii_case(option));
        if takes_time && rng.random_bool(0.9) {
            cmd.push(pick(rng, &EXPIRIES).into());
        }
    }
}

fn command(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let key = |rng: &mut StdRng| pick(rng, &KEYS).to_owned();
    let value = |rng: &mut StdRng| pick(rng, &VALUES).to_owned();
    let cmd: Vec<String> = match rng.random_range(0..45) {
        0..=2 => vec!["GET".into(), key(rng)],
        3..=5 => vec!["SET".into(), key(rng), value(rng)],
        6..=8 => {
            let mut cmd = vec!["SET".into(), key(rng), value(rng)];
            let options = [
                "NX", "XX", "GET", "KEEPTTL", "EX", "PX", "EXAT", "PXAT", "nx", "get", "ex",
                "BOGUS",
            ];
            push_options(rng, &mut cmd, &options, 1..=3);
            cmd
        }
        9 => vec!["GETDEL".into(), key(rng)],
        10..=11 => {
            let name = pick(rng, &["DEL", "EXISTS", "MGET"]);
            let mut cmd = vec![name.to_owned()];
            cmd.extend((0..rng.random_range(1..=4)).map(|_| key(rng)));
            cmd
        }
        12..=14 => vec![pick(rng, &["INCR", "DECR"]).into(), key(rng)],
        15..=16 => vec![
            pick(rng, &["INCRBY", "DECRBY"]).into(),
            key(rng),
            pick(rng, &INTEGERS).into(),
        ],
        17..=18 => vec!["APPEND".into(), key(rng), value(rng)],
        19 => vec!["STRLEN".into(), key(rng)],
        20 | 42 => {
            let mut cmd = vec![pick(rng, &["MSET", "MSETNX"]).into()];
            for _ in 0..rng.random_range(1..=3) {
                cmd.push(key(rng));
                cmd.push(value(rng));
            }
            if rng.random_bool(0.1) {
                cmd.push(key(rng));
            }
            cmd
        }
        21..=22 => {
            let mut cmd = vec![
                pick(rng, &["EXPIRE", "PEXPIRE"]).into(),
                key(rng),
                pick(rng, &EXPIRIES).into(),
            ];
            for _ in 0..rng.random_range(0..=2) {
                cmd.push(pick(rng, &["NX", "XX", "GT", "LT", "gt", "BOGUS"]).into());
            }
            cmd
        }
        23..=24 => vec![
            pick(rng, &["TTL", "PTTL", "PERSIST", "TYPE"]).into(),
            key(rng),
        ],
        25 => vec![
            "KEYS".into(),
            pick(
                rng,
                &["*", "x:*", "?", "[ab]", "[^a]*", "\\*", "[a-c]", "x\\:1"],
            )
            .into(),
        ],
        26 => vec![
            "SCAN".into(),
            "0".into(),
            "MATCH".into(),
            pick(rng, &["*", "x:*", "n"]).into(),
            "COUNT".into(),
            "100".into(),
        ],
        27 => vec!["MULTI".into()],
        28 => vec!["EXEC".into()],
        29 => vec![pick(rng, &["DISCARD", "UNWATCH", "DBSIZE"]).into()],
        30 => {
            let mut cmd = vec!["WATCH".into()];
            cmd.extend((0..rng.random_range(1..=2)).map(|_| key(rng)));
            cmd
        }
        31 => {
            // A command name alone: wrong arity for most.
            vec![
                pick(
                    rng,
                    &[
                        "GET",
                        "SET",
                        "INCR",
                        "INCRBY",
                        "APPEND",
                        "TTL",
                        "EXPIRE",
                        "GETDEL",
                        "MSET",
                        "MGET",
                        "DEL",
                        "KEYS",
                        "SCAN",
                        "ECHO",
                        "WATCH",
                        "SELECT",
                        "EXEC",
                        "FLUSHDB",
                        "CLIENT",
                        "SETEX",
                        "GETEX",
                        "MSETNX",
                        "UNLINK",
                        "TOUCH",
                        "EXPIRETIME",
                        "GETSET",
                    ],
                )
                .into(),
            ]
        }
        32 => {
            let mut cmd = vec![
                pick(rng, &["CLIENT", "COMMAND", "CONFIG"]).into(),
                pick(
                    rng,
                    &[
                        "GETNAME",
                        "ID",
                        "COUNT",
                        "NOPE",
                        "GET",
                        "HELP",
                        "LIST",
                        "INFO",
                        "SETNAME",
                        "RESETSTAT",
                    ],
                )
                .into(),
            ];
            cmd.extend((0..rng.random_range(0..=2)).map(|_| "x".to_owned()));
            cmd
        }
        33 => vec![
            pick(rng, &["get", "Set", "iNcR", "dEl", "exec", "Multi"]).into(),
            key(rng),
        ],
        34 => vec!["SET".into(), pick(rng, &ODD_KEYS).into(), value(rng)],
        35 => vec![
            pick(rng, &["GET", "INCR", "DEL", "EXISTS"]).into(),
            pick(rng, &ODD_KEYS).into(),
        ],
        36 => vec!["SELECT".into(), pick(rng, &["0", "abc", "-1", "16"]).into()],
        37 => vec![
            "FLUSHDB".into(),
            pick(rng, &["ASYNC", "SYNC", "bogus"]).into(),
        ],
        38 => vec![pick(rng, &["PING", "ECHO"]).into(), value(rng)],
        39 => {
            let mut cmd = vec![
                pick(rng, &["SETEX", "PSETEX", "setex"]).into(),
                key(rng),
                pick(rng, &EXPIRIES).into(),
            ];
            if rng.random_bool(0.9) {
                cmd.push(value(rng));
            }
            cmd
        }
        40 => vec![pick(rng, &["SETNX", "GETSET"]).into(), key(rng), value(rng)],
        41 => {
            let mut cmd = vec!["GETEX".into(), key(rng)];
            let options = [
                "EX", "PX", "EXAT", "PXAT", "PERSIST", "persist", "px", "NX", "GET",
            ];
            push_options(rng, &mut cmd, &options, 0..=2);
            cmd
        }
        43 => {
            let name = pick(rng, &["UNLINK", "TOUCH", "EXPIRETIME", "PEXPIRETIME"]);
            let mut cmd = vec![name.to_owned()];
            cmd.extend((0..rng.random_range(1..=3)).map(|_| key(rng)));
            cmd
        }
        _ => vec![
            "CLIENT".into(),
            "SETNAME".into(),
            pick(rng, &["x", "a b", ""]).into(),
        ],
    };
    cmd.into_iter().map(String::into_bytes).collect()
}

struct Side {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Side {
    fn connect(addr: SocketAddr) -> Side {
        let (stream, reader) = session(addr);
        Side { stream, reader }
    }

    fn ask(&mut self, cmd: &[Vec<u8>]) -> Reply {
        self.stream.write_all(&encode(cmd)).expect("write");
        Reply::parse(&read_one(&mut self.reader))
    }
}

/// redis-server and statemesh, each with its address, stopped when dropped.
type Servers = [(Proc, SocketAddr); 2];

/// redis-server and statemesh running, with a connection to each; `None` (the test skips)
/// when redis-server is not installed.
fn both_servers() -> Option<(Servers, Side, Side)> {
    if !installed("redis-server") {
        return None;
    }
    let servers = [redis_server(), statemesh()];
    let (redis, ours) = (Side::connect(servers[0].1), Side::connect(servers[1].1));
    Some((servers, redis, ours))
}

/// Fails with the first ten of `mismatches`, if there are any.
fn assert_none(mismatches: &[String], what: &str) {
    let first: Vec<&str> = mismatches.iter().take(10).map(String::as_str).collect();
    assert!(
        mismatches.is_empty(),
        "{} {what}:\n{}",
        mismatches.len(),
        first.join("\n")
    );
}

fn show(cmd: &[Vec<u8>]) -> String {
    let words: Vec<String> = cmd
        .iter()
        .map(|a| format!("{:?}", String::from_utf8_lossy(a)))
        .collect();
    words.join(" ")
}

#[test]
fn random_command_sequences_match_a_real_redis_server() {
    let Some((_servers, mut redis, mut ours)) = both_servers() else {
        return;
    };
    let state: Vec<Vec<u8>> = std::iter::once("MGET")
        .chain(KEYS)
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let mut mismatches = Vec::new();
    for seed in SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let flush = [b"FLUSHDB".to_vec()];
        let reset = [b"RESET".to_vec()];
        for side in [&mut redis, &mut ours] {
            side.ask(&reset);
            side.ask(&flush);
        }
        // Commands since the last reset, for the report; queued commands, to normalise the
        // replies inside an EXEC's array.
        let mut recent: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut queued: Option<Vec<Vec<Vec<u8>>>> = None;
        for i in 0..COMMANDS_PER_SEED {
            let cmd = command(&mut rng);
            recent.push(cmd.clone());
            let (want, got) = (redis.ask(&cmd), ours.ask(&cmd));
            let name = cmd[0].to_ascii_uppercase();
            let was_queued = want == Reply::Simple(b"QUEUED".to_vec());
            let (want, got) = match (&name[..], &queued, want, got) {
                (b"EXEC", Some(q), Reply::Array(Some(w)), Reply::Array(Some(g)))
                    if w.len() == q.len() && g.len() == q.len() =>
                {
                    let norm = |r: Vec<Reply>| {
                        Reply::Array(Some(
                            q.iter().zip(r).map(|(c, r)| normalized(c, r)).collect(),
                        ))
                    };
                    (norm(w), norm(g))
                }
                (_, _, w, g) => (normalized(&cmd, w), normalized(&cmd, g)),
            };
            let exec_of = match (&name[..], &queued) {
                (b"EXEC", Some(q)) => q.iter().map(|c| show(c)).collect::<Vec<_>>().join(" | "),
                _ => String::new(),
            };
            match (&name[..], &want) {
                (b"MULTI", Reply::Simple(_)) => queued = Some(Vec::new()),
                (b"EXEC" | b"DISCARD", _) => queued = None,
                _ if was_queued => {
                    if let Some(q) = &mut queued {
                        q.push(cmd.clone());
                    }
                }
                _ => {}
            }
            let mut diverged = want != got;
            if !diverged && queued.is_none() {
                diverged = redis.ask(&state) != ours.ask(&state);
            }
            if diverged {
                let from = recent.len().saturating_sub(12);
                let context: Vec<String> = recent[from..].iter().map(|c| show(c)).collect();
                mismatches.push(format!(
                    "seed {seed}, command {i}: {}\n  redis: {want}\n  ours:  {got}\n  after: {}\n  queued: {exec_of}",
                    show(&cmd),
                    context.join(" | ")
                ));
                // Start again from an empty store, so one difference is reported once.
                for side in [&mut redis, &mut ours] {
                    side.ask(&reset);
                    side.ask(&flush);
                }
                recent.clear();
                queued = None;
            }
        }
    }
    assert_none(&mismatches, "divergences from redis-server");
}

/// Everything a server answers to `request` followed by a PING, up to the PONG or until it
/// closes the connection (as both do after a protocol error).
fn answer_to(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let (mut stream, _) = session(addr);
    stream.write_all(request).expect("write");
    stream.write_all(b"\r\nGET k\r\nPING\r\n").expect("write");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.ends_with(b"+PONG\r\n") {
        match std::io::Read::read(&mut stream, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    answer
}

/// Random inline lines (what a person types into telnet) split the way Redis splits them:
/// quotes, escapes, blanks of every kind, unbalanced quotes. Each line's arguments come back
/// in an unknown-command error or as a stored value, so both servers must agree on them
/// byte for byte, and on which lines are a protocol error.
#[test]
fn random_inline_lines_split_as_redis_splits_them() {
    let Some((servers, _, _)) = both_servers() else {
        return;
    };
    let [(_, redis_addr), (_, our_addr)] = &servers;
    let (redis_addr, our_addr) = (*redis_addr, *our_addr);
    let alphabet: &[u8] = b"\"'\\\\\"'x41fFg \t\x0b\x0cantrb\r";
    let mut rng = StdRng::seed_from_u64(5);
    let mut mismatches = Vec::new();
    for _ in 0..1500 {
        let mut line = pick(&mut rng, &["ZZZ ", "SET k ", "SET k a", "ECHO "])
            .as_bytes()
            .to_vec();
        for _ in 0..rng.random_range(0..14) {
            line.push(alphabet[rng.random_range(0..alphabet.len())]);
        }
        let (want, got) = (answer_to(redis_addr, &line), answer_to(our_addr, &line));
        if want != got {
            mismatches.push(format!(
                "{:?}\n  redis: {:?}\n  ours:  {:?}",
                String::from_utf8_lossy(&line),
                String::from_utf8_lossy(&want),
                String::from_utf8_lossy(&got)
            ));
        }
    }
    assert_none(&mismatches, "lines answered differently");
}

/// Random glob patterns (sets, ranges, negation, escapes, stars) over random keys: KEYS and
/// SCAN MATCH find the same keys on both servers.
#[test]
fn random_glob_patterns_find_the_keys_redis_finds() {
    let Some((_servers, mut redis, mut ours)) = both_servers() else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(9);
    let ask = |side: &mut Side, cmd: &[&str]| {
        let cmd: Vec<Vec<u8>> = cmd.iter().map(|a| a.as_bytes().to_vec()).collect();
        side.ask(&cmd)
    };
    let key_bytes = b"abc:-^!x";
    let mut stored = 0;
    for _ in 0..60 {
        let key: String = (0..rng.random_range(1..=5))
            .map(|_| char::from(key_bytes[rng.random_range(0..key_bytes.len())]))
            .collect();
        // Only keys the store takes (docs/resp.md, Keys): both servers then hold the same set.
        if ask(&mut ours, &["SET", &key, "1"]) == Reply::Simple(b"OK".to_vec()) {
            ask(&mut redis, &["SET", &key, "1"]);
            stored += 1;
        }
    }
    assert!(stored > 20, "only {stored} keys stored");
    let pieces = [
        "a", "b", "c", ":", "-", "^", "!", "x", "*", "?", "[", "]", "\\", "[a-c]", "[^a]", "[!b]",
        "\\*", "[]", "[a-]", "[c-a]",
    ];
    let mut mismatches = Vec::new();
    for _ in 0..3000 {
        let pattern: String = (0..rng.random_range(1..=6))
            .map(|_| pick(&mut rng, &pieces))
            .collect();
        let sorted = |reply: Reply| match reply {
            Reply::Array(Some(mut keys)) => {
                keys.sort_by_key(|k| format!("{k:?}"));
                Reply::Array(Some(keys))
            }
            other => other,
        };
        let scan =
            |side: &mut Side| match ask(side, &["SCAN", "0", "MATCH", &pattern, "COUNT", "1000"]) {
                Reply::Array(Some(mut parts)) if parts.len() == 2 => sorted(parts.remove(1)),
                other => other,
            };
        let want = (
            sorted(ask(&mut redis, &["KEYS", &pattern])),
            scan(&mut redis),
        );
        let got = (sorted(ask(&mut ours, &["KEYS", &pattern])), scan(&mut ours));
        if want != got {
            mismatches.push(format!(
                "{pattern:?}\n  redis: {}\n  ours:  {}",
                want.0, got.0
            ));
        }
    }
    assert_none(&mismatches, "patterns matched differently");
}

/// WATCH, then random writes (by another client or the watcher itself, failed and no-op ones
/// among them), then MULTI / GET / EXEC: both servers abort the same transactions.
#[test]
fn random_writes_abort_the_same_watches_as_in_redis() {
    let Some((servers, mut redis, mut ours)) = both_servers() else {
        return;
    };
    let (mut redis_other, mut ours_other) =
        (Side::connect(servers[0].1), Side::connect(servers[1].1));
    let mut rng = StdRng::seed_from_u64(13);
    let keys = ["a", "b", "c"];
    let mut mismatches = Vec::new();
    for _ in 0..1500 {
        let how_many = rng.random_range(1..=2);
        let watched: Vec<&str> = keys.choose_multiple(&mut rng, how_many).copied().collect();
        let writes: Vec<Vec<&str>> = (0..rng.random_range(0..=3))
            .map(|_| {
                let k = pick(&mut rng, &keys);
                let writes: [&[&str]; 15] = [
                    &["SET", k, "1"],
                    &["DEL", k],
                    &["INCR", k],
                    &["SET", k, "v", "NX"],
                    &["SET", k, "v", "XX"],
                    &["SET", k, "1", "PXAT", "1"],
                    &["EXPIRE", k, "100"],
                    &["EXPIRE", k, "0"],
                    &["PEXPIRE", k, "100", "GT"],
                    &["PERSIST", k],
                    &["APPEND", k, "x"],
                    &["GETDEL", k],
                    &["INCRBY", k, "abc"],
                    &["SET", k, "abc"],
                    &["FLUSHDB"],
                ];
                writes[rng.random_range(0..writes.len())].to_vec()
            })
            .collect();
        let by_watcher = rng.random_bool(0.2);
        let run = |watcher: &mut Side, other: &mut Side| {
            let ask = |side: &mut Side, cmd: &[&str]| {
                let cmd: Vec<Vec<u8>> = cmd.iter().map(|a| a.as_bytes().to_vec()).collect();
                side.ask(&cmd)
            };
            let mut replies = vec![ask(watcher, &[&["WATCH"], &watched[..]].concat())];
            for write in &writes {
                let side = if by_watcher {
                    &mut *watcher
                } else {
                    &mut *other
                };
                replies.push(ask(side, write));
            }
            for cmd in [&["MULTI"][..], &["GET", watched[0]], &["EXEC"]] {
                replies.push(ask(watcher, cmd));
            }
            replies
        };
        let want = run(&mut redis, &mut redis_other);
        let got = run(&mut ours, &mut ours_other);
        if want != got {
            mismatches.push(format!(
                "WATCH {watched:?}, then {writes:?} (by the watcher: {by_watcher})\n  redis: {}\n  ours:  {}",
                Reply::Array(Some(want)),
                Reply::Array(Some(got))
            ));
        }
    }
    assert_none(&mismatches, "transactions ended differently");
}
