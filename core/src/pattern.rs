//! Glob patterns over separator-delimited key paths.
//!
//! A key is a sequence of non-empty segments joined by a per-store separator (default `.`).
//! A [`Pattern`] selects keys with globset-like syntax:
//!
//! | syntax            | meaning                                                              |
//! |-------------------|----------------------------------------------------------------------|
//! | `*`               | zero or more characters inside one segment                           |
//! | `**` (whole seg.) | any number of whole segments (`a.**` needs at least one after `a`)   |
//! | `?`               | exactly one non-separator character                                  |
//! | `[abc]` `[a-z]`   | one character from the set (`[!..]` / `[^..]` negate, `]` first is literal) |
//! | `{a,b.c}`         | alternatives; may nest and contain any other syntax                  |
//! | `\x`              | the character `x` literally                                          |
//!
//! Braces are expanded at compile time into at most [`Pattern::MAX_ALTERNATIVES`] brace-free
//! alternatives. Each alternative is a list of segment matchers, so [`Pattern::matches`] never
//! allocates and runs in `O(pattern × path)` time: both the segment level (`**`) and the
//! character level (`*`) use the two-pointer wildcard algorithm, which only ever needs to
//! remember the most recent star.

use std::fmt;

/// Why a pattern failed to compile. Offsets are byte offsets into the pattern source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// The pattern source is the empty string.
    #[error("pattern is empty")]
    Empty,
    /// The pattern source is longer than [`Pattern::MAX_LEN`] bytes.
    #[error("pattern is {len} bytes long, more than the limit of {limit} bytes")]
    TooLong { len: usize, limit: usize },
    /// A `[` without a closing `]`.
    #[error("unclosed character class: `[` at byte {offset} has no closing `]`")]
    UnclosedClass { offset: usize },
    /// A `{` without a closing `}`.
    #[error("unclosed brace: `{{` at byte {offset} has no closing `}}`")]
    UnclosedBrace { offset: usize },
    /// A `}` without an opening `{`.
    #[error("unmatched brace: `}}` at byte {offset} has no opening `{{`")]
    UnmatchedBrace { offset: usize },
    /// The pattern ends with a `\` that has nothing to escape.
    #[error("dangling escape: pattern ends with `\\`")]
    DanglingEscape,
    /// Brace expansion would produce more than [`Pattern::MAX_ALTERNATIVES`] alternatives.
    #[error("brace expansion produces more than {limit} alternatives")]
    TooManyAlternatives { limit: usize },
    /// A class range whose start is greater than its end, such as `[z-a]`.
    #[error("invalid range in character class at byte {offset}: start is greater than end")]
    InvalidRange { offset: usize },
    /// The separator is not a single ASCII punctuation character usable as a separator.
    #[error(
        "invalid separator {separator:?}: must be an ASCII punctuation character other than \
         `*`, `?`, `[`, `]`, `{{`, `}}`, `\\` and `:`"
    )]
    InvalidSeparator { separator: char },
}

/// A compiled glob pattern. Cheap to match; compile once and reuse.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    separator: char,
    /// Common literal prefix of all alternatives: a cheap pre-filter in `matches` and the
    /// start of a range scan for callers.
    prefix: String,
    literal: bool,
    alternatives: Box<[Alternative]>,
}

impl fmt::Debug for Pattern {
    // The compiled form is noise in logs; the source and separator identify the pattern.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pattern")
            .field("source", &self.source)
            .field("separator", &self.separator)
            .finish_non_exhaustive()
    }
}

/// One brace-free alternative.
#[derive(Debug, Clone)]
enum Alternative {
    /// No glob syntax: the whole path must be equal.
    Literal(String),
    Segments(Box<[Segment]>),
}

/// Matches one path segment, except `AnyPath` which matches a run of whole segments.
#[derive(Debug, Clone)]
enum Segment {
    /// `**`: zero or more whole segments.
    AnyPath,
    /// `*` alone: any one segment. Split out so the common `a.*.c` skips the glob loop.
    Any,
    Literal(String),
    /// At least one of `*`, `?` or a class; consecutive stars already collapsed.
    Glob(Box<[Token]>),
}

/// A brace-free pattern atom. The separator is still an ordinary `Lit` at this stage.
#[derive(Debug, Clone)]
enum Token {
    Lit(char),
    /// `?`
    Any,
    /// `*`
    Star,
    Class(Class),
}

#[derive(Debug, Clone)]
struct Class {
    negated: bool,
    /// Inclusive ranges; a single character `c` is stored as `(c, c)`.
    ranges: Box<[(char, char)]>,
}

impl Class {
    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

impl Pattern {
    /// Max pattern length in bytes.
    pub const MAX_LEN: usize = 4096;
    /// Max number of brace-expanded alternatives.
    pub const MAX_ALTERNATIVES: usize = 64;

