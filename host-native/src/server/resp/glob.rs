//! Redis's glob (KEYS, SCAN MATCH, PSUBSCRIBE) over bytes: `*` any run, `?` one byte, `[abc]`,
//! `[a-z]`, `[^a]` a set, `\x` the byte `x`. Unlike the store's patterns, `*` crosses `.` and
//! `:`, so Redis patterns are matched here, against keys in their Redis form.
//!
//! Matching remembers only the most recent `*` (every other token consumes exactly one byte), so
//! it runs in O(pattern × text) time whatever the pattern: no exponential backtracking.

/// True when `text` matches the Redis glob `pattern`.
pub(super) fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the last `*`: the pattern just past it, and the text it has eaten.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                while pattern.get(p) == Some(&b'*') {
                    p += 1;
                }
                if p == pattern.len() {
                    return true;
                }
                star = Some((p, t));
                continue;
            }
            Some(_) => {
                if let Some(next) = one(pattern, p, text[t]) {
                    p = next;
                    t += 1;
                    continue;
                }
            }
            None => {}
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&b| b == b'*')
}

/// Matches the token at `pattern[p]` (not `*`) against `c`; the position after the token when
/// it matches.
fn one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        b'[' => class(pattern, p + 1, c),
        b => (b == c).then_some(p + 1),
    }
}

/// A `[...]` set starting after the `[`; like Redis, a set missing its `]` ends with the
/// pattern.
fn class(pattern: &[u8], mut p: usize, c: u8) -> Option<usize> {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut hit = false;
    while p < pattern.len() && pattern[p] != b']' {
        if pattern[p] == b'\\' && p + 1 < pattern.len() {
            hit |= pattern[p + 1] == c;
            p += 2;
        } else if p + 2 < pattern.len() && pattern[p + 1] == b'-' {
            // As in Redis, even `]` ends a range: `[a-]` is the bytes from `]` to `a`, and the
            // set then runs on to the next `]` (or the pattern's end).
            let (a, b) = (pattern[p], pattern[p + 2]);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            hit |= (lo..=hi).contains(&c);
            p += 3;
        } else {
            hit |= pattern[p] == c;
            p += 1;
        }
    }
    let after = (p + 1).min(pattern.len());
    (hit != negate).then_some(after)
}

/// The part of `pattern` before its first glob character: every match starts with it.
pub(super) fn literal_prefix(pattern: &[u8]) -> &[u8] {
    let end = pattern
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    &pattern[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_glob_cases() {
        let yes: &[(&[u8], &[u8])] = &[
            (b"*", b""),
            (b"*", b"user:42.name"),
            (b"user:*", b"user:1"),
            (b"h?llo", b"hello"),
            (b"h*llo", b"heeeello"),
            (b"h[ae]llo", b"hallo"),
            (b"h[^e]llo", b"hallo"),
            (b"h[a-b]llo", b"hbllo"),
            (b"h[b-a]llo", b"hallo"),
            (b"a\\*b", b"a*b"),
            (b"*a*a*a*b", b"aaaaaaaaaaaaaaaaaaaaaaab"),
            (b"[abc", b"a"),
            // `]` ends a range too (Redis's stringmatchlen): `[a-]` is `]` to `a`.
            (b"[a-]", b"^"),
            (b"[a-]", b"a"),
            (b"[\\*x-]", b"b"),
            (b"[!b]", b"!"),
        ];
        for (p, t) in yes {
            assert!(
                matches(p, t),
                "{:?} ~ {:?}",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(t)
            );
        }
        let no: &[(&[u8], &[u8])] = &[
            (b"h?llo", b"hllo"),
            (b"h[^e]llo", b"hello"),
            (b"user:*", b"users:1"),
            (b"a\\*b", b"axb"),
            (b"*a*a*a*b", b"aaaaaaaaaaaaaaaaaaaaaaaa"),
            (b"", b"a"),
            (b"abc", b"ab"),
            (b"[a-]", b"-"),
            (b"[a-]x", b"ax"),
            (b"[!b]", b"a"),
        ];
        for (p, t) in no {
            assert!(
                !matches(p, t),
                "{:?} !~ {:?}",
                String::from_utf8_lossy(p),
                String::from_utf8_lossy(t)
            );
        }
    }

    #[test]
    fn prefix_stops_at_the_first_glob_character() {
        assert_eq!(literal_prefix(b"user:4*"), b"user:4");
        assert_eq!(literal_prefix(b"a?"), b"a");
        assert_eq!(literal_prefix(b"plain"), b"plain");
    }
}
