//! Surge-first migration of an unhealthy replica. The state lives in
//! `status.migrations` (so a restarted operator carries on): a record `InProgress`
//! makes the controller run one replica more; the replacement (the newest
//! Ready pod created after the record) must answer a warm-up inference and
//! must not land on the node being left or on a node left recently; then the
//! PodDisruptionBudgets are asked through a dry-run eviction, the unhealthy
//! pod gets the lowest `controller.kubernetes.io/pod-deletion-cost`, and the
//! record is `Completed`: the replicas return to the autoscaler's count and
//! the ReplicaSet removes exactly that pod, which drains gracefully. (A real
//! eviction would make the ReplicaSet replace the pod it just lost.) A
//! replacement not ready in time is abandoned, and the old replica kept.

use std::collections::HashMap;

use aimass_crds::v1alpha1::{
    MigrationOutcome, MigrationRecord, MigrationSpec, ModelDeployment, SecurityMode,
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};

use super::evaluate::{Tracks, is_fleet_wide};
use crate::context::Context;
use crate::events::Severity;
use crate::model_deployment::workload;

/// The annotation that makes the ReplicaSet remove a pod first.
const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// How many migration records status keeps.
const RECORDS: usize = 20;
/// How long a node left by a migration is avoided, in seconds.
const AVOID_SECONDS: i64 = 1800;
/// The operator-wide switch: a ConfigMap in the operator's namespace.
pub const SETTINGS_CONFIGMAP: &str = "aimass-operator-settings";
/// Its key that pauses every migration when `"true"` (the chart's
/// `migrations.paused`).
pub const PAUSED_KEY: &str = "migrations-paused";
/// A ConfigMap in the operator's namespace whose existence pauses every
/// migration: the switch for an incident, made and removed with kubectl.
/// No chart manages it, so an upgrade neither conflicts with it nor undoes
/// it.
pub const INCIDENT_PAUSE_CONFIGMAP: &str = "aimass-migrations-paused";

/// What one migration step changed.
pub struct Outcome {
    /// The records to write, when they changed.
    pub records: Option<Vec<MigrationRecord>>,
    /// Whether administrators paused migrations.
    pub paused: bool,
}

/// Advances the migrations of `md` (`records`, newest last) by one step.
pub async fn step(
    ctx: &Context,
    md: &ModelDeployment,
    records: &[MigrationRecord],
    tracks: &Tracks,
    nodes: &HashMap<String, Option<String>>,
    switch: &mut PauseSwitch,
    now: jiff::Timestamp,
) -> Result<Outcome, kube::Error> {
    let paused = switch.paused(ctx).await?;
    if !md.spec.migration.enabled {
        return Ok(Outcome {
            records: None,
            paused,
        });
    }
    let mut records = records.to_vec();
    let in_progress = records
        .last()
        .is_some_and(|r| r.outcome == MigrationOutcome::InProgress);
    let changed = if in_progress {
        advance(ctx, md, &mut records, now).await?
    } else if let Some((record, note)) = begin(md, &records, tracks, nodes, paused, now) {
        announce(ctx, md, &record, note).await?;
        records.push(record);
        let excess = records.len().saturating_sub(RECORDS);
        records.drain(..excess);
        true
    } else {
        false
    };
    Ok(Outcome {
        records: changed.then_some(records),
        paused,
    })
}

