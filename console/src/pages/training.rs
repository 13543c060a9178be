//! Training runs: the list, and one run with its metric curves.

use std::collections::BTreeMap;

use aimass_crds::v1alpha1::TrainingJob;
use minijinja::{Value, context};
use serde::Serialize;

use super::{Page, Place, Viewer, name};
use crate::chart::{self, Series};
use crate::error::Error;

/// At most this many runs are listed, newest first.
const LISTED: usize = 500;

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    place: Place,
    model: String,
    phase: String,
    version: Option<i64>,
    trigger: String,
    metrics: BTreeMap<String, f64>,
    started: String,
}

/// `/trainingjobs`: the runs in the namespaces the user may read.
pub async fn training_jobs(viewer: Viewer<'_>) -> Result<Page, Error> {
    let namespaces = viewer.cluster.visible(viewer.session).await?;
    let mut all: Vec<TrainingJob> = viewer.list_permitted("trainingjobs", &namespaces).await?;
    all.sort_by(|a, b| {
        b.metadata
            .creation_timestamp
            .cmp(&a.metadata.creation_timestamp)
    });
    all.truncate(LISTED);
    let rows: Vec<Row> = all
        .into_iter()
        .map(|t| {
            let status = t.status.unwrap_or_default();
            Row {
                place: Place::of(&t.metadata, "trainingjobs"),
                model: t.spec.model_ref.name,
                phase: format!("{:?}", status.phase),
                version: status.model_version,
                trigger: t.spec.trigger.map(|t| t.reason).unwrap_or_default(),
                metrics: status.metrics,
                started: status
                    .start_time
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
            }
        })
        .collect();
    Ok(Page {
        template: "training_jobs.html",
        context: context! {rows},
        nav: "training",
        scope: namespaces,
    })
}

/// `/ns/{ns}/trainingjobs/{name}`: one run, a chart per metric over its
/// reported steps (or arrival order), live as samples arrive.
pub async fn training_job(viewer: Viewer<'_>, ns: &str, job: &str) -> Result<Page, Error> {
    let (ns, job) = (name(ns)?, name(job)?);
    let tj: TrainingJob = viewer.get("trainingjobs", ns, job).await?;
    let status = tj.status.clone().unwrap_or_default();
    let mut by_metric: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, sample) in status.metrics_history.iter().enumerate() {
        let x = sample.step.unwrap_or(i as i64) as f64;
        for (metric, value) in &sample.metrics {
            by_metric.entry(metric).or_default().push((x, *value));
        }
    }
    let charts: Vec<String> = by_metric
        .into_iter()
        .map(|(metric, points)| {
            chart::svg(
                &[Series {
                    name: metric.to_owned(),
                    points,
                }],
                480,
                180,
            )
        })
        .collect();
    let context = context! {
        ns, name => job,
        tj => Value::from_serialize(&tj),
        status => Value::from_serialize(&status),
        charts,
        samples => status.metrics_history.len(),
    };
    Ok(Page {
        template: "training_job.html",
        context,
        nav: "training",
        scope: vec![ns.to_owned()],
    })
}
