//! Deployments: the list, and one with its replicas node by node, canary,
//! autoscaler, drift, migrations and audit checkpoints.

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::{
    DEPLOYMENT_LABEL, DriftLevel, DriftPoint, ModelDeployment, TRACK_LABEL, VERSION_LABEL,
};
use k8s_openapi::api::core::v1::Pod;
use minijinja::{Value, context};
use serde::Serialize;

use super::{Page, Place, Viewer, name, readiness};
use crate::chart::{self, Series};
use crate::error::Error;

/// One serving pod, as a deployment's page lists it under its node.
#[derive(Debug, PartialEq, Serialize)]
struct Replica {
    pod: String,
    track: String,
    version: String,
    phase: String,
    ready: bool,
    restarts: i32,
}

/// The serving pods on one node.
#[derive(Debug, PartialEq, Serialize)]
struct Node {
    node: String,
    replicas: Vec<Replica>,
}

/// `pods` grouped by the node they run on (unscheduled ones under
/// `(not scheduled)`), nodes and pods by name.
fn by_node(pods: Vec<Pod>) -> Vec<Node> {
    let mut nodes: BTreeMap<String, Vec<Replica>> = BTreeMap::new();
    for pod in pods {
        let label = |key: &str| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(key))
                .cloned()
                .unwrap_or_default()
        };
        let status = pod.status.clone().unwrap_or_default();
        let replica = Replica {
            pod: pod.metadata.name.clone().unwrap_or_default(),
            track: label(TRACK_LABEL),
            version: label(VERSION_LABEL),
            phase: status.phase.clone().unwrap_or_default(),
            ready: status
                .conditions
                .as_deref()
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True"),
            restarts: status
                .container_statuses
                .iter()
                .flatten()
                .map(|c| c.restart_count)
                .sum(),
        };
        let node = pod
            .spec
            .and_then(|s| s.node_name)
            .unwrap_or_else(|| "(not scheduled)".into());
        nodes.entry(node).or_default().push(replica);
    }
    nodes
        .into_iter()
        .map(|(node, mut replicas)| {
            replicas.sort_by(|a, b| a.pod.cmp(&b.pod));
            Node { node, replicas }
        })
        .collect()
}

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    place: Place,
    model: String,
    serving: Option<i64>,
    replicas: i32,
    ready_replicas: i32,
    canary: String,
    drift: String,
    drift_class: &'static str,
    ready: String,
    ready_class: &'static str,
}

/// A drift level and its CSS class.
fn drift(level: Option<&DriftLevel>) -> (String, &'static str) {
    match level {
        None => (String::new(), "muted"),
        Some(DriftLevel::Action) => ("Action".into(), "bad"),
        Some(DriftLevel::Warning) => ("Warning".into(), "warn"),
        Some(level @ (DriftLevel::NoBaseline | DriftLevel::InsufficientData)) => {
            (format!("{level:?}"), "muted")
        }
        Some(other) => (format!("{other:?}"), "ok"),
    }
}

/// `/deployments`: the ModelDeployments in the namespaces the user may read.
pub async fn deployments(viewer: Viewer<'_>) -> Result<Page, Error> {
    let namespaces = viewer.cluster.visible(viewer.session).await?;
    let all: Vec<ModelDeployment> = viewer
        .list_permitted("modeldeployments", &namespaces)
        .await?;
    let rows: Vec<Row> = all
        .into_iter()
        .map(|d| {
            let status = d.status.unwrap_or_default();
            let (drift, drift_class) = drift(status.drift.as_ref().map(|s| &s.level));
            let (ready, ready_class) = readiness(&status.conditions);
            Row {
                place: Place::of(&d.metadata, "deployments"),
                model: d.spec.model.name,
                serving: status.serving_version,
                replicas: status.replicas,
                ready_replicas: status.ready_replicas,
                canary: status
                    .canary
                    .map(|c| format!("v{} at {} %", c.version, c.percent))
                    .unwrap_or_default(),
                drift,
                drift_class,
                ready,
                ready_class,
            }
        })
        .collect();
    Ok(Page {
        template: "deployments.html",
        context: context! {rows},
        nav: "deployments",
        scope: namespaces,
    })
}

