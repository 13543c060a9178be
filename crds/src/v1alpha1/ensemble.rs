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
}

impl CombineRule {
    /// The inference server's name for the rule (`--combine`).
    pub fn as_flag(self) -> &'static str {
        match self {
            Self::WeightedSum => "weighted-sum",
            Self::Maximum => "maximum",
            Self::Vote => "vote",
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
                c.members
                    .iter()
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

    /// `member=version` pairs, for messages: `gbdt=fraud-gbdt v3, …`.
    pub fn describe(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}={} v{}", m.name, m.model, m.version))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