    /// Compiles `pattern` for keys whose segments are joined by `separator`.
    ///
    /// # Errors
    /// A [`PatternError`] when the separator is not allowed, or the pattern is empty, longer
    /// than [`Self::MAX_LEN`], malformed, or expands to more than [`Self::MAX_ALTERNATIVES`].
    ///
    /// An escaped separator (`\.` when the separator is `.`) still separates segments: keys
    /// can never contain the separator inside a segment, so there is nothing else it could
    /// mean. This is also the way to write the separator inside braces when it is `,`.
    pub fn compile(pattern: &str, separator: char) -> Result<Pattern, PatternError> {
        if !is_valid_separator(separator) {
            return Err(PatternError::InvalidSeparator { separator });
        }
        if pattern.is_empty() {
            return Err(PatternError::Empty);
        }
        if pattern.len() > Self::MAX_LEN {
            return Err(PatternError::TooLong {
                len: pattern.len(),
                limit: Self::MAX_LEN,
            });
        }

        let expanded = expand(pattern)?;
        let mut prefix: Option<String> = None;
        let mut alternatives = Vec::with_capacity(expanded.len());
        for tokens in expanded {
            let own: String = tokens
                .iter()
                .map_while(|t| match t {
                    Token::Lit(c) => Some(*c),
                    _ => None,
                })
                .collect();
            prefix = Some(match prefix {
                None => own,
                Some(p) => common_prefix(&p, &own).to_owned(),
            });
            alternatives.push(compile_alternative(&tokens, separator));
        }
        let prefix = prefix.unwrap_or_default();
        // Equal literal alternatives (`{a,a}`) still match exactly one path.
        let literal = alternatives
            .iter()
            .all(|a| matches!(a, Alternative::Literal(s) if *s == prefix));
        if literal {
            alternatives.truncate(1);
        }

        Ok(Pattern {
            source: pattern.to_owned(),
            separator,
            prefix,
            literal,
            alternatives: alternatives.into_boxed_slice(),
        })
    }

    /// True when `path` (a full key path using the same separator) matches.
    #[must_use]
    pub fn matches(&self, path: &str) -> bool {
        // Rejects most non-matching keys with one memcmp before any per-segment work.
        if !path.starts_with(self.prefix.as_str()) {
            return false;
        }
        self.alternatives.iter().any(|alt| match alt {
            Alternative::Literal(lit) => lit == path,
            Alternative::Segments(segments) => match_segments(segments, path, self.separator),
        })
    }

    /// The longest literal string every matching path must start with (common prefix of all
    /// alternatives' literal prefixes, escapes resolved). Used to turn a pattern into a range
    /// scan.
    #[must_use]
    pub fn literal_prefix(&self) -> &str {
        &self.prefix
    }

    /// True when the pattern has no glob syntax at all (it matches exactly one path:
    /// [`literal_prefix`](Self::literal_prefix)). Escapes do not count as glob syntax, and
    /// neither do braces whose alternatives are all the same literal.
    #[must_use]
    pub fn is_literal(&self) -> bool {
        self.literal
    }

