//! Mattermost WebSocket frames: the answer to the authentication challenge
//! (`{"status": "OK", "seq_reply": 1}`), `hello`, and `posted` events, whose
//! `data.post` is the post as a JSON string (`id`, `user_id`, `channel_id`,
//! `root_id`, `message`, `type`) beside `data.channel_type` (`D` direct, `G`
//! group, `O` public, `P` private) and `data.team_id` (empty outside a team).
//! A post becomes an [`Inbound`] only once it is shown to be a person's new
//! post in a place the owner allowed: the bot's own posts, system posts
//! (a non-empty `type`), edited or deleted posts and posts of bots and
//! webhooks are ignored; a post in a team or channel outside the allowlists
//! is refused (audited). The frames are authenticated only by the TLS
//! connection opened with the token.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::gateway::channels::Refused;
use crate::gateway::error::GatewayError;
use crate::gateway::inbound::{Attachment, Context, Inbound, RawInbound};

pub(crate) const CHANNEL: &str = "mattermost";
/// Largest text frame read; a larger one (under the WebSocket's own cap) is
/// audited and skipped. A post is at most 16,383 characters, escaped twice
/// (the post is a JSON string inside the event): well under this.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

/// Whether `id` is shaped like a Mattermost id (users, channels, teams,
/// posts): 26 lowercase letters and digits.
pub fn is_mattermost_id(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// One text frame of the WebSocket, decoded but not acted on.
#[derive(Debug)]
pub(crate) enum Frame {
    /// The answer to our action `seq_reply`: `Ok(())` or the server's error
    /// (at most 128 characters).
    Reply {
        seq: i64,
        result: Result<(), String>,
    },
    /// `hello`: the connection is registered.
    Hello,
    /// `posted`, with its `data`.
    Posted(Box<RawValue>),
    /// Any other event (typing, status changes, edits, reactions...).
    Other,
}

#[derive(Deserialize)]
struct RawFrame {
    event: Option<String>,
    data: Option<Box<RawValue>>,
    status: Option<String>,
    seq_reply: Option<i64>,
    error: Option<serde_json::Value>,
}

/// Decodes one text frame (outside input).
pub(crate) fn decode_frame(text: &str) -> Result<Frame, GatewayError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(GatewayError::parse(
            CHANNEL,
            format!("frame of {} bytes; at most {MAX_FRAME_BYTES}", text.len()),
        ));
    }
    let f: RawFrame = serde_json::from_str(text)
        .map_err(|e| GatewayError::parse(CHANNEL, format!("websocket frame: {e}")))?;
    if let Some(seq) = f.seq_reply {
        let result = match f.status.as_deref() {
            Some("OK") => Ok(()),
            _ => Err(f
                .error
                .as_ref()
                .and_then(|e| e.get("message").or_else(|| e.get("id")))
                .and_then(|m| m.as_str())
                .unwrap_or("refused")
                .chars()
                .take(128)
                .collect()),
        };
        return Ok(Frame::Reply { seq, result });
    }
    Ok(match (f.event.as_deref(), f.data) {
        (Some("hello"), _) => Frame::Hello,
        (Some("posted"), Some(data)) => Frame::Posted(data),
        (Some("posted"), None) => {
            return Err(GatewayError::parse(CHANNEL, "posted event without data"));
        }
        _ => Frame::Other,
    })
}

/// What a `posted` event asks of the appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MattermostEvent {
    /// A person's new post: the post id (the replay key), the thread to
    /// answer in (the post's root, or the post itself), the message.
    Message {
        post_id: String,
        thread: String,
        inbound: Box<Inbound>,
    },
    /// An authentic post in a place the owner did not allow (audited).
    Refused(Refused),
    /// Not a prompt (ours, a system post, an edit, a bot's).
    Ignored { reason: &'static str },
}

/// The account the socket is authenticated as (`GET /api/v4/users/me`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Me {
    pub id: String,
    #[serde(default)]
    pub username: String,
    /// A bot account (System Console → Bot Accounts), not a person's.
    #[serde(default)]
    pub is_bot: bool,
}

/// A Mattermost channel's parser with the owner's restrictions.
#[derive(Debug, Clone)]
pub struct Mattermost {
    /// The configured channel served (stamped on its messages).
    channel: String,
    teams: Vec<String>,
    channels: Vec<String>,
}

#[derive(Deserialize)]
struct PostedData {
    post: String,
    channel_type: String,
    #[serde(default)]
    team_id: String,
    sender_name: Option<String>,
    /// The ids the post mentions, as a JSON array in a string.
    mentions: Option<String>,
}

