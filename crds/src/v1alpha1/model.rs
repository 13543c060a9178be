//! `Model`: a named family of immutable, versioned model artifacts, the gates a
//! version must pass to be promoted, and the aliases (`champion`, …) that
//! deployments follow.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::scoring_job::ScoringRunSpec;

use super::common::{ArtifactStorage, ModelSignature, SecretReference};
use super::promotion::{
    EvidenceSpec, FollowStatus, PromotedFrom, PromotionRequirements, Provenance, VersionEvidence,
};
use super::training_job::TrainingRunSpec;

/// The alias that automatic promotion moves unless told otherwise.
pub const CHAMPION_ALIAS: &str = "champion";
/// The alias given to the newest version that passed the absolute gates but
/// did not (yet) replace the champion.
pub const CHALLENGER_ALIAS: &str = "challenger";

/// A model: where its versions come from, how they are promoted, and how many
/// are kept. The operator records every version in `status.versions` and in
/// storage; versions are never changed once recorded.
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[kube(
    group = "aimass.io",
    version = "v1alpha1",
    kind = "Model",
    namespaced,
    status = "ModelStatus",
    shortname = "mdl",
    category = "aimass",
    printcolumn = r#"{"name":"Champion","type":"integer","description":"Version the champion alias points at","jsonPath":".status.aliases.champion"}"#,
    printcolumn = r#"{"name":"Latest","type":"integer","description":"Newest registered version","jsonPath":".status.latestRegisteredVersion"}"#,
    printcolumn = r#"{"name":"Champion-From","type":"string","priority":1,"description":"The environment the champion was promoted from","jsonPath":".status.championFrom"}"#,
    printcolumn = r#"{"name":"Following","type":"string","priority":1,"description":"The version followed from another environment now","jsonPath":".status.follow.source"}"#,
    printcolumn = r#"{"name":"Promotion","type":"string","priority":1,"description":"Where following it stands","jsonPath":".status.follow.reason"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = (
        "!has(self.spec.source.training) || has(self.spec.storage)",
        "spec.storage is required when spec.source.training is set: trained versions need a place to be written"
    ),
    validation = (
        "!has(self.spec.baseline) || has(self.spec.source.training)",
        "spec.baseline computes the drift baselines of trained versions: it needs spec.source.training"
    ),
    validation = (
        "!has(self.spec.promotion.requires) || has(self.spec.source.promotedFrom)",
        "spec.promotion.requires applies to versions followed from another namespace: set spec.source.promotedFrom"
    ),
    validation = (
        "!has(self.spec.promotion.backtest) || has(self.spec.evaluation)",
        "spec.promotion.backtest compares versions on spec.evaluation's data: set spec.evaluation"
    ),
)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// Where new versions come from: an existing artifact (`uri`) or training
    /// runs (`training`). Exactly one of the two.
    pub source: ModelSource,

    /// Where the operator stores trained artifacts and the `version.json`
    /// record of every version, so that a deleted and re-created Model
    /// recovers its history. Required with `source.training`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<ArtifactStorage>,

    /// Gates a new version must pass before it becomes the promoted alias
    /// (`champion` by default), and who moves that alias.
    #[serde(default)]
    pub promotion: PromotionSpec,

    /// Aliases pinned by the user: alias name to version number, for example
    /// `champion: 3` to roll back or to promote by hand from git. A pinned
    /// alias always wins over automatic promotion.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(
        validation = (
            "self.all(k, k.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(k) <= 63)",
            "alias names must be lower-case DNS labels (letters, digits and '-', at most 63 characters), like champion or challenger"
        ),
        validation = ("self.all(k, self[k] >= 1)", "aliases must point at version numbers of 1 or more")
    )]
    pub aliases: BTreeMap<String, i64>,

    /// How many versions are kept.
    #[serde(default)]
    pub retention: RetentionSpec,

    /// How a version proves itself in this environment (soak time, traffic,
    /// error rate, p99), so that a higher environment can require it.
    /// Without it, versions here are never counted as proven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<EvidenceSpec>,

    /// Labelled data the champion is measured on: on `schedule` (its
    /// figures kept in `status.evaluations` and exported as
    /// `aimass_model_evaluation_metric`), and for `promotion.backtest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<EvaluationSpec>,

    /// Where the platform computes a trained version's drift baseline when
    /// its trainer wrote no `baseline.json`: the validation Job, in this
    /// namespace, scores the first `rows` rows of this data set with the
    /// new version and writes `baseline.json` beside the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<super::BaselineSource>,
}

