//! What a Matrix `/sync` answer says, as the appliance reads it: the
//! `next_batch` token, the rooms the bot account is marked direct with
//! (`m.direct` account data), and per room, in order, the state and
//! timeline events that matter here: a person's text message
//! (`m.room.message` of msgtype `m.text` or `m.emote`), an encrypted event
//! (`m.room.encrypted`), the room turning on encryption
//! (`m.room.encryption`), membership changes (`m.room.member`), and
//! invitations of the bot. Everything else (notices, edits, reactions,
//! other state) is dropped here.
//!
//! The answer is outside input: it is capped at [`MAX_SYNC_BYTES`], must
//! be UTF-8 JSON with a string `next_batch`, and every id is checked for
//! its shape and length ([`is_user_id`], [`is_room_id`], [`is_event_id`];
//! at most [`MAX_ID_BYTES`] as the specification bounds them). One bad
//! event does not spoil the batch: it becomes [`SyncItem::Malformed`]
//! (audited), and the others are read, so a hostile event cannot stall the
//! stream by making every sync from the same token fail.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::gateway::error::GatewayError;

pub(crate) const CHANNEL: &str = "matrix";
/// Largest `/sync` answer read. The filter keeps answers small (a few event
/// types, at most [`TIMELINE_LIMIT`] timeline events a room); a larger one
/// is refused rather than buffered without bound.
pub const MAX_SYNC_BYTES: usize = 4 * 1024 * 1024;
/// Longest user, room or event id (the specification's 255 bytes).
pub const MAX_ID_BYTES: usize = 255;
/// Most timeline events a room brings in one sync (the filter's `limit`).
pub const TIMELINE_LIMIT: usize = 50;
/// Longest `next_batch` token kept (Synapse's are ~60 bytes).
const MAX_TOKEN_BYTES: usize = 1024;

/// A server name as it ends a user id: a host name, an IPv4 address or a
/// bracketed IPv6 address, an optional port.
fn is_server_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// A full user id (MXID), `@localpart:server`: at most 255 bytes, the
/// localpart printable ASCII without `:` (the historical grammar, which
/// includes the current one), then a server name.
pub fn is_user_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix('@') else {
        return false;
    };
    let Some((local, server)) = rest.split_once(':') else {
        return false;
    };
    id.len() <= MAX_ID_BYTES
        && !local.is_empty()
        && local.bytes().all(|b| (0x21..=0x7e).contains(&b))
        && is_server_name(server)
}

/// An opaque id behind a sigil: `sigil`, then 1 to 254 printable ASCII
/// characters (no space or control character).
fn is_sigil_id(id: &str, sigil: char) -> bool {
    id.len() <= MAX_ID_BYTES
        && id.strip_prefix(sigil).is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| (0x21..=0x7e).contains(&b))
        })
}

/// A room id: `!opaque:server` (room versions up to 11) or `!opaque`
/// (version 12 and later).
pub fn is_room_id(id: &str) -> bool {
    is_sigil_id(id, '!')
}

/// An event id: `$opaque` (with or without `:server`, by room version).
pub fn is_event_id(id: &str) -> bool {
    is_sigil_id(id, '$')
}

/// One thing a sync says, in the order it happened within its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncItem {
    /// A text message (`m.text`, `m.emote`) by `sender` in a joined room.
    Message {
        room: String,
        event_id: String,
        sender: String,
        body: String,
        /// `m.mentions` names the bot, or the body or formatted body holds
        /// its user id.
        mentions: Vec<String>,
    },
    /// An `m.room.encrypted` event: unreadable here.
    Encrypted {
        room: String,
        event_id: String,
        sender: String,
    },
    /// `m.room.encryption` state: the room is (now) end-to-end encrypted.
    RoomEncrypted { room: String, sender: String },
    /// `m.room.member`: `sender` set `target`'s membership to `membership`.
    /// A change when `in_timeline`; from the state section it is the state
    /// the timeline starts from (with lazily loaded members, the senders'
    /// current membership), not news.
    Membership {
        room: String,
        event_id: Option<String>,
        sender: String,
        target: String,
        membership: String,
        in_timeline: bool,
    },
    /// The bot was invited to `room` by `inviter`; `is_direct` as the
    /// inviter's client marked it (a claim, used only to choose the policy).
    Invite {
        room: String,
        inviter: String,
        is_direct: bool,
    },
    /// The bot is no longer in `room` (left, kicked or banned).
    Left { room: String },
    /// An event that could not be read (audited as malformed).
    Malformed { reason: String },
}

