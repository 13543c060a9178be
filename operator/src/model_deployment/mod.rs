//! The ModelDeployment controller: resolves the Model version to serve,
//! applies the inference servers' Deployment and Service with server-side
//! apply, follows the rollout, and reports what serves in status. A version
//! that cannot be served (missing, not Ready, an incompatible signature, a
//! missing Secret) never replaces the one serving: the conditions say why.
//!
//! A reconcile is four named steps: `observe` (read the object, its
//! Deployment, its Model and which Secrets exist), `target::choose` (pure:
//! what the stable track runs, or what is wrong), `apply` (the tracks, the
//! canary step, the Service and NetworkPolicy) and `report` (pure
//! conditions in `report`, then audit checkpoints and Events), then one
//! status write under the controller's field manager.

pub mod access;
mod analysis;
mod audit_trail;
mod canary;
mod ensemble;
mod pods;
mod report;
mod resolve;
mod soak;
mod target;
pub mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{
    MigrationOutcome, Model, ModelDeployment, ModelDeploymentStatus, ModelVersion, RolloutStrategy,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use tracing::instrument;

use crate::conditions::{self, Wanted};
use crate::context::Context;
use crate::error::{Error, is_not_found};
use crate::events::Notice;
use crate::status::Writer;
use analysis::CanaryAction;
pub use analysis::{Baseline as CanaryBaseline, Baselines};
pub use soak::Baseline as SoakBaseline;
use target::{Choice, Problem, Target};
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

/// What a reconcile reads before it decides.
struct Observed {
    /// The ModelDeployment, read fresh: rollout and canary decisions build
    /// on the last status written, which the cache may not hold yet.
    md: Arc<ModelDeployment>,
    /// The stable track's Deployment.
    current: Option<Deployment>,
    /// The Models it serves from (an ensemble's members'), by name.
    models: BTreeMap<String, Model>,
    /// The Secrets it needs that do not exist.
    missing: BTreeSet<String>,
}

impl Observed {
    /// The version the stable Deployment runs.
    fn current_version(&self) -> Option<i64> {
        self.current.as_ref().and_then(report::deployed_version)
    }

    /// The Model of `spec.model`, when it serves one.
    fn model(&self) -> Option<&Model> {
        self.models.get(&self.md.spec.model.as_ref()?.name)
    }
}

/// What `apply` left running.
struct Applied {
    /// The stable Deployment as applied (or as found).
    deployment: Option<Deployment>,
    /// A canary is being analysed beside it.
    canary_running: bool,
    /// What is wrong with the version wanted, if anything.
    problem: Option<Problem>,
    /// Events to publish once status is written.
    notices: Vec<Notice>,
}

/// Reconciles one ModelDeployment.
#[instrument(skip_all, fields(name = %md.name_any(), namespace = md.namespace()))]
pub async fn reconcile(md: Arc<ModelDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile.start(CONTROLLER);
    let Some(seen) = observe(&ctx, &md).await? else {
        return Ok(Action::await_change());
    };
    let md = seen.md.clone();
    let now = Time(jiff::Timestamp::now());
    let old = md.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = md.metadata.generation;
    status.selector = Some(workload::selector(&md));
    let choice = target::choose(
        &md,
        &seen.models,
        seen.current_version(),
        &seen.missing,
        &now,
    );
    if let Some(combination) = choice.target.as_ref().and_then(|t| t.combination.as_ref()) {
        let keep: Vec<i64> = seen
            .current_version()
            .into_iter()
            .chain(old.serving_version)
            .collect();
        ensemble::record(&mut status.combinations, combination, &keep);
    }
    let shadowing = target::shadow(
        &md,
        &seen.models,
        choice.target.as_ref().map(|t| &t.version),
    );
    let desired = desired_replicas(&md, &old, seen.current.as_ref());
    status.replicas = desired;
    let foreign_key = access::ensure(&ctx, &md).await?;
    let shadow = shadowing.as_ref().ok().and_then(Option::as_ref);
    let applied = apply(&ctx, &seen, choice, shadow, desired, &mut status, &now).await?;
    let mut notices = report(&ctx, &md, &old, &mut status, &applied, desired, &now).await?;
    let secured = report::secured(&md, &status.audit_checkpoints, foreign_key.as_deref());
    set(&mut status, &md, secured, &now);
    match report::shadowing(&md, &shadowing) {
        Some(wanted) => set(&mut status, &md, wanted, &now),
        None => status
            .conditions
            .retain(|c| c.type_ != aimass_crds::v1alpha1::conditions::types::SHADOWING),
    }
    let soaking = soak::measure(&ctx, &md, seen.model(), &mut status, &now).await?;
    let requeue = requeue_after(&status, &applied, soaking);
    notices.extend(applied.notices);
    notices.extend(report::announcements(&old, &status, desired));
    let api: Api<ModelDeployment> =
        Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
    STATUS.write(&api, &md.name_any(), &old, &status).await?;
    ctx.events
        .publish_all(&md.object_ref(&()), "Serve", notices)
        .await;
    Ok(Action::requeue(requeue))
}

/// Reads the ModelDeployment fresh, its stable Deployment, its Models and
/// which of the Secrets it needs are missing; `None` when it is gone.
async fn observe(ctx: &Context, md: &ModelDeployment) -> Result<Option<Observed>, Error> {
    let namespace = md.namespace().unwrap_or_default();
    let Some(md) = Api::<ModelDeployment>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&md.name_any())
        .await
        .map_err(Error::kube("reading the ModelDeployment"))?
    else {
        return Ok(None);
    };
    let current = Api::<Deployment>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&workload::deployment_name(&md, Track::Stable))
        .await
        .map_err(Error::kube("reading the Deployment"))?;
    let models_api: Api<Model> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut models = BTreeMap::new();
    for selector in md.spec.models() {
        if models.contains_key(&selector.name) {
            continue;
        }
        if let Some(model) = models_api
            .get_opt(&selector.name)
            .await
            .map_err(Error::kube(format!("reading Model {}", selector.name)))?
        {
            models.insert(selector.name.clone(), model);
        }
    }
    // Secrets are not watched (that would need list on all of them): a
    // missing one is looked for again soon.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut missing = BTreeSet::new();
    for (name, _) in target::needed_secrets(&md, &models) {
        let found = secrets
            .get_metadata_opt(&name)
            .await
            .map_err(Error::kube(format!("reading Secret {name}")))?;
        if found.is_none() {
            missing.insert(name);
        }
    }
    Ok(Some(Observed {
        md: Arc::new(md),
        current,
        models,
        missing,
    }))
}

