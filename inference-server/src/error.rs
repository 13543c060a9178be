//! The server's start-up errors. Errors answering requests are
//! `http::ApiError`.

use crate::engine::EngineError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file could not be fetched.
    #[error("cannot fetch the model from {uri}: {reason}")]
    Fetch {
        /// Where from (without credentials).
        uri: String,
        /// What failed.
        reason: String,
    },
    /// A storage setting a tenant gave is not one a tenant may give.
    #[error("storage settings {key} refused: {reason}")]
    Setting {
        /// The settings' names, as given (comma-separated).
        key: String,
        /// Why it is refused.
        reason: String,
    },
    /// An object is larger than its reader accepts.
    #[error("{uri} is larger than {limit} bytes")]
    TooLarge {
        /// Where (without credentials).
        uri: String,
        /// The most bytes the reader accepts.
        limit: usize,
    },
    /// The model file is not the one expected.
    #[error("the model's sha256 is {actual}, expected {expected}")]
    Sha256Mismatch {
        /// The expected digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The engine refused the model.
    #[error("cannot load the model: {0}")]
    Engine(#[from] EngineError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The security layer is misconfigured or cannot start.
    #[error("security: {0}")]
    Security(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
