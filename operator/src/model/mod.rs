//! The Model controller: keeps the registry of a Model's versions (from
//! storage, imports and training runs), moves its aliases through the
//! promotion gates or the user's pins, applies retention, and starts
//! training runs on creation and on the schedule, never two at once.

mod aliases;
mod backtest;
pub mod evaluation;
mod evidence;
mod failed;
mod follow;
mod import;
mod promotion;
mod registry;
mod retrain;
mod schedule;
mod shadow_trial;
mod training;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{
    FollowStatus, Model, ModelDeployment, ModelStatus, ModelVersion, VersionPhase,
};
use aimass_crds::validation;
use aimass_storage::Location;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use tracing::{debug, instrument, warn};

use crate::conditions::{self, Wanted};
use crate::context::Context;
use crate::error::Error;
use crate::events::{Notice, Severity};
use crate::{artifact, storage};
use aliases::{apply_pins, judge, ready_condition};
pub use failed::error_policy;
use import::{Import, import_source_uri};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "model";
/// The finalizer that deletes a Model's artifacts when it is deleted; set
/// only when `retention.deleteArtifacts` asks for that.
pub const FINALIZER: &str = "aimass.io/delete-artifacts";
/// How many alias moves `status.aliasHistory` keeps.
const ALIAS_HISTORY_LIMIT: usize = 20;
/// The safety-net interval between reconciles.
const RESYNC: Duration = Duration::from_secs(300);
/// How often an import's validation is looked at when no change to its Job
/// woke the Model: the Job changes when its pod finishes, not when the pod
/// cannot start.
const VALIDATION_POLL: Duration = Duration::from_secs(10);
/// The marker retention leaves beside a retired version's record, so a
/// re-created Model does not recover it.
const RETIRED_FILE: &str = "retired.json";

/// Reconciles one Model.
#[instrument(skip_all, fields(name = %model.name_any(), namespace = model.namespace()))]
pub async fn reconcile(model: Arc<Model>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile.start(CONTROLLER);
    let namespace = model.namespace().unwrap_or_default();
    let models: Api<Model> = Api::namespaced(ctx.client.clone(), &namespace);
    if model.meta().deletion_timestamp.is_some() {
        return finalize(&ctx, &models, &model).await;
    }
    ensure_finalizer(&models, &model).await?;

    let now = Time(jiff::Timestamp::now());
    let old = model.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = model.metadata.generation;
    let mut notices = Vec::new();
    let registry = match open(&ctx, &model).await? {
        Opened::Registry(registry) => registry,
        Opened::Refused(message) => {
            return refuse(&ctx, &models, &model, &old, status, message, &now).await;
        }
    };
    // 1, 2. Versions: from storage and source.uri, through the gates.
    // What storage holds when this Model object is reconciled for the first
    // time predates it: no run can have a number from it yet.
    let first_reconcile = old.observed_generation.is_none();
    let importing = sync_versions(
        (&ctx, &model, first_reconcile),
        &mut status,
        registry.as_ref(),
        &now,
        &mut notices,
    )
    .await?;
    // 3. The user's pins win over promotion.
    let unresolved = apply_pins(&model, &mut status, &now, &mut notices);
    let deployments = served_by(&ctx, &model).await?;
    // 4. Retention.
    retention(
        &model,
        &deployments,
        &mut status,
        registry.as_ref(),
        &now,
        &mut notices,
    )
    .await?;
    // 5. Training runs.
    let training = training::reconcile(&ctx, &model, &mut status, &now, &mut notices).await?;
    // 5b. Evaluations of the champion on labelled data.
    let evaluating = evaluation::reconcile(&ctx, &model, &mut status, &now, &mut notices).await?;
    backtest::reconcile(&ctx, &model, &mut status, &now, &mut notices).await?;
    shadow_trial::settle(&model, &deployments, &mut status, &now, &mut notices);
    let requeue = [training, evaluating].into_iter().flatten().min();
    // 6. Evidence from the deployments serving it.
    evidence::collect(&model, &deployments, &mut status, &now, &mut notices);
    status.champion_from = follow::champion_from(&model, &status);
    // 7. Conditions.
    judge_ready(
        &model,
        &mut status,
        &unresolved,
        &importing,
        &now,
        &mut notices,
    );
    if status.aliases != old.aliases
        && let Some(registry) = &registry
    {
        let bytes = serde_json::to_vec_pretty(&status.aliases).unwrap_or_default();
        registry.child(storage::ALIASES_FILE).put(bytes).await?;
    }
    write_status(&models, &model, &old, status).await?;
    ctx.events
        .publish_all(&model.object_ref(&()), "Register", notices)
        .await;
    let requeue = requeue.map_or(RESYNC, |r| r.min(RESYNC));
    Ok(Action::requeue(if importing != Importing::Idle {
        requeue.min(VALIDATION_POLL)
    } else {
        requeue
    }))
}

