//! What one record of the trail says, and the keyed hash that chains it to
//! the one before.

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who made a call, as far as authentication got.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Actor {
    /// Kubernetes-style user name; empty when authentication failed.
    pub user: String,
    /// Its groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Which credential (a hash prefix, never the secret).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_id: String,
    /// How it authenticated: `ServiceAccountToken`, `ApiKey`, `ClientCertificate`, or `None`.
    pub method: String,
}

/// The model a call was for.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Namespace of the ModelDeployment.
    pub namespace: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// sha256 of the artifact.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub artifact_sha256: String,
    /// The serving pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    /// Its node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
}

/// What each gate decided.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// `Allowed`, `Refused` or `Unavailable`.
    pub authentication: String,
    /// `Allowed`, `Denied`, `Unavailable`, or empty when not reached.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authorization: String,
    /// The authoriser's reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authorization_reason: String,
    /// `Allowed` or `Limited`, or empty when not reached.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rate_limit: String,
}

/// A tensor's name, type and shape: what a call sent or got; values only as
/// a payload policy keeps them ([`crate::payload`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TensorShape {
    /// Tensor name.
    pub name: String,
    /// Datatype (FP32, INT64, …).
    pub datatype: String,
    /// Shape.
    pub shape: Vec<i64>,
    /// The values as the payload policy keeps them (hashed, bucketed, or
    /// with card numbers masked); absent unless a policy names the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<serde_json::Value>>,
}

/// One call, as recorded.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Unique id of the record.
    pub id: String,
    /// Position in the chain, from 1, without gaps.
    pub sequence: u64,
    /// When the call arrived (UTC, microseconds).
    pub received: String,
    /// When it was answered.
    pub completed: String,
    /// Who.
    pub actor: Actor,
    /// From where (peer address).
    pub source: String,
    /// On which model.
    pub target: Target,
    /// HTTP method and path.
    pub operation: String,
    /// What authentication, authorisation and the rate limit decided.
    pub decision: Decision,
    /// The HTTP status answered.
    pub status: u16,
    /// Time from arrival to answer, in microseconds.
    pub latency_micros: u64,
    /// Inputs sent (names, types, shapes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<TensorShape>,
    /// Outputs answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<TensorShape>,
    /// The previous record's `mac`.
    pub prev: String,
    /// HMAC-SHA256 over `prev` and this record without `mac`.
    #[serde(default)]
    pub mac: String,
}

/// Why the trail could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened, written or read.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key is unusable.
    #[error("audit key: {0}")]
    Key(String),
    /// A record does not verify.
    #[error("record {line} (sequence {sequence}): {reason}")]
    Broken {
        /// 1-based line of the file.
        line: usize,
        /// The sequence it claims (0 when unreadable).
        sequence: u64,
        /// What is wrong.
        reason: String,
    },
}

pub(crate) fn mac_of(key: &[u8], record: &Record) -> Result<String, AuditError> {
    let mut unsigned = record.clone();
    unsigned.mac.clear();
    let body = serde_json::to_vec(&unsigned).map_err(|e| AuditError::Key(e.to_string()))?;
    let mut mac = HmacSha256::new_from_slice(key).map_err(|e| AuditError::Key(e.to_string()))?;
    mac.update(record.prev.as_bytes());
    mac.update(&body);
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// The tail of a chain: what the next record continues from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Sequence of the last record (0 for an empty trail).
    pub sequence: u64,
    /// Its `mac` ([`GENESIS`] for an empty trail).
    pub mac: String,
}
