//! The shadow trial (`spec.promotion.shadow`): a version that passed the
//! gates becomes the challenger and waits (reason `ShadowTrial`) while a
//! ModelDeployment serving the holder of the alias shadows it; once it
//! scored enough requests it is promoted if it agrees closely enough with
//! the holder, and otherwise keeps the challenger alias (reason
//! `ShadowTrialLost`).

use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{Model, ModelDeployment, ModelStatus, ShadowGate, ShadowStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::aliases::{Why, move_alias};
use crate::events::{Notice, Severity};

/// How a trial stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Agreed closely enough over enough requests.
    Won(String),
    /// Scored enough requests and fell short.
    Lost(String),
}

/// Settles the trials of waiting versions from what the `deployments`
/// serving the Model report.
pub fn settle(
    model: &Model,
    deployments: &[ModelDeployment],
    status: &mut ModelStatus,
    now: &Time,
    notices: &mut Vec<Notice>,
) {
    let Some(gate) = &model.spec.promotion.shadow else {
        return;
    };
    let alias = model.spec.promotion.alias.clone();
    let Some(&holder) = status.aliases.get(&alias) else {
        return;
    };
    let waiting: Vec<i64> = status
        .versions
        .iter()
        .filter(|v| v.reason.as_deref() == Some(reasons::SHADOW_TRIAL))
        .map(|v| v.version)
        .collect();
    for candidate in waiting {
        let Some((deployment, shadow)) = best_trial(deployments, holder, candidate) else {
            continue;
        };
        let Some(outcome) = judge(gate, shadow, holder, &deployment) else {
            continue;
        };
        let (reason, message) = match &outcome {
            Outcome::Won(message) => (None, message.clone()),
            Outcome::Lost(message) => (Some(reasons::SHADOW_TRIAL_LOST), message.clone()),
        };
        if let Some(version) = status.versions.iter_mut().find(|v| v.version == candidate) {
            version.reason = reason.map(str::to_owned);
            version.message = Some(message.clone());
        }
        notices.push(Notice::new(
            Severity::Normal,
            reason.unwrap_or("ShadowTrialWon"),
            format!("version {candidate}: {message}"),
        ));
        if matches!(outcome, Outcome::Won(_)) && !model.spec.aliases.contains_key(&alias) {
            move_alias(
                status,
                &alias,
                candidate,
                Why::decided("Promoted", message),
                now,
                notices,
            );
        }
    }
}

/// The ModelDeployment serving `holder` that shadowed `candidate` the
/// most, and its comparison.
fn best_trial(
    deployments: &[ModelDeployment],
    holder: i64,
    candidate: i64,
) -> Option<(String, &ShadowStatus)> {
    deployments
        .iter()
        .filter(|md| md.spec.model.is_some())
        .filter_map(|md| {
            let status = md.status.as_ref()?;
            let shadow = status.shadow.as_ref()?;
            (status.serving_version == Some(holder) && shadow.version == candidate)
                .then(|| (md.name_any(), shadow))
        })
        .max_by_key(|(_, shadow)| shadow.requests)
}

