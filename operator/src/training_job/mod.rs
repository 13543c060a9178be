//! The TrainingJob controller: runs the trainer as a `batch/v1` Job, follows
//! its progress, and on success validates the artifact and records it as a
//! version of the Model in storage (`version.json`), where the Model
//! controller picks it up. Terminal phases are final: nothing is re-created
//! once a run has succeeded or failed.

pub mod follower;
pub mod job;
mod outcome;
pub mod progress;
mod register;
mod run;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{
    ArtifactStorage, Model, TrainingJob, TrainingJobStatus, TrainingPhase,
};
use aimass_crds::validation;
use aimass_storage::Location;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use tracing::instrument;

use crate::conditions::{self, Wanted};
use crate::context::Context;
use crate::error::{Error, is_conflict};
use crate::events::Severity;
use crate::failure::{Failure, RunStatus};
use crate::status::Writer;
use crate::storage;
use outcome::Observed;
use run::{Finished, Run};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "trainingjob";
/// How often a run in progress is looked at even without a change.
const POLL: Duration = Duration::from_secs(5);
/// The controller's status writer while the trainer runs: the follower
/// writes the figures meanwhile.
const STATUS: Writer = Writer {
    manager: "aimass-operator/trainingjob",
    others: follower::FIELDS,
};
/// The controller's status writer once the run ended or its output was
/// read: the final figures are the controller's.
const FINAL_STATUS: Writer = Writer {
    manager: "aimass-operator/trainingjob",
    others: &[],
};

/// Reconciles one TrainingJob: finds its Model and registry, reserves the
/// version number, runs the trainer's Job, and follows it to its end
/// (`Run`'s steps, in order).
#[instrument(skip_all, fields(name = %tj.name_any(), namespace = tj.namespace()))]
pub async fn reconcile(tj: Arc<TrainingJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile.start(CONTROLLER);
    let status = tj.status.clone().unwrap_or_default();
    if is_terminal(status.phase) {
        ctx.followers.stop(&tj.uid().unwrap_or_default());
        return Ok(Action::await_change());
    }
    let mut run = Run {
        ctx: &ctx,
        tj: &tj,
        jobs: Api::namespaced(ctx.client.clone(), &tj.namespace().unwrap_or_default()),
        next: status.clone(),
        old: status,
        now: Time(jiff::Timestamp::now()),
    };
    let ControlFlow::Continue(model) = run.model().await? else {
        return run.done(Action::requeue(Duration::from_secs(10))).await;
    };
    let (storage, registry) = match run.registry(&model).await? {
        ControlFlow::Continue(opened) => opened,
        ControlFlow::Break(()) => return Ok(Action::await_change()),
    };
    // The data set's Secret, before a number is reserved and the Job made:
    // a pod started without it would wait without saying why.
    if run.old.job_name.is_none()
        && let Some(secret) = &tj.spec.run.dataset.secret_ref
    {
        let namespace = tj.namespace().unwrap_or_default();
        storage::secret_exists(&ctx.client, &namespace, &secret.name).await?;
    }
    let Some(version) = run.version(&model, &registry).await? else {
        // The Model has not been reconciled yet (it may be recovering its
        // history from storage); numbers are handed out after that.
        return Ok(Action::requeue(Duration::from_secs(2)));
    };
    let output = storage::version_dir(&registry, version);
    run.next.model_version = Some(version);
    run.next.output_uri = Some(output.uri.clone());
    let storage_secret = storage.secret_ref.as_ref().map(|s| s.name.as_str());
    let Some(job) = run.trainer(version, &output.uri, storage_secret).await? else {
        return Ok(Action::await_change());
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &tj.namespace().unwrap_or_default());
    let job_name = job::job_name(&tj);
    let listed = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job_name}")))
        .await
        .map_err(Error::kube("listing the trainer pods"))?;
    match outcome::observe(&job, &listed.items, &run.now) {
        Observed::Pending { message } => {
            run.next.phase = TrainingPhase::Pending;
            run.set_running(false, reasons::PENDING, message);
            run.done(Action::requeue(POLL)).await
        }
        Observed::Running { started, pod } => run.running(&pods, started, pod, version).await,
        Observed::Failed(failure) => run.failed(&pods, failure).await,
        Observed::Completed {
            started,
            completed,
            pod,
        } => {
            let finished = Finished {
                output: &output,
                version,
                storage_secret,
                started,
                completed,
                baseline: model.spec.baseline.as_ref(),
            };
            run.completed(&pods, pod, finished).await
        }
    }
}

/// Requeues after a failed reconcile: invalid input waits for a change (its
/// condition explains it); everything else retries.
pub fn error_policy(tj: Arc<TrainingJob>, error: &Error, ctx: Arc<Context>) -> Action {
    let conditions = tj.status.as_ref().map(|s| s.conditions.clone());
    let conditions = conditions.unwrap_or_default();
    crate::failure::policy(tj, &conditions, error, ctx, CONTROLLER, report_failure)
}

/// Says in status (Running=False, and in an Event when it is news) that
/// reconciling `tj` failed.
async fn report_failure(ctx: Arc<Context>, tj: Arc<TrainingJob>, failure: Failure) {
    let old = tj.status.clone().unwrap_or_default();
    if is_terminal(old.phase) {
        return;
    }
    let writer = if output_read(&old) {
        FINAL_STATUS
    } else {
        STATUS
    };
    let run = RunStatus {
        old,
        conditions: |s| &mut s.conditions,
        type_: types::RUNNING,
        writer,
        action: "Train",
    };
    crate::failure::say(&ctx, tj.as_ref(), failure, run).await;
}

