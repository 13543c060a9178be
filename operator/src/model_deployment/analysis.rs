//! A canary rollout, step by step: where the canary of a version stands
//! (`enter`, pure), its baselines, measuring its step against the stable
//! track's replicas, and what the verdict does to it (`advance`, pure). The
//! judgement itself is `canary::judge`.

use std::collections::HashMap;
use std::sync::Mutex;

use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{CanaryPhase, CanarySpec, CanaryStatus, ModelDeployment};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::canary::{self, Verdict};
use super::pods;
use super::workload::Track;
use crate::context::Context;
use crate::error::Error;
use crate::events::{Notice, Severity};
use crate::scrape::Snapshot;

/// What the canary step decided for the tracks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CanaryAction {
    /// Keep running: the stable track and the canary with these replicas.
    Run { stable: i32, canary: i32 },
    /// The canary passed every step: the new version takes the stable track.
    Promote,
    /// The canary was rolled back: the deployed version stays, for this reason.
    Hold(String),
}

/// The counters a canary step is measured from.
pub struct Baseline {
    version: i64,
    step: i32,
    stable: Snapshot,
    canary: Snapshot,
}

/// Readings kept between reconciles, by ModelDeployment uid (the canary
/// steps' baselines, the soaks'). Lost on restart, which only restarts the
/// measurement's clock.
pub struct Baselines<T>(Mutex<HashMap<String, T>>);

impl<T> Default for Baselines<T> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<T> Baselines<T> {
    /// Takes the reading kept for `uid`.
    pub fn take(&self, uid: &str) -> Option<T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(uid)
    }

    /// Keeps a reading for `uid`.
    pub fn put(&self, uid: &str, baseline: T) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid.to_owned(), baseline);
    }
}

/// The canary settings, defaulted when the spec gives none.
fn canary_spec(md: &ModelDeployment) -> Result<CanarySpec, Error> {
    match md.spec.rollout.canary.clone() {
        Some(spec) => Ok(spec),
        None => serde_json::from_value(serde_json::json!({}))
            .map_err(|e| Error::InvalidSpec(e.to_string())),
    }
}

/// Where the canary of a version stands before a step is measured.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// Decided already (rolled back or promoted).
    Done(CanaryAction),
    /// A new canary started, with its Event's note.
    Started(String),
    /// A step is under way.
    Measure,
}

/// Whether replacing version `deployed` by `next` goes back to an older
/// version: a rollback, which replaces it at once, without a canary (the
/// older version served before, and a canary would wait for traffic that an
/// incident may have stopped).
pub fn is_rollback(deployed: i64, next: i64) -> bool {
    next < deployed
}

/// Starts the canary of version `next` in `canary` unless one of it is
/// under way or finished.
pub fn enter(canary: &mut Option<CanaryStatus>, next: i64, spec: &CanarySpec, now: &Time) -> Entry {
    match canary {
        Some(c) if c.version == next && c.phase == CanaryPhase::RolledBack => {
            Entry::Done(CanaryAction::Hold(format!(
                "the canary of version {} was rolled back: {}",
                c.version,
                c.message.clone().unwrap_or_default()
            )))
        }
        Some(c) if c.version == next && c.phase == CanaryPhase::Promoted => {
            Entry::Done(CanaryAction::Promote)
        }
        Some(c) if c.version == next => Entry::Measure,
        _ => {
            let percent = spec.steps.first().copied().unwrap_or(10);
            *canary = Some(CanaryStatus {
                version: next,
                phase: CanaryPhase::Analysing,
                percent,
                step: 0,
                step_start_time: now.clone(),
                message: Some("starting the canary".into()),
            });
            Entry::Started(format!(
                "version {next} takes {percent}% of the replicas for analysis"
            ))
        }
    }
}

