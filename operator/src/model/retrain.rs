//! Retraining on drift: a Model whose `source.training.retrainOn` holds
//! `Drift` starts a run when a ModelDeployment serving it sets its `Drift`
//! condition; at most one such run per `minRetrainIntervalSeconds`, none
//! while the schedule is suspended, and never beside another run (the
//! caller only asks when none is going). The run records the trigger (the
//! deployment, the version, the PSI and the top features), which its
//! version's lineage keeps.

use aimass_crds::v1alpha1::{
    Model, ModelDeployment, ModelStatus, RetrainOn, RunTrigger, TrainingJob,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt};

use crate::context::Context;
use crate::error::Error;
use crate::labels;

/// The reason a drift-started run records.
pub const DRIFT: &str = "Drift";

/// The run drift calls for now, if any.
pub async fn on_drift(
    ctx: &Context,
    model: &Model,
    status: &ModelStatus,
    now: &Time,
) -> Result<Option<TrainingJob>, Error> {
    if !wanted(model, status, now) {
        return Ok(None);
    }
    let deployments: Api<ModelDeployment> =
        Api::namespaced(ctx.client.clone(), &model.namespace().unwrap_or_default());
    let deployments = deployments
        .list(&Default::default())
        .await
        .map_err(Error::kube("listing ModelDeployments"))?
        .items;
    Ok(plan(model, status, &deployments, now))
}

/// Whether the Model retrains on drift and its interval has passed.
fn wanted(model: &Model, status: &ModelStatus, now: &Time) -> bool {
    let Some(training) = &model.spec.source.training else {
        return false;
    };
    let passed = status.last_drift_retrain_time.as_ref().is_none_or(|last| {
        now.0.as_second() - last.0.as_second() >= training.min_retrain_interval_seconds
    });
    training.retrain_on.contains(&RetrainOn::Drift) && !training.suspend && passed
}

/// The run to start for the drifting deployment of `model` with the
/// highest PSI among `deployments`, when drift is wanted and due. Pure.
pub fn plan(
    model: &Model,
    status: &ModelStatus,
    deployments: &[ModelDeployment],
    now: &Time,
) -> Option<TrainingJob> {
    if !wanted(model, status, now) {
        return None;
    }
    let name = model.name_any();
    let (md, drift) = deployments
        .iter()
        .filter(|md| {
            md.spec.model.as_ref().is_some_and(|m| m.name == name)
                && md.metadata.namespace == model.metadata.namespace
        })
        .filter_map(|md| Some((md, md.status.as_ref()?.drift.as_ref()?)))
        .filter(|(_, drift)| drift.detected)
        .max_by(|a, b| {
            a.1.psi
                .unwrap_or(0.0)
                .total_cmp(&b.1.psi.unwrap_or(0.0))
                .then_with(|| b.0.name_any().cmp(&a.0.name_any()))
        })?;
    let mut tj = super::training::run_of(
        model,
        labels::fit(&format!("{name}-drift-{}", now.0.as_second()), 63),
    );
    tj.spec.trigger = Some(RunTrigger {
        reason: DRIFT.into(),
        deployment: Some(md.name_any()),
        version: drift.version,
        psi: drift.psi,
        features: drift
            .features
            .iter()
            .take(crate::monitor::drift::NAMED_FEATURES)
            .map(|f| f.name.clone())
            .collect(),
    });
    Some(tj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimass_crds::v1alpha1::{ColumnStability, DriftStatus, ModelDeploymentStatus};

    fn model(retrain: &str) -> Model {
        serde_yaml_ng::from_str(&format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: fraud, namespace: risk, uid: u-1}}
spec:
  storage: {{prefix: "file:///models"}}
  source:
    training:
      {retrain}
      template: {{image: trainer, dataset: {{uri: "file:///d.csv"}}}}
"#
        ))
        .unwrap()
    }

    fn deployment(name: &str, model: &str, psi: f64, detected: bool) -> ModelDeployment {
        let mut md = crate::fixtures::scorer("");
        md.metadata.name = Some(name.into());
        md.metadata.namespace = Some("risk".into());
        md.spec.model = Some(aimass_crds::v1alpha1::ModelSelector {
            name: model.into(),
            ..Default::default()
        });
        md.status = Some(ModelDeploymentStatus {
            drift: Some(DriftStatus {
                version: Some(4),
                detected,
                psi: Some(psi),
                features: ["amount", "hour", "mcc", "distance"]
                    .iter()
                    .map(|n| ColumnStability {
                        name: (*n).into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        });
        md
    }

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn drift_starts_one_run_per_interval_naming_its_cause() {
        let on = model("retrainOn: [Drift]\n      minRetrainIntervalSeconds: 3600");
        let fleet = [
            deployment("calm", "fraud", 0.05, false),
            deployment("eu", "fraud", 0.3, true),
            deployment("us", "fraud", 0.6, true),
            deployment("other-model", "churn", 2.0, true),
        ];
        let never = ModelStatus::default();
        let tj = plan(&on, &never, &fleet, &at(10_000)).expect("drift starts a run");
        assert_eq!(tj.name_any(), "fraud-drift-10000");
        assert_eq!(tj.spec.model_ref.name, "fraud");
        assert_eq!(tj.owner_references()[0].uid, "u-1");
        let trigger = tj.spec.trigger.unwrap();
        assert_eq!(trigger.reason, "Drift");
        assert_eq!(trigger.deployment.as_deref(), Some("us"), "the highest PSI");
        assert_eq!((trigger.version, trigger.psi), (Some(4), Some(0.6)));
        assert_eq!(trigger.features, ["amount", "hour", "mcc"]);
        // Within the interval: none; after it: one again.
        let recent = ModelStatus {
            last_drift_retrain_time: Some(at(9_000)),
            ..ModelStatus::default()
        };
        assert!(plan(&on, &recent, &fleet, &at(10_000)).is_none());
        assert!(plan(&on, &recent, &fleet, &at(12_600)).is_some());
        // No drift detected, not asked for, or suspended: none.
        assert!(plan(&on, &never, &fleet[..1], &at(10_000)).is_none());
        assert!(plan(&model(""), &never, &fleet, &at(10_000)).is_none());
        let suspended = model("retrainOn: [Drift]\n      suspend: true");
        assert!(plan(&suspended, &never, &fleet, &at(10_000)).is_none());
    }
}
