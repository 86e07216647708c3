//! E-mail sender authentication: `Authentication-Results` parsing and the
//! DMARC/DKIM alignment decision. First line: the From value; every further
//! line `Name: value` is a header field, topmost first. Asserts: never a panic;
//! an admitted sender's domain is the one the owner's server passed, in the
//! topmost header carrying its authserv-id.
#![no_main]

#[path = "common/split.rs"]
mod split;

use cowork::gateway::channels::email::auth::{self, Proof};
use libfuzzer_sys::fuzz_target;

const ID: &str = "mx.owner.example";

fuzz_target!(|data: &[u8]| {
    let (lines, rest) = split::lines(data, 1);
    let from = &lines[0];
    let text = String::from_utf8_lossy(rest);
    let headers: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once(':')).collect();
    for (_, value) in &headers {
        let _ = auth::parse(value);
    }
    let Ok((proof, domain)) = auth::authenticate(headers.iter().copied(), from, ID) else {
        return;
    };
    let ours = headers
        .iter()
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case("Authentication-Results"))
        .find_map(|(_, v)| {
            auth::parse(v)
                .ok()
                .filter(|r| r.authserv_id.eq_ignore_ascii_case(ID))
        })
        .expect("admitted without a header of the owner's server");
    let (method, property) = match proof {
        Proof::Dmarc => ("dmarc", "header.from"),
        Proof::Dkim => ("dkim", "header.d"),
    };
    assert!(
        ours.results.iter().any(|r| r.method == method
            && r.result == "pass"
            && r.property(property).is_some_and(|d| d
                .trim_start_matches('@')
                .trim_end_matches('.')
                .eq_ignore_ascii_case(&domain))),
        "admitted {domain} by {method} without a pass for it: {ours:?}"
    );
    assert!(
        from.to_ascii_lowercase().contains(&domain),
        "{from} / {domain}"
    );
});
