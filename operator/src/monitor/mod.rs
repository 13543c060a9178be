//! The monitor: every 2 s it reads the inference servers' own metrics
//! (`collector`) from the pods it follows with a watch (no list per round:
//! the API server's load does not grow with the number of
//! ModelDeployments), then judges replica health (`crate::health`, every
//! `spec.health.intervalSeconds`) and decides the replicas
//! (`crate::autoscaler`), and sums the traffic every 30 s (`traffic`).
//! What it finds goes to the ModelDeployment's
//! status under its own field manager, in fields only it writes
//! (`FIELDS`); the controller reads them and never writes them back.

pub mod collector;
pub mod drift;
mod shadow;
pub mod traffic;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::{
    DriftStatus, MigrationRecord, ModelDeployment, ModelDeploymentStatus, ScaleDecision,
    ShadowStatus, TrafficStatus, UnhealthyReplica,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::context::Context;
use crate::error::Error;
use crate::events::{Severity, reasons};
use crate::model_deployment::workload;
use crate::status::Writer;
use collector::Series;

/// How often the servers are read.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// The status fields the monitor owns, as the controller must leave them.
pub const FIELDS: &[&str] = &[
    "lastScaleDecision",
    "unhealthyReplicas",
    "migrations",
    "migrationPaused",
    "drift",
    "traffic",
    "shadow",
];

/// The monitor's status writer.
const WRITER: Writer = Writer {
    manager: "aimass-operator/monitor",
    others: &[],
};

/// What the monitor reports in a ModelDeployment's status (`FIELDS`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Findings {
    /// The autoscaler's latest decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_scale_decision: Option<ScaleDecision>,
    /// Replicas judged unhealthy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unhealthy_replicas: Vec<UnhealthyReplica>,
    /// The latest migrations, newest last.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<MigrationRecord>,
    /// Whether administrators paused migrations.
    pub migration_paused: bool,
    /// The latest drift evaluation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftStatus>,
    /// The last hour's traffic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<TrafficStatus>,
    /// How the shadow's answers compare with the served ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowStatus>,
}

impl Findings {
    /// The findings a status holds.
    pub fn of(status: Option<&ModelDeploymentStatus>) -> Self {
        let status = status.cloned().unwrap_or_default();
        Self {
            last_scale_decision: status.last_scale_decision,
            unhealthy_replicas: status.unhealthy_replicas,
            migrations: status.migrations,
            migration_paused: status.migration_paused,
            drift: status.drift,
            traffic: status.traffic,
            shadow: status.shadow,
        }
    }
}

/// Runs the monitor until `stop` turns true, over the ModelDeployments of
/// `deployments` (the serving controller's cache) and the inference server
/// pods in `namespace` (or everywhere), which it watches itself.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<String>,
    deployments: Store<ModelDeployment>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Pod> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let (pods, writer) = reflector::store();
    let feed = reflector(
        writer,
        watcher(
            api,
            watcher::Config::default().labels(workload::DEPLOYMENT_LABEL),
        ),
    )
    .default_backoff()
    .for_each(|event| {
        if let Err(error) = event {
            warn!(%error, "monitor cannot watch inference server pods");
        }
        futures::future::ready(())
    });
    let feed = tokio::spawn(feed);
    tokio::select! {
        () = crate::controllers::synced(&pods) => {},
        _ = stop.wait_for(|s| *s) => { feed.abort(); return; }
    }
    let mut series: HashMap<String, Series> = HashMap::new();
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {},
            _ = stop.wait_for(|s| *s) => break,
        }
        let deployments = deployments.state();
        series.retain(|uid, _| {
            deployments
                .iter()
                .any(|md| md.uid().as_deref() == Some(uid))
        });
        let mut switch = crate::health::migration::PauseSwitch::default();
        for md in deployments
            .iter()
            .filter(|md| md.meta().deletion_timestamp.is_none())
        {
            let entry = series.entry(md.uid().unwrap_or_default()).or_default();
            if let Err(error) = round(&ctx, md, &pods, entry, &mut switch).await {
                warn!(%error, name = %md.name_any(), "monitoring round failed");
            }
        }
    }
    feed.abort();
}

