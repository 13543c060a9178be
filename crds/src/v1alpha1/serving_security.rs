//! How a ModelDeployment's servers are secured: who may call them, their
//! TLS certificate and partners' client certificates, and what of each call
//! the audit trail keeps and where it is archived.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretReference;

/// Whether the inference servers check who calls them.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum SecurityMode {
    /// Every call needs a bearer token bound to `audience`, whose holder
    /// Kubernetes RBAC allows `create` on `models/infer` (group `aimass.io`,
    /// name = the Model); `get` on `models` reads metadata only. Every call,
    /// accepted or refused, is recorded in an HMAC-chained audit trail.
    #[default]
    Enforced,
    /// Anyone who reaches the Service may call the model, and nothing is
    /// recorded. Shown as condition `Secured=False` and a Warning Event.
    Insecure,
}

/// What a failed audit write does to the call.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum AuditFailurePolicy {
    /// Refuse the call with 503: no call goes unrecorded.
    #[default]
    FailClosed,
    /// Answer the call and count the failure in
    /// `aimass_audit_write_failures_total`.
    FailOpen,
}

/// Who may call the model and how calls are recorded.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "!has(self.burst) || has(self.requestsPerSecond)",
    "security.burst needs security.requestsPerSecond"
))]
#[x_kube(validation = (
    "self.mode == 'Enforced' || !has(self.auditArchive)",
    "only Enforced servers keep an audit trail: security.auditArchive needs mode Enforced"
))]
#[x_kube(validation = (
    "self.mode == 'Enforced' || !has(self.tls) || !has(self.tls.clientCertificates)",
    "client certificates authenticate callers: security.tls.clientCertificates needs mode Enforced"
))]
#[x_kube(validation = (
    "self.mode == 'Enforced' || (!has(self.requestsPerSecond) && !has(self.requestsPerSecondPerAddress))",
    "rate limits are enforced in front of authentication: security.requestsPerSecond and requestsPerSecondPerAddress need mode Enforced"
))]
pub struct SecuritySpec {
    /// `Enforced` (default) or `Insecure`.
    #[serde(default)]
    pub mode: SecurityMode,

    /// The audience callers' tokens must be bound to, e.g. by
    /// `kubectl create token <sa> --audience aimass`.
    #[serde(default = "default_audience")]
    #[schemars(length(min = 1, max = 253))]
    pub audience: String,

    /// Calls per second each caller may make to each replica; beyond it,
    /// 429 with `Retry-After`. Unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub requests_per_second: Option<i32>,

    /// Calls a caller may make at once above `requestsPerSecond`; defaults
    /// to one second's worth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub burst: Option<i32>,

    /// Calls per second each source address may make to each replica,
    /// checked before the caller is authenticated, so a flood of bad
    /// credentials costs no reviews; 429 beyond it. 1000 when absent; raise
    /// it behind a proxy or gateway, where every caller shares the proxy's
    /// address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub requests_per_second_per_address: Option<i32>,

    /// What a failed audit write does: `FailClosed` (default) or `FailOpen`.
    #[serde(default)]
    pub audit_failure_policy: AuditFailurePolicy,

    /// Which input values the audit records keep, and how. Inputs not named
    /// keep none: records hold names, types and shapes only. Card numbers
    /// never appear in clear whatever the policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = (
        "self.all(p, self.exists_one(q, q.input == p.input))",
        "each input may appear in only one audit payload rule"
    ))]
    #[schemars(length(max = 64))]
    pub audit_payload: Vec<PayloadRule>,

    /// Where the servers ship their audit trails, so records outlive the
    /// pods that wrote them. Kept only on each pod's volume when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_archive: Option<AuditArchive>,

    /// TLS on the API port, and client certificates for partner
    /// institutions. Plain HTTP when absent. The admin port (probes,
    /// metrics) stays plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
}

