//! Training runs of a Model with `source.training`: one on creation, then
//! one per cron tick, never two at once. Runs are TrainingJobs owned by the
//! Model and named after their tick, so a restarted operator creates each
//! at most once.

use std::time::Duration;

use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{
    Model, ModelReference, ModelStatus, REQUESTED_BY_ANNOTATION, TrainingJob, TrainingJobSpec,
    TrainingPhase,
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
    if model.spec.source.training.is_none() {
        status.active_training_job = None;
        status.conditions.retain(|c| c.type_ != types::TRAINING);
        return Ok(None);
    }
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
    let mut plan = plan(model, &runs, status, now)?;
    for tick in plan.start.clone() {
        start(&jobs, &build(model, tick), notices).await?;
    }
    if plan.active.is_none()
        && let Some(tj) = super::retrain::on_drift(ctx, model, status, now).await?
    {
        plan.active = Some(start(&jobs, &tj, notices).await?);
        status.last_drift_retrain_time = Some(now.clone());
    }
    notices.extend(plan.skipped);
    status.last_scheduled_time = plan.last_scheduled_time;
    status.next_scheduled_time = plan.next_scheduled_time;
    conditions::set(
        &mut status.conditions,
        training_condition(plan.active.as_deref()),
        model.metadata.generation,
        now,
    );
    status.active_training_job = plan.active;
    Ok(plan.next_tick)
}

/// What to do about a Model's training runs.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// Ticks to start a run for.
    start: Vec<jiff::Timestamp>,
    /// The run in progress, after those start.
    active: Option<String>,
    /// A tick skipped because a run is still going.
    skipped: Option<Notice>,
    last_scheduled_time: Option<Time>,
    next_scheduled_time: Option<Time>,
    /// How long until the next tick.
    next_tick: Option<Duration>,
}

/// The runs due for `model`, given its existing `runs`, at `now`: the first
/// one when it has never had a version or a run, then one per cron tick,
/// never two at once. Pure.
fn plan(
    model: &Model,
    runs: &[TrainingJob],
    status: &ModelStatus,
    now: &Time,
) -> Result<Plan, Error> {
    let training = model.spec.source.training.clone().unwrap_or_default();
    let mut plan = Plan {
        active: runs
            .iter()
            .find(|tj| !is_finished(tj))
            .map(ResourceExt::name_any),
        last_scheduled_time: status.last_scheduled_time.clone(),
        ..Plan::default()
    };
    let created = model
        .metadata
        .creation_timestamp
        .clone()
        .map_or(now.0, |t| t.0);
    if runs.is_empty() && status.versions.is_empty() && status.last_scheduled_time.is_none() {
        plan.start.push(created);
        plan.active = Some(build(model, created).name_any());
        plan.last_scheduled_time = Some(now.clone());
    }
    let Some(cron) = training.schedule.as_deref() else {
        return Ok(plan);
    };
    let cron = validation::parse_schedule(cron).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let since = plan.last_scheduled_time.clone().map_or(created, |t| t.0);
    let due = schedule::due(&cron, since, now.0);
    if let Some(tick) = due.tick.filter(|_| !training.suspend) {
        plan.last_scheduled_time = Some(Time(tick));
        match &plan.active {
            Some(running) => {
                plan.skipped = Some(Notice {
                    severity: Severity::Normal,
                    reason: crate::events::reasons::SCHEDULE_SKIPPED.into(),
                    note: format!(
                        "the {tick} tick was skipped: training run {running} is still going"
                    ),
                })
            }
            None => {
                plan.start.push(tick);
                plan.active = Some(build(model, tick).name_any());
            }
        }
    }
    if !training.suspend {
        plan.next_scheduled_time = due.next.map(Time);
        plan.next_tick = due.wait(now.0);
    }
    Ok(plan)
}

/// The Training condition: true while a run is in progress.
fn training_condition(active: Option<&str>) -> Wanted<'static> {
    let (status, reason, message) = match active {
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
    Wanted {
        type_: types::TRAINING,
        status,
        reason,
        message,
    }
}