    /// The source text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

fn is_valid_separator(c: char) -> bool {
    c.is_ascii_punctuation() && !matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\' | ':')
}

/// Longest common prefix, cut on a char boundary of both strings.
fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let end = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    a.get(..end).unwrap_or("")
}

/// An open `{` while expanding.
struct Frame {
    offset: usize,
    /// Expansions before the `{`, to be multiplied by this brace's alternatives on `}`.
    before: Vec<Vec<Token>>,
    /// Expansions of the already finished comma-separated branches.
    branches: Vec<Vec<Token>>,
}

/// Lexes `pattern` and expands its braces into brace-free token lists.
///
/// Iterative with an explicit stack, so deeply nested braces cannot overflow the call stack.
/// Every intermediate list only ever grows towards the final count, so the limit is checked as
/// soon as any of them exceeds it and expansion never does more than `MAX_ALTERNATIVES` work
/// per token.
fn expand(pattern: &str) -> Result<Vec<Vec<Token>>, PatternError> {
    const LIMIT: usize = Pattern::MAX_ALTERNATIVES;
    let too_many = PatternError::TooManyAlternatives { limit: LIMIT };

    let chars: Vec<(usize, char)> = pattern.char_indices().collect();
    let mut stack: Vec<Frame> = Vec::new();
    // Expansions of the current branch of the innermost open brace (or the top level).
    let mut current: Vec<Vec<Token>> = vec![Vec::new()];
    let mut i = 0;
    while let Some(&(offset, c)) = chars.get(i) {
        i += 1;
        let token = match c {
            '\\' => {
                let Some(&(_, escaped)) = chars.get(i) else {
                    return Err(PatternError::DanglingEscape);
                };
                i += 1;
                Token::Lit(escaped)
            }
            '*' => Token::Star,
            '?' => Token::Any,
            '[' => {
                let (class, next) = parse_class(&chars, i, offset)?;
                i = next;
                Token::Class(class)
            }
            '{' => {
                stack.push(Frame {
                    offset,
                    before: std::mem::replace(&mut current, vec![Vec::new()]),
                    branches: Vec::new(),
                });
                continue;
            }
            // Outside braces a comma is an ordinary character.
            ',' if !stack.is_empty() => {
                if let Some(frame) = stack.last_mut() {
                    frame.branches.append(&mut current);
                    if frame.branches.len() > LIMIT {
                        return Err(too_many);
                    }
                }
                current = vec![Vec::new()];
                continue;
            }
            '}' => {
                let Some(mut frame) = stack.pop() else {
                    return Err(PatternError::UnmatchedBrace { offset });
                };
                frame.branches.append(&mut current);
                if frame.before.len() * frame.branches.len() > LIMIT {
                    return Err(too_many);
                }
                current = Vec::with_capacity(frame.before.len() * frame.branches.len());
                for head in &frame.before {
                    for tail in &frame.branches {
                        let mut joined = Vec::with_capacity(head.len() + tail.len());
                        joined.extend_from_slice(head);
                        joined.extend_from_slice(tail);
                        current.push(joined);
                    }
                }
                continue;
            }
            c => Token::Lit(c),
        };
        for alternative in &mut current {
            alternative.push(token.clone());
        }
    }
    if let Some(frame) = stack.last() {
        return Err(PatternError::UnclosedBrace {
            offset: frame.offset,
        });
    }
    Ok(current)
}

/// Parses a class body starting at `chars[start]` (just after the `[` at byte `open`).
/// Returns the class and the index just after its closing `]`.
fn parse_class(
    chars: &[(usize, char)],
    start: usize,
    open: usize,
) -> Result<(Class, usize), PatternError> {
    let unclosed = PatternError::UnclosedClass { offset: open };
    let mut i = start;
    let negated = matches!(chars.get(i), Some((_, '!' | '^')));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(&(lo_offset, c)) = chars.get(i) else {
            return Err(unclosed);
        };
        // `]` right after `[` or `[!` is a member, so `[]]` and `[!]]` work as in globset.
        if c == ']' && !first {
            let class = Class {
                negated,
                ranges: ranges.into_boxed_slice(),
            };
            return Ok((class, i + 1));
        }
        first = false;
        let (lo, after_lo) = class_char(chars, i).ok_or(unclosed.clone())?;
        // A `-` is a range only when something other than the closing `]` follows it;
        // otherwise (`[a-]`) it is a member.
        let is_range = matches!(chars.get(after_lo), Some((_, '-')))
            && matches!(chars.get(after_lo + 1), Some((_, h)) if *h != ']');
        if is_range {
            let (hi, after_hi) = class_char(chars, after_lo + 1).ok_or(unclosed.clone())?;
            if lo > hi {
                return Err(PatternError::InvalidRange { offset: lo_offset });
            }
            ranges.push((lo, hi));
            i = after_hi;
        } else {
            ranges.push((lo, lo));
            i = after_lo;
        }
    }
}

/// One possibly escaped class member at `chars[i]`, and the index after it.
fn class_char(chars: &[(usize, char)], i: usize) -> Option<(char, usize)> {
    match chars.get(i)? {
        (_, '\\') => chars.get(i + 1).map(|&(_, c)| (c, i + 2)),
        &(_, c) => Some((c, i + 1)),
    }
}

fn compile_alternative(tokens: &[Token], separator: char) -> Alternative {
    if tokens.iter().all(|t| matches!(t, Token::Lit(_))) {
        let literal = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Lit(c) => Some(*c),
                _ => None,
            })
            .collect();
        return Alternative::Literal(literal);
    }

    let mut segments: Vec<Segment> = Vec::new();
    for part in tokens.split(|t| matches!(t, Token::Lit(c) if *c == separator)) {
        let segment = compile_segment(part);
        // `**.**` means the same as `**`; one of them is enough for the matcher.
        if matches!(segment, Segment::AnyPath) && matches!(segments.last(), Some(Segment::AnyPath))
        {
            continue;
        }
        segments.push(segment);
    }
    // A trailing `**` after other segments must match at least one segment (`a.**` does not
    // match `a`), which is exactly "one segment, then any number": `a.*.**`.
    if segments.len() > 1 && matches!(segments.last(), Some(Segment::AnyPath)) {
        let at = segments.len() - 1;
        segments.insert(at, Segment::Any);
    }
    Alternative::Segments(segments.into_boxed_slice())
}

fn compile_segment(tokens: &[Token]) -> Segment {
    match tokens {
        [Token::Star, Token::Star] => return Segment::AnyPath,
        _ if tokens.iter().all(|t| matches!(t, Token::Lit(_))) => {
            let literal = tokens
                .iter()
                .filter_map(|t| match t {
                    Token::Lit(c) => Some(*c),
                    _ => None,
                })
                .collect();
            return Segment::Literal(literal);
        }
        _ => {}
    }
    // Inside a segment `**` is just `*`, and runs of stars only slow backtracking down.
    let mut glob: Vec<Token> = Vec::with_capacity(tokens.len());
    for token in tokens {
        if matches!(token, Token::Star) && matches!(glob.last(), Some(Token::Star)) {
            continue;
        }
        glob.push(token.clone());
    }
    if let [Token::Star] = glob.as_slice() {
        return Segment::Any;
    }
    Segment::Glob(glob.into_boxed_slice())
}

