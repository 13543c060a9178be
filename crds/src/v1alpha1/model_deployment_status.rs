//! What the operator reports of a ModelDeployment: what serves, the
//! conditions, the autoscaler's decision, replica health and migrations,
//! the canary, and the audit trails' checkpoints.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The observed state of a served model.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelDeploymentStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Ready` (every replica serves the resolved
    /// version), `Progressing` (a rollout or migration is under way),
    /// `Degraded` (a replica is unhealthy or the model cannot be resolved).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The Model version all ready replicas serve; for an ensemble, the
    /// number of the combination they serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_version: Option<i64>,

    /// An ensemble's combinations, newest last (the latest 20): which
    /// member versions, which rule and weights. `servingVersion` is the
    /// number of the one serving.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub combinations: Vec<super::Combination>,

    /// The alias `servingVersion` was resolved from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_alias: Option<String>,

    /// URL of the Open Inference Protocol endpoint inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Address (`host:port`) of the Open Inference Protocol's gRPC service
    /// (`inference.GRPCInferenceService`) inside the cluster, for gRPC
    /// clients such as `tritonclient.grpc`; over TLS when `url` is https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_address: Option<String>,

    /// Replicas wanted now (by the autoscaler or `spec.replicas.count`).
    #[serde(default)]
    pub replicas: i32,

    /// Replicas ready to serve.
    #[serde(default)]
    pub ready_replicas: i32,

    /// Label selector of the serving pods, for the `scale` subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// The autoscaler's latest decision and the figures behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_decision: Option<ScaleDecision>,

    /// Replicas currently judged unhealthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unhealthy_replicas: Vec<UnhealthyReplica>,

    /// The latest migrations, newest last (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<MigrationRecord>,

    /// True while administrators have paused migrations operator-wide.
    #[serde(default)]
    pub migration_paused: bool,

    /// How the version served now has served since it took every replica,
    /// measured from the servers' metrics while its Model sets
    /// `spec.evidence`. Restarts when the version changes or the operator
    /// restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<SoakStatus>,

    /// A canary rollout in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,

    /// Drift of the version served against its training baseline, from the
    /// latest evaluation (`spec.drift`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<super::DriftStatus>,

    /// How the shadow's answers compare with the served ones
    /// (`spec.shadow`), read from the servers' metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<super::ShadowStatus>,

    /// Requests, refusals, errors and latency over the last hour, read from
    /// the servers' own metrics, and who called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<TrafficStatus>,

    /// The latest audit checkpoint of each serving replica, as the operator
    /// last read it: the trail on the pod must still hold this record with
    /// this MAC (`aimass-audit verify --expect-sequence --expect-mac`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_checkpoints: Vec<AuditCheckpoint>,

    /// The public Ed25519 key (base64) that verifies the servers' sealed
    /// checkpoints, made by the operator with the audit key: anyone can
    /// check a kept seal with it (`aimass-audit verify-seal`), without the
    /// chain's secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_verifying_key: Option<String>,
}

/// How one version has served since it took every replica.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SoakStatus {
    /// The version.
    pub version: i64,
    /// Since when it is measured.
    pub since: Time,
    /// Requests answered since then.
    pub requests: i64,
    /// Share of them answered with a server error (5xx).
    pub error_rate: f64,
    /// 99th-percentile latency since then, in milliseconds, once there were
    /// requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_latency_millis: Option<f64>,
}

/// A deployment's traffic over the last hour, as the monitor reads it from
/// every serving replica's metrics.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrafficStatus {
    /// One point per interval of about 30 s, oldest first: at most 120 (an
    /// hour). An interval in which no replica answered the monitor has no
    /// point (no data, not zero traffic).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 120))]
    pub history: Vec<TrafficPoint>,
    /// The callers with the most requests over the same hour, most first (at
    /// most 20), by the user name they authenticated as. Each server counts
    /// at most 64 names and the rest as `(other)`; a server without
    /// authentication counts none. Counted since the operator started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub callers: Vec<CallerTraffic>,
}

