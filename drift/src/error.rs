//! The one error type of this crate.

/// Why a baseline cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// The file is not a baseline: not JSON of the documented shape, or too
    /// large.
    #[error("baseline.json is not a valid baseline: {0}")]
    Malformed(String),
    /// A column breaks a rule of the format; names the column.
    #[error("baseline.json, column {column:?}: {reason}")]
    Column {
        /// The column's name.
        column: String,
        /// What is wrong with it.
        reason: String,
    },
}