/// Applies the tracks the choice calls for (with a canary step when the
/// strategy asks for one), with `shadow` beside the stable track when it
/// serves the target, the Service and the NetworkPolicy.
async fn apply(
    ctx: &Context,
    seen: &Observed,
    choice: Choice,
    shadow: Option<&ModelVersion>,
    desired: i32,
    status: &mut ModelDeploymentStatus,
    now: &Time,
) -> Result<Applied, Error> {
    let md = &seen.md;
    let mut applied = Applied {
        deployment: seen.current.clone(),
        canary_running: false,
        problem: choice.problem,
        notices: Vec::new(),
    };
    let Some(target) = choice.target else {
        return Ok(applied);
    };
    // Surge first: while a migration is in progress, one replica more runs.
    let surge = i32::from(
        status
            .migrations
            .last()
            .is_some_and(|m| m.outcome == MigrationOutcome::InProgress),
    );
    let (stable, canary) = tracks(
        ctx,
        seen,
        &target,
        (desired, surge),
        status,
        &mut applied,
        now,
    )
    .await?;
    let deployments: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
    // The shadow runs beside the stable track when it serves the target.
    let shadow = shadow
        .filter(|_| canary.is_none() && stable.0.version.version == target.version.version)
        .zip(md.spec.shadow.as_ref())
        .map(|(version, spec)| (version, spec.percent));
    let build = |serve: &Target, replicas, track| {
        workload::deployment(&Workload {
            md,
            version: &serve.version,
            combination: serve.combination.as_ref(),
            shadow: shadow.filter(|_| track == Track::Stable),
            replicas,
            default_image: &ctx.server_image,
            secret: serve.secret.as_deref(),
            key_service: &ctx.key_service,
            track,
        })
    };
    applied.deployment =
        Some(server_side_apply(&deployments, &build(&stable.0, stable.1, Track::Stable)).await?);
    match canary {
        Some(replicas) => {
            server_side_apply(&deployments, &build(&target, replicas, Track::Canary)).await?;
            applied.canary_running = true;
        }
        None => remove_canary(&deployments, md).await?,
    }
    let namespace = md.namespace().unwrap_or_default();
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    server_side_apply(&services, &workload::service(md)).await?;
    // Only a Service that exists has an address.
    status.url = Some(workload::url(md));
    status.grpc_address = Some(workload::grpc_address(md));
    let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    let policy = workload::network_policy(md, &ctx.operator_namespace, &ctx.scraper_namespaces);
    server_side_apply(&policies, &policy).await?;
    status.resolved_alias = target.alias.clone();
    Ok(applied)
}

