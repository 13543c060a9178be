//! What a ScoringJob's reconcile does next, from its status and its two
//! Jobs (the shards, then the report). Pure.

use aimass_crds::v1alpha1::conditions::reasons;
use aimass_crds::v1alpha1::{
    ModelStatus, ScoredVersion, ScoringJobStatus, ScoringPhase, VersionPhase, VersionSelector,
};
use k8s_openapi::api::batch::v1::Job;

/// Where one of the run's Jobs stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// There is none.
    Missing,
    /// It runs; how many of its pods (shards) succeeded.
    Running {
        /// Pods that succeeded.
        succeeded: i32,
    },
    /// Every pod succeeded.
    Complete,
    /// It failed: the Job's reason (`BackoffLimitExceeded`,
    /// `DeadlineExceeded`, `PodFailurePolicy`, …) and message.
    Failed {
        /// The Job condition's reason.
        reason: String,
        /// Its message.
        message: String,
    },
}

/// The state of `job`, from its conditions.
pub fn job_state(job: Option<&Job>) -> JobState {
    let Some(job) = job else {
        return JobState::Missing;
    };
    let status = job.status.clone().unwrap_or_default();
    let holds = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if holds("Complete").is_some() {
        return JobState::Complete;
    }
    if let Some(failed) = holds("Failed") {
        return JobState::Failed {
            reason: failed.reason.clone().unwrap_or_default(),
            message: failed.message.clone().unwrap_or_default(),
        };
    }
    JobState::Running {
        succeeded: status.succeeded.unwrap_or(0),
    }
}

/// The next step of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Resolve the versions from the Model.
    Resolve,
    /// Create the shards' Job.
    StartShards,
    /// The shards run.
    Scoring {
        /// Shards finished.
        succeeded: i32,
    },
    /// Create the report's Job.
    StartReport,
    /// The report is being made.
    Reporting,
    /// Read the report from the report pod's log.
    ReadReport,
    /// Read why from the failed pods' logs; the Job's own reason and
    /// message are the fallback.
    ReadFailure {
        /// Whose pods: the shards' Job (or else the report's).
        shards: bool,
        /// The Job's reason.
        reason: String,
        /// The Job's message.
        message: String,
    },
    /// The run cannot go on.
    Fail {
        /// The reason.
        reason: &'static str,
        /// Why.
        message: String,
    },
}

/// The next step, given the status and both Jobs.
pub fn step(status: &ScoringJobStatus, shards: &JobState, report: &JobState) -> Step {
    if status.versions.is_empty() {
        return Step::Resolve;
    }
    if status.phase == ScoringPhase::Reporting {
        return match report {
            JobState::Missing => Step::StartReport,
            JobState::Running { .. } => Step::Reporting,
            JobState::Complete => Step::ReadReport,
            JobState::Failed { reason, message } => Step::ReadFailure {
                shards: false,
                reason: reason.clone(),
                message: message.clone(),
            },
        };
    }
    match shards {
        JobState::Missing if status.job_name.is_some() => Step::Fail {
            reason: reasons::JOB_DELETED,
            message: format!(
                "the Job {} was deleted before the shards finished",
                status.job_name.clone().unwrap_or_default()
            ),
        },
        JobState::Missing => Step::StartShards,
        JobState::Running { succeeded } => Step::Scoring {
            succeeded: *succeeded,
        },
        JobState::Complete => Step::StartReport,
        JobState::Failed { reason, message } => Step::ReadFailure {
            shards: true,
            reason: reason.clone(),
            message: message.clone(),
        },
    }
}

/// The versions `selectors` name in a Model's status: an alias's version,
/// or a number, each Ready with a recorded digest. The error names the
/// first that is not.
pub fn resolve(
    model: &str,
    selectors: &[VersionSelector],
    status: &ModelStatus,
) -> Result<Vec<ScoredVersion>, String> {
    selectors
        .iter()
        .map(|selector| {
            let (number, named) = match (&selector.alias, selector.version) {
                (Some(alias), _) => (
                    *status
                        .aliases
                        .get(alias)
                        .ok_or_else(|| format!("Model {model} has no alias {alias:?}"))?,
                    format!("alias {alias:?}"),
                ),
                (None, Some(number)) => (number, format!("version {number}")),
                (None, None) => return Err("a version names neither alias nor number".into()),
            };
            let version = status
                .versions
                .iter()
                .find(|v| v.version == number)
                .ok_or_else(|| format!("Model {model} has no version {number} ({named})"))?;
            let sha256 = version
                .sha256
                .clone()
                .filter(|_| version.phase == VersionPhase::Ready)
                .ok_or_else(|| {
                    format!("version {number} of Model {model} ({named}) is not Ready")
                })?;
            Ok(ScoredVersion {
                version: number,
                alias: selector.alias.clone(),
                uri: version.uri.clone(),
                sha256,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
