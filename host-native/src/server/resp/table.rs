//! The command table: names, arities (Redis's convention: `n` exactly n arguments counting the
//! name, `-n` at least n), and what each command needs to run.

use std::ops::Range;

/// The parsed part of a read buffer, with its longest prefix that is UTF-8 checked once per
/// batch. Keys are text: checking each key on its own cost a pipelined SET about 130
/// instructions, because the standard validator reaches its word-at-a-time loop only on
/// inputs longer than a key; one pass over a whole pipeline costs a few per request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Input<'a> {
    bytes: &'a [u8],
    text: &'a str,
}

impl<'a> Input<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text,
            // A binary value somewhere: the text before it still takes the fast path.
            Err(e) => bytes
                .get(..e.valid_up_to())
                .and_then(|valid| std::str::from_utf8(valid).ok())
                .unwrap_or_default(),
        };
        Input { bytes, text }
    }

    /// Request arguments at `ranges` of this input.
    pub(super) fn args(self, ranges: &'a [Range<usize>]) -> Args<'a> {
        Args {
            buf: self.bytes,
            text: self.text,
            ranges,
        }
    }
}

/// A request's arguments: ranges into a buffer (the read buffer, or a queued copy in MULTI).
#[derive(Debug, Clone, Copy)]
pub(super) struct Args<'a> {
    buf: &'a [u8],
    /// A prefix of `buf` known to be UTF-8 (possibly empty).
    text: &'a str,
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    /// Arguments in a buffer not checked for UTF-8: each key is checked when it is read.
    pub(super) fn new(buf: &'a [u8], ranges: &'a [Range<usize>]) -> Self {
        Args {
            buf,
            text: "",
            ranges,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Argument `i` (0 is the command name); empty when out of range (callers check arity
    /// first, so that never reaches a reply).
    pub(super) fn get(&self, i: usize) -> &'a [u8] {
        self.ranges
            .get(i)
            .and_then(|r| self.buf.get(r.clone()))
            .unwrap_or_default()
    }

    /// Argument `i` as a key: the store's keys are UTF-8 text. Keys are `namespace:path`; see
    /// docs/resp.md.
    pub(super) fn key(&self, i: usize) -> Result<&'a str, &'static str> {
        let range = self.ranges.get(i).cloned().unwrap_or_default();
        // Argument boundaries are ASCII bytes (CRLF, blanks, quotes), so inside the checked
        // prefix they are always char boundaries; outside it the argument is checked alone.
        match self.text.get(range) {
            Some(text) => Ok(text),
            None => key_text(self.get(i)),
        }
    }

    /// Arguments from `i` on, as keys.
    pub(super) fn keys(&self, i: usize) -> impl Iterator<Item = Result<&'a str, &'static str>> {
        let args = *self;
        (i..self.len()).map(move |i| args.key(i))
    }

    /// Arguments from `i` on.
    pub(super) fn from(&self, i: usize) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let buf = self.buf;
        self.ranges
            .get(i..)
            .unwrap_or_default()
            .iter()
            .map(move |r| buf.get(r.clone()).unwrap_or_default())
    }

    /// True when argument `i` equals `word`, ignoring ASCII case (options such as `EX`).
    pub(super) fn is(&self, i: usize, word: &str) -> bool {
        self.get(i).eq_ignore_ascii_case(word.as_bytes())
    }
}

/// `arg` as the store's key text.
pub(super) fn key_text(arg: &[u8]) -> Result<&str, &'static str> {
    std::str::from_utf8(arg).map_err(|_| "ERR invalid key: statemesh keys are UTF-8 text")
}

/// Where a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Reads the keyspace (shared lock; in CP mode waits until what it reads is durable).
    Read,
    /// Changes the keyspace (exclusive lock; in CP mode acknowledged once durable).
    Write,
    /// Connection and server commands that touch no key.
    Server,
    /// Changes the connection's state (MULTI, WATCH, SUBSCRIBE, AUTH, QUIT...): never queued.
    Connection,
}

