//! `ScoringJob`: a whole data set scored by one or more versions of a Model
//! (batch scoring, backtests), with a report comparing them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::SecretReference;
use super::training_job::ModelReference;

/// Scores every row of a data set with one or more versions of a Model: an
/// Indexed Job of `shards` pods in this namespace, under
/// `serviceAccountName`, runs the inference server's engine over the rows
/// (streamed, so memory does not grow with the data set), writes each row's
/// outputs for every version under `output.uri`, and a last pod merges the
/// shards into a report (`report.json` beside the outputs, and
/// `status.report`). With a label column the report holds AUC, KS, Gini,
/// precision and recall at thresholds and the bad rate by score decile, per
/// version and per segment, and which version wins each metric. A finished
/// ScoringJob is never run again; a new run is a new ScoringJob.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[kube(
    group = "aimass.io",
    version = "v1alpha1",
    kind = "ScoringJob",
    namespaced,
    status = "ScoringJobStatus",
    shortname = "sj",
    category = "aimass",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.modelRef.name"}"#,
    printcolumn = r#"{"name":"Versions","type":"string","description":"Version numbers scored","jsonPath":".status.versionsSummary"}"#,
    printcolumn = r#"{"name":"Rows","type":"integer","description":"Data rows read","jsonPath":".status.report.rows"}"#,
    printcolumn = r#"{"name":"Report","type":"string","description":"Each version's key metrics","jsonPath":".status.report.summary"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = (
    "self == oldSelf",
    "a ScoringJob's spec cannot change once created; create a new ScoringJob for a new run"
))]
#[serde(rename_all = "camelCase")]
pub struct ScoringJobSpec {
    /// The Model (in the same namespace) whose versions score the data.
    pub model_ref: ModelReference,

    /// The versions to score with, each by alias or by number, resolved when
    /// the job starts (`status.versions`). The first is the reference the
    /// others are compared with (usually `champion`).
    #[schemars(length(min = 1, max = 8))]
    #[x_kube(validation = (
        "self.all(v, self.exists_one(w, w == v))",
        "each version may be listed only once"
    ))]
    pub versions: Vec<VersionSelector>,

    /// What to score and how.
    #[serde(flatten)]
    pub run: ScoringRunSpec,
}

/// What a scoring run reads, measures and writes, and how it runs. Shared
/// by ScoringJob and by a Model's `spec.evaluation.template`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[x_kube(validation = (
    "!has(self.labelColumn) || !has(self.segmentColumn) || self.labelColumn != self.segmentColumn",
    "labelColumn and segmentColumn must be different columns"
))]
#[serde(rename_all = "camelCase")]
pub struct ScoringRunSpec {
    /// The rows to score.
    pub dataset: ScoringDataset,

    /// Which columns feed which model input. Leave it out to infer it: an
    /// input of one element per row takes the column of its name; the
    /// model's only input takes every column that is not the label, the
    /// segment or the id, in file order, when their count matches its width.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub columns: Vec<InputColumns>,

    /// Column holding the true outcome: `1`/`true` is bad (fraud, default),
    /// `0`/`false` good. With it the report measures each version. Rows with
    /// another value are scored but not measured (`unlabelled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub label_column: Option<String>,

    /// Column the report is broken down by (channel, region, product); the
    /// largest 20 segments are reported (without deciles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub segment_column: Option<String>,

    /// Column copied to every output row, to join outputs with the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub id_column: Option<String>,

    /// Which output is the score the report measures (higher means riskier).
    /// Leave it out to use the first floating-point output's last column
    /// (the probability of the bad class of a binary classifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<ScoreOutput>,

    /// Scores at which precision, recall and the approval and decline rates
    /// are reported: a row scoring at or above a threshold is declined.
    #[serde(default = "default_thresholds")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = (
        "self.all(t, t >= 0.0 && t <= 1.0)",
        "thresholds must lie between 0 and 1"
    ))]
    pub thresholds: Vec<f64>,

    /// Where the outputs and the report are written.
    pub output: ScoringOutput,

    /// How many pods score in parallel; each takes every `shards`-th row.
    #[serde(default = "default_shards")]
    #[schemars(range(min = 1, max = 64))]
    pub shards: i32,

    /// How many times a failed shard is retried before the job fails.
    #[serde(default = "default_backoff_limit_per_shard")]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit_per_shard: i32,

    /// Fail the job when its shards have been active this long, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,

    /// CPU and memory of each shard (by default 1 CPU requested, 1 GiB
    /// memory limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// ServiceAccount the shards run as; they read the data set and the
    /// models and write the outputs with its rights (and `secretRef`s), never
    /// with the operator's. Its API token is not mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

