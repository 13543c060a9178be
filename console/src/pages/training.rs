//! Training runs: the list, and one run with its metric curves and the
//! tail of its trainer's output.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use aimass_crds::trainer::{self, Line};
use aimass_crds::v1alpha1::{MetricsSample, TrainingJob};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use minijinja::{Value, context};
use serde::Serialize;

use super::{Page, Place, Viewer, at, name, newest_first};
use crate::chart::{self, Series};
use crate::cluster::{Access, timed};
use crate::error::Error;

/// At most this many runs are listed, newest first.
const LISTED: usize = 500;
/// The most bytes of a trainer's output read for a run's page.
const OUTPUT_BYTES: i64 = 4 * 1024 * 1024;
/// The most lines of a trainer's output read (the newest).
const OUTPUT_LINES: i64 = 20_000;
/// The most metrics drawn from a trainer's output (the first it printed).
const CHARTED_METRICS: usize = 8;
/// How many of the last lines of output a run's page shows.
const TAIL_LINES: usize = 100;
/// A shown line is cut at this many characters.
const TAIL_WIDTH: usize = 500;
/// The label the Job controller puts on its pods.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The label of an Indexed Job pod's index (rank 0 reports progress).
const INDEX_LABEL: &str = "batch.kubernetes.io/job-completion-index";

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
    let all: Vec<TrainingJob> = viewer.list_permitted("trainingjobs", &namespaces).await?;
    let rows: Vec<Row> = newest_first(all, LISTED)
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
                started: status.start_time.as_ref().map(at).unwrap_or_default(),
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
/// reported steps (or arrival order), live as samples arrive: every sample
/// the trainer printed while its pod's output can be read (as the user),
/// else the last ones status keeps.
pub async fn training_job(viewer: Viewer<'_>, ns: &str, job: &str) -> Result<Page, Error> {
    let (ns, job) = (name(ns)?, name(job)?);
    let tj: TrainingJob = viewer.get("trainingjobs", ns, job).await?;
    let status = tj.status.clone().unwrap_or_default();
    let mut output = match &status.job_name {
        Some(job_name) => read_output(viewer, ns, job_name).await,
        None => Output::missing("the run has not started a Job yet"),
    };
    let (curves, source) = if output.curves.is_empty() {
        (curves_of_status(&status.metrics_history), "status")
    } else {
        (std::mem::take(&mut output.curves), "output")
    };
    let samples = curves.values().map(Vec::len).max().unwrap_or(0);
    let charts: Vec<String> = curves
        .into_iter()
        .map(|(metric, points)| {
            chart::svg(
                &[Series {
                    name: metric,
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
        samples,
        source,
        output => Value::from_serialize(&output),
    };
    Ok(Page {
        template: "training_job.html",
        context,
        nav: "training",
        scope: vec![ns.to_owned()],
    })
}

/// Curves of the samples status keeps: x is the step, or the arrival order.
fn curves_of_status(history: &[MetricsSample]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut curves: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (i, sample) in history.iter().enumerate() {
        let x = sample.step.unwrap_or(i as i64) as f64;
        for (metric, value) in &sample.metrics {
            curves.entry(metric.clone()).or_default().push((x, *value));
        }
    }
    curves
}

/// What a run's trainer printed, as its page shows it.
#[derive(Clone, Debug, Default, Serialize)]
struct Output {
    /// The pod read.
    pod: Option<String>,
    /// Why there is no output to show, when there is none.
    missing: Option<String>,
    /// Lines read.
    lines: usize,
    /// The last [`TAIL_LINES`] lines, each at most [`TAIL_WIDTH`]
    /// characters.
    tail: Vec<String>,
    /// Every metric sample read, by metric: (step or order, value).
    #[serde(skip)]
    curves: BTreeMap<String, Vec<(f64, f64)>>,
}

impl Output {
    fn missing(why: impl Into<String>) -> Self {
        Self {
            missing: Some(why.into()),
            ..Self::default()
        }
    }

    /// Reads `text`, a trainer's output: its metric lines become curves
    /// (of the first [`CHARTED_METRICS`] metrics), its last lines the tail.
    fn read(pod: String, text: &str) -> Self {
        let mut curves: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        let mut order = 0_i64;
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines {
            let Some(Line::Metrics { step, metrics }) = trainer::parse(line) else {
                continue;
            };
            let x = step.unwrap_or(order) as f64;
            order += 1;
            for (metric, value) in metrics {
                if curves.len() < CHARTED_METRICS || curves.contains_key(&metric) {
                    curves.entry(metric).or_default().push((x, value));
                }
            }
        }
        let tail = lines[lines.len().saturating_sub(TAIL_LINES)..]
            .iter()
            .map(|l| l.chars().take(TAIL_WIDTH).collect())
            .collect();
        Self {
            pod: Some(pod),
            missing: None,
            lines: lines.len(),
            tail,
            curves,
        }
    }
}

/// The output of `job`'s trainer (rank 0's, the newest pod), read with the
/// user's token after checking they may list pods and read their logs.
/// What cannot be read says why instead of failing the page.
async fn read_output(viewer: Viewer<'_>, ns: &str, job: &str) -> Output {
    match try_read_output(viewer, ns, job).await {
        Ok(output) => output,
        Err(Error::Forbidden(why)) => Output::missing(why),
        Err(e) => Output::missing(format!("cannot read the trainer's output: {e}")),
    }
}

async fn try_read_output(viewer: Viewer<'_>, ns: &str, job: &str) -> Result<Output, Error> {
    let listed = viewer.pods(ns, &format!("{JOB_NAME_LABEL}={job}")).await?;
    let (cluster, session) = (viewer.cluster, viewer.session);
    cluster
        .check(session, &Access::core("get", "pods/log", ns))
        .await?;
    let Some(pod) = trainer_pod(listed) else {
        return Ok(Output::missing(
            "the trainer's pod is gone, and its output with it: the chart shows the samples status keeps",
        ));
    };
    let params = LogParams {
        container: Some(trainer::CONTAINER.into()),
        tail_lines: Some(OUTPUT_LINES),
        limit_bytes: Some(OUTPUT_BYTES),
        ..LogParams::default()
    };
    let pods: Api<Pod> = Api::namespaced(cluster.as_user(session)?, ns);
    match timed(pods.logs(&pod, &params)).await {
        Ok(text) => Ok(Output::read(pod, &text)),
        // A pod whose container has not started has no output yet.
        Err(Error::BadRequest(why)) => Ok(Output::missing(why)),
        Err(e) => Err(e),
    }
}

/// The pod whose output tells a run's progress: rank 0 (or the only one),
/// the newest first.
fn trainer_pod(mut pods: Vec<Pod>) -> Option<String> {
    pods.sort_by_key(|p| {
        let index = p.metadata.labels.as_ref().and_then(|l| l.get(INDEX_LABEL));
        (
            index.is_some_and(|i| i != "0"),
            Reverse(p.metadata.creation_timestamp.clone()),
        )
    });
    pods.into_iter().find_map(|p| p.metadata.name)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::*;

    #[test]
    fn every_metric_line_is_a_point_and_the_tail_is_the_last_lines() {
        let mut text = String::from("loading data\n");
        for step in 0..10_000 {
            text.push_str(&format!(
                "{{\"step\": {step}, \"metrics\": {{\"loss\": {}}}}}\n",
                1.0 / f64::from(step + 1)
            ));
        }
        text.push_str("auc=0.9\ndone\n");
        let output = Output::read("run-0".into(), &text);
        assert_eq!(output.lines, 10_003);
        assert_eq!(output.curves["loss"].len(), 10_000);
        assert_eq!(output.curves["loss"][9_999], (9_999.0, 1.0 / 10_000.0));
        // A line without a step is placed by its order among metric lines.
        assert_eq!(output.curves["auc"], vec![(10_000.0, 0.9)]);
        assert_eq!(output.tail.len(), TAIL_LINES);
        assert_eq!(output.tail.last().map(String::as_str), Some("done"));
    }

    #[test]
    fn a_hostile_trainer_cannot_grow_the_page() {
        let mut text = String::new();
        for i in 0..100 {
            let line: BTreeMap<String, f64> = (0..50).map(|j| (format!("m{i}_{j}"), 1.0)).collect();
            text.push_str(&serde_json::json!({ "metrics": line }).to_string());
            text.push('\n');
        }
        text.push_str(&"é".repeat(1_000_000));
        let output = Output::read("p".into(), &text);
        assert_eq!(output.curves.len(), CHARTED_METRICS);
        assert!(output.tail.iter().all(|l| l.chars().count() <= TAIL_WIDTH));
    }

    fn pod(name: &str, index: Option<&str>, created: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: index.map(|i| [(INDEX_LABEL.to_owned(), i.to_owned())].into()),
                creation_timestamp: Some(Time(
                    jiff::Timestamp::from_second(created).expect("a time"),
                )),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    #[test]
    fn rank_zero_newest_pod_is_read() {
        assert_eq!(trainer_pod(Vec::new()), None);
        let pods = vec![
            pod("old-0", Some("0"), 1),
            pod("new-1", Some("1"), 3),
            pod("new-0", Some("0"), 2),
        ];
        assert_eq!(trainer_pod(pods).as_deref(), Some("new-0"));
        let single = vec![pod("a", None, 1), pod("b", None, 2)];
        assert_eq!(trainer_pod(single).as_deref(), Some("b"));
    }
}
