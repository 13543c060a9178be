//! `ModelDeployment`: a Model version served by autoscaled inference servers
//! behind a Service, with health-driven migration and canary rollouts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretReference;

/// Serves one version of a Model through the Open Inference Protocol v2.
///
/// The operator owns an `apps/v1` Deployment of inference servers and a
/// Service. The user owns `spec`; the operator writes only `status`. The
/// built-in autoscaler sets the owned Deployment's replicas; with autoscaling
/// disabled, `spec.replicas.count` (also reachable through the `scale`
/// subresource, for `kubectl scale`, HPA or KEDA) decides.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[kube(
    group = "aimass.io",
    version = "v1alpha1",
    kind = "ModelDeployment",
    namespaced,
    status = "ModelDeploymentStatus",
    shortname = "md",
    category = "aimass",
    scale(
        spec_replicas_path = ".spec.replicas.count",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.model.name"}"#,
    printcolumn = r#"{"name":"Version","type":"integer","description":"Model version being served","jsonPath":".status.servingVersion"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","description":"Replicas ready to serve","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","description":"Replicas wanted now","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Status","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "!has(self.server) || !has(self.server.image) || (has(self.security) && self.security.mode == 'Insecure')",
    "server.image needs security mode Insecure: Enforced servers keep the audit trail and run the image the cluster admin chose"
))]
#[x_kube(validation = (
    "!has(self.serviceAccountName) || self.serviceAccountName != 'default' || (has(self.security) && self.security.mode == 'Insecure')",
    "Enforced servers may review tokens: serviceAccountName default would give that right to every pod of the namespace; leave it out (the servers get an account of their own) or name another"
))]
pub struct ModelDeploymentSpec {
    /// The Model and the version of it to serve.
    pub model: ModelSelector,

    /// Replica bounds and, when the built-in autoscaler is disabled, the fixed
    /// count.
    #[serde(default)]
    pub replicas: ReplicasSpec,

    /// The built-in request-driven autoscaler.
    #[serde(default)]
    pub autoscaling: AutoscalingSpec,

    /// Dynamic batching of concurrent requests into one model run.
    #[serde(default)]
    pub batching: BatchingSpec,

    /// Thresholds beyond which a replica counts as unhealthy.
    #[serde(default)]
    pub health: HealthSpec,

    /// Moving replicas away from unhealthy pods and nodes.
    #[serde(default)]
    pub migration: MigrationSpec,

    /// How a new version replaces the serving one.
    #[serde(default)]
    pub rollout: RolloutSpec,

    /// Settings of the inference server process.
    #[serde(default)]
    pub server: ServerSpec,

    /// Who may call the model, and the audit trail of calls. Enforced
    /// unless set to `Insecure` explicitly.
    #[serde(default)]
    pub security: SecuritySpec,

    /// CPU and memory requests and limits of each inference server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Run replicas only on nodes with these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of the inference server pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity rules, added to the operator's own spreading of replicas
    /// across nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// ServiceAccount the inference server pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// Which Model version to serve: an alias (default `champion`) or a pinned
/// version number.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "!(has(self.alias) && has(self.version))",
    "set either model.alias or model.version, not both"
))]
pub struct ModelSelector {
    /// Name of the Model, in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// Serve the version this alias points at, following it when it moves.
    /// When neither `alias` nor `version` is set, `champion` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = (
        "self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "model.alias must be a lower-case DNS label, like champion or challenger"
    ))]
    #[schemars(length(max = 63))]
    pub alias: Option<String>,

    /// Serve exactly this version number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub version: Option<i64>,
}

/// How many replicas serve.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "self.min <= self.max",
    "replicas.min must not be greater than replicas.max"
))]
pub struct ReplicasSpec {
    /// Fewest replicas the autoscaler keeps. At least 1: scoring cannot wait
    /// for a cold start.
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub min: i32,

    /// Most replicas the autoscaler starts.
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 1000))]
    pub max: i32,

    /// Fixed replica count, used when `autoscaling.enabled` is false. This is
    /// the field `kubectl scale`, HPA and KEDA write through the `scale`
    /// subresource; leave it out of git when one of them drives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub count: Option<i32>,
}

impl Default for ReplicasSpec {
    fn default() -> Self {
        Self {
            min: default_min_replicas(),
            max: default_max_replicas(),
            count: None,
        }
    }
}

