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
    switch: &mut migration::PauseSwitch,
    now: f64,
    findings: &mut Findings,
) -> Result<(), kube::Error> {
    let replicas = figures(&series.last, &series.health_base, nodes);
    series.health_base = series.last.clone();
    let changes = evaluate::evaluate(&mut series.tracks, &replicas, &md.spec.health, now);
    ctx.metrics.health.report(
        &md.namespace().unwrap_or_default(),
        &md.name_any(),
        &replicas,
        &series.tracks,
    );
    let suspects = evaluate::suspect_nodes(&series.tracks, &replicas);
    let mut notices = verdict_notices(&changes, &replicas, &series.tracks);
    notices.extend(suspect_notices(&suspects, &series.suspects));
    for (severity, reason, note) in notices {
        ctx.events
            .publish(&md.object_ref(&()), severity, reason, "Monitor", note)
            .await;
    }
    series.suspects = suspects;
    let migration = migration::step(
        ctx,
        md,
        &findings.migrations,
        &series.tracks,
        nodes,
        switch,
        jiff::Timestamp::now(),
    )
    .await?;
    if let Some(records) = migration.records {
        findings.migrations = records;
    }
    findings.migration_paused = migration.paused;
    let unhealthy = unhealthy_replicas(&replicas, &series.tracks, now);
    if !same_replicas(&findings.unhealthy_replicas, &unhealthy) {
        findings.unhealthy_replicas = unhealthy;
    }
    Ok(())
}

/// An Event to publish: severity, reason, note.
type Notice = (Severity, &'static str, String);

/// The replicas judged unhealthy, for status. Pure.
fn unhealthy_replicas(
    replicas: &[ReplicaFigures],
    tracks: &evaluate::Tracks,
    now: f64,
) -> Vec<UnhealthyReplica> {
    replicas
        .iter()
        .filter_map(|r| {
            let track = tracks.get(&r.pod).filter(|t| t.unhealthy)?;
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
        .collect()
}

/// An Event for each replica whose verdict `changes` (pod, now sick). Pure.
fn verdict_notices(
    changes: &[(String, bool)],
    replicas: &[ReplicaFigures],
    tracks: &evaluate::Tracks,
) -> Vec<Notice> {
    changes
        .iter()
        .map(|(pod, sick)| {
            let replica = replicas.iter().find(|r| &r.pod == pod);
            let node = replica.and_then(|r| r.node.clone()).unwrap_or_default();
            match (sick, tracks.get(pod).and_then(|t| t.breach.clone())) {
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
            }
        })
        .collect()
}

/// A Warning for each node newly among the `suspects`. Pure.
fn suspect_notices(suspects: &[String], known: &[String]) -> Vec<Notice> {
    suspects
        .iter()
        .filter(|n| !known.contains(n))
        .map(|node| {
            (
                Severity::Warning,
                crate::events::reasons::NODE_SUSPECT,
                format!(
                    "most replicas on node {node} are unhealthy: the node, not the replicas, is the suspect"
                ),
            )
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::evaluate::{Breach, Track, Tracks};
    use super::*;

    fn replica(pod: &str, node: &str) -> ReplicaFigures {
        ReplicaFigures {
            pod: pod.into(),
            node: Some(node.into()),
            p99_ms: Some(480.0),
            error_rate: 0.0,
            cpu_cores: None,
            memory_mib: None,
        }
    }

    fn tracks(sick: &[(&str, bool)]) -> Tracks {
        sick.iter()
            .map(|(pod, with_breach)| {
                let mut track = Track::default();
                track.unhealthy = true;
                track.since = Some(100.0);
                track.breach = with_breach.then_some(Breach {
                    metric: "p99LatencyMillis",
                    value: 480.0,
                    threshold: 150.0,
                });
                ((*pod).to_owned(), track)
            })
            .collect()
    }

    #[test]
    fn verdict_notices_table() {
        let replicas = [replica("a", "n1"), replica("b", "n2"), replica("c", "n3")];
        let tracks = tracks(&[("a", true), ("b", false)]);
        let changes = [
            ("a".to_owned(), true),
            ("b".to_owned(), true),
            ("c".to_owned(), false),
        ];
        let notices = verdict_notices(&changes, &replicas, &tracks);
        let expected = [
            (
                Severity::Warning,
                conditions::reasons::REPLICA_UNHEALTHY,
                "pod a on n1: p99LatencyMillis 480.00 crossed 150.00",
            ),
            (
                Severity::Warning,
                conditions::reasons::REPLICA_UNHEALTHY,
                "pod b on n2 is unhealthy",
            ),
            (
                Severity::Normal,
                crate::events::reasons::REPLICA_RECOVERED,
                "pod c on n3 is healthy again",
            ),
        ];
        assert_eq!(notices.len(), expected.len());
        for ((severity, reason, note), (want_severity, want_reason, want_note)) in
            notices.iter().zip(expected)
        {
            assert_eq!(*severity, want_severity, "{note}");
            assert_eq!(*reason, want_reason, "{note}");
            assert_eq!(note, want_note);
        }
    }

    #[test]
    fn a_suspect_node_is_announced_once() {
        let suspects = ["n1".to_owned(), "n2".to_owned()];
        let notices = suspect_notices(&suspects, &["n1".to_owned()]);
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].1, crate::events::reasons::NODE_SUSPECT);
        assert!(notices[0].2.starts_with("most replicas on node n2 "));
        assert!(suspect_notices(&suspects, &suspects).is_empty());
    }

    #[test]
    fn status_lists_unhealthy_replicas_with_their_breach_only() {
        let replicas = [replica("a", "n1"), replica("b", "n2"), replica("c", "n3")];
        // b is unhealthy without a breach on record: nothing to show.
        let listed = unhealthy_replicas(&replicas, &tracks(&[("a", true), ("b", false)]), 200.0);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].pod, "a");
        assert_eq!(listed[0].node.as_deref(), Some("n1"));
        assert_eq!(listed[0].since.0.as_second(), 100);
        assert_eq!(listed[0].metric, "p99LatencyMillis");
    }
}
