//! kura identity: verification of AWS Signature Version 4 signed requests.

pub mod eval;
pub mod policy;
pub mod sigv4;
