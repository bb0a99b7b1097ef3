//! kura identity: verification of AWS Signature Version 4 signed requests.

pub mod eval;
pub mod policy;
pub mod sigv4;

/// IAM's limit: two long-term access keys per user.
pub const MAX_ACCESS_KEYS_PER_USER: usize = 2;
