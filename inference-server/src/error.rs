//! The server's start-up errors. Errors answering requests are
//! `http::ApiError`.

use aimass_engine::EngineError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model or the audit archive could not be read or written.
    #[error(transparent)]
    Storage(#[from] aimass_storage::Error),
    /// The engine refused the model.
    #[error("cannot load the model: {0}")]
    Engine(#[from] EngineError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The version's baseline cannot be read or does not fit the model.
    #[error("baseline: {0}")]
    Baseline(String),
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