/// Sets the Ready condition; an import that cannot start is news once.
fn judge_ready(
    model: &Model,
    status: &mut ModelStatus,
    unresolved: &[String],
    importing: &Importing,
    now: &Time,
    notices: &mut Vec<Notice>,
) {
    let blocked = match importing {
        Importing::Blocked(message) => Some(message.as_str()),
        _ => None,
    };
    let ready = ready_condition(model, status, unresolved, blocked);
    if let Some(message) = blocked
        && status
            .conditions
            .iter()
            .all(|c| c.type_ != types::READY || c.reason != reasons::VALIDATION_BLOCKED)
    {
        notices.push(Notice::new(
            Severity::Warning,
            reasons::VALIDATION_BLOCKED,
            message.to_owned(),
        ));
    }
    conditions::set(
        &mut status.conditions,
        ready,
        model.metadata.generation,
        now,
    );
    match status.follow.as_ref().map(follow::promoted_condition) {
        Some(promoted) => conditions::set(
            &mut status.conditions,
            promoted,
            model.metadata.generation,
            now,
        ),
        None => status.conditions.retain(|c| c.type_ != types::PROMOTED),
    }
}

/// The registry a valid spec names, or why the spec is refused.
enum Opened {
    /// The registry (`None` without `spec.storage`).
    Registry(Option<Location>),
    /// Why the operator will not act on the spec.
    Refused(String),
}

/// Checks what the schema cannot and opens the registry.
async fn open(ctx: &Context, model: &Model) -> Result<Opened, Error> {
    if let Err(e) = validation::validate_model(&model.spec) {
        return Ok(Opened::Refused(e.to_string()));
    }
    if let Some(message) = model
        .spec
        .source
        .uri
        .as_deref()
        .and_then(|uri| artifact::refused_source("source.uri", uri))
    {
        return Ok(Opened::Refused(message));
    }
    let Some(spec) = &model.spec.storage else {
        return Ok(Opened::Registry(None));
    };
    let namespace = model.namespace().unwrap_or_default();
    match storage::open_registry(
        &ctx.client,
        &ctx.storage,
        &namespace,
        spec,
        &model.name_any(),
    )
    .await
    {
        Ok(registry) => Ok(Opened::Registry(Some(registry))),
        Err(Error::InvalidSpec(message)) => Ok(Opened::Refused(message)),
        Err(e) => Err(e),
    }
}