fn is_finished(tj: &TrainingJob) -> bool {
    tj.status
        .as_ref()
        .is_some_and(|s| matches!(s.phase, TrainingPhase::Succeeded | TrainingPhase::Failed))
}

/// Creates the run `tj` (idempotent: its name is derived from its tick or
/// trigger time).
async fn start(
    jobs: &Api<TrainingJob>,
    tj: &TrainingJob,
    notices: &mut Vec<Notice>,
) -> Result<String, Error> {
    let name = tj.name_any();
    match jobs.create(&PostParams::default(), tj).await {
        Ok(_) => notices.push(Notice {
            severity: Severity::Normal,
            reason: crate::events::reasons::TRAINING_STARTED.into(),
            note: match &tj.spec.trigger {
                Some(trigger) => format!(
                    "created TrainingJob {name}: {} of ModelDeployment {} serving version {}",
                    trigger.reason,
                    trigger.deployment.as_deref().unwrap_or_default(),
                    trigger.version.unwrap_or_default()
                ),
                None => format!("created TrainingJob {name}"),
            },
        }),
        Err(e) if is_conflict(&e) => {}
        Err(e) => return Err(Error::kube(format!("creating TrainingJob {name}"))(e)),
    }
    Ok(name)
}

/// The TrainingJob a Model's template describes, for the tick at `tick`.
pub fn build(model: &Model, tick: jiff::Timestamp) -> TrainingJob {
    let model_name = model.name_any();
    let mut tj = run_of(
        model,
        labels::fit(&format!("{model_name}-{}", tick.as_second()), 63),
    );
    tj.labels_mut()
        .insert(labels::SCHEDULED_AT.into(), tick.as_second().to_string());
    tj
}

