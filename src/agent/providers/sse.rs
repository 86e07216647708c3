//! Server-sent events: split a byte stream into `(event, data)` pairs.

/// One SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Incremental SSE parser; feed bytes, take complete events.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: Vec<String>,
}

/// Refuse absurd lines rather than buffering without bound.
const MAX_LINE: usize = 4 * 1024 * 1024;

impl SseParser {
    /// Feed a chunk; returns the events it completed. `Err` on an oversized line
    /// or invalid UTF-8.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, &'static str> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line).map_err(|_| "invalid UTF-8 in event stream")?;
            if line.is_empty() {
                if !self.data.is_empty() || !self.event.is_empty() {
                    out.push(SseEvent {
                        event: std::mem::take(&mut self.event),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                }
            } else if line.starts_with(':') {
                // comment
            } else {
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line.as_str(), ""),
                };
                match field {
                    "event" => self.event = value.to_string(),
                    "data" => self.data.push(value.to_string()),
                    _ => {}
                }
            }
        }
        if self.buf.len() > MAX_LINE {
            return Err("event stream line too long");
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_events_across_chunks() {
        let mut p = SseParser::default();
        let mut evs = p.feed(b"event: ping\ndata: {}\n\nevent: mess").unwrap();
        evs.extend(
            p.feed(b"age_stop\r\ndata: {\"a\":1}\r\n\r\n: c\ndata: [DONE]\n\n")
                .unwrap(),
        );
        assert_eq!(evs.len(), 3);
        assert_eq!(evs[1].event, "message_stop");
        assert_eq!(evs[1].data, "{\"a\":1}");
        assert_eq!(evs[2].data, "[DONE]");
    }
}