/// The trial's outcome once `shadow` has enough requests. Pure.
pub fn judge(
    gate: &ShadowGate,
    shadow: &ShadowStatus,
    holder: i64,
    deployment: &str,
) -> Option<Outcome> {
    if shadow.requests < gate.min_requests {
        return None;
    }
    let mut held = Vec::new();
    let mut short = Vec::new();
    if let Some(min) = gate.min_label_agreement {
        match shadow.label_agreement {
            Some(a) if a >= min => held.push(format!("label agreement {a:.4} >= {min}")),
            Some(a) => short.push(format!("label agreement {a:.4} < {min}")),
            None => short.push("no labels to compare".to_owned()),
        }
    }
    if let Some(max) = gate.max_mean_difference {
        match shadow.mean_absolute_difference {
            Some(d) if d <= max => held.push(format!("mean score difference {d:.4} <= {max}")),
            Some(d) => short.push(format!("mean score difference {d:.4} > {max}")),
            None => short.push("no scores to compare".to_owned()),
        }
    }
    let over = format!(
        "over {} shadowed requests ({} rows) beside v{holder} in ModelDeployment {deployment}",
        shadow.requests, shadow.rows
    );
    Some(if short.is_empty() {
        Outcome::Won(format!("{} {over}", held.join(", ")))
    } else {
        Outcome::Lost(format!("{} {over}", short.join(", ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(agreement: Option<f64>, difference: Option<f64>) -> ShadowGate {
        ShadowGate {
            min_requests: 100,
            min_label_agreement: agreement,
            max_mean_difference: difference,
        }
    }

    fn shadow(requests: i64, agreement: Option<f64>, difference: Option<f64>) -> ShadowStatus {
        ShadowStatus {
            version: 3,
            requests,
            rows: requests * 16,
            label_agreement: agreement,
            mean_absolute_difference: difference,
            ..Default::default()
        }
    }

    #[test]
    fn a_trial_is_judged_once_it_has_enough_requests() {
        let verdict = |g: ShadowGate, s: ShadowStatus| judge(&g, &s, 2, "scoring");
        assert_eq!(
            verdict(gate(Some(0.9), None), shadow(99, Some(1.0), None)),
            None,
            "too few requests"
        );
        assert_eq!(
            verdict(gate(Some(0.9), None), shadow(100, Some(0.9375), Some(0.02))),
            Some(Outcome::Won(
                "label agreement 0.9375 >= 0.9 over 100 shadowed requests (1600 rows) beside v2 in ModelDeployment scoring".into()
            ))
        );
        assert_eq!(
            verdict(gate(Some(0.9), Some(0.1)), shadow(500, Some(0.875), Some(0.12))),
            Some(Outcome::Lost(
                "label agreement 0.8750 < 0.9, mean score difference 0.1200 > 0.1 over 500 shadowed requests (8000 rows) beside v2 in ModelDeployment scoring".into()
            ))
        );
        assert!(matches!(
            verdict(gate(Some(0.5), None), shadow(100, None, Some(0.0))),
            Some(Outcome::Lost(m)) if m.starts_with("no labels to compare")
        ));
        assert!(matches!(
            verdict(gate(None, Some(0.05)), shadow(100, None, Some(0.05))),
            Some(Outcome::Won(_))
        ));
    }

    fn deployment(name: &str, serving: i64, shadowed: i64, requests: i64) -> ModelDeployment {
        let mut md: ModelDeployment = serde_yaml_ng::from_str(&format!(
            "{{apiVersion: aimass.io/v1alpha1, kind: ModelDeployment, metadata: {{name: {name}, namespace: risk}}, spec: {{model: {{name: fraud}}, shadow: {{}}}}}}"
        ))
        .expect("a ModelDeployment");
        md.status = Some(aimass_crds::v1alpha1::ModelDeploymentStatus {
            serving_version: Some(serving),
            shadow: Some(ShadowStatus {
                version: shadowed,
                ..shadow(requests, Some(0.95), None)
            }),
            ..Default::default()
        });
        md
    }

    fn model() -> Model {
        serde_yaml_ng::from_str(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {name: fraud, namespace: risk}
spec:
  source: {uri: "s3://m/fraud.onnx"}
  promotion: {shadow: {minRequests: 100, minLabelAgreement: 0.9}}
status:
  aliases: {champion: 2, challenger: 3}
  versions:
  - {version: 2, phase: Ready, uri: "s3://m/2", created: "2026-01-01T00:00:00Z"}
  - {version: 3, phase: Ready, uri: "s3://m/3", reason: ShadowTrial, created: "2026-01-02T00:00:00Z"}
"#,
        )
        .expect("a Model")
    }

    #[test]
    fn the_trial_beside_the_holder_promotes_and_others_do_not_count() {
        let model = model();
        let now = Time(jiff::Timestamp::UNIX_EPOCH);
        let mut status = model.status.clone().expect("a status");
        let mut notices = Vec::new();
        // Beside another version, or shadowing another: not this trial.
        let elsewhere = [deployment("old", 1, 3, 900), deployment("other", 2, 4, 900)];
        settle(&model, &elsewhere, &mut status, &now, &mut notices);
        assert_eq!(status.aliases["champion"], 2);
        assert_eq!(status.versions[1].reason.as_deref(), Some("ShadowTrial"));

        let beside = [
            deployment("small", 2, 3, 50),
            deployment("scoring", 2, 3, 400),
        ];
        settle(&model, &beside, &mut status, &now, &mut notices);
        assert_eq!(status.aliases["champion"], 3, "promoted");
        assert_eq!(status.versions[1].reason, None);
        let message = status.versions[1].message.clone().unwrap_or_default();
        assert!(message.contains("over 400 shadowed requests"), "{message}");
        assert!(
            message.contains("ModelDeployment scoring"),
            "the busiest trial: {message}"
        );
        assert!(notices.iter().any(|n| n.reason == "ShadowTrialWon"));
    }
}