/// An archive of audit trails: each server ships the records it appended
/// every `intervalSeconds` (and once more when it stops) as
/// `<prefix>/<namespace>/<model>/<pod>/<first>-<last>.jsonl`. A pod's parts
/// in name order are its whole chained trail: `aimass-audit verify --log
/// <folder>` checks them. Point it at a bucket with object lock (WORM) to
/// keep the records for as long as your retention rules require.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuditArchive {
    /// URI prefix of the archive: `s3://`, `gs://`, `az://` or `file://`.
    #[x_kube(validation = (
        "self.matches('^(s3|gs|az|file)://.+')",
        "audit archive prefix must start with s3://, gs://, az:// or file:// followed by a location"
    ))]
    #[schemars(length(min = 1, max = 2048))]
    pub prefix: String,

    /// Secret with the archive's credentials, keys named as the providers'
    /// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL`,
    /// `GOOGLE_SERVICE_ACCOUNT_KEY`, `AZURE_STORAGE_ACCOUNT_KEY`, …). Without
    /// it the servers use the Model's storage credentials or their identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,

    /// Seconds between shipments (default 30): at most this much of a
    /// trail is only on the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub interval_seconds: Option<i32>,

    /// MiB after which the trail on the pod is rotated into a new segment
    /// (default 64). Archived segments are removed from the pod, all but the
    /// newest, so the trail's volume holds about two segments plus what
    /// one interval adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4096))]
    pub segment_mebibytes: Option<i32>,
}

/// The servers' certificate, and which client certificates authenticate.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`) with the servers'
    /// certificate, e.g. one cert-manager issues for
    /// `<name>.<namespace>.svc`. A renewed certificate is picked up within
    /// seconds of the Secret changing, without a restart.
    pub certificate_secret: SecretReference,

    /// Client certificates that authenticate callers (partner
    /// institutions): one that chains to these CAs authenticates as user
    /// `partner:<caSecret>:<CN>` with groups `partner:<caSecret>:<O>`, which
    /// RBAC then authorises like any caller; a `system:` CN is refused and
    /// `system:` organisations are dropped. Callers without a certificate
    /// may still send a token or an API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificates: Option<ClientCertificates>,
}

/// Where the CAs (and revocation lists) of client certificates are.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertificates {
    /// A Secret with `ca.crt`: the CA certificates (PEM) client
    /// certificates must chain to.
    pub ca_secret: SecretReference,

    /// Also read `ca.crl` from that Secret: the CAs' revocation lists
    /// (PEM); a revoked certificate cannot connect. A new list applies
    /// within seconds of the Secret changing.
    #[serde(default)]
    pub check_revocation: bool,
}

/// How one input's values are kept in audit records.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum PayloadTreatment {
    /// Not at all.
    Drop,
    /// Keyed hashes (HMAC-SHA256 under the audit key): equal values can be
    /// matched across records without being readable.
    Hash,
    /// The interval of `buckets` each number falls in.
    Bucket,
    /// As sent, with payment card numbers masked to their first six and last
    /// four digits.
    Keep,
}

/// One input's audit payload rule.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "(self.policy == 'Bucket') == has(self.buckets)",
    "buckets are given with policy Bucket, and only then"
))]
pub struct PayloadRule {
    /// The input's name, as in the model's metadata.
    #[schemars(length(min = 1, max = 253))]
    pub input: String,

    /// `Drop`, `Hash`, `Bucket` or `Keep`.
    pub policy: PayloadTreatment,

    /// Ascending interval boundaries, for `Bucket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = (
        "self.isSorted() && self.all(b, self.exists_one(c, c == b))",
        "buckets must be ascending, each boundary once"
    ))]
    #[schemars(length(min = 1, max = 64))]
    pub buckets: Option<Vec<f64>>,
}

impl Default for SecuritySpec {
    fn default() -> Self {
        Self {
            mode: SecurityMode::default(),
            audience: default_audience(),
            requests_per_second: None,
            burst: None,
            requests_per_second_per_address: None,
            audit_failure_policy: AuditFailurePolicy::default(),
            audit_payload: Vec::new(),
            audit_archive: None,
            tls: None,
        }
    }
}

fn default_audience() -> String {
    "aimass".into()
}