/// The segment of `path` starting at byte `pos`, and where the next one starts.
/// Past the last segment the next position is `path.len() + 1`, for which this returns `None`;
/// that keeps the empty path (and a trailing separator) as one empty segment, like `split`.
fn segment_at(path: &str, pos: usize, separator: char) -> Option<(&str, usize)> {
    let rest = path.get(pos..)?;
    Some(match rest.split_once(separator) {
        Some((segment, _)) => (segment, pos + segment.len() + separator.len_utf8()),
        None => (rest, path.len() + 1),
    })
}

/// Two-pointer wildcard match at the segment level, with `**` as the star.
fn match_segments(segments: &[Segment], path: &str, separator: char) -> bool {
    let mut pi = 0;
    let mut pos = 0;
    // Pattern index after the last `**`, and the path position that `**` currently stops at.
    let mut resume: Option<(usize, usize)> = None;
    loop {
        let Some((segment, next)) = segment_at(path, pos, separator) else {
            // Path exhausted: only `**`s may be left (and compile collapsed those to one).
            let rest = segments.get(pi..).unwrap_or_default();
            return rest.iter().all(|s| matches!(s, Segment::AnyPath));
        };
        match segments.get(pi) {
            Some(Segment::AnyPath) => {
                resume = Some((pi + 1, pos));
                pi += 1;
                continue;
            }
            Some(s) if segment_matches(s, segment) => {
                pi += 1;
                pos = next;
                continue;
            }
            _ => {}
        }
        // Mismatch: let the last `**` swallow one more segment and retry after it. Only the
        // latest `**` needs revisiting: whatever an earlier one could have absorbed, the
        // later one can absorb instead, so this stays O(pattern × path).
        let Some((resume_pi, resume_pos)) = resume else {
            return false;
        };
        let Some((_, after)) = segment_at(path, resume_pos, separator) else {
            return false;
        };
        resume = Some((resume_pi, after));
        pi = resume_pi;
        pos = after;
    }
}

fn segment_matches(pattern: &Segment, segment: &str) -> bool {
    match pattern {
        // `AnyPath` is handled by `match_segments`; here it would match one segment anyway.
        Segment::Any | Segment::AnyPath => true,
        Segment::Literal(literal) => literal == segment,
        Segment::Glob(tokens) => match_glob(tokens, segment),
    }
}

