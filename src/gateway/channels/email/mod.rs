//! E-mail (issue 21): the appliance reads a dedicated mailbox over IMAP and
//! answers over SMTP submission. This module holds the checks that decide who
//! a message is from; the transport comes with the channel shape of issue 20.

pub mod auth;

pub use auth::{AuthResults, MethodResult, ParseError, Proof, Unauthenticated, authenticate};
