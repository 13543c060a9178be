//! Drift counting on the request path: each scored row's feature values
//! and scores are counted into the bins of the version's baseline
//! (`--baseline-uri`), and feature rules (`--feature-rule`) refuse or flag
//! values training never saw. Only counts are kept; the operator reads
//! them from `GET /drift` on the admin port.

use aimass_drift::{Baseline, Histograms, Kind, Snapshot, Value};
use aimass_engine::Signature;
use aimass_engine::tensor::{Tensor, TensorData};
use aimass_engine::validation::{check_baseline, model_signature};
use prometheus::IntCounterVec;
use serde::Serialize;
use tracing::{info, warn};

use crate::Error;
use crate::protocol::ProtocolError;

/// What to do with a feature's values outside what training saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Answer 400.
    Reject,
    /// Score, and count in `aimass_input_out_of_contract_total`.
    Flag,
}

impl std::str::FromStr for Rule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "Reject" => Ok(Self::Reject),
            "Flag" => Ok(Self::Flag),
            other => Err(format!("a feature rule is Reject or Flag, not {other:?}")),
        }
    }
}

/// A `--feature-rule NAME=Reject|Flag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureRule {
    /// The feature, as the baseline names it.
    pub feature: String,
    /// What to do.
    pub rule: Rule,
}

impl std::str::FromStr for FeatureRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (feature, rule) = s
            .split_once('=')
            .ok_or_else(|| format!("a feature rule is NAME=Reject or NAME=Flag, not {s:?}"))?;
        Ok(Self {
            feature: feature.trim().to_owned(),
            rule: rule.trim().parse()?,
        })
    }
}

/// Where a column's values are: which tensor, which position in a row.
#[derive(Clone, Copy, Debug)]
struct Place {
    tensor: usize,
    index: usize,
}

/// What `GET /drift` answers: the counts, and the rules that named no
/// feature of the baseline.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The counts.
    #[serde(flatten)]
    pub snapshot: Snapshot,
    /// Feature rules naming no feature of the baseline (ignored).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown_rules: Vec<String>,
}

/// The version's histograms and rules.
pub struct Drift {
    histograms: Histograms,
    features: Vec<Place>,
    scores: Vec<Place>,
    /// Each feature's rule.
    rules: Vec<Option<Rule>>,
    unknown_rules: Vec<String>,
    out_of_contract: IntCounterVec,
}

impl Drift {
    /// The histograms of the baseline at `uri` (which must hash to
    /// `sha256`, when given) for a model of `signature`.
    pub async fn load(
        uri: &str,
        sha256: Option<&str>,
        signature: &Signature,
        rules: &[FeatureRule],
        out_of_contract: IntCounterVec,
    ) -> Result<Self, Error> {
        let bytes = aimass_storage::open(uri, &aimass_storage::Credentials::Environment)?
            .get_bounded(
                aimass_drift::MAX_BASELINE_BYTES,
                aimass_storage::READ_TIMEOUT,
            )
            .await?
            .ok_or_else(|| Error::Baseline(format!("there is no baseline at {uri}")))?;
        if let Some(expected) = sha256 {
            aimass_storage::verify_sha256(&bytes, expected)?;
        }
        let baseline = Baseline::parse(&bytes).map_err(|e| Error::Baseline(e.to_string()))?;
        let drift = Self::new(
            baseline,
            aimass_storage::sha256_hex(&bytes),
            signature,
            rules,
            out_of_contract,
        )?;
        info!(
            baseline = %aimass_storage::redact(uri),
            features = drift.features.len(),
            scores = drift.scores.len(),
            "drift counting on"
        );
        Ok(drift)
    }

    /// The histograms of `baseline` (whose file hashes to `sha256`).
    pub fn new(
        baseline: Baseline,
        sha256: String,
        signature: &Signature,
        rules: &[FeatureRule],
        out_of_contract: IntCounterVec,
    ) -> Result<Self, Error> {
        check_baseline(&baseline, &model_signature(signature)).map_err(Error::Baseline)?;
        let place = |specs: &[aimass_engine::TensorSpec], column: &aimass_drift::Column| Place {
            tensor: specs
                .iter()
                .position(|s| s.name == column.tensor)
                .unwrap_or_default(),
            index: column.index,
        };
        let features: Vec<Place> = baseline
            .features
            .iter()
            .map(|c| place(&signature.inputs, c))
            .collect();
        let scores: Vec<Place> = baseline
            .scores
            .iter()
            .map(|c| place(&signature.outputs, c))
            .collect();
        let feature_rules: Vec<Option<Rule>> = baseline
            .features
            .iter()
            .map(|c| rules.iter().find(|r| r.feature == c.name).map(|r| r.rule))
            .collect();
        let unknown_rules: Vec<String> = rules
            .iter()
            .filter(|r| !baseline.features.iter().any(|c| c.name == r.feature))
            .map(|r| r.feature.chars().take(63).collect())
            .take(64)
            .collect();
        if !unknown_rules.is_empty() {
            warn!(
                ?unknown_rules,
                "feature rules name no feature of the baseline: ignored"
            );
        }
        Ok(Self {
            histograms: Histograms::new(baseline, sha256),
            features,
            scores,
            rules: feature_rules,
            unknown_rules,
            out_of_contract,
        })
    }

