//! The Matrix way in: the `/sync` long poll. Each round (through the
//! [`Pacer`], so the settings page shows "retrying in 8 s: ..."):
//!
//! 1. Once per run, and again after any failure: `account/whoami` must
//!    name `bot_user` (the homeserver check; a revoked token shows as
//!    "token revoked or rotated: set a new one"), then the bot's `m.direct`
//!    and the sync position saved in its account data
//!    ([`SYNC_POSITION_TYPE`]).
//! 2. `sync` from that position. Without one (the very first run) the
//!    answer is only a starting point: its messages are history and are not
//!    answered, its invitations are.
//! 3. Each item in order: a message of a readable room → the
//!    [`Dispatcher`] (the event id is the replay key; DM when the room is in
//!    `m.direct` or has exactly two joined members, else group); a message
//!    or encrypted event in an encrypted room → refused once per room with
//!    [`ENCRYPTED_REFUSAL`]; membership changes of others in the timeline
//!    → audited (`gateway.membership`; a sync whose timeline was cut short
//!    by its limit shows only the changes it kept); invitations → joined when
//!    [`Dispatcher::accepts_invite`] allows the inviter, else left pending
//!    and audited.
//! 4. The new position is saved on the homeserver when the batch brought
//!    anything, so a restart goes on from it (what came in meanwhile is
//!    read then, not lost; the replay guard drops what was already handled).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::client::{MatrixClient, SYNC_POSITION_TYPE, refused_for_good};
use super::parse::{CHANNEL, SyncBatch, SyncItem, parse_sync};
use crate::gateway::channels::{ChatMemory, Refused, audit_refused};
use crate::gateway::dispatch::Dispatcher;
use crate::gateway::error::GatewayError;
use crate::gateway::inbound::{Context, Inbound, RawInbound};
use crate::gateway::sinks::AuditEvent;
use crate::gateway::transport::pacer::{Pacer, run_polls};

/// What an encrypted room is told (the audit's detail, the log line, the
/// docs): why its messages are not read.
pub const ENCRYPTED_REFUSAL: &str = "end-to-end encrypted room: its messages cannot be read. \
     The appliance keeps no persistent crypto store yet, and half-working encryption \
     (keys lost on restart, undecryptable messages) is worse than a clear refusal: \
     use an unencrypted room for the bot";
/// Most rooms whose member count and encryption are remembered (past it the
/// memory starts over: they are asked again).
const MAX_ROOMS: usize = 10_000;

/// What the appliance knows of a joined room.
#[derive(Debug, Clone, Copy)]
struct RoomInfo {
    members: usize,
    encrypted: bool,
}

/// One Matrix channel's way in.
#[derive(Debug)]
pub struct MatrixSync {
    /// The configured channel served (stamped on its messages).
    channel: String,
    client: Arc<MatrixClient>,
    rooms: Mutex<HashMap<String, RoomInfo>>,
    /// `m.direct`'s rooms.
    direct: Mutex<BTreeSet<String>>,
    /// Encrypted rooms already refused (refused once, not per message).
    refused_rooms: ChatMemory,
}

/// The loop's state between rounds.
#[derive(Debug, Default)]
pub struct Position {
    /// Checked and loaded (step 1) since the last failure.
    ready: bool,
    since: Option<String>,
}

