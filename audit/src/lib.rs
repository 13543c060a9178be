//! The audit trail of model calls: one JSON line per call, accepted or
//! refused, modelled on the Kubernetes audit Event (who, what, when, from
//! where, on which model, with which outcome), chained by keyed hashes so
//! that changing, deleting, inserting, swapping or truncating records is
//! detected by [`verify`].
//!
//! Record `n` carries `prev` (record `n-1`'s `mac`, zeros for the first) and
//! `mac = HMAC-SHA256(key, prev ‖ record-without-mac)`. Only the holder of
//! the key can write a record that verifies, and every record pins the one
//! before it. Truncation at the end is caught by comparing the last record
//! with a checkpoint kept elsewhere (`verify`'s `expect_last`).
//!
//! Records hold input and output names, types and shapes; input values only
//! as a payload policy says ([`payload`]: an input it does not name is
//! dropped; named ones are hashed, bucketed, or kept with card numbers
//! masked). Credentials never are: principals are recorded by name and by
//! credential id (a hash prefix, never the secret).
//!
//! This crate is what the inference server writes and what anyone checks:
//! the record format and its chain ([`record`], [`log`], [`verify`]), the
//! operator's Ed25519 seals of checkpoints ([`seal`]), what of a call's
//! input values a record keeps ([`payload`]), and how a server receives its
//! keys from the operator's key service ([`key_handover`]). The operator
//! uses it to make keys and check seals; the `aimass-audit` binary to verify
//! a copied trail.

pub mod key_handover;
pub mod log;
pub mod payload;
pub mod record;
pub mod seal;
pub mod verify;

pub use log::{AuditLog, segments};
pub use record::{Actor, AuditError, Checkpoint, Decision, GENESIS, Record, Target, TensorShape};
pub use verify::{first_sequence, sequence_of, verify};

#[cfg(test)]
mod tests;