fn default_thresholds() -> Vec<f64> {
    vec![0.5]
}

fn default_shards() -> i32 {
    1
}

fn default_backoff_limit_per_shard() -> i32 {
    2
}

/// One version of a Model, by alias or number.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "has(self.alias) != has(self.version)",
    "set exactly one of alias and version"
))]
pub struct VersionSelector {
    /// The version this alias points at when the job starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = (
        "self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "alias must be a lower-case DNS label, like champion or challenger"
    ))]
    #[schemars(length(max = 63))]
    pub alias: Option<String>,

    /// This version number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub version: Option<i64>,
}

/// The data set a ScoringJob reads.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScoringDataset {
    /// URI of the data set: `s3://`, `gs://`, `az://`, `http(s)://` or
    /// `file://`: a CSV file with a header row, or a Parquet file.
    #[x_kube(validation = (
        "self.matches('^(s3|gs|az|https?|file)://.+')",
        "dataset.uri must start with s3://, gs://, az://, http://, https:// or file:// followed by a location"
    ))]
    #[schemars(length(min = 1, max = 2048))]
    pub uri: String,

    /// Secret with the credentials to read it, as static keys (see a
    /// Model's `spec.storage`), passed to the shards as environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,

    /// `Csv` (with a header row) or `Parquet`. Leave it out to go by the
    /// file name: `.parquet` and `.pq` are Parquet, anything else CSV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DataFormat>,
}

/// How a data set or an output is stored.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum DataFormat {
    /// Comma-separated values with a header row (RFC 4180).
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl DataFormat {
    /// The format `declared`, or the one `uri`'s file name says.
    pub fn of(uri: &str, declared: Option<DataFormat>) -> DataFormat {
        declared.unwrap_or_else(|| {
            let name = uri
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if name.ends_with(".parquet") || name.ends_with(".pq") {
                DataFormat::Parquet
            } else {
                DataFormat::Csv
            }
        })
    }
}

/// Where a ScoringJob writes.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScoringOutput {
    /// URI prefix of the outputs: `part-00000.csv` (or `.parquet`) … one
    /// per shard (the row's line number, the id, label and segment
    /// columns, then each version's outputs as `v<version>.<output>[<index>]`
    /// and why a row was refused) and `report.json`. `s3://`, `gs://`,
    /// `az://` or `file://`.
    #[x_kube(validation = (
        "self.matches('^(s3|gs|az|file)://.+')",
        "output.uri must start with s3://, gs://, az:// or file:// followed by a location"
    ))]
    #[schemars(length(min = 1, max = 2048))]
    pub uri: String,

    /// Secret with the credentials to write there, as static keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,

    /// `Csv` or `Parquet`; the data set's format when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DataFormat>,
}

/// The columns that feed one model input.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct InputColumns {
    /// Name of the model input.
    #[schemars(length(min = 1, max = 256))]
    pub input: String,

    /// The data set's columns, in the order of the input's elements.
    #[schemars(length(min = 1, max = 4096))]
    pub columns: Vec<String>,
}

/// The output element the report measures.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScoreOutput {
    /// Name of the model output.
    #[schemars(length(min = 1, max = 256))]
    pub output: String,

    /// Element of the output's row (for `probabilities`, the class index).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub index: i64,
}

/// The lifecycle of a scoring run.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum ScoringPhase {
    /// Accepted; versions are being resolved or the Job is starting.
    #[default]
    Pending,
    /// The shards are scoring.
    Running,
    /// The shards finished; the report is being made.
    Reporting,
    /// Every row was read and the report is in `status.report`. Final.
    Succeeded,
    /// The run failed; `reason` and `message` say why. Final.
    Failed,
}

/// The observed state of a scoring run.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScoringJobStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Running`, `Succeeded`, `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// `Pending`, `Running`, `Reporting`, `Succeeded` or `Failed`.
    #[serde(default)]
    pub phase: ScoringPhase,

    /// A CamelCase word for why the run is in its phase, e.g.
    /// `DatasetUnavailable`, `InvalidSpec`, `BackoffLimitExceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// A sentence for humans explaining `reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// The versions scored, resolved from `spec.versions` when the run
    /// started, in the same order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<ScoredVersion>,

    /// The version numbers in one short line, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions_summary: Option<String>,

    /// Name of the Indexed Job running the shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,

    /// Shards finished so far, of `spec.shards`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards_succeeded: Option<i32>,

    /// When the shards started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the run ended, successfully or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// What the run found; also written to `report.json` under
    /// `spec.output.uri`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ScoringReport>,
}