/// How a Model is measured on labelled data: a ScoringJob run from
/// `template`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "has(self.template.labelColumn)",
    "evaluation.template.labelColumn is required: a Model is measured against labels"
))]
pub struct EvaluationSpec {
    /// Measure the champion periodically, in cron syntax, evaluated in UTC:
    /// point `template.dataset.uri` at the newest labelled extract (last
    /// month's transactions with their chargebacks). A tick that comes while
    /// a run is still going is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = (
        "self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[^ ]+( +[^ ]+){4})$')",
        "schedule must be a cron expression with five fields (minute hour day-of-month month day-of-week), e.g. '0 2 * * *', or one of @yearly, @monthly, @weekly, @daily, @hourly"
    ))]
    pub schedule: Option<String>,

    /// Pause scheduled evaluation without deleting the schedule.
    #[serde(default)]
    pub suspend: bool,

    /// The scoring run, as in a ScoringJob's spec without the model and the
    /// versions (the champion, and for a backtest the candidate too). Each
    /// run writes below `output.uri`, in a folder named after the run.
    pub template: ScoringRunSpec,
}

/// Where a Model's versions come from.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = (
        "[has(self.uri), has(self.training), has(self.promotedFrom)].filter(x, x).size() == 1",
        "set exactly one of source.uri (an existing ONNX artifact), source.training (a TrainingJob template) or source.promotedFrom (a Model in another namespace)"
    ),
    validation = ("!has(self.sha256) || has(self.uri)", "source.sha256 is only meaningful with source.uri"),
    validation = ("!has(self.provenance) || has(self.sha256)", "source.provenance needs source.uri and source.sha256: a declared history belongs to one exact artifact"),
    validation = ("!has(self.secretRef) || !has(self.training)", "source.secretRef is only meaningful with source.uri or source.promotedFrom; set storage.secretRef for training")
)]
pub struct ModelSource {
    /// URI of an existing ONNX artifact: `s3://`, `gs://`, `az://`,
    /// `http(s)://`, `file://` or `pvc://<claim>/<path>`. Changing it records a
    /// new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = (
        "self.matches('^(s3|gs|az|https?|file|pvc)://.+')",
        "source.uri must start with s3://, gs://, az://, http://, https://, file:// or pvc:// followed by a location"
    ))]
    #[schemars(length(max = 2048))]
    pub uri: Option<String>,

    /// Expected sha256 of the artifact at `uri`, as 64 hex digits. A mismatch
    /// rejects the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-f0-9]{64}$"))]
    pub sha256: Option<String>,

    /// Secret with the credentials to read `uri` (or the artifacts of
    /// `promotedFrom`), given as environment to the validation Job that
    /// fetches the artifact in this namespace (the operator never fetches
    /// it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,

    /// Train versions with TrainingJobs created from this template, once when
    /// the Model is created and then on `schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingSource>,

    /// The history of `uri` in another cluster, as `kubectl aimass export`
    /// writes it: recorded with the imported version and marked declared
    /// (this operator did not observe it). Needs `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,

    /// Follow a Model of another namespace (a lower environment): each
    /// version its alias points at, or one fixed version, is recorded here
    /// once it meets `promotion.requires`, with its provenance. The artifact
    /// is referenced where it lies, pinned by its sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_from: Option<PromotedFrom>,
}

