//! The ModelDeployment controller: resolves the Model version to serve,
//! applies the inference servers' Deployment and Service with server-side
//! apply, follows the rollout, and reports what serves in status. A version
//! that cannot be served (missing, not Ready, an incompatible signature, a
//! missing Secret) never replaces the one serving: the conditions say why.

pub mod access;
mod audit_trail;
mod canary;
mod resolve;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::conditions::{reasons, types};
use std::collections::HashMap;
use std::sync::Mutex;

use aimass_crds::v1alpha1::{
    AuditFailurePolicy, CanaryPhase, CanarySpec, CanaryStatus, MigrationOutcome, Model,
    ModelDeployment, ModelDeploymentStatus, ModelVersion, RolloutStrategy, SecurityMode,
};
use aimass_crds::validation;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use tracing::instrument;

use crate::conditions::{self, Wanted};
use crate::context::Context;
use crate::error::{Error, is_not_found};
use crate::events::Severity;
use crate::scrape::{self, Snapshot};
use crate::status::Writer;
use workload::{Track, Workload};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "modeldeployment";
/// The field manager of everything this controller applies.
const FIELD_MANAGER: &str = "aimass-operator/modeldeployment";
/// The controller's status writer: every field but the monitor's, which it
/// reads and never writes back.
pub(crate) const STATUS: Writer = Writer {
    manager: FIELD_MANAGER,
    others: crate::monitor::FIELDS,
};
/// Annotation that lets a version with a different input signature replace
/// the serving one (the callers were changed first).
pub const ALLOW_SIGNATURE_CHANGE: &str = "aimass.io/allow-signature-change";

/// What the reconcile found out, for the conditions.
struct Problem {
    reason: &'static str,
    message: String,
}

