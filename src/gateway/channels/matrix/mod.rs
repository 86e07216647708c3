//! Matrix (issue 21): a bot account on the owner's homeserver (`api_base`:
//! `https://`, plain `http://` only on loopback), reached out over the
//! Client-Server API with the account's access token from the vault, sent
//! only in the `Authorization` header ([`client`]). At start `whoami` must
//! name `bot_user`, else nothing is read (the homeserver check; a revoked
//! token is shown as such). Messages come by the `/sync` long poll
//! ([`sync`]); a sender is its full user id (`@local:server`), a chat its
//! room id; a room in the bot's `m.direct` or with exactly two members is a
//! direct chat, any other a group. Invitations are joined only when the
//! inviter passes access; membership changes are audited. End-to-end
//! encrypted rooms are refused with a clear message (no persistent crypto
//! store on the appliance yet). `docs/channels/matrix.md` says what the
//! owner sets up.

pub mod client;
pub mod parse;
pub mod sync;

use std::sync::Arc;

pub use client::{MATRIX_MAX_CHARS, MatrixClient, SYNC_POSITION_TYPE, SYNC_TIMEOUT};
pub use parse::{
    MAX_ID_BYTES, MAX_SYNC_BYTES, SyncBatch, SyncItem, is_event_id, is_room_id, is_user_id,
    parse_sync,
};
pub use sync::{ENCRYPTED_REFUSAL, MatrixSync, run_sync};

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Start, Started};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::TransportKind;

/// One `/sync` answer read as the account `me`: the fuzz target's entry
/// (`crate::fuzzing`).
pub(crate) fn decode_sync(body: &[u8], me: &str) -> Result<SyncBatch, GatewayError> {
    parse_sync(body, me)
}

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "matrix",
            transports: &[TransportSpec {
                name: "matrix",
                kind: TransportKind::Matrix,
                webhook_route: None,
                // Self-hosted or chosen by the owner: the homeserver is
                // `api_base` (required).
                api_base: "",
                required: &["api_base", "token_secret", "bot_user"],
                optional: &["ca_file"],
                secrets: &[(
                    "token_secret",
                    "the bot account's access token (a dedicated account; rotate it by logging in again and storing the new one). \
                     End-to-end encrypted rooms are refused: the appliance keeps no persistent crypto store yet (docs/channels/matrix.md)",
                )],
                id_shape: Some((
                    is_user_id,
                    "a full Matrix user id (@name:server, at most 255 bytes; not a display name)",
                )),
            }],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        start.required("api_base", &t.api_base)?;
        let me = start.required("bot_user", &t.bot_user)?;
        if !is_user_id(me) {
            return Err(GatewayError::Settings {
                channel: start.name.to_string(),
                field: "transport.bot_user",
                reason: format!("{me:?} is not a full Matrix user id (@name:server)"),
            });
        }
        let token = start.secret("token_secret", &t.token_secret)?;
        let http = start.http()?;
        let client = Arc::new(MatrixClient::new(&http, &token, me)?);
        let sync = Arc::new(MatrixSync::new(start.name, Arc::clone(&client)));
        let dispatcher = Arc::clone(start.dispatcher);
        Ok(Started {
            outbound: client,
            inbound: InboundPath::Loop(Box::new(move |pacer, stop| {
                Box::pin(run_sync(sync, dispatcher, pacer, stop))
            })),
        })
    }
}
