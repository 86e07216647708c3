//! Signal (issue 21) through the owner's `signal-cli`, registered or linked
//! as the bot's account and run as a daemon serving JSON-RPC on a Unix
//! socket ([`socket`]: `socket_path`, checked before every connect; never
//! TCP). A sender is known by its ACI only (`sourceUuid`, never the phone
//! number); a DM's chat is that ACI, a group's its `groupId` ([`parse`]).
//! Before a message is acted on, its sender's safety number is checked
//! ([`identity`]): a changed or untrusted one pauses the sender until the
//! owner confirms it (`coworkctl channels trust`). Answers go out by
//! signal-cli's `send`, in pieces of 2,000 bytes ([`client`]).
//! `docs/channels/signal.md` says what the owner sets up.

pub mod client;
pub mod identity;
pub mod parse;
pub mod socket;

use std::sync::Arc;

pub use client::{CALL_TIMEOUT, Call, QUEUE_CALLS, SIGNAL_MAX_BYTES, SignalSender};
pub use identity::Identities;
pub use parse::{
    Envelope, Incoming, Signal, SignalEvent, is_aci, is_e164, is_group_id, is_signal_id,
    parse_line, safety_number,
};
pub use socket::{MAX_LINE_BYTES, SessionEnd, SignalConnection, check_socket, run_connection};

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Start, Started};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::TransportKind;

/// One line as a session reads it, then a received envelope through
/// `rules`: the fuzz target's entry (`crate::fuzzing`).
pub(crate) fn decode_line(text: &str, rules: &Signal) -> Result<Option<SignalEvent>, GatewayError> {
    match parse_line(text)? {
        Incoming::Receive(envelope) => rules.envelope(&envelope).map(Some),
        Incoming::Answer { .. } | Incoming::Other => Ok(None),
    }
}

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "signal",
            transports: &[TransportSpec {
                name: "signal",
                kind: TransportKind::Signal,
                webhook_route: None,
                // Not an HTTP API: signal-cli's socket is `socket_path`.
                api_base: "",
                required: &["socket_path", "account"],
                optional: &[],
                secrets: &[],
                id_shape: Some((
                    is_signal_id,
                    "a Signal ACI (a lowercase UUID, as signal-cli's sourceUuid shows it; never a phone number) or a group id (base64)",
                )),
            }],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        let socket_path = t
            .socket_path
            .clone()
            .ok_or_else(|| GatewayError::Settings {
                channel: start.name.to_string(),
                field: "transport",
                reason: "socket_path is required for this transport".into(),
            })?;
        let account = start.required("account", &t.account)?;
        let rules = Signal::new(start.name, account)?;
        let identities = Arc::new(Identities::default());
        let dispatcher = Arc::clone(start.dispatcher);
        let (sender, calls) = SignalSender::new(
            start.name,
            account,
            Arc::clone(dispatcher.store()),
            Arc::clone(&identities),
            Arc::clone(dispatcher.clock()),
        );
        let sender = Arc::new(sender);
        let conn = Arc::new(SignalConnection {
            socket_path,
            rules,
            identities,
            sender: Arc::clone(&sender),
        });
        Ok(Started {
            outbound: sender,
            inbound: InboundPath::Loop(Box::new(move |pacer, stop| {
                Box::pin(run_connection(conn, dispatcher, calls, pacer, stop))
            })),
        })
    }
}