fn default_min_replicas() -> i32 {
    1
}

fn default_max_replicas() -> i32 {
    10
}

/// The signal the autoscaler tracks per replica.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum AutoscalingMetric {
    /// Requests in flight (queued or running) per replica.
    #[default]
    Concurrency,
    /// Requests completed per second per replica.
    RequestsPerSecond,
}

/// The built-in autoscaler, modelled on Knative's: a stable window for
/// ordinary changes and a short panic window for bursts.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "self.panicWindowSeconds <= self.stableWindowSeconds",
    "autoscaling.panicWindowSeconds must not be longer than stableWindowSeconds"
))]
pub struct AutoscalingSpec {
    /// Let the operator scale the replicas. Set to false to hand scaling to
    /// `spec.replicas.count` (and so to `kubectl scale`, HPA or KEDA).
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// What `target` counts: `Concurrency` (in-flight requests per replica)
    /// or `RequestsPerSecond`.
    #[serde(default)]
    pub metric: AutoscalingMetric,

    /// Desired value of `metric` per replica.
    #[serde(default = "default_autoscaling_target")]
    #[x_kube(validation = ("self > 0.0", "autoscaling.target must be greater than 0"))]
    pub target: f64,

    /// Fraction of `target` to aim for, leaving headroom for bursts.
    #[serde(default = "default_target_utilization")]
    #[x_kube(validation = (
        "self > 0.0 && self <= 1.0",
        "autoscaling.targetUtilization must be greater than 0 and at most 1"
    ))]
    pub target_utilization: f64,

    /// 99th-percentile latency objective in milliseconds: a replica whose p99
    /// exceeds it counts as over target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub latency_slo_millis: Option<i64>,

    /// Averaging window for ordinary decisions, in seconds.
    #[serde(default = "default_stable_window")]
    #[schemars(range(min = 6, max = 3600))]
    pub stable_window_seconds: i32,

    /// Short window used to react to bursts, in seconds.
    #[serde(default = "default_panic_window")]
    #[schemars(range(min = 1, max = 600))]
    pub panic_window_seconds: i32,

    /// Enter panic mode when the panic window's demand reaches this multiple
    /// of current capacity.
    #[serde(default = "default_panic_threshold")]
    #[x_kube(validation = ("self >= 1.0", "autoscaling.panicThreshold must be at least 1"))]
    pub panic_threshold: f64,

    /// Wait this long after demand falls before removing replicas, in
    /// seconds.
    #[serde(default = "default_scale_down_delay")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_delay_seconds: i32,

    /// At most multiply the replicas by this much in one decision.
    #[serde(default = "default_max_scale_up_rate")]
    #[x_kube(validation = ("self > 1.0", "autoscaling.maxScaleUpRate must be greater than 1"))]
    pub max_scale_up_rate: f64,

    /// At most divide the replicas by this much in one decision.
    #[serde(default = "default_max_scale_down_rate")]
    #[x_kube(validation = ("self > 1.0", "autoscaling.maxScaleDownRate must be greater than 1"))]
    pub max_scale_down_rate: f64,
}

impl Default for AutoscalingSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            metric: AutoscalingMetric::default(),
            target: default_autoscaling_target(),
            target_utilization: default_target_utilization(),
            latency_slo_millis: None,
            stable_window_seconds: default_stable_window(),
            panic_window_seconds: default_panic_window(),
            panic_threshold: default_panic_threshold(),
            scale_down_delay_seconds: default_scale_down_delay(),
            max_scale_up_rate: default_max_scale_up_rate(),
            max_scale_down_rate: default_max_scale_down_rate(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_autoscaling_target() -> f64 {
    4.0
}
fn default_target_utilization() -> f64 {
    0.7
}
fn default_stable_window() -> i32 {
    60
}
fn default_panic_window() -> i32 {
    6
}
fn default_panic_threshold() -> f64 {
    2.0
}
fn default_scale_down_delay() -> i32 {
    60
}
fn default_max_scale_up_rate() -> f64 {
    10.0
}
fn default_max_scale_down_rate() -> f64 {
    2.0
}

/// Dynamic batching: concurrent requests merged into one model run.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchingSpec {
    /// Largest number of rows merged into one model run. 1 turns batching off.
    #[serde(default = "default_max_batch_size")]
    #[schemars(range(min = 1, max = 4096))]
    pub max_batch_size: i32,

    /// Longest time a request waits for others to join its batch, in
    /// microseconds. 0 runs whatever is queued at once.
    #[serde(default = "default_max_queue_delay")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub max_queue_delay_micros: i32,

    /// Requests that may wait in a replica's queue; beyond it requests are
    /// refused at once with 429 rather than left to time out.
    #[serde(default = "default_queue_capacity")]
    #[schemars(range(min = 1, max = 100_000))]
    pub queue_capacity: i32,
}

