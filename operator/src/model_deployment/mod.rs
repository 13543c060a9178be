//! The ModelDeployment controller: resolves the Model version to serve,
//! applies the inference servers' Deployment and Service with server-side
//! apply, follows the rollout, and reports what serves in status. A version
//! that cannot be served (missing, not Ready, an incompatible signature, a
//! missing Secret) never replaces the one serving: the conditions say why.

mod resolve;
pub mod workload;

use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{Model, ModelDeployment, ModelDeploymentStatus, ModelVersion};
use aimass_crds::validation;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use tracing::instrument;

use crate::conditions::{self, Wanted};
use crate::context::Context;
use crate::error::{Error, is_not_found};
use crate::events::Severity;
use workload::{Track, Workload};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "modeldeployment";
/// The field manager of everything this controller applies.
const FIELD_MANAGER: &str = "aimass-operator/modeldeployment";
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
    let mut applied = current;
    if let Some(target) = &target {
        let default_image = ctx.server_image.clone();
        let deployment = workload::deployment(&Workload {
            md: &md,
            version: &target.version,
            replicas: desired,
            default_image: &default_image,
            secret: target.secret.as_deref(),
            track: Track::Stable,
        });
        applied = Some(apply(&deployments, &deployment).await?);
        let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
        apply(&services, &workload::service(&md)).await?;
        status.resolved_alias = target.alias.clone();
    }

    // Report what serves.
    let rollout = applied.as_ref().map(rollout_state).unwrap_or_default();
    status.ready_replicas = rollout.ready;
    let deployed = applied.as_ref().and_then(deployed_version);
    if rollout.complete {
        status.serving_version = deployed;
    }
    let progressing = deployed.is_some() && !rollout.complete;
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
            "RolledOut",
            format!("version {version} serves on all {desired} replicas (replacing {from})"),
        )
        .await;
    }
    write_status(&ctx, &md, &old, status).await?;
    Ok(Action::requeue(if progressing {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(60)
    }))
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
    if let Some(name) = &secret {
        let secrets: Api<Secret> =
            Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
        if secrets
            .get_metadata_opt(name)
            .await
            .map_err(Error::kube("reading the storage Secret"))?
            .is_none()
        {
            return Ok(keep_current(Problem {
                reason: reasons::REFERENCE_NOT_FOUND,
                message: format!(
                    "Secret {name:?}, which holds the credentials to read the model, does not exist"
                ),
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
            reason: "SignatureChanged",
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
/// built-in autoscaler is off, otherwise the autoscaler's last figure
/// within the bounds.
fn desired_replicas(
    md: &ModelDeployment,
    status: &ModelDeploymentStatus,
    current: Option<&Deployment>,
) -> i32 {
    let bounds = &md.spec.replicas;
    if !md.spec.autoscaling.enabled {
        return bounds.count.unwrap_or(bounds.min);
    }
    let decided = if status.replicas > 0 {
        status.replicas
    } else {
        current
            .and_then(|d| d.spec.as_ref()?.replicas)
            .unwrap_or(bounds.min)
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

async fn write_status(
    ctx: &Context,
    md: &ModelDeployment,
    old: &ModelDeploymentStatus,
    status: ModelDeploymentStatus,
) -> Result<(), Error> {
    if &status == old {
        return Ok(());
    }
    let api: Api<ModelDeployment> =
        Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
    let patch = serde_json::json!({"status": status});
    match api
        .patch_status(
            &md.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::kube("writing ModelDeployment status")(e)),
    }
}
