//! Keyring, envelope encryption and generators. Everything random comes from aws-lc-rs's CSPRNG.

pub mod envelope;
pub mod mac;
pub mod password;
pub mod plain;
pub mod random;
pub mod verifiers;

pub use envelope::{Keyring, RootKey};
pub use password::{PasswordSpec, generate_password};
pub use plain::Plain;
