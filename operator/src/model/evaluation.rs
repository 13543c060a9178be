//! A Model measured on labelled data (`spec.evaluation`): ScoringJobs owned
//! by the Model, one per cron tick for the champion (never two at once),
//! and one per candidate for a backtest gate; each finished evaluation is
//! kept in `status.evaluations`, compared with the promotion gates
//! (`Evaluated` condition, Events) and exported for alert rules.

use std::collections::BTreeMap;
use std::time::Duration;

use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{
    Evaluation, Model, ModelReference, ModelStatus, PromotionGate, ScoringJob, ScoringJobSpec,
    ScoringPhase, ScoringReport, VersionSelector,
};
use aimass_crds::validation;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};

use super::schedule;
use crate::conditions::{self, Wanted};
use crate::context::Context;
use crate::error::{Error, is_conflict};
use crate::events::{Notice, Severity};
use crate::labels;

/// Label saying why the Model made a ScoringJob: `evaluation` or
/// `backtest`.
pub const PURPOSE: &str = "aimass.io/purpose";
/// How many evaluations status keeps.
const KEPT: usize = 30;

/// Starts the evaluations that are due, records the finished ones and sets
/// the `Evaluated` condition; returns when the next tick is.
pub async fn reconcile(
    ctx: &Context,
    model: &Model,
    status: &mut ModelStatus,
    now: &Time,
    notices: &mut Vec<Notice>,
) -> Result<Option<Duration>, Error> {
    if model.spec.evaluation.is_none() {
        status.conditions.retain(|c| c.type_ != types::EVALUATED);
        ctx.metrics.evaluation.report(
            &model.namespace().unwrap_or_default(),
            &model.name_any(),
            None,
            &[],
        );
        return Ok(None);
    }
    let runs = owned_runs(ctx, model, "evaluation").await?;
    let plan = plan(model, &runs, status, now)?;
    if let Some(tick) = plan.start {
        let sj = build(
            model,
            &format!("eval-{}", tick.as_second()),
            "evaluation",
            champion(model),
        );
        create(ctx, model, sj, notices).await?;
    }
    notices.extend(plan.skipped);
    status.last_evaluation_time = plan.last_evaluation_time;
    status.next_evaluation_time = plan.next_evaluation_time;
    for record in plan.records {
        notices.push(notice(&record));
        status.evaluations.push(record);
    }
    let excess = status.evaluations.len().saturating_sub(KEPT);
    status.evaluations.drain(..excess);
    conditions::set(
        &mut status.conditions,
        condition(status.evaluations.last()),
        model.metadata.generation,
        now,
    );
    ctx.metrics.evaluation.report(
        &model.namespace().unwrap_or_default(),
        &model.name_any(),
        status.evaluations.last(),
        &model.spec.promotion.gates,
    );
    Ok(plan.next_tick)
}

/// The ScoringJobs `model` made for `purpose`.
pub async fn owned_runs(
    ctx: &Context,
    model: &Model,
    purpose: &str,
) -> Result<Vec<ScoringJob>, Error> {
    let api: Api<ScoringJob> =
        Api::namespaced(ctx.client.clone(), &model.namespace().unwrap_or_default());
    let selector = format!(
        "{}={},{PURPOSE}={purpose}",
        labels::MODEL,
        labels::fit(&model.name_any(), 63)
    );
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kube("listing ScoringJobs"))?
        .items
        .into_iter()
        .filter(|sj| sj.spec.model_ref.name == model.name_any())
        .collect())
}

/// Creates `sj` unless it exists.
pub async fn create(
    ctx: &Context,
    model: &Model,
    sj: ScoringJob,
    notices: &mut Vec<Notice>,
) -> Result<(), Error> {
    let api: Api<ScoringJob> =
        Api::namespaced(ctx.client.clone(), &model.namespace().unwrap_or_default());
    let name = sj.name_any();
    match api.create(&PostParams::default(), &sj).await {
        Ok(_) => notices.push(Notice::new(
            Severity::Normal,
            reasons::SCORING,
            format!("created ScoringJob {name}"),
        )),
        Err(e) if is_conflict(&e) => {}
        Err(e) => return Err(Error::kube(format!("creating ScoringJob {name}"))(e)),
    }
    Ok(())
}