impl MatrixSync {
    pub fn new(channel: &str, client: Arc<MatrixClient>) -> MatrixSync {
        MatrixSync {
            channel: channel.to_string(),
            client,
            rooms: Mutex::default(),
            direct: Mutex::default(),
            refused_rooms: ChatMemory::new(MAX_ROOMS),
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, RoomInfo>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn direct(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.direct.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Step 1: the homeserver check, `m.direct` and the saved position.
    async fn prepare(&self, pos: &mut Position) -> Result<(), GatewayError> {
        self.client.verify().await?;
        if let Some(direct) = self.client.account_data("m.direct").await? {
            let rooms = direct
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
                .filter_map(|v| v.as_array())
                .flatten()
                .filter_map(|r| r.as_str())
                .filter(|r| super::parse::is_room_id(r))
                .map(str::to_string)
                .collect();
            *self.direct() = rooms;
        }
        if pos.since.is_none() {
            pos.since = self
                .client
                .account_data(SYNC_POSITION_TYPE)
                .await?
                .and_then(|v| v.get("since")?.as_str().map(str::to_string))
                .filter(|s| !s.is_empty() && s.len() <= 1024);
        }
        pos.ready = true;
        Ok(())
    }

    /// One round; how many items it brought.
    pub async fn poll(
        &self,
        pos: &mut Position,
        dispatcher: &Dispatcher,
    ) -> Result<usize, GatewayError> {
        if !pos.ready {
            self.prepare(pos).await?;
        }
        let result = self.sync_once(pos, dispatcher).await;
        if result.is_err() {
            // Check the token and the server again before the next sync:
            // their problem is the one to show.
            pos.ready = false;
        }
        result
    }

    async fn sync_once(
        &self,
        pos: &mut Position,
        dispatcher: &Dispatcher,
    ) -> Result<usize, GatewayError> {
        let body = self.client.sync(pos.since.as_deref()).await?;
        let batch = parse_sync(&body, self.client.me())?;
        let first = pos.since.is_none();
        let n = batch.items.len();
        let next = batch.next_batch.clone();
        self.handle(batch, first, dispatcher).await?;
        let moved = pos.since.as_deref() != Some(next.as_str());
        if moved && (first || n > 0) {
            self.client
                .set_account_data(SYNC_POSITION_TYPE, &serde_json::json!({ "since": next }))
                .await?;
        }
        pos.since = Some(next);
        Ok(n)
    }

    /// Acts on a batch's items; `first`: the starting sync (history).
    async fn handle(
        &self,
        batch: SyncBatch,
        first: bool,
        dispatcher: &Dispatcher,
    ) -> Result<(), GatewayError> {
        if let Some(direct) = batch.direct {
            *self.direct() = direct;
        }
        for item in batch.items {
            match item {
                SyncItem::Message {
                    room,
                    event_id,
                    sender,
                    body,
                    mentions,
                } => {
                    if first {
                        continue;
                    }
                    let info = match self.room_info(&room).await {
                        Ok(info) => info,
                        // Left or forgotten since (the message is older
                        // than the bot's leaving): nothing to answer.
                        Err(e) if refused_for_good(&e) => {
                            tracing::info!(channel = self.channel, room, error = %e,
                                "matrix room not readable; message skipped");
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    if info.encrypted {
                        self.refuse_encrypted(dispatcher, &room, &sender).await?;
                        continue;
                    }
                    let context = if info.members == 2 || self.direct().contains(&room) {
                        Context::Dm
                    } else {
                        Context::Group
                    };
                    let raw = RawInbound {
                        channel: self.channel.clone(),
                        account: None,
                        mentions_bot: mentions.iter().any(|m| m == self.client.me()),
                        sender,
                        sender_name: None,
                        chat: room,
                        context,
                        text: body,
                        attachments: Vec::new(),
                    };
                    match Inbound::try_from(raw) {
                        Ok(inbound) => {
                            dispatcher
                                .dispatch_and_answer(CHANNEL, Some(&event_id), inbound)
                                .await?
                        }
                        Err(e) => dispatcher.reject_malformed(CHANNEL, &e).await?,
                    }
                }
                SyncItem::Encrypted { room, sender, .. } => {
                    if !first {
                        self.refuse_encrypted(dispatcher, &room, &sender).await?;
                    }
                }
                SyncItem::RoomEncrypted { room, .. } => {
                    let mut rooms = self.rooms();
                    if let Some(info) = rooms.get_mut(&room) {
                        info.encrypted = true;
                    }
                }
                SyncItem::Membership {
                    room,
                    event_id,
                    sender,
                    target,
                    membership,
                    in_timeline,
                } => {
                    // Asked again when next needed.
                    self.rooms().remove(&room);
                    if first || !in_timeline || target == self.client.me() {
                        continue;
                    }
                    let mut ev =
                        AuditEvent::new("gateway.membership", membership.clone(), &self.channel);
                    ev.sender = Some(target.clone());
                    ev.chat = Some(room);
                    ev.event_id = event_id;
                    ev.detail = Some(if sender == target {
                        format!("{target} {membership}")
                    } else {
                        format!("{membership} of {target} by {sender}")
                    });
                    dispatcher.trail().event(ev).await?;
                }
                SyncItem::Invite {
                    room,
                    inviter,
                    is_direct,
                } => self.on_invite(dispatcher, room, inviter, is_direct).await?,
                SyncItem::Left { room } => {
                    self.rooms().remove(&room);
                }
                SyncItem::Malformed { reason } => {
                    dispatcher
                        .reject_malformed(CHANNEL, &GatewayError::parse(CHANNEL, reason))
                        .await?
                }
            }
        }
        Ok(())
    }

    /// An invitation: joined when the inviter may bring the bot there,
    /// else left pending (the owner sees it in the audit trail; an invite
    /// stays in every sync until it is answered, so it is audited only when
    /// it first arrives in this run).
    async fn on_invite(
        &self,
        dispatcher: &Dispatcher,
        room: String,
        inviter: String,
        is_direct: bool,
    ) -> Result<(), GatewayError> {
        let context = if is_direct {
            Context::Dm
        } else {
            Context::Group
        };
        let accepted = dispatcher.accepts_invite(&self.channel, &inviter, context)?;
        let seen = self.refused_rooms.get(&room).is_some();
        if !accepted && seen {
            return Ok(());
        }
        let mut ev = AuditEvent::new(
            "gateway.membership",
            if accepted {
                "invite_accepted"
            } else {
                "invite_pending"
            },
            &self.channel,
        );
        ev.sender = Some(inviter.clone());
        ev.chat = Some(room.clone());
        ev.detail = Some(if accepted {
            format!("joined at the invitation of {inviter}")
        } else {
            format!(
                "not joined: {inviter} may not bring the bot into a {} chat (pair or allowlist them first)",
                if is_direct { "direct" } else { "group" }
            )
        });
        dispatcher.trail().event(ev).await?;
        if accepted {
            match self.client.join(&room).await {
                Ok(()) => {}
                // Withdrawn or no longer joinable: nothing to join.
                Err(e) if refused_for_good(&e) => {
                    tracing::info!(channel = self.channel, room, error = %e,
                        "matrix invitation could not be accepted");
                }
                Err(e) => return Err(e),
            }
        } else {
            self.refused_rooms.note(&room, "invite");
        }
        Ok(())
    }

    /// Refuses an encrypted room's message: audited and logged once per room.
    async fn refuse_encrypted(
        &self,
        dispatcher: &Dispatcher,
        room: &str,
        sender: &str,
    ) -> Result<(), GatewayError> {
        if self.refused_rooms.get(room).as_deref() == Some("encrypted") {
            return Ok(());
        }
        tracing::warn!(channel = self.channel, room, "{ENCRYPTED_REFUSAL}");
        audit_refused(
            dispatcher.trail(),
            &self.channel,
            &Refused {
                reason: "encrypted_room",
                detail: ENCRYPTED_REFUSAL.to_string(),
                sender: Some(sender.to_string()),
                chat: Some(room.to_string()),
            },
        )
        .await?;
        self.refused_rooms.note(room, "encrypted");
        Ok(())
    }

    /// The room's member count and encryption, asked when not known.
    async fn room_info(&self, room: &str) -> Result<RoomInfo, GatewayError> {
        if let Some(info) = self.rooms().get(room) {
            return Ok(*info);
        }
        let info = RoomInfo {
            members: self.client.joined_members(room).await?,
            encrypted: self.client.is_encrypted(room).await?,
        };
        let mut rooms = self.rooms();
        if rooms.len() >= MAX_ROOMS {
            rooms.clear();
        }
        rooms.insert(room.to_string(), info);
        Ok(info)
    }
}

/// The sync loop until `shutdown`.
pub async fn run_sync(
    sync: Arc<MatrixSync>,
    dispatcher: Arc<Dispatcher>,
    pacer: Pacer,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    run_polls(
        pacer,
        shutdown,
        "matrix sync",
        Position::default(),
        move |pos| {
            let sync = Arc::clone(&sync);
            let dispatcher = Arc::clone(&dispatcher);
            Box::pin(async move { sync.poll(pos, &dispatcher).await })
        },
    )
    .await
}