/// One `/sync` answer, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncBatch {
    /// The token of the next sync.
    pub next_batch: String,
    /// The room ids of `m.direct`, when this sync carries it.
    pub direct: Option<BTreeSet<String>>,
    pub items: Vec<SyncItem>,
}

#[derive(Deserialize)]
struct RawSync {
    next_batch: String,
    #[serde(default)]
    account_data: Option<Events>,
    /// Read as a map first: serde would take a list for a struct.
    #[serde(default)]
    rooms: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize, Default)]
struct Events {
    #[serde(default)]
    events: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct RawRooms {
    #[serde(default)]
    join: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    invite: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    leave: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct JoinedRoom {
    #[serde(default)]
    state: Option<Events>,
    #[serde(default)]
    timeline: Option<Events>,
}

#[derive(Deserialize)]
struct InvitedRoom {
    #[serde(default)]
    invite_state: Option<Events>,
}

/// The fields of an event read here; `content` stays raw until its type is
/// known.
#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    sender: Option<String>,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    state_key: Option<String>,
    #[serde(default)]
    content: serde_json::Value,
}

fn parse_err(reason: impl Into<String>) -> GatewayError {
    GatewayError::parse(CHANNEL, reason)
}

/// An id, shown in an error only when it is short and plain.
fn shown(id: &str) -> String {
    if id.len() <= 64 && id.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        format!("{id:?}")
    } else {
        format!("({} bytes, not shown)", id.len())
    }
}

/// Reads one `/sync` answer of the account `me`.
pub fn parse_sync(body: &[u8], me: &str) -> Result<SyncBatch, GatewayError> {
    if body.len() > MAX_SYNC_BYTES {
        return Err(parse_err(format!(
            "sync answer of {} bytes; at most {MAX_SYNC_BYTES}",
            body.len()
        )));
    }
    let text = std::str::from_utf8(body).map_err(|e| parse_err(format!("not UTF-8: {e}")))?;
    let raw: RawSync =
        serde_json::from_str(text).map_err(|e| parse_err(format!("sync answer: {e}")))?;
    if raw.next_batch.is_empty()
        || raw.next_batch.len() > MAX_TOKEN_BYTES
        || !raw.next_batch.bytes().all(|b| (0x21..=0x7e).contains(&b))
    {
        return Err(parse_err("next_batch is not a plain token"));
    }
    let mut batch = SyncBatch {
        next_batch: raw.next_batch,
        direct: None,
        items: Vec::new(),
    };
    for ev in raw.account_data.unwrap_or_default().events {
        match read_direct(&ev) {
            Ok(Some(rooms)) => batch.direct = Some(rooms),
            Ok(None) => {}
            Err(reason) => batch.items.push(SyncItem::Malformed { reason }),
        }
    }
    let Some(rooms) = raw.rooms else {
        return Ok(batch);
    };
    let rooms: RawRooms = serde_json::from_value(serde_json::Value::Object(rooms))
        .map_err(|e| parse_err(format!("sync answer: rooms: {e}")))?;
    let bad_room = |what: &str, room: &str, items: &mut Vec<SyncItem>| {
        items.push(SyncItem::Malformed {
            reason: format!("{what} room id {} is not a room id", shown(room)),
        });
    };
    for (room, value) in rooms.join {
        if !is_room_id(&room) {
            bad_room("joined", &room, &mut batch.items);
            continue;
        }
        let joined: Result<JoinedRoom, serde_json::Error> = if value.is_object() {
            serde_json::from_value(value)
        } else {
            Err(serde::de::Error::custom("not an object"))
        };
        let joined = match joined {
            Ok(j) => j,
            Err(e) => {
                batch.items.push(SyncItem::Malformed {
                    reason: format!("joined room: {e}"),
                });
                continue;
            }
        };
        let events = joined
            .state
            .unwrap_or_default()
            .events
            .into_iter()
            .map(|e| (e, true))
            .chain(
                joined
                    .timeline
                    .unwrap_or_default()
                    .events
                    .into_iter()
                    .map(|e| (e, false)),
            );
        for (ev, from_state) in events {
            match read_room_event(&room, &ev, me, from_state) {
                Ok(Some(item)) => batch.items.push(item),
                Ok(None) => {}
                Err(reason) => batch.items.push(SyncItem::Malformed { reason }),
            }
        }
    }
    for (room, value) in rooms.invite {
        if !is_room_id(&room) {
            bad_room("invited", &room, &mut batch.items);
            continue;
        }
        match read_invite(&room, value, me) {
            Ok(Some(item)) => batch.items.push(item),
            Ok(None) => {}
            Err(reason) => batch.items.push(SyncItem::Malformed { reason }),
        }
    }
    for (room, _) in rooms.leave {
        if !is_room_id(&room) {
            bad_room("left", &room, &mut batch.items);
            continue;
        }
        batch.items.push(SyncItem::Left { room });
    }
    Ok(batch)
}

