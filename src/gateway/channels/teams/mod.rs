//! Microsoft Teams (Azure Bot Service): the bot's messaging endpoint on the
//! webhook listener (every request carries a Bot Framework JWT), answers by
//! the Bot Connector with the bot's own client-credentials token. The app
//! password is read from the vault for each new token (about hourly), so a
//! password replaced in the vault is used without a restart.

mod client;
mod parse;
mod webhook;

use std::sync::Arc;

pub use client::{CONNECTOR_SCOPE, TEAMS_API_BASE, TEAMS_MAX_CHARS, TeamsClient};
pub use parse::{
    Activity, TEAMS_CHANNEL_ID, TOKEN_ISSUER, Teams, TeamsEvent, is_entra_id, is_teams_id,
};
pub use webhook::{Route as WebhookRoute, route as webhook_route};

use super::registry::{ChannelKind, TransportSpec};
use super::{Channel, InboundPath, Start, Started};
use crate::gateway::error::GatewayError;
use crate::gateway::settings::TransportKind;
use crate::gateway::transport::jwt::{KeySet, KeySource};
use crate::gateway::transport::oauth::TokenSource;

/// The Bot Framework's OpenID metadata (its signing keys).
pub const OPENID_METADATA: &str =
    "https://login.botframework.com/v1/.well-known/openidconfiguration";

/// The platform.
#[derive(Debug)]
pub struct Platform;

impl Channel for Platform {
    fn kind(&self) -> &'static ChannelKind {
        &ChannelKind {
            name: "teams",
            transports: &[TransportSpec {
                name: "teams",
                kind: TransportKind::Teams,
                webhook_route: Some("/teams/messages"),
                api_base: TEAMS_API_BASE,
                required: &["application_id", "organization_id", "token_secret"],
                optional: &["keys_url", "token_url", "api_base", "ca_file"],
                secrets: &[(
                    "token_secret",
                    "the bot's client secret (app password) in Microsoft Entra ID",
                )],
                id_shape: Some((
                    is_teams_id,
                    "a Microsoft Entra object id (a lowercase GUID such as 7faf1a9c-4b0e-4a52-9d0b-3f1b2c6d8e90) or a Teams conversation id (a:... or 19:...@thread...)",
                )),
            }],
        }
    }

    fn start(&self, start: &Start<'_>) -> Result<Started, GatewayError> {
        let t = start.transport;
        let app_id = start.required("application_id", &t.application_id)?;
        let tenant = start.required("organization_id", &t.organization_id)?;
        let verifier = Teams::new(app_id, tenant)?.named(start.name);
        // Read now so a password not stored yet fails the start (status,
        // settings page); read again for each token.
        start.secret("token_secret", &t.token_secret)?;
        let secret_name = start.required("token_secret", &t.token_secret)?.to_string();
        let secrets = Arc::clone(start.secrets);
        let client_id = app_id.to_string();
        let grant = Box::new(move || {
            let password = secrets.secret(&secret_name)?;
            Ok(vec![
                ("grant_type", "client_credentials".to_string()),
                ("client_id", client_id.clone()),
                ("client_secret", password.expose().to_string()),
                ("scope", CONNECTOR_SCOPE.to_string()),
            ])
        });
        let http = start.http()?;
        let roots = http.extra_root_pem.as_deref();
        let token_url = t.token_url.clone().unwrap_or_else(|| {
            format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
        });
        let tokens = TokenSource::new(parse::CHANNEL, &token_url, roots, grant)?;
        let metadata = t.keys_url.clone().unwrap_or_else(|| OPENID_METADATA.into());
        let keys = KeySet::new(parse::CHANNEL, KeySource::OpenIdMetadata(metadata), roots)?;
        let client = Arc::new(TeamsClient::new(&http, tokens)?);
        let route = webhook::route(
            Arc::clone(start.hooks),
            webhook::Route {
                verifier,
                keys,
                client: Arc::clone(&client),
            },
        );
        Ok(Started {
            outbound: client,
            inbound: InboundPath::Webhook(Box::new(route)),
        })
    }
}
