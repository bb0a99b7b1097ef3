//! Keyring, envelope encryption, seals and generators. Everything random comes from aws-lc-rs's
//! CSPRNG, except the Shamir split's polynomial coefficients (rand's reseeded ChaCha CSPRNG, which
//! the vsss-rs API takes).

pub mod envelope;
pub mod mac;
pub mod password;
pub mod pkcs11;
pub mod plain;
pub mod random;
pub mod seal;
pub mod verifiers;

pub use envelope::{Keyring, RootKey};
pub use password::{PasswordSpec, generate_password};
pub use plain::Plain;
