//! `TrainingJob`: one run of a trainer image that produces a new version of a
//! Model.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, LocalObjectReference, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{MetricsSample, SecretReference};

/// One training run: the operator runs `image` as a `batch/v1` Job (an Indexed
/// Job with a headless Service when `workers` > 1), follows the metrics it
/// prints, validates the `model.onnx` it writes and records it as a new
/// version of `modelRef`. A finished TrainingJob is never run again; a new run
/// is a new TrainingJob.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[kube(
    group = "aimass.io",
    version = "v1alpha1",
    kind = "TrainingJob",
    namespaced,
    status = "TrainingJobStatus",
    shortname = "tj",
    category = "aimass",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.modelRef.name"}"#,
    printcolumn = r#"{"name":"Version","type":"integer","description":"Model version this run produces","jsonPath":".status.modelVersion"}"#,
    printcolumn = r#"{"name":"Metrics","type":"string","description":"Latest metrics the trainer reported","jsonPath":".status.metricsSummary"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = (
    "self == oldSelf",
    "a TrainingJob's spec cannot change once created; create a new TrainingJob for a new run"
))]
#[serde(rename_all = "camelCase")]
pub struct TrainingJobSpec {
    /// The Model (in the same namespace) this run produces a version of.
    /// The artifact and its record are written to that Model's registry
    /// (its `spec.storage`), where the Model finds its versions.
    pub model_ref: ModelReference,

    /// What to run.
    #[serde(flatten)]
    pub run: TrainingRunSpec,

    /// Why the operator started this run for its Model, when something
    /// other than the schedule did (drift of the served champion). Copied
    /// into the version's lineage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<RunTrigger>,
}

/// What made the operator start a training run.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunTrigger {
    /// `Drift`: a ModelDeployment serving the Model's champion detected drift.
    pub reason: String,
    /// The ModelDeployment that detected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// The version it served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The score's PSI when the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
    /// The features with the highest CSI then, highest first (at most 3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

/// A reference to a Model in the same namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ModelReference {
    /// Name of the Model.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What a training run executes and with which data and settings. Shared by
/// TrainingJob and by a Model's `source.training.template`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainingRunSpec {
    /// Trainer container image. It must follow the trainer contract: read
    /// `AIMASS_DATASET_URI` and `AIMASS_HYPERPARAMETERS`, print JSON metric
    /// lines, and write `model.onnx` and `metrics.json` under
    /// `AIMASS_OUTPUT_URI`.
    #[schemars(length(min = 1, max = 1024))]
    pub image: String,

    /// When to pull the image: `Always`, `IfNotPresent` or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(Always|IfNotPresent|Never)$"))]
    pub image_pull_policy: Option<String>,

    /// Secrets for pulling `image` from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,

    /// Entrypoint, replacing the image's. Leave it out to use the image's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,

    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,

    /// Extra environment variables for the trainer. Names starting with
    /// `AIMASS_` are set by the operator and may not be given here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = (
        "self.all(e, !e.name.startsWith('AIMASS_'))",
        "env names starting with AIMASS_ are reserved for the trainer contract"
    ))]
    pub env: Vec<EnvVar>,

    /// Environment variables taken from whole ConfigMaps or Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,

    /// CPU, memory and accelerator requests and limits of each worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// The data set to train on.
    pub dataset: DatasetSpec,

    /// Hyperparameters, passed to the trainer as a JSON object in
    /// `AIMASS_HYPERPARAMETERS` and recorded in the version's lineage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hyperparameters: BTreeMap<String, String>,

    /// Number of worker pods. More than 1 runs a distributed job: an Indexed
    /// Job plus a headless Service, with `WORLD_SIZE`, `RANK`, `MASTER_ADDR`
    /// and `MASTER_PORT` set as torch.distributed expects.
    #[serde(default = "default_workers")]
    #[schemars(range(min = 1, max = 512))]
    pub workers: i32,

    /// How many times a failed worker pod is retried before the run fails.
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub backoff_limit: i32,

    /// Fail the run when it has been active this long, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,

    /// Delete the finished run's pods this many seconds after it ends. The
    /// TrainingJob and its record stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,

    /// ServiceAccount the trainer pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// Run the trainer only on nodes with these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Tolerations of the trainer pods, e.g. for dedicated GPU nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity rules of the trainer pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

fn default_workers() -> i32 {
    1
}

fn default_backoff_limit() -> i32 {
    1
}

/// The data set a run trains on.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DatasetSpec {
    /// URI of the data set, passed to the trainer as `AIMASS_DATASET_URI`:
    /// `s3://`, `gs://`, `az://`, `http(s)://`, `file://` or
    /// `pvc://<claim>/<path>`. A `pvc://` data set is mounted read-only into
    /// the trainer and the variable holds the local path.
    #[x_kube(validation = (
        "self.matches('^(s3|gs|az|https?|file|pvc)://.+')",
        "dataset.uri must start with s3://, gs://, az://, http://, https://, file:// or pvc:// followed by a location"
    ))]
    #[schemars(length(min = 1, max = 2048))]
    pub uri: String,

    /// Secret with the credentials to read the data set. Its keys are passed
    /// to the trainer as environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

/// The lifecycle of a training run.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum TrainingPhase {
    /// Accepted; the Job or its pods are not running yet.
    #[default]
    Pending,
    /// The trainer is running.
    Running,
    /// The trainer finished and its artifact was recorded as a Ready
    /// version. Final.
    Succeeded,
    /// The run failed, or what it made was rejected by validation (the
    /// version is recorded as `Rejected`); `reason` and `message` say why.
    /// Final.
    Failed,
}

/// The observed state of a training run.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainingJobStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Running`, `Succeeded`, `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// `Pending`, `Running`, `Succeeded` or `Failed`. `Succeeded` and
    /// `Failed` are final.
    #[serde(default)]
    pub phase: TrainingPhase,

    /// A CamelCase word for why the run is in its phase, e.g.
    /// `BackoffLimitExceeded`, `DeadlineExceeded`, `ArtifactInvalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// A sentence for humans explaining `reason`, e.g. the exit code and the
    /// last lines the trainer printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Name of the `batch/v1` Job running the trainer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,

    /// The Model version number this run writes, reserved when it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<i64>,

    /// Where the trainer writes `model.onnx` and `metrics.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_uri: Option<String>,

    /// When the trainer started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the run ended, successfully or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Metrics the trainer printed while running, oldest first, bounded to
    /// the latest samples.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics_history: Vec<MetricsSample>,

    /// The latest value of every metric the trainer printed, or the final
    /// values from `metrics.json` once it finished.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,

    /// The latest metrics in one short line, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_summary: Option<String>,
}
