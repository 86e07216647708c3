//! The `local` channel: `coworkctl chat` speaks on it through the supervisor;
//! it has no platform, no transport and no secrets. Its replies wait in an
//! inbox per chat ([`crate::gateway::outbound::Replies`]).

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, Start, Started};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::TransportKind;

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "local",
            transports: &[TransportSpec {
                name: "none",
                kind: TransportKind::None,
                webhook_route: None,
                api_base: "",
                required: &[],
                optional: &[],
                secrets: &[],
                id_shape: None,
            }],
        }
    }

    /// Never called: the runner starts no transport of kind `none`.
    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        Err(GatewayError::Settings {
            channel: start.name.to_string(),
            field: "transport",
            reason: "a channel without a transport has nothing to start".into(),
        })
    }
}