/// Training runs that produce a Model's versions.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TrainingSource {
    /// Retrain periodically, in cron syntax (`minute hour day-of-month month
    /// day-of-week`, or `@daily`, `@hourly`, …), evaluated in UTC. A tick that
    /// comes while a run is still going is skipped, never queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = (
        "self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[^ ]+( +[^ ]+){4})$')",
        "schedule must be a cron expression with five fields (minute hour day-of-month month day-of-week), e.g. '0 2 * * *', or one of @yearly, @monthly, @weekly, @daily, @hourly"
    ))]
    pub schedule: Option<String>,

    /// Pause scheduled retraining without deleting the schedule.
    #[serde(default)]
    pub suspend: bool,

    /// Retrain also when this happens: `Drift`, a ModelDeployment serving
    /// the champion sets its `Drift` condition. At most one such run per
    /// `minRetrainIntervalSeconds`, and never while another run is going.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1))]
    pub retrain_on: Vec<RetrainOn>,

    /// The least time between two runs started by `retrainOn`, in seconds.
    #[serde(default = "default_retrain_interval")]
    #[schemars(range(min = 60))]
    pub min_retrain_interval_seconds: i64,

    /// The training run to start: image, dataset, hyperparameters and
    /// resources, as in a TrainingJob's spec.
    pub template: TrainingRunSpec,
}

fn default_retrain_interval() -> i64 {
    86400
}

/// An event that starts a training run.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum RetrainOn {
    /// A ModelDeployment serving the champion detects drift.
    Drift,
}

/// Who moves the promoted alias.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum PromotionPolicy {
    /// The operator moves the alias to each new version that passes every gate.
    #[default]
    Automatic,
    /// The operator only evaluates the gates and reports the result; the user
    /// moves aliases in `spec.aliases`.
    Manual,
}

/// How new versions are promoted.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "!(has(self.backtest) && has(self.shadow))",
    "set promotion.backtest or promotion.shadow, not both"
))]
pub struct PromotionSpec {
    /// `Automatic`: the operator moves the alias when a version passes every
    /// gate. `Manual`: it only reports the gates' verdict.
    #[serde(default)]
    pub policy: PromotionPolicy,

    /// The alias that promotion moves.
    #[serde(default = "default_promotion_alias")]
    #[x_kube(validation = (
        "self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "promotion.alias must be a lower-case DNS label, like champion"
    ))]
    #[schemars(length(min = 1, max = 63))]
    pub alias: String,

    /// Every gate must pass for a version to be promoted. With no gates, every
    /// valid version is promoted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = (
        "self.all(g, self.exists_one(h, h.metric == g.metric))",
        "each metric may appear in only one promotion gate"
    ))]
    #[schemars(length(max = 32))]
    pub gates: Vec<PromotionGate>,

    /// What a version followed from another namespace must carry (evidence
    /// from lower environments, approvals) before it is recorded here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<PromotionRequirements>,

    /// A version that passes the gates is promoted only after a backtest:
    /// the holder of the alias and the candidate score `spec.evaluation`'s
    /// data in one ScoringJob, and the candidate must beat the holder on
    /// `metric`, measured on the same rows. Until the backtest ends the
    /// version waits with reason `Backtesting`; one that does not win
    /// becomes the challenger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtest: Option<BacktestGate>,

    /// A version that passes the gates becomes the challenger and is
    /// promoted only after a shadow trial: a ModelDeployment serving the
    /// holder of the alias shadows it (`spec.shadow`, which follows
    /// `challenger` by default) until it scored `minRequests`, and it must
    /// agree with the holder as closely as asked. Until then the version
    /// waits with reason `ShadowTrial`; one that falls short keeps the
    /// challenger alias with reason `ShadowTrialLost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowGate>,
}

/// How closely a candidate must agree with the holder of the alias on
/// shadowed live traffic.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "has(self.minLabelAgreement) || has(self.maxMeanDifference)",
    "shadow needs minLabelAgreement, maxMeanDifference or both"
))]
pub struct ShadowGate {
    /// Requests the candidate must have scored in the shadow before it is
    /// judged, over the serving replicas.
    #[serde(default = "default_shadow_requests")]
    #[schemars(range(min = 1))]
    pub min_requests: i64,

    /// The least share of rows on which its label must equal the holder's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = (
        "self >= 0.0 && self <= 1.0",
        "shadow.minLabelAgreement must be between 0 and 1"
    ))]
    pub min_label_agreement: Option<f64>,

    /// The largest mean absolute difference of its scores from the
    /// holder's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = ("self >= 0.0", "shadow.maxMeanDifference must be 0 or more"))]
    pub max_mean_difference: Option<f64>,
}

fn default_shadow_requests() -> i64 {
    1000
}

