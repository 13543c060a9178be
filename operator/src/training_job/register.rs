//! Recording a finished run's artifact as a version: read `model.onnx` and
//! `metrics.json` from the output location, validate the artifact, and
//! write the `version.json` record beside it. Idempotent: a record that is
//! already there is returned as it is, so a restarted operator records the
//! same version once.

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{ModelVersion, TrainingJob, VersionLineage, VersionPhase};
use aimass_inference_server::source::Location;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::artifact;
use crate::error::Error;
use crate::storage::{METRICS_FILE, MODEL_FILE, VERSION_FILE};

/// Records version `version` from `output`, or returns the record already there.
pub async fn record(
    tj: &TrainingJob,
    output: &Location,
    version: i64,
) -> Result<ModelVersion, Error> {
    let record = output.child(VERSION_FILE);
    if let Some(bytes) = record.get_if_exists().await?
        && let Ok(existing) = serde_json::from_slice::<ModelVersion>(&bytes)
    {
        return Ok(existing);
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
        created: Time(jiff::Timestamp::now()),
    };
    match check(output, &model_file).await? {
        Ok((metrics, artifact)) => {
            recorded.metrics = metrics;
            recorded.sha256 = Some(artifact.sha256);
            recorded.size_bytes = Some(artifact.size_bytes);
            recorded.signature = Some(artifact.signature);
        }
        Err((metrics, message)) => {
            recorded.metrics = metrics;
            recorded.phase = VersionPhase::Rejected;
            recorded.reason = Some(reasons::ARTIFACT_INVALID.into());
            recorded.message = Some(message);
        }
    }
    let bytes =
        serde_json::to_vec_pretty(&recorded).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    record.put(bytes).await?;
    Ok(recorded)
}

type Checked = Result<(BTreeMap<String, f64>, artifact::Artifact), (BTreeMap<String, f64>, String)>;

/// Reads and validates the run's output; the inner error is why the version
/// is rejected, the outer one a storage failure worth retrying.
async fn check(output: &Location, model_file: &Location) -> Result<Checked, Error> {
    let metrics = match output.child(METRICS_FILE).get_if_exists().await? {
        None => BTreeMap::new(),
        Some(bytes) => match parse_metrics(&bytes) {
            Ok(metrics) => metrics,
            Err(message) => return Ok(Err((BTreeMap::new(), message))),
        },
    };
    let Some(bytes) = model_file.get_if_exists().await? else {
        let message = format!(
            "the trainer finished but wrote no {MODEL_FILE} at {}",
            model_file.uri
        );
        return Ok(Err((metrics, message)));
    };
    Ok(match artifact::validate(bytes, None).await {
        Ok(artifact) => Ok((metrics, artifact)),
        Err(message) => Err((metrics, message)),
    })
}

/// `metrics.json`: a JSON object of numbers (other values are ignored).
fn parse_metrics(bytes: &[u8]) -> Result<BTreeMap<String, f64>, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("{METRICS_FILE} is not valid JSON: {e}"))?;
    let object = value.as_object().ok_or_else(|| {
        format!("{METRICS_FILE} must be a JSON object of metric names to numbers")
    })?;
    Ok(object
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64().filter(|v| v.is_finite())?)))
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
    }
}

#[cfg(test)]
mod tests {
    use super::parse_metrics;

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
        assert!(
            parse_metrics(b"{oops")
                .unwrap_err()
                .contains("not valid JSON")
        );
    }
}
