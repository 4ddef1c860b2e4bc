//! The RESP2 request parser: works on whatever part of a request has arrived so far and hands
//! back the arguments as ranges into the read buffer, so no argument is copied or allocated.
//!
//! Two forms arrive on a Redis port: multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what every
//! client library sends) and inline (`PING\r\n`, what a person types into telnet). Limits follow
//! Redis: a header line or an inline request longer than 64 KiB is refused, and so is anything
//! announcing more bytes than the configured request limit, before any of it is buffered.

use std::ops::Range;

/// The longest header line (`*N` / `$N`) or inline request, as in Redis (PROTO_INLINE_MAX_SIZE).
pub(super) const INLINE_MAX: usize = 64 * 1024;
/// Most arguments in one multibulk request, as Redis allows.
const MAX_ARGS: usize = 1024 * 1024;
/// The smallest encoding of one argument (`$0\r\n\r\n`): a request announcing `n` arguments
/// needs at least `n` times this, which lets an absurd count be refused on sight.
const MIN_ARG_BYTES: usize = 6;

/// Why a request cannot be parsed. The connection answers `-ERR Protocol error: <message>` and
/// closes, as Redis does: after a framing error nothing later in the stream can be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(super) enum ProtocolError {
    #[error("too big mbulk count string")]
    BigCount,
    #[error("invalid multibulk length")]
    MultibulkLength,
    #[error("too big bulk count string")]
    BigBulkCount,
    #[error("invalid bulk length")]
    BulkLength,
    #[error("expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("too big inline request")]
    BigInline,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
}

/// Parses one request starting at `start`. On success returns the offset just past it and
/// leaves its arguments in `args` as absolute ranges of `buf` (no arguments: an empty line or
/// `*0`, which the caller skips). `Ok(None)`: the request is not complete yet.
///
/// `#[inline]` here and on `parse_multibulk`: their one caller, `Batch::parse`, is the port's
/// hot loop, and whether they landed in its codegen unit (and so were inlined) shifted with
/// unrelated changes: 42 instructions more per pipelined request when they did not.
#[inline]
pub(super) fn parse_request(
    buf: &mut [u8],
    start: usize,
    max_request: usize,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    args.clear();
    match buf.get(start) {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, start, max_request, args),
        Some(_) => parse_inline(buf, start, max_request, args),
    }
}

#[inline]
fn parse_multibulk(
    buf: &[u8],
    start: usize,
    max_request: usize,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let Some((count, line_end)) = length_line(
        buf,
        start,
        ProtocolError::BigCount,
        ProtocolError::MultibulkLength,
    )?
    else {
        return Ok(None);
    };
    // `*-1` and the like: an empty request, as in Redis.
    let count = usize::try_from(count).unwrap_or(0);
    let mut pos = line_end + 2;
    if count == 0 {
        return Ok(Some(pos));
    }
    if count > MAX_ARGS || count.saturating_mul(MIN_ARG_BYTES) > max_request {
        return Err(ProtocolError::MultibulkLength);
    }
    for _ in 0..count {
        let Some(&first) = buf.get(pos) else {
            return Ok(None);
        };
        if first != b'$' {
            return Err(ProtocolError::ExpectedDollar(char::from(first)));
        }
        let Some((len, line_end)) = length_line(
            buf,
            pos,
            ProtocolError::BigBulkCount,
            ProtocolError::BulkLength,
        )?
        else {
            return Ok(None);
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= max_request)
            .ok_or(ProtocolError::BulkLength)?;
        let data = line_end + 2;
        let end = data + len;
        // The whole request, not just this argument, must fit the limit.
        if end - start > max_request {
            return Err(ProtocolError::BulkLength);
        }
        if end + 2 > buf.len() {
            return Ok(None);
        }
        args.push(data..end);
        // Like Redis, the two bytes after the data are taken to be CRLF without a check.
        pos = end + 2;
    }
    Ok(Some(pos))
}

