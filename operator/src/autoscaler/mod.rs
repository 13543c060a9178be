//! The built-in autoscaler: every 2 s it reads the inference servers' own
//! metrics (`collector`) from the pods it follows with a watch (no list per
//! round: the API server's load does not grow with the number of
//! ModelDeployments), decides (`decide`, a pure function tested with
//! tables and a traffic simulator), and records the decision in the
//! ModelDeployment's status, where the controller turns it into the owned
//! Deployment's replicas. It never writes the ModelDeployment's spec; with
//! `spec.autoscaling.enabled: false` it leaves the replicas to
//! `spec.replicas.count` (and so to HPA, KEDA or `kubectl scale`).

pub mod collector;
pub mod decide;
#[cfg(test)]
mod simulator;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::{ModelDeployment, ScaleDecision};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::context::Context;
use crate::events::Severity;
use crate::model_deployment::workload;
use collector::Series;
use decide::{Inputs, decide};

/// How often the servers are read and a decision is made.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// A decision that changes nothing is still recorded this often.
const RECORD_EVERY_SECONDS: i64 = 30;

/// Runs the autoscaler until `stop` turns true, over the ModelDeployments
/// of `deployments` (the serving controller's cache) and the inference
/// server pods in `namespace` (or everywhere), which it watches itself.
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
            warn!(%error, "autoscaler cannot watch inference server pods");
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
        for md in deployments
            .iter()
            .filter(|md| md.meta().deletion_timestamp.is_none())
        {
            let entry = series.entry(md.uid().unwrap_or_default()).or_default();
            if let Err(error) = step(&ctx, md, &pods, entry).await {
                warn!(%error, name = %md.name_any(), "autoscaling step failed");
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

/// One round for one ModelDeployment: read, decide, record.
async fn step(
    ctx: &Context,
    md: &ModelDeployment,
    pods: &Store<Pod>,
    series: &mut Series,
) -> Result<(), kube::Error> {
    let namespace = md.namespace().unwrap_or_default();
    let mut nodes = HashMap::new();
    let ready: Vec<(String, String)> = pods_of(pods, md)
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
    let spec = &md.spec.autoscaling;
    series
        .observe(
            &ready,
            workload::ADMIN_PORT,
            seconds,
            f64::from(spec.stable_window_seconds),
        )
        .await;
    if seconds - series.last_health >= f64::from(md.spec.health.interval_seconds) {
        series.last_health = seconds;
        crate::health::review(ctx, md, series, &nodes, seconds).await?;
    }
    if !spec.enabled {
        return Ok(());
    }
    let status = md.status.clone().unwrap_or_default();
    let current = if status.replicas > 0 {
        status.replicas
    } else {
        md.spec.replicas.min
    };
    let samples: Vec<_> = series.samples.iter().copied().collect();
    let decision = decide(
        Inputs {
            spec,
            bounds: &md.spec.replicas,
            current,
            samples: &samples,
        },
        &mut series.memory,
        seconds,
    );
    let previous = status.last_scale_decision.as_ref();
    let stale =
        previous.is_none_or(|p| now.as_second() - p.time.0.as_second() >= RECORD_EVERY_SECONDS);
    let changed =
        decision.desired != current || previous.is_some_and(|p| p.panic != decision.panic);
    if !changed && !stale {
        return Ok(());
    }
    let record = ScaleDecision {
        time: Time(now),
        from: current,
        to: decision.desired,
        panic: decision.panic,
        stable_value: decision.stable_value,
        panic_value: decision.panic_value,
        reason: decision.reason.clone(),
    };
    let patch =
        serde_json::json!({"status": {"replicas": decision.desired, "lastScaleDecision": record}});
    Api::<ModelDeployment>::namespaced(ctx.client.clone(), &namespace)
        .patch_status(
            &md.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    debug!(name = %md.name_any(), from = current, to = decision.desired, "autoscaler decision");
    if decision.desired != current {
        let note = format!(
            "{current} -> {} replicas: {}",
            decision.desired, decision.reason
        );
        ctx.events
            .publish(
                &md.object_ref(&()),
                Severity::Normal,
                "Scaled",
                "Autoscale",
                note,
            )
            .await;
    }
    Ok(())
}