/// A version a ScoringJob scores with.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScoredVersion {
    /// The version number.
    pub version: i64,
    /// The alias it was chosen by, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Where its artifact is.
    pub uri: String,
    /// Its digest, checked by every shard before it scores.
    pub sha256: String,
}

/// What a scoring run found.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScoringReport {
    /// Data rows read (every row, scored or refused).
    pub rows: i64,
    /// Rows with a good or bad label, which the metrics measure.
    pub labelled: i64,
    /// Rows whose label column held neither `0`/`false` nor `1`/`true`.
    pub unlabelled: i64,
    /// Bad rows among the labelled ones.
    pub bad: i64,
    /// Each version's results, in `spec.versions` order.
    pub versions: Vec<VersionReport>,
    /// For each metric, the version that does best (only with labels).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub winners: Vec<MetricWinner>,
    /// Each version's key figures in one short line, for `kubectl get`.
    pub summary: String,
}

/// One version's results over the data set.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VersionReport {
    /// The version number.
    pub version: i64,
    /// Rows scored.
    pub scored: i64,
    /// Rows refused (a missing value, a value of the wrong type); never
    /// scored, never counted in the metrics.
    pub refused: i64,
    /// The first refused rows, with their line number and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<Refusal>,
    /// The score's distribution: its quantiles at 0, 10, …, 100 %.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub score_quantiles: Vec<f64>,
    /// The mean score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_score: Option<f64>,
    /// Set when the distinct scores outgrew what a shard tallies exactly
    /// (262,144): scores were rounded to multiples of this step for every
    /// figure, which are then exact up to ties inside one step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_resolution: Option<f64>,
    /// How well the score separates bad from good, over the labelled rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SeparationMetrics>,
    /// The same per segment (without deciles), the largest 20 first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentReport>,
}

/// A row that was not scored.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Refusal {
    /// Line of the data set (the header is line 1).
    pub line: i64,
    /// Why, naming the column.
    pub reason: String,
}

/// Discrimination and decision figures of a score over labelled rows.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SeparationMetrics {
    /// Labelled rows measured.
    pub rows: i64,
    /// Bad rows among them.
    pub bad: i64,
    /// Area under the ROC curve (ties count half); absent with one class only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auc: Option<f64>,
    /// Kolmogorov–Smirnov statistic: the largest gap between the cumulative
    /// score distributions of bad and good rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ks: Option<f64>,
    /// Gini coefficient, 2 × AUC − 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gini: Option<f64>,
    /// Decisions at each of `spec.thresholds`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdReport>,
    /// Bad rate by score decile, riskiest decile first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deciles: Vec<DecileReport>,
}

/// Decisions at one threshold: a row scoring at or above it is declined.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdReport {
    /// The threshold.
    pub threshold: f64,
    /// Bad rows among the declined ones (absent when none is declined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Declined rows among the bad ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// Share of rows approved (below the threshold).
    pub approval_rate: f64,
    /// Share of rows declined.
    pub decline_rate: f64,
}

/// One score decile.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DecileReport {
    /// 1 is the riskiest tenth of the rows.
    pub decile: i32,
    /// Rows in it (tied scores stay together, so deciles differ in size).
    pub rows: i64,
    /// Bad rows in it.
    pub bad: i64,
    /// bad / rows.
    pub bad_rate: f64,
    /// Lowest score in it.
    pub min_score: f64,
    /// Highest score in it.
    pub max_score: f64,
}

/// One segment's figures.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SegmentReport {
    /// The segment column's value.
    pub segment: String,
    /// Rows scored in it.
    pub scored: i64,
    /// The separation figures over its labelled rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SeparationMetrics>,
}

/// Which version does best on a metric.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricWinner {
    /// `auc`, `ks` or `gini`.
    pub metric: String,
    /// The best version.
    pub version: i64,
    /// Each version's value, by version number.
    pub values: BTreeMap<String, f64>,
    /// The winner's lead over the first version of `spec.versions` (zero
    /// when the first wins).
    pub lead_over_reference: f64,
}
