//! Newline-terminated lines from a stream, bounded: the IRC of Twitch and
//! the JSON-RPC of signal-cli are both a line per message, and a peer that
//! never ends its line must not grow a buffer without end. A reader holds at
//! most one line of its cap and one read; a longer line is dropped whole and
//! reported as [`Read::Malformed`], so the caller decides whether it skips
//! it (IRC) or ends the connection (JSON-RPC).

use tokio::io::{AsyncRead, AsyncReadExt};

/// What [`LineReader::next_line`] read.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Line(String),
    /// A line longer than the reader's cap or not UTF-8: skipped whole.
    Malformed(String),
    /// The connection ended.
    Closed,
}

/// Reads CR LF (or LF) terminated lines of at most `max` bytes from a
/// stream; empty lines are skipped.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: usize,
    /// Dropping the rest of an oversized line.
    skipping: bool,
}

impl<R> LineReader<R> {
    /// A reader of lines of at most `max` bytes (the line ending aside).
    pub fn with_max(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    /// The stream, to write to.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    /// The next line. Cancel-safe: a partial line stays buffered.
    pub async fn next_line(&mut self) -> std::io::Result<Read> {
        let max = self.max;
        loop {
            if let Some(at) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=at).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if std::mem::take(&mut self.skipping) {
                    return Ok(Read::Malformed(format!("line longer than {max} bytes")));
                }
                if line.len() > max {
                    return Ok(Read::Malformed(format!(
                        "line of {} bytes; at most {max}",
                        line.len()
                    )));
                }
                return Ok(match String::from_utf8(line) {
                    Ok(text) if text.is_empty() => continue,
                    Ok(text) => Read::Line(text),
                    Err(_) => Read::Malformed("line not UTF-8".into()),
                });
            }
            // The cap plus CR LF: anything longer without a newline is over.
            if self.buf.len() > max + 1 {
                self.buf.clear();
                self.skipping = true;
            }
            let mut chunk = [0u8; 4096];
            let n = self.inner.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Read::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reader_bounds_lines() {
        const MAX: usize = 100;
        let mut input = b"PING :a\r\n".to_vec();
        input.extend(vec![b'x'; MAX + 5000]);
        input.extend(b"\r\n\xff\xfe\r\n\r\nPING :b\n");
        input.extend(vec![b'y'; MAX]);
        input.extend(b"\n");
        let mut r = LineReader::with_max(&input[..], MAX);
        assert_eq!(r.next_line().await.unwrap(), Read::Line("PING :a".into()));
        assert!(matches!(r.next_line().await.unwrap(), Read::Malformed(_)));
        assert!(matches!(r.next_line().await.unwrap(), Read::Malformed(_)));
        assert_eq!(r.next_line().await.unwrap(), Read::Line("PING :b".into()));
        assert_eq!(r.next_line().await.unwrap(), Read::Line("y".repeat(MAX)));
        assert_eq!(r.next_line().await.unwrap(), Read::Closed);
    }
}