#[derive(Deserialize)]
struct Post {
    id: String,
    user_id: String,
    channel_id: String,
    #[serde(default)]
    root_id: String,
    #[serde(default)]
    message: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    edit_at: i64,
    #[serde(default)]
    delete_at: i64,
    #[serde(default)]
    props: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    files: Vec<FileInfo>,
}

#[derive(Deserialize)]
struct FileInfo {
    name: String,
    mime_type: Option<String>,
    size: Option<u64>,
}

impl Mattermost {
    /// `teams`: the team ids served (at least one); `channels`: the channel
    /// ids answered in (empty: every private channel of those teams).
    pub fn new(teams: &[String], channels: &[String]) -> Result<Mattermost, GatewayError> {
        let bad = |reason: String| GatewayError::Settings {
            channel: CHANNEL.to_string(),
            field: "transport",
            reason,
        };
        if teams.is_empty() {
            return Err(bad(
                "team_allowlist is empty: name the team ids the bot serves".into(),
            ));
        }
        for (key, ids) in [("team_allowlist", teams), ("channel_allowlist", channels)] {
            if let Some(id) = ids.iter().find(|id| !is_mattermost_id(id)) {
                return Err(bad(format!("{key}: {id:?} is not a Mattermost id")));
            }
        }
        Ok(Mattermost {
            channel: CHANNEL.to_string(),
            teams: teams.to_vec(),
            channels: channels.to_vec(),
        })
    }

    /// Serves the channel configured as `channel`.
    pub fn named(mut self, channel: &str) -> Mattermost {
        self.channel = channel.to_string();
        self
    }

    /// The configured channel served.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// A `posted` event's `data`, seen by the account `me`.
    pub fn posted(&self, data: &[u8], me: &Me) -> Result<MattermostEvent, GatewayError> {
        let parse = |what: &str, e: serde_json::Error| {
            GatewayError::parse(CHANNEL, format!("posted {what}: {e}"))
        };
        let d: PostedData = crate::gateway::channels::parse_json(CHANNEL, data)?;
        let post: Post = serde_json::from_str(&d.post).map_err(|e| parse("post", e))?;
        for (what, id) in [
            ("post id", &post.id),
            ("user_id", &post.user_id),
            ("channel_id", &post.channel_id),
        ] {
            if !is_mattermost_id(id) {
                return Err(GatewayError::parse(
                    CHANNEL,
                    format!("{what} is not a Mattermost id"),
                ));
            }
        }
        if !post.root_id.is_empty() && !is_mattermost_id(&post.root_id) {
            return Err(GatewayError::parse(
                CHANNEL,
                "root_id is not a Mattermost id",
            ));
        }
        let ignored = |reason| Ok(MattermostEvent::Ignored { reason });
        if post.user_id == me.id {
            return ignored("own post");
        }
        if !post.kind.is_empty() {
            return ignored("system post");
        }
        if post.edit_at != 0 || post.delete_at != 0 {
            return ignored("edited or deleted post");
        }
        let flag = |name: &str| {
            post.props
                .as_ref()
                .and_then(|p| p.get(name))
                .is_some_and(|v| v == "true" || v == true)
        };
        if flag("from_bot") || flag("from_webhook") {
            return ignored("a bot's or a webhook's post");
        }
        let refused = |reason, detail: String| {
            Ok(MattermostEvent::Refused(Refused {
                reason,
                detail,
                sender: Some(post.user_id.clone()),
                chat: Some(post.channel_id.clone()),
            }))
        };
        let (context, team) = match d.channel_type.as_str() {
            "D" => (Context::Dm, None),
            "G" => (Context::Group, None),
            kind @ ("O" | "P") => {
                if !self.teams.contains(&d.team_id) {
                    let shown = Some(d.team_id.as_str())
                        .filter(|t| is_mattermost_id(t))
                        .unwrap_or("(not an id)");
                    return refused(
                        "team_not_allowed",
                        format!("team {shown} is not in team_allowlist"),
                    );
                }
                let listed = self.channels.contains(&post.channel_id);
                if !listed && (kind == "O" || !self.channels.is_empty()) {
                    let which = if kind == "O" { "public " } else { "" };
                    return refused(
                        "channel_not_allowed",
                        format!("the {which}channel is not in channel_allowlist"),
                    );
                }
                (Context::Group, Some(d.team_id))
            }
            _ => return Err(GatewayError::parse(CHANNEL, "unknown channel_type")),
        };
        let mentions: Vec<String> = match &d.mentions {
            Some(m) => serde_json::from_str(m).map_err(|e| parse("mentions", e))?,
            None => Vec::new(),
        };
        let mentions_bot = mentions.contains(&me.id) || mentions_name(&post.message, &me.username);
        let thread = if post.root_id.is_empty() {
            post.id.clone()
        } else {
            post.root_id.clone()
        };
        let attachments = post
            .metadata
            .map(|m| m.files)
            .unwrap_or_default()
            .into_iter()
            .map(|f| Attachment {
                name: f.name,
                mime: f.mime_type,
                size: f.size,
            })
            .collect();
        let inbound = Inbound::try_from(RawInbound {
            channel: self.channel.clone(),
            account: team,
            sender: post.user_id,
            sender_name: d.sender_name.map(|n| n.trim_start_matches('@').to_string()),
            chat: post.channel_id,
            context,
            mentions_bot,
            text: post.message,
            attachments,
        })?;
        Ok(MattermostEvent::Message {
            post_id: post.id,
            thread,
            inbound: Box::new(inbound),
        })
    }
}

