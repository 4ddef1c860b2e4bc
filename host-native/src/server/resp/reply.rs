//! RESP2 replies, appended to the connection's output buffer (one write per batch of requests).

/// Appends `n` in decimal. itoa writes two digits per step from a table; the digit-at-a-time
/// loop with a division per digit it replaced was 2% of a pipelined INCR's instructions.
fn push_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

pub(super) fn ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

pub(super) fn simple(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'+');
    out.extend_from_slice(text);
    out.extend_from_slice(b"\r\n");
}

/// An error reply. `text` starts with the error code (`ERR`, `WRONGTYPE`, ...). Line breaks
/// would end the reply early, so they become blanks, as Redis does with its own messages.
pub(super) fn error(out: &mut Vec<u8>, text: &str) {
    out.push(b'-');
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

pub(super) fn int(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    push_int(out, n);
    out.extend_from_slice(b"\r\n");
}

pub(super) fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.reserve(data.len() + 16);
    out.push(b'$');
    push_int(out, data.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A bulk reply holding the decimal form of `n` (GET of an integer value).
pub(super) fn bulk_int(out: &mut Vec<u8>, n: i64) {
    bulk(out, itoa::Buffer::new().format(n).as_bytes());
}

/// The null bulk string: GET of a missing key.
pub(super) fn nil(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// The null array: EXEC aborted by WATCH.
pub(super) fn nil_array(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
}

pub(super) fn array(out: &mut Vec<u8>, len: usize) {
    out.push(b'*');
    push_int(out, len);
    out.extend_from_slice(b"\r\n");
}

/// `-ERR wrong number of arguments for 'get' command`.
pub(super) fn arity(out: &mut Vec<u8>, name: &str) {
    error(out, &arity_text(name));
}

/// The text of Redis's arity error for command `name` (`client|setname` for a subcommand).
pub(super) fn arity_text(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

pub(super) fn syntax(out: &mut Vec<u8>) {
    error(out, "ERR syntax error");
}

pub(super) fn not_integer(out: &mut Vec<u8>) {
    error(out, "ERR value is not an integer or out of range");
}

pub(super) fn wrong_type(out: &mut Vec<u8>) {
    error(
        out,
        "WRONGTYPE Operation against a key holding the wrong kind of value",
    );
}

/// Redis's reply to an unknown command: its name and the start of its arguments, each cut so
/// the whole list stays near 128 bytes.
pub(super) fn unknown_command(out: &mut Vec<u8>, name: &[u8], args: impl Iterator<Item = Vec<u8>>) {
    let mut text = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&name[..name.len().min(128)])
    );
    let mut listed = 0usize;
    for arg in args {
        if listed >= 128 {
            break;
        }
        let room = 128 - listed;
        let shown = String::from_utf8_lossy(&arg[..arg.len().min(room)]).into_owned();
        listed += shown.len() + 3;
        text.push('\'');
        text.push_str(&shown);
        text.push_str("' ");
    }
    error(out, &text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_each_type() {
        let mut out = Vec::new();
        ok(&mut out);
        int(&mut out, -3);
        bulk(&mut out, b"hi");
        nil(&mut out);
        array(&mut out, 2);
        error(&mut out, "ERR a\r\nb");
        assert_eq!(out, b"+OK\r\n:-3\r\n$2\r\nhi\r\n$-1\r\n*2\r\n-ERR a  b\r\n");
    }

    #[test]
    fn unknown_command_matches_redis() {
        let mut out = Vec::new();
        unknown_command(
            &mut out,
            b"foo",
            [b"bar".to_vec(), b"baz".to_vec()].into_iter(),
        );
        assert_eq!(
            out,
            b"-ERR unknown command 'foo', with args beginning with: 'bar' 'baz' \r\n"
        );
    }
}
