//! The admin component: a LAN-only HTTPS page for the appliance's owner.
//!
//! - **Role:** serves the dashboard, pairing codes, channel users, tasks,
//!   command approvals, the audit trail and a one-click security reset, to
//!   the owner only, over TLS (rustls, TLS 1.2/1.3, AEAD suites only) with a
//!   self-signed certificate it generates and keeps.
//! - **Peers:** calls the gateway and the audit component through
//!   [`AdminBackend`] (implemented by the lead over IPC); talks to browsers on
//!   the LAN. Requests from non-LAN socket peers get 403 and an audit entry;
//!   CGNAT (100.64/10, e.g. Tailscale) is LAN only with `allow_cgnat`.
//! - **Password checks** (login, setup token, current password) are reserved
//!   before hashing (`ratelimit`): per client address at most
//!   `login_lockout_after` (5) per `login_lockout_secs` (900 s), then that
//!   address is locked out for 900 s (one `warn!` and one
//!   `admin.login_lockout` audit entry); across addresses a token bucket of
//!   `login_checks_per_minute` (20, one more every 3 s) slows guessing but
//!   never locks anyone out.
//! - **Privileges:** binds the admin port on loopback/private addresses only;
//!   holds the `AdminTlsKey` (wraps its TLS key on disk). No database.
//! - **Data it owns** (in the state directory, files 0600, atomic writes):
//!   `admin-tls.json` (certificate + AES-256-GCM-wrapped private key),
//!   `admin-owner.phc` (argon2id hash of the owner password),
//!   `admin-setup-token` (until the owner is set up). Sessions live only in
//!   memory: restarting the component logs everyone out.

pub mod appliance;
mod backend;
mod cert;
mod clock;
mod error;
mod fsutil;
pub(crate) mod handlers;
pub(crate) mod http;
mod lan;
pub(crate) mod owner;
mod ratelimit;
mod server;
mod session;
mod settings;
pub(crate) mod settings_page;
pub mod testing;
mod tls;
mod updates;
pub(crate) mod validate;
mod views;

pub use backend::{
    AdminBackend, AuditEntry, AuditVerdict, BackendError, BackendErrorKind, BackendFuture,
    ChannelMode, ComponentHealth, Dashboard, IssuedCode, PairingListing, Revocation, UploadTarget,
};
pub use cert::{
    AdminKeys, CERT_FILE, CertInfo, certificate_names, ensure_certificate, fingerprint,
    rewrap_certificate, rotate_certificate,
};
pub use clock::{Clock, SystemClock, TestClock};
pub use error::AdminError;
pub use http::{BODY_LIMIT, CSP};
pub use lan::{LanFilter, host_lan_addresses, listen_addresses};
pub use owner::{MIN_PASSWORD_CHARS, OWNER_FILE, SETUP_TOKEN_FILE, owner_exists, setup_token};
pub use server::{AdminHandle, AdminServer, serve};
pub use session::{COOKIE_NAME, PRE_COOKIE_NAME};
pub use settings::AdminWebSettings;
pub use tls::cipher_suites;