/// The pods of `md` in the watched set.
fn pods_of(pods: &Store<Pod>, md: &ModelDeployment) -> Vec<Arc<Pod>> {
    let name = crate::labels::fit(&md.name_any(), 63);
    pods.state()
        .into_iter()
        .filter(|p| {
            p.metadata.namespace == md.metadata.namespace
                && p.labels().get(workload::DEPLOYMENT_LABEL) == Some(&name)
        })
        .collect()
}

/// One round for one ModelDeployment: read the servers, judge their
/// health when due, decide the replicas, report.
async fn round(
    ctx: &Context,
    md: &ModelDeployment,
    pods: &Store<Pod>,
    series: &mut Series,
    switch: &mut crate::health::migration::PauseSwitch,
) -> Result<(), Error> {
    let mut nodes = HashMap::new();
    let own = pods_of(pods, md);
    let ready: Vec<(String, String)> = own
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let name = p.metadata.name.clone()?;
            nodes.insert(
                name.clone(),
                p.spec.as_ref().and_then(|s| s.node_name.clone()),
            );
            Some((name, workload::serving_ip(p)?))
        })
        .collect();
    let now = jiff::Timestamp::now();
    let seconds = now.as_millisecond() as f64 / 1000.0;
    series
        .observe(
            &ready,
            workload::ADMIN_PORT,
            seconds,
            f64::from(md.spec.autoscaling.stable_window_seconds),
        )
        .await;
    // What this monitor last wrote, rather than the cache, which may not
    // hold it yet.
    let written = series
        .findings
        .clone()
        .unwrap_or_else(|| Findings::of(md.status.as_ref()));
    let mut findings = written.clone();
    if seconds - series.last_health >= f64::from(md.spec.health.interval_seconds) {
        series.last_health = seconds;
        crate::health::review(ctx, md, series, &nodes, switch, seconds, &mut findings)
            .await
            .map_err(Error::kube("reviewing replica health"))?;
    }
    let samples: Vec<_> = series.samples.iter().copied().collect();
    let plan = crate::autoscaler::plan(
        md,
        written.last_scale_decision.as_ref(),
        &samples,
        &mut series.memory,
        now,
    );
    findings.last_scale_decision = plan.decision;
    if let Some(traffic) = series.traffic.close(seconds, written.traffic.as_ref()) {
        findings.traffic = Some(traffic);
    }
    if md.spec.shadow.is_none() {
        findings.shadow = None;
    } else if seconds - series.last_shadow >= shadow::EVERY_SECONDS {
        series.last_shadow = seconds;
        // Each server's latest counts: they run since it started.
        let latest = crate::scrape::Snapshot::sum(series.last.values().map(|(_, s)| s.clone()));
        findings.shadow = shadow::status(&latest.shadow).or(findings.shadow);
    }
    let mut drift_change = None;
    if series.drift.due(seconds) {
        let observed = series.drift.observe(md, &own, seconds).await;
        drift_change = observed.as_ref().and_then(|(_, t)| *t);
        findings.drift = observed.map(|(status, _)| status);
        ctx.metrics.drift.report(md, findings.drift.as_ref());
    }
    let api: Api<ModelDeployment> =
        Api::namespaced(ctx.client.clone(), &md.namespace().unwrap_or_default());
    WRITER
        .write(&api, &md.name_any(), &written, &findings)
        .await?;
    if let Some(note) = plan.scaled {
        debug!(name = %md.name_any(), %note, "autoscaler decision");
        ctx.events
            .publish(
                &md.object_ref(&()),
                Severity::Normal,
                reasons::SCALED,
                "Autoscale",
                note,
            )
            .await;
    }
    if let (Some(transition), Some(status)) = (drift_change, &findings.drift) {
        let (severity, reason, note) = match transition {
            drift::Transition::Detected => (
                Severity::Warning,
                reasons::DRIFT_DETECTED,
                format!(
                    "drift detected on version {}: {}",
                    status.version.unwrap_or_default(),
                    status.message
                ),
            ),
            drift::Transition::Cleared => (
                Severity::Normal,
                reasons::DRIFT_CLEARED,
                format!(
                    "drift is over on version {}: {}",
                    status.version.unwrap_or_default(),
                    status.message
                ),
            ),
        };
        ctx.events
            .publish(&md.object_ref(&()), severity, reason, "Drift", note)
            .await;
    }
    series.findings = Some(findings);
    Ok(())
}

#[cfg(test)]
mod tests;
