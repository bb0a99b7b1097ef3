//! SSH servers' logins.

pub mod client;
