//! Promotion gates as a pure decision: does a new version pass the risk
//! team's absolute thresholds, and does it beat the version that holds the
//! alias? The verdict and its evidence are recorded with the version.

use aimass_crds::v1alpha1::{MetricGoal, ModelVersion, PromotionGate};

/// What the gates say about a candidate version.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Every gate passed: the alias may move to it.
    Promote(String),
    /// The absolute gates passed but it does not beat the alias holder: it
    /// becomes the challenger.
    Challenger(String),
    /// An absolute gate failed (or a gated metric is missing).
    Fail(String),
}

/// Judges `candidate` against `gates` and the current `holder` of the alias.
pub fn judge(
    candidate: &ModelVersion,
    holder: Option<&ModelVersion>,
    gates: &[PromotionGate],
) -> Verdict {
    let mut evidence = Vec::new();
    let mut failed = Vec::new();
    let mut behind = Vec::new();
    for gate in gates {
        let Some(&value) = candidate.metrics.get(&gate.metric) else {
            failed.push(format!("metric {} was not reported", gate.metric));
            continue;
        };
        let metric = &gate.metric;
        if let Some(min) = gate.minimum {
            let line = format!("{metric} {} >= {}", fmt(value), fmt(min));
            if value >= min {
                evidence.push(line)
            } else {
                failed.push(format!("{metric} {} < {}", fmt(value), fmt(min)))
            }
        }
        if let Some(max) = gate.maximum {
            let line = format!("{metric} {} <= {}", fmt(value), fmt(max));
            if value <= max {
                evidence.push(line)
            } else {
                failed.push(format!("{metric} {} > {}", fmt(value), fmt(max)))
            }
        }
        if let Some(margin) = gate.better_than_champion_by {
            match holder.and_then(|h| Some((h.version, *h.metrics.get(metric)?))) {
                None => evidence.push(format!("{metric}: no champion value to beat")),
                Some((version, held)) => {
                    let gain = match gate.goal {
                        MetricGoal::Maximize => value - held,
                        MetricGoal::Minimize => held - value,
                    };
                    let line = format!(
                        "{metric} {} vs {} of v{version} (margin {}, needed {})",
                        fmt(value),
                        fmt(held),
                        fmt(gain),
                        fmt(margin)
                    );
                    if gain >= margin {
                        evidence.push(line)
                    } else {
                        behind.push(line)
                    }
                }
            }
        }
    }
    if !failed.is_empty() {
        Verdict::Fail(failed.join("; "))
    } else if !behind.is_empty() {
        Verdict::Challenger(behind.join("; "))
    } else if evidence.is_empty() {
        Verdict::Promote("no promotion gates are set".into())
    } else {
        Verdict::Promote(evidence.join("; "))
    }
}

fn fmt(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".into()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimass_crds::v1alpha1::VersionPhase;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn version(n: i64, metrics: &[(&str, f64)]) -> ModelVersion {
        ModelVersion {
            version: n,
            phase: VersionPhase::Ready,
            reason: None,
            message: None,
            uri: format!("file:///m/{n}/model.onnx"),
            sha256: None,
            size_bytes: None,
            signature: None,
            metrics: metrics.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            lineage: None,
            provenance: None,
            created: Time(jiff::Timestamp::UNIX_EPOCH),
            baseline: None,
        }
    }

    fn gate(
        metric: &str,
        minimum: Option<f64>,
        by: Option<f64>,
        goal: MetricGoal,
    ) -> PromotionGate {
        PromotionGate {
            metric: metric.into(),
            goal,
            minimum,
            maximum: None,
            better_than_champion_by: by,
        }
    }

    /// Name, candidate, alias holder, gates, expected verdict.
    type Case<'a> = (
        &'a str,
        ModelVersion,
        Option<&'a ModelVersion>,
        Vec<PromotionGate>,
        &'a str,
    );

    #[test]
    fn gate_table() {
        let auc = |min, by| vec![gate("auc", min, by, MetricGoal::Maximize)];
        let champion = version(1, &[("auc", 0.90), ("logloss", 0.30)]);
        let cases: Vec<Case> = vec![
            ("no gates promote", version(2, &[]), None, vec![], "Promote"),
            (
                "first version passes the minimum",
                version(2, &[("auc", 0.9)]),
                None,
                auc(Some(0.85), Some(0.01)),
                "Promote",
            ),
            (
                "below the minimum fails",
                version(2, &[("auc", 0.8)]),
                None,
                auc(Some(0.85), None),
                "Fail",
            ),
            (
                "missing metric fails",
                version(2, &[("ks", 0.5)]),
                None,
                auc(Some(0.85), None),
                "Fail",
            ),
            (
                "beats the champion by the margin",
                version(2, &[("auc", 0.92)]),
                Some(&champion),
                auc(Some(0.85), Some(0.01)),
                "Promote",
            ),
            (
                "not better by the margin is a challenger",
                version(2, &[("auc", 0.905)]),
                Some(&champion),
                auc(Some(0.85), Some(0.01)),
                "Challenger",
            ),
            (
                "worse is a challenger",
                version(2, &[("auc", 0.88)]),
                Some(&champion),
                auc(Some(0.85), Some(0.0)),
                "Challenger",
            ),
            (
                "equal with margin 0 promotes",
                version(2, &[("auc", 0.90)]),
                Some(&champion),
                auc(None, Some(0.0)),
                "Promote",
            ),
            (
                "lower loss is better when minimising",
                version(2, &[("logloss", 0.25)]),
                Some(&champion),
                vec![gate("logloss", None, Some(0.01), MetricGoal::Minimize)],
                "Promote",
            ),
            (
                "higher loss is worse when minimising",
                version(2, &[("logloss", 0.35)]),
                Some(&champion),
                vec![gate("logloss", None, Some(0.0), MetricGoal::Minimize)],
                "Challenger",
            ),
        ];
        for (name, candidate, holder, gates, expected) in cases {
            let verdict = judge(&candidate, holder, &gates);
            let kind = match &verdict {
                Verdict::Promote(_) => "Promote",
                Verdict::Challenger(_) => "Challenger",
                Verdict::Fail(_) => "Fail",
            };
            assert_eq!(kind, expected, "{name}: {verdict:?}");
        }
    }

    #[test]
    fn the_verdict_carries_the_values_compared() {
        let champion = version(1, &[("auc", 0.9)]);
        let gates = vec![gate("auc", Some(0.85), Some(0.01), MetricGoal::Maximize)];
        let Verdict::Challenger(message) =
            judge(&version(2, &[("auc", 0.905)]), Some(&champion), &gates)
        else {
            panic!("expected a challenger")
        };
        assert_eq!(
            message,
            "auc 0.905 vs 0.9 of v1 (margin 0.005, needed 0.01)"
        );
        let Verdict::Fail(message) = judge(&version(2, &[("auc", 0.8)]), None, &gates) else {
            panic!("expected a failure")
        };
        assert_eq!(message, "auc 0.8 < 0.85");
    }
}