/// Reconciles one ModelDeployment.
#[instrument(skip_all, fields(name = %md.name_any(), namespace = md.namespace()))]
pub async fn reconcile(md: Arc<ModelDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile.start(CONTROLLER);
    let namespace = md.namespace().unwrap_or_default();
    // Rollout and canary decisions build on the last status written; the
    // cache may not hold it yet, so read it fresh.
    let api: Api<ModelDeployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(md) = api
        .get_opt(&md.name_any())
        .await
        .map_err(Error::kube("reading the ModelDeployment"))?
    else {
        return Ok(Action::await_change());
    };
    let md = Arc::new(md);
    let now = Time(jiff::Timestamp::now());
    let old = md.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = md.metadata.generation;
    status.url = Some(workload::url(&md));
    status.selector = Some(workload::selector(&md));

    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let current = deployments
        .get_opt(&workload::deployment_name(&md, Track::Stable))
        .await
        .map_err(Error::kube("reading the Deployment"))?;
    let current_version = current.as_ref().and_then(deployed_version);

    // Decide which version the stable track should run.
    let model: Option<Model> = Api::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&md.spec.model.name)
        .await
        .map_err(Error::kube("reading the Model"))?;
    let plan = plan(&ctx, &md, model.as_ref(), current_version).await?;
    let (target, problem) = match plan {
        Ok((target, problem)) => (Some(target), problem),
        Err(problem) => (None, Some(problem)),
    };

    let desired = desired_replicas(&md, &old, current.as_ref());
    status.replicas = desired;
    // Surge first: while a migration is in progress, one replica more runs.
    let surge = i32::from(
        old.migrations
            .last()
            .is_some_and(|m| m.outcome == MigrationOutcome::InProgress),
    );
    let foreign_key = access::ensure(&ctx, &md).await?;
    let mut applied = current;
    let mut problem = problem;
    let mut canary_running = false;
    if let Some(target) = &target {
        // With a canary, the stable track keeps the deployed version while
        // the new one is judged beside it.
        let deployed_record = current_version
            .filter(|c| *c != target.version.version)
            .and_then(|c| {
                model
                    .as_ref()?
                    .status
                    .as_ref()?
                    .versions
                    .iter()
                    .find(|v| v.version == c)
                    .cloned()
            });
        let mut stable = (target.version.clone(), desired + surge);
        let mut canary_plan = None;
        if md.spec.rollout.strategy == RolloutStrategy::Canary
            && problem.is_none()
            && let Some(deployed) = deployed_record
        {
            match canary_step(&ctx, &md, &mut status, &target.version, desired, &now).await? {
                CanaryAction::Run {
                    stable: stable_n,
                    canary: canary_n,
                } => {
                    stable = (deployed, stable_n);
                    canary_plan = Some(canary_n);
                }
                CanaryAction::Hold(why) => {
                    stable = (deployed, desired);
                    problem = Some(Problem {
                        reason: reasons::CANARY_ROLLED_BACK,
                        message: why,
                    });
                }
                CanaryAction::Promote => {}
            }
        }
        let default_image = ctx.server_image.clone();
        let build = |version: &ModelVersion, replicas, track| {
            workload::deployment(&Workload {
                md: &md,
                version,
                replicas,
                default_image: &default_image,
                secret: target.secret.as_deref(),
                key_service: &ctx.key_service,
                track,
            })
        };
        applied = Some(apply(&deployments, &build(&stable.0, stable.1, Track::Stable)).await?);
        let canary_name = workload::deployment_name(&md, Track::Canary);
        match canary_plan {
            Some(replicas) => {
                apply(
                    &deployments,
                    &build(&target.version, replicas, Track::Canary),
                )
                .await?;
                canary_running = true;
            }
            None => match deployments
                .delete(&canary_name, &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(Error::kube("removing the canary Deployment")(e)),
            },
        }
        let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
        apply(&services, &workload::service(&md)).await?;
        let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
        let policy =
            workload::network_policy(&md, &ctx.operator_namespace, &ctx.scraper_namespaces);
        apply(&policies, &policy).await?;
        status.resolved_alias = target.alias.clone();
    }

    // Report what serves.
    let rollout = applied.as_ref().map(rollout_state).unwrap_or_default();
    status.ready_replicas = rollout.ready;
    let deployed = applied.as_ref().and_then(deployed_version);
    if rollout.complete {
        status.serving_version = deployed;
    }
    let progressing = (deployed.is_some() && !rollout.complete) || canary_running;
    let progress_message = match (old.serving_version, deployed) {
        (Some(from), Some(to)) if from != to => format!(
            "rolling out version {to} to replace {from}: {}/{} replicas updated and ready",
            rollout.updated_ready, desired
        ),
        (_, Some(to)) => format!(
            "starting version {to}: {}/{} replicas ready",
            rollout.ready, desired
        ),
        _ => "nothing to roll out".to_owned(),
    };
    set(
        &mut status,
        &md,
        types::PROGRESSING,
        progressing,
        if progressing {
            reasons::ROLLING_OUT
        } else {
            reasons::AS_EXPECTED
        },
        if progressing {
            progress_message
        } else {
            "no rollout in progress".into()
        },
        &now,
    );
    let serving = status.serving_version;
    let (ready, ready_reason, ready_message) = match (&problem, serving) {
        (_, Some(v)) if rollout.complete && rollout.ready >= desired => (
            true,
            reasons::AS_EXPECTED,
            format!("version {v} serves on {}/{desired} replicas", rollout.ready),
        ),
        (Some(p), None) => (false, p.reason, p.message.clone()),
        _ => (
            false,
            reasons::REPLICAS_UNAVAILABLE,
            format!("{}/{desired} replicas ready", rollout.ready),
        ),
    };
    set(
        &mut status,
        &md,
        types::READY,
        ready,
        ready_reason,
        ready_message,
        &now,
    );
    if problem.is_none() && !status.unhealthy_replicas.is_empty() {
        let pods: Vec<String> = status
            .unhealthy_replicas
            .iter()
            .map(|r| {
                format!(
                    "{} on {} ({} {:.2} > {:.2})",
                    r.pod,
                    r.node.clone().unwrap_or_default(),
                    r.metric,
                    r.value,
                    r.threshold
                )
            })
            .collect();
        problem = Some(Problem {
            reason: reasons::REPLICA_UNHEALTHY,
            message: format!("unhealthy: {}", pods.join("; ")),
        });
    }
    let (degraded, degraded_reason, degraded_message) = match &problem {
        Some(p) => (true, p.reason, p.message.clone()),
        None => (
            false,
            reasons::AS_EXPECTED,
            "the resolved version can be served".to_owned(),
        ),
    };
    set(
        &mut status,
        &md,
        types::DEGRADED,
        degraded,
        degraded_reason,
        degraded_message.clone(),
        &now,
    );

    if degraded && !conditions_true(&old, types::DEGRADED, degraded_reason) {
        publish(
            &ctx,
            &md,
            Severity::Warning,
            degraded_reason,
            degraded_message,
        )
        .await;
    }
    check_audit_trails(&ctx, &md, &old, &mut status, &now).await?;
    secured(&ctx, &md, &old, &mut status, foreign_key, &now).await;
    if status.serving_version != old.serving_version
        && let Some(version) = status.serving_version
    {
        let from = old
            .serving_version
            .map_or_else(|| "nothing".to_owned(), |v| format!("version {v}"));
        publish(
            &ctx,
            &md,
            Severity::Normal,
            crate::events::reasons::ROLLED_OUT,
            format!("version {version} serves on all {desired} replicas (replacing {from})"),
        )
        .await;
    }
    STATUS.write(&api, &md.name_any(), &old, &status).await?;
    // Secrets are not watched (that would need list on all of them): a
    // missing one is looked for again soon.
    let missing_reference = degraded_reason == reasons::REFERENCE_NOT_FOUND;
    Ok(Action::requeue(if progressing {
        Duration::from_secs(2)
    } else if missing_reference {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(60)
    }))
}

