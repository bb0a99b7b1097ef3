//! kura identity: verification of AWS Signature Version 4 signed requests.

pub mod sigv4;
