//! The aimass inference engine: ONNX models run by tract with our own
//! ONNX-ML tree and pre-processing operators, behind one small trait
//! ([`Backend`]), so the server's protocol, batching and HTTP layers (and
//! their tests) never see tract; the tensors it takes and returns; and the
//! validation of an artifact before it becomes a version; and ensembles,
//! several models combined behind one [`Backend`].
//!
//! Used by the inference server (serving, and `--validate-only` in the
//! tenant's namespace) and by the operator (the validation report it reads),
//! so a version that validates is a version the server can serve.

pub mod ensemble;
mod onnx_ml;
pub mod tensor;
mod tract;
pub mod validation;

pub use self::tract::TractBackend;

use crate::tensor::{DataType, Tensor};

/// One input or output of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Name requests and responses use.
    pub name: String,
    /// Element type.
    pub datatype: DataType,
    /// Dimensions; `-1` where any size is accepted (the batch axis).
    pub shape: Vec<i64>,
}

/// What a model takes and returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Signature {
    /// Inputs, in the order the model declares them.
    pub inputs: Vec<TensorSpec>,
    /// Outputs, in the order the model declares them.
    pub outputs: Vec<TensorSpec>,
    /// How many of the last outputs are returned only to a request that
    /// names them (an ensemble's members' own outputs).
    pub on_request: usize,
}

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model uses something the engine cannot serve; the message says
    /// what and how to fix the export.
    #[error("{0}")]
    Unsupported(String),
    /// The model file is not a valid ONNX model, or the engine rejected it.
    #[error("invalid model: {0}")]
    Invalid(String),
    /// Running the model failed.
    #[error("inference failed: {0}")]
    Run(String),
}

/// A loaded, optimised model.
pub trait Backend: Send + Sync {
    /// Inputs and outputs.
    fn signature(&self) -> &Signature;

    /// Runs the model on inputs given in signature order; returns outputs in
    /// signature order.
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, EngineError>;

    /// Whether a row's outputs depend on the other rows of its batch (as with
    /// dynamic quantization, which scales by the whole input). Requests to
    /// such models are never merged.
    fn batch_dependent(&self) -> bool;

    /// How long a run of one row takes, as measured when the model was
    /// loaded; `None` when not measured.
    fn row_cost(&self) -> Option<std::time::Duration> {
        None
    }
}

#[cfg(test)]
mod zoo_tests;
