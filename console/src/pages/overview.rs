//! `/`: what needs attention across the namespaces the user may read —
//! failed runs, degraded or drifting deployments, broken audit trails,
//! promotions waiting for approval.

use aimass_crds::v1alpha1::{Model, ModelDeployment, TrainingJob, TrainingPhase};
use minijinja::context;
use serde::Serialize;

use super::{Page, Place, Viewer, condition};
use crate::error::Error;

/// One thing to look at.
#[derive(Debug, PartialEq, Serialize)]
pub struct Attention {
    /// What kind of problem.
    pub what: &'static str,
    /// Which object, where, and its page.
    #[serde(flatten)]
    pub place: Place,
    /// The reason and message, as the object says.
    pub why: String,
    /// `bad` or `warn`.
    pub severity: &'static str,
}

/// `/`.
pub async fn overview(viewer: Viewer<'_>) -> Result<Page, Error> {
    let namespaces = viewer.cluster.visible(viewer.session).await?;
    let models: Vec<Model> = viewer.list_permitted("models", &namespaces).await?;
    let training: Vec<TrainingJob> = viewer.list_permitted("trainingjobs", &namespaces).await?;
    let deployments: Vec<ModelDeployment> = viewer
        .list_permitted("modeldeployments", &namespaces)
        .await?;
    let counts = context! {models => models.len(), training => training.len(), deployments => deployments.len()};
    let attention = attention(&models, &training, &deployments);
    Ok(Page {
        template: "overview.html",
        context: context! {attention, counts, namespaces => namespaces.clone()},
        nav: "overview",
        scope: namespaces,
    })
}

/// What needs attention, worst first (pure).
pub fn attention(
    models: &[Model],
    training: &[TrainingJob],
    deployments: &[ModelDeployment],
) -> Vec<Attention> {
    let mut out = Vec::new();
    let item = |what, meta: &kube::api::ObjectMeta, path: &str, why: String, severity| Attention {
        what,
        place: Place::of(meta, path),
        why,
        severity,
    };
    for d in deployments {
        let Some(status) = &d.status else { continue };
        for checkpoint in status
            .audit_checkpoints
            .iter()
            .filter(|c| c.broken.is_some())
        {
            let why = format!(
                "{}: {}",
                checkpoint.pod,
                checkpoint.broken.clone().unwrap_or_default()
            );
            out.push(item(
                "Audit trail broken",
                &d.metadata,
                "deployments",
                why,
                "bad",
            ));
        }
        if let Some(c) = condition(&status.conditions, "Degraded").filter(|c| c.status == "True") {
            out.push(item(
                "Deployment degraded",
                &d.metadata,
                "deployments",
                format!("{}: {}", c.reason, c.message),
                "bad",
            ));
        }
        if let Some(c) = condition(&status.conditions, "Drift").filter(|c| c.status == "True") {
            out.push(item(
                "Drift",
                &d.metadata,
                "deployments",
                format!("{}: {}", c.reason, c.message),
                "warn",
            ));
        }
    }
    for t in training {
        let Some(status) = &t.status else { continue };
        if status.phase == TrainingPhase::Failed {
            let why = format!(
                "{}: {}",
                status.reason.as_deref().unwrap_or("Failed"),
                status.message.as_deref().unwrap_or_default()
            );
            out.push(item(
                "Training failed",
                &t.metadata,
                "trainingjobs",
                why,
                "bad",
            ));
        }
    }
    for m in models {
        let Some(status) = &m.status else { continue };
        if let Some(c) = condition(&status.conditions, "Promoted").filter(|c| {
            ["AwaitingApproval", "SameIdentity", "RequesterUnknown"].contains(&c.reason.as_str())
        }) {
            out.push(item(
                "Approval waiting",
                &m.metadata,
                "models",
                format!("{}: {}", c.reason, c.message),
                "warn",
            ));
        }
        if let Some(c) = condition(&status.conditions, "Ready").filter(|c| c.status == "False") {
            out.push(item(
                "Model not ready",
                &m.metadata,
                "models",
                format!("{}: {}", c.reason, c.message),
                "bad",
            ));
        }
    }
    out.sort_by_key(|a| a.severity != "bad");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_degradation_drift_and_waiting_approvals_are_listed_worst_first() {
        let models: Vec<Model> = serde_yaml_ng::from_str(
            r#"
- apiVersion: aimass.io/v1alpha1
  kind: Model
  metadata: {name: fraud, namespace: risk-prod}
  spec: {source: {uri: "file:///m.onnx"}}
  status:
    conditions:
    - {type: Promoted, status: "False", reason: AwaitingApproval, message: "approve sha256 ab12", lastTransitionTime: "2026-01-01T00:00:00Z"}
- apiVersion: aimass.io/v1alpha1
  kind: Model
  metadata: {name: fine, namespace: risk-prod}
  spec: {source: {uri: "file:///m.onnx"}}
  status:
    conditions:
    - {type: Ready, status: "True", reason: AsExpected, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}
"#,
        )
        .expect("models");
        let training: Vec<TrainingJob> = serde_yaml_ng::from_str(
            r#"
- apiVersion: aimass.io/v1alpha1
  kind: TrainingJob
  metadata: {name: fraud-1, namespace: risk-test}
  spec: {modelRef: {name: fraud}, image: trainer, dataset: {uri: "s3://b/d.csv"}}
  status: {phase: Failed, reason: DatasetUnavailable, message: "s3://b/d.csv: not found"}
"#,
        )
        .expect("runs");
        let deployments: Vec<ModelDeployment> = serde_yaml_ng::from_str(
            r#"
- apiVersion: aimass.io/v1alpha1
  kind: ModelDeployment
  metadata: {name: scoring, namespace: risk-prod}
  spec: {model: {name: fraud}}
  status:
    conditions:
    - {type: Drift, status: "True", reason: DriftDetected, message: "PSI 0.41; amount", lastTransitionTime: "2026-01-01T00:00:00Z"}
"#,
        )
        .expect("deployments");
        let listed: Vec<(&str, String, &str)> = attention(&models, &training, &deployments)
            .into_iter()
            .map(|a| (a.what, a.place.name, a.severity))
            .collect();
        assert_eq!(
            listed,
            [
                ("Training failed", "fraud-1".to_owned(), "bad"),
                ("Drift", "scoring".to_owned(), "warn"),
                ("Approval waiting", "fraud".to_owned(), "warn"),
            ]
        );
    }
}
