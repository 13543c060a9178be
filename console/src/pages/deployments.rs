//! Deployments: the list, and one with its replicas node by node, canary,
//! autoscaler, drift, migrations and audit checkpoints.

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::{
    DEPLOYMENT_LABEL, DriftLevel, DriftPoint, ModelDeployment, TRACK_LABEL, TrafficPoint,
    VERSION_LABEL,
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
                model: d
                    .spec
                    .models()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" + "),
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
    let traffic_charts = status
        .traffic
        .as_ref()
        .map(|t| traffic_over_time(&t.history))
        .unwrap_or_default();
    let context = context! {
        ns, name => deployment,
        nodes, nodes_missing, drift_chart, traffic_charts,
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

/// One line of a chart over time: its name, and its value at a point.
type Line<P> = (&'static str, fn(&P) -> Option<f64>);

/// A chart of `lines` over `points` placed in time by `at` (x: seconds
/// since the epoch); empty when no point has a value.
fn over_time<P>(points: &[P], at: fn(&P) -> &jiff::Timestamp, lines: &[Line<P>]) -> String {
    let series: Vec<Series> = lines
        .iter()
        .map(|(name, value)| Series {
            name: (*name).to_owned(),
            points: points
                .iter()
                .filter_map(|p| Some((at(p).as_second() as f64, value(p)?)))
                .collect(),
        })
        .collect();
    chart::svg(&series, 640, 200)
}

/// A chart of the score's PSI and the top feature's CSI over the drift
/// evaluations kept; empty when none was judged.
fn drift_over_time(history: &[DriftPoint]) -> String {
    over_time(
        history,
        |p| &p.time.0,
        &[("score PSI", |p| p.psi), ("top feature CSI", |p| p.top_csi)],
    )
}

/// The last hour's traffic, drawn: throughput, latency, and the shares of
/// errors and refusals.
#[derive(Debug, Default, Serialize)]
struct TrafficCharts {
    throughput: String,
    latency: String,
    failures: String,
}

fn traffic_over_time(history: &[TrafficPoint]) -> TrafficCharts {
    fn at(p: &TrafficPoint) -> &jiff::Timestamp {
        &p.time.0
    }
    TrafficCharts {
        throughput: over_time(
            history,
            at,
            &[("requests per second", |p| Some(p.requests_per_second))],
        ),
        latency: over_time(
            history,
            at,
            &[
                ("p50 ms", |p| p.p50_latency_millis),
                ("p99 ms", |p| p.p99_latency_millis),
            ],
        ),
        failures: over_time(
            history,
            at,
            &[
                ("server errors (5xx) %", |p| Some(p.error_rate * 100.0)),
                ("refused (4xx) %", |p| Some(p.rejected_rate * 100.0)),
            ],
        ),
    }
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
    fn traffic_is_drawn_as_throughput_latency_and_failures() {
        let point = |second: i64, rps: f64, p99: Option<f64>| TrafficPoint {
            time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::from_second(second).expect("a time"),
            ),
            requests_per_second: rps,
            error_rate: 0.01,
            rejected_rate: 0.25,
            p50_latency_millis: p99.map(|p| p / 4.0),
            p99_latency_millis: p99,
        };
        let charts = traffic_over_time(&[point(30, 100.0, Some(8.0)), point(60, 0.0, None)]);
        assert!(charts.throughput.contains(">100<"), "{}", charts.throughput);
        assert_eq!(charts.latency.matches("<polyline").count(), 2);
        // Shares are drawn in per cent.
        assert!(charts.failures.contains(">25<"), "{}", charts.failures);
        let none = traffic_over_time(&[]);
        assert_eq!(
            (none.throughput, none.latency),
            (String::new(), String::new())
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