/// An inline request: one line, split as Redis's `sdssplitargs` splits it. Arguments are
/// separated by blanks; double quotes group an argument and take escapes (`\n`, `\r`, `\t`,
/// `\b`, `\a`, `\xHH`, and a backslash before any other byte stands for that byte); single
/// quotes group one and take only `\'`. A closing quote must be followed by a blank or the end
/// of the line, else the quotes are unbalanced. (A NUL byte is an ordinary byte here; Redis
/// never finds the end of a line with one in it.) Each argument is unescaped over its own
/// bytes (it can only shrink), so its range still points into `buf`.
fn parse_inline(
    buf: &mut [u8],
    start: usize,
    max_request: usize,
    args: &mut Vec<Range<usize>>,
) -> Result<Option<usize>, ProtocolError> {
    let limit = INLINE_MAX.min(max_request);
    let Some(newline) = memchr(b'\n', &buf[start..]).map(|i| start + i) else {
        return if buf.len() - start > limit {
            Err(ProtocolError::BigInline)
        } else {
            Ok(None)
        };
    };
    if newline - start > limit {
        return Err(ProtocolError::BigInline);
    }
    let mut end = newline;
    if end > start && buf[end - 1] == b'\r' {
        end -= 1;
    }
    let line = &mut buf[..end];
    let mut read = start;
    loop {
        while line.get(read).copied().is_some_and(is_space) {
            read += 1;
        }
        if read == end {
            break;
        }
        let (written, next) = split_argument(line, read)?;
        args.push(read..written);
        read = next;
    }
    Ok(Some(newline + 1))
}

/// Reads one inline argument starting at `from` (not a blank), writing its unescaped bytes
/// from `from` on. Returns where the written bytes end and where reading stopped.
fn split_argument(line: &mut [u8], from: usize) -> Result<(usize, usize), ProtocolError> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Double,
        Single,
    }
    let mut quote = Quote::None;
    let (mut read, mut write) = (from, from);
    // Unescaping only shrinks an argument, so `write` never passes `read`.
    let put = |line: &mut [u8], write: &mut usize, byte: u8| {
        line[*write] = byte;
        *write += 1;
    };
    // After a closing quote: the argument ends, and a blank or the line's end must follow.
    let closed = |line: &[u8], after: usize| match line.get(after) {
        Some(&b) if !is_space(b) => Err(ProtocolError::UnbalancedQuotes),
        _ => Ok(after),
    };
    loop {
        let byte = line.get(read).copied();
        match quote {
            Quote::Double => match byte {
                None => return Err(ProtocolError::UnbalancedQuotes),
                Some(b'\\') => match (line.get(read + 1).copied(), line.get(read + 2..read + 4)) {
                    (Some(b'x'), Some(&[hi, lo]))
                        if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() =>
                    {
                        put(line, &mut write, hex(hi) << 4 | hex(lo));
                        read += 4;
                    }
                    (Some(escaped), _) => {
                        put(
                            line,
                            &mut write,
                            match escaped {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 0x08,
                                b'a' => 0x07,
                                other => other,
                            },
                        );
                        read += 2;
                    }
                    (None, _) => {
                        put(line, &mut write, b'\\');
                        read += 1;
                    }
                },
                Some(b'"') => return Ok((write, closed(line, read + 1)?)),
                Some(other) => {
                    put(line, &mut write, other);
                    read += 1;
                }
            },
            Quote::Single => match byte {
                None => return Err(ProtocolError::UnbalancedQuotes),
                Some(b'\\') if line.get(read + 1) == Some(&b'\'') => {
                    put(line, &mut write, b'\'');
                    read += 2;
                }
                Some(b'\'') => return Ok((write, closed(line, read + 1)?)),
                Some(other) => {
                    put(line, &mut write, other);
                    read += 1;
                }
            },
            Quote::None => match byte {
                None | Some(b' ' | b'\n' | b'\r' | b'\t') => return Ok((write, read)),
                Some(b'"') => {
                    quote = Quote::Double;
                    read += 1;
                }
                Some(b'\'') => {
                    quote = Quote::Single;
                    read += 1;
                }
                Some(other) => {
                    put(line, &mut write, other);
                    read += 1;
                }
            },
        }
    }
}

