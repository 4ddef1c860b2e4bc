//! Keys: a namespace and a path of segments, validated and normalised before they reach a map.
//!
//! The written form is `namespace:path`, e.g. `sessions:user.42.cart`. A key without `:` lives in
//! the namespace [`DEFAULT_NAMESPACE`]. The path separator (`.` by default) is set per store.
//! Paths never contain glob metacharacters, so every key is also a pattern that matches itself.

use std::borrow::Cow;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Separates the namespace from the path in the written form of a key.
pub const NAMESPACE_SEPARATOR: char = ':';
/// The namespace of a key written without one.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 64;
/// Characters a path may not contain: the glob syntax of [`crate::pattern`].
pub const RESERVED_PATH_CHARS: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

/// Why a key, a key prefix or a key configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("key path is empty")]
    EmptyPath,
    #[error("key path is {len} bytes long; the limit is {limit}")]
    TooLong { len: usize, limit: usize },
    #[error("key path has {count} segments; the limit is {limit}")]
    TooManySegments { count: usize, limit: usize },
    #[error(
        "key path has an empty segment at position {index} (leading, trailing or doubled separator)"
    )]
    EmptySegment { index: usize },
    #[error(
        "key path contains {ch:?} at byte {offset}; control characters and * ? [ ] {{ }} \\ are not allowed"
    )]
    InvalidChar { ch: char, offset: usize },
    #[error("namespace {namespace:?} is invalid: use 1 to 64 ASCII letters, digits, '_' or '-'")]
    InvalidNamespace { namespace: String },
    #[error(
        "separator {0:?} is not allowed: use one ASCII punctuation character other than : * ? [ ] {{ }} \\"
    )]
    InvalidSeparator(char),
    #[error("key limit {name} must be at least 1")]
    InvalidLimit { name: &'static str },
}

/// How a store validates and normalises keys. Part of the store's identity: a snapshot records it
/// and refuses to load under a different one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyConfig {
    /// Separates path segments. Default `.`.
    pub separator: char,
    /// Fold keys and patterns to lower case, so `User.A` and `user.a` are one key. Default off.
    pub case_insensitive: bool,
    /// Longest path, in bytes after normalisation. Default 1024.
    pub max_path_len: usize,
    /// Most segments in a path. Default 32.
    pub max_segments: usize,
}

impl Default for KeyConfig {
    fn default() -> Self {
        KeyConfig {
            separator: '.',
            case_insensitive: false,
            max_path_len: 1024,
            max_segments: 32,
        }
    }
}

/// A parsed key: borrowed from the caller's string when no normalisation was needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef<'a> {
    pub namespace: Cow<'a, str>,
    pub path: Cow<'a, str>,
}

impl KeyRef<'_> {
    /// The written form, `namespace:path`.
    pub fn to_key_string(&self) -> String {
        join_key(&self.namespace, &self.path)
    }

    /// The written form as a [`CompactString`], copied from `parsed_from` (the text this key
    /// was parsed from) when that already is the written form, joined otherwise. Most keys
    /// arrive written out in full; copying them skips joining the parts and checking the
    /// joined bytes as UTF-8 again.
    pub fn compact_written_form(&self, parsed_from: &str) -> CompactString {
        // Both parts borrowed from `parsed_from` and, with the separator, all of it: then it is
        // `namespace:path` exactly (a key without a namespace borrows the default one, which
        // makes it longer than the text).
        let borrowed = matches!(
            (&self.namespace, &self.path),
            (Cow::Borrowed(_), Cow::Borrowed(_))
        );
        if borrowed && parsed_from.len() == self.namespace.len() + 1 + self.path.len() {
            CompactString::new(parsed_from)
        } else {
            join_key_compact(&self.namespace, &self.path)
        }
    }
}

/// The written form of a key, `namespace:path`.
pub fn join_key(namespace: &str, path: &str) -> String {
    let mut out = String::with_capacity(namespace.len() + 1 + path.len());
    out.push_str(namespace);
    out.push(NAMESPACE_SEPARATOR);
    out.push_str(path);
    out
}

