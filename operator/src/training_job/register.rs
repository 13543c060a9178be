//! Recording a finished run's artifact as a version: read `metrics.json`
//! (bounded) from the output location, have the artifact validated by a Job
//! in the tenant's namespace (the operator never reads it), and write the
//! `version.json` record beside it. Idempotent: a record that is already
//! there is returned as it is, so a restarted operator records the same
//! version once.

use std::collections::BTreeMap;

use aimass_crds::scoring::BaselinePlan;
use aimass_crds::v1alpha1::{
    BaselineSource, ModelVersion, Provenance, ProvenanceStep, REQUESTED_BY_ANNOTATION, TrainingJob,
    VersionLineage, VersionPhase,
};
use aimass_storage::Location;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::artifact::{self, Progress};
use crate::context::Context;
use crate::error::Error;
use crate::storage::{METRICS_FILE, MODEL_FILE, RECORD_LIMIT, VERSION_FILE};

use aimass_crds::trainer::METRICS_LIMIT;

/// The longest metric name kept.
const METRIC_NAME_LIMIT: usize = 63;

/// Where recording a run's version stands.
pub enum Registered {
    /// The artifact is being validated; a sentence saying where.
    Validating(String),
    /// The version's record, written now or found.
    Recorded(Box<ModelVersion>),
}

/// Records version `version` from `output`, or returns the record already
/// there; a baseline is computed from `baseline` when the trainer wrote none.
pub async fn record(
    ctx: &Context,
    tj: &TrainingJob,
    output: &Location,
    version: i64,
    storage_secret: Option<&str>,
    baseline: Option<&BaselineSource>,
) -> Result<Registered, Error> {
    let record = output.child(VERSION_FILE);
    if let Some(bytes) = record.get_if_exists(RECORD_LIMIT).await?
        && let Ok(existing) = serde_json::from_slice::<ModelVersion>(&bytes)
    {
        return Ok(Registered::Recorded(Box::new(existing)));
    }
    let model_file = output.child(MODEL_FILE);
    let mut recorded = ModelVersion {
        version,
        phase: VersionPhase::Ready,
        reason: None,
        message: None,
        uri: model_file.uri.clone(),
        sha256: None,
        size_bytes: None,
        signature: None,
        metrics: BTreeMap::new(),
        lineage: Some(lineage(tj)),
        provenance: Some(origin(tj, version)),
        created: Time(jiff::Timestamp::now()),
        baseline: None,
    };
    let job_name = format!("{}-validate", super::job::job_name(tj));
    let outcome = match read_metrics(output).await? {
        Err(message) => Err(message),
        Ok(metrics) => {
            recorded.metrics = metrics;
            if model_file.exists().await? {
                let check = artifact::Check {
                    job_name: job_name.clone(),
                    model: &tj.spec.model_ref.name,
                    uri: &model_file.uri,
                    sha256: None,
                    secret: storage_secret,
                    service_account: tj.spec.run.service_account_name.as_deref(),
                    baseline_plan: baseline.map(baseline_plan),
                };
                match artifact::ensure(ctx, tj, &check).await? {
                    Progress::Running(message) | Progress::Blocked(message) => {
                        return Ok(Registered::Validating(message));
                    }
                    Progress::Done(outcome) => outcome,
                }
            } else {
                Err(format!(
                    "the trainer finished but wrote no {MODEL_FILE} at {}",
                    model_file.uri
                ))
            }
        }
    };
    artifact::record_outcome(&mut recorded, outcome);
    let bytes =
        serde_json::to_vec_pretty(&recorded).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    record.put(bytes).await?;
    artifact::remove(ctx, &tj.namespace().unwrap_or_default(), &job_name).await?;
    Ok(Registered::Recorded(Box::new(recorded)))
}