/// `m.direct` (`{"@user:server": ["!room", ...]}`): every room id listed.
fn read_direct(ev: &RawValue) -> Result<Option<BTreeSet<String>>, String> {
    let ev: RawEvent = serde_json::from_str(ev.get()).map_err(|e| format!("account data: {e}"))?;
    if ev.kind != "m.direct" {
        return Ok(None);
    }
    let map = ev
        .content
        .as_object()
        .ok_or("m.direct content is not an object")?;
    let mut rooms = BTreeSet::new();
    for ids in map.values() {
        let ids = ids.as_array().ok_or("m.direct entry is not a list")?;
        for id in ids {
            match id.as_str() {
                Some(id) if is_room_id(id) => {
                    rooms.insert(id.to_string());
                }
                _ => return Err("m.direct lists something that is not a room id".into()),
            }
        }
    }
    Ok(Some(rooms))
}

/// One event of a joined room's state or timeline.
fn read_room_event(
    room: &str,
    ev: &RawValue,
    me: &str,
    from_state: bool,
) -> Result<Option<SyncItem>, String> {
    let ev: RawEvent = serde_json::from_str(ev.get()).map_err(|e| format!("room event: {e}"))?;
    let sender = ev.sender.ok_or("event without sender")?;
    if !is_user_id(&sender) {
        return Err(format!("sender {} is not a user id", shown(&sender)));
    }
    if let Some(id) = &ev.event_id
        && !is_event_id(id)
    {
        return Err(format!("event_id {} is not an event id", shown(id)));
    }
    let content = &ev.content;
    let str_field = |name: &str| content.get(name).and_then(|v| v.as_str());
    match ev.kind.as_str() {
        "m.room.member" => {
            let target = ev.state_key.ok_or("m.room.member without state_key")?;
            if !is_user_id(&target) {
                return Err(format!("member {} is not a user id", shown(&target)));
            }
            let membership = str_field("membership").ok_or("m.room.member without membership")?;
            if !matches!(membership, "join" | "leave" | "ban" | "invite" | "knock") {
                return Err("unknown membership".into());
            }
            Ok(Some(SyncItem::Membership {
                room: room.to_string(),
                event_id: ev.event_id,
                sender,
                target,
                membership: membership.to_string(),
                in_timeline: !from_state,
            }))
        }
        "m.room.encryption" if ev.state_key.as_deref() == Some("") => {
            Ok(Some(SyncItem::RoomEncrypted {
                room: room.to_string(),
                sender,
            }))
        }
        // Timeline only: a message has no place in the state section.
        "m.room.encrypted" if !from_state => Ok(Some(SyncItem::Encrypted {
            room: room.to_string(),
            event_id: ev.event_id.ok_or("encrypted event without event_id")?,
            sender,
        })),
        "m.room.message" if !from_state && ev.state_key.is_none() => {
            let event_id = ev.event_id.ok_or("message without event_id")?;
            if sender == me {
                return Ok(None);
            }
            let msgtype = match content.get("msgtype") {
                // A redacted message has an empty content.
                None => return Ok(None),
                Some(v) => v.as_str().ok_or("msgtype is not a string")?,
            };
            if !matches!(msgtype, "m.text" | "m.emote") {
                // Notices are what bots send (answering them loops bots);
                // files and images are not read yet.
                return Ok(None);
            }
            let relates = content.get("m.relates_to");
            if relates
                .and_then(|r| r.get("rel_type"))
                .and_then(|t| t.as_str())
                == Some("m.replace")
            {
                return Ok(None);
            }
            let body = str_field("body").ok_or("message body is not a string")?;
            let mut mentions: Vec<String> =
                match content.get("m.mentions").and_then(|m| m.get("user_ids")) {
                    None => Vec::new(),
                    Some(ids) => ids
                        .as_array()
                        .ok_or("m.mentions.user_ids is not a list")?
                        .iter()
                        .filter_map(|v| v.as_str())
                        .filter(|id| is_user_id(id))
                        .map(str::to_string)
                        .collect(),
                };
            let formatted = str_field("formatted_body").unwrap_or_default();
            if body.contains(me) || formatted.contains(me) {
                mentions.push(me.to_string());
            }
            Ok(Some(SyncItem::Message {
                room: room.to_string(),
                event_id,
                sender,
                body: body.to_string(),
                mentions,
            }))
        }
        _ => Ok(None),
    }
}