/// The record of a migration starting now, for the first unhealthy replica
/// of a known node, and the note of its Event. Pure.
fn begin(
    md: &ModelDeployment,
    records: &[MigrationRecord],
    tracks: &Tracks,
    nodes: &HashMap<String, Option<String>>,
    paused: bool,
    now: jiff::Timestamp,
) -> Option<(MigrationRecord, String)> {
    let (pod, track) = tracks
        .iter()
        .find(|(p, t)| t.unhealthy && t.breach.is_some() && nodes.contains_key(*p))?;
    let breach = track.breach.as_ref()?;
    let fleet_wide = is_fleet_wide(tracks, nodes.len());
    let outcome = start(
        &md.spec.migration,
        records,
        pod,
        fleet_wide,
        paused,
        now.as_second(),
    )?;
    let node = nodes.get(pod).cloned().flatten();
    let message = match outcome {
        MigrationOutcome::Paused => "migrations are paused operator-wide; nothing was done",
        MigrationOutcome::DryRun => {
            "dry run: a replacement would have been started away from this node"
        }
        _ => "starting a replacement away from this node",
    };
    let note = format!(
        "pod {pod} on {}: {} {:.2} crossed {:.2}: {message}",
        node.as_deref().unwrap_or("?"),
        breach.metric,
        breach.value,
        breach.threshold
    );
    let record = MigrationRecord {
        time: Time(now),
        pod: pod.clone(),
        node,
        replacement_pod: None,
        replacement_node: None,
        metric: breach.metric.to_owned(),
        value: breach.value,
        threshold: breach.threshold,
        outcome,
        completion_time: (outcome != MigrationOutcome::InProgress).then_some(Time(now)),
        message: Some(message.to_owned()),
    };
    Some((record, note))
}

/// Says a migration starts; one in progress first labels its pod so that new
/// replicas avoid that pod's node.
async fn announce(
    ctx: &Context,
    md: &ModelDeployment,
    record: &MigrationRecord,
    note: String,
) -> Result<(), kube::Error> {
    if record.outcome == MigrationOutcome::InProgress {
        let pods: Api<Pod> =
            Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
        let patch = serde_json::json!({"metadata": {"labels": {workload::LEAVING_LABEL: "true"}}});
        pods.patch(&record.pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    let reason = match record.outcome {
        MigrationOutcome::Paused => crate::events::reasons::MIGRATION_PAUSED,
        MigrationOutcome::DryRun => crate::events::reasons::MIGRATION_DRY_RUN,
        _ => crate::events::reasons::MIGRATION_STARTED,
    };
    ctx.events
        .publish(
            &md.object_ref(&()),
            Severity::Warning,
            reason,
            "Migrate",
            note,
        )
        .await;
    Ok(())
}

/// Whether a migration of the unhealthy replica `pod` starts now, and as
/// what: nothing when the whole fleet is sick (that is load, the
/// autoscaler's job) or within the cooldown of the last migration; a
/// `Paused` record (once per cooldown for the same pod) while
/// administrators pause migrations; a `DryRun` record; or a real one.
pub fn start(
    spec: &MigrationSpec,
    records: &[MigrationRecord],
    pod: &str,
    fleet_wide: bool,
    paused: bool,
    now: i64,
) -> Option<MigrationOutcome> {
    if fleet_wide {
        return None;
    }
    let within_cooldown =
        |r: &MigrationRecord| now - r.time.0.as_second() < i64::from(spec.cooldown_seconds);
    if records
        .iter()
        .rev()
        .find(|r| r.outcome != MigrationOutcome::Paused)
        .is_some_and(within_cooldown)
    {
        return None;
    }
    if paused {
        let told = records.last().is_some_and(|r| {
            r.outcome == MigrationOutcome::Paused && r.pod == pod && within_cooldown(r)
        });
        return (!told).then_some(MigrationOutcome::Paused);
    }
    Some(if spec.dry_run {
        MigrationOutcome::DryRun
    } else {
        MigrationOutcome::InProgress
    })
}

/// Whether an operator-wide switch pauses migrations (the chart's setting,
/// or the incident switch), read at most once per monitor round however
/// many ModelDeployments the round reviews.
#[derive(Debug, Default)]
pub struct PauseSwitch {
    read: Option<bool>,
}

impl PauseSwitch {
    /// Whether migrations are paused, read on the round's first question.
    pub async fn paused(&mut self, ctx: &Context) -> Result<bool, kube::Error> {
        if let Some(paused) = self.read {
            return Ok(paused);
        }
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.operator_namespace);
        let setting = api
            .get_opt(SETTINGS_CONFIGMAP)
            .await?
            .and_then(|c| c.data?.get(PAUSED_KEY).cloned())
            .is_some_and(|v| v == "true");
        let paused = setting
            || api
                .get_metadata_opt(INCIDENT_PAUSE_CONFIGMAP)
                .await?
                .is_some();
        self.read = Some(paused);
        Ok(paused)
    }
}

/// Moves the migration in progress on; returns whether its record changed.
async fn advance(
    ctx: &Context,
    md: &ModelDeployment,
    records: &mut [MigrationRecord],
    now: jiff::Timestamp,
) -> Result<bool, kube::Error> {
    let avoided: Vec<String> = records_left(records, now);
    let Some(record) = records.last_mut() else {
        return Ok(false);
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
    let listed = pods
        .list(&ListParams::default().labels(&workload::selector(md)))
        .await?
        .items;
    let timed_out = now.as_second() - record.time.0.as_second()
        > i64::from(md.spec.migration.replacement_timeout_seconds);
    let next = match replacement(&listed, record) {
        None if timed_out => Next::Finish(
            MigrationOutcome::Abandoned,
            "no replacement was created in time; the replica stays".into(),
        ),
        None => Next::Wait { changed: false },
        Some(replacement) => {
            let check = Check {
                ctx,
                md,
                pods: &pods,
                timed_out,
                avoided: &avoided,
            };
            check.replacement(record, replacement).await?
        }
    };
    match next {
        Next::Wait { changed } => Ok(changed),
        Next::Finish(outcome, message) => {
            record.outcome = outcome;
            record.completion_time = Some(Time(now));
            record.message = Some(message);
            publish_end(ctx, md, record).await;
            Ok(true)
        }
    }
}

/// Where a migration in progress goes next.
#[derive(Debug, PartialEq)]
enum Next {
    /// Not yet; `changed` when the record says more than before.
    Wait { changed: bool },
    /// Done, as this outcome, for this reason.
    Finish(MigrationOutcome, String),
}

/// The replacement of the migration `record`: the newest pod, not being
/// deleted, created at or after the record. Pure.
fn replacement<'a>(pods: &'a [Pod], record: &MigrationRecord) -> Option<&'a Pod> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            // Both times are stored to the second: a pod created in the
            // record's second is the replacement.
            p.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|c| c.0.as_second() >= record.time.0.as_second())
        })
        .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|c| c.0))
}

