//! Environments: a Model that follows a version of a Model in another
//! namespace (a lower environment), the evidence a version earns where it is
//! served, the approvals a promotion waits for (`ModelApproval`), and the
//! provenance a promoted version carries.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The annotation naming who asked for a Model's training runs or its
/// promotion, or for a TrainingJob. The chart's admission policy admits it
/// only with the requesting user's own name, so it cannot be forged.
pub const REQUESTED_BY_ANNOTATION: &str = "aimass.io/requested-by";

/// The annotation giving the reason for a change of a Model's spec, e.g. a
/// pin of an alias; the operator copies it (at most
/// [`REASON_ANNOTATION_LIMIT`] characters) into the alias history.
pub const REASON_ANNOTATION: &str = "aimass.io/reason";

/// The pin [`REASON_ANNOTATION`] explains, as `alias=version`: the reason
/// is recorded for that pin only, never for a later change it does not
/// explain.
pub const REASON_FOR_ANNOTATION: &str = "aimass.io/reason-for";

/// The non-blank value of annotation `key` of an object.
pub fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a String> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .filter(|v| !v.trim().is_empty())
}

/// How much of [`REASON_ANNOTATION`] is kept.
pub const REASON_ANNOTATION_LIMIT: usize = 500;

/// The Model version in another namespace that a Model follows.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "has(self.alias) != has(self.version)",
    "promotedFrom needs exactly one of alias (follow it as it moves) or version (one fixed version)"
))]
pub struct PromotedFrom {
    /// Namespace of the lower environment. Whoever sets this must be allowed
    /// to `promote` models there; the chart's admission policy checks it.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,

    /// Name of the Model followed there.
    #[schemars(length(min = 1, max = 253))]
    pub model: String,

    /// Follow this alias of that Model (usually `champion`) as it moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = (
        "self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "promotedFrom.alias must be a lower-case DNS label, like champion"
    ))]
    #[schemars(length(min = 1, max = 63))]
    pub alias: Option<String>,

    /// Follow exactly this version of that Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub version: Option<i64>,
}

/// What a version followed from another namespace must carry before it is
/// recorded here.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PromotionRequirements {
    /// Namespaces where the version must have been proven (served under
    /// `spec.evidence` there) on its way here, e.g. `[risk-preview]`: a
    /// version coming straight from test is then refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub evidence_from: Vec<String>,

    /// How many ModelApprovals, by different users, the version needs. An
    /// approval by a user who asked for its training, for its promotion
    /// into an environment on its way, or for this promotion does not
    /// count.
    #[serde(default)]
    #[schemars(range(min = 0, max = 5))]
    pub approvals: i32,
}

/// How a version proves itself in this environment: served by a
/// ModelDeployment for `soakSeconds` with enough traffic, few errors and a
/// low p99. Proven versions are listed in `status.evidence` and carry that
/// evidence when a higher environment promotes them.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceSpec {
    /// Seconds the version must serve, all replicas on it.
    #[schemars(range(min = 10, max = 2_592_000))]
    pub soak_seconds: i64,

    /// Requests it must have answered in that time.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub min_requests: i64,

    /// Largest share of requests answered with a server error (5xx).
    #[serde(default = "default_max_error_rate")]
    #[x_kube(validation = ("self >= 0.0 && self <= 1.0", "maxErrorRate is a fraction between 0 and 1"))]
    pub max_error_rate: f64,

    /// Largest 99th-percentile latency, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = ("self > 0.0", "maxP99LatencyMillis must be positive"))]
    pub max_p99_latency_millis: Option<f64>,
}

fn default_max_error_rate() -> f64 {
    0.01
}

/// How a version served in one namespace, as the operator measured it from
/// its servers' metrics.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VersionEvidence {
    /// The version, numbered in the Model that served it.
    pub version: i64,
    /// sha256 of its artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Namespace it served in.
    pub namespace: String,
    /// The ModelDeployment that served it.
    pub deployment: String,
    /// When it started serving on every replica.
    pub since: Time,
    /// When it met every requirement of `spec.evidence`.
    pub proven_at: Time,
    /// Requests answered in the soak.
    pub requests: i64,
    /// Share of them answered with a server error.
    pub error_rate: f64,
    /// 99th-percentile latency over the soak, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_latency_millis: Option<f64>,
}

