//! E-mail: one fetched message, whole (RFC 5322 bytes as IMAP hands them
//! over), through `parse_message`: MIME, encodings, the From address, the
//! sender check and the text. Asserts: never a panic; a message to dispatch
//! has a lowercased sender that is its chat, at the domain the owner's server
//! passed in an `Authentication-Results` header, with a bounded text; a
//! subject without the filter is never dispatched; a too large input is
//! malformed.
#![no_main]

use cowork::gateway::channels::email::{MAX_MESSAGE_BYTES, Mail, Rules, parse_message};
use cowork::gateway::{Context, MAX_TEXT_LEN};
use libfuzzer_sys::fuzz_target;

const ID: &str = "mx.owner.example";

fuzz_target!(|data: &[u8]| {
    // First byte: bit 0 sets the subject filter.
    let Some((&flags, raw)) = data.split_first() else {
        return;
    };
    let rules = Rules {
        channel: "email".into(),
        authserv_id: ID.into(),
        subject_filter: (flags & 1 == 1).then(|| "[cowork]".to_string()),
        own_address: "bot@owner.example".into(),
    };
    let got = parse_message(raw, &rules);
    if raw.len() > MAX_MESSAGE_BYTES {
        assert!(got.is_err(), "a message over the bound was read");
    }
    let Ok(Mail::Message {
        inbound, thread, ..
    }) = got
    else {
        return;
    };
    let sender = inbound.sender();
    assert_eq!(sender, inbound.chat());
    assert_eq!(sender, sender.to_lowercase());
    assert_eq!(inbound.context(), Context::Dm);
    assert!(inbound.text().len() <= MAX_TEXT_LEN);
    assert!(thread.subject.starts_with("Re: ") && !thread.subject.contains(['\r', '\n']));
    let domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    assert!(
        text.contains(ID) && text.contains(&format!("={domain}")),
        "admitted {sender} without a pass of the owner's server for {domain}"
    );
    if rules.subject_filter.is_some() {
        assert!(
            text.contains("[cowork]"),
            "dispatched without the subject filter"
        );
    }
});
