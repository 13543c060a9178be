//! The registry: every Model, one Model with its versions and decisions,
//! one version.

use aimass_crds::v1alpha1::{
    CHALLENGER_ALIAS, MetricGoal, Model, ModelApproval, ModelDeployment, ModelStatus, ModelVersion,
    VersionPhase,
};
use minijinja::{Value, context};
use serde::Serialize;

use super::{Page, Viewer, condition, name, readiness};
use crate::chart::{self, Series};
use crate::error::Error;

/// At most this many metrics are columns and lines of a Model's page.
const SHOWN_METRICS: usize = 4;

#[derive(Serialize)]
struct Row {
    namespace: String,
    name: String,
    href: String,
    champion: Option<i64>,
    challenger: Option<i64>,
    metric_name: Option<String>,
    metric: Option<f64>,
    versions: usize,
    schedule: String,
    champion_from: String,
    ready: String,
    ready_class: &'static str,
}

/// `/models`: every Model in the namespaces the user may read.
pub async fn models(viewer: Viewer<'_>) -> Result<Page, Error> {
    let namespaces = viewer.cluster.visible(viewer.session).await?;
    let mut all: Vec<Model> = viewer.list_all("models", &namespaces).await?;
    all.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    let rows: Vec<Row> = all.iter().map(row).collect();
    Ok(Page {
        template: "models.html",
        context: context! {rows},
        nav: "models",
        scope: namespaces,
    })
}

fn row(model: &Model) -> Row {
    let namespace = model.metadata.namespace.clone().unwrap_or_default();
    let name = model.metadata.name.clone().unwrap_or_default();
    let status = model.status.clone().unwrap_or_default();
    let alias = &model.spec.promotion.alias;
    let champion = status.aliases.get(alias).copied();
    let metric_name = key_metric(model, &status);
    let metric = champion
        .and_then(|c| status.versions.iter().find(|v| v.version == c))
        .zip(metric_name.as_ref())
        .and_then(|(v, m)| v.metrics.get(m).copied());
    let (ready, ready_class) = readiness(&status.conditions);
    Row {
        href: format!("/ns/{namespace}/models/{name}"),
        champion,
        challenger: status.aliases.get(CHALLENGER_ALIAS).copied(),
        metric,
        metric_name,
        versions: status.versions.len(),
        schedule: model
            .spec
            .source
            .training
            .as_ref()
            .and_then(|t| {
                t.schedule.clone().map(|s| {
                    if t.suspend {
                        format!("{s} (paused)")
                    } else {
                        s
                    }
                })
            })
            .unwrap_or_default(),
        champion_from: status.champion_from.clone().unwrap_or_default(),
        ready,
        ready_class,
        namespace,
        name,
    }
}

/// The metric the Model is judged by: its first gate's, else the first
/// any version reports.
fn key_metric(model: &Model, status: &ModelStatus) -> Option<String> {
    model
        .spec
        .promotion
        .gates
        .first()
        .map(|g| g.metric.clone())
        .or_else(|| {
            status
                .versions
                .iter()
                .find_map(|v| v.metrics.keys().next().cloned())
        })
}

/// The metrics shown for a Model: the gates' first, then others reported.
fn metric_names(model: &Model, status: &ModelStatus) -> Vec<String> {
    let mut names: Vec<String> = model
        .spec
        .promotion
        .gates
        .iter()
        .map(|g| g.metric.clone())
        .collect();
    for v in &status.versions {
        for m in v.metrics.keys() {
            if !names.contains(m) {
                names.push(m.clone());
            }
        }
    }
    names.dedup();
    names.truncate(SHOWN_METRICS);
    names
}

#[derive(Serialize)]
struct Approval {
    name: String,
    by: String,
    sha256: String,
    comment: String,
    counted: String,
    counted_class: &'static str,
}

#[derive(Serialize)]
struct Served {
    name: String,
    serving: Option<i64>,
}

