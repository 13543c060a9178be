//! The one error type of this crate.

/// Why a shard or the report failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The job cannot run as asked (a missing data set, an unknown column, a
    /// model that does not load): retrying cannot help. `reason` is the
    /// ScoringJob's condition reason.
    #[error("{message}")]
    Refused {
        /// A condition reason, e.g. `DatasetUnavailable`, `InvalidSpec`.
        reason: &'static str,
        /// What is wrong, naming the column, file or version.
        message: String,
    },
    /// Reading or writing storage failed; a retry may succeed.
    #[error(transparent)]
    Storage(#[from] aimass_storage::Error),
    /// The engine failed on a batch.
    #[error("the engine failed: {0}")]
    Engine(#[from] aimass_engine::EngineError),
    /// The data set is not well-formed CSV, or an output could not be made.
    #[error("{0}")]
    Data(String),
}

impl Error {
    /// A refusal: the spec names something the data or the model lacks.
    pub fn invalid_spec(message: impl Into<String>) -> Self {
        Self::Refused {
            reason: aimass_crds::v1alpha1::conditions::reasons::INVALID_SPEC,
            message: message.into(),
        }
    }
}
