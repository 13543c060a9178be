//! The Open Inference Protocol v2 (KServe / Triton REST): request and
//! response documents, their decoding into tensors checked against the
//! model's signature, and their encoding, in JSON or with the binary tensor
//! data extension.

mod decode;
pub mod elements;
mod encode;
mod types;

pub use decode::{Decoded, decode};
pub use encode::{Encoded, append_binary, encode};
pub use types::*;

/// Why a request cannot be served as sent; always a 4xx for the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// The body is not a valid inference request.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The body names another model (or version) than the one it was sent
    /// to: `model_name` or `model_version`, as KServe's client sends them.
    #[error(
        "{field} {sent:?} in the body does not match the model this request was sent to ({served:?})"
    )]
    OtherModel {
        /// `model_name` or `model_version`.
        field: &'static str,
        /// What the body says.
        sent: String,
        /// What this server serves.
        served: String,
    },
    /// An input the model needs is absent.
    #[error("missing input {name:?}: the model expects inputs {expected:?}")]
    MissingInput {
        /// The missing input.
        name: String,
        /// All inputs the model takes.
        expected: Vec<String>,
    },
    /// An input the model does not have.
    #[error("unknown input {name:?}: the model expects inputs {expected:?}")]
    UnknownInput {
        /// The unexpected input.
        name: String,
        /// All inputs the model takes.
        expected: Vec<String>,
    },
    /// An input given twice.
    #[error("input {0:?} is given more than once")]
    DuplicateInput(String),
    /// The datatype differs from the model's.
    #[error("input {name:?} has datatype {got}, but the model expects {expected}")]
    WrongDatatype {
        /// The input.
        name: String,
        /// What was sent.
        got: String,
        /// What the model takes.
        expected: String,
    },
    /// The shape does not fit the model's.
    #[error("input {name:?} has shape {got:?}, but the model expects {expected:?} (-1: any size)")]
    WrongShape {
        /// The input.
        name: String,
        /// What was sent.
        got: Vec<i64>,
        /// What the model takes.
        expected: Vec<i64>,
    },
    /// The data does not fit the declared shape or datatype.
    #[error("input {name:?}: {reason}")]
    BadData {
        /// The input.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Inputs disagree on the batch size.
    #[error("inputs disagree on the batch size (first dimension): {0:?}")]
    BatchMismatch(Vec<usize>),
    /// A feature value outside what the model was trained on, refused by the
    /// deployment's rule.
    #[error(
        "input {:?}, row {}, position {} (feature {:?}): {} is outside what the model was trained on ({}); this deployment rejects such values",
        .0.input, .0.row, .0.index, .0.feature, .0.value, .0.expected
    )]
    OutOfContract(Box<aimass_drift::Refusal>),
    /// An output the model does not have.
    #[error("unknown output {name:?}: the model returns {expected:?}")]
    UnknownOutput {
        /// The output asked for.
        name: String,
        /// All outputs of the model.
        expected: Vec<String>,
    },
}
