//! The backtest gate (`spec.promotion.backtest`): a version that passed the
//! gates waits (reason `Backtesting`) while a ScoringJob scores the holder
//! of the alias and the candidate on `spec.evaluation`'s data; it is
//! promoted only if it beats the holder on the metric by the margin, on the
//! same rows, and otherwise becomes the challenger.

use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{
    BacktestGate, CHALLENGER_ALIAS, Model, ModelStatus, ScoringJobStatus, ScoringPhase,
    VersionSelector,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::aliases::{Why, move_alias};
use super::evaluation;
use crate::context::Context;
use crate::error::Error;
use crate::events::{Notice, Severity};

/// Starts the backtests of waiting versions and settles the finished ones.
pub async fn reconcile(
    ctx: &Context,
    model: &Model,
    status: &mut ModelStatus,
    now: &Time,
    notices: &mut Vec<Notice>,
) -> Result<(), Error> {
    let Some(gate) = &model.spec.promotion.backtest else {
        return Ok(());
    };
    // Only versions already written to status: the ScoringJob resolves
    // them from there.
    let written = model.status.clone().unwrap_or_default();
    let waiting: Vec<i64> = written
        .versions
        .iter()
        .filter(|v| v.reason.as_deref() == Some(reasons::BACKTESTING))
        .map(|v| v.version)
        .filter(|n| {
            status
                .versions
                .iter()
                .any(|v| v.version == *n && v.reason.as_deref() == Some(reasons::BACKTESTING))
        })
        .collect();
    if waiting.is_empty() {
        return Ok(());
    }
    let runs = evaluation::owned_runs(ctx, model, "backtest").await?;
    let alias = model.spec.promotion.alias.clone();
    for candidate in waiting {
        let suffix = format!("backtest-v{candidate}");
        let name = evaluation::build(model, &suffix, "backtest", Vec::new()).name_any();
        let Some(run) = runs.iter().find(|sj| sj.name_any() == name) else {
            let Some(&holder) = status.aliases.get(&alias) else {
                continue;
            };
            let versions = [holder, candidate]
                .into_iter()
                .map(|v| VersionSelector {
                    alias: None,
                    version: Some(v),
                })
                .collect();
            let sj = evaluation::build(model, &suffix, "backtest", versions);
            evaluation::create(ctx, model, sj, notices).await?;
            continue;
        };
        let Some(outcome) = decide(candidate, &name, run.status.as_ref(), gate) else {
            continue;
        };
        let (reason, message, target) = match outcome {
            Outcome::Won(message) => (None, message, Some(alias.as_str())),
            Outcome::Lost(message) => (
                Some(reasons::BACKTEST_LOST),
                message,
                Some(CHALLENGER_ALIAS),
            ),
            Outcome::Failed(message) => (Some(reasons::GATES_FAILED), message, None),
        };
        if let Some(version) = status.versions.iter_mut().find(|v| v.version == candidate) {
            version.reason = reason.map(str::to_owned);
            version.message = Some(message.clone());
        }
        notices.push(Notice::new(
            if reason == Some(reasons::GATES_FAILED) {
                Severity::Warning
            } else {
                Severity::Normal
            },
            reason.unwrap_or("BacktestWon"),
            format!("version {candidate}: {message}"),
        ));
        let pinned = |a: &str| model.spec.aliases.contains_key(a);
        if let Some(target) = target.filter(|t| !pinned(t)) {
            let why = if target == alias {
                "Promoted"
            } else {
                "Challenger"
            };
            move_alias(
                status,
                target,
                candidate,
                Why::decided(why, message),
                now,
                notices,
            );
        }
    }
    Ok(())
}

/// How a backtest ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The candidate beat the holder by the margin.
    Won(String),
    /// It did not.
    Lost(String),
    /// The run failed or measured nothing.
    Failed(String),
}

