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

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{
    ArtifactStorage, Model, ModelVersion, TrainingJob, TrainingJobStatus, TrainingPhase,
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
        Observed::Completed { completed, pod } => {
            let finished = Finished {
                output: &output,
                version,
                storage_secret,
                completed,
            };
            run.completed(&pods, pod, finished).await
        }
    }
}

/// One reconcile of a TrainingJob that has not ended: the status read and
/// the status being made.
struct Run<'a> {
    ctx: &'a Context,
    tj: &'a TrainingJob,
    jobs: Api<TrainingJob>,
    old: TrainingJobStatus,
    next: TrainingJobStatus,
    now: Time,
}

/// What a trainer that completed left, to register.
struct Finished<'a> {
    output: &'a Location,
    version: i64,
    storage_secret: Option<&'a str>,
    completed: Option<Time>,
}

impl Run<'_> {
    /// Writes the status made, then says `action`.
    async fn done(self, action: Action) -> Result<Action, Error> {
        write_status(&self.jobs, self.tj, &self.old, self.next).await?;
        Ok(action)
    }

    /// Fails the run for `reason`: status, condition and Event.
    async fn fail(&mut self, reason: &str, message: String) -> Result<Action, Error> {
        let next = std::mem::take(&mut self.next);
        let (ctx, tj, now) = (self.ctx, self.tj, &self.now);
        fail(ctx, &self.jobs, tj, &self.old, next, reason, message, now).await?;
        Ok(Action::await_change())
    }

    fn set_running(&mut self, running: bool, reason: &str, message: String) {
        set_running(&mut self.next, self.tj, running, reason, message, &self.now);
    }

    /// The Model the run trains; breaks (Pending, said in status) while it
    /// does not exist.
    async fn model(&mut self) -> Result<ControlFlow<(), Model>, Error> {
        let name = &self.tj.spec.model_ref.name;
        let models: Api<Model> = self.jobs_namespace_api();
        if let Some(model) = models
            .get_opt(name)
            .await
            .map_err(Error::kube("reading the Model"))?
        {
            return Ok(ControlFlow::Continue(model));
        }
        self.next.phase = TrainingPhase::Pending;
        let message = format!(
            "Model {name:?} does not exist in namespace {:?}; the run starts once it does",
            self.tj.namespace().unwrap_or_default()
        );
        self.set_running(false, reasons::REFERENCE_NOT_FOUND, message);
        Ok(ControlFlow::Break(()))
    }

    /// Where the run writes, opened with the storage's allowed keys; a
    /// spec the operator will not act on fails the run (and breaks).
    async fn registry(
        &mut self,
        model: &Model,
    ) -> Result<ControlFlow<(), (ArtifactStorage, Location)>, Error> {
        let namespace = self.tj.namespace().unwrap_or_default();
        let opened = match storage_of(self.tj, model) {
            Ok(storage) => {
                let registry = storage::open_registry(
                    &self.ctx.client,
                    &self.ctx.storage,
                    &namespace,
                    storage,
                    &self.tj.spec.model_ref.name,
                )
                .await;
                registry.map(|registry| (storage.clone(), registry))
            }
            Err(message) => Err(Error::InvalidSpec(message)),
        };
        match opened {
            Ok(opened) => Ok(ControlFlow::Continue(opened)),
            Err(Error::InvalidSpec(message)) => {
                self.fail(reasons::INVALID_SPEC, message).await?;
                Ok(ControlFlow::Break(()))
            }
            Err(e) => Err(e),
        }
    }

    /// The run's version number: reserved once, recorded at once before
    /// anything uses it. `None` until the Model hands numbers out.
    async fn version(&self, model: &Model, registry: &Location) -> Result<Option<i64>, Error> {
        if let Some(version) = self.old.model_version {
            return Ok(Some(version));
        }
        // The cache may lag behind a reservation this operator just wrote;
        // only a fresh read can say there is none.
        let name = self.tj.name_any();
        let fresh = self
            .jobs
            .get_status(&name)
            .await
            .map_err(Error::kube("reading the TrainingJob"))?
            .status
            .unwrap_or_default();
        if let Some(version) = fresh.model_version {
            return Ok(Some(version));
        }
        let models: Api<Model> = self.jobs_namespace_api();
        let Some(version) = reserve_version(&models, model, registry).await? else {
            return Ok(None);
        };
        let reserved = TrainingJobStatus {
            model_version: Some(version),
            ..fresh.clone()
        };
        STATUS.write(&self.jobs, &name, &fresh, &reserved).await?;
        Ok(Some(version))
    }

    /// The trainer's Job (and its rendezvous Service), created once; `None`
    /// (the run failed) when the Job was deleted before the run finished.
    async fn trainer(
        &mut self,
        version: i64,
        output_uri: &str,
        storage_secret: Option<&str>,
    ) -> Result<Option<Job>, Error> {
        let namespace = self.tj.namespace().unwrap_or_default();
        let job_name = job::job_name(self.tj);
        let run = job::Run {
            version,
            output_uri,
            storage_secret,
        };
        ensure_created(self.ctx, &namespace, job::build_service(self.tj)).await?;
        let job = ensure_job(
            self.ctx,
            &namespace,
            &job_name,
            job::build(self.tj, &run),
            self.old.job_name.is_some(),
        )
        .await?;
        self.next.job_name = Some(job_name.clone());
        if job.is_none() {
            let message = format!("the Job {job_name} was deleted before the run finished");
            self.fail(reasons::JOB_DELETED, message).await?;
        }
        Ok(job)
    }

    fn jobs_namespace_api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(
            self.ctx.client.clone(),
            &self.tj.namespace().unwrap_or_default(),
        )
    }

    /// The trainer runs: follow its output, say so once.
    async fn running(
        mut self,
        pods: &Api<Pod>,
        started: Option<Time>,
        pod: Option<String>,
        version: i64,
    ) -> Result<Action, Error> {
        let uid = self.tj.uid().unwrap_or_default();
        if let Some(pod) = &pod {
            self.ctx.followers.ensure(
                self.jobs.clone(),
                pods.clone(),
                &self.tj.name_any(),
                &uid,
                pod,
            );
        }
        self.next.phase = TrainingPhase::Running;
        self.next.start_time = self
            .next
            .start_time
            .clone()
            .or(started)
            .or_else(|| Some(self.now.clone()));
        let message = format!("the trainer runs in pod {}", pod.unwrap_or_default());
        self.set_running(true, reasons::TRAINER_RUNNING, message);
        if self.old.phase != TrainingPhase::Running {
            let note = format!(
                "training run for {} version {version} started",
                self.tj.spec.model_ref.name
            );
            publish(
                self.ctx,
                self.tj,
                Severity::Normal,
                crate::events::reasons::STARTED,
                note,
            )
            .await;
        }
        self.done(Action::requeue(POLL)).await
    }

    /// The trainer failed: why, from its state and its last lines.
    async fn failed(mut self, pods: &Api<Pod>, failure: outcome::Failure) -> Result<Action, Error> {
        self.ctx.followers.stop(&self.tj.uid().unwrap_or_default());
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
            let jobs: Api<Job> = self.jobs_namespace_api();
            let _ = jobs
                .delete(&job::job_name(self.tj), &Default::default())
                .await;
        }
        self.fail(&failure.reason, failure.message).await
    }

    /// The trainer completed: read its output if it was never followed,
    /// validate and register the artifact, and report the version.
    async fn completed(
        mut self,
        pods: &Api<Pod>,
        pod: Option<String>,
        finished: Finished<'_>,
    ) -> Result<Action, Error> {
        self.ctx.followers.stop(&self.tj.uid().unwrap_or_default());
        // Read at the first reconcile after the trainer ended; while the
        // artifact is validated, what it read is in status already.
        if self.old.metrics_history.is_empty()
            && !output_read(&self.old)
            && let Some(pod) = &pod
        {
            // A run shorter than a reconcile was never followed: read its
            // whole output once.
            let progress = follower::read_all(pods, pod).await;
            self.next.metrics_history = progress.history;
            self.next.metrics = progress.latest;
        }
        let registered = register::record(
            self.ctx,
            self.tj,
            finished.output,
            finished.version,
            finished.storage_secret,
        )
        .await?;
        let recorded = match registered {
            register::Registered::Recorded(recorded) => *recorded,
            register::Registered::Validating(message) => {
                self.set_running(true, reasons::VALIDATING, message);
                return self.done(Action::requeue(POLL)).await;
            }
        };
        self.next.phase = TrainingPhase::Succeeded;
        self.next.completion_time = finished.completed;
        self.next.metrics.extend(recorded.metrics.clone());
        self.next.metrics_summary = progress::summary(&self.next.metrics);
        let (reason, message, severity) =
            verdict(&recorded, finished.version, &self.tj.spec.model_ref.name);
        self.next.reason = Some(reason.to_owned());
        self.next.message = Some(message.clone());
        self.set_running(false, reason, message.clone());
        conditions::set(
            &mut self.next.conditions,
            Wanted {
                type_: types::SUCCEEDED,
                status: true,
                reason,
                message: message.clone(),
            },
            self.tj.metadata.generation,
            &self.now,
        );
        publish(self.ctx, self.tj, severity, reason, message).await;
        info!(version = finished.version, "training run finished");
        self.done(Action::await_change()).await
    }
}

/// What a registered version's record says of the run: registered, or
/// rejected and why.
fn verdict<'a>(
    recorded: &'a ModelVersion,
    version: i64,
    model: &str,
) -> (&'a str, String, Severity) {
    match &recorded.reason {
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
                "version {version} of {model} was recorded at {}",
                recorded.uri
            ),
            Severity::Normal,
        ),
    }
}

/// Requeues after a failed reconcile: invalid input waits for a change (its
/// condition explains it); everything else retries.
pub fn error_policy(_tj: Arc<TrainingJob>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile.failed(CONTROLLER, error.category());
    error.retry_after()
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
