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
use kube::api::{ListParams, LogParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use tracing::{info, instrument};

use crate::conditions::{self, Wanted};
use crate::context::Context;
use crate::error::{Error, is_conflict};
use crate::events::Severity;
use crate::status::Writer;
use crate::storage;
use outcome::Observed;

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

/// Reconciles one TrainingJob.
#[instrument(skip_all, fields(name = %tj.name_any(), namespace = tj.namespace()))]
pub async fn reconcile(tj: Arc<TrainingJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile.start(CONTROLLER);
    let namespace = tj.namespace().unwrap_or_default();
    let name = tj.name_any();
    let uid = tj.uid().unwrap_or_default();
    let status = tj.status.clone().unwrap_or_default();
    if is_terminal(status.phase) {
        ctx.followers.stop(&uid);
        return Ok(Action::await_change());
    }
    let jobs: Api<TrainingJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut next = status.clone();
    let now = Time(jiff::Timestamp::now());

    // Fetch what the run depends on and check what the schema cannot.
    let models: Api<Model> = Api::namespaced(ctx.client.clone(), &namespace);
    let model_name = &tj.spec.model_ref.name;
    let Some(model) = models
        .get_opt(model_name)
        .await
        .map_err(Error::kube("reading the Model"))?
    else {
        next.phase = TrainingPhase::Pending;
        let message = format!(
            "Model {model_name:?} does not exist in namespace {namespace:?}; the run starts once it does"
        );
        set_running(
            &mut next,
            &tj,
            false,
            reasons::REFERENCE_NOT_FOUND,
            message,
            &now,
        );
        write_status(&jobs, &tj, &status, next).await?;
        return Ok(Action::requeue(Duration::from_secs(10)));
    };
    // Where the run writes, opened with the storage's allowed keys; a spec
    // the operator will not act on fails the run.
    let opened = match storage_of(&tj, &model) {
        Ok(storage) => {
            storage::open_registry(&ctx.client, &ctx.storage, &namespace, storage, model_name)
                .await
                .map(|registry| (storage.clone(), registry))
        }
        Err(message) => Err(Error::InvalidSpec(message)),
    };
    let (storage, registry) = match opened {
        Ok(opened) => opened,
        Err(Error::InvalidSpec(message)) => {
            fail(
                &ctx,
                &jobs,
                &tj,
                &status,
                next,
                reasons::INVALID_SPEC,
                message,
                &now,
            )
            .await?;
            return Ok(Action::await_change());
        }
        Err(e) => return Err(e),
    };

    // Reserve the version number and the output location, once.
    let version = match status.model_version {
        Some(version) => version,
        None => {
            // The cache may lag behind a reservation this operator just
            // wrote; only a fresh read can say there is none.
            let fresh = jobs
                .get_status(&name)
                .await
                .map_err(Error::kube("reading the TrainingJob"))?;
            let fresh = fresh.status.unwrap_or_default();
            match fresh.model_version {
                Some(version) => version,
                None => match reserve_version(&models, &model, &registry).await? {
                    Some(version) => {
                        // Recorded at once, before anything uses the number.
                        let reserved = TrainingJobStatus {
                            model_version: Some(version),
                            ..fresh.clone()
                        };
                        STATUS.write(&jobs, &name, &fresh, &reserved).await?;
                        version
                    }
                    // The Model has not been reconciled yet (it may be
                    // recovering its history from storage); numbers are
                    // handed out after that.
                    None => return Ok(Action::requeue(Duration::from_secs(2))),
                },
            }
        }
    };
    let output = storage::version_dir(&registry, version);
    next.model_version = Some(version);
    next.output_uri = Some(output.uri.clone());

    // Run the trainer.
    let job_name = job::job_name(&tj);
    let run = job::Run {
        version,
        output_uri: &output.uri,
        storage_secret: storage.secret_ref.as_ref().map(|s| s.name.as_str()),
    };
    ensure_created(&ctx, &namespace, job::build_service(&tj)).await?;
    let job = ensure_job(
        &ctx,
        &namespace,
        &job_name,
        job::build(&tj, &run),
        status.job_name.is_some(),
    )
    .await?;
    next.job_name = Some(job_name.clone());
    let Some(job) = job else {
        let message = format!("the Job {job_name} was deleted before the run finished");
        fail(&ctx, &jobs, &tj, &status, next, "JobDeleted", message, &now).await?;
        return Ok(Action::await_change());
    };

    // Observe it.
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job_name}")))
        .await
        .map_err(Error::kube("listing the trainer pods"))?;
    match outcome::observe(&job, &listed.items, &now) {
        Observed::Pending { message } => {
            next.phase = TrainingPhase::Pending;
            set_running(&mut next, &tj, false, reasons::PENDING, message, &now);
            write_status(&jobs, &tj, &status, next).await?;
            Ok(Action::requeue(POLL))
        }
        Observed::Running { started, pod } => {
            if let Some(pod) = &pod {
                ctx.followers
                    .ensure(jobs.clone(), pods.clone(), &name, &uid, pod);
            }
            next.phase = TrainingPhase::Running;
            next.start_time = next.start_time.or(started).or_else(|| Some(now.clone()));
            let message = format!("the trainer runs in pod {}", pod.unwrap_or_default());
            set_running(
                &mut next,
                &tj,
                true,
                reasons::TRAINER_RUNNING,
                message,
                &now,
            );
            if status.phase != TrainingPhase::Running {
                publish(
                    &ctx,
                    &tj,
                    Severity::Normal,
                    "Started",
                    format!("training run for {model_name} version {version} started"),
                )
                .await;
            }
            write_status(&jobs, &tj, &status, next).await?;
            Ok(Action::requeue(POLL))
        }
        Observed::Failed(failure) => {
            ctx.followers.stop(&uid);
            let tail = match &failure.pod {
                Some(pod) => pods
                    .logs(
                        pod,
                        &LogParams {
                            container: Some(job::CONTAINER.into()),
                            tail_lines: Some(20),
                            limit_bytes: Some(64 * 1024),
                            ..LogParams::default()
                        },
                    )
                    .await
                    .unwrap_or_default(),
                None => String::new(),
            };
            let failure = outcome::explain(failure, &tail);
            if failure.reason == reasons::IMAGE_UNAVAILABLE {
                // Nothing more will run: stop the pods waiting on the image.
                let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
                let _ = jobs_api.delete(&job_name, &Default::default()).await;
            }
            fail(
                &ctx,
                &jobs,
                &tj,
                &status,
                next,
                &failure.reason,
                failure.message,
                &now,
            )
            .await?;
            Ok(Action::await_change())
        }
        Observed::Completed { completed, pod } => {
            ctx.followers.stop(&uid);
            // Read at the first reconcile after the trainer ended; while the
            // artifact is validated, what it read is in status already.
            if status.metrics_history.is_empty()
                && !output_read(&status)
                && let Some(pod) = &pod
            {
                // A run shorter than a reconcile was never followed: read
                // its whole output once.
                let progress = follower::read_all(&pods, pod).await;
                next.metrics_history = progress.history;
                next.metrics = progress.latest;
            }
            let storage_secret = storage.secret_ref.as_ref().map(|s| s.name.as_str());
            let recorded =
                match register::record(&ctx, &tj, &output, version, storage_secret).await? {
                    register::Registered::Recorded(recorded) => *recorded,
                    register::Registered::Validating(message) => {
                        set_running(&mut next, &tj, true, reasons::VALIDATING, message, &now);
                        write_status(&jobs, &tj, &status, next).await?;
                        return Ok(Action::requeue(POLL));
                    }
                };
            next.phase = TrainingPhase::Succeeded;
            next.completion_time = completed;
            next.metrics.extend(recorded.metrics.clone());
            next.metrics_summary = progress::summary(&next.metrics);
            let (reason, message, severity) = match &recorded.reason {
                Some(reason) => (
                    reason.as_str(),
                    format!(
                        "version {version} was rejected: {}",
                        recorded.message.clone().unwrap_or_default()
                    ),
                    Severity::Warning,
                ),
                None => (
                    reasons::VERSION_REGISTERED,
                    format!(
                        "version {version} of {model_name} was recorded at {}",
                        recorded.uri
                    ),
                    Severity::Normal,
                ),
            };
            next.reason = Some(reason.to_owned());
            next.message = Some(message.clone());
            set_running(&mut next, &tj, false, reason, message.clone(), &now);
            conditions::set(
                &mut next.conditions,
                Wanted {
                    type_: types::SUCCEEDED,
                    status: true,
                    reason,
                    message: message.clone(),
                },
                tj.metadata.generation,
                &now,
            );
            publish(&ctx, &tj, severity, reason, message).await;
            write_status(&jobs, &tj, &status, next).await?;
            info!(version, "training run finished");
            Ok(Action::await_change())
        }
    }
}

/// Requeues after a failed reconcile: invalid input waits for a change (its
/// condition explains it); everything else retries.
pub fn error_policy(_tj: Arc<TrainingJob>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile.failed(CONTROLLER, error.category());
    retry_after(error)
}

/// How long to wait after `error` before reconciling again.
pub fn retry_after(error: &Error) -> Action {
    match error {
        Error::Conflict(_) => Action::requeue(Duration::from_millis(500)),
        Error::InvalidSpec(_) => Action::requeue(Duration::from_secs(300)),
        _ => Action::requeue(Duration::from_secs(10)),
    }
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

/// The storage a run writes to: its own, or its Model's.
fn storage_of<'a>(tj: &'a TrainingJob, model: &'a Model) -> Result<&'a ArtifactStorage, String> {
    validation::validate_training_job(&tj.spec).map_err(|e| e.to_string())?;
    let storage = tj
        .spec
        .storage
        .as_ref()
        .or(model.spec.storage.as_ref())
        .ok_or_else(|| {
            format!(
                "no artifact storage: set spec.storage on this TrainingJob or on Model {:?}",
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