/// Recovers and picks up version records from storage, imports
/// `source.uri`, and judges each new version, oldest first, against the
/// alias holder; on the Model's `first_reconcile`, what storage holds is
/// recovered as it is. Returns whether an import is being validated.
async fn sync_versions(
    (ctx, model, first_reconcile): (&Context, &Model, bool),
    status: &mut ModelStatus,
    registry: Option<&Location>,
    now: &Time,
    notices: &mut Vec<Notice>,
) -> Result<Importing, Error> {
    let known: BTreeSet<i64> = status.versions.iter().map(|v| v.version).collect();
    let arrived = match registry {
        Some(registry) => read_new_records(registry, &known).await?,
        None => Vec::new(),
    };
    // Recovered versions keep their records and skip the gates.
    debug!(
        first_reconcile,
        arrived = arrived.len(),
        known = known.len(),
        "registry sync"
    );
    let (recovered, mut fresh): (Vec<_>, Vec<_>) =
        arrived.into_iter().partition(|_| first_reconcile);
    let mut importing = Importing::Idle;
    // At most one of the two applies: the schema allows one source.
    let seen = [recovered.as_slice(), fresh.as_slice()].concat();
    if let Some(uri) = model.spec.source.uri.clone() {
        let progress = import_source_uri(ctx, model, status, registry, &uri, &seen).await?;
        importing = importing.after(progress, &mut fresh);
    }
    if let Some(followed) = follow::follow(ctx, model, status, registry, &seen, now).await? {
        importing = importing.after(followed.progress, &mut fresh);
        announce_follow(status.follow.as_ref(), &followed.status, notices);
        status.follow = Some(followed.status);
    } else {
        status.follow = None;
    }
    if !recovered.is_empty() {
        let note = format!("recovered versions {} from storage", list(&recovered));
        notices.push(Notice::new(
            Severity::Normal,
            crate::events::reasons::VERSIONS_RECOVERED,
            note,
        ));
        status.versions = registry::merge(&status.versions, recovered);
        if status.aliases.is_empty()
            && let Some(registry) = registry
        {
            status.aliases = read_aliases(registry, &status.versions).await;
        }
    }
    for mut version in fresh {
        if version.phase == VersionPhase::Ready {
            judge(model, status, &mut version, now, notices);
        } else {
            let note = format!(
                "version {} was rejected: {}",
                version.version,
                version.message.clone().unwrap_or_default()
            );
            warn!(version = version.version, "{note}");
            notices.push(Notice::new(
                Severity::Warning,
                crate::events::reasons::VERSION_REJECTED,
                note,
            ));
        }
        status.versions = registry::merge(&status.versions, vec![version]);
    }
    status.latest_registered_version = status.versions.iter().map(|v| v.version).max();
    status.latest_version = status
        .versions
        .iter()
        .map(|v| v.version)
        .chain(status.latest_version)
        .max();
    Ok(importing)
}

/// A Warning Event when following waits or is refused for a new reason.
fn announce_follow(old: Option<&FollowStatus>, new: &FollowStatus, notices: &mut Vec<Notice>) {
    let changed = old.is_none_or(|o| o.reason != new.reason || o.source != new.source);
    let waiting = new
        .reason
        .as_deref()
        .is_some_and(|r| r != reasons::PROMOTED && r != reasons::VALIDATING);
    if changed && waiting {
        notices.push(Notice::new(
            Severity::Warning,
            crate::events::reasons::PROMOTION_WAITING,
            format!(
                "{}: {}",
                new.reason.clone().unwrap_or_default(),
                new.message.clone().unwrap_or_default()
            ),
        ));
    }
}

/// Where importing an artifact stands after a reconcile.
#[derive(Debug, PartialEq)]
enum Importing {
    /// Nothing to import.
    Idle,
    /// Its validation runs.
    Validating,
    /// Its validation cannot start; why.
    Blocked(String),
}

impl Importing {
    /// Where importing stands after `progress` (`None`: nothing to import);
    /// a recorded version joins `fresh`.
    fn after(self, progress: Option<Import>, fresh: &mut Vec<ModelVersion>) -> Self {
        match progress {
            Some(Import::Recorded(version)) => {
                fresh.push(*version);
                self
            }
            Some(Import::Validating) => Importing::Validating,
            Some(Import::Blocked(message)) => Importing::Blocked(message),
            None => self,
        }
    }
}

/// Keeps the last `retention.keepLast` versions and every protected one
/// (aliased, served); retires the others in storage.
async fn retention(
    model: &Model,
    deployments: &[ModelDeployment],
    status: &mut ModelStatus,
    registry: Option<&Location>,
    now: &Time,
    notices: &mut Vec<Notice>,
) -> Result<(), Error> {
    let protected = protected_versions(model, deployments, status);
    let keep_last = usize::try_from(model.spec.retention.keep_last).unwrap_or(1);
    let (kept, dropped) =
        registry::retain(std::mem::take(&mut status.versions), keep_last, &protected);
    status.versions = kept;
    if dropped.is_empty() {
        return Ok(());
    }
    if let Some(registry) = registry {
        retire(
            registry,
            &dropped,
            model.spec.retention.delete_artifacts,
            now,
        )
        .await?;
    }
    let note = format!(
        "retention (keepLast {keep_last}) removed versions {}",
        list(&dropped)
    );
    notices.push(Notice::new(
        Severity::Normal,
        crate::events::reasons::VERSIONS_RETIRED,
        note,
    ));
    Ok(())
}