/// Says in status whether callers are checked, and warns once when the
/// servers are `Insecure`.
async fn secured(
    ctx: &Context,
    md: &ModelDeployment,
    old: &ModelDeploymentStatus,
    status: &mut ModelDeploymentStatus,
    foreign_key: Option<String>,
    now: &Time,
) {
    let security = &md.spec.security;
    let enforced = security.mode == SecurityMode::Enforced;
    let broken: Vec<String> = status
        .audit_checkpoints
        .iter()
        .filter_map(|c| c.broken.clone())
        .collect();
    let failing: Vec<String> = status
        .audit_checkpoints
        .iter()
        .filter(|c| c.write_failures > 0)
        .map(|c| format!("{} on {}", c.write_failures, c.pod))
        .collect();
    let (reason, message) = if let (true, Some(foreign)) = (enforced, &foreign_key) {
        (reasons::AUDIT_KEY_FOREIGN, foreign.clone())
    } else if enforced && !broken.is_empty() {
        (reasons::AUDIT_TRAIL_BROKEN, broken.join("; "))
    } else if enforced && !failing.is_empty() {
        (
            reasons::AUDIT_WRITE_FAILING,
            format!(
                "calls could not be recorded ({}): {}; free the trail's volume and replace the pod",
                failing.join(", "),
                match security.audit_failure_policy {
                    AuditFailurePolicy::FailClosed => "they were refused (FailClosed)",
                    AuditFailurePolicy::FailOpen => "they were answered unrecorded (FailOpen)",
                }
            ),
        )
    } else if enforced {
        (
            reasons::ENFORCED,
            format!(
                "callers need a token for audience {:?} and RBAC create on models/infer {:?} (group aimass.io); every call is audited",
                security.audience, md.spec.model.name
            ),
        )
    } else {
        (
            reasons::INSECURE,
            "security.mode is Insecure: anyone who reaches the Service may call the model, and no call is recorded".to_owned(),
        )
    };
    set(
        status,
        md,
        types::SECURED,
        enforced && foreign_key.is_none() && broken.is_empty() && failing.is_empty(),
        reason,
        message.clone(),
        now,
    );
    let was_foreign = old
        .conditions
        .iter()
        .any(|c| c.type_ == types::SECURED && c.reason == reasons::AUDIT_KEY_FOREIGN);
    if reason == reasons::AUDIT_KEY_FOREIGN && !was_foreign {
        publish(ctx, md, Severity::Warning, reason, message.clone()).await;
    }
    let was_insecure = old
        .conditions
        .iter()
        .any(|c| c.type_ == types::SECURED && c.reason == reasons::INSECURE);
    if !enforced && !was_insecure {
        publish(
            ctx,
            md,
            Severity::Warning,
            crate::events::reasons::INSECURE_SERVING,
            message,
        )
        .await;
    }
}