/// What a replacement is checked with.
struct Check<'a> {
    ctx: &'a Context,
    md: &'a ModelDeployment,
    pods: &'a Api<Pod>,
    /// The replacement had its time.
    timed_out: bool,
    /// Nodes left recently.
    avoided: &'a [String],
}

impl Check<'_> {
    /// Judges `replacement`: where it landed, whether it answers, and
    /// whether the PodDisruptionBudgets let the old replica go.
    async fn replacement(
        &self,
        record: &mut MigrationRecord,
        replacement: &Pod,
    ) -> Result<Next, kube::Error> {
        let name = replacement.name_any();
        let node = replacement.spec.as_ref().and_then(|s| s.node_name.clone());
        record.replacement_pod = Some(name.clone());
        record.replacement_node = node.clone();
        let lands_badly = node.is_some()
            && (node == record.node || node.as_ref().is_some_and(|n| self.avoided.contains(n)));
        if lands_badly {
            set_cost(self.pods, &name, -1000).await?;
            return Ok(Next::Finish(
                MigrationOutcome::Abandoned,
                format!(
                    "the replacement landed on {} (the node being left, or one left recently); it was abandoned",
                    node.unwrap_or_default()
                ),
            ));
        }
        let warmed = match workload::serving_ip(replacement) {
            Some(ip) => warm_up(self.ctx, self.md, &ip).await,
            None => false,
        };
        if !warmed {
            if !self.timed_out {
                return Ok(Next::Wait { changed: false });
            }
            set_cost(self.pods, &name, -1000).await?;
            return Ok(Next::Finish(
                MigrationOutcome::Abandoned,
                format!("the replacement {name} was not ready and warm in time; the replica stays"),
            ));
        }
        self.release(record, &name, node.unwrap_or_default()).await
    }

    /// Lets the old replica go once the PodDisruptionBudgets allow it (asked
    /// with a dry-run eviction): the lowest deletion cost makes the
    /// ReplicaSet remove exactly it.
    async fn release(
        &self,
        record: &mut MigrationRecord,
        name: &str,
        node: String,
    ) -> Result<Next, kube::Error> {
        let dry_run = EvictParams {
            post_options: PostParams {
                dry_run: true,
                ..PostParams::default()
            },
            ..EvictParams::default()
        };
        match self.pods.evict(&record.pod, &dry_run).await {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Next::Finish(
                MigrationOutcome::Completed,
                format!("{} was already gone; {name} replaces it", record.pod),
            )),
            Err(e) => {
                record.message = Some(format!(
                    "waiting for the PodDisruptionBudget to allow removing {}: {e}",
                    record.pod
                ));
                Ok(Next::Wait { changed: true })
            }
            Ok(_) => {
                set_cost(self.pods, &record.pod, -1000).await?;
                Ok(Next::Finish(
                    MigrationOutcome::Completed,
                    format!(
                        "{name} on {node} is ready and answered a warm-up inference; {} is removed",
                        record.pod
                    ),
                ))
            }
        }
    }
}

