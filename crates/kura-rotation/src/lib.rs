//! Rotation in kura: the run state machine of a rotation cycle (`run`), and a sketch of the
//! trait every kind of rotation function could implement (`function`). Pure: no I/O, no clock
//! read; the engine that runs steps lives in kura-server for now and calls in here to decide
//! every change of a cycle's state.

pub mod function;
pub mod functions;
pub mod redact;
pub mod run;
