//! Reading one line at a time without ever holding more than the request limit.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line is in the buffer (without its `\n` or `\r\n`).
    Complete,
    /// The peer closed the connection (a partial last line is dropped).
    Eof,
    /// The line is longer than the limit; what was read of it is discarded.
    TooLarge,
}

/// Reads the next line into `buf` (which must start empty), stopping as soon as the line
/// passes `max` bytes so an endless line costs at most `max` bytes of memory.
///
/// Cancel-safe: a partial line stays in `buf` and the next call continues it, so callers may
/// race this against timeouts and shutdown in `select!`. Clear `buf` after each line.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(end) => {
                if buf.len() + end > max {
                    return Ok(Line::TooLarge);
                }
                buf.extend_from_slice(&available[..end]);
                reader.consume(end + 1);
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                return Ok(Line::Complete);
            }
            None => {
                let n = available.len();
                if buf.len() + n > max {
                    return Ok(Line::TooLarge);
                }
                buf.extend_from_slice(available);
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_split_across_reads_and_limits() {
        let data: &[u8] = b"{\"a\":1}\r\nsecond\n0123456789abcdef\ntail";
        // A tiny buffer forces lines to arrive in pieces.
        let mut reader = tokio::io::BufReader::with_capacity(3, data);
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).await.ok(),
            Some(Line::Complete)
        );
        assert_eq!(buf, b"{\"a\":1}");
        buf.clear();
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).await.ok(),
            Some(Line::Complete)
        );
        assert_eq!(buf, b"second");
        buf.clear();
        assert_eq!(
            read_line(&mut reader, &mut buf, 10).await.ok(),
            Some(Line::TooLarge)
        );
        assert!(buf.len() <= 10);
    }

    #[tokio::test]
    async fn eof_ends_and_drops_a_partial_line() {
        let mut reader = tokio::io::BufReader::new(&b"partial"[..]);
        let mut buf = Vec::new();
        assert_eq!(
            read_line(&mut reader, &mut buf, 100).await.ok(),
            Some(Line::Eof)
        );
    }
}