/// Whether the trainer has ended and its output was read: its artifact is
/// being validated. From then on the reconciler, not the follower, writes
/// the run's metrics.
fn output_read(status: &TrainingJobStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == types::RUNNING && c.reason == reasons::VALIDATING)
}

fn is_terminal(phase: TrainingPhase) -> bool {
    matches!(phase, TrainingPhase::Succeeded | TrainingPhase::Failed)
}

/// The storage a run writes to: its Model's registry, where the Model
/// finds its versions.
fn storage_of<'a>(tj: &'a TrainingJob, model: &'a Model) -> Result<&'a ArtifactStorage, String> {
    validation::validate_training_job(&tj.spec).map_err(|e| e.to_string())?;
    let storage = model.spec.storage.as_ref().ok_or_else(|| {
        format!(
            "Model {:?} has no spec.storage: a training run's version is written to its Model's registry",
            tj.spec.model_ref.name
        )
    })?;
    if storage.prefix.starts_with("pvc://") {
        return Err("pvc:// storage is not supported for training runs yet: the operator reads the registry's records; use s3://, gs://, az:// or file://".into());
    }
    Ok(storage)
}

/// Hands out the next version number of `model` by bumping its
/// `status.latestVersion` under optimistic concurrency, skipping numbers
/// that storage already holds. `None` until the Model controller has
/// reconciled the Model once.
pub(crate) async fn reserve_version(
    models: &Api<Model>,
    model: &Model,
    registry: &Location,
) -> Result<Option<i64>, Error> {
    let name = model.name_any();
    let taken = storage::recorded_versions(registry).await?;
    let mut current = model.clone();
    for _ in 0..5 {
        let status = current.status.clone().unwrap_or_default();
        if status.observed_generation.is_none() {
            return Ok(None);
        }
        let mut candidate = status
            .latest_version
            .unwrap_or(0)
            .max(status.versions.iter().map(|v| v.version).max().unwrap_or(0))
            + 1;
        while taken.contains(&candidate) {
            candidate += 1;
        }
        let mut updated = current.clone();
        updated
            .status
            .get_or_insert_with(Default::default)
            .latest_version = Some(candidate);
        match crate::status::replace(models, &updated).await {
            Ok(()) => return Ok(Some(candidate)),
            Err(Error::Conflict(_)) => {
                current = models
                    .get(&name)
                    .await
                    .map_err(Error::kube("reading the Model"))?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::Conflict(format!("Model {name}")))
}

/// Creates `object` unless it exists.
async fn ensure_created(
    ctx: &Context,
    namespace: &str,
    object: Option<Service>,
) -> Result<(), Error> {
    let Some(object) = object else { return Ok(()) };
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(e) if is_conflict(&e) => Ok(()),
        Err(e) => Err(Error::kube("creating the rendezvous Service")(e)),
    }
}

/// The run's Job: created when the run has none yet, otherwise read. `None`
/// when the Job was created before and is gone.
async fn ensure_job(
    ctx: &Context,
    namespace: &str,
    name: &str,
    wanted: Job,
    created_before: bool,
) -> Result<Option<Job>, Error> {
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    if let Some(job) = api
        .get_opt(name)
        .await
        .map_err(Error::kube("reading the Job"))?
    {
        return Ok(Some(job));
    }
    if created_before {
        return Ok(None);
    }
    match api.create(&PostParams::default(), &wanted).await {
        Ok(job) => Ok(Some(job)),
        Err(e) if is_conflict(&e) => Ok(api
            .get_opt(name)
            .await
            .map_err(Error::kube("reading the Job"))?),
        Err(e) => Err(Error::kube("creating the Job")(e)),
    }
}

fn set_running(
    status: &mut TrainingJobStatus,
    tj: &TrainingJob,
    running: bool,
    reason: &str,
    message: String,
    now: &Time,
) {
    conditions::set(
        &mut status.conditions,
        Wanted {
            type_: types::RUNNING,
            status: running,
            reason,
            message,
        },
        tj.metadata.generation,
        now,
    );
}

#[allow(clippy::too_many_arguments)]
async fn fail(
    ctx: &Context,
    jobs: &Api<TrainingJob>,
    tj: &TrainingJob,
    old: &TrainingJobStatus,
    mut next: TrainingJobStatus,
    reason: &str,
    message: String,
    now: &Time,
) -> Result<(), Error> {
    next.phase = TrainingPhase::Failed;
    next.reason = Some(reason.to_owned());
    next.message = Some(message.clone());
    next.completion_time = Some(now.clone());
    set_running(&mut next, tj, false, reason, message.clone(), now);
    conditions::set(
        &mut next.conditions,
        Wanted {
            type_: types::FAILED,
            status: true,
            reason,
            message: message.clone(),
        },
        tj.metadata.generation,
        now,
    );
    publish(
        ctx,
        tj,
        Severity::Warning,
        reason,
        format!("training run failed: {message}"),
    )
    .await;
    write_status(jobs, tj, old, next).await
}

async fn publish(ctx: &Context, tj: &TrainingJob, severity: Severity, reason: &str, note: String) {
    ctx.events
        .publish(&tj.object_ref(&()), severity, reason, "Train", note)
        .await;
}

/// Writes the fields the reconcile owns (never the progress the follower
/// publishes), and only when they changed.
async fn write_status(
    jobs: &Api<TrainingJob>,
    tj: &TrainingJob,
    old: &TrainingJobStatus,
    mut next: TrainingJobStatus,
) -> Result<(), Error> {
    next.observed_generation = tj.metadata.generation;
    let writer = if is_terminal(next.phase) || output_read(&next) {
        FINAL_STATUS
    } else {
        STATUS
    };
    writer.write(jobs, &tj.name_any(), old, &next).await
}
