//! The normalized inbound message. Channel adapters build a [`RawInbound`] from
//! their wire format; `Inbound::try_from` validates it once (lengths capped, no
//! NULs or control characters in ids) and the policy engine only sees the result.

use super::error::GatewayError;

/// The name of the channel `coworkctl chat` speaks on (no platform behind it).
pub const LOCAL_CHANNEL: &str = "local";

pub const MAX_CHANNEL_LEN: usize = 32;
pub const MAX_ID_LEN: usize = 256;
pub const MAX_DISPLAY_NAME_LEN: usize = 256;
pub const MAX_TEXT_LEN: usize = 64 * 1024;
pub const MAX_ATTACHMENTS: usize = 32;
pub const MAX_ATTACHMENT_NAME_LEN: usize = 255;
pub const MAX_MIME_LEN: usize = 127;

/// Where a message was said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    Dm,
    Group,
}

/// A file attached to a message (metadata only; the content is fetched later,
/// if at all, by the task that needs it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub mime: Option<String>,
    pub size: Option<u64>,
}

/// An unvalidated inbound message, as an adapter builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawInbound {
    pub channel: String,
    /// Workspace / guild / tenant the message came through (Slack team id,
    /// Discord guild id); `None` where the channel has no such notion.
    pub account: Option<String>,
    pub sender: String,
    pub sender_name: Option<String>,
    pub chat: String,
    pub context: Context,
    pub mentions_bot: bool,
    pub text: String,
    pub attachments: Vec<Attachment>,
}

/// A validated inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    channel: String,
    account: Option<String>,
    sender: String,
    sender_name: Option<String>,
    chat: String,
    context: Context,
    mentions_bot: bool,
    text: String,
    attachments: Vec<Attachment>,
}

impl Inbound {
    /// The same message on the channel configured as `channel` (a name that
    /// settings validated), for a transport serving a channel not named after
    /// its platform.
    pub(crate) fn on_channel(mut self, channel: &str) -> Inbound {
        self.channel = channel.to_string();
        self
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }
    pub fn sender(&self) -> &str {
        &self.sender
    }
    pub fn sender_name(&self) -> Option<&str> {
        self.sender_name.as_deref()
    }
    pub fn chat(&self) -> &str {
        &self.chat
    }
    pub fn context(&self) -> Context {
        self.context
    }
    pub fn mentions_bot(&self) -> bool {
        self.mentions_bot
    }
    pub fn text(&self) -> &str {
        &self.text
    }
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }
}

fn invalid(field: &'static str, reason: &'static str) -> GatewayError {
    GatewayError::ValidateInbound { field, reason }
}

/// Ids (senders, chats, accounts, allowlist entries): 1..=256 bytes, no control
/// characters, no surrounding whitespace, and never the wildcard `*`.
pub(crate) fn check_id_chars(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("empty");
    }
    if id.len() > MAX_ID_LEN {
        return Err("longer than 256 bytes");
    }
    if id.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if id.trim() != id {
        return Err("surrounding whitespace");
    }
    if id == "*" {
        return Err("the wildcard is not an id");
    }
    Ok(())
}

fn check_id(field: &'static str, id: &str) -> Result<(), GatewayError> {
    check_id_chars(id).map_err(|r| invalid(field, r))
}

fn check_text(field: &'static str, s: &str, max: usize) -> Result<(), GatewayError> {
    if s.len() > max {
        return Err(invalid(field, "too long"));
    }
    if s.contains('\0') {
        return Err(invalid(field, "contains NUL"));
    }
    Ok(())
}

impl TryFrom<RawInbound> for Inbound {
    type Error = GatewayError;

    fn try_from(raw: RawInbound) -> Result<Inbound, GatewayError> {
        let ch = &raw.channel;
        if ch.is_empty()
            || ch.len() > MAX_CHANNEL_LEN
            || !ch
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(invalid(
                "channel",
                "must be 1 to 32 characters of a-z 0-9 _ -",
            ));
        }
        if let Some(a) = &raw.account {
            check_id("account", a)?;
        }
        check_id("sender", &raw.sender)?;
        check_id("chat", &raw.chat)?;
        if let Some(n) = &raw.sender_name {
            check_text("sender_name", n, MAX_DISPLAY_NAME_LEN)?;
            if n.chars().any(char::is_control) {
                return Err(invalid("sender_name", "contains a control character"));
            }
        }
        check_text("text", &raw.text, MAX_TEXT_LEN)?;
        if raw.attachments.len() > MAX_ATTACHMENTS {
            return Err(invalid("attachments", "more than 32"));
        }
        for a in &raw.attachments {
            check_text("attachments.name", &a.name, MAX_ATTACHMENT_NAME_LEN)?;
            if a.name.chars().any(char::is_control) || a.name.contains('/') {
                return Err(invalid(
                    "attachments.name",
                    "contains a control character or '/'",
                ));
            }
            if let Some(m) = &a.mime {
                check_text("attachments.mime", m, MAX_MIME_LEN)?;
                if m.chars().any(char::is_control) {
                    return Err(invalid("attachments.mime", "contains a control character"));
                }
            }
        }
        Ok(Inbound {
            channel: raw.channel,
            account: raw.account,
            sender: raw.sender,
            sender_name: raw.sender_name,
            chat: raw.chat,
            context: raw.context,
            mentions_bot: raw.mentions_bot,
            text: raw.text,
            attachments: raw.attachments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawInbound {
        RawInbound {
            channel: "telegram".into(),
            account: None,
            sender: "42".into(),
            sender_name: Some("Ada".into()),
            chat: "42".into(),
            context: Context::Dm,
            mentions_bot: false,
            text: "hello".into(),
            attachments: vec![Attachment {
                name: "a.txt".into(),
                mime: Some("text/plain".into()),
                size: Some(3),
            }],
        }
    }

    #[test]
    fn valid_passes() {
        let i = Inbound::try_from(raw()).unwrap();
        assert_eq!(i.sender(), "42");
        assert_eq!(i.attachments().len(), 1);
    }

    #[test]
    fn hostile_fields_refused() {
        type Mutation = Box<dyn Fn(&mut RawInbound)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("channel", Box::new(|r| r.channel = "Tele gram".into())),
            ("channel", Box::new(|r| r.channel = "x".repeat(33))),
            ("sender", Box::new(|r| r.sender = String::new())),
            ("sender", Box::new(|r| r.sender = "*".into())),
            ("sender", Box::new(|r| r.sender = "a\0b".into())),
            ("sender", Box::new(|r| r.sender = "a".repeat(257))),
            ("sender", Box::new(|r| r.sender = " 42".into())),
            ("chat", Box::new(|r| r.chat = "c\nd".into())),
            ("account", Box::new(|r| r.account = Some(String::new()))),
            ("text", Box::new(|r| r.text = "hi\0".into())),
            ("text", Box::new(|r| r.text = "x".repeat(MAX_TEXT_LEN + 1))),
            (
                "sender_name",
                Box::new(|r| r.sender_name = Some("a\u{1b}[31m".into())),
            ),
            (
                "attachments",
                Box::new(|r| r.attachments = vec![r.attachments[0].clone(); 33]),
            ),
            (
                "attachments.name",
                Box::new(|r| r.attachments[0].name = "../etc/passwd".into()),
            ),
        ];
        for (field, mutate) in cases {
            let mut r = raw();
            mutate(&mut r);
            match Inbound::try_from(r) {
                Err(GatewayError::ValidateInbound { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