/// The written form of a key, `namespace:path`, inline (no allocation) up to 24 bytes.
pub fn join_key_compact(namespace: &str, path: &str) -> CompactString {
    const INLINE: usize = std::mem::size_of::<CompactString>();
    let len = namespace.len() + 1 + path.len();
    if len <= INLINE {
        // Joined on the stack and copied in once: three `push_str`s each re-checked the
        // representation and its capacity, which cost more than the copy.
        let mut buf = [0u8; INLINE];
        let (head, rest) = buf.split_at_mut(namespace.len());
        head.copy_from_slice(namespace.as_bytes());
        if let Some((sep, tail)) = rest.split_first_mut() {
            *sep = NAMESPACE_SEPARATOR as u8;
            if let Some(tail) = tail.get_mut(..path.len()) {
                tail.copy_from_slice(path.as_bytes());
            }
        }
        if let Ok(joined) = std::str::from_utf8(buf.get(..len).unwrap_or_default()) {
            return CompactString::new(joined);
        }
    }
    let mut out = CompactString::with_capacity(len);
    out.push_str(namespace);
    out.push(NAMESPACE_SEPARATOR);
    out.push_str(path);
    out
}

/// Splits the written form into namespace and the rest, without validating either.
pub fn split_namespace(key: &str) -> (&str, &str) {
    // A byte search: the separator is ASCII, so its byte never occurs inside a wider character
    // and both sides stay on character boundaries.
    const SEPARATOR: u8 = NAMESPACE_SEPARATOR as u8;
    match key.bytes().position(|b| b == SEPARATOR) {
        Some(at) => (&key[..at], &key[at + 1..]),
        None => (DEFAULT_NAMESPACE, key),
    }
}

impl KeyConfig {
    /// Checks the configuration itself.
    pub fn validate(&self) -> Result<(), KeyError> {
        let sep = self.separator;
        if !sep.is_ascii_punctuation()
            || sep == NAMESPACE_SEPARATOR
            || RESERVED_PATH_CHARS.contains(&sep)
        {
            return Err(KeyError::InvalidSeparator(sep));
        }
        if self.max_path_len == 0 {
            return Err(KeyError::InvalidLimit {
                name: "max_path_len",
            });
        }
        if self.max_segments == 0 {
            return Err(KeyError::InvalidLimit {
                name: "max_segments",
            });
        }
        Ok(())
    }

