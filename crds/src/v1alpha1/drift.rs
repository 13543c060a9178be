//! Drift of a served version: what its callers send and what it answers,
//! compared with its training baseline (`baseline.json`), and the rules
//! applied at the door to values training never saw.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a ModelDeployment watches drift. The servers count every scored row
/// into the bins of the served version's baseline (only counts, never the
/// values); every `intervalSeconds` the operator merges the replicas'
/// counts over the last `windowSeconds` and computes the population
/// stability index (PSI) of the score and the characteristic stability
/// index (CSI) of each feature: `Σ (actual − expected) · ln(actual /
/// expected)` over the bins, each share floored at 0.0001. Versions
/// without a baseline are not watched.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "self.intervalSeconds <= self.windowSeconds",
    "drift.intervalSeconds must not exceed drift.windowSeconds: each evaluation looks at one window"
))]
#[x_kube(validation = (
    "self.warning < self.action",
    "drift.warning must be below drift.action (customarily 0.1 and 0.25)"
))]
pub struct DriftSpec {
    /// Count and evaluate drift (when the version has a baseline).
    #[serde(default = "enabled")]
    pub enabled: bool,

    /// The sliding window evaluated, in seconds: the rows scored in the last
    /// `windowSeconds` across all replicas.
    #[serde(default = "default_window")]
    #[schemars(range(min = 10, max = 604800))]
    pub window_seconds: i32,

    /// Seconds between evaluations.
    #[serde(default = "default_interval")]
    #[schemars(range(min = 5, max = 86400))]
    pub interval_seconds: i32,

    /// The warning level of the PSI and CSI (status shows `Warning`).
    #[serde(default = "default_warning")]
    #[x_kube(validation = ("self > 0.0", "drift.warning must be greater than 0"))]
    pub warning: f64,

    /// The action level: a PSI or a CSI at or above it for `detectAfter`
    /// evaluations in a row sets the `Drift` condition; one below `warning`
    /// for `clearAfter` evaluations clears it.
    #[serde(default = "default_action")]
    pub action: f64,

    /// The fewest rows a window needs to be judged; fewer leave the
    /// condition as it was.
    #[serde(default = "default_min_rows")]
    #[schemars(range(min = 1))]
    pub min_rows: i64,

    /// Evaluations in a row at the action level that raise the condition.
    #[serde(default = "default_detect_after")]
    #[schemars(range(min = 1, max = 100))]
    pub detect_after: i32,

    /// Evaluations in a row below the warning level that clear it.
    #[serde(default = "default_clear_after")]
    #[schemars(range(min = 1, max = 100))]
    pub clear_after: i32,

    /// What the servers do with a feature value outside what training saw:
    /// a number below the baseline's `min` or above its `max`, or a
    /// category it does not list. Features without a rule are only counted
    /// in drift. Missing values (NaN) are never outside.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 512))]
    #[x_kube(validation = (
        "self.all(r, self.exists_one(s, s.feature == r.feature))",
        "drift.rules names a feature twice"
    ))]
    pub rules: Vec<FeatureRule>,
}

impl Default for DriftSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            window_seconds: default_window(),
            interval_seconds: default_interval(),
            warning: default_warning(),
            action: default_action(),
            min_rows: default_min_rows(),
            detect_after: default_detect_after(),
            clear_after: default_clear_after(),
            rules: Vec::new(),
        }
    }
}

fn enabled() -> bool {
    true
}
fn default_window() -> i32 {
    3600
}
fn default_interval() -> i32 {
    300
}
fn default_warning() -> f64 {
    0.1
}
fn default_action() -> f64 {
    0.25
}
fn default_min_rows() -> i64 {
    500
}
fn default_detect_after() -> i32 {
    1
}
fn default_clear_after() -> i32 {
    2
}

/// What to do with one feature's values outside the training range.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FeatureRule {
    /// The feature, as the baseline names it.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = (
        "!self.contains(',') && !self.contains('=')",
        "drift.rules[].feature cannot hold ',' or '='"
    ))]
    pub feature: String,
    /// `Reject` answers 400 naming the feature, its input and the row;
    /// `Flag` scores the request and counts the value in
    /// `aimass_input_out_of_contract_total{input}`.
    pub action: RuleAction,
}