macro_rules! commands {
    ($($variant:ident $name:literal $arity:literal $kind:ident [$($flag:literal),*] $first:literal $last:literal $step:literal;)*) => {
        /// Every command this port knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum Cmd { $($variant),* }

        impl Cmd {
            pub(super) const ALL: &'static [Cmd] = &[$(Cmd::$variant),*];

            /// Looks a command up by its name, any case.
            pub(super) fn lookup(name: &[u8]) -> Option<Cmd> {
                let mut lower = [0u8; 16];
                let lower = lower.get_mut(..name.len())?;
                for (d, s) in lower.iter_mut().zip(name) {
                    *d = s.to_ascii_lowercase();
                }
                match &*lower {
                    $($name => Some(Cmd::$variant),)*
                    _ => None,
                }
            }

            /// The lower-case name, as Redis writes it in errors.
            pub(super) fn name(self) -> &'static str {
                match self { $(Cmd::$variant => {
                    // The literal is a byte string of ASCII letters.
                    std::str::from_utf8($name).unwrap_or("?")
                }),* }
            }

            // Arrays indexed by the variant rather than matches: both run on every request, and
            // with ten more commands the two matches cost `Conn::plain` 22 more instructions
            // per pipelined SET (callgrind), the arrays none.
            pub(super) fn arity(self) -> i64 {
                const ARITIES: &[i64] = &[$($arity),*];
                ARITIES.get(self as usize).copied().unwrap_or(0)
            }

            pub(super) fn kind(self) -> Kind {
                const KINDS: &[Kind] = &[$(Kind::$kind),*];
                KINDS.get(self as usize).copied().unwrap_or(Kind::Server)
            }

            /// COMMAND's flags and key positions (first, last, step).
            pub(super) fn info(self) -> (&'static [&'static str], i64, i64, i64) {
                match self { $(Cmd::$variant => (&[$($flag),*], $first, $last, $step)),* }
            }
        }
    };
}

commands! {
    Get b"get" 2 Read ["readonly", "fast"] 1 1 1;
    Set b"set" -3 Write ["write", "denyoom"] 1 1 1;
    GetDel b"getdel" 2 Write ["write", "fast"] 1 1 1;
    Del b"del" -2 Write ["write"] 1 -1 1;
    Exists b"exists" -2 Read ["readonly", "fast"] 1 -1 1;
    Expire b"expire" -3 Write ["write", "fast"] 1 1 1;
    PExpire b"pexpire" -3 Write ["write", "fast"] 1 1 1;
    Ttl b"ttl" 2 Read ["readonly", "fast"] 1 1 1;
    PTtl b"pttl" 2 Read ["readonly", "fast"] 1 1 1;
    Persist b"persist" 2 Write ["write", "fast"] 1 1 1;
    Incr b"incr" 2 Write ["write", "denyoom", "fast"] 1 1 1;
    IncrBy b"incrby" 3 Write ["write", "denyoom", "fast"] 1 1 1;
    Decr b"decr" 2 Write ["write", "denyoom", "fast"] 1 1 1;
    DecrBy b"decrby" 3 Write ["write", "denyoom", "fast"] 1 1 1;
    Append b"append" 3 Write ["write", "denyoom", "fast"] 1 1 1;
    Strlen b"strlen" 2 Read ["readonly", "fast"] 1 1 1;
    Type b"type" 2 Read ["readonly", "fast"] 1 1 1;
    MGet b"mget" -2 Read ["readonly", "fast"] 1 -1 1;
    MSet b"mset" -3 Write ["write", "denyoom"] 1 -1 2;
    SetEx b"setex" 4 Write ["write", "denyoom"] 1 1 1;
    PSetEx b"psetex" 4 Write ["write", "denyoom"] 1 1 1;
    SetNx b"setnx" 3 Write ["write", "denyoom", "fast"] 1 1 1;
    GetSet b"getset" 3 Write ["write", "denyoom", "fast"] 1 1 1;
    GetEx b"getex" -2 Write ["write", "fast"] 1 1 1;
    MSetNx b"msetnx" -3 Write ["write", "denyoom"] 1 -1 2;
    Unlink b"unlink" -2 Write ["write", "fast"] 1 -1 1;
    Touch b"touch" -2 Read ["readonly", "fast"] 1 -1 1;
    ExpireTime b"expiretime" 2 Read ["readonly", "fast"] 1 1 1;
    PExpireTime b"pexpiretime" 2 Read ["readonly", "fast"] 1 1 1;
    Keys b"keys" 2 Read ["readonly"] 0 0 0;
    Scan b"scan" -2 Read ["readonly"] 0 0 0;
    DbSize b"dbsize" 1 Read ["readonly", "fast"] 0 0 0;
    FlushDb b"flushdb" -1 Write ["write"] 0 0 0;
    FlushAll b"flushall" -1 Write ["write"] 0 0 0;
    Info b"info" -1 Server ["loading", "stale"] 0 0 0;
    Watch b"watch" -2 Connection ["noscript", "loading", "stale", "fast"] 1 -1 1;
    Unwatch b"unwatch" 1 Connection ["noscript", "loading", "stale", "fast"] 0 0 0;
    Multi b"multi" 1 Connection ["noscript", "loading", "stale", "fast"] 0 0 0;
    Exec b"exec" 1 Connection ["noscript", "loading", "stale"] 0 0 0;
    Discard b"discard" 1 Connection ["noscript", "loading", "stale", "fast"] 0 0 0;
    Subscribe b"subscribe" -2 Connection ["pubsub", "noscript", "loading", "stale"] 0 0 0;
    PSubscribe b"psubscribe" -2 Connection ["pubsub", "noscript", "loading", "stale"] 0 0 0;
    Unsubscribe b"unsubscribe" -1 Connection ["pubsub", "noscript", "loading", "stale"] 0 0 0;
    PUnsubscribe b"punsubscribe" -1 Connection ["pubsub", "noscript", "loading", "stale"] 0 0 0;
    Publish b"publish" 3 Server ["pubsub", "loading", "stale", "fast"] 0 0 0;
    Select b"select" 2 Server ["loading", "stale", "fast"] 0 0 0;
    Client b"client" -2 Server ["noscript", "loading", "stale"] 0 0 0;
    Command b"command" -1 Server ["loading", "stale"] 0 0 0;
    Config b"config" -2 Server ["admin", "noscript", "loading", "stale"] 0 0 0;
    Ping b"ping" -1 Server ["fast"] 0 0 0;
    Echo b"echo" 2 Server ["fast"] 0 0 0;
    Auth b"auth" -2 Connection ["noscript", "loading", "stale", "fast"] 0 0 0;
    Quit b"quit" -1 Connection ["noscript", "loading", "stale", "fast"] 0 0 0;
    Reset b"reset" 1 Connection ["noscript", "loading", "stale", "fast"] 0 0 0;
    Hello b"hello" -1 Connection ["noscript", "loading", "stale", "fast"] 0 0 0;
}