/// A run `name` of the Model's template, owned by the Model.
pub fn run_of(model: &Model, name: String) -> TrainingJob {
    let model_name = model.name_any();
    let labels = labels::common("aimass-trainer", &model_name);
    let template = model
        .spec
        .source
        .training
        .clone()
        .unwrap_or_default()
        .template;
    let mut metadata = labels::owned_meta(model, name, labels);
    // Who asked for the Model's runs asked for this one.
    if let Some(requester) = model.annotations().get(REQUESTED_BY_ANNOTATION) {
        metadata.annotations = Some(
            [(REQUESTED_BY_ANNOTATION.to_owned(), requester.clone())]
                .into_iter()
                .collect(),
        );
    }
    TrainingJob {
        metadata,
        spec: TrainingJobSpec {
            model_ref: ModelReference { name: model_name },
            run: template,
            trigger: None,
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

    fn model(schedule: Option<&str>, suspend: bool) -> Model {
        let schedule = schedule.map_or(String::new(), |s| format!("schedule: {s:?}, "));
        serde_yaml_ng::from_str(&format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: fraud, namespace: risk, creationTimestamp: "2026-01-01T00:00:00Z"}}
spec:
  storage: {{prefix: "file:///models"}}
  source:
    training: {{{schedule}suspend: {suspend}, template: {{image: trainer, dataset: {{uri: "file:///d.csv"}}}}}}
"#
        ))
        .expect("a valid Model")
    }

    fn at(time: &str) -> Time {
        Time(time.parse().expect("a timestamp"))
    }

    fn run(name: &str, phase: Option<TrainingPhase>) -> TrainingJob {
        let mut tj: TrainingJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "aimass.io/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name, "namespace": "risk"},
            "spec": {"modelRef": {"name": "fraud"}, "image": "trainer", "dataset": {"uri": "file:///d.csv"}},
        }))
        .expect("a valid TrainingJob");
        tj.status = phase.map(|phase| aimass_crds::v1alpha1::TrainingJobStatus {
            phase,
            ..Default::default()
        });
        tj
    }

    #[test]
    fn plan_table() {
        let now = "2026-01-04T02:30:00Z";
        let first = "2026-01-01T00:00:00Z".parse::<jiff::Timestamp>().unwrap();
        let tick = "2026-01-04T02:00:00Z".parse::<jiff::Timestamp>().unwrap();
        let scheduled = |time: &str| ModelStatus {
            last_scheduled_time: Some(at(time)),
            ..ModelStatus::default()
        };
        let daily = Some("0 2 * * *");
        // (case, schedule, suspend, runs, status, starts, active, skipped, next tick)
        #[allow(clippy::type_complexity)]
        let cases: [(
            &str,
            Option<&str>,
            bool,
            Vec<TrainingJob>,
            ModelStatus,
            Vec<jiff::Timestamp>,
            Option<String>,
            bool,
            Option<&str>,
        ); 6] = [
            (
                "a new Model trains once",
                None,
                false,
                vec![],
                ModelStatus::default(),
                vec![first],
                Some(format!("fraud-{}", first.as_second())),
                false,
                None,
            ),
            (
                "a due tick starts a run",
                daily,
                false,
                vec![run("fraud-1", Some(TrainingPhase::Succeeded))],
                scheduled("2026-01-03T02:00:00Z"),
                vec![tick],
                Some(format!("fraud-{}", tick.as_second())),
                false,
                Some("2026-01-05T02:00:00Z"),
            ),
            (
                "a due tick waits for the run in progress",
                daily,
                false,
                vec![run("fraud-1", None)],
                scheduled("2026-01-03T02:00:00Z"),
                vec![],
                Some("fraud-1".into()),
                true,
                Some("2026-01-05T02:00:00Z"),
            ),
            (
                "nothing due",
                daily,
                false,
                vec![run("fraud-1", Some(TrainingPhase::Failed))],
                scheduled("2026-01-04T02:00:00Z"),
                vec![],
                None,
                false,
                Some("2026-01-05T02:00:00Z"),
            ),
            (
                "suspended: no run and no next tick",
                daily,
                true,
                vec![run("fraud-1", Some(TrainingPhase::Succeeded))],
                scheduled("2026-01-03T02:00:00Z"),
                vec![],
                None,
                false,
                None,
            ),
            (
                "a Model with versions does not train on creation",
                None,
                false,
                vec![],
                serde_json::from_value(serde_json::json!({"versions": [{
                    "version": 1, "phase": "Ready", "uri": "file:///models/1",
                    "created": "2026-01-01T00:00:00Z"
                }]}))
                .expect("a valid status"),
                vec![],
                None,
                false,
                None,
            ),
        ];
        for (case, schedule, suspend, runs, status, starts, active, skipped, next) in cases {
            let plan = plan(&model(schedule, suspend), &runs, &status, &at(now)).expect(case);
            assert_eq!(plan.start, starts, "{case}");
            assert_eq!(plan.active, active, "{case}");
            assert_eq!(plan.skipped.is_some(), skipped, "{case}");
            assert_eq!(plan.next_scheduled_time, next.map(at), "{case}");
            assert_eq!(
                plan.next_tick.is_some(),
                next.is_some(),
                "{case}: {:?}",
                plan.next_tick
            );
        }
    }

    #[test]
    fn a_skipped_tick_names_the_run_in_its_way() {
        let status = ModelStatus {
            last_scheduled_time: Some(at("2026-01-03T02:00:00Z")),
            ..ModelStatus::default()
        };
        let plan = plan(
            &model(Some("0 2 * * *"), false),
            &[run("fraud-1", None)],
            &status,
            &at("2026-01-04T02:30:00Z"),
        )
        .unwrap();
        let skipped = plan.skipped.expect("a notice");
        assert_eq!(skipped.reason, crate::events::reasons::SCHEDULE_SKIPPED);
        assert!(
            skipped
                .note
                .ends_with("training run fraud-1 is still going"),
            "{}",
            skipped.note
        );
        // The tick counts as scheduled: it is not started later.
        assert_eq!(plan.last_scheduled_time, Some(at("2026-01-04T02:00:00Z")));
        assert_eq!(
            plan.next_tick,
            Some(Duration::from_secs(23 * 3600 + 1800 + 1))
        );
    }
}
