//! Mattermost: the owner's own server, reached out (no inbound port) over
//! its WebSocket API with a bot account's access token; answers by its REST
//! API. Only the teams in `team_allowlist` are served (an empty list starts
//! nothing), and in them only the private channels, or only the channels in
//! `channel_allowlist` when it is given: a public channel, which anyone of
//! the team may join, only when listed there. Direct and group messages
//! follow the channel's `dm` and `group` policies (pairing by default).

mod client;
mod parse;
mod socket;

use std::sync::Arc;

pub use client::{MATTERMOST_MAX_CHARS, MattermostClient};
pub use parse::{MAX_FRAME_BYTES, Mattermost, MattermostEvent, Me, is_mattermost_id};
pub use socket::{MattermostSocket, PING_EVERY, SILENT_LIMIT, SessionEnd, run_websocket};

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Start, Started};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::TransportKind;

/// One text frame as a session decodes it, then a `posted` event's data
/// through `parser` as the account `me`: the fuzz target's entry
/// (`crate::fuzzing`).
pub(crate) fn decode_frame(
    text: &str,
    parser: &Mattermost,
    me: &Me,
) -> Result<Option<MattermostEvent>, GatewayError> {
    match parse::decode_frame(text)? {
        parse::Frame::Posted(data) => parser.posted(data.get().as_bytes(), me).map(Some),
        _ => Ok(None),
    }
}

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "mattermost",
            transports: &[TransportSpec {
                name: "mattermost",
                kind: TransportKind::Mattermost,
                webhook_route: None,
                // Self-hosted: the owner's server is `api_base` (required).
                api_base: "",
                required: &["api_base", "token_secret", "team_allowlist"],
                optional: &["channel_allowlist", "ca_file"],
                secrets: &[(
                    "token_secret",
                    "the bot account's access token (System Console > Integrations > Bot Accounts)",
                )],
                id_shape: Some((
                    is_mattermost_id,
                    "a Mattermost id (26 lowercase letters and digits, as the API shows it; not a user or channel name)",
                )),
            }],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        let server = start.required("api_base", &t.api_base)?;
        let parser = Mattermost::new(&t.team_allowlist, &t.channel_allowlist)
            .map_err(|e| match e {
                GatewayError::Settings { field, reason, .. } => GatewayError::Settings {
                    channel: start.name.to_string(),
                    field,
                    reason,
                },
                other => other,
            })?
            .named(start.name);
        let token = start.secret("token_secret", &t.token_secret)?;
        let mut http = start.http()?;
        http.base_url = format!("{}/api/v4", server.trim_end_matches('/'));
        let client = Arc::new(MattermostClient::new(&http, &token)?);
        let socket = Arc::new(MattermostSocket::new(
            MattermostSocket::url_for(&http.base_url),
            http.extra_root_pem.clone(),
            token,
            parser,
            Arc::clone(&client),
        ));
        let dispatcher = Arc::clone(start.dispatcher);
        Ok(Started {
            outbound: client,
            inbound: InboundPath::Loop(Box::new(move |pacer, stop| {
                Box::pin(run_websocket(socket, dispatcher, pacer, stop))
            })),
        })
    }
}