/// The promotion alias, as a version selector.
fn champion(model: &Model) -> Vec<VersionSelector> {
    vec![VersionSelector {
        alias: Some(model.spec.promotion.alias.clone()),
        version: None,
    }]
}

/// The ScoringJob `<model>-<suffix>` of `versions` on the evaluation data,
/// owned by the Model, writing below the template's output in a folder of
/// its name.
pub fn build(
    model: &Model,
    suffix: &str,
    purpose: &str,
    versions: Vec<VersionSelector>,
) -> ScoringJob {
    let model_name = model.name_any();
    let name = labels::fit(&format!("{model_name}-{suffix}"), 63);
    let mut labels = labels::common("aimass-scoring", &model_name);
    labels.insert(PURPOSE.into(), purpose.into());
    let mut run = model.spec.evaluation.clone().unwrap_or_default().template;
    run.output.uri = format!("{}/{name}", run.output.uri.trim_end_matches('/'));
    ScoringJob {
        metadata: labels::owned_meta(model, name, labels),
        spec: ScoringJobSpec {
            model_ref: ModelReference { name: model_name },
            versions,
            run,
        },
        status: None,
    }
}

/// What to do about a Model's scheduled evaluations.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// The tick to start a run for.
    start: Option<jiff::Timestamp>,
    /// Finished runs not recorded yet, oldest first.
    records: Vec<Evaluation>,
    /// A tick skipped because a run is still going.
    skipped: Option<Notice>,
    last_evaluation_time: Option<Time>,
    next_evaluation_time: Option<Time>,
    next_tick: Option<Duration>,
}

/// The evaluation due at `now` (one per tick, never two at once) and the
/// finished `runs` to record. Pure.
fn plan(
    model: &Model,
    runs: &[ScoringJob],
    status: &ModelStatus,
    now: &Time,
) -> Result<Plan, Error> {
    let evaluation = model.spec.evaluation.clone().unwrap_or_default();
    let mut plan = Plan {
        last_evaluation_time: status.last_evaluation_time.clone(),
        ..Plan::default()
    };
    let mut finished: Vec<(&ScoringJob, &ScoringReport, Option<Time>)> = runs
        .iter()
        .filter(|sj| {
            !status
                .evaluations
                .iter()
                .any(|e| e.scoring_job == sj.name_any())
        })
        .filter_map(|sj| {
            let s = sj.status.as_ref()?;
            (s.phase == ScoringPhase::Succeeded).then_some((
                sj,
                s.report.as_ref()?,
                s.completion_time.clone(),
            ))
        })
        .collect();
    finished.sort_by_key(|(_, _, t)| t.as_ref().map(|t| t.0));
    for (sj, report, time) in finished {
        let version = sj
            .status
            .as_ref()
            .and_then(|s| s.versions.first())
            .map_or(0, |v| v.version);
        plan.records.push(record(
            &sj.name_any(),
            time,
            version,
            report,
            &model.spec.promotion.gates,
        ));
    }
    let Some(cron) = evaluation.schedule.as_deref() else {
        return Ok(plan);
    };
    let cron = validation::parse_schedule(cron).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let created = model
        .metadata
        .creation_timestamp
        .clone()
        .map_or(now.0, |t| t.0);
    let since = plan.last_evaluation_time.clone().map_or(created, |t| t.0);
    let due = schedule::due(&cron, since, now.0);
    if let Some(tick) = due.tick.filter(|_| !evaluation.suspend) {
        plan.last_evaluation_time = Some(Time(tick));
        let running = runs.iter().find(|sj| {
            !sj.status
                .as_ref()
                .is_some_and(|s| matches!(s.phase, ScoringPhase::Succeeded | ScoringPhase::Failed))
        });
        match running {
            Some(sj) => {
                plan.skipped = Some(Notice::new(
                    Severity::Normal,
                    crate::events::reasons::SCHEDULE_SKIPPED,
                    format!(
                        "the {tick} evaluation tick was skipped: ScoringJob {} is still going",
                        sj.name_any()
                    ),
                ));
            }
            None => plan.start = Some(tick),
        }
    }
    if !evaluation.suspend {
        plan.next_evaluation_time = due.next.map(Time);
        plan.next_tick = due.wait(now.0);
    }
    Ok(plan)
}

