//! IPC between the supervisor, the components and `coworkctl`.
//!
//! Role: the one place where wire types, the codec, the frame cap and the peer table
//! live, so that no two processes can disagree silently (habit 2 of STYLE.md).
//! Transport: Unix stream sockets in the runtime directory. A frame is a u32
//! big-endian length followed by the CBOR (ciborium) encoding of a typed serde value;
//! a frame over [`MAX_FRAME_BYTES`] closes the connection with an error.
//! Every connection opens with a [`Hello`] carrying [`PROTOCOL_VERSION`] and the
//! sender's claimed [`Role`]; the server checks the claim against the peer's
//! credentials (SO_PEERCRED) and then every request against [`PEER_TABLE`].

mod client;
mod error;
mod frame;
mod messages;
mod peer;
mod roles;
mod server;

pub use client::Client;
pub use error::{FrameError, IpcError};
pub use frame::{MAX_FILE_BYTES, MAX_FRAME_BYTES, decode, encode, read_frame, write_frame};
pub use messages::*;
pub use peer::{PEER_TABLE, PeerAuth, PeerCred, PeerRule, may_send};
pub use roles::{Component, Role};
pub use server::{Peer, Service, bind_socket, serve};
