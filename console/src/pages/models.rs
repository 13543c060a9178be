//! The registry: one Model with its versions and decisions, one version,
//! two versions compared.

use aimass_crds::v1alpha1::{
    MetricGoal, Model, ModelApproval, ModelDeployment, ModelStatus, ModelVersion,
    REASON_ANNOTATION, REASON_FOR_ANNOTATION, REQUESTED_BY_ANNOTATION, VersionPhase, annotation,
};
use minijinja::{Value, context};
use serde::Serialize;

use super::{Page, Viewer, at, condition, name};
use crate::chart::{self, Series};
use crate::error::Error;

/// At most this many metrics are columns and lines of a Model's page.
const SHOWN_METRICS: usize = 4;

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
        .filter(|d| d.spec.models().any(|m| m.name == model_name))
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
    let schedule = model.spec.source.training.as_ref().and_then(|t| {
        let cron = t.schedule.clone()?;
        let annotation = |key: &str| annotation(&model.metadata, key).cloned();
        // Who paused it and why, when the annotations explain this state.
        let explained = annotation(REASON_FOR_ANNOTATION).as_deref()
            == Some(format!("suspend={}", t.suspend).as_str());
        Some(context! {
            cron,
            suspended => t.suspend,
            by => explained.then(|| annotation(REQUESTED_BY_ANNOTATION)).flatten(),
            reason => explained.then(|| annotation(REASON_ANNOTATION)).flatten(),
            next => status.next_scheduled_time.as_ref().map(at),
        })
    });
    let context = context! {
        ns, name => model_name, schedule,
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

/// One field that differs between two versions.
#[derive(Debug, PartialEq, Serialize)]
pub struct Difference {
    /// What differs, e.g. `metric auc`, `parameter max_depth`.
    pub field: String,
    /// The first version's value ("" when it has none).
    pub a: String,
    /// The second version's.
    pub b: String,
    /// b − a, for numbers.
    pub delta: Option<f64>,
}

/// The fields of `a` and `b` that differ: metrics (with their delta),
/// parameters, image, data set, artifact, signature, baseline (pure).
pub fn differences(a: &ModelVersion, b: &ModelVersion) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut names: Vec<&String> = a.metrics.keys().chain(b.metrics.keys()).collect();
    names.sort();
    names.dedup();
    for m in names {
        let (x, y) = (a.metrics.get(m), b.metrics.get(m));
        if x != y {
            out.push(Difference {
                field: format!("metric {m}"),
                a: x.map(|v| format!("{v:.4}")).unwrap_or_default(),
                b: y.map(|v| format!("{v:.4}")).unwrap_or_default(),
                delta: x.zip(y).map(|(x, y)| y - x),
            });
        }
    }
    let lineage = |v: &ModelVersion| v.lineage.clone().unwrap_or_default();
    let (la, lb) = (lineage(a), lineage(b));
    let mut params: Vec<&String> = la
        .hyperparameters
        .keys()
        .chain(lb.hyperparameters.keys())
        .collect();
    params.sort();
    params.dedup();
    for p in params {
        let (x, y) = (la.hyperparameters.get(p), lb.hyperparameters.get(p));
        if x != y {
            out.push(Difference {
                field: format!("parameter {p}"),
                a: x.cloned().unwrap_or_default(),
                b: y.cloned().unwrap_or_default(),
                delta: None,
            });
        }
    }
    let signature = |v: &ModelVersion| {
        v.signature.as_ref().map_or_else(String::new, |s| {
            let show = |t: &[aimass_crds::v1alpha1::TensorSignature]| {
                t.iter()
                    .map(|t| format!("{} {} {:?}", t.name, t.datatype, t.shape))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("in: {}; out: {}", show(&s.inputs), show(&s.outputs))
        })
    };
    let baseline = |v: &ModelVersion| {
        v.baseline
            .as_ref()
            .map(|b| {
                format!(
                    "{} features, {} scores, sha256 {}",
                    b.features,
                    b.scores,
                    b.sha256.get(..12).unwrap_or_default()
                )
            })
            .unwrap_or_default()
    };
    let facts: [(&str, String, String); 6] = [
        (
            "image",
            la.image.clone().unwrap_or_default(),
            lb.image.clone().unwrap_or_default(),
        ),
        (
            "data set",
            la.dataset_uri.clone().unwrap_or_default(),
            lb.dataset_uri.clone().unwrap_or_default(),
        ),
        (
            "trigger",
            la.trigger
                .as_ref()
                .map(|t| t.reason.clone())
                .unwrap_or_default(),
            lb.trigger
                .as_ref()
                .map(|t| t.reason.clone())
                .unwrap_or_default(),
        ),
        (
            "artifact sha256",
            a.sha256.clone().unwrap_or_default(),
            b.sha256.clone().unwrap_or_default(),
        ),
        ("signature", signature(a), signature(b)),
        ("drift baseline", baseline(a), baseline(b)),
    ];
    for (field, x, y) in facts {
        if x != y {
            out.push(Difference {
                field: field.to_owned(),
                a: x,
                b: y,
                delta: None,
            });
        }
    }
    out
}

/// `/ns/{ns}/models/{name}/compare?a=N&b=M`: what differs between two
/// versions (by default the two latest), and their latest evaluations side
/// by side.
pub async fn compare(
    viewer: Viewer<'_>,
    ns: &str,
    model_name: &str,
    query: Option<&str>,
) -> Result<Page, Error> {
    let (ns, model_name) = (name(ns)?, name(model_name)?);
    let model: Model = viewer.get("models", ns, model_name).await?;
    let status = model.status.clone().unwrap_or_default();
    let asked = |key: &str| {
        query
            .into_iter()
            .flat_map(|q| url::form_urlencoded::parse(q.as_bytes()))
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.trim_start_matches('v').parse::<i64>().ok())
    };
    let mut latest = status.versions.iter().rev().map(|v| v.version);
    let b_default = latest.next();
    let a_default = latest.next();
    let (Some(a), Some(b)) = (asked("a").or(a_default), asked("b").or(b_default)) else {
        return Err(Error::NotFound(format!(
            "{ns}/{model_name} has fewer than two versions"
        )));
    };
    let find = |n: i64| {
        status
            .versions
            .iter()
            .find(|v| v.version == n)
            .ok_or_else(|| Error::NotFound(format!("version {n} of {ns}/{model_name}")))
    };
    let (va, vb) = (find(a)?, find(b)?);
    let evaluation = |n: i64| {
        status
            .evaluations
            .iter()
            .rev()
            .find(|e| e.version == n)
            .cloned()
    };
    let context = context! {
        ns, name => model_name, a, b,
        versions => status.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        differences => differences(va, vb),
        evaluation_a => Value::from_serialize(evaluation(a)),
        evaluation_b => Value::from_serialize(evaluation(b)),
        backtests => super::scoring::backtests(viewer, ns, model_name, a, b).await?,
    };
    Ok(Page {
        template: "compare.html",
        context,
        nav: "models",
        scope: vec![ns.to_owned()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_differs_is_compared_with_the_metric_deltas() {
        let version =
            |yaml: &str| -> ModelVersion { serde_yaml_ng::from_str(yaml).expect("a version") };
        let a = version(
            r#"{version: 1, phase: Ready, uri: "file:///1", sha256: "aa", created: "2026-01-01T00:00:00Z",
            metrics: {auc: 0.90, ks: 0.5}, lineage: {image: "t:1", datasetUri: "s3://d", hyperparameters: {max_depth: "4", eta: "0.1"}}}"#,
        );
        let b = version(
            r#"{version: 2, phase: Ready, uri: "file:///2", sha256: "bb", created: "2026-01-02T00:00:00Z",
            metrics: {auc: 0.92, ks: 0.5, recall: 0.7}, lineage: {image: "t:1", datasetUri: "s3://d", hyperparameters: {max_depth: "6", eta: "0.1"}, trigger: {reason: Drift}}}"#,
        );
        let diff = differences(&a, &b);
        let fields: Vec<&str> = diff.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metric auc",
                "metric recall",
                "parameter max_depth",
                "trigger",
                "artifact sha256"
            ]
        );
        let auc = &diff[0];
        assert!(
            (auc.delta.unwrap_or_default() - 0.02).abs() < 1e-12,
            "{auc:?}"
        );
        assert_eq!((diff[1].a.as_str(), diff[1].delta), ("", None));
    }
}
