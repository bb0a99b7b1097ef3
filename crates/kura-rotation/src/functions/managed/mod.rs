//! Clients for the systems whose credentials kura rotates.

pub mod db;
pub mod mysql;
pub mod postgres;
pub mod ssh;