/// `/ns/{ns}/deployments/{name}`.
pub async fn deployment(viewer: Viewer<'_>, ns: &str, deployment: &str) -> Result<Page, Error> {
    let (ns, deployment) = (name(ns)?, name(deployment)?);
    let md: ModelDeployment = viewer.get("modeldeployments", ns, deployment).await?;
    let status = md.status.clone().unwrap_or_default();
    let (_, drift_class) = drift(status.drift.as_ref().map(|s| &s.level));
    let (nodes, nodes_missing) = match viewer
        .pods(ns, &format!("{DEPLOYMENT_LABEL}={deployment}"))
        .await
    {
        Ok(pods) => (by_node(pods), None),
        Err(Error::Forbidden(why)) => (Vec::new(), Some(why)),
        Err(e) => (Vec::new(), Some(format!("cannot list the pods: {e}"))),
    };
    let drift_chart = status
        .drift
        .as_ref()
        .map(|d| drift_over_time(&d.history))
        .unwrap_or_default();
    let context = context! {
        ns, name => deployment,
        nodes, nodes_missing, drift_chart,
        md => Value::from_serialize(&md),
        status => Value::from_serialize(&status),
        drift_class,
    };
    Ok(Page {
        template: "deployment.html",
        context,
        nav: "deployments",
        scope: vec![ns.to_owned()],
    })
}

/// A chart of the score's PSI and the top feature's CSI over the drift
/// evaluations kept (x: seconds since the epoch); empty when none was
/// judged.
fn drift_over_time(history: &[DriftPoint]) -> String {
    let at = |p: &DriftPoint| p.time.0.as_second() as f64;
    let series = |name: &str, value: fn(&DriftPoint) -> Option<f64>| Series {
        name: name.to_owned(),
        points: history
            .iter()
            .filter_map(|p| Some((at(p), value(p)?)))
            .collect(),
    };
    chart::svg(
        &[
            series("score PSI", |p| p.psi),
            series("top feature CSI", |p| p.top_csi),
        ],
        640,
        200,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_grouped_by_node() {
        let pods: Vec<Pod> = serde_yaml_ng::from_str(
            r#"
- metadata: {name: scoring-b, labels: {aimass.io/track: stable, aimass.io/model-version: "3"}}
  spec: {nodeName: node-1, containers: []}
  status:
    phase: Running
    conditions: [{type: Ready, status: "True"}]
    containerStatuses: [{name: server, image: s, imageID: "", ready: true, restartCount: 2}]
- metadata: {name: scoring-a, labels: {aimass.io/track: canary, aimass.io/model-version: "4"}}
  spec: {nodeName: node-1, containers: []}
  status: {phase: Running, conditions: [{type: Ready, status: "False"}]}
- metadata: {name: scoring-c}
  spec: {containers: []}
  status: {phase: Pending}
"#,
        )
        .expect("pods");
        let nodes = by_node(pods);
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].node, "(not scheduled)");
        assert_eq!(nodes[1].node, "node-1");
        let on_one: Vec<(&str, &str, &str, bool, i32)> = nodes[1]
            .replicas
            .iter()
            .map(|r| {
                (
                    r.pod.as_str(),
                    r.track.as_str(),
                    r.version.as_str(),
                    r.ready,
                    r.restarts,
                )
            })
            .collect();
        assert_eq!(
            on_one,
            vec![
                ("scoring-a", "canary", "4", false, 0),
                ("scoring-b", "stable", "3", true, 2)
            ]
        );
    }

    #[test]
    fn drift_is_drawn_over_the_evaluations_judged() {
        let point = |second: i64, psi: Option<f64>| DriftPoint {
            time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::from_second(second).expect("a time"),
            ),
            rows: 100,
            psi,
            top_csi: psi.map(|p| p * 2.0),
        };
        assert_eq!(drift_over_time(&[]), "");
        assert_eq!(drift_over_time(&[point(60, None)]), "");
        let chart = drift_over_time(&[
            point(60, Some(0.1)),
            point(120, None),
            point(180, Some(0.3)),
        ]);
        assert!(chart.contains("score PSI") && chart.contains("top feature CSI"));
        assert_eq!(chart.matches("<polyline").count(), 2);
        // The highest value drawn is the top CSI, 0.6.
        assert!(chart.contains(">0.600<"), "{chart}");
    }
}