/// C's `isspace`, which Redis skips between inline arguments.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The value of a hex digit (checked by the caller).
fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

/// The length line of the `*` or `$` header at `at`: its value and where its CRLF starts;
/// `Ok(None)` while it is incomplete. `too_long`: the line ran past the inline limit without
/// ending; `invalid`: it is not a number.
#[inline]
fn length_line(
    buf: &[u8],
    at: usize,
    too_long: ProtocolError,
    invalid: ProtocolError,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    match short_length_line(buf, at + 1) {
        Some((value, line_end)) => Ok(Some((i64::from(value), line_end))),
        None => any_length_line(buf, at, too_long, invalid),
    }
}

/// A length of one or two digits, the length of nearly every header a client sends, read
/// inline in the request loop: a call to the general reader cost a pipelined SET about 180
/// instructions for its four headers. `(value, offset of the \r)`.
#[inline]
fn short_length_line(buf: &[u8], from: usize) -> Option<(u8, usize)> {
    match buf.get(from..)? {
        [first @ b'1'..=b'9', b'\r', b'\n', ..] => Some((first - b'0', from + 1)),
        [first @ b'1'..=b'9', second @ b'0'..=b'9', b'\r', b'\n', ..] => {
            Some(((first - b'0') * 10 + (second - b'0'), from + 2))
        }
        _ => None,
    }
}

/// [`length_line`] for every other line: longer numbers, and what is refused.
#[inline(never)]
fn any_length_line(
    buf: &[u8],
    at: usize,
    too_long: ProtocolError,
    invalid: ProtocolError,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    if let Some((value, line_end)) = plain_length_line(buf, at + 1) {
        // At most 18 digits: always an i64.
        return Ok(Some((i64::try_from(value).unwrap_or(i64::MAX), line_end)));
    }
    let Some(line_end) = find_crlf(buf, at + 1) else {
        return if buf.len() - at > INLINE_MAX {
            Err(too_long)
        } else {
            Ok(None)
        };
    };
    let value = parse_len(&buf[at + 1..line_end]).ok_or(invalid)?;
    Ok(Some((value, line_end)))
}

