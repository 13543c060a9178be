//! The one error type of this crate.

/// Why a spec is invalid in a way the API server's schema cannot see.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A URI does not parse or uses an unsupported form.
    #[error("invalid URI {uri:?}: {reason}")]
    InvalidUri {
        /// The offending URI, with any query string removed.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A cron schedule does not parse.
    #[error("invalid schedule {schedule:?}: {reason}")]
    InvalidSchedule {
        /// The offending schedule.
        schedule: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A field holds a value that is valid alone but not here.
    #[error("{field}: {reason}")]
    InvalidField {
        /// JSON path of the field, e.g. `spec.storage.prefix`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// A stable PascalCase name of the error kind: the Event reason and the
    /// metric label.
    pub fn category(&self) -> &'static str {
        match self {
            Self::InvalidUri { .. } => "InvalidUri",
            Self::InvalidSchedule { .. } => "InvalidSchedule",
            Self::InvalidField { .. } => "InvalidField",
        }
    }
}
