//! `ModelDeployment`: a Model version served by autoscaled inference servers
//! behind a Service, with health-driven migration and canary rollouts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DriftSpec, EnsembleSpec, ModelDeploymentStatus, SecuritySpec, ShadowSpec};

/// Label naming the ModelDeployment a serving pod belongs to.
pub const DEPLOYMENT_LABEL: &str = "aimass.io/model-deployment";
/// Label naming a serving pod's track: `stable` or `canary`.
pub const TRACK_LABEL: &str = "aimass.io/track";
/// Label naming the Model version a serving pod serves.
pub const VERSION_LABEL: &str = "aimass.io/model-version";

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
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "has(self.model) != has(self.ensemble)",
    "set either model (one Model) or ensemble (several), not both and not neither"
))]
#[x_kube(validation = (
    "!has(self.shadow) || has(self.model)",
    "a shadow tries another version of spec.model; an ensemble has none"
))]
#[x_kube(validation = (
    "!has(self.server) || !has(self.server.image) || (has(self.security) && self.security.mode == 'Insecure')",
    "server.image needs security mode Insecure: Enforced servers keep the audit trail and run the image the cluster admin chose"
))]
#[x_kube(validation = (
    "!has(self.serviceAccountName) || self.serviceAccountName != 'default' || (has(self.security) && self.security.mode == 'Insecure')",
    "Enforced servers may review tokens: serviceAccountName default would give that right to every pod of the namespace; leave it out (the servers get an account of their own) or name another"
))]
pub struct ModelDeploymentSpec {
    /// The Model and the version of it to serve. Leave it out to serve an
    /// `ensemble` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelSelector>,

    /// Several Models served as one, their answers combined; instead of
    /// `model`. Callers call it by the ModelDeployment's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<EnsembleSpec>,

    /// Another version of `model` tried silently on a share of the real
    /// requests: compared with the served answers (`status.shadow`), never
    /// returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowSpec>,

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

    /// Drift of the served version against its training baseline, and the
    /// rules for feature values training never saw.
    #[serde(default)]
    pub drift: DriftSpec,

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

impl ModelDeployment {
    /// The name callers call the model by (`/v2/models/<name>`), and that
    /// `models/infer` permissions name: the Model's, or for an ensemble the
    /// ModelDeployment's own.
    pub fn served_name(&self) -> String {
        match &self.spec.model {
            Some(model) => model.name.clone(),
            None => self.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl ModelDeploymentSpec {
    /// Every Model served: the one of `model`, or each ensemble member's.
    pub fn models(&self) -> impl Iterator<Item = &ModelSelector> {
        self.model.iter().chain(
            self.ensemble
                .iter()
                .flat_map(|e| e.members.iter().map(|m| &m.model).chain(&e.meta)),
        )
    }
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

    /// At most divide the replicas by this much in one decision, rounding up
    /// (3 replicas at 2 keep 2).
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
    /// microseconds. 0 (the default): a free worker runs a request at once,
    /// with whatever else queued while the workers were busy (continuous
    /// batching), so a lone caller never waits; more only pays for models
    /// whose cost per run dwarfs the wait.
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
    0
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