/// What the canary step decided for the tracks.
enum CanaryAction {
    /// Keep running: the stable track and the canary with these replicas.
    Run { stable: i32, canary: i32 },
    /// The canary passed every step: the new version takes the stable track.
    Promote,
    /// The canary was rolled back: the deployed version stays, for this reason.
    Hold(String),
}

/// The counters a canary step is measured from.
struct Baseline {
    version: i64,
    step: i32,
    stable: Snapshot,
    canary: Snapshot,
}

/// The baselines of the canary steps in progress, by ModelDeployment uid.
/// Lost on restart, which only restarts the current step's clock.
#[derive(Default)]
pub struct Baselines(Mutex<HashMap<String, Baseline>>);

impl Baselines {
    fn take(&self, uid: &str) -> Option<Baseline> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(uid)
    }

    fn put(&self, uid: &str, baseline: Baseline) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid.to_owned(), baseline);
    }
}

fn canary_spec(md: &ModelDeployment) -> Result<CanarySpec, Error> {
    match md.spec.rollout.canary.clone() {
        Some(spec) => Ok(spec),
        None => serde_json::from_value(serde_json::json!({}))
            .map_err(|e| Error::InvalidSpec(e.to_string())),
    }
}

/// Runs one step of the canary of `next`: starts it, waits for its
/// replicas and its interval, then judges it against the stable track.
async fn canary_step(
    ctx: &Context,
    md: &ModelDeployment,
    status: &mut ModelDeploymentStatus,
    next: &ModelVersion,
    desired: i32,
    now: &Time,
) -> Result<CanaryAction, Error> {
    let spec = canary_spec(md)?;
    let uid = md.uid().unwrap_or_default();
    match &status.canary {
        Some(c) if c.version == next.version && c.phase == CanaryPhase::RolledBack => {
            return Ok(CanaryAction::Hold(format!(
                "the canary of version {} was rolled back: {}",
                c.version,
                c.message.clone().unwrap_or_default()
            )));
        }
        Some(c) if c.version == next.version && c.phase == CanaryPhase::Promoted => {
            return Ok(CanaryAction::Promote);
        }
        Some(c) if c.version == next.version => {}
        _ => {
            let percent = spec.steps.first().copied().unwrap_or(10);
            status.canary = Some(CanaryStatus {
                version: next.version,
                phase: CanaryPhase::Analysing,
                percent,
                step: 0,
                step_start_time: now.clone(),
                message: Some("starting the canary".into()),
            });
            let _ = ctx.canary_baselines.take(&uid);
            publish(
                ctx,
                md,
                Severity::Normal,
                crate::events::reasons::CANARY_STARTED,
                format!(
                    "version {} takes {percent}% of the replicas for analysis",
                    next.version
                ),
            )
            .await;
        }
    }
    let Some(canary) = status.canary.as_mut() else {
        return Ok(CanaryAction::Promote);
    };
    let (stable_n, canary_n) = canary::split(desired, canary.percent);
    let run = CanaryAction::Run {
        stable: stable_n,
        canary: canary_n,
    };
    let ready = track_pods(ctx, md, Track::Canary).await?;
    if ready.len() < usize::try_from(canary_n).unwrap_or(1) {
        canary.message = Some(format!(
            "waiting for {canary_n} canary replica(s) to be ready ({} so far)",
            ready.len()
        ));
        canary.step_start_time = now.clone();
        return Ok(run);
    }
    let baseline = match ctx.canary_baselines.take(&uid) {
        Some(b) if b.version == canary.version && b.step == canary.step => b,
        _ => {
            let stable = track_snapshot(ctx, md, Track::Stable).await?;
            let canary_now = snapshot_of(&ready).await;
            ctx.canary_baselines.put(
                &uid,
                Baseline {
                    version: canary.version,
                    step: canary.step,
                    stable,
                    canary: canary_now,
                },
            );
            canary.step_start_time = now.clone();
            canary.message = Some(format!(
                "step {} at {}%: measuring for {}s",
                canary.step + 1,
                canary.percent,
                spec.analysis_interval_seconds
            ));
            return Ok(run);
        }
    };
    let elapsed = now.0.as_second() - canary.step_start_time.0.as_second();
    if elapsed < i64::from(spec.analysis_interval_seconds) {
        ctx.canary_baselines.put(&uid, baseline);
        return Ok(run);
    }
    let stable_window = track_snapshot(ctx, md, Track::Stable)
        .await?
        .since(&baseline.stable);
    let canary_window = snapshot_of(&ready).await.since(&baseline.canary);
    match canary::judge(&stable_window, &canary_window, &spec) {
        canary::Verdict::Wait(why) => {
            canary.message = Some(why);
            ctx.canary_baselines.put(&uid, baseline);
            Ok(run)
        }
        canary::Verdict::Pass(why) => {
            let next_step = canary.step + 1;
            if let Some(&percent) = spec
                .steps
                .get(usize::try_from(next_step).unwrap_or(usize::MAX))
            {
                canary.step = next_step;
                canary.percent = percent;
                canary.step_start_time = now.clone();
                canary.message = Some(format!(
                    "step {next_step} passed ({why}); now at {percent}%"
                ));
                let note = format!(
                    "version {} passed step {next_step} ({why}) and now takes {percent}%",
                    canary.version
                );
                publish(
                    ctx,
                    md,
                    Severity::Normal,
                    crate::events::reasons::CANARY_STEP_PASSED,
                    note,
                )
                .await;
                let (stable_n, canary_n) = canary::split(desired, percent);
                Ok(CanaryAction::Run {
                    stable: stable_n,
                    canary: canary_n,
                })
            } else {
                canary.phase = CanaryPhase::Promoted;
                canary.message = Some(format!("every step passed; last: {why}"));
                let note = format!(
                    "version {} passed every canary step and takes all traffic: {why}",
                    canary.version
                );
                publish(
                    ctx,
                    md,
                    Severity::Normal,
                    crate::events::reasons::CANARY_PROMOTED,
                    note,
                )
                .await;
                Ok(CanaryAction::Promote)
            }
        }
        canary::Verdict::Fail(why) => {
            canary.phase = CanaryPhase::RolledBack;
            canary.message = Some(why.clone());
            let note = format!(
                "version {} was rolled back at step {} ({}%): {why}",
                canary.version,
                canary.step + 1,
                canary.percent
            );
            publish(
                ctx,
                md,
                Severity::Warning,
                reasons::CANARY_ROLLED_BACK,
                note.clone(),
            )
            .await;
            Ok(CanaryAction::Hold(note))
        }
    }
}

