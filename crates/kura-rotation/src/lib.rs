//! Rotation in kura: the [`RotationFunction`](function::RotationFunction) trait every kind of
//! rotation function implements (`function`), the built-in functions (`functions`), the
//! redaction of a failed step's text (`redact`), and the run state machine of a rotation cycle
//! (`run`, pure). Functions reach kura only through the
//! [`StepContext`](function::StepContext) kura-server gives them; the engine that claims due
//! secrets and runs their steps lives in kura-server (see docs/ARCHITECTURE.md).

pub mod function;
pub mod functions;
pub mod redact;
pub mod run;
