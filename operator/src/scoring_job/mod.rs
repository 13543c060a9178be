//! The ScoringJob controller: resolves the versions to score from the
//! Model, runs the shards as an Indexed Job and then the report as a Job,
//! both in the tenant's namespace under its ServiceAccount (`jobs`), and
//! writes the report the last pod prints into status. The operator never
//! reads the data set, the models or the outputs; it reads one bounded line
//! from a pod's log. Terminal phases are final.

pub mod jobs;
mod plan;

use std::sync::Arc;
use std::time::Duration;

use aimass_crds::scoring::{ScoringLine, ScoringPlan};
use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{Model, ScoringJob, ScoringJobStatus, ScoringPhase, ScoringReport};
use aimass_crds::validation;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
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
use jobs::Kind;
use plan::{JobState, Step};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "scoringjob";
/// How often a run in progress is looked at even without a change.
const POLL: Duration = Duration::from_secs(5);
/// The one writer of a ScoringJob's status.
const STATUS: Writer = Writer {
    manager: "aimass-operator/scoringjob",
    others: &[],
};

/// Reconciles one ScoringJob: one step of [`plan::step`] at a time.
#[instrument(skip_all, fields(name = %sj.name_any(), namespace = sj.namespace()))]
pub async fn reconcile(sj: Arc<ScoringJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile.start(CONTROLLER);
    let old = sj.status.clone().unwrap_or_default();
    if is_terminal(old.phase) {
        return Ok(Action::await_change());
    }
    let namespace = sj.namespace().unwrap_or_default();
    let mut run = Run {
        ctx: &ctx,
        sj: &sj,
        jobs: Api::namespaced(ctx.client.clone(), &namespace),
        next: old.clone(),
        old,
        now: Time(jiff::Timestamp::now()),
    };
    if let Err(message) = check(&sj) {
        return run.fail(reasons::INVALID_SPEC, message).await;
    }
    // Only the Job the step looks at: the shards' before the report, the
    // report's after.
    let (shards, report) = if run.old.versions.is_empty() {
        (JobState::Missing, JobState::Missing)
    } else if run.old.phase == ScoringPhase::Reporting {
        (JobState::Missing, run.job(Kind::Report).await?)
    } else {
        (run.job(Kind::Shards).await?, JobState::Missing)
    };
    match plan::step(&run.old, &shards, &report) {
        Step::Resolve => run.resolve().await,
        Step::StartShards => run.start(Kind::Shards).await,
        Step::Scoring { succeeded } => {
            run.next.shards_succeeded = Some(succeeded);
            run.done(Action::requeue(POLL)).await
        }
        Step::StartReport => {
            run.next.shards_succeeded = Some(sj.spec.run.shards);
            run.start(Kind::Report).await
        }
        Step::Reporting => run.done(Action::requeue(POLL)).await,
        Step::ReadReport => match run.read(Kind::Report, false).await? {
            Some(ScoringLine::Report(report)) => run.succeed(*report).await,
            Some(ScoringLine::Failed { reason, message }) => run.fail(&reason, message).await,
            None => {
                let message = "the report Job finished without printing its report".to_owned();
                run.fail("ScoringFailed", message).await
            }
        },
        Step::ReadFailure {
            shards,
            reason,
            message,
        } => {
            let kind = if shards { Kind::Shards } else { Kind::Report };
            match run.read(kind, true).await? {
                Some(ScoringLine::Failed { reason, message }) => run.fail(&reason, message).await,
                _ => run.fail(&reason, message).await,
            }
        }
        Step::Fail { reason, message } => run.fail(reason, message).await,
    }
}

