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
/// Its key that pauses every migration when `"true"`.
pub const PAUSED_KEY: &str = "migrations-paused";

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
    now: jiff::Timestamp,
) -> Result<Outcome, kube::Error> {
    let spec = &md.spec.migration;
    let paused = paused(ctx).await?;
    if !spec.enabled {
        return Ok(Outcome {
            records: None,
            paused,
        });
    }
    let mut records = records.to_vec();
    let in_progress = records
        .last()
        .is_some_and(|r| r.outcome == MigrationOutcome::InProgress);
    if in_progress {
        let changed = advance(ctx, md, &mut records, now).await?;
        return Ok(Outcome {
            records: changed.then_some(records),
            paused,
        });
    }
    let candidate = tracks
        .iter()
        .find(|(p, t)| t.unhealthy && t.breach.is_some() && nodes.contains_key(*p));
    let fleet_wide = is_fleet_wide(tracks, nodes.len());
    let Some(((pod, track), outcome)) = candidate.and_then(|c| {
        Some((
            c,
            start(
                spec,
                &records,
                &c.0.clone(),
                fleet_wide,
                paused,
                now.as_second(),
            )?,
        ))
    }) else {
        return Ok(Outcome {
            records: None,
            paused,
        });
    };
    let Some(breach) = track.breach.clone() else {
        return Ok(Outcome {
            records: None,
            paused,
        });
    };
    let node = nodes.get(pod).cloned().flatten();
    let message = match outcome {
        MigrationOutcome::Paused => {
            "migrations are paused operator-wide; nothing was done".to_owned()
        }
        MigrationOutcome::DryRun => {
            "dry run: a replacement would have been started away from this node".to_owned()
        }
        _ => "starting a replacement away from this node".to_owned(),
    };
    let record = MigrationRecord {
        time: Time(now),
        pod: pod.clone(),
        node: node.clone(),
        replacement_pod: None,
        replacement_node: None,
        metric: breach.metric.to_owned(),
        value: breach.value,
        threshold: breach.threshold,
        outcome,
        completion_time: (outcome != MigrationOutcome::InProgress).then_some(Time(now)),
        message: Some(message.clone()),
    };
    let note = format!(
        "pod {pod} on {}: {} {:.2} crossed {:.2}: {message}",
        node.as_deref().unwrap_or("?"),
        breach.metric,
        breach.value,
        breach.threshold
    );
    if outcome == MigrationOutcome::InProgress {
        // New replicas now avoid this pod's node.
        let pods: Api<Pod> =
            Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
        let patch = serde_json::json!({"metadata": {"labels": {workload::LEAVING_LABEL: "true"}}});
        pods.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    ctx.events
        .publish(
            &md.object_ref(&()),
            Severity::Warning,
            match outcome {
                MigrationOutcome::Paused => crate::events::reasons::MIGRATION_PAUSED,
                MigrationOutcome::DryRun => crate::events::reasons::MIGRATION_DRY_RUN,
                _ => crate::events::reasons::MIGRATION_STARTED,
            },
            "Migrate",
            note,
        )
        .await;
    records.push(record);
    let excess = records.len().saturating_sub(RECORDS);
    records.drain(..excess);
    Ok(Outcome {
        records: Some(records),
        paused,
    })
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

/// Whether the operator-wide switch pauses migrations.
async fn paused(ctx: &Context) -> Result<bool, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.operator_namespace);
    Ok(api
        .get_opt(SETTINGS_CONFIGMAP)
        .await?
        .and_then(|c| c.data?.get(PAUSED_KEY).cloned())
        .is_some_and(|v| v == "true"))
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
    let replacement = listed
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            // Both times are stored to the second: a pod created in the
            // record's second is the replacement.
            p.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|c| c.0.as_second() >= record.time.0.as_second())
        })
        .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|c| c.0));
    let timed_out = now.as_second() - record.time.0.as_second()
        > i64::from(md.spec.migration.replacement_timeout_seconds);
    let finish = |record: &mut MigrationRecord, outcome, message: String| {
        record.outcome = outcome;
        record.completion_time = Some(Time(now));
        record.message = Some(message);
    };
    let Some(replacement) = replacement else {
        if timed_out {
            finish(
                record,
                MigrationOutcome::Abandoned,
                "no replacement was created in time; the replica stays".into(),
            );
            publish_end(ctx, md, record).await;
            return Ok(true);
        }
        return Ok(false);
    };
    let name = replacement.name_any();
    let node = replacement.spec.as_ref().and_then(|s| s.node_name.clone());
    record.replacement_pod = Some(name.clone());
    record.replacement_node = node.clone();
    let lands_badly = node.is_some()
        && (node == record.node || node.as_ref().is_some_and(|n| avoided.contains(n)));
    if lands_badly {
        set_cost(&pods, &name, -1000).await?;
        let message = format!(
            "the replacement landed on {} (the node being left, or one left recently); it was abandoned",
            node.unwrap_or_default()
        );
        finish(record, MigrationOutcome::Abandoned, message);
        publish_end(ctx, md, record).await;
        return Ok(true);
    }
    let ready_ip = workload::serving_ip(replacement);
    let warmed = match &ready_ip {
        Some(ip) => warm_up(ctx, md, ip).await,
        None => false,
    };
    if !warmed {
        if timed_out {
            set_cost(&pods, &name, -1000).await?;
            finish(
                record,
                MigrationOutcome::Abandoned,
                format!("the replacement {name} was not ready and warm in time; the replica stays"),
            );
            publish_end(ctx, md, record).await;
            return Ok(true);
        }
        return Ok(false);
    }
    // Ask the PodDisruptionBudgets, without evicting.
    let dry_run = EvictParams {
        post_options: PostParams {
            dry_run: true,
            ..PostParams::default()
        },
        ..EvictParams::default()
    };
    if let Err(e) = pods.evict(&record.pod, &dry_run).await {
        if matches!(&e, kube::Error::Api(s) if s.code == 404) {
            finish(
                record,
                MigrationOutcome::Completed,
                format!("{} was already gone; {name} replaces it", record.pod),
            );
            publish_end(ctx, md, record).await;
            return Ok(true);
        }
        record.message = Some(format!(
            "waiting for the PodDisruptionBudget to allow removing {}: {e}",
            record.pod
        ));
        return Ok(true);
    }
    set_cost(&pods, &record.pod, -1000).await?;
    let message = format!(
        "{name} on {} is ready and answered a warm-up inference; {} is removed",
        node.unwrap_or_default(),
        record.pod
    );
    finish(record, MigrationOutcome::Completed, message);
    publish_end(ctx, md, record).await;
    Ok(true)
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
mod tests {
    use super::*;