/// The common length line, `[1-9][0-9]*\r\n` or `0\r\n` with at most 18 digits, read in the
/// same pass that finds its end: `(value, offset of the \r)`. `None` for anything else (a
/// sign, a leading zero, a stray byte, an incomplete line), which the general path then
/// parses or refuses with the error it always gave. Searching for the CRLF and then parsing
/// the digits walked every length line twice.
fn plain_length_line(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    const MAX_DIGITS: usize = 18;
    let line = buf.get(from..)?;
    let mut value = 0usize;
    for (i, &b) in line.iter().enumerate().take(MAX_DIGITS + 1) {
        match b {
            b'0'..=b'9' if i < MAX_DIGITS && !(i == 1 && value == 0) => {
                value = value * 10 + usize::from(b - b'0');
            }
            b'\r' if i > 0 && line.get(i + 1) == Some(&b'\n') => return Some((value, from + i)),
            _ => return None,
        }
    }
    None
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let i = at + memchr(b'\r', buf.get(at..)?)?;
        if buf.get(i + 1) == Some(&b'\n') {
            return Some(i);
        }
        at = i + 1;
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// A length field: an optional `-` and decimal digits, nothing else (Redis's string2ll).
fn parse_len(digits: &[u8]) -> Option<i64> {
    super::num::parse_i64(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the request ended and its arguments, copied.
    type Parsed = Option<(usize, Vec<Vec<u8>>)>;

    fn parse(input: &[u8]) -> Result<Parsed, ProtocolError> {
        let mut args = Vec::new();
        let input = &mut input.to_vec();
        let end = parse_request(input, 0, 1 << 20, &mut args)?;
        Ok(end.map(|end| {
            (
                end,
                args.iter().map(|r| input[r.clone()].to_vec()).collect(),
            )
        }))
    }

    #[test]
    fn multibulk_complete_and_partial() {
        let full = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let (end, args) = parse(full).expect("ok").expect("complete");
        assert_eq!(end, full.len());
        assert_eq!(args, vec![b"GET".to_vec(), b"k".to_vec()]);
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "prefix of {cut} bytes");
        }
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let two = &mut b"*1\r\n$4\r\nPING\r\nPING\r\n".to_vec();
        let mut args = Vec::new();
        let end = parse_request(two, 0, 1 << 20, &mut args)
            .expect("ok")
            .expect("first");
        assert_eq!(end, 14);
        let end2 = parse_request(two, end, 1 << 20, &mut args)
            .expect("ok")
            .expect("second");
        assert_eq!(end2, two.len());
        assert_eq!(&two[args[0].clone()], b"PING");
    }

    #[test]
    fn binary_arguments_keep_their_bytes() {
        let req = b"*2\r\n$3\r\nSET\r\n$4\r\n\r\n\x00\xff\r\n";
        let (_, args) = parse(req).expect("ok").expect("complete");
        assert_eq!(args[1], b"\r\n\x00\xff");
    }

    #[test]
    fn inline_requests() {
        let (end, args) = parse(b"SET a  \"b c\"\r\nrest").expect("ok").expect("line");
        assert_eq!(end, 14);
        assert_eq!(args, vec![b"SET".to_vec(), b"a".to_vec(), b"b c".to_vec()]);
        assert_eq!(parse(b"PING"), Ok(None));
        assert_eq!(parse(b"\r\n").expect("ok").expect("empty").1.len(), 0);
        assert_eq!(parse(b"SET \"a\n"), Err(ProtocolError::UnbalancedQuotes));
    }

    /// Quotes and escapes as Redis's `sdssplitargs` reads them (each case was checked against
    /// redis-server 7.0).
    #[test]
    fn inline_quotes_and_escapes_follow_redis() {
        let args = |line: &[u8]| parse(line).expect("ok").expect("complete").1;
        let one = |line: &str| {
            let mut args = args(format!("ECHO {line}\r\n").as_bytes());
            assert_eq!(args.len(), 2, "{line}");
            args.remove(1)
        };
        assert_eq!(one(r#""x\ny""#), b"x\ny");
        assert_eq!(one(r#""\x41\x4a""#), b"AJ");
        assert_eq!(one(r#""\t\r\a\b""#), b"\t\r\x07\x08");
        assert_eq!(one(r#""\z""#), b"z");
        assert_eq!(one(r#""\x4""#), b"x4");
        assert_eq!(one(r#""\xZZ""#), b"xZZ");
        assert_eq!(one(r#""\"""#), b"\"");
        assert_eq!(one(r"'a\'b'"), b"a'b");
        assert_eq!(one(r"'\n'"), b"\\n");
        assert_eq!(one(r#"a"b c""#), b"ab c");
        assert_eq!(one("\"\""), b"");
        assert_eq!(one("''"), b"");
        assert_eq!(
            args(b"\x0b\x0c ECHO \x0bx \r\n"),
            vec![b"ECHO".to_vec(), b"x".to_vec()]
        );
        assert_eq!(
            args(b"ECHO a\x0bb\r\n"),
            vec![b"ECHO".to_vec(), b"a\x0bb".to_vec()]
        );
        for unbalanced in [
            r#"SET a "x"y"#,
            "SET a 'it''s'",
            r#"ECHO "a"#,
            "ECHO 'a",
            r#"ECHO "a\""#,
            r#"ECHO a"b"c"#,
        ] {
            assert_eq!(
                parse(format!("{unbalanced}\r\n").as_bytes()),
                Err(ProtocolError::UnbalancedQuotes),
                "{unbalanced}"
            );
        }
    }

    #[test]
    fn oversized_and_malformed_requests_are_refused() {
        let mut args = Vec::new();
        let small = 1024;
        assert_eq!(
            parse_request(
                &mut b"*2\r\n$3\r\nSET\r\n$2000\r\n".to_vec(),
                0,
                small,
                &mut args
            ),
            Err(ProtocolError::BulkLength)
        );
        assert_eq!(
            parse_request(&mut b"*1000\r\n".to_vec(), 0, small, &mut args),
            Err(ProtocolError::MultibulkLength)
        );
        assert_eq!(parse(b"*x\r\n"), Err(ProtocolError::MultibulkLength));
        assert_eq!(parse(b"*1\r\n$-1\r\n"), Err(ProtocolError::BulkLength));
        assert_eq!(
            parse(b"*1\r\n:1\r\n"),
            Err(ProtocolError::ExpectedDollar(':'))
        );
        let long = vec![b'a'; INLINE_MAX + 10];
        assert_eq!(parse(&long), Err(ProtocolError::BigInline));
        let mut count = b"*".to_vec();
        count.extend(std::iter::repeat_n(b'1', INLINE_MAX + 10));
        assert_eq!(parse(&count), Err(ProtocolError::BigCount));
        // Many arguments of a few bytes each still add up to the limit.
        let mut many = b"*100\r\n".to_vec();
        for _ in 0..100 {
            many.extend_from_slice(b"$20\r\naaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(
            parse_request(&mut many, 0, small, &mut args),
            Err(ProtocolError::BulkLength)
        );
    }

    /// Arbitrary bytes (biased towards protocol characters) never panic the parser, and it
    /// either makes progress, waits for more, or refuses: it never loops in place.
    #[test]
    fn random_input_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet = b"*$\r\n0123456789-: \"'\\xabcSETGET";
        let mut args = Vec::new();
        for _ in 0..20_000 {
            let len = rng.random_range(0..64);
            let mut input: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.random_bool(0.9) {
                        alphabet[rng.random_range(0..alphabet.len())]
                    } else {
                        rng.random()
                    }
                })
                .collect();
            let mut start = 0;
            while let Ok(Some(end)) = parse_request(&mut input, start, 1024, &mut args) {
                assert!(end > start, "progress on {input:?}");
                assert!(args.iter().all(|r| r.end <= input.len()));
                start = end;
            }
        }
    }

    /// The one-pass length line agrees with finding the CRLF and then parsing the digits,
    /// whenever it answers at all, and answers for every plain length.
    #[test]
    fn the_one_pass_length_line_agrees_with_the_general_path() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let alphabet = b"0123456789\r\n-+ x";
        for _ in 0..50_000 {
            let len = rng.random_range(0..24);
            let line: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if let Some((value, end)) = short_length_line(&line, 0) {
                assert_eq!(
                    plain_length_line(&line, 0),
                    Some((usize::from(value), end)),
                    "{line:?}"
                );
            }
            if let Some((value, end)) = plain_length_line(&line, 0) {
                assert_eq!(find_crlf(&line, 0), Some(end), "{line:?}");
                let parsed = parse_len(&line[..end]).and_then(|n| usize::try_from(n).ok());
                assert_eq!(parsed, Some(value), "{line:?}");
            }
        }
        for value in [0usize, 1, 9, 10, 42, 99, 100, 1024, 999_999_999_999_999_999] {
            let line = format!("{value}\r\n");
            assert_eq!(
                plain_length_line(line.as_bytes(), 0),
                Some((value, line.len() - 2))
            );
            let short = (1..=99).contains(&value).then(|| {
                let value = u8::try_from(value).expect("small");
                (value, line.len() - 2)
            });
            assert_eq!(short_length_line(line.as_bytes(), 0), short, "{line:?}");
        }
        for refused in [
            "05\r\n",
            "-1\r\n",
            "+1\r\n",
            "\r\n",
            "1\r",
            "1",
            "12\r",
            "12\n",
            "1\n",
            "1000000000000000000\r\n",
        ] {
            assert_eq!(
                plain_length_line(refused.as_bytes(), 0),
                None,
                "{refused:?}"
            );
        }
    }

    #[test]
    fn empty_multibulk_is_skipped() {
        assert_eq!(parse(b"*0\r\n"), Ok(Some((4, vec![]))));
        assert_eq!(parse(b"*-1\r\n"), Ok(Some((5, vec![]))));
    }
}