/// An invited room: the bot's own `m.room.member` invite in its stripped
/// state says who invited it.
fn read_invite(room: &str, value: serde_json::Value, me: &str) -> Result<Option<SyncItem>, String> {
    let invited: InvitedRoom =
        serde_json::from_value(value).map_err(|e| format!("invited room: {e}"))?;
    for ev in invited.invite_state.unwrap_or_default().events {
        let Ok(ev) = serde_json::from_str::<RawEvent>(ev.get()) else {
            continue;
        };
        if ev.kind != "m.room.member" || ev.state_key.as_deref() != Some(me) {
            continue;
        }
        if ev.content.get("membership").and_then(|m| m.as_str()) != Some("invite") {
            continue;
        }
        let inviter = ev.sender.ok_or("invite without sender")?;
        if !is_user_id(&inviter) {
            return Err(format!("inviter {} is not a user id", shown(&inviter)));
        }
        let is_direct = ev.content.get("is_direct").and_then(|d| d.as_bool()) == Some(true);
        return Ok(Some(SyncItem::Invite {
            room: room.to_string(),
            inviter,
            is_direct,
        }));
    }
    Err("invited room without the bot's invite".into())
}

/// What `/account/whoami` says: the token's user.
#[derive(Debug, Deserialize)]
pub struct WhoAmI {
    pub user_id: String,
}

/// A Matrix error answer (`{"errcode": "M_...", "error": "..."}`), its
/// code only (the text may quote the request), and `retry_after_ms`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub errcode: String,
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
}

