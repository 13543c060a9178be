//! Replica health: every `spec.health.intervalSeconds` each replica is
//! judged against the thresholds and its siblings (`evaluate`), and the
//! verdicts become the monitor's findings in status (which the controller
//! turns into a `Degraded` condition), Warning Events and the
//! `aimass_replica_unhealthy` metric; unhealthy replicas are migrated
//! (`migration`).

pub mod evaluate;
pub mod migration;

use std::collections::HashMap;

use aimass_crds::v1alpha1::conditions;
use aimass_crds::v1alpha1::{ModelDeployment, UnhealthyReplica};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};

use crate::context::Context;
use crate::events::Severity;
use crate::monitor::Findings;
use crate::monitor::collector::Series;
use crate::scrape::Snapshot;
use evaluate::ReplicaFigures;

/// Judges every replica of `md` over the interval since the last review,
/// advances its migrations, and reports what changed: in `findings`
/// (unhealthy replicas, migrations), Events, and the metric.
pub async fn review(
    ctx: &Context,
    md: &ModelDeployment,
    series: &mut Series,
    nodes: &HashMap<String, Option<String>>,
    now: f64,
    findings: &mut Findings,
) -> Result<(), kube::Error> {
    let replicas = figures(&series.last, &series.health_base, nodes);
    series.health_base = series.last.clone();
    let changes = evaluate::evaluate(&mut series.tracks, &replicas, &md.spec.health, now);
    let namespace = md.namespace().unwrap_or_default();
    let name = md.name_any();
    let unhealthy: Vec<UnhealthyReplica> = replicas
        .iter()
        .filter_map(|r| {
            let track = series.tracks.get(&r.pod).filter(|t| t.unhealthy)?;
            let breach = track.breach.clone()?;
            Some(UnhealthyReplica {
                pod: r.pod.clone(),
                node: r.node.clone(),
                since: Time(
                    jiff::Timestamp::from_millisecond((track.since.unwrap_or(now) * 1000.0) as i64)
                        .unwrap_or_else(|_| jiff::Timestamp::now()),
                ),
                metric: breach.metric.to_owned(),
                value: breach.value,
                threshold: breach.threshold,
            })
        })
        .collect();
    ctx.metrics
        .health
        .report(&namespace, &name, &replicas, &series.tracks);
    for (pod, sick) in &changes {
        let replica = replicas.iter().find(|r| &r.pod == pod);
        let node = replica.and_then(|r| r.node.clone()).unwrap_or_default();
        let (severity, reason, note) =
            match (sick, series.tracks.get(pod).and_then(|t| t.breach.clone())) {
                (true, Some(b)) => (
                    Severity::Warning,
                    conditions::reasons::REPLICA_UNHEALTHY,
                    format!(
                        "pod {pod} on {node}: {} {:.2} crossed {:.2}",
                        b.metric, b.value, b.threshold
                    ),
                ),
                (true, None) => (
                    Severity::Warning,
                    conditions::reasons::REPLICA_UNHEALTHY,
                    format!("pod {pod} on {node} is unhealthy"),
                ),
                (false, _) => (
                    Severity::Normal,
                    crate::events::reasons::REPLICA_RECOVERED,
                    format!("pod {pod} on {node} is healthy again"),
                ),
            };
        ctx.events
            .publish(&md.object_ref(&()), severity, reason, "Monitor", note)
            .await;
    }
    let suspects = evaluate::suspect_nodes(&series.tracks, &replicas);
    for node in suspects.iter().filter(|n| !series.suspects.contains(n)) {
        let note = format!(
            "most replicas on node {node} are unhealthy: the node, not the replicas, is the suspect"
        );
        ctx.events
            .publish(
                &md.object_ref(&()),
                Severity::Warning,
                crate::events::reasons::NODE_SUSPECT,
                "Monitor",
                note,
            )
            .await;
    }
    series.suspects = suspects;
    let migration = migration::step(
        ctx,
        md,
        &findings.migrations,
        &series.tracks,
        nodes,
        jiff::Timestamp::now(),
    )
    .await?;
    if let Some(records) = migration.records {
        findings.migrations = records;
    }
    findings.migration_paused = migration.paused;
    if !same_replicas(&findings.unhealthy_replicas, &unhealthy) {
        findings.unhealthy_replicas = unhealthy;
    }
    Ok(())
}

/// Whether two verdicts name the same replicas for the same metrics (the
/// figures behind them change every review and are not worth a write).
fn same_replicas(old: &[UnhealthyReplica], new: &[UnhealthyReplica]) -> bool {
    old.len() == new.len()
        && old
            .iter()
            .zip(new)
            .all(|(a, b)| a.pod == b.pod && a.metric == b.metric)
}

/// Each pod's figures between its `base` reading and its `latest` one.
pub fn figures(
    latest: &HashMap<String, (f64, Snapshot)>,
    base: &HashMap<String, (f64, Snapshot)>,
    nodes: &HashMap<String, Option<String>>,
) -> Vec<ReplicaFigures> {
    latest
        .iter()
        .filter_map(|(pod, (now, snapshot))| {
            let (then, earlier) = base.get(pod)?;
            let dt = now - then;
            if dt <= 0.0 {
                return None;
            }
            let window = snapshot.since(earlier);
            let cpu = snapshot.cpu_seconds - earlier.cpu_seconds;
            Some(ReplicaFigures {
                pod: pod.clone(),
                node: nodes.get(pod).cloned().flatten(),
                p99_ms: window.p99_seconds.map(|s| s * 1000.0),
                error_rate: window.error_rate(),
                cpu_cores: (cpu >= 0.0).then_some(cpu / dt),
                memory_mib: (snapshot.memory_bytes > 0.0)
                    .then_some(snapshot.memory_bytes / 1_048_576.0),
            })
        })
        .collect()
}