/// Reports a spec the operator will not act on (`Ready=False InvalidSpec`
/// with a Warning Event when it is new) and waits for a change.
async fn refuse(
    ctx: &Context,
    models: &Api<Model>,
    model: &Model,
    old: &ModelStatus,
    mut status: ModelStatus,
    message: String,
    now: &Time,
) -> Result<Action, Error> {
    let fresh = old
        .conditions
        .iter()
        .find(|c| c.type_ == types::READY)
        .is_none_or(|c| c.message != message);
    warn!(%message, "refusing the Model's spec");
    set_ready(
        &mut status,
        model,
        false,
        reasons::INVALID_SPEC,
        message.clone(),
        now,
    );
    write_status(models, model, old, status).await?;
    if fresh {
        ctx.events
            .publish(
                &model.object_ref(&()),
                Severity::Warning,
                reasons::INVALID_SPEC,
                "Register",
                message,
            )
            .await;
    }
    Ok(Action::requeue(RESYNC))
}

fn list(versions: &[ModelVersion]) -> String {
    versions
        .iter()
        .map(|v| format!("v{}", v.version))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records in storage that status does not hold, skipping retired ones.
async fn read_new_records(
    registry: &Location,
    known: &BTreeSet<i64>,
) -> Result<Vec<ModelVersion>, Error> {
    let names = registry.list().await?;
    let retired: BTreeSet<&str> = names
        .iter()
        .filter_map(|n| n.strip_suffix(&format!("/{RETIRED_FILE}")))
        .collect();
    let mut records = Vec::new();
    for version in storage::versions_in(&names) {
        if known.contains(&version) || retired.contains(version.to_string().as_str()) {
            continue;
        }
        let record = storage::version_dir(registry, version).child(storage::VERSION_FILE);
        match record
            .get_if_exists(storage::RECORD_LIMIT)
            .await
            .map(|b| b.map(|b| serde_json::from_slice::<ModelVersion>(&b)))
        {
            Ok(Some(Ok(parsed))) if parsed.version == version => records.push(parsed),
            Ok(_) => warn!(uri = record.uri, "ignoring an unreadable version record"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(records)
}

async fn read_aliases(registry: &Location, versions: &[ModelVersion]) -> BTreeMap<String, i64> {
    let Ok(Some(bytes)) = registry
        .child(storage::ALIASES_FILE)
        .get_if_exists(storage::RECORD_LIMIT)
        .await
    else {
        return BTreeMap::new();
    };
    let aliases: BTreeMap<String, i64> = serde_json::from_slice(&bytes).unwrap_or_default();
    aliases
        .into_iter()
        .filter(|(_, v)| versions.iter().any(|r| r.version == *v))
        .collect()
}

/// Versions retention must keep: those an alias points at, and those one of
/// the Model's ModelDeployments pins or serves.
fn protected_versions(
    model: &Model,
    deployments: &[ModelDeployment],
    status: &ModelStatus,
) -> BTreeSet<i64> {
    let mut protected: BTreeSet<i64> = status
        .aliases
        .values()
        .chain(model.spec.aliases.values())
        .copied()
        .collect();
    let name = model.name_any();
    for md in deployments {
        protected.extend(
            md.spec
                .models()
                .filter(|m| m.name == name)
                .filter_map(|m| m.version),
        );
        let status = md.status.clone().unwrap_or_default();
        if md.spec.model.is_some() {
            protected.extend(status.serving_version);
        }
        // An ensemble keeps every recorded member version: it may roll back
        // to any of them.
        protected.extend(
            status
                .combinations
                .iter()
                .flat_map(|c| c.all_members())
                .filter(|m| m.model == name)
                .map(|m| m.version),
        );
    }
    protected
}

/// The ModelDeployments of the Model's namespace that serve it.
async fn served_by(ctx: &Context, model: &Model) -> Result<Vec<ModelDeployment>, Error> {
    let deployments: Api<ModelDeployment> =
        Api::namespaced(ctx.client.clone(), &model.namespace().unwrap_or_default());
    let listed = deployments
        .list(&Default::default())
        .await
        .map_err(Error::kube("listing ModelDeployments"))?;
    Ok(listed
        .items
        .into_iter()
        .filter(|md| md.spec.models().any(|m| m.name == model.name_any()))
        .collect())
}

/// Retires dropped versions in storage: deletes their files when the user
/// asked for it, otherwise leaves a marker so they are not recovered.
async fn retire(
    registry: &Location,
    dropped: &[ModelVersion],
    delete: bool,
    now: &Time,
) -> Result<(), Error> {
    for version in dropped {
        let dir = storage::version_dir(registry, version.version);
        if delete {
            for name in dir.list().await? {
                dir.child(&name).delete().await?;
            }
        } else {
            let marker = serde_json::json!({ "retiredAt": now });
            dir.child(RETIRED_FILE)
                .put(marker.to_string().into_bytes())
                .await?;
        }
    }
    Ok(())
}

fn set_ready(
    status: &mut ModelStatus,
    model: &Model,
    ready: bool,
    reason: &str,
    message: String,
    now: &Time,
) {
    conditions::set(
        &mut status.conditions,
        Wanted {
            type_: types::READY,
            status: ready,
            reason,
            message,
        },
        model.metadata.generation,
        now,
    );
}

/// Replaces the status under optimistic concurrency (training runs reserve
/// version numbers in it too); skips the write when nothing changed.
async fn write_status(
    models: &Api<Model>,
    model: &Model,
    old: &ModelStatus,
    status: ModelStatus,
) -> Result<(), Error> {
    if &status == old {
        return Ok(());
    }
    let mut updated = model.clone();
    updated.status = Some(status);
    crate::status::replace(models, &updated).await
}

/// Adds the finalizer when artifacts must be deleted with the Model, and
/// removes it when that is no longer asked for.
async fn ensure_finalizer(models: &Api<Model>, model: &Model) -> Result<(), Error> {
    let wanted = model.spec.retention.delete_artifacts && model.spec.storage.is_some();
    let has = model.finalizers().iter().any(|f| f == FINALIZER);
    if wanted == has {
        return Ok(());
    }
    set_finalizer(models, model, wanted).await
}

/// Adds or removes this controller's finalizer, leaving others alone; under
/// optimistic concurrency, so a finalizer another writer just added stays.
async fn set_finalizer(models: &Api<Model>, model: &Model, present: bool) -> Result<(), Error> {
    let mut finalizers: Vec<String> = model
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    if present {
        finalizers.push(FINALIZER.into());
    }
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": model.resource_version()}});
    models
        .patch(
            &model.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(Error::kube("updating the Model's finalizers"))?;
    Ok(())
}

/// Deletes the Model's artifacts (only when the finalizer is there, that is,
/// when the user asked for it), then lets the deletion finish.
async fn finalize(ctx: &Context, models: &Api<Model>, model: &Model) -> Result<Action, Error> {
    if !model.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    if let Some(s) = &model.spec.storage {
        let namespace = model.namespace().unwrap_or_default();
        let registry =
            storage::open_registry(&ctx.client, &ctx.storage, &namespace, s, &model.name_any())
                .await?;
        for name in registry.list().await? {
            registry.child(&name).delete().await?;
        }
        ctx.events
            .publish(
                &model.object_ref(&()),
                Severity::Normal,
                crate::events::reasons::ARTIFACTS_DELETED,
                "Delete",
                format!("deleted the artifacts under {}", registry.uri),
            )
            .await;
    }
    set_finalizer(models, model, false).await?;
    Ok(Action::await_change())
}