/// What the schema cannot check, and sources never fetched.
fn check(sj: &ScoringJob) -> Result<(), String> {
    validation::validate_scoring_job(&sj.spec).map_err(|e| e.to_string())?;
    match crate::artifact::refused_source("spec.dataset.uri", &sj.spec.run.dataset.uri) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// Requeues after a failed reconcile: invalid input waits for a change (its
/// condition explains it); everything else retries.
pub fn error_policy(sj: Arc<ScoringJob>, error: &Error, ctx: Arc<Context>) -> Action {
    let conditions = sj.status.as_ref().map(|s| s.conditions.clone());
    let conditions = conditions.unwrap_or_default();
    crate::failure::policy(sj, &conditions, error, ctx, CONTROLLER, report_failure)
}

/// Says in status (Running=False, and in an Event when it is news) that
/// reconciling `sj` failed.
async fn report_failure(ctx: Arc<Context>, sj: Arc<ScoringJob>, failure: Failure) {
    let old = sj.status.clone().unwrap_or_default();
    if is_terminal(old.phase) {
        return;
    }
    let run = RunStatus {
        old,
        conditions: |s| &mut s.conditions,
        type_: types::RUNNING,
        writer: STATUS,
        action: "Score",
    };
    crate::failure::say(&ctx, sj.as_ref(), failure, run).await;
}

fn is_terminal(phase: ScoringPhase) -> bool {
    matches!(phase, ScoringPhase::Succeeded | ScoringPhase::Failed)
}

/// One reconcile of one run.
struct Run<'a> {
    ctx: &'a Context,
    sj: &'a ScoringJob,
    jobs: Api<Job>,
    old: ScoringJobStatus,
    next: ScoringJobStatus,
    now: Time,
}

