//! Model-based property tests of the engine.
//!
//! [`Model`] is a plain in-memory implementation of the documented semantics of every engine
//! operation (see `engine/mod.rs` and the operation docs). Random operation sequences over a small
//! key space (two namespaces, paths of one to three segments from `a`, `b`, `c`, `ab`) are applied
//! to the model and to a real [`Engine`], with a clock that mostly moves forward, sometimes jumps
//! and sometimes runs backwards. After every step the tests compare:
//!
//! - the reply (values, versions, revisions, timestamps, metadata, error variants);
//! - the change events and the log records the step queued;
//! - the revision, the clock, the number of keys, the namespaces and the next expiry deadline;
//! - that every key the model knows to have expired is invisible to every read.
//!
//! Each run picks a configuration: case-sensitive or case-insensitive keys (then every other
//! step is written in upper case), JSON stored as text or MessagePack.
//!
//! Further properties: expiry is invisible from the deadline on, whatever `now` later calls pass;
//! replaying the log into a fresh engine (or into a mid-run snapshot) rebuilds the same snapshot
//! bytes; two engines fed the same operations produce the same replies, events, log bytes and
//! snapshot bytes. Targeted tests at the end cover calls refused for their arguments (which must
//! change nothing) and a repeated key in one `multi_put`.
//!
//! Patterns are checked against an independent matcher: every generated glob comes with a
//! hand-written regular expression ([`Pat`]); `statemesh_core::Pattern` is never used here.
//!
//! Case counts keep the suite well under 20 s in a debug build; set `PROPTEST_CASES` for a
//! long run (it applies to every property here).

// Test code: a failed unwrap is a failed test. (`allow-unwrap-in-tests` does not reach the
// helper functions of an integration test.)
#![allow(clippy::unwrap_used)]

mod common;
use common::cases;

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use regex::Regex;
use serde_json::{Map, Value as Json, json};
use statemesh_core::value::checksum;
use statemesh_core::{
    ChangeEvent, ChangeKind, Cursor, Engine, EngineConfig, EngineError, Entry, Format,
    JsonEncoding, KeyError, LogOp, LogRecord, LoggedPatch, Metadata, Patch, PatternError,
    PutOptions, StoredValue, Timestamp, Ttl, Value, ValueError, ValueKind, WriteOp, WriteResult,
};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Small limits, so that the size and batch errors are reachable.
const MAX_VALUE: usize = 48;
const MAX_META: usize = 48;
const MAX_BATCH: usize = 6;
/// The first `now` of every run.
const START: u64 = 1_000_000;

const NAMESPACES: [&str; 2] = ["ns", "ns2"];
const SEGMENTS: [&str; 4] = ["a", "b", "c", "ab"];
const INCREMENT_NEEDS: &str = "an integer or a decimal integer string";

fn config() -> EngineConfig {
    let mut config = EngineConfig::default();
    config.max_value_size = MAX_VALUE;
    config.max_metadata_size = MAX_META;
    config.max_batch = MAX_BATCH;
    config
}

fn new_engine() -> Engine {
    Engine::new(config()).unwrap()
}

/// What varies between runs of the model: key folding and how JSON is stored.
#[derive(Debug, Clone, Copy)]
struct Setup {
    case_insensitive: bool,
    json: JsonEncoding,
    history_limit: usize,
}

impl Setup {
    fn config(self) -> EngineConfig {
        let mut config = config()
            .with_json_encoding(self.json)
            .with_history_limit(self.history_limit);
        config.keys.case_insensitive = self.case_insensitive;
        config
    }
}

fn setup() -> impl Strategy<Value = Setup> {
    let json = prop_oneof![Just(JsonEncoding::Text), Just(JsonEncoding::MessagePack)];
    let history_limit = prop_oneof![Just(0), Just(3), Just(16), Just(48), Just(10_000)];
    (proptest::bool::weighted(0.3), json, history_limit).prop_map(
        |(case_insensitive, json, history_limit)| Setup {
            case_insensitive,
            json,
            history_limit,
        },
    )
}

fn ts(millis: u64) -> Timestamp {
    Timestamp::from_millis(millis)
}

type UserMeta = Map<String, Json>;

// ---------------------------------------------------------------------------------------------
// Operations and their strategies
// ---------------------------------------------------------------------------------------------

/// How the host's `now` moves before a step. `Back` passes an earlier time than the last call.
#[derive(Debug, Clone, Copy)]
enum Tick {
    Forward(u64),
    Back(u64),
}

impl Tick {
    fn apply(self, now: u64) -> u64 {
        match self {
            Tick::Forward(ms) => now.saturating_add(ms),
            Tick::Back(ms) => now.saturating_sub(ms),
        }
    }
}

/// A version for `put_if_version` / `if_version`; `Current` is resolved from the model.
#[derive(Debug, Clone)]
enum Version {
    Current,
    Fixed(u64),
}

impl Version {
    fn fixed(&self) -> u64 {
        match self {
            Version::Fixed(v) => *v,
            Version::Current => unreachable!("resolved before use"),
        }
    }
}

/// The expected value of a compare-and-swap; `Current` is resolved from the model.
#[derive(Debug, Clone)]
enum Expect {
    Current,
    Fixed(Option<Value>),
}

impl Expect {
    fn fixed(&self) -> Option<&Value> {
        match self {
            Expect::Fixed(v) => v.as_ref(),
            Expect::Current => unreachable!("resolved before use"),
        }
    }
}

/// A generated pattern with an independent matcher: `namespace` matches the namespace, `path`
/// matches `"." + path` (the leading separator makes `**` easy to express).
#[derive(Debug, Clone)]
struct Pat {
    text: String,
    namespace: Regex,
    path: Regex,
}

impl Pat {
    fn matches(&self, ns: &str, path: &str) -> bool {
        self.namespace.is_match(ns) && self.path.is_match(&format!(".{path}"))
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(String, Value),
    PutWithTtl(String, Value, u64),
    PutWith {
        key: String,
        value: Value,
        ttl: Option<u64>,
        keep_ttl: bool,
        if_version: Option<Version>,
        metadata: Option<UserMeta>,
    },
    PutIfVersion(String, Value, Version),
    Delete(String),
    Get(String),
    GetWithVersion(String),
    GetRecord(String),
    GetMetadata(String),
    Exists(String),
    GetTtl(String),
    CompareAndSwap(String, Expect, Value),
    Increment(String, i64),
    Append(String, Value),
    MergePatch(String, Json),
    MultiGet(Vec<String>),
    MultiPut(Vec<(String, Value)>),
    MultiDelete(Vec<String>),
    Keys(Pat),
    GetPattern(Pat),
    DeletePattern(Pat),
    /// Follows the cursor to the end; after the first page, `interleave` (if any) is applied.
    Scan {
        prefix: String,
        limit: usize,
        interleave: Option<(Tick, Box<Op>)>,
    },
    SetTtl(String, u64),
    ExtendTtl(String, u64),
    RemoveTtl(String),
    SetMetadata(String, UserMeta),
    HandleTimeout,
    /// Snapshot, restore into a fresh engine and continue with that one.
    SnapshotRestore,
}

impl Op {
    /// Rewrites every key, prefix and pattern of the operation.
    fn map_keys(&mut self, f: &impl Fn(&str) -> String) {
        match self {
            Op::Put(k, ..)
            | Op::PutWithTtl(k, ..)
            | Op::PutWith { key: k, .. }
            | Op::PutIfVersion(k, ..)
            | Op::Delete(k)
            | Op::Get(k)
            | Op::GetWithVersion(k)
            | Op::GetRecord(k)
            | Op::GetMetadata(k)
            | Op::Exists(k)
            | Op::GetTtl(k)
            | Op::CompareAndSwap(k, ..)
            | Op::Increment(k, _)
            | Op::Append(k, _)
            | Op::MergePatch(k, _)
            | Op::SetTtl(k, _)
            | Op::ExtendTtl(k, _)
            | Op::RemoveTtl(k)
            | Op::SetMetadata(k, _) => *k = f(k),
            Op::MultiGet(keys) | Op::MultiDelete(keys) => keys.iter_mut().for_each(|k| *k = f(k)),
            Op::MultiPut(items) => items.iter_mut().for_each(|(k, _)| *k = f(k)),
            Op::Keys(pat) | Op::GetPattern(pat) | Op::DeletePattern(pat) => pat.text = f(&pat.text),
            Op::Scan {
                prefix, interleave, ..
            } => {
                *prefix = f(prefix);
                if let Some((_, write)) = interleave {
                    write.map_keys(f);
                }
            }
            Op::HandleTimeout | Op::SnapshotRestore => {}
        }
    }
}

fn tick() -> impl Strategy<Value = Tick> {
    prop_oneof![
        120 => (0..=50u64).prop_map(Tick::Forward),
        5 => (1_000..=100_000u64).prop_map(Tick::Forward),
        20 => (1..=400u64).prop_map(Tick::Back),
        // Towards the end of time, where deadlines saturate.
        1 => Just(Tick::Forward(u64::MAX / 3)),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let seg = || select(SEGMENTS.to_vec());
    prop_oneof![
        3 => seg().prop_map(str::to_owned),
        3 => (seg(), seg()).prop_map(|(a, b)| format!("{a}.{b}")),
        1 => (seg(), seg(), seg()).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
    ]
}

/// Keys from three nested sets, so that operations often meet existing keys and the same key
/// shows up twice in a batch, while patterns and prefixes still see variety.
fn key() -> impl Strategy<Value = String> {
    let hot = select(vec!["ns:a", "ns:b", "ns2:a", "ns:a.b"]).prop_map(str::to_owned);
    let warm = select(vec!["a", "b", "c", "ab", "a.a", "a.b", "b.a", "a.b.c"]);
    let warm = (select(NAMESPACES.to_vec()), warm).prop_map(|(ns, path)| format!("{ns}:{path}"));
    let any = (select(NAMESPACES.to_vec()), path()).prop_map(|(ns, path)| format!("{ns}:{path}"));
    // A `:` inside the path, a non-ASCII segment, and keys of the default namespace (written
    // with and without it).
    let odd = select(vec!["ns:a:b", "ns:é.a", "default:a", "a", "b.a"]).prop_map(str::to_owned);
    // "The n-th key the store holds", expired or not: see `Model::resolve`.
    let held = (0..64usize).prop_map(|n| format!("@{n}"));
    prop_oneof![4 => hot, 4 => warm, 2 => any, 1 => odd, 4 => held]
}

/// A key for the TTL operations: often "the n-th key held that has a TTL".
fn ttl_key() -> impl Strategy<Value = String> {
    prop_oneof![key(), (0..64usize).prop_map(|n| format!("@t{n}"))]
}

/// Merge patches over the JSON values `value()` produces: member removal, nested merges, a
/// non-object patch that replaces the whole document, and one large enough to exceed the value
/// size limit.
fn merge_patch() -> impl Strategy<Value = Json> {
    select(vec![
        json!({"k": null}),
        json!({"k": {"n": 2}}),
        json!({"k": {"m": [1]}, "a": 1}),
        json!({"a": null, "b": "x"}),
        json!(5),
        json!({"big": "0123456789012345678901234567890123456789"}),
    ])
}

fn value() -> impl Strategy<Value = Value> {
    let strings = select(vec![
        "",
        "x",
        "12",
        "-3",
        "+4",
        " 5",
        "abc",
        "9223372036854775807",
        "9223372036854775808",
        "é",
    ]);
    let integers = prop_oneof![
        select(vec![0i64, 1, -1, i64::MAX, i64::MAX - 1, i64::MIN]),
        -50i64..50,
    ];
    let json = select(vec![
        json!(null),
        json!(7),
        json!("s"),
        json!([1, "x"]),
        json!({"k": {"n": 1}}),
    ]);
    prop_oneof![
        4 => strings.prop_map(Value::from),
        2 => "[a-c0-9]{0,5}".prop_map(Value::String),
        4 => integers.prop_map(Value::Integer),
        1 => select(vec![0.0, -0.0, 1.5, f64::NAN]).prop_map(Value::Float),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => vec(any::<u8>(), 0..5).prop_map(Value::Bytes),
        1 => json.prop_map(Value::Json),
        1 => vec(any::<u8>(), 0..3)
            .prop_map(|data| Value::Document { content_type: "text/plain".into(), data }),
        1 => Just(Value::Custom { codec: "zz".into(), data: vec![1, 2] }),
        1 => Just(Value::Serialized { format: Format::Postcard, data: vec![3] }),
        // Refused values: too large, bad content type, bad codec name.
        1 => select(vec![
            Value::String("x".repeat(MAX_VALUE)),
            Value::Document { content_type: String::new(), data: vec![] },
            Value::Custom { codec: "bad codec".into(), data: vec![] },
        ]),
    ]
}

fn suffix() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => "[a-c]{0,6}".prop_map(Value::String),
        2 => vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
        1 => select(vec![Value::Integer(1), Value::Bool(true)]),
    ]
}