impl ErrorBody {
    /// The error of an answer body; empty when it is not one.
    pub fn of(body: &[u8]) -> ErrorBody {
        let e: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
        // A code is `M_` and capitals; anything else is not shown.
        if e.errcode.len() <= 64
            && e.errcode
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
        {
            e
        } else {
            ErrorBody {
                errcode: String::new(),
                retry_after_ms: e.retry_after_ms,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "@cowbot:example.org";

    fn sync(rooms: serde_json::Value) -> Vec<u8> {
        serde_json::json!({"next_batch": "s72595_4483_1934", "rooms": rooms})
            .to_string()
            .into_bytes()
    }

    fn message(sender: &str, body: &str) -> serde_json::Value {
        serde_json::json!({
            "type": "m.room.message", "sender": sender, "event_id": "$ev1:example.org",
            "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": body}
        })
    }

    fn joined(events: Vec<serde_json::Value>) -> serde_json::Value {
        serde_json::json!({"join": {"!room:example.org": {"timeline": {"events": events}}}})
    }

    #[test]
    fn ids_have_their_shapes() {
        for ok in [
            "@a:b",
            "@ada:example.org",
            "@ada:[::1]:8448",
            "@x=y/z:h.example",
        ] {
            assert!(is_user_id(ok), "{ok}");
        }
        let long = format!("@{}:example.org", "a".repeat(250));
        for bad in [
            "",
            "@",
            "@a",
            "@:b",
            "a:b",
            "@a b:c",
            "@a:b c",
            "@a:",
            "@a\n:b",
            "@a:b\u{0}",
            &long,
            "@ä:b",
        ] {
            assert!(!is_user_id(bad), "{bad:?}");
        }
        assert!(is_room_id("!abc:example.org") && is_room_id("!opaqueV12"));
        assert!(!is_room_id("!") && !is_room_id("#alias:x") && !is_room_id("!a b"));
        assert!(!is_room_id(&format!("!{}", "a".repeat(255))));
        assert!(is_event_id("$abc") && !is_event_id("abc") && !is_event_id("$a\tb"));
    }

    #[test]
    fn a_message_is_read_with_its_mentions_and_own_messages_are_dropped() {
        let b = parse_sync(
            &sync(joined(vec![message(
                "@ada:x.org",
                "hi @cowbot:example.org",
            )])),
            ME,
        )
        .unwrap();
        assert_eq!(b.next_batch, "s72595_4483_1934");
        assert_eq!(
            b.items,
            [SyncItem::Message {
                room: "!room:example.org".into(),
                event_id: "$ev1:example.org".into(),
                sender: "@ada:x.org".into(),
                body: "hi @cowbot:example.org".into(),
                mentions: vec![ME.into()],
            }]
        );
        let b = parse_sync(&sync(joined(vec![message(ME, "mine")])), ME).unwrap();
        assert!(b.items.is_empty());
    }

    #[test]
    fn notices_edits_and_redactions_are_not_prompts() {
        let mut notice = message("@ada:x.org", "n");
        notice["content"]["msgtype"] = "m.notice".into();
        let mut edit = message("@ada:x.org", "* e");
        edit["content"]["m.relates_to"] =
            serde_json::json!({"rel_type": "m.replace", "event_id": "$o"});
        let mut redacted = message("@ada:x.org", "");
        redacted["content"] = serde_json::json!({});
        let b = parse_sync(&sync(joined(vec![notice, edit, redacted])), ME).unwrap();
        assert!(b.items.is_empty(), "{:?}", b.items);
    }

    #[test]
    fn encryption_membership_invites_and_leaves_are_read() {
        let rooms = serde_json::json!({
            "join": {"!room:example.org": {
                "state": {"events": [{"type": "m.room.encryption", "sender": "@ada:x.org",
                    "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]},
                "timeline": {"events": [
                    {"type": "m.room.encrypted", "sender": "@ada:x.org", "event_id": "$e",
                     "content": {"ciphertext": "..."}},
                    {"type": "m.room.member", "sender": "@ada:x.org", "event_id": "$m",
                     "state_key": "@eve:x.org", "content": {"membership": "ban"}}
                ]}
            }},
            "invite": {"!inv:example.org": {"invite_state": {"events": [
                {"type": "m.room.name", "sender": "@ada:x.org", "state_key": "", "content": {"name": "x"}},
                {"type": "m.room.member", "sender": "@ada:x.org", "state_key": ME,
                 "content": {"membership": "invite", "is_direct": true}}
            ]}}},
            "leave": {"!gone:example.org": {}}
        });
        let b = parse_sync(&sync(rooms), ME).unwrap();
        assert_eq!(b.items.len(), 5, "{:?}", b.items);
        assert!(matches!(&b.items[0], SyncItem::RoomEncrypted { .. }));
        assert!(matches!(&b.items[1], SyncItem::Encrypted { event_id, .. } if event_id == "$e"));
        assert!(
            matches!(&b.items[2], SyncItem::Membership { target, membership, .. }
                if target == "@eve:x.org" && membership == "ban")
        );
        assert_eq!(
            b.items[3],
            SyncItem::Invite {
                room: "!inv:example.org".into(),
                inviter: "@ada:x.org".into(),
                is_direct: true
            }
        );
        assert_eq!(
            b.items[4],
            SyncItem::Left {
                room: "!gone:example.org".into()
            }
        );
    }

    #[test]
    fn m_direct_lists_rooms() {
        let body = serde_json::json!({"next_batch": "t", "account_data": {"events": [
            {"type": "m.direct", "content": {"@ada:x.org": ["!a:x.org", "!b:x.org"]}}]}});
        let b = parse_sync(body.to_string().as_bytes(), ME).unwrap();
        assert_eq!(
            b.direct.unwrap().into_iter().collect::<Vec<_>>(),
            ["!a:x.org", "!b:x.org"]
        );
        let body = serde_json::json!({"next_batch": "t", "account_data": {"events": [
            {"type": "m.direct", "content": {"@ada:x.org": "!a:x.org"}}]}});
        let b = parse_sync(body.to_string().as_bytes(), ME).unwrap();
        assert!(b.direct.is_none() && matches!(b.items[0], SyncItem::Malformed { .. }));
    }

    #[test]
    fn malformed_answers_are_clear_errors() {
        for (body, why) in [
            (b"".to_vec(), "sync answer"),
            (b"[]".to_vec(), "sync answer"),
            (b"{\"rooms\": {}}".to_vec(), "next_batch"),
            (b"{\"next_batch\": 5}".to_vec(), "sync answer"),
            (b"{\"next_batch\": \"\"}".to_vec(), "plain token"),
            (b"{\"next_batch\": \"a\\nb\"}".to_vec(), "plain token"),
            (b"{\"next_batch\": \"\xff\"}".to_vec(), "not UTF-8"),
            (
                b"{\"next_batch\": \"t\", \"rooms\": []}".to_vec(),
                "sync answer",
            ),
            (
                b"{\"next_batch\": \"t\", \"rooms\": {\"join\": 3}}".to_vec(),
                "sync answer",
            ),
            ("[".repeat(10_000).into_bytes(), "sync answer"),
        ] {
            let e = parse_sync(&body, ME).unwrap_err().to_string();
            assert!(e.contains(why), "{e} (wanted {why:?})");
        }
        let token = format!("{{\"next_batch\": \"{}\"}}", "t".repeat(2000));
        assert!(parse_sync(token.as_bytes(), ME).is_err());
    }

    #[test]
    fn oversized_answers_are_refused_before_parsing() {
        let mut body = b"{\"next_batch\": \"t\", \"x\": \"".to_vec();
        body.resize(MAX_SYNC_BYTES + 1, b'a');
        let e = parse_sync(&body, ME).unwrap_err().to_string();
        assert!(e.contains("at most"), "{e}");
    }

    #[test]
    fn a_bad_event_is_malformed_and_the_rest_of_the_batch_is_read() {
        let huge = format!("@{}:x.org", "a".repeat(300));
        let events = vec![
            serde_json::json!({"type": "m.room.message", "sender": huge, "event_id": "$1",
                "content": {"msgtype": "m.text", "body": "x"}}),
            serde_json::json!({"type": "m.room.message", "sender": "@a\u{7}:x.org", "event_id": "$2",
                "content": {"msgtype": "m.text", "body": "x"}}),
            serde_json::json!({"type": "m.room.message", "sender": "@a:x.org", "event_id": "$3",
                "content": {"msgtype": "m.text", "body": 42}}),
            serde_json::json!({"type": "m.room.message", "sender": "@a:x.org", "event_id": "$4",
                "content": {"msgtype": ["m.text"], "body": "x"}}),
            serde_json::json!({"type": "m.room.message", "sender": "@a:x.org", "event_id": 5,
                "content": {"msgtype": "m.text", "body": "x"}}),
            serde_json::json!({"type": "m.room.member", "sender": "@a:x.org", "state_key": "@b:x.org",
                "content": {"membership": "dance"}}),
            serde_json::json!("not an event"),
            serde_json::json!({"type": "m.room.message", "sender": "@a:x.org", "event_id": "$e\u{0}",
                "content": {"msgtype": "m.text", "body": "x"}}),
            message("@ada:x.org", "still read"),
        ];
        let rooms = serde_json::json!({
            "join": {
                "!room:example.org": {"timeline": {"events": events}},
                "not a room": {"timeline": {"events": []}},
                "!r2:x.org": {"timeline": 7}
            },
            "invite": {"!i:x.org": {"invite_state": {"events": []}}}
        });
        let b = parse_sync(&sync(rooms), ME).unwrap();
        let bad = b
            .items
            .iter()
            .filter(|i| matches!(i, SyncItem::Malformed { .. }))
            .count();
        assert_eq!(bad, 11, "{:?}", b.items);
        assert!(
            b.items
                .iter()
                .any(|i| matches!(i, SyncItem::Message { body, .. } if body == "still read"))
        );
        // A huge id is not echoed into the audit trail.
        assert!(b.items.iter().all(|i| match i {
            SyncItem::Malformed { reason } => reason.len() < 200,
            _ => true,
        }));
    }

    #[test]
    fn error_bodies_give_their_code_and_wait() {
        let e = ErrorBody::of(br#"{"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500}"#);
        assert_eq!(
            (e.errcode.as_str(), e.retry_after_ms),
            ("M_LIMIT_EXCEEDED", Some(1500))
        );
        assert_eq!(ErrorBody::of(b"<html>").errcode, "");
        assert_eq!(
            ErrorBody::of(br#"{"errcode": "M_X\n<script>"}"#).errcode,
            ""
        );
        assert_eq!(ErrorBody::of(br#"{"errcode": 5}"#).errcode, "");
    }
}