impl Default for BatchingSpec {
    fn default() -> Self {
        Self {
            max_batch_size: default_max_batch_size(),
            max_queue_delay_micros: default_max_queue_delay(),
            queue_capacity: default_queue_capacity(),
        }
    }
}

fn default_max_batch_size() -> i32 {
    32
}
fn default_max_queue_delay() -> i32 {
    500
}
fn default_queue_capacity() -> i32 {
    1024
}

/// When a replica counts as unhealthy. A replica is compared with these
/// absolute thresholds and with its siblings (median + k·MAD); it is marked
/// unhealthy after `unhealthyAfter` bad samples in a row and cleared after
/// `healthyAfter` good ones.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HealthSpec {
    /// 99th-percentile request latency above which a replica is unhealthy, in
    /// milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub p99_latency_millis: Option<i64>,

    /// Fraction of requests answered with a server error (5xx) above which a
    /// replica is unhealthy, from 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = (
        "self >= 0.0 && self <= 1.0",
        "health.errorRate is a fraction between 0 and 1"
    ))]
    pub error_rate: Option<f64>,

    /// CPU use above which a replica is unhealthy, in cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = ("self > 0.0", "health.cpuCores must be greater than 0"))]
    pub cpu_cores: Option<f64>,

    /// Resident memory above which a replica is unhealthy, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub memory_mebibytes: Option<i64>,

    /// How far (in median absolute deviations) a replica's latency may stray
    /// above its siblings' median before it counts as an outlier.
    #[serde(default = "default_outlier_k")]
    #[x_kube(validation = ("self >= 1.0", "health.outlierDeviations must be at least 1"))]
    pub outlier_deviations: f64,

    /// Seconds between health evaluations.
    #[serde(default = "default_health_interval")]
    #[schemars(range(min = 1, max = 600))]
    pub interval_seconds: i32,

    /// Consecutive bad samples that mark a replica unhealthy.
    #[serde(default = "default_unhealthy_after")]
    #[schemars(range(min = 1, max = 100))]
    pub unhealthy_after: i32,

    /// Consecutive good samples that clear an unhealthy replica.
    #[serde(default = "default_healthy_after")]
    #[schemars(range(min = 1, max = 100))]
    pub healthy_after: i32,
}

impl Default for HealthSpec {
    fn default() -> Self {
        Self {
            p99_latency_millis: None,
            error_rate: None,
            cpu_cores: None,
            memory_mebibytes: None,
            outlier_deviations: default_outlier_k(),
            interval_seconds: default_health_interval(),
            unhealthy_after: default_unhealthy_after(),
            healthy_after: default_healthy_after(),
        }
    }
}

fn default_outlier_k() -> f64 {
    3.0
}
fn default_health_interval() -> i32 {
    10
}
fn default_unhealthy_after() -> i32 {
    5
}
fn default_healthy_after() -> i32 {
    3
}

/// Surge-first migration of unhealthy replicas: a replacement starts away
/// from the suspect node and proves itself before the unhealthy replica is
/// evicted.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSpec {
    /// Migrate unhealthy replicas.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Only record what would have been migrated, and do nothing.
    #[serde(default)]
    pub dry_run: bool,

    /// Least time between two migrations of this deployment, in seconds.
    #[serde(default = "default_migration_cooldown")]
    #[schemars(range(min = 0, max = 86400))]
    pub cooldown_seconds: i32,

    /// Give up on a replacement that is not ready and warmed up after this
    /// many seconds, keeping the old replica.
    #[serde(default = "default_replacement_timeout")]
    #[schemars(range(min = 10, max = 3600))]
    pub replacement_timeout_seconds: i32,
}

impl Default for MigrationSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            dry_run: false,
            cooldown_seconds: default_migration_cooldown(),
            replacement_timeout_seconds: default_replacement_timeout(),
        }
    }
}

fn default_migration_cooldown() -> i32 {
    300
}
fn default_replacement_timeout() -> i32 {
    300
}