fn ttl() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 1..=100u64, 5 => 100..=5_000u64, 1 => Just(u64::MAX), 1 => Just(0)]
}

fn delta() -> impl Strategy<Value = i64> {
    prop_oneof![4 => -3i64..=3, 1 => Just(i64::MAX), 1 => Just(i64::MIN)]
}

fn user_meta() -> impl Strategy<Value = UserMeta> {
    select(vec![
        json!({}),
        json!({"owner": "ann"}),
        json!({"owner": "bob", "n": 2}),
        json!({"tags": ["x", "y"]}),
        json!({"big": "x".repeat(MAX_META)}), // too large
    ])
    .prop_map(|json| match json {
        Json::Object(map) => map,
        _ => unreachable!("objects only"),
    })
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![3 => Just(Version::Current), 1 => (0..4u64).prop_map(Version::Fixed)]
}

fn expect() -> impl Strategy<Value = Expect> {
    prop_oneof![
        3 => Just(Expect::Current),
        1 => Just(Expect::Fixed(None)),
        1 => value().prop_map(|v| Expect::Fixed(Some(v))),
    ]
}

/// A pattern element: a glob for one segment (or a brace group / escape spanning segments), with
/// its regex, or `**`.
#[derive(Debug, Clone, Copy)]
enum Elem {
    Glob(&'static str, &'static str),
    AnyPath,
}

/// Path pattern elements: (glob, regex over one or more segments).
const ELEMENTS: &[(&str, &str)] = &[
    ("a", "a"),
    ("b", "b"),
    ("c", "c"),
    ("ab", "ab"),
    ("*", "[^.]*"),
    ("a*", "a[^.]*"),
    ("*b", "[^.]*b"),
    ("?", "[^.]"),
    ("a?", "a[^.]"),
    ("[ab]", "[ab]"),
    ("[!a]", "[^a.]"),
    ("[a-b]*", "[a-b][^.]*"),
    ("a**", "a[^.]*"),
    ("*a*", "[^.]*a[^.]*"),
    ("\\a", "a"),
    ("[]a]", "[\\]a]"),
    ("a\\.b", "a\\.b"),
    ("{a,b.c}", "(?:a|b\\.c)"),
    ("{a*,c}", "(?:a[^.]*|c)"),
    ("{a,{b,c}.a}", "(?:a|(?:b|c)\\.a)"),
    ("{a,b}b", "(?:a|b)b"),
];

/// Namespace parts: (glob, regex); `None` writes no namespace (the default one).
const NS_PATTERNS: &[(Option<&str>, &str)] = &[
    (Some("ns"), "ns"),
    (Some("ns2"), "ns2"),
    (Some("nope"), "nope"),
    (None, "default"),
    (Some("*"), "[^.]*"),
    (Some("ns*"), "ns[^.]*"),
    (Some("ns?"), "ns[^.]"),
    (Some("{ns,ns2}"), "(?:ns|ns2)"),
    (Some("n[rs]*"), "n[rs][^.]*"),
    (Some("*2"), "[^.]*2"),
    (Some("[!x]s"), "[^x.]s"),
];

fn pattern() -> impl Strategy<Value = Pat> {
    let elem = prop_oneof![
        6 => select(ELEMENTS.to_vec()).prop_map(|(g, r)| Elem::Glob(g, r)),
        2 => Just(Elem::AnyPath),
    ];
    (select(NS_PATTERNS.to_vec()), vec(elem, 1..=3)).prop_map(|((ns, ns_re), elems)| {
        let n = elems.len();
        let mut globs = Vec::new();
        let mut re = String::from("^");
        for (i, elem) in elems.iter().enumerate() {
            match elem {
                Elem::Glob(glob, r) => {
                    globs.push(*glob);
                    re.push_str("\\.");
                    re.push_str(r);
                }
                Elem::AnyPath => {
                    globs.push("**");
                    // A trailing `**` after other segments needs at least one segment.
                    re.push_str(if i == n - 1 && n > 1 {
                        "(?:\\.[^.]+)+"
                    } else {
                        "(?:\\.[^.]+)*"
                    });
                }
            }
        }
        re.push('$');
        let path = globs.join(".");
        Pat {
            text: ns.map_or(path.clone(), |ns| format!("{ns}:{path}")),
            namespace: Regex::new(&format!("^{ns_re}$")).unwrap(),
            path: Regex::new(&re).unwrap(),
        }
    })
}

fn scan_prefix() -> impl Strategy<Value = String> {
    let ns = select(vec!["ns", "ns", "ns2", "default", "nope"]);
    let path = select(vec![
        "", "", "a", "a", "a.", "a.b", "ab", "b", "b.", "a.b.c", "x",
    ]);
    (ns, path).prop_map(|(ns, path)| format!("{ns}:{path}"))
}

/// Writes that may run between two pages of a scan.
fn interleaved_write() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        (key(), value(), 1..100u64).prop_map(|(k, v, t)| Op::PutWithTtl(k, v, t)),
        key().prop_map(Op::Delete),
        vec((key(), value()), 1..4).prop_map(Op::MultiPut),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let put_with = (
        key(),
        value(),
        proptest::option::weighted(0.4, ttl()),
        proptest::bool::weighted(0.6),
        proptest::option::weighted(0.3, version()),
        proptest::option::weighted(0.5, user_meta()),
    )
        .prop_map(
            |(key, value, ttl, keep_ttl, if_version, metadata)| Op::PutWith {
                key,
                value,
                ttl,
                keep_ttl,
                if_version,
                metadata,
            },
        );
    let scan = (
        scan_prefix(),
        select(vec![1usize, 1, 2, 2, 3, 4]),
        proptest::option::weighted(0.4, (tick(), interleaved_write())),
    )
        .prop_map(|(prefix, limit, interleave)| Op::Scan {
            prefix,
            limit,
            interleave: interleave.map(|(t, op)| (t, Box::new(op))),
        });
    prop_oneof![
        10 => (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        5 => (key(), value(), ttl()).prop_map(|(k, v, t)| Op::PutWithTtl(k, v, t)),
        6 => put_with,
        3 => (key(), value(), version()).prop_map(|(k, v, e)| Op::PutIfVersion(k, v, e)),
        2 => key().prop_map(Op::Delete),
        2 => key().prop_map(Op::Get),
        1 => key().prop_map(Op::GetWithVersion),
        2 => key().prop_map(Op::GetRecord),
        1 => key().prop_map(Op::GetMetadata),
        1 => key().prop_map(Op::Exists),
        2 => ttl_key().prop_map(Op::GetTtl),
        3 => (key(), expect(), value()).prop_map(|(k, e, v)| Op::CompareAndSwap(k, e, v)),
        3 => (key(), delta()).prop_map(|(k, d)| Op::Increment(k, d)),
        3 => (key(), suffix()).prop_map(|(k, s)| Op::Append(k, s)),
        3 => (key(), merge_patch()).prop_map(|(k, p)| Op::MergePatch(k, p)),
        1 => vec(key(), 0..=MAX_BATCH + 1).prop_map(Op::MultiGet),
        4 => vec((key(), value()), 0..=MAX_BATCH + 1).prop_map(Op::MultiPut),
        1 => vec(key(), 0..=MAX_BATCH + 1).prop_map(Op::MultiDelete),
        2 => pattern().prop_map(Op::Keys),
        2 => pattern().prop_map(Op::GetPattern),
        1 => pattern().prop_map(Op::DeletePattern),
        3 => scan,
        4 => (ttl_key(), ttl()).prop_map(|(k, t)| Op::SetTtl(k, t)),
        2 => (ttl_key(), ttl()).prop_map(|(k, t)| Op::ExtendTtl(k, t)),
        2 => ttl_key().prop_map(Op::RemoveTtl),
        2 => (key(), user_meta()).prop_map(|(k, m)| Op::SetMetadata(k, m)),
        2 => Just(Op::HandleTimeout),
        1 => Just(Op::SnapshotRestore),
    ]
}

fn steps(max: usize) -> impl Strategy<Value = Vec<(Tick, Op)>> {
    vec((tick(), op()), 1..max)
}

// ---------------------------------------------------------------------------------------------
// Replies, compared between model and engine
// ---------------------------------------------------------------------------------------------

/// A value compared by its stored bytes (so `NaN == NaN` and `0.0 != -0.0`, as the engine's
/// compare-and-swap sees them).
#[derive(Clone)]
struct V(Value);

impl PartialEq for V {
    fn eq(&self, other: &V) -> bool {
        stored_bytes(&self.0) == stored_bytes(&other.0)
    }
}