/// An approval that counted for a promotion.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    /// The ModelApproval object.
    pub name: String,
    /// Who approved, as the API server authenticated them.
    pub approved_by: String,
    /// When the approval was created.
    pub time: Time,
    /// What the approver wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One environment a version went through, oldest first.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceStep {
    /// Namespace of the environment.
    pub namespace: String,
    /// The Model there.
    pub model: String,
    /// The version's number there.
    pub version: i64,
    /// Who asked for the training (first step) or the promotion (later
    /// steps), from the admission-checked `aimass.io/requested-by`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The TrainingJob that produced the version (first step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_job: Option<String>,
    /// How it served there, when it was proven there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<VersionEvidence>,
    /// The approvals its promotion into this environment counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub approvals: Vec<ApprovalRecord>,
    /// When it was recorded there.
    pub time: Time,
}

/// Where a promoted version came from: every environment it went through,
/// from the one that trained it to this one.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// The environments, oldest first; the last is this Model.
    #[schemars(length(max = 16))]
    pub steps: Vec<ProvenanceStep>,

    /// True when the steps before the last were declared in the Model's
    /// `spec.source.provenance` (exported from another cluster by `kubectl
    /// aimass export`) rather than observed by this operator: they are as
    /// trustworthy as the change that brought the manifest here (the
    /// reviewed pull request).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub declared: bool,
}

impl Provenance {
    /// The environment where the version was first recorded.
    pub fn origin(&self) -> Option<&ProvenanceStep> {
        self.steps.first()
    }

    /// This provenance with its last step, the environment recording the
    /// version, numbered `version` there.
    pub fn numbered(mut self, version: i64) -> Self {
        if let Some(here) = self.steps.last_mut() {
            here.version = version;
        }
        self
    }

    /// The namespaces where the version was proven.
    pub fn proven_in(&self) -> impl Iterator<Item = &str> {
        self.steps
            .iter()
            .filter(|s| s.evidence.is_some())
            .map(|s| s.namespace.as_str())
    }
}

/// Where following `spec.source.promotedFrom` stands.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FollowStatus {
    /// `namespace/model:version` of the version followed now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// sha256 of its artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The version recorded here for it, once promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// `Promoted`, or why it waits or was refused: `SourceNotFound`,
    /// `EvidenceMissing`, `AwaitingApproval`, `SameIdentity`,
    /// `RequesterUnknown`, `ValidatingArtifact`, `DigestMismatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The same, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An approval to promote one artifact into a Model of this namespace.
/// Immutable: to withdraw it, delete it. The chart's admission policy admits
/// it only when `approvedBy` is the creating user's own name.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[kube(
    group = "aimass.io",
    version = "v1alpha1",
    kind = "ModelApproval",
    namespaced,
    status = "ModelApprovalStatus",
    shortname = "mapr",
    category = "aimass",
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.model"}"#,
    printcolumn = r#"{"name":"Source","type":"string","description":"The version approved, in the environment it comes from","jsonPath":".spec.source"}"#,
    printcolumn = r#"{"name":"Approved-By","type":"string","jsonPath":".spec.approvedBy"}"#,
    printcolumn = r#"{"name":"Counted","type":"string","jsonPath":".status.conditions[?(@.type==\"Counted\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Counted\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "self == oldSelf",
    "a ModelApproval cannot be changed; delete it and create a new one"
))]
pub struct ModelApprovalSpec {
    /// The Model (in this namespace) the approved version is promoted into.
    #[schemars(length(min = 1, max = 253))]
    pub model: String,

    /// The version approved, as `namespace/model:version` of the environment
    /// it comes from (the Model's `status.follow.source`). For people; the
    /// approval binds to `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 600))]
    pub source: Option<String>,

    /// sha256 of the approved artifact (`status.follow.sha256`). An artifact
    /// with another digest is not approved by this.
    #[schemars(regex(pattern = r"^[a-f0-9]{64}$"))]
    pub sha256: String,

    /// The approver's own user name, as the API server knows it (`kubectl
    /// auth whoami`). The admission policy refuses any other name.
    #[schemars(length(min = 1, max = 253))]
    pub approved_by: String,

    /// Why it is approved: the review, the ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub comment: Option<String>,
}

/// What the Model made of an approval.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelApprovalStatus {
    /// `Counted`: whether the Model counted this approval for the version
    /// it follows now (`False` with reason `SameIdentity` when the approver
    /// asked for the version's training or its promotion).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
