//! The built-in rotation functions.

pub mod managed;