impl Run<'_> {
    /// The state of Job `kind`.
    async fn job(&self, kind: Kind) -> Result<JobState, Error> {
        let job = self
            .jobs
            .get_opt(&kind.job_name(self.sj))
            .await
            .map_err(Error::kube("reading the scoring Job"))?;
        Ok(plan::job_state(job.as_ref()))
    }

    /// Resolves the versions from the Model's status, once.
    async fn resolve(mut self) -> Result<Action, Error> {
        let name = &self.sj.spec.model_ref.name;
        let models: Api<Model> = Api::namespaced(
            self.ctx.client.clone(),
            &self.sj.namespace().unwrap_or_default(),
        );
        let Some(model) = models
            .get_opt(name)
            .await
            .map_err(Error::kube("reading the Model"))?
        else {
            let message = format!("Model {name} does not exist; the run starts once it does");
            self.set_running(false, reasons::REFERENCE_NOT_FOUND, message);
            return self.done(Action::requeue(Duration::from_secs(10))).await;
        };
        let status = model.status.unwrap_or_default();
        match plan::resolve(name, &self.sj.spec.versions, &status) {
            Ok(versions) => {
                self.next.versions_summary = Some(
                    versions
                        .iter()
                        .map(|v| v.version.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                );
                self.next.versions = versions;
                self.set_running(false, reasons::PENDING, "starting the shards".into());
                self.done(Action::requeue(Duration::from_millis(100))).await
            }
            // The Model may not have registered them yet (a Model and a
            // ScoringJob applied together): wait, saying for what.
            Err(message) => {
                let message = format!("{message}; the run starts once it does");
                self.set_running(false, reasons::REFERENCE_NOT_FOUND, message);
                self.done(Action::requeue(Duration::from_secs(10))).await
            }
        }
    }

    /// Creates Job `kind` (unless it exists) and says so.
    async fn start(mut self, kind: Kind) -> Result<Action, Error> {
        let spec = &self.sj.spec.run;
        let namespace = self.sj.namespace().unwrap_or_default();
        for secret in [&spec.dataset.secret_ref, &spec.output.secret_ref]
            .into_iter()
            .flatten()
        {
            crate::storage::secret_exists(&self.ctx.client, &namespace, &secret.name).await?;
        }
        let plan =
            serde_json::to_string(&self.plan()).map_err(|e| Error::InvalidSpec(e.to_string()))?;
        let settings = jobs::Settings {
            image: &self.ctx.server_image,
            plan: &plan,
        };
        let job = jobs::build(self.sj, kind, &settings);
        match self.jobs.create(&PostParams::default(), &job).await {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => {}
            Err(e) => return Err(Error::kube("creating the scoring Job")(e)),
        }
        let name = kind.job_name(self.sj);
        match kind {
            Kind::Shards => {
                self.next.phase = ScoringPhase::Running;
                self.next.job_name = Some(name.clone());
                self.next.start_time = Some(self.now.clone());
                let message = format!(
                    "{} shards score {} with versions {} in Job {name}",
                    spec.shards,
                    aimass_storage::redact(&spec.dataset.uri),
                    self.next.versions_summary.clone().unwrap_or_default()
                );
                self.set_running(true, reasons::SCORING, message.clone());
                publish(
                    self.ctx,
                    self.sj,
                    Severity::Normal,
                    reasons::SCORING,
                    message,
                )
                .await;
            }
            Kind::Report => {
                self.next.phase = ScoringPhase::Reporting;
                let message = format!("the shards finished; Job {name} makes the report");
                self.set_running(true, reasons::REPORTING, message);
            }
        }
        self.done(Action::requeue(POLL)).await
    }

    /// What the pods are asked to do.
    fn plan(&self) -> ScoringPlan {
        let spec = &self.sj.spec.run;
        ScoringPlan {
            dataset: spec.dataset.uri.clone(),
            dataset_format: spec.dataset.format,
            versions: self.next.versions.clone(),
            columns: spec.columns.clone(),
            label_column: spec.label_column.clone(),
            segment_column: spec.segment_column.clone(),
            id_column: spec.id_column.clone(),
            score: spec.score.clone(),
            thresholds: spec.thresholds.clone(),
            output: spec.output.uri.clone(),
            output_format: spec.output.format,
            shards: u32::try_from(spec.shards).unwrap_or(1),
            max_model_bytes: usize::try_from(self.ctx.max_artifact_bytes).unwrap_or(usize::MAX),
        }
    }

    /// The line the pods of Job `kind` printed: the newest failed pod's
    /// when `failed`, else the newest pod's.
    async fn read(&self, kind: Kind, failed: bool) -> Result<Option<ScoringLine>, Error> {
        let pods: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            &self.sj.namespace().unwrap_or_default(),
        );
        let name = kind.job_name(self.sj);
        let mut listed = pods
            .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
            .await
            .map_err(Error::kube(format!("listing the pods of Job {name}")))?
            .items;
        listed.retain(|p| {
            !failed || p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
        });
        listed.sort_by_key(|p| std::cmp::Reverse(p.creation_timestamp().map(|t| t.0)));
        // A few pods at most: each log is bounded.
        for pod in listed.iter().take(4) {
            let log = crate::artifact::read_log(&pods, pod, kind.container()).await;
            if let Some(line) = ScoringLine::from_log(&log) {
                return Ok(Some(line));
            }
        }
        Ok(None)
    }

    async fn succeed(mut self, report: ScoringReport) -> Result<Action, Error> {
        let message = format!("{} rows: {}", report.rows, report.summary);
        self.next.phase = ScoringPhase::Succeeded;
        self.next.reason = Some(reasons::REPORTED.into());
        self.next.message = Some(message.clone());
        self.next.completion_time = Some(self.now.clone());
        self.next.report = Some(report);
        self.set_running(false, reasons::REPORTED, message.clone());
        self.set(types::SUCCEEDED, true, reasons::REPORTED, message.clone());
        publish(
            self.ctx,
            self.sj,
            Severity::Normal,
            reasons::REPORTED,
            message,
        )
        .await;
        self.done(Action::await_change()).await
    }

    async fn fail(mut self, reason: &str, message: String) -> Result<Action, Error> {
        self.next.phase = ScoringPhase::Failed;
        self.next.reason = Some(reason.to_owned());
        self.next.message = Some(message.clone());
        self.next.completion_time = Some(self.now.clone());
        self.set_running(false, reason, message.clone());
        self.set(types::FAILED, true, reason, message.clone());
        publish(
            self.ctx,
            self.sj,
            Severity::Warning,
            reason,
            format!("scoring run failed: {message}"),
        )
        .await;
        self.done(Action::await_change()).await
    }

    fn set_running(&mut self, running: bool, reason: &str, message: String) {
        self.set(types::RUNNING, running, reason, message);
    }

    fn set(&mut self, type_: &str, status: bool, reason: &str, message: String) {
        conditions::set(
            &mut self.next.conditions,
            Wanted {
                type_,
                status,
                reason,
                message,
            },
            self.sj.metadata.generation,
            &self.now,
        );
    }

    /// Writes the status when it changed, then waits as `action` says.
    async fn done(mut self, action: Action) -> Result<Action, Error> {
        self.next.observed_generation = self.sj.metadata.generation;
        let api: Api<ScoringJob> = Api::namespaced(
            self.ctx.client.clone(),
            &self.sj.namespace().unwrap_or_default(),
        );
        STATUS
            .write(&api, &self.sj.name_any(), &self.old, &self.next)
            .await?;
        Ok(action)
    }
}

async fn publish(ctx: &Context, sj: &ScoringJob, severity: Severity, reason: &str, note: String) {
    ctx.events
        .publish(&sj.object_ref(&()), severity, reason, "Score", note)
        .await;
}
