//! Who is who: the components the supervisor runs and the roles a peer can have.

use serde::{Deserialize, Serialize};

/// A component process started by the supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    Audit,
    Sandbox,
    Gateway,
    Admin,
}

impl Component {
    /// Dependency order: the audit trail must be up before anything that writes to it.
    pub const START_ORDER: [Component; 4] = [
        Component::Audit,
        Component::Sandbox,
        Component::Gateway,
        Component::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Component::Audit => "audit",
            Component::Sandbox => "sandbox",
            Component::Gateway => "gateway",
            Component::Admin => "admin",
        }
    }

    /// The system user the component runs as when the supervisor starts as root.
    pub fn user(self) -> &'static str {
        match self {
            Component::Audit => "cowork-audit",
            Component::Sandbox => "cowork-sandbox",
            Component::Gateway => "cowork-gateway",
            Component::Admin => "cowork-admin",
        }
    }

    pub fn role(self) -> Role {
        match self {
            Component::Audit => Role::Audit,
            Component::Sandbox => Role::Sandbox,
            Component::Gateway => Role::Gateway,
            Component::Admin => Role::Admin,
        }
    }

    pub fn from_name(name: &str) -> Option<Component> {
        Component::START_ORDER
            .into_iter()
            .find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The role of a process at either end of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Supervisor,
    Audit,
    Sandbox,
    Gateway,
    Admin,
    /// `coworkctl`, on the control socket only.
    Ctl,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Supervisor => "supervisor",
            Role::Audit => "audit",
            Role::Sandbox => "sandbox",
            Role::Gateway => "gateway",
            Role::Admin => "admin",
            Role::Ctl => "coworkctl",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