/// Pod IPs of a track's Ready replicas.
async fn track_pods(
    ctx: &Context,
    md: &ModelDeployment,
    track: Track,
) -> Result<Vec<String>, Error> {
    let selector = format!(
        "{},{}={}",
        workload::selector(md),
        workload::TRACK_LABEL,
        if track == Track::Canary {
            "canary"
        } else {
            "stable"
        }
    );
    Ok(serving_pods(ctx, md, &selector)
        .await?
        .into_iter()
        .map(|(_, ip)| ip)
        .collect())
}

/// Name and IP of each Ready replica matching `selector`.
async fn serving_pods(
    ctx: &Context,
    md: &ModelDeployment,
    selector: &str,
) -> Result<Vec<(String, String)>, Error> {
    Ok(replica_pods(ctx, md, selector)
        .await?
        .into_iter()
        .filter_map(|(pod, ip)| Some((pod, ip?)))
        .collect())
}

/// Every pod matching `selector`, with its IP when it serves.
async fn replica_pods(
    ctx: &Context,
    md: &ModelDeployment,
    selector: &str,
) -> Result<Vec<(String, Option<String>)>, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
    let listed = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(Error::kube(format!(
            "listing the pods of {}",
            md.name_any()
        )))?;
    Ok(listed
        .items
        .iter()
        .map(|pod| (pod.name_any(), workload::serving_ip(pod)))
        .collect())
}