    fn spec(dry_run: bool) -> MigrationSpec {
        serde_json::from_value(
            serde_json::json!({"enabled": true, "dryRun": dry_run, "cooldownSeconds": 300}),
        )
        .unwrap()
    }

    fn record(at: i64, pod: &str, outcome: MigrationOutcome) -> MigrationRecord {
        MigrationRecord {
            time: Time(jiff::Timestamp::from_second(at).unwrap()),
            pod: pod.into(),
            node: None,
            replacement_pod: None,
            replacement_node: None,
            metric: "p99LatencyMillis".into(),
            value: 500.0,
            threshold: 150.0,
            outcome,
            completion_time: None,
            message: None,
        }
    }

    /// Name, dry run, records, fleet-wide, paused, now, expected outcome.
    type Case<'a> = (
        &'a str,
        bool,
        &'a [MigrationRecord],
        bool,
        bool,
        i64,
        Option<MigrationOutcome>,
    );

    #[test]
    fn start_table() {
        let done = [record(1000, "a", MigrationOutcome::Completed)];
        let paused_once = [record(1000, "b", MigrationOutcome::Paused)];
        // (name, dry run, records, fleet-wide, paused, now, expected)
        let cases: Vec<Case> = vec![
            (
                "a sick replica is migrated",
                false,
                &[],
                false,
                false,
                2000,
                Some(MigrationOutcome::InProgress),
            ),
            (
                "a dry run only records",
                true,
                &[],
                false,
                false,
                2000,
                Some(MigrationOutcome::DryRun),
            ),
            (
                "the whole fleet sick is load",
                false,
                &[],
                true,
                false,
                2000,
                None,
            ),
            (
                "none within the cooldown",
                false,
                &done,
                false,
                false,
                1200,
                None,
            ),
            (
                "again after the cooldown",
                false,
                &done,
                false,
                false,
                1400,
                Some(MigrationOutcome::InProgress),
            ),
            (
                "a pause is recorded",
                false,
                &[],
                false,
                true,
                2000,
                Some(MigrationOutcome::Paused),
            ),
            (
                "once per cooldown for the same pod",
                false,
                &paused_once,
                false,
                true,
                1100,
                None,
            ),
            (
                "a paused record does not start the cooldown",
                false,
                &paused_once,
                false,
                false,
                1100,
                Some(MigrationOutcome::InProgress),
            ),
        ];
        for (name, dry_run, records, fleet_wide, paused, now, expected) in cases {
            assert_eq!(
                start(&spec(dry_run), records, "b", fleet_wide, paused, now),
                expected,
                "{name}"
            );
        }
    }
}