/// `/ns/{ns}/models/{name}`: versions, metrics across them, aliases and
/// who moved them, approvals, evaluations, and what serves it.
pub async fn model(viewer: Viewer<'_>, ns: &str, model_name: &str) -> Result<Page, Error> {
    let (ns, model_name) = (name(ns)?, name(model_name)?);
    let model: Model = viewer.get("models", ns, model_name).await?;
    let status = model.status.clone().unwrap_or_default();
    let metric_names = metric_names(&model, &status);
    let series: Vec<Series> = metric_names
        .iter()
        .map(|m| Series {
            name: m.clone(),
            points: status
                .versions
                .iter()
                .filter_map(|v| v.metrics.get(m).map(|value| (v.version as f64, *value)))
                .collect(),
        })
        .collect();
    let chart = chart::svg(&series, 640, 200 + 14 * series.len() as u32);
    let deployments: Vec<ModelDeployment> = if viewer.may("list", "modeldeployments", ns).await? {
        viewer.list("modeldeployments", ns).await?
    } else {
        Vec::new()
    };
    let deployments: Vec<Served> = deployments
        .into_iter()
        .filter(|d| d.spec.model.name == model_name)
        .map(|d| Served {
            serving: d.status.as_ref().and_then(|s| s.serving_version),
            name: d.metadata.name.unwrap_or_default(),
        })
        .collect();
    let approvals = if status.follow.is_some() && viewer.may("list", "modelapprovals", ns).await? {
        approvals(viewer.list("modelapprovals", ns).await?, model_name)
    } else {
        Vec::new()
    };
    let mut versions = status.versions.clone();
    versions.reverse();
    let ready_versions: Vec<i64> = versions
        .iter()
        .filter(|v| v.phase == VersionPhase::Ready)
        .map(|v| v.version)
        .collect();
    let mut history = status.alias_history.clone();
    history.reverse();
    let mut evaluations = status.evaluations.clone();
    evaluations.reverse();
    let source = model
        .spec
        .source
        .promoted_from
        .as_ref()
        .map(|p| format!("promoted from {}/{}", p.namespace, p.model))
        .or_else(|| {
            model
                .spec
                .source
                .training
                .as_ref()
                .map(|t| format!("trained by {}", t.template.image))
        })
        .or_else(|| {
            model
                .spec
                .source
                .uri
                .clone()
                .map(|u| format!("imported from {u}"))
        });
    let context = context! {
        ns, name => model_name,
        status => Value::from_serialize(&status),
        versions => Value::from_serialize(&versions),
        metric_names, chart => (!chart.is_empty()).then_some(chart),
        chart_title => "Metrics across versions",
        history => Value::from_serialize(&history),
        evaluations => Value::from_serialize(&evaluations),
        deployments, approvals, ready_versions, source,
        promotion_alias => model.spec.promotion.alias.clone(),
        can_promote => viewer.may("patch", "models", ns).await?,
        can_approve => viewer.may("create", "modelapprovals", ns).await?,
    };
    Ok(Page {
        template: "model.html",
        context,
        nav: "models",
        scope: vec![ns.to_owned()],
    })
}

fn approvals(all: Vec<ModelApproval>, model: &str) -> Vec<Approval> {
    all.into_iter()
        .filter(|a| a.spec.model == model)
        .map(|a| {
            let counted = a
                .status
                .as_ref()
                .and_then(|s| condition(&s.conditions, "Counted").cloned());
            let (counted, counted_class) = match counted {
                Some(c) if c.status == "True" => ("Counted".to_owned(), "ok"),
                Some(c) => (format!("{}: {}", c.reason, c.message), "bad"),
                None => ("Not yet".to_owned(), "muted"),
            };
            Approval {
                name: a.metadata.name.unwrap_or_default(),
                by: a.spec.approved_by,
                sha256: a.spec.sha256,
                comment: a.spec.comment.unwrap_or_default(),
                counted,
                counted_class,
            }
        })
        .collect()
}

#[derive(Serialize)]
struct Gate {
    metric: String,
    goal: &'static str,
    threshold: String,
    value: Option<f64>,
    verdict: &'static str,
    verdict_class: &'static str,
}

/// `/ns/{ns}/models/{name}/versions/{v}`: one version's facts, its gates
/// with threshold and value, signature, parameters, baseline, provenance.
pub async fn version(
    viewer: Viewer<'_>,
    ns: &str,
    model_name: &str,
    number: &str,
) -> Result<Page, Error> {
    let (ns, model_name) = (name(ns)?, name(model_name)?);
    let number: i64 = number
        .trim_start_matches('v')
        .parse()
        .map_err(|_| Error::NotFound("no such version".into()))?;
    let model: Model = viewer.get("models", ns, model_name).await?;
    let status = model.status.clone().unwrap_or_default();
    let v = status
        .versions
        .iter()
        .find(|v| v.version == number)
        .ok_or_else(|| Error::NotFound(format!("version {number} of {ns}/{model_name}")))?;
    let context = context! {
        ns, name => model_name,
        v => Value::from_serialize(v),
        aliases => Value::from_serialize(&status.aliases),
        gates => gates(&model, v),
    };
    Ok(Page {
        template: "version.html",
        context,
        nav: "models",
        scope: vec![ns.to_owned()],
    })
}

fn gates(model: &Model, v: &ModelVersion) -> Vec<Gate> {
    model
        .spec
        .promotion
        .gates
        .iter()
        .map(|g| {
            let value = v.metrics.get(&g.metric).copied();
            let within = value.map(|x| {
                g.minimum.is_none_or(|min| x >= min) && g.maximum.is_none_or(|max| x <= max)
            });
            let mut threshold = Vec::new();
            if let Some(min) = g.minimum {
                threshold.push(format!("≥ {min}"));
            }
            if let Some(max) = g.maximum {
                threshold.push(format!("≤ {max}"));
            }
            if let Some(by) = g.better_than_champion_by {
                threshold.push(format!("better than the champion by {by}"));
            }
            let (verdict, verdict_class) = match within {
                Some(true) => ("within", "ok"),
                Some(false) => ("outside", "bad"),
                None => ("not reported", "muted"),
            };
            Gate {
                metric: g.metric.clone(),
                goal: match g.goal {
                    MetricGoal::Maximize => "higher is better",
                    MetricGoal::Minimize => "lower is better",
                },
                threshold: threshold.join(", "),
                value,
                verdict,
                verdict_class,
            }
        })
        .collect()
}
