//! The rotation functions: each kind one type implementing
//! [`RotationFunction`](crate::function::RotationFunction).

pub mod command;
pub mod managed;
pub mod password;
pub mod webhook;