/// The record of a finished evaluation of `version`, with the gates on
/// these metrics it no longer meets.
fn record(
    scoring_job: &str,
    time: Option<Time>,
    version: i64,
    report: &ScoringReport,
    gates: &[PromotionGate],
) -> Evaluation {
    let measured = report.versions.first().and_then(|v| v.metrics.as_ref());
    let mut metrics = BTreeMap::new();
    if let Some(m) = measured {
        metrics.extend(m.auc.map(|v| ("auc".to_owned(), v)));
        metrics.extend(m.ks.map(|v| ("ks".to_owned(), v)));
        metrics.extend(m.gini.map(|v| ("gini".to_owned(), v)));
        if m.rows > 0 {
            metrics.insert("badRate".to_owned(), m.bad as f64 / m.rows as f64);
        }
    }
    Evaluation {
        scoring_job: scoring_job.to_owned(),
        time,
        version,
        rows: measured.map_or(0, |m| m.rows),
        below_gates: below_gates(&metrics, gates),
        metrics,
    }
}

/// The gates (minimum or maximum) on `metrics` that are not met.
pub fn below_gates(metrics: &BTreeMap<String, f64>, gates: &[PromotionGate]) -> Vec<String> {
    gates
        .iter()
        .filter_map(|gate| {
            let value = *metrics.get(&gate.metric)?;
            let mut broken = Vec::new();
            if let Some(min) = gate.minimum.filter(|m| value < *m) {
                broken.push(format!("{} {value:.4} < {min}", gate.metric));
            }
            if let Some(max) = gate.maximum.filter(|m| value > *m) {
                broken.push(format!("{} {value:.4} > {max}", gate.metric));
            }
            (!broken.is_empty()).then(|| broken.join(", "))
        })
        .collect()
}

/// The `Evaluated` condition from the latest evaluation.
fn condition(latest: Option<&Evaluation>) -> Wanted<'static> {
    let (status, reason, message) = match latest {
        None => (
            false,
            reasons::NOT_EVALUATED,
            "no evaluation has finished yet".to_owned(),
        ),
        Some(e) if e.below_gates.is_empty() => (
            true,
            reasons::WITHIN_GATES,
            format!("{}: {}", headline(e), "every gate is met"),
        ),
        Some(e) => (
            false,
            reasons::BELOW_GATE,
            format!(
                "{}: below its gates: {}",
                headline(e),
                e.below_gates.join("; ")
            ),
        ),
    };
    Wanted {
        type_: types::EVALUATED,
        status,
        reason,
        message,
    }
}

fn headline(e: &Evaluation) -> String {
    let figures: Vec<String> = e
        .metrics
        .iter()
        .map(|(k, v)| format!("{k} {v:.4}"))
        .collect();
    format!(
        "v{} on {} labelled rows ({}, ScoringJob {})",
        e.version,
        e.rows,
        figures.join(", "),
        e.scoring_job
    )
}

fn notice(e: &Evaluation) -> Notice {
    if e.below_gates.is_empty() {
        Notice::new(Severity::Normal, "Evaluated", headline(e))
    } else {
        Notice::new(
            Severity::Warning,
            reasons::BELOW_GATE,
            format!(
                "{}: below its gates: {}",
                headline(e),
                e.below_gates.join("; ")
            ),
        )
    }
}

#[cfg(test)]
mod tests;
