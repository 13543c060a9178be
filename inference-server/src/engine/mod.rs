//! The inference engine behind one small trait, so the protocol, batching
//! and HTTP layers (and their tests) never see tract.

mod onnx_ml;
mod tract;

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
}
