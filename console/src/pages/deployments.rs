//! Deployments: the list, and one with replicas, canary, autoscaler,
//! drift, migrations and audit checkpoints.

use aimass_crds::v1alpha1::{DriftLevel, ModelDeployment};
use minijinja::{Value, context};
use serde::Serialize;

use super::{Page, Place, Viewer, name, readiness};
use crate::error::Error;

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
    let context = context! {
        ns, name => deployment,
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
