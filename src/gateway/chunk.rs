//! Outbound replies split to each platform's message limit, on character
//! boundaries (limits count Unicode scalar values; Telegram counts UTF-16 units
//! after entity parsing, so its limit is applied to UTF-16 length too; Google
//! Chat counts bytes: [`chunk_bytes`]).

/// Telegram `sendMessage` text limit.
pub const TELEGRAM_MAX_CHARS: usize = 4096;
/// Slack accepts ~40 000, but blocks of 3 000 keep messages readable.
pub const SLACK_MAX_CHARS: usize = 3000;
/// Discord message `content` limit.
pub const DISCORD_MAX_CHARS: usize = 2000;

/// Splits `text` into pieces of at most `max` characters (and at most `max`
/// UTF-16 code units), preferring to break after a newline or a space in the
/// last quarter of a piece. Empty text gives no pieces.
pub fn chunk_text(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    split(text, |rest| {
        // Byte index where `max` characters (or UTF-16 units) end.
        let mut end = rest.len();
        let mut units = 0;
        for (n, (i, c)) in rest.char_indices().enumerate() {
            units += c.len_utf16();
            if n + 1 > max || units > max {
                end = i;
                break;
            }
        }
        let floor = rest[..end]
            .char_indices()
            .nth(max - max / 4)
            .map_or(end, |(i, _)| i);
        (end, floor)
    })
}

/// Splits `text` into pieces of at most `max` bytes of UTF-8, never inside a
/// character, preferring to break after a newline or a space in the last
/// quarter of a piece. Empty text gives no pieces.
pub fn chunk_bytes(text: &str, max: usize) -> Vec<String> {
    // The longest character is 4 bytes: a smaller cap could not always progress.
    let max = max.max(4);
    split(text, |rest| {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        (end, max - max / 4)
    })
}

/// The splitting both limits share: `limit(rest)` gives the byte index where
/// the next piece must end at the latest, and the earliest index a break
/// after a newline (else a space) may move that end back to.
fn split(text: &str, limit: impl Fn(&str) -> (usize, usize)) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (mut end, floor) = limit(rest);
        if end < rest.len() {
            let piece = &rest[..end];
            if let Some(br) = piece.rfind('\n').or_else(|| piece.rfind(' '))
                && br >= floor
            {
                end = br + 1;
            }
        }
        out.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_boundaries() {
        assert!(chunk_text("", 10).is_empty());
        assert_eq!(chunk_text("hello", 10), vec!["hello"]);
        let s = "é".repeat(25);
        let parts = chunk_text(&s, 10);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= 10));
        assert_eq!(parts.concat(), s);
        // Astral characters count two UTF-16 units.
        let s = "😀".repeat(5);
        let parts = chunk_text(&s, 4);
        assert!(parts.iter().all(|p| p.encode_utf16().count() <= 4));
        assert_eq!(parts.concat(), s);
        // Prefers a word break near the end.
        let parts = chunk_text("aaaaaaaa bbbbbbb", 10);
        assert_eq!(parts, vec!["aaaaaaaa ", "bbbbbbb"]);
        // A break before the last quarter is not taken (no tiny pieces).
        assert_eq!(chunk_text("a bbbbbbbbbbbb", 10), vec!["a bbbbbbbb", "bbbb"]);
        let long = "x".repeat(TELEGRAM_MAX_CHARS * 2 + 1);
        assert_eq!(chunk_text(&long, TELEGRAM_MAX_CHARS).len(), 3);
    }

    #[test]
    fn byte_pieces_never_split_a_character() {
        assert!(chunk_bytes("", 10).is_empty());
        assert_eq!(chunk_bytes("hello", 10), vec!["hello"]);
        // 3-byte and 4-byte characters against a limit that is no multiple of either.
        for s in ["€".repeat(1000), "😀".repeat(1000), "a€😀é".repeat(300)] {
            for max in [4, 5, 7, 100, 32_000] {
                let parts = chunk_bytes(&s, max);
                assert!(
                    parts.iter().all(|p| p.len() <= max && !p.is_empty()),
                    "{max}"
                );
                assert_eq!(parts.concat(), s);
            }
        }
        assert_eq!(
            chunk_bytes("aaaaaaaa bbbbbbb", 10),
            vec!["aaaaaaaa ", "bbbbbbb"]
        );
        assert_eq!(chunk_bytes(&"x".repeat(64_001), 32_000).len(), 3);
    }
}
