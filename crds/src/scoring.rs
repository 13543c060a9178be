//! The contract between a ScoringJob's pods (the inference server's
//! `score` and `report` commands, in the tenant's namespace) and the
//! operator: the plan the operator hands them as one environment variable,
//! and the one line the report pod (or a failing shard) prints, which the
//! operator reads from the pod's log and never the data itself.

use serde::{Deserialize, Serialize};

use crate::v1alpha1::{DataFormat, InputColumns, ScoreOutput, ScoredVersion, ScoringReport};

/// The environment variable holding the plan as JSON.
pub const PLAN_ENV: &str = "AIMASS_SCORING_PLAN";

/// The key of the JSON object a scoring pod prints, so its line stands out
/// from anything else in the log.
pub const LINE_KEY: &str = "aimassScoring";

/// The exit code of a pod that refuses the job itself (a missing data set, an
/// unknown column): retrying cannot help, so the Job does not.
pub const EXIT_REFUSED: i32 = 3;

/// What every pod of a ScoringJob is asked to do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoringPlan {
    /// The data set's URI.
    pub dataset: String,
    /// Its format, when declared.
    #[serde(default)]
    pub dataset_format: Option<DataFormat>,
    /// The versions, in `spec.versions` order.
    pub versions: Vec<ScoredVersion>,
    /// Declared column mappings (empty: inferred).
    #[serde(default)]
    pub columns: Vec<InputColumns>,
    /// The label column.
    #[serde(default)]
    pub label_column: Option<String>,
    /// The segment column.
    #[serde(default)]
    pub segment_column: Option<String>,
    /// The id column.
    #[serde(default)]
    pub id_column: Option<String>,
    /// The output the report measures.
    #[serde(default)]
    pub score: Option<ScoreOutput>,
    /// Decision thresholds.
    #[serde(default)]
    pub thresholds: Vec<f64>,
    /// The output prefix.
    pub output: String,
    /// The outputs' format, when declared.
    #[serde(default)]
    pub output_format: Option<DataFormat>,
    /// How many shards.
    pub shards: u32,
    /// The largest model artifact read, in bytes.
    pub max_model_bytes: usize,
}

/// The environment variable holding a [`BaselinePlan`] as JSON, for a
/// validation Job that computes a version's baseline.
pub const BASELINE_PLAN_ENV: &str = "AIMASS_BASELINE_PLAN";

/// What a validation Job computes a baseline from, when the trainer wrote
/// none: the Model's `spec.baseline`, and where to write the file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaselinePlan {
    /// The data set's URI.
    pub dataset: String,
    /// Its format, when declared.
    #[serde(default)]
    pub dataset_format: Option<DataFormat>,
    /// Declared column mappings (empty: inferred).
    #[serde(default)]
    pub columns: Vec<InputColumns>,
    /// The score watched.
    #[serde(default)]
    pub score: Option<ScoreOutput>,
    /// Rows read at most.
    pub rows: u64,
}

/// The one line a report pod or a failing shard prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ScoringLine {
    /// The merged report.
    Report(Box<ScoringReport>),
    /// Why a pod failed: a condition reason and a sentence.
    Failed {
        /// `DatasetUnavailable`, `InvalidSpec`, `ArtifactInvalid`, ….
        reason: String,
        /// What is wrong, naming the column, file or version.
        message: String,
    },
}

impl ScoringLine {
    /// The line to print: `{"aimassScoring": {...}}`.
    pub fn to_line(&self) -> String {
        serde_json::json!({ LINE_KEY: self }).to_string()
    }

    /// The last such line in `log`, if any. The log is tenant output: lines
    /// that do not parse are skipped, never trusted.
    pub fn from_log(log: &str) -> Option<Self> {
        crate::last_line(log, LINE_KEY)
    }
}

impl ScoringPlan {
    /// The data set's format.
    pub fn input_format(&self) -> DataFormat {
        DataFormat::of(&self.dataset, self.dataset_format)
    }

    /// The outputs' format: as declared, else the data set's.
    pub fn output_format(&self) -> DataFormat {
        self.output_format.unwrap_or_else(|| self.input_format())
    }
}
