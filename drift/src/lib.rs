//! Drift: what a model is asked and what it answers, compared with what it
//! was trained on.
//!
//! A version's [`Baseline`] (the trainer's `baseline.json`) holds, for each
//! input feature and each score callers read, bin edges (numbers) or
//! categories (codes and strings) and the share of the training rows in
//! each bin. A server counts the rows it scores into the same bins
//! ([`Histograms`], atomic counters, no request values kept) and shows the
//! counts as a [`Snapshot`]; the operator merges the replicas' counts over a
//! window and computes the stability index ([`stability`]) of the score
//! (PSI) and of each feature (CSI).

mod baseline;
mod build;
mod error;
mod histograms;
mod stability;

pub use baseline::{Baseline, Bins, Column, MAX_BASELINE_BYTES, Tensor};
pub use build::MAX_CODES;
pub use error::Error;
pub use histograms::{Histograms, Kind, Refusal, Snapshot, SnapshotColumn, Value};
pub use stability::{FLOOR, stability};