/// Two-pointer wildcard match of one segment, walking `text` by byte offset so nothing is
/// allocated.
fn match_glob(tokens: &[Token], text: &str) -> bool {
    let char_at = |i: usize| text.get(i..).and_then(|rest| rest.chars().next());
    let mut ti = 0;
    let mut si = 0;
    // Token index after the last `*`, and the text offset that `*` currently stops at.
    let mut resume: Option<(usize, usize)> = None;
    while let Some(c) = char_at(si) {
        let step = match tokens.get(ti) {
            Some(Token::Star) => {
                resume = Some((ti + 1, si));
                ti += 1;
                continue;
            }
            Some(Token::Lit(l)) => *l == c,
            Some(Token::Any) => true,
            Some(Token::Class(class)) => class.contains(c),
            None => false,
        };
        if step {
            ti += 1;
            si += c.len_utf8();
            continue;
        }
        let Some((next_token, star_end)) = resume else {
            return false;
        };
        let Some(swallowed) = char_at(star_end) else {
            return false;
        };
        let after = star_end + swallowed.len_utf8();
        resume = Some((next_token, after));
        ti = next_token;
        si = after;
    }
    let rest = tokens.get(ti..).unwrap_or_default();
    rest.iter().all(|t| matches!(t, Token::Star))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pat(p: &str) -> Pattern {
        Pattern::compile(p, '.').unwrap()
    }

    fn pat_sep(p: &str, sep: char) -> Pattern {
        Pattern::compile(p, sep).unwrap()
    }

    fn err(p: &str) -> PatternError {
        Pattern::compile(p, '.').unwrap_err()
    }

    #[track_caller]
    fn check(p: &Pattern, yes: &[&str], no: &[&str]) {
        for path in yes {
            assert!(p.matches(path), "{:?} should match {path:?}", p.as_str());
        }
        for path in no {
            assert!(
                !p.matches(path),
                "{:?} should not match {path:?}",
                p.as_str()
            );
        }
    }

    #[test]
    fn literal_patterns() {
        check(
            &pat("app.config"),
            &["app.config"],
            &["app", "app.config.x", "app.confi", "app_config"],
        );
        assert!(pat("app.config").is_literal());
        assert_eq!(pat("app.config").literal_prefix(), "app.config");
    }

    #[test]
    fn star_stays_inside_one_segment() {
        check(&pat("a*"), &["a", "abc", "aaa"], &["b", "a.b", "ba"]);
        check(&pat("*b"), &["b", "ab", "aab"], &["a.b", "ba"]);
        check(
            &pat("a*c"),
            &["ac", "abc", "abbbc", "acc"],
            &["a.c", "ab", "a.b.c"],
        );
        check(
            &pat("a.*.c"),
            &["a.b.c", "a.bbb.c"],
            &["a.c", "a.b.d.c", "a.b.c.d"],
        );
        check(&pat("*"), &["a", "abc"], &["a.b"]);
        check(&pat("*.*"), &["a.b"], &["a", "a.b.c"]);
        check(&pat("a.b*"), &["a.b", "a.bc"], &["a.b.c", "a.c"]);
    }

    #[test]
    fn double_star_edge_cases() {
        let middle = pat("a.**.b");
        check(
            &middle,
            &["a.b", "a.x.b", "a.x.y.b", "a.b.b"],
            &["a", "b", "a.x", "x.a.b", "a.b.x"],
        );
        check(
            &pat("**.b"),
            &["b", "x.b", "x.y.b", "b.b"],
            &["a", "b.a", "xb"],
        );
        check(&pat("a.**"), &["a.x", "a.x.y", "a.a"], &["a", "b.x", "ax"]);
        check(&pat("**"), &["a", "a.b", "a.b.c", ""], &[]);
        check(&pat("**.**"), &["a", "a.b.c"], &[]);
        check(&pat("a.**.**"), &["a.x", "a.x.y"], &["a"]);
        check(
            &pat("**.a.**"),
            &["a.x", "x.a.y", "x.y.a.z.w"],
            &["a", "x.a", "b.x"],
        );
        check(
            &pat("a.**.b.**.c"),
            &["a.b.c", "a.x.b.y.z.c", "a.b.b.c"],
            &["a.c", "a.b.x"],
        );
        check(&pat("**.*.b"), &["x.b", "x.y.b"], &["b"]);
    }

    #[test]
    fn double_star_inside_a_segment_is_a_star() {
        check(&pat("a**b"), &["ab", "axxb"], &["a.b", "a.x.b"]);
        check(&pat("a.**b"), &["a.b", "a.xb"], &["a.x.b"]);
        check(&pat("a.b**"), &["a.b", "a.bx"], &["a.b.x"]);
        // Three stars are not `**`: one segment only.
        check(&pat("a.***"), &["a.x"], &["a.x.y"]);
    }

    #[test]
    fn question_mark() {
        check(&pat("a?c"), &["abc", "acc"], &["ac", "abbc", "a.c"]);
        check(&pat("?"), &["a", "é"], &["", "ab", "."]);
        check(&pat("a.?"), &["a.b"], &["a.", "a.bc", "a"]);
    }

    #[test]
    fn classes() {
        check(&pat("[abc]"), &["a", "b", "c"], &["d", "ab", ""]);
        check(&pat("x[a-c]y"), &["xay", "xby", "xcy"], &["xdy", "xy"]);
        check(&pat("[!abc]"), &["d", "z"], &["a", "b", "c", "dd"]);
        check(&pat("[^abc]"), &["d"], &["a"]);
        check(&pat("[a-cx-z]"), &["b", "y"], &["d", "w"]);
        check(&pat("[]a]"), &["]", "a"], &["b"]);
        check(&pat("[!]a]"), &["b"], &["]", "a"]);
        check(&pat("[a-]"), &["a", "-"], &["b"]);
        check(&pat("[-a]"), &["a", "-"], &["b"]);
        check(&pat("[\\]x]"), &["]", "x"], &["\\"]);
        check(&pat("[a\\-c]"), &["a", "-", "c"], &["b"]);
        check(&pat("[*?{,}]"), &["*", "?", "{", ",", "}"], &["a"]);
        check(&pat("[!!]"), &["a"], &["!"]);
    }

    #[test]
    fn classes_never_match_the_separator() {
        check(&pat("a[.]b"), &[], &["a.b"]);
        check(&pat("a[!x]b"), &["ayb"], &["a.b"]);
        check(&pat("a[,-/]b"), &["a,b", "a-b", "a/b"], &["a.b"]);
        check(&pat_sep("a[!x]b", '/'), &["a.b"], &["a/b"]);
    }

    #[test]
    fn braces() {
        check(&pat("{a,b}.c"), &["a.c", "b.c"], &["c.c", "ab.c", "a"]);
        check(&pat("{a.b,c}.d"), &["a.b.d", "c.d"], &["a.d", "b.d"]);
        check(
            &pat("x{a,{b,c}d}"),
            &["xa", "xbd", "xcd"],
            &["xb", "xd", "xad"],
        );
        check(&pat("{*.x,y}"), &["q.x", "y"], &["x", "q.y"]);
        check(&pat("a{,b}"), &["a", "ab"], &["abb"]);
        check(&pat("{}a"), &["a"], &[""]);
        check(&pat("{a,b}{c,d}"), &["ac", "ad", "bc", "bd"], &["ab", "cd"]);
        check(&pat("{**,x}.b"), &["b", "q.r.b", "x.b"], &["q"]);
        check(
            &pat("a.{[bc],d?}"),
            &["a.b", "a.c", "a.dx"],
            &["a.d", "a.e"],
        );
        // Commas outside braces are ordinary characters.
        check(&pat("a,b"), &["a,b"], &["a", "b"]);
        assert!(pat("a,b").is_literal());
        // Escaped braces and commas are literal.
        check(&pat("\\{a\\,b\\}"), &["{a,b}"], &["a", "b"]);
        check(&pat("{a\\,b,c}"), &["a,b", "c"], &["a", "b"]);
    }

    #[test]
    fn brace_alternative_limit() {
        let p = pat(&"{a,b}".repeat(6));
        assert_eq!(p.alternatives.len(), 64);
        assert!(p.matches("abbaba"));
        assert_eq!(
            err(&"{a,b}".repeat(7)),
            PatternError::TooManyAlternatives {
                limit: Pattern::MAX_ALTERNATIVES
            }
        );
        let wide: Vec<String> = (0..65).map(|i| i.to_string()).collect();
        assert_eq!(
            err(&format!("{{{}}}", wide.join(","))),
            PatternError::TooManyAlternatives { limit: 64 }
        );
        let ok: Vec<String> = (0..64).map(|i| i.to_string()).collect();
        assert!(pat(&format!("k.{{{}}}", ok.join(","))).matches("k.63"));
        // Nested sums count too.
        assert!(Pattern::compile(&format!("{{{}}}{{a,b}}", ok.join(",")), '.').is_err());
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let depth = 2000;
        let p = pat(&format!("{}a{}", "{".repeat(depth), "}".repeat(depth)));
        assert!(p.matches("a"));
        assert!(p.is_literal());
        let unclosed = format!("{}a", "{".repeat(depth));
        assert_eq!(
            err(&unclosed),
            PatternError::UnclosedBrace { offset: depth - 1 }
        );
    }

    #[test]
    fn escapes() {
        check(&pat("a\\*b"), &["a*b"], &["axb", "ab"]);
        check(&pat("\\?"), &["?"], &["a"]);
        check(&pat("\\[a]"), &["[a]"], &["a"]);
        check(&pat("a\\\\b"), &["a\\b"], &["ab"]);
        check(&pat("\\a"), &["a"], &["\\a"]);
        check(&pat("\\*\\*.x"), &["**.x"], &["a.x", "x"]);
        assert!(pat("a\\*b").is_literal());
        // An escaped separator still separates: keys cannot contain it any other way.
        check(&pat("a\\.*"), &["a.b"], &["a", "ab"]);
    }

    #[test]
    fn custom_separators() {
        let slash = pat_sep("a/*/c", '/');
        check(&slash, &["a/b/c", "a/x.y/c"], &["a/c", "a/b/d/c", "a.b.c"]);
        check(&pat_sep("a/**", '/'), &["a/b", "a/b/c"], &["a"]);
        check(&pat_sep("**/b", '/'), &["b", "x/y/b"], &["x/yb"]);
        check(&pat_sep("a.b*", '/'), &["a.b", "a.bc.d"], &["a.b/c"]);
        check(&pat_sep("a-*-c", '-'), &["a-b-c"], &["a-b-d-c"]);
        check(&pat_sep("[a-c]-x", '-'), &["b-x"], &["d-x"]);
        check(&pat_sep("a|**|c", '|'), &["a|c", "a|b|b|c"], &["a|b"]);
        // With `,` as separator, a comma in braces splits alternatives; `\,` separates segments.
        check(
            &pat_sep("{a\\,b,c},*", ','),
            &["a,b,x", "c,x"],
            &["a,x", "b,x"],
        );
        check(&pat_sep("a,*", ','), &["a,b"], &["a", "a,b,c"]);
        check(&pat_sep("a!*", '!'), &["a!b"], &["a!b!c"]);
        check(&pat_sep("[!a]!b", '!'), &["x!b"], &["a!b"]);
    }

    #[test]
    fn unicode() {
        check(
            &pat("日本.*"),
            &["日本.東京", "日本.x"],
            &["日本", "日本.東.京"],
        );
        check(&pat("ü?er"), &["über", "ümer"], &["uber", "üer"]);
        check(&pat("[α-ω]*"), &["αβγ", "ω"], &["a", "Α"]);
        check(&pat("[!é]"), &["e", "💡"], &["é"]);
        check(&pat("*💡*"), &["a💡b", "💡"], &["ab"]);
        check(&pat("{ä,ö}.x"), &["ä.x", "ö.x"], &["a.x"]);
        assert_eq!(pat("{äa,äb}").literal_prefix(), "ä");
        assert_eq!(pat("{äa,ö}").literal_prefix(), "");
        // Distinct chars with a common first UTF-8 byte must not yield a partial char.
        assert_eq!(pat("{é,è}").literal_prefix(), "");
    }

    #[test]
    fn literal_prefix_cases() {
        assert_eq!(pat("app.config.*").literal_prefix(), "app.config.");
        assert_eq!(pat("{app,apx}.x").literal_prefix(), "ap");
        assert_eq!(pat("a\\*b*").literal_prefix(), "a*b");
        assert_eq!(pat("**").literal_prefix(), "");
        assert_eq!(pat("a.**").literal_prefix(), "a.");
        assert_eq!(pat("a.**.b").literal_prefix(), "a.");
        assert_eq!(pat("a?").literal_prefix(), "a");
        assert_eq!(pat("ab[c]").literal_prefix(), "ab");
        assert_eq!(pat("{a,ab}").literal_prefix(), "a");
        assert_eq!(pat("x{a,b}").literal_prefix(), "x");
        assert_eq!(pat("x.{a.*,a.b}").literal_prefix(), "x.a.");
    }

    #[test]
    fn is_literal_and_as_str() {
        assert!(pat("a.b.c").is_literal());
        assert!(pat("{a,a}").is_literal());
        assert!(pat("{a}.b").is_literal());
        assert_eq!(pat("{a}.b").literal_prefix(), "a.b");
        assert!(!pat("{a,b}").is_literal());
        assert!(!pat("a.*").is_literal());
        assert!(!pat("a?").is_literal());
        assert!(!pat("[a]").is_literal());
        assert!(!pat("**").is_literal());
        assert_eq!(pat("{a,b}.*").as_str(), "{a,b}.*");
    }

    #[test]
    fn errors() {
        assert_eq!(err(""), PatternError::Empty);
        let long = "a".repeat(Pattern::MAX_LEN + 1);
        assert_eq!(
            err(&long),
            PatternError::TooLong {
                len: 4097,
                limit: 4096
            }
        );
        assert!(Pattern::compile(&"a".repeat(Pattern::MAX_LEN), '.').is_ok());
        assert_eq!(err("ab[cd"), PatternError::UnclosedClass { offset: 2 });
        assert_eq!(err("[]"), PatternError::UnclosedClass { offset: 0 });
        assert_eq!(err("[!]"), PatternError::UnclosedClass { offset: 0 });
        assert_eq!(err("[a\\]"), PatternError::UnclosedClass { offset: 0 });
        assert_eq!(err("[a-"), PatternError::UnclosedClass { offset: 0 });
        assert_eq!(err("[a\\"), PatternError::UnclosedClass { offset: 0 });
        assert_eq!(err("a{b,c"), PatternError::UnclosedBrace { offset: 1 });
        assert_eq!(err("{a,{b}"), PatternError::UnclosedBrace { offset: 0 });
        assert_eq!(err("{a,{b"), PatternError::UnclosedBrace { offset: 3 });
        assert_eq!(err("ab}"), PatternError::UnmatchedBrace { offset: 2 });
        assert_eq!(err("{a}}"), PatternError::UnmatchedBrace { offset: 3 });
        assert_eq!(err("ab\\"), PatternError::DanglingEscape);
        assert_eq!(err("é[z-a]"), PatternError::InvalidRange { offset: 3 });
        assert_eq!(err("[ab-a]"), PatternError::InvalidRange { offset: 2 });
        for bad in [
            '*', '?', '[', ']', '{', '}', '\\', ':', 'a', '0', ' ', 'é', '\0',
        ] {
            assert_eq!(
                Pattern::compile("a", bad).unwrap_err(),
                PatternError::InvalidSeparator { separator: bad }
            );
        }
        for good in ['.', '/', '-', ',', '|', '!', '^', '~', '#', '@', '_'] {
            assert!(Pattern::compile("a", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        assert_eq!(
            err("a{b").to_string(),
            "unclosed brace: `{` at byte 1 has no closing `}`"
        );
        assert_eq!(
            err("b}").to_string(),
            "unmatched brace: `}` at byte 1 has no opening `{`"
        );
        assert_eq!(
            err("[").to_string(),
            "unclosed character class: `[` at byte 0 has no closing `]`"
        );
        assert_eq!(
            err("\\").to_string(),
            "dangling escape: pattern ends with `\\`"
        );
        assert!(
            Pattern::compile("a", ':')
                .unwrap_err()
                .to_string()
                .contains("`:`")
        );
    }

    #[test]
    fn pathological_inputs_stay_fast() {
        // Exponential backtracking would make these take geological time.
        let p = pat(&format!("{}b", "*a".repeat(30)));
        assert!(!p.matches(&"a".repeat(200)));
        let p = pat(&format!("{}b", "**.a.".repeat(30)));
        assert!(!p.matches(&["a"; 200].join(".")));
        let p = pat(&format!("{}.**", "**.a".repeat(30)));
        assert!(p.matches(&["a"; 200].join(".")));
    }

    #[test]
    fn pattern_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Pattern>();
        assert_send_sync::<PatternError>();
    }

    /// Independent reference: the brace- and escape-free pattern as an anchored regex, built
    /// from the rules in the module docs (separator `.`).
    fn reference_regex(pattern: &str) -> regex::Regex {
        // Split on separators outside classes; generated classes hold no `[` or `]`.
        let mut segments = vec![String::new()];
        let mut in_class = false;
        for c in pattern.chars() {
            match c {
                '[' => in_class = true,
                ']' => in_class = false,
                '.' if !in_class => {
                    segments.push(String::new());
                    continue;
                }
                _ => {}
            }
            segments.last_mut().unwrap().push(c);
        }
        let n = segments.len();
        let mut re = String::from("^");
        let mut previous_was_double_star = false;
        for (i, segment) in segments.iter().enumerate() {
            // A non-final `**` group already ends with its own separator.
            if i > 0 && !previous_was_double_star {
                re.push_str(r"\.");
            }
            previous_was_double_star = false;
            if segment == "**" {
                if i + 1 == n {
                    re.push_str(".*");
                } else {
                    re.push_str(r"(?:.*\.)?");
                    previous_was_double_star = true;
                }
                continue;
            }
            let chars: Vec<char> = segment.chars().collect();
            let mut j = 0;
            while j < chars.len() {
                match chars[j] {
                    '*' => re.push_str(r"[^.]*"),
                    '?' => re.push_str(r"[^.]"),
                    '[' => {
                        let negated = matches!(chars[j + 1], '!' | '^');
                        let start = j + 1 + usize::from(negated);
                        let close = start + chars[start..].iter().position(|&c| c == ']').unwrap();
                        let body: String = chars[start..close]
                            .iter()
                            .map(|&c| {
                                if c == '-' {
                                    "-".to_owned()
                                } else {
                                    regex::escape(&c.to_string())
                                }
                            })
                            .collect();
                        if negated {
                            re.push_str(&(format!("[^{body}") + r"\.]"));
                        } else {
                            re.push_str(&(format!("[{body}") + "&&[^.]]"));
                        }
                        j = close;
                    }
                    c => re.push_str(&regex::escape(&c.to_string())),
                }
                j += 1;
            }
        }
        re.push('$');
        regex::Regex::new(&re).unwrap()
    }

    fn atom() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "a", "b", ".", ".", "*", "**", "?", "[ab]", "[!a]", "[^b]", "[a-b]", "[.]", "[!.]",
        ])
    }

    fn glob() -> impl Strategy<Value = String> {
        prop::collection::vec(atom(), 1..7).prop_map(|atoms| atoms.concat())
    }

    fn path() -> impl Strategy<Value = String> {
        "[abc.]{0,8}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn matches_agrees_with_regex_reference(pattern in glob(), paths in prop::collection::vec(path(), 16)) {
            let compiled = pat(&pattern);
            let reference = reference_regex(&pattern);
            for path in &paths {
                prop_assert_eq!(
                    compiled.matches(path),
                    reference.is_match(path),
                    "pattern {:?} path {:?} regex {:?}", pattern, path, reference.as_str()
                );
            }
        }

        #[test]
        fn matching_paths_start_with_literal_prefix(
            a in glob(), b in glob(), tail in glob(), paths in prop::collection::vec(path(), 16),
        ) {
            let compiled = pat(&format!("{{{a},{b}}}{tail}"));
            let prefix = compiled.literal_prefix();
            for path in &paths {
                if compiled.matches(path) {
                    prop_assert!(path.starts_with(prefix), "{:?} {:?}", compiled.as_str(), path);
                }
            }
            if compiled.is_literal() {
                prop_assert!(compiled.matches(prefix));
            }
        }

        #[test]
        fn braces_match_like_their_alternatives(
            a in glob(), b in glob(), tail in glob(), paths in prop::collection::vec(path(), 16),
        ) {
            let braced = pat(&format!("{{{a},{b}}}.{tail}"));
            let left = pat(&format!("{a}.{tail}"));
            let right = pat(&format!("{b}.{tail}"));
            for path in &paths {
                prop_assert_eq!(braced.matches(path), left.matches(path) || right.matches(path));
            }
        }

        #[test]
        fn literal_prefix_is_a_prefix_of_literal_matches(lit in "[ab.]{1,8}") {
            let compiled = pat(&lit);
            prop_assert!(compiled.is_literal());
            prop_assert_eq!(compiled.literal_prefix(), lit.as_str());
            prop_assert!(compiled.matches(&lit));
        }

        #[test]
        fn never_panics(pattern in "[ab.*?\\[\\]{},!^\\\\é-]{0,12}", path in "[ab.é*]{0,10}") {
            if let Ok(compiled) = Pattern::compile(&pattern, '.') {
                let _ = compiled.matches(&path);
                let _ = compiled.literal_prefix();
            }
        }

        #[test]
        fn never_panics_on_arbitrary_text(pattern in any::<String>(), path in any::<String>()) {
            if let Ok(compiled) = Pattern::compile(&pattern, '/') {
                let _ = compiled.matches(&path);
            }
        }
    }
}
