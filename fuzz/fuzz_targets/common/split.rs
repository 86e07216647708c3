//! Splits a fuzz input into header-like text lines and a body.
#![allow(dead_code)] // each target uses part of it

/// The first `n` lines (as text, without the newline) and the rest.
pub fn lines(data: &[u8], n: usize) -> (Vec<String>, &[u8]) {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    for _ in 0..n {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        out.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        rest = rest.get(end + 1..).unwrap_or(&[]);
    }
    (out, rest)
}

/// A fixed "now" for the signature checks' timestamp window (Unix seconds).
pub const NOW: i64 = 1_700_000_000;

/// A timestamp header value: valid and inside the window, outside it, or the
/// fuzzer's own text; with whether it is valid and fresh.
pub fn timestamp(choice: u8, own: &str) -> (String, bool) {
    match choice % 4 {
        0 => ((NOW - 12).to_string(), true),
        1 => ((NOW + 300).to_string(), true),
        2 => ((NOW - 301).to_string(), false),
        _ => {
            let fresh = !own.is_empty()
                && own.len() <= 12
                && own.bytes().all(|b| b.is_ascii_digit())
                && own.parse::<i64>().is_ok_and(|t| (NOW - t).abs() <= 300);
            (own.to_string(), fresh)
        }
    }
}