/// Reads every serving replica's audit checkpoint into status, and reports
/// each trail newly found broken.
async fn check_audit_trails(
    ctx: &Context,
    md: &ModelDeployment,
    old: &ModelDeploymentStatus,
    status: &mut ModelDeploymentStatus,
    now: &Time,
) -> Result<(), Error> {
    if md.spec.security.mode != SecurityMode::Enforced {
        status.audit_checkpoints.clear();
        return Ok(());
    }
    // Every replica that still exists keeps its checkpoint: one that is not
    // serving now (restarting, unready) is compared again when it is.
    let pods = replica_pods(ctx, md, &workload::selector(md)).await?;
    let read = futures::future::join_all(pods.into_iter().map(|(pod, ip)| async move {
        let checkpoint = match ip {
            Some(ip) => audit_trail::read(&ip).await,
            None => None,
        };
        (pod, checkpoint)
    }))
    .await;
    let verifying_key = match &old.audit_verifying_key {
        Some(key) => Some(key.clone()),
        None => access::audit_verifying_key(ctx, md).await?,
    };
    let trails = audit_trail::Trails {
        namespace: &md.namespace().unwrap_or_default(),
        model: &md.spec.model.name,
        verifying_key: verifying_key.as_deref(),
    };
    let (kept, findings) = trails.compare(&old.audit_checkpoints, read, now);
    status.audit_checkpoints = kept;
    status.audit_verifying_key = verifying_key;
    for (reason, message) in findings {
        publish(ctx, md, Severity::Warning, reason, message).await;
    }
    Ok(())
}

/// The summed metrics of a track's Ready replicas.
async fn track_snapshot(
    ctx: &Context,
    md: &ModelDeployment,
    track: Track,
) -> Result<Snapshot, Error> {
    Ok(snapshot_of(&track_pods(ctx, md, track).await?).await)
}

/// The summed metrics of the servers at `ips`; silent ones are left out.
async fn snapshot_of(ips: &[String]) -> Snapshot {
    let scraped = futures::future::join_all(
        ips.iter()
            .map(|ip| scrape::scrape(ip, workload::ADMIN_PORT)),
    )
    .await;
    Snapshot::sum(scraped.into_iter().flatten())
}

/// Requeues after a failed reconcile.
pub fn error_policy(_md: Arc<ModelDeployment>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile.failed(CONTROLLER, error.category());
    crate::training_job::retry_after(error)
}

/// The version to run and the Secret that reads it.
struct Target {
    version: ModelVersion,
    alias: Option<String>,
    secret: Option<String>,
}

/// The Secrets `spec.security` names, with what each holds.
fn security_secrets(md: &ModelDeployment) -> Vec<(&str, &'static str)> {
    let security = &md.spec.security;
    let mut secrets = Vec::new();
    if let Some(tls) = &security.tls {
        secrets.push((
            tls.certificate_secret.name.as_str(),
            "holds the servers' TLS certificate",
        ));
        if let Some(clients) = &tls.client_certificates {
            secrets.push((
                clients.ca_secret.name.as_str(),
                "holds the CAs of client certificates",
            ));
        }
    }
    if let Some(secret) = security
        .audit_archive
        .as_ref()
        .and_then(|a| a.secret_ref.as_ref())
    {
        secrets.push((
            secret.name.as_str(),
            "holds the audit archive's credentials",
        ));
    }
    secrets
}