impl std::fmt::Debug for V {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn stored_bytes(value: &Value) -> Option<Vec<u8>> {
    StoredValue::encode(value, JsonEncoding::Text, usize::MAX)
        .ok()
        .map(|s| s.as_bytes().to_vec())
}

/// System and user metadata of a key, as compared.
#[derive(Debug, PartialEq)]
struct SysMeta {
    created_at: Timestamp,
    updated_at: Timestamp,
    expires_at: Option<Timestamp>,
    version: u64,
    create_revision: u64,
    mod_revision: u64,
    checksum: u64,
    size: usize,
    kind: Option<ValueKind>,
    user: UserMeta,
}

impl SysMeta {
    fn of(meta: &Metadata) -> SysMeta {
        SysMeta {
            created_at: meta.created_at,
            updated_at: meta.updated_at,
            expires_at: meta.expires_at,
            version: meta.version,
            create_revision: meta.create_revision,
            mod_revision: meta.mod_revision,
            checksum: meta.checksum,
            size: meta.size,
            kind: meta.kind,
            user: meta.user.clone(),
        }
    }
}

type Page = Result<(Vec<(String, V)>, bool), EngineError>;

#[derive(Debug, PartialEq)]
enum Reply {
    Write(Result<WriteResult, EngineError>),
    Value(Result<Option<V>, EngineError>),
    Versioned(Result<Option<(V, u64)>, EngineError>),
    Record(Result<Option<(String, V, SysMeta)>, EngineError>),
    Meta(Result<Option<SysMeta>, EngineError>),
    Exists(Result<bool, EngineError>),
    Ttl(Result<Option<Ttl>, EngineError>),
    Counter(Result<(i64, WriteResult), EngineError>),
    Appended(Result<(usize, WriteResult), EngineError>),
    Patched(Result<WriteResult, EngineError>),
    Values(Result<Vec<Option<V>>, EngineError>),
    Keys(Result<Vec<String>, EngineError>),
    Pairs(Result<Vec<(String, V)>, EngineError>),
    /// Every page (items, whether a cursor came back), and the reply of the interleaved write.
    Scan {
        pages: Vec<Page>,
        interleaved: Option<Box<Reply>>,
    },
    Swept(u64),
    /// Whether the restored engine's snapshot equals the one it was restored from.
    Restored {
        same_bytes: bool,
    },
}

fn pairs(items: Vec<(String, Value)>) -> Vec<(String, V)> {
    items.into_iter().map(|(k, v)| (k, V(v))).collect()
}

/// A scan never needs more pages than there are keys; this bounds a runaway cursor.
const MAX_PAGES: usize = 200;

// ---------------------------------------------------------------------------------------------
// The engine side
// ---------------------------------------------------------------------------------------------

fn apply_engine(engine: &mut Engine, config: &EngineConfig, now: u64, op: &Op) -> Reply {
    let at = ts(now);
    match op {
        Op::Put(key, value) => Reply::Write(engine.put(at, key, value)),
        Op::PutWithTtl(key, value, ttl) => Reply::Write(engine.put_with_ttl(at, key, value, *ttl)),
        Op::PutWith {
            key,
            value,
            ttl,
            keep_ttl,
            if_version,
            metadata,
        } => {
            let mut opts = PutOptions::default();
            if let Some(ttl) = ttl {
                opts = opts.ttl_ms(*ttl);
            }
            if *keep_ttl {
                opts = opts.keep_ttl();
            }
            if let Some(version) = if_version {
                opts = opts.if_version(version.fixed());
            }
            if let Some(metadata) = metadata {
                opts = opts.metadata(metadata.clone());
            }
            Reply::Write(engine.put_with(at, key, value, &opts))
        }
        Op::PutIfVersion(key, value, version) => {
            Reply::Write(engine.put_if_version(at, key, value, version.fixed()))
        }
        Op::Delete(key) => Reply::Write(engine.delete(at, key)),
        Op::Get(key) => Reply::Value(engine.get(at, key).map(|v| v.map(V))),
        Op::GetWithVersion(key) => Reply::Versioned(
            engine
                .get_with_version(at, key)
                .map(|o| o.map(|(v, n)| (V(v), n))),
        ),
        Op::GetRecord(key) => Reply::Record(
            engine
                .get_record(at, key)
                .map(|o| o.map(|r| (r.key, V(r.value), SysMeta::of(&r.meta)))),
        ),
        Op::GetMetadata(key) => Reply::Meta(
            engine
                .get_metadata(at, key)
                .map(|o| o.as_ref().map(SysMeta::of)),
        ),
        Op::Exists(key) => Reply::Exists(engine.exists(at, key)),
        Op::GetTtl(key) => Reply::Ttl(engine.get_ttl(at, key)),
        Op::CompareAndSwap(key, expected, new) => {
            Reply::Write(engine.compare_and_swap(at, key, expected.fixed(), new))
        }
        Op::Increment(key, delta) => Reply::Counter(engine.increment(at, key, *delta)),
        Op::Append(key, suffix) => Reply::Appended(engine.append(at, key, suffix)),
        Op::MergePatch(key, patch) => {
            Reply::Patched(engine.patch(at, key, &Patch::merge(patch.clone())))
        }
        Op::MultiGet(keys) => Reply::Values(
            engine
                .multi_get(at, keys)
                .map(|vs| vs.into_iter().map(|v| v.map(V)).collect()),
        ),
        Op::MultiPut(items) => Reply::Write(engine.multi_put(at, items)),
        Op::MultiDelete(keys) => Reply::Write(engine.multi_delete(at, keys)),
        Op::Keys(pat) => Reply::Keys(engine.keys(at, &pat.text)),
        Op::GetPattern(pat) => Reply::Pairs(engine.get_pattern(at, &pat.text).map(pairs)),
        Op::DeletePattern(pat) => Reply::Write(engine.delete_pattern(at, &pat.text)),
        Op::Scan {
            prefix,
            limit,
            interleave,
        } => {
            let mut pages = Vec::new();
            let mut interleaved = None;
            let mut cursor: Option<Cursor> = None;
            while pages.len() < MAX_PAGES {
                let page = match engine.scan(at, prefix, *limit, cursor.as_ref()) {
                    Ok(page) => page,
                    Err(e) => {
                        pages.push(Err(e));
                        break;
                    }
                };
                pages.push(Ok((pairs(page.items), page.next.is_some())));
                let Some(next) = page.next else { break };
                // Go through the printable form, as a client would.
                cursor = Some(Cursor::decode(&next.encode()).unwrap());
                if pages.len() == 1
                    && let Some((tick, write)) = interleave
                {
                    interleaved = Some(Box::new(apply_engine(
                        engine,
                        config,
                        tick.apply(now),
                        write,
                    )));
                }
            }
            Reply::Scan { pages, interleaved }
        }
        Op::SetTtl(key, ttl) => Reply::Write(engine.set_ttl(at, key, *ttl)),
        Op::ExtendTtl(key, by) => Reply::Write(engine.extend_ttl(at, key, *by)),
        Op::RemoveTtl(key) => Reply::Write(engine.remove_ttl(at, key)),
        Op::SetMetadata(key, metadata) => Reply::Write(engine.set_metadata(at, key, metadata)),
        Op::HandleTimeout => Reply::Swept(engine.handle_timeout(at)),
        Op::SnapshotRestore => {
            let bytes = engine.snapshot().unwrap();
            let restored = Engine::restore(config.clone(), &bytes).unwrap();
            let same_bytes = restored.snapshot().unwrap() == bytes;
            *engine = restored;
            Reply::Restored { same_bytes }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ModelEntry {
    value: Value,
    stored: StoredValue,
    version: u64,
    create_revision: u64,
    mod_revision: u64,
    created_at: u64,
    updated_at: u64,
    expires_at: Option<u64>,
    user: Option<UserMeta>,
}

impl ModelEntry {
    /// The entry a log record carries.
    fn to_view(&self) -> EntryView {
        EntryView {
            value: self.stored.clone(),
            checksum: checksum(self.stored.as_bytes()),
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
            expires_at: self.expires_at.map(ts),
            version: self.version,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            user_meta: self
                .user
                .as_ref()
                .map(|m| Json::Object(m.clone()).to_string()),
        }
    }

    fn meta(&self) -> SysMeta {
        SysMeta {
            created_at: ts(self.created_at),
            updated_at: ts(self.updated_at),
            expires_at: self.expires_at.map(ts),
            version: self.version,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            checksum: checksum(self.stored.as_bytes()),
            size: self.stored.len(),
            kind: Some(self.value.kind()),
            user: self.user.clone().unwrap_or_default(),
        }
    }
}

type ModelKey = (String, String);

/// A log record as compared. [`Entry`] cannot be built outside the crate, so the model writes
/// its expected records in this form and the engine's are read into it.
#[derive(Debug, PartialEq)]
struct RecordView {
    revision: u64,
    at: Timestamp,
    ops: Vec<OpView>,
}

#[derive(Debug, PartialEq)]
enum OpView {
    Put {
        key: String,
        entry: EntryView,
    },
    /// A TTL or user-metadata change: the key's whole entry, as for a put.
    Metadata {
        key: String,
        entry: EntryView,
    },
    Delete(String),
    Expire(String),
    /// A single-key write's next version of an existing key: the derivable fields left out.
    Update {
        key: String,
        value: StoredValue,
        checksum: u64,
        expires_at: Option<Timestamp>,
    },
    /// A merge patch logged as its JSON text.
    MergePatch {
        key: String,
        text: String,
        checksum: u64,
    },
    /// Any other kind of op, which the model never expects.
    Other(String),
}

/// The public fields of an [`Entry`].
#[derive(Debug, PartialEq)]
struct EntryView {
    value: StoredValue,
    checksum: u64,
    created_at: Timestamp,
    updated_at: Timestamp,
    expires_at: Option<Timestamp>,
    version: u64,
    create_revision: u64,
    mod_revision: u64,
    user_meta: Option<String>,
}

impl RecordView {
    fn of(record: &LogRecord) -> RecordView {
        RecordView {
            revision: record.revision,
            at: record.at,
            ops: record.ops.iter().map(OpView::of).collect(),
        }
    }
}

impl OpView {
    fn of(op: &LogOp) -> OpView {
        let key = |ns: &str, path: &str| format!("{ns}:{path}");
        match op {
            LogOp::Put {
                namespace,
                path,
                entry,
            } => OpView::Put {
                key: key(namespace, path),
                entry: EntryView::of(entry),
            },
            LogOp::Metadata {
                namespace,
                path,
                entry,
            } => OpView::Metadata {
                key: key(namespace, path),
                entry: EntryView::of(entry),
            },
            LogOp::Update {
                namespace,
                path,
                value,
                checksum,
                expires_at,
            } => OpView::Update {
                key: key(namespace, path),
                value: value.clone(),
                checksum: *checksum,
                expires_at: *expires_at,
            },
            LogOp::Delete { namespace, path } => OpView::Delete(key(namespace, path)),
            LogOp::Expire { namespace, path } => OpView::Expire(key(namespace, path)),
            LogOp::Patch {
                namespace,
                path,
                patch: LoggedPatch::Merge(text),
                checksum,
            } => OpView::MergePatch {
                key: key(namespace, path),
                text: text.clone(),
                checksum: *checksum,
            },
            _ => OpView::Other(format!("{op:?}")),
        }
    }
}

/// Whether `new` is the version after `old` with only the value and TTL chosen by the write.
fn follows(old: &ModelEntry, new: &ModelEntry) -> bool {
    new.version == old.version + 1
        && new.created_at == old.created_at
        && new.create_revision == old.create_revision
        && new.user == old.user
}

impl EntryView {
    fn of(entry: &Entry) -> EntryView {
        EntryView {
            value: entry.value.clone(),
            checksum: entry.checksum,
            created_at: entry.created_at,
            updated_at: entry.updated_at,
            expires_at: entry.expires_at,
            version: entry.version,
            create_revision: entry.create_revision,
            mod_revision: entry.mod_revision,
            user_meta: entry.user_meta.as_deref().map(str::to_owned),
        }
    }
}

/// A key's namespace and path; a key written without a namespace is in `default`.
fn split(key: &str) -> ModelKey {
    let (ns, path) = key.split_once(':').unwrap_or(("default", key));
    (ns.to_owned(), path.to_owned())
}

fn join((ns, path): &ModelKey) -> String {
    format!("{ns}:{path}")
}

/// Validates user metadata; an empty object clears it.
fn check_user_meta(metadata: &UserMeta) -> Result<Option<UserMeta>, EngineError> {
    if metadata.is_empty() {
        return Ok(None);
    }
    let size = Json::Object(metadata.clone()).to_string().len();
    if size > MAX_META {
        return Err(EngineError::MetadataTooLarge {
            size,
            limit: MAX_META,
        });
    }
    Ok(Some(metadata.clone()))
}

fn check_batch(count: usize) -> Result<(), EngineError> {
    if count > MAX_BATCH {
        return Err(EngineError::BatchTooLarge {
            count,
            limit: MAX_BATCH,
        });
    }
    Ok(())
}

fn write_result(op: WriteOp, affected: u64, version: u64, revision: u64) -> WriteResult {
    WriteResult {
        op,
        affected,
        version,
        revision,
        latency: Duration::ZERO,
    }
}

/// The changes of one committed write.
struct Batch {
    revision: u64,
    ops: Vec<OpView>,
    changed: u64,
}

#[derive(Debug, Default)]
struct PutArgs {
    ttl: Option<u64>,
    keep_ttl: bool,
    if_version: Option<u64>,
    metadata: Option<UserMeta>,
}

/// The documented semantics, kept as plainly as possible. Expired entries stay in `entries`
/// until a write or `handle_timeout` sweeps them, as in the engine; reads filter them out.
#[derive(Debug)]
struct Model {
    setup: Setup,
    entries: BTreeMap<ModelKey, ModelEntry>,
    revision: u64,
    /// The highest `now` the engine has taken in.
    clock: u64,
    /// Events and log records the engine should have queued since they were last drained.
    events: Vec<ChangeEvent>,
    log: Vec<RecordView>,
}

impl Model {
    fn new(setup: Setup) -> Model {
        Model {
            setup,
            entries: BTreeMap::new(),
            revision: 0,
            clock: 0,
            events: Vec::new(),
            log: Vec::new(),
        }
    }

    /// A key (or prefix) as the store keeps it: namespace and path, folded when the store is
    /// case-insensitive.
    fn key(&self, key: &str) -> ModelKey {
        let (ns, path) = split(key);
        if self.setup.case_insensitive {
            (ns.to_ascii_lowercase(), path.to_lowercase())
        } else {
            (ns, path)
        }
    }

    /// The written form the engine reports a key in.
    fn normal(&self, key: &str) -> String {
        join(&self.key(key))
    }

    fn encode(&self, value: &Value) -> Result<StoredValue, EngineError> {
        Ok(StoredValue::encode(value, self.setup.json, MAX_VALUE)?)
    }

    fn observe(&mut self, now: u64) {
        self.clock = self.clock.max(now);
    }

    fn is_live(&self, entry: &ModelEntry) -> bool {
        entry.expires_at.is_none_or(|t| t > self.clock)
    }

    fn live(&self, key: &str) -> Option<&ModelEntry> {
        self.entries.get(&self.key(key)).filter(|e| self.is_live(e))
    }

    /// The live entries, in namespace then path order.
    fn live_entries(&self) -> impl Iterator<Item = (&ModelKey, &ModelEntry)> {
        self.entries.iter().filter(|(_, e)| self.is_live(e))
    }

    /// The key's live entry as a call at `now` would see it (for resolving guesses).
    fn live_at(&self, now: u64, key: &str) -> Option<&ModelEntry> {
        let clock = self.clock.max(now);
        self.entries
            .get(&self.key(key))
            .filter(|e| e.expires_at.is_none_or(|t| t > clock))
    }

    /// Replaces "the n-th key held" and "the current version / value" in `op` by what the
    /// model holds.
    fn resolve(&self, now: u64, op: &Op) -> Op {
        let mut op = op.clone();
        let held: Vec<String> = self.entries.keys().map(join).collect();
        let with_ttl: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires_at.is_some())
            .map(|(k, _)| join(k))
            .collect();
        op.map_keys(&|key: &str| {
            let Some(tail) = key.strip_prefix('@') else {
                return key.to_owned();
            };
            let (keys, n) = match tail.strip_prefix('t') {
                Some(n) if !with_ttl.is_empty() => (&with_ttl, n),
                Some(n) => (&held, n),
                None => (&held, tail),
            };
            let n: usize = n.parse().unwrap();
            keys.get(n % keys.len().max(1))
                .cloned()
                .unwrap_or_else(|| "ns:a".to_owned())
        });
        match &mut op {
            Op::PutIfVersion(key, _, version @ Version::Current)
            | Op::PutWith {
                key,
                if_version: Some(version @ Version::Current),
                ..
            } => {
                *version = Version::Fixed(self.live_at(now, key).map_or(0, |e| e.version));
            }
            Op::CompareAndSwap(key, expected @ Expect::Current, _) => {
                *expected = Expect::Fixed(self.live_at(now, key).map(|e| e.value.clone()));
            }
            _ => {}
        }
        op
    }

    /// The first step of every write, once its arguments are valid: take in `now`, then sweep
    /// what is due. The sweep commits on its own revision, so a write then refused for the
    /// key's state (version conflict, wrong type, overflow, ...) or turned into a no-op still
    /// leaves it behind. That is what the engine does; it is at odds with `EngineError`'s
    /// "nothing was changed when an operation returns an error".
    fn begin(&mut self, now: u64) {
        self.observe(now);
        self.sweep();
    }

    /// Removes every due key in one revision, in deadline then key order.
    fn sweep(&mut self) -> u64 {
        let mut due: Vec<(u64, ModelKey)> = self
            .entries
            .iter()
            .filter_map(|(k, e)| {
                e.expires_at
                    .filter(|&t| t <= self.clock)
                    .map(|t| (t, k.clone()))
            })
            .collect();
        due.sort();
        let mut batch = self.batch();
        for (_, key) in &due {
            self.erase(&mut batch, key, ChangeKind::Expire);
        }
        self.commit(batch);
        due.len() as u64
    }

    fn batch(&self) -> Batch {
        Batch {
            revision: self.revision + 1,
            ops: Vec::new(),
            changed: 0,
        }
    }

    fn commit(&mut self, batch: Batch) {
        if batch.changed > 0 {
            self.revision = batch.revision;
            self.log.push(RecordView {
                revision: batch.revision,
                at: ts(self.clock),
                ops: batch.ops,
            });
        }
    }

    fn next_entry(
        &self,
        batch: &Batch,
        old: Option<&ModelEntry>,
        value: Value,
        stored: StoredValue,
        expires_at: Option<u64>,
    ) -> ModelEntry {
        ModelEntry {
            value,
            stored,
            version: old.map_or(1, |o| o.version + 1),
            create_revision: old.map_or(batch.revision, |o| o.create_revision),
            mod_revision: batch.revision,
            created_at: old.map_or(self.clock, |o| o.created_at),
            updated_at: self.clock,
            expires_at,
            user: old.and_then(|o| o.user.clone()),
        }
    }

    fn install(&mut self, batch: &mut Batch, key: &ModelKey, entry: ModelEntry, kind: ChangeKind) {
        batch.ops.push(if kind == ChangeKind::Metadata {
            OpView::Metadata {
                key: join(key),
                entry: entry.to_view(),
            }
        } else {
            OpView::Put {
                key: join(key),
                entry: entry.to_view(),
            }
        });
        batch.changed += 1;
        let event = ChangeEvent {
            revision: batch.revision,
            at: ts(self.clock),
            key: join(key).into(),
            kind,
            version: entry.version,
            old: self.entries.get(key).map(|o| o.stored.clone()),
            new: Some(entry.stored.clone()),
            old_version: self.entries.get(key).map_or(0, |o| o.version),
            old_mod_revision: self.entries.get(key).map_or(0, |o| o.mod_revision),
        };
        self.events.push(event);
        self.entries.insert(key.clone(), entry);
    }

    /// Removes the key (a delete or an expiry); false when it was not there.
    fn erase(&mut self, batch: &mut Batch, key: &ModelKey, kind: ChangeKind) -> bool {
        let Some(old) = self.entries.remove(key) else {
            return false;
        };
        batch.ops.push(match kind {
            ChangeKind::Expire => OpView::Expire(join(key)),
            _ => OpView::Delete(join(key)),
        });
        batch.changed += 1;
        self.events.push(ChangeEvent {
            revision: batch.revision,
            at: ts(self.clock),
            key: join(key).into(),
            kind,
            version: 0,
            old_version: old.version,
            old_mod_revision: old.mod_revision,
            old: Some(old.stored),
            new: None,
        });
        true
    }

    fn noop(&self) -> WriteResult {
        write_result(WriteOp::Noop, 0, 0, self.revision)
    }

    fn single(&mut self, batch: Batch, op: WriteOp, version: u64) -> WriteResult {
        let affected = batch.changed;
        self.commit(batch);
        write_result(op, affected, version, self.revision)
    }

    fn batch_result(&mut self, batch: Batch) -> WriteResult {
        if batch.changed == 0 {
            return self.noop();
        }
        let affected = batch.changed;
        self.commit(batch);
        write_result(WriteOp::Batch, affected, 0, self.revision)
    }

    /// Installs a new value for one key (Create or Update) and commits it.
    fn write_one(&mut self, batch: Batch, key: &ModelKey, entry: ModelEntry) -> WriteResult {
        self.write_one_logged_as(batch, key, entry, None)
    }

    /// `write_one`, with the log op replaced by `logged` when given (a patch logged as itself).
    fn write_one_logged_as(
        &mut self,
        mut batch: Batch,
        key: &ModelKey,
        entry: ModelEntry,
        logged: Option<OpView>,
    ) -> WriteResult {
        let version = entry.version;
        let (op, kind) = if version == 1 {
            (WriteOp::Create, ChangeKind::Create)
        } else {
            (WriteOp::Update, ChangeKind::Update)
        };
        // A single-key write of an existing key whose entry follows from the old one (every
        // one but a put that sets user metadata) is logged without the derivable fields.
        let update = self
            .entries
            .get(key)
            .is_some_and(|old| follows(old, &entry))
            .then(|| OpView::Update {
                key: join(key),
                value: entry.stored.clone(),
                checksum: checksum(entry.stored.as_bytes()),
                expires_at: entry.expires_at.map(ts),
            });
        self.install(&mut batch, key, entry, kind);
        if let (Some(logged), Some(last)) = (logged.or(update), batch.ops.last_mut()) {
            *last = logged;
        }
        self.single(batch, op, version)
    }

    fn put(
        &mut self,
        now: u64,
        key: &str,
        value: &Value,
        args: &PutArgs,
    ) -> Result<WriteResult, EngineError> {
        let stored = self.encode(value)?;
        if args.ttl == Some(0) {
            return Err(EngineError::InvalidTtl);
        }
        let user = args.metadata.as_ref().map(check_user_meta).transpose()?;
        self.begin(now);
        let k = self.key(key);
        let old = self.entries.get(&k).cloned();
        if let Some(expected) = args.if_version {
            let actual = old.as_ref().map_or(0, |e| e.version);
            if actual != expected {
                return Err(EngineError::VersionConflict {
                    key: self.normal(key),
                    expected,
                    actual,
                });
            }
        }
        let expires_at = match (args.ttl, args.keep_ttl) {
            (Some(ttl), _) => Some(self.clock.saturating_add(ttl)),
            (None, true) => old.as_ref().and_then(|e| e.expires_at),
            (None, false) => None,
        };
        let batch = self.batch();
        let mut entry = self.next_entry(&batch, old.as_ref(), value.clone(), stored, expires_at);
        if let Some(user) = user {
            entry.user = user;
        }
        Ok(self.write_one(batch, &k, entry))
    }

    fn delete(&mut self, now: u64, key: &str) -> WriteResult {
        self.begin(now);
        let mut batch = self.batch();
        if self.erase(&mut batch, &self.key(key), ChangeKind::Delete) {
            self.single(batch, WriteOp::Delete, 0)
        } else {
            self.noop()
        }
    }

    fn compare_and_swap(
        &mut self,
        now: u64,
        key: &str,
        expected: Option<&Value>,
        new: &Value,
    ) -> Result<WriteResult, EngineError> {
        let expected = expected.map(|v| self.encode(v)).transpose()?;
        let stored = self.encode(new)?;
        self.begin(now);
        let k = self.key(key);
        let old = self.entries.get(&k).cloned();
        if old.as_ref().map(|e| &e.stored) != expected.as_ref() {
            return Err(EngineError::ValueConflict {
                key: self.normal(key),
            });
        }
        let expires_at = old.as_ref().and_then(|e| e.expires_at);
        let batch = self.batch();
        let entry = self.next_entry(&batch, old.as_ref(), new.clone(), stored, expires_at);
        Ok(self.write_one(batch, &k, entry))
    }

    fn increment(
        &mut self,
        now: u64,
        key: &str,
        delta: i64,
    ) -> Result<(i64, WriteResult), EngineError> {
        self.begin(now);
        let k = self.key(key);
        let old = self.entries.get(&k).cloned();
        let wrong = |actual| EngineError::WrongType {
            key: self.normal(key),
            expected: INCREMENT_NEEDS,
            actual,
        };
        let current = match old.as_ref().map(|e| &e.value) {
            None => 0,
            Some(Value::Integer(i)) => *i,
            Some(Value::String(s)) => s.parse::<i64>().map_err(|_| wrong("non-numeric string"))?,
            Some(other) => return Err(wrong(other.kind().name())),
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| EngineError::Overflow {
                key: self.normal(key),
            })?;
        let value = Value::Integer(next);
        let stored = self.encode(&value)?;
        let expires_at = old.as_ref().and_then(|e| e.expires_at);
        let batch = self.batch();
        let entry = self.next_entry(&batch, old.as_ref(), value, stored, expires_at);
        Ok((next, self.write_one(batch, &k, entry)))
    }

    fn append(
        &mut self,
        now: u64,
        key: &str,
        suffix: &Value,
    ) -> Result<(usize, WriteResult), EngineError> {
        let name = self.normal(key);
        let wrong = |expected, actual| EngineError::WrongType {
            key: name.clone(),
            expected,
            actual,
        };
        let kind = match suffix {
            Value::String(_) => ValueKind::String,
            Value::Bytes(_) => ValueKind::Bytes,
            other => return Err(wrong("a string or bytes suffix", other.kind().name())),
        };
        self.begin(now);
        let k = self.key(key);
        let old = self.entries.get(&k).cloned();
        let value = match (old.as_ref().map(|e| &e.value), suffix) {
            (None, suffix) => suffix.clone(),
            (Some(Value::String(a)), Value::String(b)) => Value::String(format!("{a}{b}")),
            (Some(Value::Bytes(a)), Value::Bytes(b)) => Value::Bytes([a.as_slice(), b].concat()),
            (Some(other), _) => return Err(wrong(kind.name(), other.kind().name())),
        };
        let len = match &value {
            Value::String(s) => s.len(),
            Value::Bytes(b) => b.len(),
            _ => unreachable!("strings and bytes only"),
        };
        let stored = self.encode(&value)?;
        let expires_at = old.as_ref().and_then(|e| e.expires_at);
        let batch = self.batch();
        let entry = self.next_entry(&batch, old.as_ref(), value, stored, expires_at);
        Ok((len, self.write_one(batch, &k, entry)))
    }

    /// RFC 7386, written out here independently of the engine's crate.
    fn merge_patch(
        &mut self,
        now: u64,
        key: &str,
        patch: &Json,
    ) -> Result<WriteResult, EngineError> {
        fn merge(target: Json, patch: &Json) -> Json {
            let Json::Object(members) = patch else {
                return patch.clone();
            };
            let mut target = match target {
                Json::Object(map) => map,
                _ => Map::new(),
            };
            for (name, value) in members {
                if value.is_null() {
                    target.remove(name);
                } else {
                    let old = target.remove(name).unwrap_or(Json::Null);
                    target.insert(name.clone(), merge(old, value));
                }
            }
            Json::Object(target)
        }
        let name = self.normal(key);
        self.begin(now);
        let k = self.key(key);
        let old = self.entries.get(&k).cloned();
        let doc = match old.as_ref().map(|e| &e.value) {
            None => Json::Null,
            Some(Value::Json(doc)) => doc.clone(),
            Some(other) => {
                return Err(EngineError::WrongType {
                    key: name,
                    expected: "json",
                    actual: other.kind().name(),
                });
            }
        };
        let value = Value::Json(merge(doc, patch));
        let stored = self.encode(&value)?;
        let expires_at = old.as_ref().and_then(|e| e.expires_at);
        let batch = self.batch();
        let entry = self.next_entry(&batch, old.as_ref(), value, stored, expires_at);
        // The log carries the patch instead of the value when the patch is smaller.
        let text = patch.to_string();
        let logged = (text.len() < entry.stored.len()).then(|| OpView::MergePatch {
            key: join(&k),
            checksum: checksum(entry.stored.as_bytes()),
            text,
        });
        Ok(self.write_one_logged_as(batch, &k, entry, logged))
    }

    fn multi_put(
        &mut self,
        now: u64,
        items: &[(String, Value)],
    ) -> Result<WriteResult, EngineError> {
        check_batch(items.len())?;
        let stored = items
            .iter()
            .map(|(_, v)| self.encode(v))
            .collect::<Result<Vec<_>, _>>()?;
        self.begin(now);
        let mut batch = self.batch();
        // Later items see the earlier ones: a repeated key gets a new version each time, and
        // `affected` counts it once per occurrence (not "keys changed", as documented).
        for ((key, value), stored) in items.iter().zip(stored) {
            let k = self.key(key);
            let old = self.entries.get(&k).cloned();
            let entry = self.next_entry(&batch, old.as_ref(), value.clone(), stored, None);
            let kind = if entry.version == 1 {
                ChangeKind::Create
            } else {
                ChangeKind::Update
            };
            self.install(&mut batch, &k, entry, kind);
        }
        Ok(self.batch_result(batch))
    }

    fn multi_delete(&mut self, now: u64, keys: &[String]) -> Result<WriteResult, EngineError> {
        check_batch(keys.len())?;
        self.begin(now);
        let mut batch = self.batch();
        for key in keys {
            self.erase(&mut batch, &self.key(key), ChangeKind::Delete);
        }
        Ok(self.batch_result(batch))
    }

    fn matching(&self, pat: &Pat) -> Vec<(ModelKey, Value)> {
        self.live_entries()
            .filter(|((ns, path), _)| pat.matches(ns, path))
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect()
    }

    fn delete_pattern(&mut self, now: u64, pat: &Pat) -> WriteResult {
        self.begin(now);
        let mut batch = self.batch();
        for (key, _) in self.matching(pat) {
            self.erase(&mut batch, &key, ChangeKind::Delete);
        }
        self.batch_result(batch)
    }

    /// One scan page: up to `limit` live keys with the prefix after `after`, and whether more
    /// follow.
    fn scan_page(
        &mut self,
        now: u64,
        prefix: &str,
        limit: usize,
        after: Option<&str>,
    ) -> (Vec<(String, V)>, bool) {
        self.observe(now);
        let (ns, start) = self.key(prefix);
        let mut keys = self
            .live_entries()
            .filter(|((n, p), _)| {
                *n == ns && p.starts_with(&start) && after.is_none_or(|a| p.as_str() > a)
            })
            .map(|(k, e)| (join(k), V(e.value.clone())));
        let page: Vec<_> = keys.by_ref().take(limit).collect();
        let more = keys.next().is_some();
        (page, more)
    }

    /// Rewrites an existing key's TTL or user metadata as a new version (event kind Metadata).
    fn rewrite(
        &mut self,
        now: u64,
        key: &str,
        change: impl FnOnce(&mut ModelEntry),
    ) -> WriteResult {
        self.begin(now);
        let k = self.key(key);
        let Some(old) = self.entries.get(&k).cloned() else {
            return self.noop();
        };
        let mut batch = self.batch();
        let mut entry = self.next_entry(
            &batch,
            Some(&old),
            old.value.clone(),
            old.stored.clone(),
            old.expires_at,
        );
        change(&mut entry);
        let version = entry.version;
        self.install(&mut batch, &k, entry, ChangeKind::Metadata);
        self.single(batch, WriteOp::Update, version)
    }

    fn set_ttl(&mut self, now: u64, key: &str, ttl: u64) -> Result<WriteResult, EngineError> {
        if ttl == 0 {
            return Err(EngineError::InvalidTtl);
        }
        let at = self.clock.max(now).saturating_add(ttl);
        Ok(self.rewrite(now, key, |e| e.expires_at = Some(at)))
    }

    fn extend_ttl(&mut self, now: u64, key: &str, by: u64) -> Result<WriteResult, EngineError> {
        if by == 0 {
            return Err(EngineError::InvalidTtl);
        }
        self.begin(now);
        match self.entries.get(&self.key(key)).map(|e| e.expires_at) {
            None => Ok(self.noop()),
            Some(None) => Err(EngineError::NoTtl {
                key: self.normal(key),
            }),
            Some(Some(at)) => {
                Ok(self.rewrite(now, key, |e| e.expires_at = Some(at.saturating_add(by))))
            }
        }
    }

    fn remove_ttl(&mut self, now: u64, key: &str) -> WriteResult {
        self.begin(now);
        match self.entries.get(&self.key(key)) {
            Some(e) if e.expires_at.is_some() => self.rewrite(now, key, |e| e.expires_at = None),
            _ => self.noop(),
        }
    }

    fn set_metadata(
        &mut self,
        now: u64,
        key: &str,
        metadata: &UserMeta,
    ) -> Result<WriteResult, EngineError> {
        let user = check_user_meta(metadata)?;
        Ok(self.rewrite(now, key, |e| e.user = user))
    }
}

fn apply_model(m: &mut Model, now: u64, op: &Op) -> Reply {
    // A point read consults its `now` only when the key it finds has a TTL.
    let read = |m: &mut Model, key: &str| {
        if m.entries
            .get(&m.key(key))
            .is_some_and(|e| e.expires_at.is_some())
        {
            m.observe(now);
        }
        m.live(key).cloned()
    };
    match op {
        Op::Put(key, value) => Reply::Write(m.put(now, key, value, &PutArgs::default())),
        Op::PutWithTtl(key, value, ttl) => Reply::Write(m.put(
            now,
            key,
            value,
            &PutArgs {
                ttl: Some(*ttl),
                ..PutArgs::default()
            },
        )),
        Op::PutWith {
            key,
            value,
            ttl,
            keep_ttl,
            if_version,
            metadata,
        } => {
            let args = PutArgs {
                ttl: *ttl,
                keep_ttl: *keep_ttl,
                if_version: if_version.as_ref().map(Version::fixed),
                metadata: metadata.clone(),
            };
            Reply::Write(m.put(now, key, value, &args))
        }
        Op::PutIfVersion(key, value, version) => {
            let args = PutArgs {
                if_version: Some(version.fixed()),
                ..PutArgs::default()
            };
            Reply::Write(m.put(now, key, value, &args))
        }
        Op::Delete(key) => Reply::Write(Ok(m.delete(now, key))),
        Op::Get(key) => Reply::Value(Ok(read(m, key).map(|e| V(e.value)))),
        Op::GetWithVersion(key) => {
            Reply::Versioned(Ok(read(m, key).map(|e| (V(e.value.clone()), e.version))))
        }
        Op::GetRecord(key) => Reply::Record(Ok(
            read(m, key).map(|e| (m.normal(key), V(e.value.clone()), e.meta()))
        )),
        Op::GetMetadata(key) => Reply::Meta(Ok(read(m, key).map(|e| e.meta()))),
        Op::Exists(key) => Reply::Exists(Ok(read(m, key).is_some())),
        Op::GetTtl(key) => {
            let entry = read(m, key);
            let clock = m.clock;
            Reply::Ttl(Ok(entry.map(|e| match e.expires_at {
                None => Ttl::Persistent,
                Some(at) => Ttl::Expires {
                    at: ts(at),
                    remaining_ms: at - clock,
                },
            })))
        }
        Op::CompareAndSwap(key, expected, new) => {
            Reply::Write(m.compare_and_swap(now, key, expected.fixed(), new))
        }
        Op::Increment(key, delta) => Reply::Counter(m.increment(now, key, *delta)),
        Op::Append(key, suffix) => Reply::Appended(m.append(now, key, suffix)),
        Op::MergePatch(key, patch) => Reply::Patched(m.merge_patch(now, key, patch)),
        Op::MultiGet(keys) => Reply::Values(check_batch(keys.len()).map(|()| {
            // Each key is read as by `get`; with no keys, no read takes `now` in.
            keys.iter()
                .map(|k| read(m, k).map(|e| V(e.value)))
                .collect()
        })),
        Op::MultiPut(items) => Reply::Write(m.multi_put(now, items)),
        Op::MultiDelete(keys) => Reply::Write(m.multi_delete(now, keys)),
        Op::Keys(pat) => {
            m.observe(now);
            Reply::Keys(Ok(m.matching(pat).iter().map(|(k, _)| join(k)).collect()))
        }
        Op::GetPattern(pat) => {
            m.observe(now);
            Reply::Pairs(Ok(m
                .matching(pat)
                .into_iter()
                .map(|(k, v)| (join(&k), V(v)))
                .collect()))
        }
        Op::DeletePattern(pat) => Reply::Write(Ok(m.delete_pattern(now, pat))),
        Op::Scan {
            prefix,
            limit,
            interleave,
        } => {
            let mut pages = Vec::new();
            let mut interleaved = None;
            let mut after: Option<String> = None;
            while pages.len() < MAX_PAGES {
                let (items, more) = m.scan_page(now, prefix, *limit, after.as_deref());
                let last = items.last().map(|(k, _)| split(k).1);
                pages.push(Ok((items, more)));
                if !more {
                    break;
                }
                after = last;
                if pages.len() == 1
                    && let Some((tick, write)) = interleave
                {
                    interleaved = Some(Box::new(apply_model(m, tick.apply(now), write)));
                }
            }
            Reply::Scan { pages, interleaved }
        }
        Op::SetTtl(key, ttl) => Reply::Write(m.set_ttl(now, key, *ttl)),
        Op::ExtendTtl(key, by) => Reply::Write(m.extend_ttl(now, key, *by)),
        Op::RemoveTtl(key) => Reply::Write(Ok(m.remove_ttl(now, key))),
        Op::SetMetadata(key, metadata) => Reply::Write(m.set_metadata(now, key, metadata)),
        Op::HandleTimeout => {
            m.observe(now);
            Reply::Swept(m.sweep())
        }
        Op::SnapshotRestore => Reply::Restored { same_bytes: true },
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: one engine, one model, compared after every step
// ---------------------------------------------------------------------------------------------

struct Harness {
    config: EngineConfig,
    engine: Engine,
    model: Model,
    /// The `now` of the last step (not the clock: it may run backwards).
    now: u64,
    /// Every log record the engine queued so far, encoded.
    log: Vec<Vec<u8>>,
    /// The events of the last step.
    events: Vec<ChangeEvent>,
    /// Every event so far: the history the engine keeps a window of.
    all_events: Vec<ChangeEvent>,
    /// The revision of the last snapshot restore, a floor no trimming chose.
    restored_at: u64,
    steps: usize,
}

impl Harness {
    fn new(setup: Setup) -> Harness {
        let config = setup.config();
        Harness {
            engine: Engine::new(config.clone()).unwrap(),
            config,
            model: Model::new(setup),
            now: START,
            log: Vec::new(),
            events: Vec::new(),
            all_events: Vec::new(),
            restored_at: 0,
            steps: 0,
        }
    }

    /// Applies one operation to both sides and checks everything observable.
    fn step(&mut self, tick: Tick, op: &Op) -> Result<Reply, TestCaseError> {
        self.now = tick.apply(self.now);
        self.steps += 1;
        let mut op = self.model.resolve(self.now, op);
        if self.model.setup.case_insensitive && self.steps.is_multiple_of(2) {
            op.map_keys(&str::to_uppercase);
        }
        let expected = apply_model(&mut self.model, self.now, &op);
        let actual = apply_engine(&mut self.engine, &self.config, self.now, &op);
        prop_assert_eq!(&actual, &expected, "reply to {:?} at now {}", op, self.now);
        if matches!(op, Op::SnapshotRestore) {
            // A restored engine knows no events: its history starts at the snapshot.
            self.restored_at = self.engine.revision();
        }
        self.check_queues(&op)?;
        self.check_state()?;
        self.check_reads()?;
        self.check_history()?;
        Ok(actual)
    }

    /// The events and log records of the step are exactly the model's.
    fn check_queues(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.events = std::iter::from_fn(|| self.engine.poll_event()).collect();
        let expected = std::mem::take(&mut self.model.events);
        prop_assert_eq!(&self.events, &expected, "events of {:?}", op);
        self.all_events.extend(expected);
        let records: Vec<LogRecord> = std::iter::from_fn(|| self.engine.poll_log()).collect();
        let expected = std::mem::take(&mut self.model.log);
        let views: Vec<RecordView> = records.iter().map(RecordView::of).collect();
        prop_assert_eq!(&views, &expected, "log records of {:?}", op);
        for record in &records {
            let bytes = record.encode().unwrap();
            prop_assert_eq!(&LogRecord::decode(&bytes).unwrap(), record);
            self.log.push(bytes);
        }
        Ok(())
    }

    fn check_state(&self) -> Result<(), TestCaseError> {
        let (engine, model) = (&self.engine, &self.model);
        prop_assert_eq!(engine.revision(), model.revision);
        prop_assert_eq!(engine.clock(), ts(model.clock));
        prop_assert_eq!(engine.len(), model.entries.len());
        prop_assert_eq!(engine.is_empty(), model.entries.is_empty());
        let mut namespaces: Vec<&str> = model.entries.keys().map(|(ns, _)| ns.as_str()).collect();
        namespaces.dedup();
        prop_assert_eq!(engine.namespaces().collect::<Vec<_>>(), namespaces);
        let deadline = model.entries.values().filter_map(|e| e.expires_at).min();
        prop_assert_eq!(engine.poll_timeout(), deadline.map(ts));
        Ok(())
    }

    /// Reads at the engine's own clock (so they move nothing): every live key is listed with its
    /// value and metadata, and every expired key is invisible to every read.
    fn check_reads(&self) -> Result<(), TestCaseError> {
        let (engine, model) = (&self.engine, &self.model);
        let now = ts(model.clock);
        let live: Vec<(String, V)> = model
            .live_entries()
            .map(|(k, e)| (join(k), V(e.value.clone())))
            .collect();
        prop_assert_eq!(
            pairs(engine.get_pattern(now, "*:**").unwrap()),
            live.clone()
        );
        for ns in ["default", "ns", "ns2"] {
            let page = engine.scan(now, &format!("{ns}:"), 1000, None).unwrap();
            let expected: Vec<_> = live
                .iter()
                .filter(|(k, _)| split(k).0 == ns)
                .cloned()
                .collect();
            prop_assert_eq!(pairs(page.items), expected);
            prop_assert!(page.next.is_none());
        }
        for (k, entry) in &model.entries {
            let key = join(k);
            if model.is_live(entry) {
                prop_assert_eq!(
                    engine
                        .get_metadata(now, &key)
                        .unwrap()
                        .as_ref()
                        .map(SysMeta::of),
                    Some(entry.meta())
                );
            } else {
                check_invisible(engine, now, &key)?;
            }
        }
        prop_assert_eq!(engine.clock(), now);
        Ok(())
    }
}

impl Harness {
    /// The kept history is the newest window of every event, no larger than the bound and
    /// trimmed by whole revisions only as far as needed (to the limit); reads at earlier revisions and key
    /// histories agree with the full event list.
    fn check_history(&self) -> Result<(), TestCaseError> {
        let engine = &self.engine;
        let (floor, revision) = (engine.history_floor(), engine.revision());
        let limit = self.config.history_limit;
        prop_assert!(floor <= revision);
        let kept: Vec<ChangeEvent> = self
            .all_events
            .iter()
            .filter(|e| e.revision > floor)
            .cloned()
            .collect();
        prop_assert_eq!(&engine.changes_since(floor, usize::MAX).unwrap(), &kept);
        prop_assert!(
            kept.len() <= self.config.history_bound(),
            "{} changes kept, limit {}",
            kept.len(),
            limit
        );
        // Trimming stops as soon as the window fits: the dropped revision nearest the floor
        // would not have fit.
        let dropped = self.all_events.iter().rev().find(|e| e.revision <= floor);
        if let Some(last_dropped) = dropped.filter(|e| e.revision > self.restored_at) {
            let group = self
                .all_events
                .iter()
                .filter(|e| e.revision == last_dropped.revision)
                .count();
            prop_assert!(kept.len() + group > limit, "trimmed more than needed");
        }
        if floor > 0 {
            let compacted = matches!(
                engine.changes_since(floor - 1, 10),
                Err(EngineError::Compacted { .. })
            );
            prop_assert!(compacted, "replay from below the floor");
            let compacted = matches!(
                engine.get_at(ts(self.model.clock), "ns:a", floor - 1),
                Err(EngineError::Compacted { .. })
            );
            prop_assert!(compacted, "read below the floor");
        }
        let future = matches!(
            engine.changes_since(revision + 1, 10),
            Err(EngineError::FutureRevision { .. })
        );
        prop_assert!(future, "replay from the future");
        let mut keys: Vec<&str> = self.all_events.iter().map(|e| e.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let now = ts(self.model.clock);
        for key in keys {
            for at in floor..revision {
                let expected = self
                    .all_events
                    .iter()
                    .rev()
                    .find(|e| e.key == key && e.revision <= at)
                    .and_then(|e| e.new.as_ref().map(|v| (V(v.decode().unwrap()), e.version)));
                let actual = engine
                    .get_at(now, key, at)
                    .unwrap()
                    .map(|v| (V(v.value), v.version));
                prop_assert_eq!(actual, expected, "{} at revision {}", key, at);
            }
            let history: Vec<(u64, u64)> = engine
                .key_history(key)
                .unwrap()
                .iter()
                .map(|v| (v.revision, v.version))
                .collect();
            let expected: Vec<(u64, u64)> = kept
                .iter()
                .filter(|e| e.key == key)
                .map(|e| (e.revision, e.version))
                .collect();
            prop_assert_eq!(history, expected);
            prop_assert_eq!(
                engine
                    .get_at(now, key, revision)
                    .unwrap()
                    .map(|v| V(v.value)),
                engine.get(now, key).unwrap().map(V)
            );
        }
        Ok(())
    }
}

/// No read returns `key`.
fn check_invisible(engine: &Engine, now: Timestamp, key: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(engine.get(now, key).unwrap(), None, "get {}", key);
    prop_assert_eq!(
        engine.get_with_version(now, key).unwrap(),
        None,
        "get_with_version {}",
        key
    );
    prop_assert!(
        engine.get_record(now, key).unwrap().is_none(),
        "get_record {}",
        key
    );
    prop_assert!(
        engine.get_metadata(now, key).unwrap().is_none(),
        "get_metadata {}",
        key
    );
    prop_assert!(!engine.exists(now, key).unwrap(), "exists {}", key);
    prop_assert_eq!(engine.get_ttl(now, key).unwrap(), None, "get_ttl {}", key);
    prop_assert_eq!(
        engine.multi_get(now, &[key]).unwrap(),
        vec![None],
        "multi_get {}",
        key
    );
    prop_assert_eq!(
        engine.keys(now, key).unwrap(),
        Vec::<String>::new(),
        "keys {}",
        key
    );
    prop_assert_eq!(
        engine.get_pattern(now, key).unwrap(),
        vec![],
        "get_pattern {}",
        key
    );
    let page = engine.scan(now, key, 1, None).unwrap();
    prop_assert!(page.items.iter().all(|(k, _)| k != key), "scan {}", key);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// The follower's snapshot after taking in `clock`, which the log cannot carry: reads, no-op
/// writes and refused writes move the clock without a record.
fn snapshot_at(engine: &Engine, clock: Timestamp) -> Result<Vec<u8>, TestCaseError> {
    prop_assert!(
        engine.clock() <= clock,
        "replay ran the clock ahead: {} > {}",
        engine.clock(),
        clock
    );
    // Pattern reads always take their `now` in (point reads only for keys with a TTL).
    engine.keys(clock, "ns:a").unwrap();
    Ok(engine.snapshot().unwrap())
}

proptest! {
    #![proptest_config(cases(256))]

    /// Every reply, event, log record and read agrees with the model.
    #[test]
    fn engine_agrees_with_model(setup in setup(), steps in steps(100)) {
        let mut h = Harness::new(setup);
        for (tick, op) in &steps {
            h.step(*tick, op)?;
        }
    }
}

proptest! {
    #![proptest_config(cases(200))]

    /// A key is visible until the millisecond before its deadline and invisible from the deadline
    /// on, to every read, whatever `now` later calls pass, before and after the sweep; the sweep
    /// emits one expiry event per key, carrying the old value.
    #[test]
    fn expired_keys_are_invisible(
        keys in vec(key(), 1..5),
        ttl in 1..200u64,
        start in 0..1_000u64,
        back in 0..500u64,
        late in 0..50u64,
    ) {
        let keys: Vec<String> = keys.iter().map(|k| join(&split(k))).collect();
        let mut engine = new_engine();
        let t0 = START + start;
        // Sweeps go in deadline, then namespace, then path order.
        let mut distinct = keys.clone();
        distinct.sort_by_key(|k| split(k));
        distinct.dedup();
        for (i, key) in keys.iter().enumerate() {
            engine.put_with_ttl(ts(t0), key, &Value::Integer(i as i64), ttl).unwrap();
        }
        let deadline = t0 + ttl;
        while engine.poll_event().is_some() {}
        for key in &distinct {
            let expected = keys.iter().rposition(|k| k == key).unwrap() as i64;
            let value = engine.get(ts(deadline - 1), key).unwrap();
            prop_assert_eq!(value, Some(Value::Integer(expected)));
            prop_assert_eq!(
                engine.get_ttl(ts(deadline - 1), key).unwrap(),
                Some(Ttl::Expires { at: ts(deadline), remaining_ms: 1 })
            );
        }
        let revision = engine.revision();
        let after = deadline + late;
        for key in &distinct {
            check_invisible(&engine, ts(after), key)?;
            // Time never runs back: an earlier `now` does not bring the key back.
            check_invisible(&engine, ts(after.saturating_sub(back)), key)?;
        }
        prop_assert!(engine.get_pattern(ts(t0), "*:**").unwrap().is_empty());
        prop_assert_eq!(engine.revision(), revision, "reads never sweep");
        prop_assert_eq!(engine.poll_timeout(), Some(ts(deadline)));
        // The engine's clock is past the deadline, so even an early `now` sweeps.
        prop_assert_eq!(engine.handle_timeout(ts(t0)), distinct.len() as u64);
        prop_assert_eq!(engine.revision(), revision + 1);
        prop_assert_eq!(engine.poll_timeout(), None);
        prop_assert_eq!(engine.len(), 0);
        let events: Vec<ChangeEvent> = std::iter::from_fn(|| engine.poll_event()).collect();
        prop_assert_eq!(events.len(), distinct.len());
        for (event, key) in events.iter().zip(&distinct) {
            let expected = keys.iter().rposition(|k| k == key).unwrap() as i64;
            prop_assert_eq!(event.kind, ChangeKind::Expire);
            prop_assert_eq!(&event.key, key);
            prop_assert_eq!(event.revision, revision + 1);
            prop_assert_eq!(event.at, ts(after));
            prop_assert_eq!(event.version, 0);
            let old = event.old.as_ref().map(|v| v.decode().unwrap());
            prop_assert_eq!(old, Some(Value::Integer(expected)));
            prop_assert_eq!(&event.new, &None);
            check_invisible(&engine, ts(after), key)?;
        }
        prop_assert_eq!(engine.handle_timeout(ts(after + 1_000)), 0);
        prop_assert_eq!(engine.revision(), revision + 1);
    }
}

proptest! {
    #![proptest_config(cases(96))]

    /// A follower replaying the log after every step, a fresh engine replaying the whole log, and
    /// every mid-run snapshot plus the rest of the log all hold the leader's state.
    #[test]
    fn log_replay_rebuilds_the_same_state(
        setup in setup(),
        steps in steps(60),
        every in 1..12usize,
    ) {
        let mut h = Harness::new(setup);
        let config = setup.config();
        let mut follower = Engine::new(config.clone()).unwrap();
        let mut replayed = 0;
        let mut checkpoints = vec![(h.engine.snapshot().unwrap(), 0)];
        for (i, (tick, op)) in steps.iter().enumerate() {
            h.step(*tick, op)?;
            for bytes in &h.log[replayed..] {
                prop_assert!(follower.replay_bytes(bytes).unwrap());
            }
            replayed = h.log.len();
            prop_assert_eq!(follower.revision(), h.engine.revision());
            let leader = h.engine.snapshot().unwrap();
            prop_assert_eq!(snapshot_at(&follower, h.engine.clock())?, leader);
            prop_assert!(follower.poll_event().is_none(), "replay emits no events");
            // ... but rebuilds the change history the writes built (above both floors: a
            // snapshot restore in the leader starts its history afresh).
            let floor = follower.history_floor().max(h.engine.history_floor());
            prop_assert_eq!(
                follower.changes_since(floor, usize::MAX).unwrap(),
                h.engine.changes_since(floor, usize::MAX).unwrap(),
                "replayed history"
            );
            prop_assert!(follower.poll_log().is_none(), "replay queues no log records");
            if i % every == 0 {
                checkpoints.push((h.engine.snapshot().unwrap(), h.log.len()));
            }
        }
        let clock = h.engine.clock();
        let last = h.engine.snapshot().unwrap();
        // Sized as a host sizes a recovery (peeked op counts, then shrunk): hints change nothing.
        let ops = |log: &[Vec<u8>]| -> Option<usize> {
            log.iter().map(|b| LogRecord::peek_op_count(b)).sum()
        };
        let mut fresh = Engine::new(config.clone()).unwrap();
        let peeked = ops(&h.log);
        let decoded: usize = h.log.iter().map(|b| LogRecord::decode(b).unwrap().ops.len()).sum();
        prop_assert_eq!(peeked, Some(decoded), "peeked op counts");
        fresh.reserve(None, decoded);
        for bytes in &h.log {
            prop_assert!(fresh.replay_bytes(bytes).unwrap());
        }
        fresh.shrink_to_fit();
        prop_assert_eq!(snapshot_at(&fresh, clock)?, last.clone());
        for (snapshot, position) in &checkpoints {
            let mut restored = Engine::restore(config.clone(), snapshot).unwrap();
            restored.reserve(None, ops(&h.log[*position..]).unwrap_or(0));
            for bytes in &h.log[*position..] {
                prop_assert!(restored.replay_bytes(bytes).unwrap());
            }
            restored.shrink_to_fit();
            prop_assert_eq!(snapshot_at(&restored, clock)?, last.clone());
            // Replaying the whole log on a snapshot skips the records it already holds.
            let mut restored = Engine::restore(config.clone(), snapshot).unwrap();
            for (i, bytes) in h.log.iter().enumerate() {
                prop_assert_eq!(restored.replay_bytes(bytes).unwrap(), i >= *position);
            }
            prop_assert_eq!(snapshot_at(&restored, clock)?, last.clone());
        }
    }
}

proptest! {
    #![proptest_config(cases(48))]

    /// Two engines fed the same operations give the same replies, events, log bytes and snapshot
    /// bytes.
    #[test]
    fn same_operations_same_outputs(setup in setup(), steps in steps(60)) {
        let mut a = Harness::new(setup);
        let mut b = Harness::new(setup);
        for (tick, op) in &steps {
            let reply_a = a.step(*tick, op)?;
            let reply_b = b.step(*tick, op)?;
            prop_assert_eq!(format!("{reply_a:?}"), format!("{reply_b:?}"));
            prop_assert_eq!(&a.events, &b.events);
            prop_assert_eq!(&a.log, &b.log);
            prop_assert_eq!(a.engine.snapshot().unwrap(), b.engine.snapshot().unwrap());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Targeted cases
// ---------------------------------------------------------------------------------------------

fn drain(engine: &mut Engine) -> (Vec<ChangeEvent>, Vec<LogRecord>) {
    let events = std::iter::from_fn(|| engine.poll_event()).collect();
    let log = std::iter::from_fn(|| engine.poll_log()).collect();
    (events, log)
}

type Call = Box<dyn Fn(&mut Engine, Timestamp) -> Result<(), EngineError>>;

fn call<T>(f: impl Fn(&mut Engine, Timestamp) -> Result<T, EngineError> + 'static) -> Call {
    Box::new(move |engine, now| f(engine, now).map(drop))
}

/// Calls refused for their arguments alone, each with the error it must give.
fn refused_calls() -> Vec<(&'static str, EngineError, Call)> {
    use EngineError as E;
    let v = || Value::from("v");
    let big = || Value::String("x".repeat(MAX_VALUE));
    let too_large = || {
        E::Value(ValueError::TooLarge {
            size: MAX_VALUE + 2,
            limit: MAX_VALUE,
        })
    };
    let big_meta = || match json!({"big": "x".repeat(MAX_META)}) {
        Json::Object(map) => map,
        _ => unreachable!("an object"),
    };
    let meta_too_large = || E::MetadataTooLarge {
        size: MAX_META + 10,
        limit: MAX_META,
    };
    let too_many = || E::BatchTooLarge {
        count: MAX_BATCH + 1,
        limit: MAX_BATCH,
    };
    let many = || {
        (0..=MAX_BATCH)
            .map(|i| format!("ns:k{i}"))
            .collect::<Vec<_>>()
    };
    let bad_ns = || {
        E::Key(KeyError::InvalidNamespace {
            namespace: "b d".into(),
        })
    };
    vec![
        (
            "put, bad namespace",
            bad_ns(),
            call(move |e, t| e.put(t, "b d:a", &v())),
        ),
        (
            "put, empty path",
            E::Key(KeyError::EmptyPath),
            call(move |e, t| e.put(t, "ns:", &v())),
        ),
        (
            "put, value too large",
            too_large(),
            call(move |e, t| e.put(t, "ns:a", &big())),
        ),
        (
            "put_with_ttl 0",
            E::InvalidTtl,
            call(move |e, t| e.put_with_ttl(t, "ns:a", &v(), 0)),
        ),
        (
            "put_with, metadata too large",
            meta_too_large(),
            call(move |e, t| {
                e.put_with(t, "ns:a", &v(), &PutOptions::default().metadata(big_meta()))
            }),
        ),
        (
            "put_if_version, bad key",
            E::Key(KeyError::EmptySegment { index: 1 }),
            call(move |e, t| e.put_if_version(t, "ns:a..b", &v(), 1)),
        ),
        (
            "delete, bad key",
            E::Key(KeyError::InvalidChar { ch: '*', offset: 0 }),
            call(|e, t| e.delete(t, "ns:*")),
        ),
        (
            "compare_and_swap, expected too large",
            too_large(),
            call(move |e, t| e.compare_and_swap(t, "ns:a", Some(&big()), &v())),
        ),
        (
            "compare_and_swap, new too large",
            too_large(),
            call(move |e, t| e.compare_and_swap(t, "ns:a", None, &big())),
        ),
        (
            "increment, bad key",
            E::Key(KeyError::EmptySegment { index: 1 }),
            call(|e, t| e.increment(t, "ns:a.", 1)),
        ),
        (
            "append, integer suffix",
            E::WrongType {
                key: "ns:a".into(),
                expected: "a string or bytes suffix",
                actual: "integer",
            },
            call(|e, t| e.append(t, "ns:a", &Value::Integer(1))),
        ),
        (
            "append, bad key",
            E::Key(KeyError::InvalidChar { ch: '[', offset: 0 }),
            call(|e, t| e.append(t, "ns:[", &Value::from("x"))),
        ),
        (
            "multi_put, too many",
            too_many(),
            call(move |e, t| {
                e.multi_put(t, &many().into_iter().map(|k| (k, v())).collect::<Vec<_>>())
            }),
        ),
        (
            "multi_put, one value too large",
            too_large(),
            call(move |e, t| e.multi_put(t, &[("ns:x", v()), ("ns:y", big())])),
        ),
        (
            "multi_put, one bad key",
            E::Key(KeyError::EmptyPath),
            call(move |e, t| e.multi_put(t, &[("ns:x", v()), ("ns:", v())])),
        ),
        (
            "multi_delete, too many",
            too_many(),
            call(move |e, t| e.multi_delete(t, &many())),
        ),
        (
            "multi_delete, one bad key",
            E::Key(KeyError::InvalidChar { ch: '?', offset: 0 }),
            call(|e, t| e.multi_delete(t, &["ns:a", "ns:?"])),
        ),
        (
            "multi_get, too many",
            too_many(),
            call(move |e, t| e.multi_get(t, &many())),
        ),
        (
            "get, bad namespace",
            bad_ns(),
            call(|e, t| e.get(t, "b d:a")),
        ),
        (
            "set_ttl 0",
            E::InvalidTtl,
            call(|e, t| e.set_ttl(t, "ns:a", 0)),
        ),
        (
            "extend_ttl 0",
            E::InvalidTtl,
            call(|e, t| e.extend_ttl(t, "ns:a", 0)),
        ),
        (
            "remove_ttl, empty path",
            E::Key(KeyError::EmptyPath),
            call(|e, t| e.remove_ttl(t, "ns:")),
        ),
        (
            "set_metadata, too large",
            meta_too_large(),
            call(move |e, t| e.set_metadata(t, "ns:a", &big_meta())),
        ),
        (
            "keys, unclosed class",
            E::Pattern(PatternError::UnclosedClass { offset: 2 }),
            call(|e, t| e.keys(t, "ns:a.[")),
        ),
        (
            "get_pattern, unclosed brace",
            E::Pattern(PatternError::UnclosedBrace { offset: 0 }),
            call(|e, t| e.get_pattern(t, "ns:{a")),
        ),
        (
            "keys, bad namespace",
            bad_ns(),
            call(|e, t| e.keys(t, "b d:*")),
        ),
        (
            "delete_pattern, unclosed class",
            E::Pattern(PatternError::UnclosedClass { offset: 2 }),
            call(|e, t| e.delete_pattern(t, "ns:a.[")),
        ),
        (
            "delete_pattern, empty pattern",
            E::Pattern(PatternError::Empty),
            call(|e, t| e.delete_pattern(t, "ns:")),
        ),
        (
            "delete_pattern, bad namespace",
            bad_ns(),
            call(|e, t| e.delete_pattern(t, "b d:*")),
        ),
        (
            "scan, limit 0",
            E::InvalidLimit,
            call(|e, t| e.scan(t, "ns:", 0, None)),
        ),
        (
            "scan, glob in prefix",
            E::Key(KeyError::InvalidChar { ch: '*', offset: 1 }),
            call(|e, t| e.scan(t, "ns:a*", 1, None)),
        ),
        (
            "scan, cursor of another prefix",
            E::InvalidCursor("cursor does not belong to this prefix"),
            call(|e, t| {
                let after_a = Cursor::decode("c161")?; // the cursor after path "a"
                e.scan(t, "ns:b", 1, Some(&after_a))
            }),
        ),
    ]
}

/// "Nothing was changed when an operation returns an error": a call refused for its arguments
/// alone gives the right error and leaves the keyspace, the revision, the clock and the queues
/// as they were. In particular it does not sweep `ns:due`, which is due when the call is made.
#[test]
fn refused_arguments_change_nothing() {
    let mut failures = Vec::new();
    for (name, expected, refused) in refused_calls() {
        let mut engine = new_engine();
        engine.put(ts(START), "ns:a", &Value::from("v")).unwrap();
        engine.put(ts(START), "ns:b", &Value::from("w")).unwrap();
        engine
            .put_with_ttl(ts(START), "ns:due", &Value::from("v"), 10)
            .unwrap();
        drain(&mut engine);
        let before = engine.snapshot().unwrap();
        let result = refused(&mut engine, ts(START + 1_000));
        let (events, log) = drain(&mut engine);
        if result.as_ref().err() != Some(&expected) {
            failures.push(format!("{name}: {result:?}, expected {expected:?}"));
        } else if engine.snapshot().unwrap() != before || !events.is_empty() || !log.is_empty() {
            failures.push(format!(
                "{name}: refused, yet revision -> {}, clock -> {}, {} events, {} log records",
                engine.revision(),
                engine.clock(),
                events.len(),
                log.len(),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "refused calls that misbehaved:\n{}",
        failures.join("\n")
    );
}

/// Minimal reproduction: `delete_pattern` runs the write's sweep before it compiles its pattern,
/// so a refused pattern still commits a revision (the due key expires, with an event and a log
/// record) and moves the clock. Every other write checks its arguments first.
#[test]
fn delete_pattern_with_a_bad_pattern_changes_nothing() {
    let mut engine = new_engine();
    engine
        .put_with_ttl(ts(1_000), "ns:due", &Value::from("v"), 10)
        .unwrap();
    drain(&mut engine);
    let result = engine.delete_pattern(ts(2_000), "ns:a.[");
    assert_eq!(
        result,
        Err(EngineError::Pattern(PatternError::UnclosedClass {
            offset: 2
        }))
    );
    assert_eq!(
        engine.revision(),
        1,
        "the refused call committed a revision"
    );
    assert_eq!(
        engine.clock(),
        ts(1_000),
        "the refused call moved the clock"
    );
    assert_eq!(
        drain(&mut engine),
        (vec![], vec![]),
        "the refused call queued events / log records"
    );
}

/// A key named twice in one `multi_put`: the later value wins, each occurrence is a new version
/// with its own event and log op, and everything shares the batch's single revision. The TTL
/// the key had is cleared, and its user metadata kept.
#[test]
fn multi_put_with_a_repeated_key() {
    let mut engine = new_engine();
    let meta = match json!({"owner": "ann"}) {
        Json::Object(map) => map,
        _ => unreachable!("an object"),
    };
    let opts = PutOptions::default().ttl_ms(5_000).metadata(meta.clone());
    engine
        .put_with(ts(1_000), "ns:a", &Value::from("old"), &opts)
        .unwrap();
    drain(&mut engine);
    let items = [
        ("ns:a", Value::from("x")),
        ("ns:b", Value::from("y")),
        ("ns:a", Value::from("z")),
    ];
    let result = engine.multi_put(ts(1_010), &items).unwrap();
    assert_eq!(
        (result.op, result.version, result.revision),
        (WriteOp::Batch, 0, 2)
    );
    let record = engine.get_record(ts(1_010), "ns:a").unwrap().unwrap();
    assert_eq!(record.value, Value::from("z"));
    assert_eq!(
        (
            record.meta.version,
            record.meta.mod_revision,
            record.meta.create_revision
        ),
        (3, 2, 1)
    );
    assert_eq!(record.meta.expires_at, None);
    assert_eq!(record.meta.user, meta);
    let (events, log) = drain(&mut engine);
    let seen: Vec<_> = events
        .iter()
        .map(|e| (e.key.as_str(), e.kind, e.version, e.revision))
        .collect();
    assert_eq!(
        seen,
        [
            ("ns:a", ChangeKind::Update, 2, 2),
            ("ns:b", ChangeKind::Create, 1, 2),
            ("ns:a", ChangeKind::Update, 3, 2),
        ]
    );
    assert_eq!(
        events[2].old.as_ref().map(|v| v.decode().unwrap()),
        Some(Value::from("x"))
    );
    assert_eq!(log.len(), 1);
    assert_eq!((log[0].revision, log[0].ops.len()), (2, 3));
}
