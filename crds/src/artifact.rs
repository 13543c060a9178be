//! What a validation run reports about an artifact, in the one line it
//! prints: the contract between the validating Job (the inference server
//! with `--validate-only`, in the tenant's namespace) and the operator,
//! which reads the line from the pod's log and never the artifact itself.

use serde::{Deserialize, Serialize};

use crate::v1alpha1::ModelSignature;

/// The key of the JSON object a validation run prints, so its line stands
/// out from anything else in the log.
pub const REPORT_KEY: &str = "aimassValidation";

/// What validation learnt about an artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// sha256 as 64 hex digits.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Inputs and outputs.
    pub signature: ModelSignature,
    /// The training baseline found beside the artifact, checked against the
    /// signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::v1alpha1::VersionBaseline>,
}

/// The one line a validation run prints: the artifact, or why it was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Report {
    /// The artifact loads and answers; what was learnt.
    Valid(Artifact),
    /// Why the artifact was refused, as a sentence for the version's message.
    Invalid(String),
}

impl Report {
    /// The line to print: `{"aimassValidation": {...}}`.
    pub fn to_line(&self) -> String {
        serde_json::json!({ REPORT_KEY: self }).to_string()
    }

    /// The last report line in `log`, if any. The log is tenant output: lines
    /// that do not parse are skipped, never trusted.
    pub fn from_log(log: &str) -> Option<Self> {
        crate::last_line(log, REPORT_KEY)
    }

    /// The report as the version's outcome.
    pub fn into_result(self) -> Result<Artifact, String> {
        match self {
            Self::Valid(artifact) => Ok(artifact),
            Self::Invalid(message) => Err(message),
        }
    }
}