/// A deployment's traffic in one interval, across its replicas.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPoint {
    /// When the interval ended.
    pub time: Time,
    /// Inference requests answered per second, any status.
    pub requests_per_second: f64,
    /// Share answered with a server error (5xx).
    pub error_rate: f64,
    /// Share refused as the caller's fault (4xx: malformed input,
    /// unauthenticated, forbidden, over its rate).
    pub rejected_rate: f64,
    /// Median latency in milliseconds, when there were requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_latency_millis: Option<f64>,
    /// 99th-percentile latency in milliseconds, when there were requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_latency_millis: Option<f64>,
}

/// How many requests one caller made.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CallerTraffic {
    /// The user name the caller authenticated as (an ApiClient's
    /// `principal`, a ServiceAccount, a certificate's subject), or
    /// `(other)`.
    pub principal: String,
    /// Its requests, whatever they were answered.
    pub requests: i64,
}

/// Where a replica's audit trail stood when the operator last read it.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuditCheckpoint {
    /// The replica's pod.
    pub pod: String,
    /// Sequence number of the trail's last record.
    pub sequence: i64,
    /// That record's MAC, which pins every record before it.
    pub mac: String,
    /// When it was read.
    pub time: Time,
    /// Calls the replica's server could not record since it started (a
    /// full or unwritable disk): refused under `FailClosed`, answered
    /// unrecorded under `FailOpen`.
    #[serde(default)]
    pub write_failures: i64,
    /// When the server sealed it (UTC, µs), as signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_at: Option<String>,
    /// The server's Ed25519 signature (base64) of the namespace, model,
    /// pod, sequence, MAC, `writeFailures` and `sealedAt`, verified by the operator with
    /// `status.auditVerifyingKey` before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Set when the trail went back or was rewritten since an earlier
    /// checkpoint (records were removed or changed), or a checkpoint's seal
    /// did not verify. Stays until the pod goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
}

/// One decision of the autoscaler.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDecision {
    /// When the decision was made.
    pub time: Time,
    /// Replicas before the decision.
    pub from: i32,
    /// Replicas after the decision.
    pub to: i32,
    /// Whether the panic window drove the decision.
    pub panic: bool,
    /// Average of the tracked metric over the stable window, across replicas.
    pub stable_value: f64,
    /// Average of the tracked metric over the panic window, across replicas.
    pub panic_value: f64,
    /// Why the decision came out as it did, in a sentence.
    pub reason: String,
}

/// A replica judged unhealthy, and the evidence.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UnhealthyReplica {
    /// Pod name.
    pub pod: String,
    /// Node the pod runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Since when it is unhealthy.
    pub since: Time,
    /// The metric that crossed its threshold, e.g. `p99LatencyMillis`.
    pub metric: String,
    /// The replica's value of that metric.
    pub value: f64,
    /// The threshold it crossed (absolute, or derived from its siblings).
    pub threshold: f64,
}

/// How a migration ended.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum MigrationOutcome {
    /// The replacement is starting; the unhealthy replica still serves.
    #[default]
    InProgress,
    /// The replacement proved itself and the unhealthy replica was evicted.
    Completed,
    /// The replacement did not become ready in time; the old replica stays.
    Abandoned,
    /// Dry run: recorded only, nothing done.
    DryRun,
    /// Skipped because administrators paused migrations.
    Paused,
}

/// One migration of an unhealthy replica.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MigrationRecord {
    /// When the migration started.
    pub time: Time,
    /// The unhealthy pod.
    pub pod: String,
    /// The node it ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The replacement pod, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_pod: Option<String>,
    /// The node the replacement runs on, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_node: Option<String>,
    /// The metric that crossed its threshold.
    pub metric: String,
    /// The replica's value of that metric.
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// How the migration ended, or that it is still under way.
    pub outcome: MigrationOutcome,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Details, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where a canary rollout stands.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum CanaryPhase {
    /// Steps are running and being judged.
    #[default]
    Analysing,
    /// Every step passed; the version took all traffic.
    Promoted,
    /// A step failed its analysis; the stable version took all traffic back.
    RolledBack,
}

/// The state of a canary rollout.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The version under test.
    pub version: i64,
    /// `Analysing` while steps run, then `Promoted` or `RolledBack`. A
    /// version that was rolled back is not tried again until the resolved
    /// version changes.
    #[serde(default)]
    pub phase: CanaryPhase,
    /// The traffic share it has now, in percent.
    pub percent: i32,
    /// Index of the current step in `spec.rollout.canary.steps`.
    pub step: i32,
    /// When the current step started.
    pub step_start_time: Time,
    /// The latest analysis, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
