//! Why a location could not be opened, read or written.

/// A storage failure, with the location redacted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object could not be read or written.
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
    /// The object is not the one expected.
    #[error("the model's sha256 is {actual}, expected {expected}")]
    Sha256Mismatch {
        /// The expected digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
}