/// Decides the stable track's version: the resolved one when it can be
/// served, else the one already deployed (with the problem), else nothing.
async fn plan(
    ctx: &Context,
    md: &ModelDeployment,
    model: Option<&Model>,
    current: Option<i64>,
) -> Result<Result<(Target, Option<Problem>), Problem>, Error> {
    if let Err(e) = validation::validate_model_deployment(&md.spec) {
        return Ok(Err(Problem {
            reason: reasons::INVALID_SPEC,
            message: e.to_string(),
        }));
    }
    let Some(model) = model else {
        return Ok(Err(Problem {
            reason: reasons::REFERENCE_NOT_FOUND,
            message: format!(
                "Model {:?} does not exist in this namespace",
                md.spec.model.name
            ),
        }));
    };
    let secret = model
        .spec
        .source
        .secret_ref
        .as_ref()
        .or(model
            .spec
            .storage
            .as_ref()
            .and_then(|s| s.secret_ref.as_ref()))
        .map(|s| s.name.clone());
    let versions = model.status.clone().unwrap_or_default().versions;
    let keep_current =
        |problem: Problem| match current.and_then(|c| versions.iter().find(|v| v.version == c)) {
            Some(record) => Ok((
                Target {
                    version: record.clone(),
                    alias: None,
                    secret: secret.clone(),
                },
                Some(problem),
            )),
            None => Err(problem),
        };
    let resolved = match resolve::resolve(model, &md.spec.model) {
        Ok(resolved) => resolved,
        Err(unresolved) => {
            return Ok(keep_current(Problem {
                reason: unresolved.reason,
                message: unresolved.message,
            }));
        }
    };
    let secrets: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
    let needed = secret
        .iter()
        .map(|name| (name.as_str(), "holds the credentials to read the model"))
        .chain(security_secrets(md));
    for (name, purpose) in needed {
        if secrets
            .get_metadata_opt(name)
            .await
            .map_err(Error::kube(format!("reading Secret {name}")))?
            .is_none()
        {
            return Ok(keep_current(Problem {
                reason: reasons::REFERENCE_NOT_FOUND,
                message: format!("Secret {name:?}, which {purpose}, does not exist"),
            }));
        }
    }
    let allowed = md
        .annotations()
        .get(ALLOW_SIGNATURE_CHANGE)
        .is_some_and(|v| v == "true");
    if let Some(serving) = current
        .filter(|c| *c != resolved.version.version)
        .and_then(|c| versions.iter().find(|v| v.version == c))
        && !allowed
        && let (Some(old), Some(new)) = (&serving.signature, &resolved.version.signature)
        && let Some(why) = resolve::incompatible(old, new)
    {
        return Ok(keep_current(Problem {
            reason: reasons::SIGNATURE_CHANGED,
            message: format!(
                "version {} is not rolled out: {why}; callers would break. Annotate the ModelDeployment with {ALLOW_SIGNATURE_CHANGE}=true once they are updated",
                resolved.version.version
            ),
        }));
    }
    Ok(Ok((
        Target {
            version: resolved.version,
            alias: resolved.alias,
            secret,
        },
        None,
    )))
}

/// The replicas the stable track should have: `spec.replicas.count` when the
/// built-in autoscaler is off, otherwise the autoscaler's last decision
/// (before its first, what runs), within the bounds.
fn desired_replicas(
    md: &ModelDeployment,
    status: &ModelDeploymentStatus,
    current: Option<&Deployment>,
) -> i32 {
    let bounds = &md.spec.replicas;
    if !md.spec.autoscaling.enabled {
        return bounds.count.unwrap_or(bounds.min);
    }
    let decided = match &status.last_scale_decision {
        Some(decision) => decision.to,
        None => current
            .and_then(|d| d.spec.as_ref()?.replicas)
            .unwrap_or(bounds.min),
    };
    decided.clamp(bounds.min, bounds.max)
}

/// The version a Deployment's pod template runs.
fn deployed_version(deployment: &Deployment) -> Option<i64> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .labels
        .as_ref()?
        .get(workload::VERSION_LABEL)?
        .parse()
        .ok()
}

/// How far a Deployment's rollout is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Rollout {
    complete: bool,
    ready: i32,
    updated_ready: i32,
}

/// Read from the Deployment's status, as `kubectl rollout status` does.
fn rollout_state(deployment: &Deployment) -> Rollout {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let Some(status) = &deployment.status else {
        return Rollout::default();
    };
    let observed =
        status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    Rollout {
        complete: observed && updated >= wanted && total == updated && available >= wanted,
        ready,
        updated_ready: updated.min(available),
    }
}

async fn apply<K>(api: &Api<K>, object: &K) -> Result<K, Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(object))
        .await
        .map_err(Error::kube(format!("applying {name}")))
}

fn set(
    status: &mut ModelDeploymentStatus,
    md: &ModelDeployment,
    type_: &str,
    value: bool,
    reason: &str,
    message: String,
    now: &Time,
) {
    conditions::set(
        &mut status.conditions,
        Wanted {
            type_,
            status: value,
            reason,
            message,
        },
        md.metadata.generation,
        now,
    );
}

fn conditions_true(status: &ModelDeploymentStatus, type_: &str, reason: &str) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True" && c.reason == reason)
}

async fn publish(
    ctx: &Context,
    md: &ModelDeployment,
    severity: Severity,
    reason: &str,
    note: String,
) {
    ctx.events
        .publish(&md.object_ref(&()), severity, reason, "Serve", note)
        .await;
}