/// How a new version replaces the one being served.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum RolloutStrategy {
    /// Replace replicas one at a time, starting each new one before stopping
    /// an old one.
    #[default]
    RollingUpdate,
    /// Send a share of traffic to the new version, compare it with the stable
    /// one, and promote it step by step or roll it back.
    Canary,
}

/// How a new version is rolled out.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "self.strategy != 'Canary' || has(self.canary)",
    "rollout.canary is required when rollout.strategy is Canary"
))]
pub struct RolloutSpec {
    /// `RollingUpdate` (default) or `Canary`.
    #[serde(default)]
    pub strategy: RolloutStrategy,

    /// Canary settings, for `strategy: Canary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
}

/// A canary rollout: traffic shares by replica ratio, checked at each step.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanarySpec {
    /// Traffic shares, in percent, the new version goes through before it
    /// takes all traffic, e.g. `[10, 50]`. Each must be larger than the one
    /// before.
    #[serde(default = "default_canary_steps")]
    #[x_kube(
        validation = ("self.all(p, p >= 1 && p <= 99)", "canary steps are percentages from 1 to 99"),
        validation = (
            "self.isSorted() && self.all(p, self.indexOf(p) == self.lastIndexOf(p))",
            "canary steps must strictly increase, e.g. [10, 50]"
        )
    )]
    #[schemars(length(min = 1, max = 10))]
    pub steps: Vec<i32>,

    /// Seconds each step runs before it is judged.
    #[serde(default = "default_analysis_interval")]
    #[schemars(range(min = 10, max = 86400))]
    pub analysis_interval_seconds: i32,

    /// Roll back when the canary's error rate exceeds the stable version's by
    /// more than this fraction.
    #[serde(default = "default_max_error_rate_increase")]
    #[x_kube(validation = (
        "self >= 0.0 && self <= 1.0",
        "canary.maxErrorRateIncrease is a fraction between 0 and 1"
    ))]
    pub max_error_rate_increase: f64,

    /// Roll back when the canary's p99 latency exceeds the stable version's
    /// by more than this factor.
    #[serde(default = "default_max_latency_ratio")]
    #[x_kube(validation = ("self >= 1.0", "canary.maxLatencyRatio must be at least 1"))]
    pub max_latency_ratio: f64,
}

fn default_canary_steps() -> Vec<i32> {
    vec![10, 50]
}
fn default_analysis_interval() -> i32 {
    60
}
fn default_max_error_rate_increase() -> f64 {
    0.01
}
fn default_max_latency_ratio() -> f64 {
    1.5
}

/// Settings of the inference server process.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerSpec {
    /// Inference server image, overriding the operator's default. Only with
    /// security mode `Insecure`: Enforced servers run the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Longest time a request may take, queueing included, before it is
    /// answered with 504, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600_000))]
    pub request_timeout_millis: Option<i64>,

    /// Longest time a stopping replica spends finishing in-flight requests,
    /// in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub drain_timeout_seconds: Option<i32>,

    /// Extra environment variables for the server, e.g. its log level
    /// (`RUST_LOG`). Names the operator sets (`AIMASS_*`, `POD_NAME`,
    /// `POD_NAMESPACE`, `NODE_NAME`) and those that would point the server at
    /// another API server or other roots of trust (`KUBERNETES_*`,
    /// `SSL_CERT_FILE`, `SSL_CERT_DIR`) are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = (
        "self.all(e, !e.name.startsWith('AIMASS_'))",
        "env names starting with AIMASS_ are set by the operator and may not be given here"
    ))]
    #[x_kube(validation = (
        "self.all(e, !(e.name in ['POD_NAME', 'POD_NAMESPACE', 'NODE_NAME', 'SSL_CERT_FILE', 'SSL_CERT_DIR']) && !e.name.startsWith('KUBERNETES_'))",
        "env names POD_NAME, POD_NAMESPACE, NODE_NAME, SSL_CERT_FILE, SSL_CERT_DIR and KUBERNETES_* are reserved: they name the replica in its audit trail and the API server it trusts"
    ))]
    pub env: Vec<EnvVar>,
}

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

    /// The Model version all ready replicas serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_version: Option<i64>,

    /// The alias `servingVersion` was resolved from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_alias: Option<String>,

    /// URL of the Open Inference Protocol endpoint inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

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

    /// A canary rollout in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,

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
