//! Training runs of a Model with `source.training`: one on creation, then
//! one per cron tick, never two at once. Runs are TrainingJobs owned by the
//! Model and named after their tick, so a restarted operator creates each
//! at most once.

use std::time::Duration;

use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{
    Model, ModelReference, ModelStatus, TrainingJob, TrainingJobSpec, TrainingPhase,
};
use aimass_crds::validation;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PostParams;
use kube::{Api, ResourceExt};

use super::schedule;
use crate::conditions::{self, Wanted};
use crate::context::Context;
use crate::error::{Error, is_conflict};
use crate::events::Notice;
use crate::events::Severity;
use crate::labels;

/// Starts the runs that are due and reports the Training condition; returns
/// when the next tick is.
pub async fn reconcile(
    ctx: &Context,
    model: &Model,
    status: &mut ModelStatus,
    now: &Time,
    notices: &mut Vec<Notice>,
) -> Result<Option<Duration>, Error> {
    let Some(training) = &model.spec.source.training else {
        status.active_training_job = None;
        status.conditions.retain(|c| c.type_ != types::TRAINING);
        return Ok(None);
    };
    let namespace = model.namespace().unwrap_or_default();
    let jobs: Api<TrainingJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let runs: Vec<TrainingJob> = jobs
        .list(&Default::default())
        .await
        .map_err(Error::kube("listing TrainingJobs"))?
        .items
        .into_iter()
        .filter(|tj| tj.spec.model_ref.name == model.name_any())
        .collect();
    let mut active = runs
        .iter()
        .find(|tj| !is_finished(tj))
        .map(ResourceExt::name_any);

    // The first run, when the Model has never had a version or a run.
    let created = model
        .metadata
        .creation_timestamp
        .clone()
        .map_or(now.0, |t| t.0);
    if runs.is_empty() && status.versions.is_empty() && status.last_scheduled_time.is_none() {
        active = Some(start(&jobs, model, created, notices).await?);
        status.last_scheduled_time = Some(now.clone());
    }

    // Scheduled runs.
    let mut next_tick = None;
    status.next_scheduled_time = None;
    if let Some(cron) = training.schedule.as_deref() {
        let cron =
            validation::parse_schedule(cron).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        let since = status.last_scheduled_time.clone().map_or(created, |t| t.0);
        let due = schedule::due(&cron, since, now.0);
        if let Some(tick) = due.tick.filter(|_| !training.suspend) {
            status.last_scheduled_time = Some(Time(tick));
            match &active {
                Some(running) => notices.push(Notice {
                    severity: Severity::Normal,
                    reason: crate::events::reasons::SCHEDULE_SKIPPED.into(),
                    note: format!(
                        "the {tick} tick was skipped: training run {running} is still going"
                    ),
                }),
                None => active = Some(start(&jobs, model, tick, notices).await?),
            }
        }
        if !training.suspend {
            status.next_scheduled_time = due.next.map(Time);
            next_tick = due.next.map(|n| {
                let wait = n.as_second() - now.0.as_second();
                Duration::from_secs(u64::try_from(wait).unwrap_or(0) + 1)
            });
        }
    }

    let (running, reason, message) = match &active {
        Some(name) => (
            true,
            reasons::TRAINING_IN_PROGRESS,
            format!("training run {name} is in progress"),
        ),
        None => (
            false,
            reasons::IDLE,
            "no training run is in progress".to_owned(),
        ),
    };
    status.active_training_job = active;
    conditions::set(
        &mut status.conditions,
        Wanted {
            type_: types::TRAINING,
            status: running,
            reason,
            message,
        },
        model.metadata.generation,
        now,
    );
    Ok(next_tick)
}

fn is_finished(tj: &TrainingJob) -> bool {
    tj.status
        .as_ref()
        .is_some_and(|s| matches!(s.phase, TrainingPhase::Succeeded | TrainingPhase::Failed))
}

/// Creates the run for `tick` (idempotent: its name is derived from it).
async fn start(
    jobs: &Api<TrainingJob>,
    model: &Model,
    tick: jiff::Timestamp,
    notices: &mut Vec<Notice>,
) -> Result<String, Error> {
    let tj = build(model, tick);
    let name = tj.name_any();
    match jobs.create(&PostParams::default(), &tj).await {
        Ok(_) => notices.push(Notice {
            severity: Severity::Normal,
            reason: crate::events::reasons::TRAINING_STARTED.into(),
            note: format!("created TrainingJob {name}"),
        }),
        Err(e) if is_conflict(&e) => {}
        Err(e) => return Err(Error::kube(format!("creating TrainingJob {name}"))(e)),
    }
    Ok(name)
}

/// The TrainingJob a Model's template describes, for the tick at `tick`.
pub fn build(model: &Model, tick: jiff::Timestamp) -> TrainingJob {
    let model_name = model.name_any();
    let name = labels::fit(&format!("{model_name}-{}", tick.as_second()), 63);
    let mut labels = labels::common("aimass-trainer", &model_name);
    labels.insert(labels::SCHEDULED_AT.into(), tick.as_second().to_string());
    let template = model
        .spec
        .source
        .training
        .clone()
        .unwrap_or_default()
        .template;
    TrainingJob {
        metadata: labels::owned_meta(model, name, labels),
        spec: TrainingJobSpec {
            model_ref: ModelReference { name: model_name },
            storage: None,
            run: template,
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scheduled_run_is_named_after_its_tick_and_owned_by_the_model() {
        let mut model: Model = serde_yaml_ng::from_str(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {name: fraud, namespace: risk, uid: u-1}
spec:
  storage: {prefix: "file:///models"}
  source:
    training:
      schedule: "0 2 * * *"
      template: {image: trainer, dataset: {uri: "file:///d.csv"}, hyperparameters: {depth: "3"}}
"#,
        )
        .unwrap();
        model.metadata.uid = Some("u-1".into());
        let tick: jiff::Timestamp = "2026-01-04T02:00:00Z".parse().unwrap();
        let tj = build(&model, tick);
        assert_eq!(tj.name_any(), format!("fraud-{}", tick.as_second()));
        assert_eq!(tj.spec.model_ref.name, "fraud");
        assert_eq!(tj.spec.run.hyperparameters["depth"], "3");
        assert_eq!(tj.owner_references()[0].uid, "u-1");
        assert_eq!(
            tj.labels()[labels::SCHEDULED_AT],
            tick.as_second().to_string()
        );
    }
}