    /// Parses, validates and normalises a key in its written form.
    #[inline]
    pub fn parse<'a>(&self, key: &'a str) -> Result<KeyRef<'a>, KeyError> {
        match self.parse_plain(key) {
            Some(parsed) => Ok(parsed),
            None => self.parse_general(key),
        }
    }

    /// The common key: ASCII, a namespace of namespace bytes (or none), a path of plain path
    /// bytes in non-empty segments, within the limits, and nothing to fold. `None` for anything
    /// else, which [`KeyConfig::parse_general`] parses or refuses. The same checks the general
    /// parse makes first, without its `Cow`s and `Result`s between the steps: those cost a
    /// pipelined Redis-port write about 330 instructions for a 16-byte key.
    #[inline]
    fn parse_plain<'a>(&self, key: &'a str) -> Option<KeyRef<'a>> {
        let (namespace, path) = split_namespace(key);
        let plain = plain_namespace(namespace)
            && path.len() <= self.max_path_len
            && self.plain_ascii_path(path)
            && !(self.case_insensitive
                && (namespace.bytes().chain(path.bytes())).any(|b| b.is_ascii_uppercase()));
        plain.then_some(KeyRef {
            namespace: Cow::Borrowed(namespace),
            path: Cow::Borrowed(path),
        })
    }

    /// [`KeyConfig::parse`] for any key: split, check and fold each part in turn.
    fn parse_general<'a>(&self, key: &'a str) -> Result<KeyRef<'a>, KeyError> {
        let (namespace, path) = split_namespace(key);
        let namespace = self.namespace(namespace)?;
        let path = self.fold(path);
        self.check_path(&path)?;
        Ok(KeyRef { namespace, path })
    }

    /// Parses a key prefix for a scan: a namespace and the start of a path. The path part may be
    /// empty, end with a separator or stop inside a segment, but may not hold reserved characters.
    pub fn parse_prefix<'a>(&self, prefix: &'a str) -> Result<KeyRef<'a>, KeyError> {
        let (namespace, path) = split_namespace(prefix);
        let namespace = self.namespace(namespace)?;
        let path = self.fold(path);
        if path.len() > self.max_path_len {
            return Err(KeyError::TooLong {
                len: path.len(),
                limit: self.max_path_len,
            });
        }
        check_chars(&path)?;
        Ok(KeyRef { namespace, path })
    }

    /// Validates (and folds, when the store is case-insensitive) a namespace on its own.
    pub fn namespace<'a>(&self, namespace: &'a str) -> Result<Cow<'a, str>, KeyError> {
        if !plain_namespace(namespace) {
            return Err(KeyError::InvalidNamespace {
                namespace: namespace.to_owned(),
            });
        }
        if self.case_insensitive && namespace.bytes().any(|b| b.is_ascii_uppercase()) {
            Ok(Cow::Owned(namespace.to_ascii_lowercase()))
        } else {
            Ok(Cow::Borrowed(namespace))
        }
    }

    /// Folds text (a path, a prefix or a pattern) the way this store folds keys.
    pub fn fold<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.case_insensitive && text.chars().any(char::is_uppercase) {
            Cow::Owned(text.to_lowercase())
        } else {
            Cow::Borrowed(text)
        }
    }

    /// Whether `namespace` and `path` are a valid key already in normal form (what stored keys
    /// are). Allocates nothing for a valid key.
    pub fn is_normal(&self, namespace: &str, path: &str) -> bool {
        matches!(self.namespace(namespace), Ok(Cow::Borrowed(_)))
            && matches!(self.fold(path), Cow::Borrowed(_))
            && self.check_path(path).is_ok()
    }

    fn check_path(&self, path: &str) -> Result<(), KeyError> {
        if path.is_empty() {
            return Err(KeyError::EmptyPath);
        }
        if path.len() > self.max_path_len {
            return Err(KeyError::TooLong {
                len: path.len(),
                limit: self.max_path_len,
            });
        }
        if self.plain_ascii_path(path) {
            return Ok(());
        }
        self.check_path_slowly(path)
    }

    /// The common case in one pass over the bytes: an ASCII path without reserved bytes, no
    /// empty segment, few enough segments. `false` means "look closer" (the slow path finds the
    /// error, if any, and reports it exactly as before).
    fn plain_ascii_path(&self, path: &str) -> bool {
        let Ok(sep) = u8::try_from(self.separator) else {
            return false;
        };
        let bytes = path.as_bytes();
        // Each byte's class folded into one mask and the separators counted, with no branch
        // per byte; the separator is a plain path byte (`validate` allows only punctuation
        // outside the reserved set).
        let (mut all_plain, mut separators) = (PLAIN_PATH_BYTE, 0usize);
        for &b in bytes {
            all_plain &= BYTE_CLASS[usize::from(b)];
            separators += usize::from(b == sep);
        }
        // Only a path with separators can have an empty segment: a look at its ends and at
        // every pair, taken by no path without one.
        all_plain != 0
            && !bytes.is_empty()
            && separators < self.max_segments
            && (separators == 0
                || (bytes.first() != Some(&sep)
                    && bytes.last() != Some(&sep)
                    && !bytes.windows(2).any(|pair| pair == [sep, sep])))
    }

    fn check_path_slowly(&self, path: &str) -> Result<(), KeyError> {
        check_chars(path)?;
        let mut count = 0;
        for (index, segment) in path.split(self.separator).enumerate() {
            if segment.is_empty() {
                return Err(KeyError::EmptySegment { index });
            }
            count += 1;
        }
        if count > self.max_segments {
            return Err(KeyError::TooManySegments {
                count,
                limit: self.max_segments,
            });
        }
        Ok(())
    }
}

/// An ASCII byte a path may not hold: controls and the pattern characters.
const fn reserved_byte(b: u8) -> bool {
    b < 0x20 || b == 0x7f || matches!(b, b'*' | b'?' | b'[' | b']' | b'{' | b'}' | b'\\')
}

/// [`BYTE_CLASS`] bit: a byte a namespace may hold.
const NAMESPACE_BYTE: u8 = 1;
/// [`BYTE_CLASS`] bit: an ASCII byte a path may hold.
const PLAIN_PATH_BYTE: u8 = 2;

/// What each byte may be, looked up once per byte of every key a write or read parses: the
/// chains of comparisons it replaced were about a tenth of a pipelined Redis-port write's
/// instructions.
static BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0u8;
    while b < 0x80 {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            table[b as usize] |= NAMESPACE_BYTE;
        }
        if !reserved_byte(b) {
            table[b as usize] |= PLAIN_PATH_BYTE;
        }
        b += 1;
    }
    table
};

/// 1 to [`MAX_NAMESPACE_LEN`] bytes, each one a namespace may hold (before any folding).
fn plain_namespace(namespace: &str) -> bool {
    !namespace.is_empty()
        && namespace.len() <= MAX_NAMESPACE_LEN
        && namespace
            .bytes()
            .all(|b| BYTE_CLASS[usize::from(b)] & NAMESPACE_BYTE != 0)
}

