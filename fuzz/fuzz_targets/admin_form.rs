//! The admin page's form bodies and query strings: the urlencoded form
//! reader, every field validator (channel, sender, id, ttl, audit kind and
//! window, secret name, settings section), the settings forms' changes and the
//! new-password rule; with the first byte odd, the audit page's query string.
//! Asserts: never a panic; what each validator accepts has the shape it
//! promises; a settings form never changes a key outside its section.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        cowork::fuzzing::admin_form(rest);
    } else {
        cowork::fuzzing::admin_audit_query(&String::from_utf8_lossy(rest));
    }
});
