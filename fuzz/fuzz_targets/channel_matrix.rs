//! Matrix `/sync` answers (the bot's long poll) as the sync loop reads them,
//! as the account `@cowbot:example.org`. Asserts: never a panic; an error
//! for an answer over the size cap; every item names only id-shaped values
//! (user ids, room ids, event ids), a message is never the bot's own, and a
//! malformed event's reason stays short (a hostile id is not echoed).
#![no_main]

use cowork::gateway::channels::matrix::{
    MAX_SYNC_BYTES, SyncItem, is_event_id, is_room_id, is_user_id,
};
use libfuzzer_sys::fuzz_target;

const ME: &str = "@cowbot:example.org";

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = cowork::fuzzing::matrix_sync(data, ME) else {
        return;
    };
    assert!(data.len() <= MAX_SYNC_BYTES);
    assert!(!batch.next_batch.is_empty());
    assert!(batch.direct.iter().flatten().all(|r| is_room_id(r)));
    for item in &batch.items {
        match item {
            SyncItem::Message {
                room,
                event_id,
                sender,
                mentions,
                ..
            } => {
                assert!(is_room_id(room) && is_event_id(event_id) && is_user_id(sender));
                assert_ne!(sender, ME, "the bot's own message became a prompt");
                assert!(mentions.iter().all(|m| is_user_id(m)));
            }
            SyncItem::Encrypted {
                room,
                event_id,
                sender,
            } => assert!(is_room_id(room) && is_event_id(event_id) && is_user_id(sender)),
            SyncItem::RoomEncrypted { room, sender } => {
                assert!(is_room_id(room) && is_user_id(sender))
            }
            SyncItem::Membership {
                room,
                event_id,
                sender,
                target,
                ..
            } => {
                assert!(is_room_id(room) && is_user_id(sender) && is_user_id(target));
                assert!(event_id.as_deref().is_none_or(is_event_id));
            }
            SyncItem::Invite { room, inviter, .. } => {
                assert!(is_room_id(room) && is_user_id(inviter))
            }
            SyncItem::Left { room } => assert!(is_room_id(room)),
            SyncItem::Malformed { reason } => assert!(reason.len() < 1024, "{reason}"),
        }
    }
});