/// The plan a validation Job computes a baseline from, as JSON.
fn baseline_plan(source: &BaselineSource) -> String {
    let plan = BaselinePlan {
        dataset: source.uri.clone(),
        dataset_format: source.format,
        columns: source.columns.clone(),
        score: source.score.clone(),
        rows: u64::try_from(source.rows).unwrap_or(0),
    };
    serde_json::to_string(&plan).unwrap_or_default()
}

/// The run's `metrics.json` (none is no metrics); the inner error is why the
/// version is rejected, the outer one a storage failure worth retrying.
async fn read_metrics(output: &Location) -> Result<Result<BTreeMap<String, f64>, String>, Error> {
    match output.child(METRICS_FILE).get_if_exists(RECORD_LIMIT).await {
        Ok(None) => Ok(Ok(BTreeMap::new())),
        Ok(Some(bytes)) => Ok(parse_metrics(&bytes)),
        Err(aimass_storage::Error::TooLarge { limit, .. }) => {
            Ok(Err(format!("{METRICS_FILE} is larger than {limit} bytes")))
        }
        Err(e) => Err(e.into()),
    }
}

/// `metrics.json`: a JSON object of numbers (other values are ignored); the
/// first [`METRICS_LIMIT`] names of at most [`METRIC_NAME_LIMIT`] characters.
fn parse_metrics(bytes: &[u8]) -> Result<BTreeMap<String, f64>, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("{METRICS_FILE} is not valid JSON: {e}"))?;
    let object = value.as_object().ok_or_else(|| {
        format!("{METRICS_FILE} must be a JSON object of metric names to numbers")
    })?;
    Ok(object
        .iter()
        .filter(|(k, _)| k.chars().count() <= METRIC_NAME_LIMIT)
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64().filter(|v| v.is_finite())?)))
        .take(METRICS_LIMIT)
        .collect())
}

fn lineage(tj: &TrainingJob) -> VersionLineage {
    VersionLineage {
        training_job: Some(tj.name_any()),
        training_job_uid: tj.uid(),
        image: Some(tj.spec.run.image.clone()),
        dataset_uri: Some(tj.spec.run.dataset.uri.clone()),
        hyperparameters: tj.spec.run.hyperparameters.clone(),
        imported_from: None,
        trigger: tj.spec.trigger.clone(),
    }
}

/// The first step of a trained version's provenance: this namespace, this
/// run, and who asked for it (the admission-checked annotation).
fn origin(tj: &TrainingJob, version: i64) -> Provenance {
    Provenance {
        steps: vec![ProvenanceStep {
            namespace: tj.namespace().unwrap_or_default(),
            model: tj.spec.model_ref.name.clone(),
            version,
            requested_by: tj.annotations().get(REQUESTED_BY_ANNOTATION).cloned(),
            training_job: Some(tj.name_any()),
            evidence: None,
            approvals: Vec::new(),
            time: Time(jiff::Timestamp::now()),
        }],
        declared: false,
    }
}

#[cfg(test)]
mod tests {
    use super::{METRICS_LIMIT, parse_metrics};

    #[test]
    fn metrics_json_is_an_object_of_numbers() {
        let metrics =
            parse_metrics(br#"{"auc": 0.93, "ks": 0.6, "note": "x", "rows": 1000}"#).unwrap();
        assert_eq!(metrics.len(), 3);
        assert_eq!(metrics["auc"], 0.93);
        assert!(
            parse_metrics(b"[1, 2]")
                .unwrap_err()
                .contains("JSON object")
        );
        let many: serde_json::Map<String, serde_json::Value> = (0..1000)
            .map(|i| (format!("m{i:04}"), serde_json::json!(i)))
            .chain([("x".repeat(64), serde_json::json!(1))])
            .collect();
        let kept = parse_metrics(&serde_json::to_vec(&many).unwrap()).unwrap();
        assert_eq!(kept.len(), METRICS_LIMIT);
        assert!(kept.keys().all(|k| k.len() < 64));
        assert!(
            parse_metrics(b"{oops")
                .unwrap_err()
                .contains("not valid JSON")
        );
    }
}
