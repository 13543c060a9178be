//! `/decisions`: every decision the cluster recorded, newest first, across
//! the namespaces the user may read — alias moves (who and why), training
//! runs and their outcome, the autoscaler's last decision, migrations,
//! canaries, drift, approvals. `/approvals`: the promotions waiting for an
//! approval the signed-in user may give.

use aimass_crds::v1alpha1::{
    Model, ModelApproval, ModelDeployment, REQUESTED_BY_ANNOTATION, TrainingJob, annotation,
};
use minijinja::context;
use serde::Serialize;

use super::{Page, Place, Viewer, at, condition};
use crate::error::Error;

/// At most this many decisions are shown.
const SHOWN: usize = 500;

/// One recorded decision.
#[derive(Debug, PartialEq, Serialize)]
pub struct Decision {
    /// When, RFC 3339 (sorts as text).
    pub time: String,
    /// Where the object is, and its page.
    #[serde(flatten)]
    pub place: Place,
    /// The object, `kind/name`.
    pub object: String,
    /// What was decided.
    pub what: String,
    /// Who decided, when a person did.
    pub by: String,
    /// Why: the evidence or the reason given.
    pub why: String,
}

/// Every decision in these objects, newest first, at most [`SHOWN`] (pure).
pub fn timeline(
    models: &[Model],
    training: &[TrainingJob],
    deployments: &[ModelDeployment],
    approvals: &[ModelApproval],
) -> Vec<Decision> {
    let mut out = Vec::new();
    let mut push = |meta: &kube::api::ObjectMeta,
                    path: &str,
                    kind: &str,
                    time: String,
                    what: String,
                    by: String,
                    why: String| {
        let place = Place::of(meta, path);
        out.push(Decision {
            time,
            object: format!("{kind}/{}", place.name),
            place,
            what,
            by,
            why,
        });
    };
    for m in models {
        let Some(status) = &m.status else { continue };
        for h in &status.alias_history {
            let from = h
                .from
                .map_or_else(|| "unset".to_owned(), |v| format!("v{v}"));
            push(
                &m.metadata,
                "models",
                "Model",
                at(&h.time),
                format!("{} {from} → v{} ({})", h.alias, h.to, h.reason),
                h.by.clone().unwrap_or_default(),
                h.message.clone().unwrap_or_default(),
            );
        }
    }
    for t in training {
        let Some(status) = &t.status else { continue };
        let trigger = t.spec.trigger.as_ref().map(|t| t.reason.clone());
        let by = annotation(&t.metadata, REQUESTED_BY_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        if let Some(started) = &status.start_time {
            push(
                &t.metadata,
                "trainingjobs",
                "TrainingJob",
                at(started),
                format!("training of {} started", t.spec.model_ref.name),
                by.clone(),
                trigger.map(|r| format!("trigger: {r}")).unwrap_or_default(),
            );
        }
        if let Some(ended) = &status.completion_time {
            let outcome = match status.model_version {
                Some(v) => format!("training ended {:?}: version {v}", status.phase),
                None => format!("training ended {:?}", status.phase),
            };
            let why = [status.reason.clone(), status.message.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ");
            push(
                &t.metadata,
                "trainingjobs",
                "TrainingJob",
                at(ended),
                outcome,
                by,
                why,
            );
        }
    }
    for d in deployments {
        let Some(status) = &d.status else { continue };
        if let Some(s) = &status.last_scale_decision {
            push(
                &d.metadata,
                "deployments",
                "ModelDeployment",
                at(&s.time),
                format!(
                    "scaled {} → {}{}",
                    s.from,
                    s.to,
                    if s.panic { " (panic)" } else { "" }
                ),
                String::new(),
                s.reason.clone(),
            );
        }
        for m in &status.migrations {
            push(
                &d.metadata,
                "deployments",
                "ModelDeployment",
                at(&m.time),
                format!("migration of {}: {:?}", m.pod, m.outcome),
                String::new(),
                format!(
                    "{} {:.4} over {:.4}{}",
                    m.metric,
                    m.value,
                    m.threshold,
                    m.message
                        .as_deref()
                        .map(|x| format!("; {x}"))
                        .unwrap_or_default()
                ),
            );
        }
        if let Some(c) = &status.canary {
            push(
                &d.metadata,
                "deployments",
                "ModelDeployment",
                at(&c.step_start_time),
                format!("canary v{} {:?} at {} %", c.version, c.phase, c.percent),
                String::new(),
                c.message.clone().unwrap_or_default(),
            );
        }
        if let Some(drift) = &status.drift
            && let Some(since) = &drift.detected_since
        {
            push(
                &d.metadata,
                "deployments",
                "ModelDeployment",
                at(since),
                "drift detected".to_owned(),
                String::new(),
                drift.message.clone(),
            );
        }
    }
    for a in approvals {
        let Some(created) = &a.metadata.creation_timestamp else {
            continue;
        };
        let counted = a
            .status
            .as_ref()
            .and_then(|s| condition(&s.conditions, "Counted"))
            .map(|c| format!("{}: {}", c.reason, c.message))
            .unwrap_or_default();
        let mut meta = a.metadata.clone();
        meta.name = Some(a.spec.model.clone());
        push(
            &meta,
            "models",
            "ModelApproval",
            at(created),
            format!(
                "approved sha256 {}…",
                a.spec.sha256.get(..12).unwrap_or_default()
            ),
            a.spec.approved_by.clone(),
            [a.spec.comment.clone().unwrap_or_default(), counted]
                .join(" ")
                .trim()
                .to_owned(),
        );
    }
    out.sort_by(|a, b| b.time.cmp(&a.time));
    out.truncate(SHOWN);
    out
}

/// `/decisions`.
pub async fn decisions(viewer: Viewer<'_>) -> Result<Page, Error> {
    let namespaces = viewer.cluster.visible(viewer.session).await?;
    let models: Vec<Model> = viewer.list_permitted("models", &namespaces).await?;
    let training: Vec<TrainingJob> = viewer.list_permitted("trainingjobs", &namespaces).await?;
    let deployments: Vec<ModelDeployment> = viewer
        .list_permitted("modeldeployments", &namespaces)
        .await?;
    let approvals: Vec<ModelApproval> =
        viewer.list_permitted("modelapprovals", &namespaces).await?;
    let rows = timeline(&models, &training, &deployments, &approvals);
    Ok(Page {
        template: "decisions.html",
        context: context! {rows},
        nav: "decisions",
        scope: namespaces,
    })
}

/// A promotion waiting for approval.
#[derive(Debug, Serialize)]
struct Waiting {
    #[serde(flatten)]
    place: Place,
    source: String,
    sha256: String,
    message: String,
}

/// `/approvals`: promotions waiting for approval where the user may
/// approve (create ModelApprovals), but not those the user asked for
/// (their approval would not count).
pub async fn approvals(viewer: Viewer<'_>) -> Result<Page, Error> {
    let namespaces = viewer.cluster.visible(viewer.session).await?;
    let approving: Vec<String> =
        futures::future::try_join_all(namespaces.iter().map(|ns| async move {
            Ok::<_, Error>(
                viewer
                    .may("create", "modelapprovals", ns)
                    .await?
                    .then(|| ns.clone()),
            )
        }))
        .await?
        .into_iter()
        .flatten()
        .collect();
    let models: Vec<Model> = viewer.list_permitted("models", &approving).await?;
    let rows = waiting_for(models, &viewer.session.user);
    Ok(Page {
        template: "approvals.html",
        context: context! {rows},
        nav: "approvals",
        scope: namespaces,
    })
}

/// The promotions among `models` waiting for an approval that `user` did
/// not ask for.
fn waiting_for(models: Vec<Model>, user: &str) -> Vec<Waiting> {
    models
        .into_iter()
        .filter_map(|m| {
            let status = m.status.as_ref()?;
            let waiting = condition(&status.conditions, "Promoted")
                .is_some_and(|c| c.reason == "AwaitingApproval" || c.reason == "SameIdentity");
            let theirs =
                annotation(&m.metadata, REQUESTED_BY_ANNOTATION).is_some_and(|by| by == user);
            let follow = status.follow.as_ref().filter(|_| waiting && !theirs)?;
            Some(Waiting {
                place: Place::of(&m.metadata, "models"),
                source: follow.source.clone().unwrap_or_default(),
                sha256: follow.sha256.clone().unwrap_or_default(),
                message: follow.message.clone().unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_wait_for_anyone_but_the_requester() {
        let models: Vec<Model> = serde_yaml_ng::from_str(
            r#"
- metadata: {name: asked-by-alice, namespace: prod, annotations: {aimass.io/requested-by: alice}}
  spec: {source: {uri: "file:///m.onnx"}}
  status:
    conditions: [{type: Promoted, status: "False", reason: AwaitingApproval, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}]
    follow: {source: "test/fraud:2", sha256: "ab", message: "needs 1 approval"}
- metadata: {name: approved-by-requester, namespace: prod, annotations: {aimass.io/requested-by: carol}}
  spec: {source: {uri: "file:///m.onnx"}}
  status:
    conditions: [{type: Promoted, status: "False", reason: SameIdentity, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}]
    follow: {source: "test/credit:3"}
- metadata: {name: promoted, namespace: prod}
  spec: {source: {uri: "file:///m.onnx"}}
  status:
    conditions: [{type: Promoted, status: "True", reason: Promoted, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}]
    follow: {source: "test/other:1"}
- metadata: {name: no-status, namespace: prod}
  spec: {source: {uri: "file:///m.onnx"}}
"#,
        )
        .expect("models");
        let names = |user: &str| -> Vec<String> {
            waiting_for(models.clone(), user)
                .into_iter()
                .map(|w| w.place.name)
                .collect()
        };
        assert_eq!(names("bob"), ["asked-by-alice", "approved-by-requester"]);
        // What alice asked for is not hers to approve.
        assert_eq!(names("alice"), ["approved-by-requester"]);
        let shown = waiting_for(models.clone(), "bob");
        assert_eq!(
            (shown[0].source.as_str(), shown[0].sha256.as_str()),
            ("test/fraud:2", "ab")
        );
    }

    #[test]
    fn decisions_from_every_kind_are_merged_newest_first() {
        let models: Vec<Model> = serde_yaml_ng::from_str(
            r#"
- apiVersion: aimass.io/v1alpha1
  kind: Model
  metadata: {name: fraud, namespace: risk}
  spec: {source: {uri: "file:///m.onnx"}}
  status:
    aliasHistory:
    - {alias: champion, to: 1, reason: Promoted, message: "auc 0.91", time: "2026-01-01T00:00:00Z"}
    - {alias: champion, from: 1, to: 2, reason: Pinned, by: alice, message: "MRM-7 rollback", time: "2026-01-03T00:00:00Z"}
"#,
        )
        .expect("models");
        let training: Vec<TrainingJob> = serde_yaml_ng::from_str(
            r#"
- apiVersion: aimass.io/v1alpha1
  kind: TrainingJob
  metadata: {name: fraud-drift-1, namespace: risk, annotations: {aimass.io/requested-by: bob}}
  spec: {modelRef: {name: fraud}, image: trainer, dataset: {uri: "s3://b/d.csv"}, trigger: {reason: Drift}}
  status: {phase: Succeeded, modelVersion: 2, startTime: "2026-01-02T00:00:00Z", completionTime: "2026-01-02T01:00:00Z"}
"#,
        )
        .expect("runs");
        let deployments: Vec<ModelDeployment> = serde_yaml_ng::from_str(
            r#"
- apiVersion: aimass.io/v1alpha1
  kind: ModelDeployment
  metadata: {name: scoring, namespace: risk}
  spec: {model: {name: fraud}}
  status:
    lastScaleDecision: {time: "2026-01-04T00:00:00Z", from: 2, to: 4, panic: true, stableValue: 9, panicValue: 20, reason: "concurrency 20 over 5"}
"#,
        )
        .expect("deployments");
        let rows = timeline(&models, &training, &deployments, &[]);
        let what: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|d| (d.what.as_str(), d.by.as_str(), d.why.as_str()))
            .collect();
        assert_eq!(
            what,
            [
                ("scaled 2 → 4 (panic)", "", "concurrency 20 over 5"),
                ("champion v1 → v2 (Pinned)", "alice", "MRM-7 rollback"),
                ("training ended Succeeded: version 2", "bob", ""),
                ("training of fraud started", "bob", "trigger: Drift"),
                ("champion unset → v1 (Promoted)", "", "auc 0.91"),
            ]
        );
        assert_eq!(rows[1].place.href, "/ns/risk/models/fraud");
    }
}