/// The stable track's (version, replicas) and the canary's replicas, if
/// one runs, for `desired` replicas (plus `surge` while a migration runs):
/// with a canary, the stable track keeps the deployed version while the
/// new one is judged beside it.
async fn tracks(
    ctx: &Context,
    seen: &Observed,
    target: &Target,
    (desired, surge): (i32, i32),
    status: &mut ModelDeploymentStatus,
    applied: &mut Applied,
    now: &Time,
) -> Result<((Target, i32), Option<i32>), Error> {
    let md = &seen.md;
    let deployed = seen
        .current_version()
        .filter(|c| *c != target.version.version)
        .and_then(|c| target::deployed(md, &seen.models, c));
    let canary_wanted = md.spec.rollout.strategy == RolloutStrategy::Canary
        && applied.problem.is_none()
        && deployed
            .as_ref()
            .is_some_and(|d| !analysis::is_rollback(d.version.version, target.version.version));
    let Some(deployed) = deployed.filter(|_| canary_wanted) else {
        return Ok(((target.clone(), desired + surge), None));
    };
    let (action, notices) = analysis::step(
        ctx,
        md,
        &mut status.canary,
        target.version.version,
        desired,
        now,
    )
    .await?;
    applied.notices.extend(notices);
    Ok(match action {
        CanaryAction::Run { stable, canary } => ((deployed, stable), Some(canary)),
        CanaryAction::Hold(why) => {
            applied.problem = Some(Problem {
                reason: reasons::CANARY_ROLLED_BACK,
                message: why,
            });
            ((deployed, desired), None)
        }
        CanaryAction::Promote => ((target.clone(), desired + surge), None),
    })
}

/// Removes the canary Deployment, if there is one.
async fn remove_canary(deployments: &Api<Deployment>, md: &ModelDeployment) -> Result<(), Error> {
    let name = workload::deployment_name(md, Track::Canary);
    match deployments.delete(&name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::kube("removing the canary Deployment")(e)),
    }
}

/// Reports what serves: the rollout, the serving conditions, the audit
/// checkpoints. Returns the Events the audit trails call for.
async fn report(
    ctx: &Context,
    md: &ModelDeployment,
    old: &ModelDeploymentStatus,
    status: &mut ModelDeploymentStatus,
    applied: &Applied,
    desired: i32,
    now: &Time,
) -> Result<Vec<Notice>, Error> {
    let rollout = applied
        .deployment
        .as_ref()
        .map(report::rollout_state)
        .unwrap_or_default();
    let deployed = applied
        .deployment
        .as_ref()
        .and_then(report::deployed_version);
    status.ready_replicas = rollout.ready;
    if rollout.complete {
        status.serving_version = deployed;
    }
    let wanted = report::serving_conditions(&report::Serving {
        was_serving: old.serving_version,
        serving: status.serving_version,
        deployed,
        rollout,
        canary_running: applied.canary_running,
        desired,
        problem: applied.problem.as_ref(),
        unhealthy: &status.unhealthy_replicas,
    });
    for condition in wanted {
        set(status, md, condition, now);
    }
    match report::drift_condition(md, status.drift.as_ref()) {
        Some(drift) => set(status, md, drift, now),
        None => status
            .conditions
            .retain(|c| c.type_ != aimass_crds::v1alpha1::conditions::types::DRIFT),
    }
    audit_trail::check(ctx, md, old, status, now).await
}

/// When to look again: soon while a rollout or canary runs, a Secret is
/// missing or the version served soaks, else in a minute.
fn requeue_after(status: &ModelDeploymentStatus, applied: &Applied, soaking: bool) -> Duration {
    let progressing = status.conditions.iter().any(|c| {
        c.type_ == aimass_crds::v1alpha1::conditions::types::PROGRESSING && c.status == "True"
    });
    let missing_reference = applied
        .problem
        .as_ref()
        .is_some_and(|p| p.reason == reasons::REFERENCE_NOT_FOUND);
    if progressing {
        Duration::from_secs(2)
    } else if missing_reference || soaking {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(60)
    }
}

/// Requeues after a failed reconcile.
pub fn error_policy(_md: Arc<ModelDeployment>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile.failed(CONTROLLER, error.category());
    error.retry_after()
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

/// Applies `object` as this controller's field manager.
async fn server_side_apply<K>(api: &Api<K>, object: &K) -> Result<K, Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(object))
        .await
        .map_err(Error::kube(format!("applying {name}")))
}

/// Sets one condition of `status`.
fn set(status: &mut ModelDeploymentStatus, md: &ModelDeployment, wanted: Wanted<'_>, now: &Time) {
    conditions::set(&mut status.conditions, wanted, md.metadata.generation, now);
}