fn check_chars(path: &str) -> Result<(), KeyError> {
    // Fast path: most keys are plain ASCII without reserved bytes.
    if path.is_ascii() {
        return match path.bytes().position(reserved_byte) {
            None => Ok(()),
            Some(offset) => Err(KeyError::InvalidChar {
                ch: char::from(path.as_bytes()[offset]),
                offset,
            }),
        };
    }
    for (offset, ch) in path.char_indices() {
        if ch.is_control() || RESERVED_PATH_CHARS.contains(&ch) {
            return Err(KeyError::InvalidChar { ch, offset });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_compact_written_form_is_the_written_form_at_every_length() {
        for ns_len in 1..30 {
            for path_len in 0..30 {
                let ns = "n".repeat(ns_len);
                // Multi-byte characters too, on both sides of the inline limit.
                let path: String = (0..path_len)
                    .map(|i| if i % 7 == 3 { 'é' } else { 'p' })
                    .collect();
                let compact = join_key_compact(&ns, &path);
                assert_eq!(compact.as_str(), join_key(&ns, &path));
                assert_eq!(compact.is_heap_allocated(), compact.len() > 24, "{compact}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The one-pass check accepts exactly what the slow check accepts, for any separator,
        /// segment limit and text (ASCII-heavy, with separators, reserved and wide characters).
        #[test]
        fn the_fast_path_check_agrees_with_the_slow_one(
            path in "[a-c./]{1,10}|[a-c./:*{\\u{7f}\\n é€]{1,12}",
            separator in prop::sample::select(vec!['.', '/', '-', '€']),
            max_segments in 1usize..5,
        ) {
            let c = KeyConfig { separator, max_segments, ..cfg() };
            if !path.is_empty() && path.len() <= c.max_path_len {
                prop_assert_eq!(c.check_path(&path), c.check_path_slowly(&path));
            }
        }

        /// The one-pass parse of common keys gives exactly what the general parse gives, for
        /// any key text and configuration; and it does take the common keys.
        #[test]
        fn the_one_pass_parse_agrees_with_the_general_one(
            key in "[a-cA_.:/-]{0,12}|[a-cB.:/*{\u{7f}\n é€]{0,14}",
            separator in prop::sample::select(vec!['.', '/', '-', '€']),
            case_insensitive in any::<bool>(),
            max_segments in 0usize..5,
            max_path_len in 0usize..12,
        ) {
            // Limits of 0 are refused by `validate`, but `parse` must still agree on them.
            let c = KeyConfig { separator, case_insensitive, max_segments, max_path_len };
            let general = c.parse_general(&key);
            if let Some(plain) = c.parse_plain(&key) {
                prop_assert_eq!(Ok(plain), general.clone());
            }
            prop_assert_eq!(c.parse(&key), general);
        }

        #[test]
        fn split_namespace_splits_at_the_first_colon(key in "[a:é.]{0,10}") {
            let expected = key.split_once(':').unwrap_or((DEFAULT_NAMESPACE, key.as_str()));
            prop_assert_eq!(split_namespace(&key), expected);
        }
    }

    fn cfg() -> KeyConfig {
        KeyConfig::default()
    }

    #[test]
    fn the_compact_written_form_of_a_parsed_key_is_its_written_form() {
        let folding = KeyConfig {
            case_insensitive: true,
            ..cfg()
        };
        for (config, text) in [
            (cfg(), "sessions:user.42"),
            (cfg(), "user.42"),
            (cfg(), "a:b:c"),
            (
                cfg(),
                "a-very-long-namespace:with.a.path.past.the.inline.limit",
            ),
            (folding.clone(), "Sessions:User.42"),
            (folding, "sessions:user.42"),
        ] {
            let key = config.parse(text).unwrap();
            assert_eq!(
                key.compact_written_form(text),
                key.to_key_string(),
                "{text}"
            );
        }
    }

    #[test]
    fn every_ascii_byte_is_allowed_or_refused_as_the_rules_say() {
        let c = cfg();
        for b in 0u8..0x80 {
            let ch = char::from(b);
            let path = format!("a{ch}b");
            let allowed = !ch.is_control() && !RESERVED_PATH_CHARS.contains(&ch);
            assert_eq!(c.check_path(&path).is_ok(), allowed, "path byte {b:#x}");
            assert_eq!(c.check_path(&path), c.check_path_slowly(&path));
            let namespace = format!("n{ch}");
            let allowed = ch.is_ascii_alphanumeric() || ch == '_' || ch == '-';
            assert_eq!(
                c.namespace(&namespace).is_ok(),
                allowed,
                "namespace byte {b:#x}"
            );
        }
        assert!(c.namespace("né").is_err());
        assert!(c.check_path("aéb").is_ok());
    }

    #[test]
    fn common_keys_take_the_one_pass_parse() {
        let folding = KeyConfig {
            case_insensitive: true,
            ..cfg()
        };
        for key in [
            "key:__rand_int__",
            "user.42",
            "ns:a.b:c",
            "sessions:user.42.cart",
        ] {
            assert!(cfg().parse_plain(key).is_some(), "{key}");
            assert!(folding.parse_plain(key).is_some(), "{key}");
        }
        for key in [
            "Key:a", "key:A", "ns:", ":a", "a..b", "a.", "é:a", "a:é", "a:*",
        ] {
            assert!(folding.parse_plain(key).is_none(), "{key}");
        }
    }

    #[test]
    fn parses_namespace_and_path() {
        let k = cfg().parse("sessions:user.42.cart").unwrap();
        assert_eq!(k.namespace, "sessions");
        assert_eq!(k.path, "user.42.cart");
        assert!(matches!(k.path, Cow::Borrowed(_)));
        assert_eq!(k.to_key_string(), "sessions:user.42.cart");
    }

    #[test]
    fn default_namespace_and_colons_in_path() {
        let k = cfg().parse("user.1").unwrap();
        assert_eq!(k.namespace, DEFAULT_NAMESPACE);
        let k = cfg().parse("ns:a.b:c").unwrap();
        assert_eq!((k.namespace.as_ref(), k.path.as_ref()), ("ns", "a.b:c"));
    }

    #[test]
    fn rejects_bad_paths() {
        let c = cfg();
        assert_eq!(c.parse("ns:"), Err(KeyError::EmptyPath));
        assert_eq!(c.parse("ns:.a"), Err(KeyError::EmptySegment { index: 0 }));
        assert_eq!(c.parse("ns:a..b"), Err(KeyError::EmptySegment { index: 1 }));
        assert_eq!(c.parse("ns:a."), Err(KeyError::EmptySegment { index: 1 }));
        assert_eq!(
            c.parse("ns:a*b"),
            Err(KeyError::InvalidChar { ch: '*', offset: 1 })
        );
        assert_eq!(
            c.parse("ns:a\nb"),
            Err(KeyError::InvalidChar {
                ch: '\n',
                offset: 1
            })
        );
        assert_eq!(
            c.parse("ns:é{"),
            Err(KeyError::InvalidChar { ch: '{', offset: 2 })
        );
        assert!(matches!(
            c.parse(":a"),
            Err(KeyError::InvalidNamespace { .. })
        ));
        assert!(matches!(
            c.parse("a b:x"),
            Err(KeyError::InvalidNamespace { .. })
        ));
    }

    #[test]
    fn enforces_limits() {
        let c = KeyConfig {
            max_path_len: 8,
            max_segments: 3,
            ..cfg()
        };
        assert_eq!(
            c.parse("ns:abcdefghi"),
            Err(KeyError::TooLong { len: 9, limit: 8 })
        );
        assert_eq!(
            c.parse("ns:a.b.c.d"),
            Err(KeyError::TooManySegments { count: 4, limit: 3 })
        );
        assert!(c.parse("ns:a.b.c").is_ok());
        let long_ns = format!("{}:a", "n".repeat(MAX_NAMESPACE_LEN + 1));
        assert!(matches!(
            c.parse(&long_ns),
            Err(KeyError::InvalidNamespace { .. })
        ));
    }

    #[test]
    fn folds_case_when_configured() {
        let c = KeyConfig {
            case_insensitive: true,
            ..cfg()
        };
        let k = c.parse("Users:Alice.Profile").unwrap();
        assert_eq!(k.to_key_string(), "users:alice.profile");
        let k = cfg().parse("Users:Alice").unwrap();
        assert_eq!(k.to_key_string(), "Users:Alice");
    }

    #[test]
    fn custom_separator() {
        let c = KeyConfig {
            separator: '/',
            ..cfg()
        };
        assert!(c.parse("ns:a/b/c").is_ok());
        assert_eq!(c.parse("ns:a//c"), Err(KeyError::EmptySegment { index: 1 }));
        assert!(c.parse("ns:a.b").is_ok());
        for bad in [':', '*', 'a', ' ', '\\'] {
            let c = KeyConfig {
                separator: bad,
                ..cfg()
            };
            assert_eq!(c.validate(), Err(KeyError::InvalidSeparator(bad)));
        }
    }

    #[test]
    fn prefixes_may_be_partial() {
        let c = cfg();
        assert_eq!(c.parse_prefix("ns:").unwrap().path, "");
        assert_eq!(c.parse_prefix("ns:app.con").unwrap().path, "app.con");
        assert_eq!(c.parse_prefix("ns:app.").unwrap().path, "app.");
        assert!(c.parse_prefix("ns:app*").is_err());
    }
}