/// The backtest a candidate must win to be promoted.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BacktestGate {
    /// `auc`, `ks` or `gini` (larger is better for each).
    #[x_kube(validation = (
        "self in ['auc', 'ks', 'gini']",
        "backtest.metric must be auc, ks or gini"
    ))]
    pub metric: String,

    /// How much the candidate must beat the holder by (0: at least as good).
    #[serde(default)]
    #[x_kube(validation = ("self >= 0.0", "backtest.betterThanChampionBy must be 0 or more"))]
    pub better_than_champion_by: f64,
}

impl Default for PromotionSpec {
    fn default() -> Self {
        Self {
            policy: PromotionPolicy::default(),
            alias: default_promotion_alias(),
            gates: Vec::new(),
            requires: None,
            backtest: None,
            shadow: None,
        }
    }
}

fn default_promotion_alias() -> String {
    CHAMPION_ALIAS.to_owned()
}

/// Whether larger or smaller values of a metric are better.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum MetricGoal {
    /// Larger is better (AUC, KS, recall, precision, accuracy).
    #[default]
    Maximize,
    /// Smaller is better (loss, log-loss, Brier score, error rates).
    Minimize,
}

/// A condition on one metric that a version must meet to be promoted.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = (
        "has(self.minimum) || has(self.maximum) || has(self.betterThanChampionBy)",
        "a promotion gate needs at least one of minimum, maximum or betterThanChampionBy"
    ),
    validation = (
        "!has(self.minimum) || !has(self.maximum) || self.minimum <= self.maximum",
        "promotion gate minimum must not be greater than maximum"
    )
)]
pub struct PromotionGate {
    /// Metric name as the trainer reports it in `metrics.json`, e.g. `auc`.
    #[schemars(length(min = 1, max = 128))]
    pub metric: String,

    /// Whether larger (`Maximize`, the default) or smaller (`Minimize`)
    /// values are better; decides what "better than the champion" means.
    #[serde(default)]
    pub goal: MetricGoal,

    /// The metric must be at least this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,

    /// The metric must be at most this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,

    /// The metric must beat the current holder of the alias by at least this
    /// margin, in the direction of `goal` (0 means "at least as good"). Passes
    /// when there is no holder yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = ("self >= 0.0", "betterThanChampionBy must be 0 or more"))]
    pub better_than_champion_by: Option<f64>,
}

/// How many versions are kept.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Keep the newest this many versions. Versions that an alias or a
    /// ModelDeployment points at are always kept on top of these.
    #[serde(default = "default_keep_last")]
    #[schemars(range(min = 1, max = 1000))]
    pub keep_last: i32,

    /// Also delete the artifacts of versions dropped from the registry (and of
    /// all versions when the Model is deleted). Off by default: storage is the
    /// bank's record, and removing it is a decision for a human.
    #[serde(default)]
    pub delete_artifacts: bool,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        Self {
            keep_last: default_keep_last(),
            delete_artifacts: false,
        }
    }
}

fn default_keep_last() -> i32 {
    10
}

/// The observed state of a Model: its versions, aliases and training schedule.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions: `Ready` (a usable version exists and the aliases
    /// resolve), `Training` (a training run is in progress), `Promoted`
    /// (with `source.promotedFrom`: the version followed is recorded, or why
    /// not), `Proven` (with `evidence`: the champion is proven here, or
    /// how its soak stands) and `Evaluated` (with `evaluation`: whether the
    /// champion still meets its gates on the newest labelled data).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Every recorded version, oldest first, minus those removed by
    /// retention. Records are append-only and never changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<ModelVersion>,

    /// The newest version number handed out (to a version or a training run in
    /// progress). Version numbers are never reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<i64>,

    /// The newest version registered in `versions` (Ready or Rejected);
    /// numbers handed out to runs that failed before registering are not
    /// counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_registered_version: Option<i64>,

    /// Alias name to the version it points at, e.g. `champion: 4`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, i64>,

    /// The latest alias moves, newest last (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alias_history: Vec<AliasMove>,

    /// The TrainingJob currently running for this Model, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_training_job: Option<String>,

    /// When the schedule last started a training run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_time: Option<Time>,

    /// When drift of the served champion last started a training run
    /// (`source.training.retrainOn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drift_retrain_time: Option<Time>,

    /// When the schedule will next start a training run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scheduled_time: Option<Time>,

    /// Where the champion came from, as `namespace/model:version` of the
    /// environment it was promoted from; unset when it was trained or
    /// imported here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub champion_from: Option<String>,

    /// Where following `spec.source.promotedFrom` stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<FollowStatus>,

    /// Versions proven here under `spec.evidence`, newest last (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<VersionEvidence>,

    /// The champion's figures on each scheduled evaluation, newest last
    /// (the latest 30): the trend a risk team alerts on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluations: Vec<Evaluation>,

    /// When the evaluation schedule last started a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluation_time: Option<Time>,

    /// When it will next start one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_evaluation_time: Option<Time>,
}