impl Cmd {
    /// Whether `argc` arguments (name included) fit this command's arity.
    pub(super) fn arity_ok(self, argc: usize) -> bool {
        fits_arity(self.arity(), argc)
    }
}

/// Whether `argc` arguments (name included) fit a Redis arity: exactly that many, or when
/// negative, at least minus that many.
pub(super) fn fits_arity(arity: i64, argc: usize) -> bool {
    let argc = i64::try_from(argc).unwrap_or(i64::MAX);
    if arity >= 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key read through the input's checked text is exactly what checking the argument
    /// alone gives, whatever bytes (invalid UTF-8, split characters) come before or after it.
    #[test]
    fn keys_through_the_checked_prefix_match_keys_checked_alone() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let pieces: [&[u8]; 7] = [
            b"ab",
            b"\r\n",
            "é".as_bytes(),
            b"\xc3",
            b"\xff",
            b"",
            "日".as_bytes(),
        ];
        for _ in 0..20_000 {
            let mut buf = Vec::new();
            let mut ranges = Vec::new();
            for _ in 0..rng.random_range(1..6) {
                let start = buf.len();
                for _ in 0..rng.random_range(0..4) {
                    buf.extend_from_slice(pieces[rng.random_range(0..pieces.len())]);
                }
                ranges.push(start..buf.len());
                buf.extend_from_slice(b"\r\n");
            }
            let checked = Input::new(&buf).args(&ranges);
            let alone = Args::new(&buf, &ranges);
            for i in 0..ranges.len() + 1 {
                let want = key_text(alone.get(i));
                assert_eq!(checked.key(i), want, "{buf:?} argument {i}");
                assert_eq!(alone.key(i), want);
            }
            let keys: Vec<_> = checked.keys(1).collect();
            let want: Vec<_> = (1..ranges.len()).map(|i| key_text(alone.get(i))).collect();
            assert_eq!(keys, want);
        }
    }

    #[test]
    fn lookup_ignores_case_and_rejects_long_names() {
        assert_eq!(Cmd::lookup(b"GET"), Some(Cmd::Get));
        assert_eq!(Cmd::lookup(b"pSubScribe"), Some(Cmd::PSubscribe));
        assert_eq!(Cmd::lookup(b"nosuchcommandatall"), None);
        assert_eq!(Cmd::lookup(b""), None);
        for cmd in Cmd::ALL {
            assert_eq!(Cmd::lookup(cmd.name().as_bytes()), Some(*cmd));
        }
    }

    #[test]
    fn arity_follows_redis_convention() {
        assert!(Cmd::Get.arity_ok(2));
        assert!(!Cmd::Get.arity_ok(3));
        assert!(Cmd::Del.arity_ok(5));
        assert!(!Cmd::Del.arity_ok(1));
    }
}