/// How the backtest `name` of `candidate` ended, once it has. Pure.
pub fn decide(
    candidate: i64,
    name: &str,
    status: Option<&ScoringJobStatus>,
    gate: &BacktestGate,
) -> Option<Outcome> {
    let status = status?;
    match status.phase {
        ScoringPhase::Failed => {
            return Some(Outcome::Failed(format!(
                "its backtest {name} failed ({}): {}",
                status.reason.clone().unwrap_or_default(),
                status.message.clone().unwrap_or_default()
            )));
        }
        ScoringPhase::Succeeded => {}
        _ => return None,
    }
    let report = status.report.as_ref()?;
    let metric = gate.metric.as_str();
    let value = |version: i64| {
        let metrics = report
            .versions
            .iter()
            .find(|v| v.version == version)?
            .metrics
            .as_ref()?;
        match metric {
            "auc" => metrics.auc,
            "ks" => metrics.ks,
            _ => metrics.gini,
        }
    };
    let holder = status.versions.first().map(|v| v.version)?;
    let (Some(theirs), Some(ours)) = (value(holder), value(candidate)) else {
        return Some(Outcome::Failed(format!(
            "its backtest {name} measured no {metric} (are both classes labelled?)"
        )));
    };
    let gain = ours - theirs;
    let line = format!(
        "backtest {name} on {} rows: {metric} {ours:.4} vs {theirs:.4} of v{holder} (margin {gain:.4}, needed {})",
        report.labelled, gate.better_than_champion_by
    );
    Some(if gain >= gate.better_than_champion_by {
        Outcome::Won(line)
    } else {
        Outcome::Lost(line)
    })
}

#[cfg(test)]
mod tests {
    use aimass_crds::v1alpha1::{ScoredVersion, ScoringReport, SeparationMetrics, VersionReport};

    use super::*;

    fn run(phase: ScoringPhase, holder_auc: f64, candidate_auc: Option<f64>) -> ScoringJobStatus {
        let report = |version, auc| VersionReport {
            version,
            metrics: Some(SeparationMetrics {
                auc,
                ..SeparationMetrics::default()
            }),
            ..VersionReport::default()
        };
        ScoringJobStatus {
            phase,
            reason: Some("DatasetUnavailable".into()),
            message: Some("no data".into()),
            versions: vec![
                ScoredVersion {
                    version: 1,
                    ..ScoredVersion::default()
                },
                ScoredVersion {
                    version: 2,
                    ..ScoredVersion::default()
                },
            ],
            report: Some(ScoringReport {
                labelled: 500,
                versions: vec![report(1, Some(holder_auc)), report(2, candidate_auc)],
                ..ScoringReport::default()
            }),
            ..ScoringJobStatus::default()
        }
    }

    #[test]
    fn the_candidate_must_beat_the_holder_on_the_same_rows() {
        let gate = BacktestGate {
            metric: "auc".into(),
            better_than_champion_by: 0.01,
        };
        let cases = [
            (
                "still running",
                run(ScoringPhase::Running, 0.8, Some(0.9)),
                None,
            ),
            (
                "wins by more than the margin",
                run(ScoringPhase::Succeeded, 0.80, Some(0.82)),
                Some("Won"),
            ),
            (
                "ahead but within the margin",
                run(ScoringPhase::Succeeded, 0.80, Some(0.805)),
                Some("Lost"),
            ),
            (
                "behind",
                run(ScoringPhase::Succeeded, 0.80, Some(0.7)),
                Some("Lost"),
            ),
            (
                "nothing measured",
                run(ScoringPhase::Succeeded, 0.80, None),
                Some("Failed"),
            ),
            (
                "the run failed",
                run(ScoringPhase::Failed, 0.8, Some(0.9)),
                Some("Failed"),
            ),
        ];
        for (name, status, expected) in cases {
            let outcome = decide(2, "fraud-backtest-v2", Some(&status), &gate);
            let kind = outcome.as_ref().map(|o| match o {
                Outcome::Won(_) => "Won",
                Outcome::Lost(_) => "Lost",
                Outcome::Failed(_) => "Failed",
            });
            assert_eq!(kind, expected, "{name}: {outcome:?}");
        }
        let Some(Outcome::Won(line)) = decide(
            2,
            "bt",
            Some(&run(ScoringPhase::Succeeded, 0.8, Some(0.82))),
            &gate,
        ) else {
            panic!("won");
        };
        assert!(line.contains("auc 0.8200 vs 0.8000 of v1"), "{line}");
        assert!(decide(2, "bt", None, &gate).is_none());
    }
}