/// Nodes left by migrations in the last half hour.
fn records_left(records: &[MigrationRecord], now: jiff::Timestamp) -> Vec<String> {
    records
        .iter()
        .filter(|r| {
            r.outcome == MigrationOutcome::Completed
                && now.as_second() - r.time.0.as_second() < AVOID_SECONDS
        })
        .filter_map(|r| r.node.clone())
        .collect()
}

async fn set_cost(pods: &Api<Pod>, pod: &str, cost: i32) -> Result<(), kube::Error> {
    let patch = serde_json::json!({"metadata": {"annotations": {DELETION_COST: cost.to_string()}}});
    pods.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

async fn publish_end(ctx: &Context, md: &ModelDeployment, record: &MigrationRecord) {
    let (severity, reason) = match record.outcome {
        MigrationOutcome::Completed => (
            Severity::Normal,
            crate::events::reasons::MIGRATION_COMPLETED,
        ),
        _ => (
            Severity::Warning,
            crate::events::reasons::MIGRATION_ABANDONED,
        ),
    };
    let note = format!(
        "pod {}: {}",
        record.pod,
        record.message.clone().unwrap_or_default()
    );
    ctx.events
        .publish(&md.object_ref(&()), severity, reason, "Migrate", note)
        .await;
}

/// Whether the server at `ip` answers an inference: its admin port's
/// warm-up runs a request of zeros through the whole request path, with no
/// caller credentials needed. An `Enforced` server takes it only with the
/// operator's proof, made with the audit key it handed over.
async fn warm_up(ctx: &Context, md: &ModelDeployment, ip: &str) -> bool {
    use aimass_audit::key_handover::{WARM_UP_HEADER, warm_up_proof};
    let mut headers = Vec::new();
    if md.spec.security.mode == SecurityMode::Enforced {
        let keys = crate::model_deployment::access::read_audit_keys(
            &ctx.client,
            &ctx.audit_key_namespace,
            md,
        )
        .await;
        match keys.map(|k| k.map(|k| k.chain_key())) {
            Ok(Some(Ok(key))) => headers.push((
                WARM_UP_HEADER,
                warm_up_proof(&key, jiff::Timestamp::now().as_second()),
            )),
            Ok(None) => {
                tracing::warn!("no audit key yet to prove a warm-up with");
                return false;
            }
            Ok(Some(Err(error))) => {
                tracing::warn!(%error, "no audit key to prove a warm-up with");
                return false;
            }
            Err(error) => {
                tracing::warn!(%error, "no audit key to prove a warm-up with");
                return false;
            }
        }
    }
    crate::scrape::post_json(
        &format!("http://{ip}:{}/warm-up", workload::ADMIN_PORT),
        &serde_json::json!({}),
        &headers,
    )
    .await
}

#[cfg(test)]
mod tests;
