//! Audit events of the update module. The lead wires `UpdateAudit` to the
//! audit trail; the module only describes what happened.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::slots::Slot;

/// One step of an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum UpdateEvent {
    #[serde(rename = "update.verify_started")]
    VerifyStarted { bundle: String },
    #[serde(rename = "update.refused")]
    Refused {
        bundle: String,
        reason: String,
        detail: String,
    },
    #[serde(rename = "update.applying")]
    Applying {
        version: u64,
        slot: Slot,
        key_id: String,
    },
    #[serde(rename = "update.applied")]
    Applied {
        version: u64,
        slot: Slot,
        entry: String,
    },
    #[serde(rename = "update.boot_marked")]
    BootMarked { version: u64, slot: Slot },
    #[serde(rename = "update.rolled_back")]
    RolledBack {
        version: u64,
        from: Slot,
        to: Slot,
        reason: String,
    },
}

impl UpdateEvent {
    /// The audit event name (`update.applied`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            UpdateEvent::VerifyStarted { .. } => "update.verify_started",
            UpdateEvent::Refused { .. } => "update.refused",
            UpdateEvent::Applying { .. } => "update.applying",
            UpdateEvent::Applied { .. } => "update.applied",
            UpdateEvent::BootMarked { .. } => "update.boot_marked",
            UpdateEvent::RolledBack { .. } => "update.rolled_back",
        }
    }
}

/// Receives every update event, in order.
pub trait UpdateAudit: std::fmt::Debug {
    fn record(&self, event: &UpdateEvent);
}

/// Drops events (tools that have no audit trail, such as `pack`).
#[derive(Debug, Default)]
pub struct NoAudit;

impl UpdateAudit for NoAudit {
    fn record(&self, _event: &UpdateEvent) {}
}

/// Keeps events in memory (tests, and `coworkctl` output).
#[derive(Debug, Default)]
pub struct MemoryAudit {
    events: Mutex<Vec<UpdateEvent>>,
}

impl MemoryAudit {
    pub fn events(&self) -> Vec<UpdateEvent> {
        match self.events.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.events().iter().map(UpdateEvent::name).collect()
    }
}

impl UpdateAudit for MemoryAudit {
    fn record(&self, event: &UpdateEvent) {
        match self.events.lock() {
            Ok(mut g) => g.push(event.clone()),
            Err(p) => p.into_inner().push(event.clone()),
        }
    }
}