/// The action of a feature rule.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum RuleAction {
    /// Refuse the request with 400.
    Reject,
    /// Score it and count the value.
    Flag,
}

impl RuleAction {
    /// Its name, as the server's flag takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "Reject",
            Self::Flag => "Flag",
        }
    }
}

/// Where drift stands, from the latest evaluation.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum DriftLevel {
    /// Every index below the warning level.
    #[default]
    Stable,
    /// An index at or above the warning level, none at the action level.
    Warning,
    /// An index at or above the action level.
    Action,
    /// Fewer rows in the window than `minRows`.
    InsufficientData,
    /// The version served has no baseline, or the servers do not count.
    NoBaseline,
}

/// The drift of the version served, as the operator last evaluated it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DriftStatus {
    /// The version evaluated (the stable track's; a canary is not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The level reached.
    pub level: DriftLevel,
    /// Whether drift is detected now (the `Drift` condition), after the
    /// hysteresis of `detectAfter` and `clearAfter`.
    #[serde(default)]
    pub detected: bool,
    /// When it was detected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_since: Option<Time>,
    /// Evaluations in a row at the action level (or below warning, once
    /// detected).
    #[serde(default)]
    pub streak: i32,
    /// Start of the window evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<Time>,
    /// End of the window evaluated (the evaluation's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end: Option<Time>,
    /// Rows scored in the window, across replicas.
    #[serde(default)]
    pub rows: i64,
    /// The score's population stability index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
    /// Every score's index (the first is `psi`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<ColumnStability>,
    /// The features with the highest characteristic stability index, highest
    /// first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<ColumnStability>,
    /// The warning level applied.
    pub warning: f64,
    /// The action level applied.
    pub action: f64,
    /// What the evaluation found, in a sentence.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The last evaluations of this version, oldest first (at most 60):
    /// drift over time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 60))]
    pub history: Vec<DriftPoint>,
}

/// One drift evaluation, as `status.drift.history` keeps it.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DriftPoint {
    /// The end of the window evaluated.
    pub time: Time,
    /// Rows scored in the window.
    #[serde(default)]
    pub rows: i64,
    /// The score's population stability index, when enough rows were scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
    /// The highest feature's characteristic stability index, when enough
    /// rows were scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_csi: Option<f64>,
}

/// One column's stability over the window.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ColumnStability {
    /// The column's name in the baseline.
    pub name: String,
    /// Its stability index (PSI for a score, CSI for a feature).
    pub index: f64,
    /// Rows with a missing value (NaN), not binned.
    #[serde(default)]
    pub missing: i64,
    /// Rows with a value outside what training saw.
    #[serde(default)]
    pub out_of_contract: i64,
}

/// The data a version's baseline is computed from when its trainer wrote
/// none.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BaselineSource {
    /// The data set: CSV with a header row or Parquet, on `s3://`, `gs://`,
    /// `az://`, `http(s)://` or `file://`, read with the Model's storage
    /// credentials (`spec.storage.secretRef`).
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = (
        "self.matches('^(s3|gs|az|https?|file)://.+')",
        "baseline.uri must start with s3://, gs://, az://, http://, https:// or file:// followed by a location"
    ))]
    pub uri: String,

    /// Its format; by default from the file name (`.parquet`, else CSV).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<super::DataFormat>,

    /// Which columns feed which input, as in a ScoringJob; inferred when
    /// empty (an input of one value takes the column of its name, a single
    /// input the columns left). Each feature of the baseline is named after
    /// its column.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub columns: Vec<super::InputColumns>,

    /// The score watched; by default the first floating-point output's last
    /// element (for a two-class classifier, the probability of class 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<super::ScoreOutput>,

    /// How many rows are read, from the start of the file.
    #[serde(default = "default_baseline_rows")]
    #[schemars(range(min = 100, max = 1000000))]
    pub rows: i64,
}

fn default_baseline_rows() -> i64 {
    100_000
}