/// The champion measured on labelled data by one scheduled evaluation.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// The ScoringJob that measured it.
    pub scoring_job: String,
    /// When it finished.
    pub time: Option<Time>,
    /// The version measured (the champion when the run started).
    pub version: i64,
    /// Labelled rows measured.
    pub rows: i64,
    /// `auc`, `ks`, `gini` and `badRate` on those rows.
    pub metrics: BTreeMap<String, f64>,
    /// The promotion gates the champion no longer meets on this data, as
    /// sentences (empty when it meets them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub below_gates: Vec<String>,
}

/// Whether a recorded version may be served.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum VersionPhase {
    /// The artifact loaded and ran in the inference engine; it may be served.
    #[default]
    Ready,
    /// The artifact failed validation; `reason` says why. It is never served.
    Rejected,
}

/// One immutable version of a Model.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersion {
    /// Version number, starting at 1 and never reused.
    pub version: i64,
    /// Whether the version may be served.
    pub phase: VersionPhase,
    /// Why the version was rejected, or why it was not promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence for humans explaining `reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Where the ONNX artifact is stored.
    pub uri: String,
    /// sha256 of the artifact, as 64 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size of the artifact in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// Inputs and outputs read from the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ModelSignature>,
    /// Final evaluation metrics the trainer reported in `metrics.json`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    /// Where the version came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<VersionLineage>,
    /// The environments a promoted version went through, with their
    /// evidence and approvals; for trained versions, who asked for the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// When the version was recorded.
    pub created: Time,
    /// The training baseline the trainer wrote beside the artifact
    /// (`baseline.json`), checked by the validation Job; drift is measured
    /// against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<VersionBaseline>,
}

/// What produced a version: the training run, its image, data and
/// hyperparameters; or the URI it was imported from.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VersionLineage {
    /// Name of the TrainingJob that produced the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_job: Option<String>,
    /// UID of that TrainingJob, which stays unique after its name is reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_job_uid: Option<String>,
    /// Trainer image that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Dataset the trainer read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_uri: Option<String>,
    /// Hyperparameters the trainer was given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hyperparameters: BTreeMap<String, String>,
    /// The URI the artifact was imported from, for `source.uri` versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
    /// Why the operator started the run (drift), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<super::RunTrigger>,
}

/// A version's training baseline.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VersionBaseline {
    /// Where it is (beside the artifact).
    pub uri: String,
    /// Its sha256, which the servers check.
    pub sha256: String,
    /// Features it describes.
    pub features: i32,
    /// Scores it describes.
    pub scores: i32,
}

/// A move of an alias: a promotion, a manual pin, or a rollback.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AliasMove {
    /// The alias that moved.
    pub alias: String,
    /// Version it pointed at before, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<i64>,
    /// Version it points at now.
    pub to: i64,
    /// Why it moved: `Promoted` (gates passed), `Pinned` (set in
    /// `spec.aliases`), or `Unpinned`.
    pub reason: String,
    /// The evidence, e.g. the gate values compared; for a pin, the reason
    /// given in the annotation `aimass.io/reason` when
    /// `aimass.io/reason-for` names this pin (`alias=version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Who moved it, for a pin: the Model's `aimass.io/requested-by` when
    /// the pin was set, which the chart's admission policy holds to the
    /// name of whoever changed the spec. Empty for the operator's own moves
    /// and for pins set without the annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When it moved.
    pub time: Time,
}
