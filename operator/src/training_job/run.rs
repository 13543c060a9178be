//! One reconcile of a TrainingJob that has not ended, as named steps: the
//! Model, the registry, the version number, the trainer's Job, and what to
//! do with each of its outcomes.

use std::ops::ControlFlow;

use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{
    ArtifactStorage, Model, ModelVersion, TrainingJob, TrainingJobStatus, TrainingPhase,
    VersionPhase,
};
use aimass_storage::Location;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::LogParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tracing::info;

use super::{
    POLL, STATUS, ensure_created, ensure_job, fail, follower, job, outcome, output_read, progress,
    publish, register, reserve_version, set_running, storage_of, write_status,
};
use crate::conditions::{self, Wanted};
use crate::context::Context;
use crate::error::Error;
use crate::events::Severity;
use crate::storage;

/// One reconcile of a TrainingJob that has not ended: the status read and
/// the status being made.
pub(super) struct Run<'a> {
    pub(super) ctx: &'a Context,
    pub(super) tj: &'a TrainingJob,
    pub(super) jobs: Api<TrainingJob>,
    pub(super) old: TrainingJobStatus,
    pub(super) next: TrainingJobStatus,
    pub(super) now: Time,
}

/// What a trainer that completed left, to register.
pub(super) struct Finished<'a> {
    pub(super) output: &'a Location,
    pub(super) version: i64,
    pub(super) storage_secret: Option<&'a str>,
    pub(super) started: Option<Time>,
    pub(super) completed: Option<Time>,
    /// Where to compute a baseline from (the Model's `spec.baseline`).
    pub(super) baseline: Option<&'a aimass_crds::v1alpha1::BaselineSource>,
}

impl Run<'_> {
    /// Writes the status made, then says `action`.
    pub(super) async fn done(self, action: Action) -> Result<Action, Error> {
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

    pub(super) fn set_running(&mut self, running: bool, reason: &str, message: String) {
        set_running(&mut self.next, self.tj, running, reason, message, &self.now);
    }

    /// The Model the run trains; breaks (Pending, said in status) while it
    /// does not exist.
    pub(super) async fn model(&mut self) -> Result<ControlFlow<(), Model>, Error> {
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
        let news = !self
            .old
            .conditions
            .iter()
            .any(|c| c.type_ == types::RUNNING && c.reason == reasons::REFERENCE_NOT_FOUND);
        if news {
            publish(
                self.ctx,
                self.tj,
                Severity::Warning,
                reasons::REFERENCE_NOT_FOUND,
                message.clone(),
            )
            .await;
        }
        self.set_running(false, reasons::REFERENCE_NOT_FOUND, message);
        Ok(ControlFlow::Break(()))
    }

    /// Where the run writes, opened with the storage's allowed keys; a
    /// spec the operator will not act on fails the run (and breaks).
    pub(super) async fn registry(
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
    pub(super) async fn version(
        &self,
        model: &Model,
        registry: &Location,
    ) -> Result<Option<i64>, Error> {
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
    pub(super) async fn trainer(
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
    pub(super) async fn running(
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
    pub(super) async fn failed(
        mut self,
        pods: &Api<Pod>,
        failure: outcome::Failure,
    ) -> Result<Action, Error> {
        self.ctx.followers.stop(&self.tj.uid().unwrap_or_default());
        let tail = match &failure.pod {
            Some(pod) => pods
                .logs(
                    pod,
                    &LogParams {
                        container: Some(aimass_crds::trainer::CONTAINER.into()),
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
    pub(super) async fn completed(
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
            finished.baseline,
        )
        .await?;
        let recorded = match registered {
            register::Registered::Recorded(recorded) => *recorded,
            register::Registered::Validating(message) => {
                self.set_running(true, reasons::VALIDATING, message);
                return self.done(Action::requeue(POLL)).await;
            }
        };
        if self.next.start_time.is_none() {
            self.next.start_time = finished.started;
        }
        self.next.metrics.extend(recorded.metrics.clone());
        self.next.metrics_summary = progress::summary(&self.next.metrics);
        let (reason, message, severity) =
            verdict(&recorded, finished.version, &self.tj.spec.model_ref.name);
        if recorded.phase == VersionPhase::Rejected {
            // The trainer ran, but what it made cannot be served: the run
            // failed, for the version's reason.
            return self.fail(reason, message).await;
        }
        self.next.phase = TrainingPhase::Succeeded;
        self.next.completion_time = finished.completed;
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
    match (&recorded.phase, &recorded.reason) {
        (VersionPhase::Rejected, reason) => (
            reason.as_deref().unwrap_or(reasons::ARTIFACT_INVALID),
            format!(
                "version {version} was rejected: {}",
                recorded.message.clone().unwrap_or_default()
            ),
            Severity::Warning,
        ),
        _ => (
            reasons::VERSION_REGISTERED,
            format!(
                "version {version} of {model} was recorded at {}",
                recorded.uri
            ),
            Severity::Normal,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_version_is_the_runs_failure_and_a_ready_one_its_success() {
        let version =
            |yaml: &str| -> ModelVersion { serde_yaml_ng::from_str(yaml).expect("a version") };
        let rejected = version(
            r#"{version: 3, phase: Rejected, reason: ArtifactInvalid, message: "the model does not load", uri: "file:///m/3/model.onnx", created: "2026-01-01T00:00:00Z"}"#,
        );
        let (reason, message, severity) = verdict(&rejected, 3, "fraud");
        assert_eq!(reason, "ArtifactInvalid");
        assert_eq!(message, "version 3 was rejected: the model does not load");
        assert_eq!(severity, Severity::Warning);
        let ready = version(
            r#"{version: 4, phase: Ready, uri: "file:///m/4/model.onnx", created: "2026-01-01T00:00:00Z"}"#,
        );
        let (reason, message, severity) = verdict(&ready, 4, "fraud");
        assert_eq!(reason, "VersionRegistered");
        assert_eq!(
            message,
            "version 4 of fraud was recorded at file:///m/4/model.onnx"
        );
        assert_eq!(severity, Severity::Normal);
    }
}