/// Whether `text` mentions `@username`: the name ends at a character that
/// cannot be part of one, or at periods ending a sentence (`@cowork.`).
fn mentions_name(text: &str, username: &str) -> bool {
    if username.is_empty() {
        return false;
    }
    let needle = format!("@{username}");
    text.match_indices(&needle).any(|(at, _)| {
        text[at + needle.len()..]
            .trim_start_matches('.')
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEAM: &str = "tttttttttttttttttttttttttt";
    const BOT: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbb";
    const USER: &str = "uuuuuuuuuuuuuuuuuuuuuuuuuu";
    const CHAN: &str = "cccccccccccccccccccccccccc";
    const POST: &str = "pppppppppppppppppppppppppp";

    fn me() -> Me {
        Me {
            id: BOT.into(),
            username: "cowork".into(),
            is_bot: true,
        }
    }

    fn data(channel_type: &str, team: &str, post: serde_json::Value) -> Vec<u8> {
        json!({"post": post.to_string(), "channel_type": channel_type, "team_id": team,
               "sender_name": "@ada"})
        .to_string()
        .into_bytes()
    }

    fn post(text: &str) -> serde_json::Value {
        json!({"id": POST, "user_id": USER, "channel_id": CHAN, "root_id": "",
               "message": text, "type": ""})
    }

    #[test]
    fn ids_are_shaped() {
        assert!(is_mattermost_id("8xk3w5yq1bfzmc9ejr7unhd4oa"));
        for bad in [
            "",
            "ada",
            "8XK3W5YQ1BFZMC9EJR7UNHD4OA",
            &"a".repeat(27),
            "8xk3w5yq1bfzmc9ejr7unhd4o-",
        ] {
            assert!(!is_mattermost_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_team_allowlist_is_required_and_shaped() {
        assert!(Mattermost::new(&[], &[]).is_err());
        assert!(Mattermost::new(&["town-square".into()], &[]).is_err());
        assert!(Mattermost::new(&[TEAM.into()], &["*".into()]).is_err());
        Mattermost::new(&[TEAM.into()], &[]).unwrap();
    }

    #[test]
    fn dm_group_private_and_public_channels() {
        let open = Mattermost::new(&[TEAM.into()], &[]).unwrap();
        let listed = Mattermost::new(&[TEAM.into()], &[CHAN.into()]).unwrap();
        let kind = |p: &Mattermost, ty: &str, team: &str| match p
            .posted(&data(ty, team, post("hi @cowork")), &me())
            .unwrap()
        {
            MattermostEvent::Message {
                inbound, thread, ..
            } => {
                assert_eq!(thread, POST);
                assert!(inbound.mentions_bot());
                assert_eq!(inbound.sender_name(), Some("ada"));
                format!("{:?}", inbound.context())
            }
            MattermostEvent::Refused(r) => r.reason.to_string(),
            MattermostEvent::Ignored { reason } => reason.to_string(),
        };
        assert_eq!(kind(&open, "D", ""), "Dm");
        assert_eq!(kind(&open, "G", ""), "Group");
        assert_eq!(kind(&open, "P", TEAM), "Group");
        assert_eq!(kind(&open, "O", TEAM), "channel_not_allowed");
        assert_eq!(kind(&listed, "O", TEAM), "Group");
        assert_eq!(
            kind(&open, "P", "oooooooooooooooooooooooooo"),
            "team_not_allowed"
        );
        assert_eq!(kind(&open, "P", ""), "team_not_allowed");
        let other =
            Mattermost::new(&[TEAM.into()], &["dddddddddddddddddddddddddd".into()]).unwrap();
        assert_eq!(kind(&other, "P", TEAM), "channel_not_allowed");
    }

    #[test]
    fn not_prompts_are_ignored() {
        let p = Mattermost::new(&[TEAM.into()], &[]).unwrap();
        let mut own = post("echo");
        own["user_id"] = BOT.into();
        let mut system = post("ada joined");
        system["type"] = "system_join_channel".into();
        let mut edited = post("fixed");
        edited["edit_at"] = 5.into();
        let mut bot = post("beep");
        bot["props"] = json!({"from_bot": "true"});
        let mut hook = post("alert");
        hook["props"] = json!({"from_webhook": "true"});
        for v in [own, system, edited, bot, hook] {
            let got = p.posted(&data("D", "", v.clone()), &me()).unwrap();
            assert!(
                matches!(got, MattermostEvent::Ignored { .. }),
                "{v}: {got:?}"
            );
        }
    }

    #[test]
    fn a_reply_in_a_thread_answers_in_its_root() {
        let p = Mattermost::new(&[TEAM.into()], &[]).unwrap();
        let mut v = post("and this?");
        v["root_id"] = "rrrrrrrrrrrrrrrrrrrrrrrrrr".into();
        let MattermostEvent::Message { thread, .. } = p.posted(&data("D", "", v), &me()).unwrap()
        else {
            panic!("not a message");
        };
        assert_eq!(thread, "rrrrrrrrrrrrrrrrrrrrrrrrrr");
    }

    #[test]
    fn hostile_posts_are_malformed() {
        let p = Mattermost::new(&[TEAM.into()], &[]).unwrap();
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = post("hi");
            f(&mut v);
            p.posted(&data("D", "", v), &me())
        };
        assert!(with(&|v| v["user_id"] = "ada".into()).is_err());
        assert!(with(&|v| v["channel_id"] = json!(5)).is_err());
        assert!(with(&|v| v["root_id"] = "../x".into()).is_err());
        assert!(with(&|v| v["message"] = "a\u{0}b".into()).is_err());
        assert!(with(&|v| v["message"] = "x".repeat(70_000).into()).is_err());
        assert!(p.posted(&data("X", "", post("hi")), &me()).is_err());
        assert!(
            p.posted(br#"{"post": "{", "channel_type": "D"}"#, &me())
                .is_err()
        );
        assert!(p.posted(b"\xff", &me()).is_err());
        let mut d: serde_json::Value = serde_json::from_slice(&data("D", "", post("hi"))).unwrap();
        d["mentions"] = "[1,".into();
        assert!(p.posted(d.to_string().as_bytes(), &me()).is_err());
    }

    #[test]
    fn frames() {
        assert!(matches!(
            decode_frame(r#"{"status":"OK","seq_reply":1}"#),
            Ok(Frame::Reply {
                seq: 1,
                result: Ok(())
            })
        ));
        let Ok(Frame::Reply {
            result: Err(why), ..
        }) = decode_frame(
            r#"{"status":"FAIL","seq_reply":1,"error":{"id":"api.web_socket_router.not_authenticated.app_error"}}"#,
        )
        else {
            panic!("not a refusal");
        };
        assert!(why.contains("not_authenticated"));
        assert!(matches!(
            decode_frame(r#"{"event":"hello","data":{"server_version":"9"},"seq":0}"#),
            Ok(Frame::Hello)
        ));
        assert!(matches!(
            decode_frame(r#"{"event":"typing","data":{},"seq":2}"#),
            Ok(Frame::Other)
        ));
        assert!(decode_frame(r#"{"event":"posted","seq":3}"#).is_err());
        assert!(decode_frame("{\"event\":").is_err());
        let big = format!(
            r#"{{"event":"typing","data":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        assert!(
            decode_frame(&big)
                .unwrap_err()
                .to_string()
                .contains("at most")
        );
    }

    #[test]
    fn mentions_by_name_end_at_the_name() {
        assert!(mentions_name("@cowork hi", "cowork"));
        assert!(mentions_name("hi @cowork.", "cowork"));
        assert!(!mentions_name("hi @coworker", "cowork"));
        assert!(!mentions_name("hi @cowork_2", "cowork"));
        assert!(!mentions_name("hi @cowork.bot", "cowork"));
        assert!(!mentions_name("hi @", ""));
    }
}