/// Applies a step's `verdict` to `canary`: the tracks' replicas out of
/// `desired`, and the Event to publish.
pub fn advance(
    canary: &mut CanaryStatus,
    verdict: Verdict,
    desired: i32,
    spec: &CanarySpec,
    now: &Time,
) -> (CanaryAction, Option<Notice>) {
    let run = |percent| {
        let (stable, canary) = canary::split(desired, percent);
        CanaryAction::Run { stable, canary }
    };
    match verdict {
        Verdict::Wait(why) => {
            canary.message = Some(why);
            (run(canary.percent), None)
        }
        Verdict::Pass(why) => {
            let next_step = canary.step + 1;
            let next = usize::try_from(next_step)
                .ok()
                .and_then(|i| spec.steps.get(i));
            if let Some(&percent) = next {
                canary.step = next_step;
                canary.percent = percent;
                canary.step_start_time = now.clone();
                canary.message = Some(format!(
                    "step {next_step} passed ({why}); now at {percent}%"
                ));
                let note = format!(
                    "version {} passed step {next_step} ({why}) and now takes {percent}%",
                    canary.version
                );
                let event = Notice::new(
                    Severity::Normal,
                    crate::events::reasons::CANARY_STEP_PASSED,
                    note,
                );
                (run(percent), Some(event))
            } else {
                canary.phase = CanaryPhase::Promoted;
                canary.message = Some(format!("every step passed; last: {why}"));
                let note = format!(
                    "version {} passed every canary step and takes all traffic: {why}",
                    canary.version
                );
                let event = Notice::new(
                    Severity::Normal,
                    crate::events::reasons::CANARY_PROMOTED,
                    note,
                );
                (CanaryAction::Promote, Some(event))
            }
        }
        Verdict::Fail(why) => {
            canary.phase = CanaryPhase::RolledBack;
            canary.message = Some(why.clone());
            let note = format!(
                "version {} was rolled back at step {} ({}%): {why}",
                canary.version,
                canary.step + 1,
                canary.percent
            );
            let event = Notice::new(Severity::Warning, reasons::CANARY_ROLLED_BACK, note.clone());
            (CanaryAction::Hold(note), Some(event))
        }
    }
}

/// Runs one step of the canary of version `next` in `canary`: starts it,
/// waits for its replicas and its interval, then judges it against the
/// stable track. Returns the tracks' plan and the Events to publish.
pub async fn step(
    ctx: &Context,
    md: &ModelDeployment,
    canary: &mut Option<CanaryStatus>,
    next: i64,
    desired: i32,
    now: &Time,
) -> Result<(CanaryAction, Vec<Notice>), Error> {
    let spec = canary_spec(md)?;
    let uid = md.uid().unwrap_or_default();
    let mut notices = Vec::new();
    match enter(canary, next, &spec, now) {
        Entry::Done(action) => return Ok((action, notices)),
        Entry::Started(note) => {
            let _ = ctx.canary_baselines.take(&uid);
            notices.push(Notice::new(
                Severity::Normal,
                crate::events::reasons::CANARY_STARTED,
                note,
            ));
        }
        Entry::Measure => {}
    }
    let Some(canary) = canary.as_mut() else {
        return Ok((CanaryAction::Promote, notices));
    };
    let (stable_n, canary_n) = canary::split(desired, canary.percent);
    let run = CanaryAction::Run {
        stable: stable_n,
        canary: canary_n,
    };
    let ready = pods::track_ips(ctx, md, Track::Canary).await?;
    if ready.len() < usize::try_from(canary_n).unwrap_or(1) {
        canary.message = Some(format!(
            "waiting for {canary_n} canary replica(s) to be ready ({} so far)",
            ready.len()
        ));
        canary.step_start_time = now.clone();
        return Ok((run, notices));
    }
    let Some(baseline) = ctx
        .canary_baselines
        .take(&uid)
        .filter(|b| b.version == canary.version && b.step == canary.step)
    else {
        let baseline = Baseline {
            version: canary.version,
            step: canary.step,
            stable: pods::track_snapshot(ctx, md, Track::Stable).await?,
            canary: pods::snapshot_of(&ready).await,
        };
        ctx.canary_baselines.put(&uid, baseline);
        canary.step_start_time = now.clone();
        canary.message = Some(format!(
            "step {} at {}%: measuring for {}s",
            canary.step + 1,
            canary.percent,
            spec.analysis_interval_seconds
        ));
        return Ok((run, notices));
    };
    let elapsed = now.0.as_second() - canary.step_start_time.0.as_second();
    if elapsed < i64::from(spec.analysis_interval_seconds) {
        ctx.canary_baselines.put(&uid, baseline);
        return Ok((run, notices));
    }
    let stable_window = pods::track_snapshot(ctx, md, Track::Stable)
        .await?
        .since(&baseline.stable);
    let canary_window = pods::snapshot_of(&ready).await.since(&baseline.canary);
    let verdict = canary::judge(&stable_window, &canary_window, &spec);
    if matches!(verdict, Verdict::Wait(_)) {
        ctx.canary_baselines.put(&uid, baseline);
    }
    let (action, notice) = advance(canary, verdict, desired, &spec, now);
    notices.extend(notice);
    Ok((action, notices))
}

#[cfg(test)]
mod tests;