    /// Refuses a request with a value a `Reject` rule refuses; counts nothing.
    pub fn admit(&self, inputs: &[Tensor], rows: usize) -> Result<(), ProtocolError> {
        for (i, place) in self.features.iter().enumerate() {
            if self.rules[i] != Some(Rule::Reject) {
                continue;
            }
            for row in 0..rows {
                let Some(value) = value_at(inputs, *place, row, rows) else {
                    continue;
                };
                if let Some(refusal) = self.histograms.refuse(i, row, value) {
                    self.out_of_contract
                        .with_label_values(&[refusal.feature.as_str(), "Reject"])
                        .inc();
                    return Err(ProtocolError::OutOfContract(Box::new(refusal)));
                }
            }
        }
        Ok(())
    }

    /// Counts the features of `rows` rows.
    pub fn count_inputs(&self, inputs: &[Tensor], rows: usize) {
        for (i, place) in self.features.iter().enumerate() {
            let mut flagged = 0;
            for row in 0..rows {
                if let Some(value) = value_at(inputs, *place, row, rows)
                    && self.histograms.count(Kind::Feature, i, value)
                {
                    flagged += 1;
                }
            }
            if flagged > 0 && self.rules[i] == Some(Rule::Flag) {
                let name = self
                    .histograms
                    .columns(Kind::Feature)
                    .nth(i)
                    .map_or("", |c| c.name.as_str());
                self.out_of_contract
                    .with_label_values(&[name, "Flag"])
                    .inc_by(flagged);
            }
        }
        self.histograms
            .add_rows(u64::try_from(rows).unwrap_or(u64::MAX));
    }

    /// Counts the scores of `rows` rows.
    pub fn count_outputs(&self, outputs: &[Tensor], rows: usize) {
        for (i, place) in self.scores.iter().enumerate() {
            for row in 0..rows {
                if let Some(value) = value_at(outputs, *place, row, rows) {
                    self.histograms.count(Kind::Score, i, value);
                }
            }
        }
    }

    /// What `GET /drift` answers.
    pub fn report(&self) -> Report {
        Report {
            snapshot: self.histograms.snapshot(),
            unknown_rules: self.unknown_rules.clone(),
        }
    }
}

/// The value at `place` in row `row` of tensors with `rows` rows.
fn value_at(tensors: &[Tensor], place: Place, row: usize, rows: usize) -> Option<Value<'_>> {
    let tensor = tensors.get(place.tensor)?;
    let width = tensor.data.len().checked_div(rows)?;
    if place.index >= width {
        return None;
    }
    let i = row.checked_mul(width)?.checked_add(place.index)?;
    Some(match &tensor.data {
        TensorData::Bool(v) => Value::Number(f64::from(u8::from(*v.get(i)?))),
        TensorData::Uint8(v) => Value::Number(f64::from(*v.get(i)?)),
        TensorData::Uint16(v) => Value::Number(f64::from(*v.get(i)?)),
        TensorData::Uint32(v) => Value::Number(f64::from(*v.get(i)?)),
        TensorData::Uint64(v) => Value::Number(*v.get(i)? as f64),
        TensorData::Int8(v) => Value::Number(f64::from(*v.get(i)?)),
        TensorData::Int16(v) => Value::Number(f64::from(*v.get(i)?)),
        TensorData::Int32(v) => Value::Number(f64::from(*v.get(i)?)),
        TensorData::Int64(v) => Value::Number(*v.get(i)? as f64),
        TensorData::Fp32(v) => Value::Number(f64::from(*v.get(i)?)),
        TensorData::Fp64(v) => Value::Number(*v.get(i)?),
        TensorData::Bytes(v) => Value::Text(v.get(i)?),
    })
}
