//! The guard on arbitrary input: `Guard::check` must answer (never panic,
//! never hang), its verdict is at least as strict as each segment, and when the
//! input is a complete command line, following it with a blocked command as a
//! segment of its own (`X; rm -rf /`, `X && ..`, `X | ..`, a new line...) is
//! never allowed. The first byte picks the blocked command and the separator.
#![no_main]

#[path = "common/guard.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    common::consistent(&text);
    if !common::complete(&text) {
        return;
    }
    let blocked = common::blocked_commands();
    let tail = &blocked[usize::from(pick) % blocked.len()];
    let sep = common::SEPARATORS[usize::from(pick) % common::SEPARATORS.len()];
    common::never_allowed(&format!("{text}{sep}{tail}"));
    common::never_allowed(&format!("{tail}\n{text}"));
});
