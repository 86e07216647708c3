//! Static decoders for payloads that are piped into a shell: base64, hex (`xxd -r -p`),
//! `echo -e` / `printf` escapes, `rev`. Pure functions on text; `None` when the input is not
//! well formed (the caller then treats the payload as undecodable).

/// Standard or URL-safe base64, whitespace ignored, padding optional.
pub(crate) fn base64(input: &str, ignore_garbage: bool) -> Option<String> {
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    let mut out = Vec::new();
    for c in input.chars() {
        let v = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '+' | '-' => 62,
            '/' | '_' => 63,
            '=' => break,
            c if c.is_whitespace() => continue,
            _ if ignore_garbage => continue,
            _ => return None,
        };
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Plain hex dump (`xxd -p`): pairs of hex digits, whitespace ignored.
pub(crate) fn hex(input: &str) -> Option<String> {
    let digits: Vec<u32> = input
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_digit(16))
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = digits
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0] * 16 + c[1]) as u8)
        .collect();
    String::from_utf8(bytes).ok()
}

/// Backslash escapes as `echo -e` and `printf %b` interpret them. Returns the text and whether
/// `\c` (stop output) was seen.
pub(crate) fn echo_escapes(s: &str) -> (String, bool) {
    let mut out = Vec::<u8>::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c != '\\' || i + 1 >= cs.len() {
            let mut b = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            i += 1;
            continue;
        }
        let e = cs[i + 1];
        i += 2;
        let simple = match e {
            'a' => Some(7u8),
            'b' => Some(8),
            'e' | 'E' => Some(0x1b),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        match e {
            'c' => return (String::from_utf8_lossy(&out).into_owned(), true),
            'x' => {
                let (v, n) = digits(&cs[i..], 16, 2);
                if n == 0 {
                    out.extend_from_slice(b"\\x");
                } else {
                    out.push(v as u8);
                    i += n;
                }
            }
            '0'..='7' => {
                // `\0nnn` (echo) and `\nnn` (printf): up to three octal digits after an optional 0
                let start = if e == '0' { i } else { i - 1 };
                let (v, n) = digits(&cs[start..], 8, 3);
                out.push((v & 0xff) as u8);
                i = start + n;
            }
            'u' | 'U' => {
                let (v, n) = digits(&cs[i..], 16, if e == 'u' { 4 } else { 8 });
                if let Some(ch) = char::from_u32(v).filter(|_| n > 0) {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                    i += n;
                } else {
                    out.push(b'\\');
                    out.push(e as u8);
                }
            }
            other => {
                out.push(b'\\');
                let mut b = [0u8; 4];
                out.extend_from_slice(other.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), false)
}

fn digits(cs: &[char], radix: u32, max: usize) -> (u32, usize) {
    let mut v = 0u32;
    let mut n = 0;
    while n < max && n < cs.len() {
        match cs[n].to_digit(radix) {
            Some(d) => {
                v = v * radix + d;
                n += 1;
            }
            None => break,
        }
    }
    (v, n)
}

/// `printf FORMAT ARGS...` output (format reused while arguments remain, as POSIX says).
pub(crate) fn printf(format: &str, args: &[String]) -> String {
    let mut out = String::new();
    let mut ai = 0;
    let fmt: Vec<char> = format.chars().collect();
    for _round in 0..64 {
        let mut i = 0;
        let mut consumed = false;
        while i < fmt.len() {
            let c = fmt[i];
            if c != '%' {
                let mut j = i;
                while j < fmt.len() && fmt[j] != '%' {
                    j += 1;
                }
                let (t, stop) = echo_escapes(&fmt[i..j].iter().collect::<String>());
                out.push_str(&t);
                if stop {
                    return out;
                }
                i = j;
                continue;
            }
            i += 1;
            if fmt.get(i) == Some(&'%') {
                out.push('%');
                i += 1;
                continue;
            }
            while i < fmt.len()
                && (fmt[i].is_ascii_digit() || matches!(fmt[i], '-' | '+' | ' ' | '#' | '.' | '*'))
            {
                i += 1;
            }
            let conv = fmt.get(i).copied().unwrap_or('s');
            i += 1;
            let arg = args.get(ai).cloned().unwrap_or_default();
            if ai < args.len() {
                consumed = true;
            }
            ai += 1;
            match conv {
                'b' => {
                    let (t, stop) = echo_escapes(&arg);
                    out.push_str(&t);
                    if stop {
                        return out;
                    }
                }
                'c' => out.extend(arg.chars().next()),
                'd' | 'i' | 'u' => out.push_str(if arg.is_empty() { "0" } else { &arg }),
                _ => out.push_str(&arg),
            }
        }
        if !consumed || ai >= args.len() {
            break;
        }
    }
    out
}

/// `rev`: reverse every line.
pub(crate) fn rev(s: &str) -> String {
    let mut out: Vec<String> = s.split('\n').map(|l| l.chars().rev().collect()).collect();
    if s.ends_with('\n') {
        out.pop();
        let mut j = out.join("\n");
        j.push('\n');
        return j;
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(base64("cm0gLXJmIC8=", false).as_deref(), Some("rm -rf /"));
        assert_eq!(base64("cm0gLXJm\nIC8", false).as_deref(), Some("rm -rf /"));
        assert_eq!(base64("not base64!", false), None);
    }

    #[test]
    fn hex_decodes() {
        assert_eq!(hex("726d202d7266202f").as_deref(), Some("rm -rf /"));
        assert_eq!(hex("zz"), None);
    }

    #[test]
    fn escapes() {
        assert_eq!(echo_escapes(r"\x72\x6d -rf \057").0, "rm -rf /");
        assert_eq!(echo_escapes(r"\0162m").0, "rm");
        assert_eq!(echo_escapes(r"a\cb"), ("a".to_string(), true));
        assert_eq!(
            printf(r"\x72\x6d %s %s", &["-rf".into(), "/".into()]),
            "rm -rf /"
        );
        assert_eq!(printf("%s\n", &["a".into(), "b".into()]), "a\nb\n");
        assert_eq!(printf(r"\162\155 -rf /", &[]), "rm -rf /");
        assert_eq!(rev("/ fr- mr\n"), "rm -rf /\n");
    }
}
