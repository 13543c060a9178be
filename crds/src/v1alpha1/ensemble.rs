//! Ensembles: several Models served behind one ModelDeployment in one
//! server process, their answers combined by a rule; and the record of each
//! combination served.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ModelSelector, ModelSignature};

/// How many combinations `status.combinations` keeps.
pub const COMBINATIONS_KEPT: usize = 20;

/// Several Models served as one: every member scores each request inside
/// the same server, side by side where the machine allows, and `combine`
/// makes one answer of theirs.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "self.members.all(m, self.members.exists_one(n, n.name == m.name))",
    "ensemble.members must have unique names"
))]
#[x_kube(validation = (
    "(self.combine == 'Stack') == has(self.meta)",
    "Stack needs ensemble.meta, the meta-model over the members' scores; the other rules take none"
))]
pub struct EnsembleSpec {
    /// How the members' answers become one.
    pub combine: CombineRule,

    /// The output every member returns and `combine` combines (each
    /// member's must have the same type and shape). Callers get it under
    /// this name.
    #[serde(default = "default_output")]
    #[schemars(length(min = 1, max = 128))]
    pub output: String,

    /// The members, 2 to 8. Their own outputs are returned as
    /// `<member>.<output>` when a request names them.
    #[schemars(length(min = 2, max = 8))]
    pub members: Vec<EnsembleMember>,

    /// The meta-model of `Stack`: a Model whose one input takes each
    /// member's score (the last column of `output`) side by side,
    /// `[rows, members]`, in the members' order; its outputs are the
    /// ensemble's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<ModelSelector>,
}

fn default_output() -> String {
    "probabilities".to_owned()
}

/// How an ensemble's answers combine.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum CombineRule {
    /// The members' outputs weighted by `weight` and added (weights are
    /// used as given: make them add up to 1 for an average).
    #[default]
    WeightedSum,
    /// The element-wise maximum of the members' outputs: the highest risk
    /// wins.
    Maximum,
    /// The label most members voted for, each counting its `weight`; a tie
    /// goes to the earliest member's label.
    Vote,
    /// A meta-model (`meta`) decides from the members' scores: stacking.
    Stack,
}

impl CombineRule {
    /// The inference server's name for the rule (`--combine`).
    pub fn as_flag(self) -> &'static str {
        match self {
            Self::WeightedSum => "weighted-sum",
            Self::Maximum => "maximum",
            Self::Vote => "vote",
            Self::Stack => "stack",
        }
    }
}

/// One model of an ensemble.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnsembleMember {
    /// The member's name in answers (`<name>.<output>`) and in the
    /// combination record: a lower-case DNS label.
    #[x_kube(validation = (
        "self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "an ensemble member's name must be a lower-case DNS label, like gbdt"
    ))]
    #[schemars(length(min = 1, max = 63))]
    pub name: String,

    /// The Model and the version of it (an alias, default `champion`, or a
    /// pinned version); when the alias moves, a new combination rolls out.
    pub model: ModelSelector,

    /// The member's weight in `WeightedSum` and `Vote`.
    #[serde(default = "default_weight")]
    #[x_kube(validation = (
        "self > 0.0 && self <= 1000.0",
        "an ensemble member's weight must be greater than 0 and at most 1000"
    ))]
    pub weight: f64,
}

fn default_weight() -> f64 {
    1.0
}

/// One combination an ensemble served or rolls out: its members' versions,
/// the rule and the weights. Numbered from 1 like a Model's versions; the
/// number is the ModelDeployment's `servingVersion` and the servers'
/// `model_version`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Combination {
    /// The combination's number, never reused.
    pub revision: i64,
    /// The rule.
    pub combine: CombineRule,
    /// The output combined.
    pub output: String,
    /// The members with the versions they resolved to.
    pub members: Vec<CombinationMember>,
    /// The meta-model of `Stack`, with the version it resolved to (named
    /// `meta`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<CombinationMember>,
    /// The inputs and outputs callers see, derived from the members'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<ModelSignature>,
    /// When the combination was first chosen.
    pub created: Time,
}

/// A member of a recorded combination.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CombinationMember {
    /// The member's name.
    pub name: String,
    /// The Model.
    pub model: String,
    /// The Model's version served.
    pub version: i64,
    /// The alias the version was resolved from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The weight.
    pub weight: f64,
    /// Where the version's artifact is stored.
    pub uri: String,
    /// sha256 of the artifact, checked by every server at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl Combination {
    /// Whether `other` serves the same thing: the same rule, output,
    /// members, versions and weights (the alias and the time aside).
    pub fn same_as(&self, other: &Combination) -> bool {
        let key = |c: &Combination| {
            (
                c.combine,
                c.output.clone(),
                c.all_members()
                    .map(|m| {
                        (
                            m.name.clone(),
                            m.model.clone(),
                            m.version,
                            m.weight.to_bits(),
                            m.uri.clone(),
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        };
        key(self) == key(other)
    }

    /// The members, then the meta-model if there is one.
    pub fn all_members(&self) -> impl Iterator<Item = &CombinationMember> {
        self.members.iter().chain(&self.meta)
    }

    /// `member=version` pairs, for messages: `gbdt=fraud-gbdt v3, …`.
    pub fn describe(&self) -> String {
        self.all_members()
            .map(|m| format!("{}={} v{}", m.name, m.model, m.version))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A shadow: another version of the served Model that scores a share of
/// the real requests after the served answer is made, whose answers are
/// compared with the served ones and never returned.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = (
    "!(has(self.alias) && has(self.version))",
    "set either shadow.alias or shadow.version, not both"
))]
pub struct ShadowSpec {
    /// Shadow the version this alias points at (default `challenger`),
    /// following it when it moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = (
        "self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "shadow.alias must be a lower-case DNS label, like challenger"
    ))]
    #[schemars(length(max = 63))]
    pub alias: Option<String>,

    /// Shadow exactly this version number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub version: Option<i64>,

    /// The share of requests the shadow scores, in percent: exactly that
    /// many of every hundred each server answers.
    #[serde(default = "default_shadow_percent")]
    #[schemars(range(min = 1, max = 100))]
    pub percent: i32,
}

fn default_shadow_percent() -> i32 {
    10
}

/// How a shadow's answers compare with the served ones, summed over the
/// serving replicas since they started with it (written by the monitor).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShadowStatus {
    /// The version shadowed.
    pub version: i64,
    /// Requests it scored.
    pub requests: i64,
    /// Rows it scored and compared.
    pub rows: i64,
    /// Share of rows on which its label equals the served one, when the
    /// models return labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_agreement: Option<f64>,
    /// Mean absolute difference of each row's score (the positive class's
    /// probability), when the models return scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_absolute_difference: Option<f64>,
    /// How many rows' score differences are at most each bound, ascending
    /// (cumulative, as a Prometheus histogram).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub differences: Vec<DifferenceBucket>,
    /// Requests chosen for the shadow that it did not score: it was busy or
    /// failed.
    pub dropped: i64,
}

/// Rows whose score difference is at most `le`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DifferenceBucket {
    /// The bound.
    pub le: f64,
    /// Rows at most that far apart.
    pub rows: i64,
}
