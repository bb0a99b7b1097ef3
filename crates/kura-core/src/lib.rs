//! Domain types and invariants of kura. Pure: no I/O, no clocks read, no randomness drawn here.

pub mod clock;
pub mod duration;
pub mod error;
pub mod expiry;
pub mod filter;
pub mod labels;
pub mod model;
pub mod names;
pub mod schedule;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::{Error, ErrorCode, Result};
