//! What a ModelDeployment's status says, decided without I/O from what the
//! reconcile observed and did: how far the rollout is, the `Progressing`,
//! `Ready`, `Degraded`, `Secured` and `Drift` conditions, and the Events
//! their changes call for.

use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{
    AuditCheckpoint, AuditFailurePolicy, DriftLevel, DriftStatus, ModelDeployment,
    ModelDeploymentStatus, ModelVersion, SecurityMode, UnhealthyReplica,
};
use k8s_openapi::api::apps::v1::Deployment;

use super::target::Problem;
use super::workload;
use crate::conditions::Wanted;
use crate::events::{Notice, Severity};

/// How far a Deployment's rollout is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// Every replica runs the template and is available.
    pub complete: bool,
    /// Replicas ready.
    pub ready: i32,
    /// Replicas running the template and available.
    pub updated_ready: i32,
}

/// Read from the Deployment's status, as `kubectl rollout status` does.
pub fn rollout_state(deployment: &Deployment) -> Rollout {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let Some(status) = &deployment.status else {
        return Rollout::default();
    };
    let observed =
        status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    Rollout {
        complete: observed && updated >= wanted && total == updated && available >= wanted,
        ready,
        updated_ready: updated.min(available),
    }
}

/// The version a Deployment's pod template runs.
pub fn deployed_version(deployment: &Deployment) -> Option<i64> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .labels
        .as_ref()?
        .get(workload::VERSION_LABEL)?
        .parse()
        .ok()
}

/// What the serving conditions are decided from.
#[derive(Clone, Debug, Default)]
pub struct Serving<'a> {
    /// The version that served on every replica before this reconcile.
    pub was_serving: Option<i64>,
    /// The version that serves now, when the rollout is complete.
    pub serving: Option<i64>,
    /// The version the stable Deployment runs.
    pub deployed: Option<i64>,
    /// The stable Deployment's rollout.
    pub rollout: Rollout,
    /// A canary is being analysed.
    pub canary_running: bool,
    /// Replicas wanted.
    pub desired: i32,
    /// What is wrong with the version wanted, if anything.
    pub problem: Option<&'a Problem>,
    /// Replicas the monitor judges unhealthy.
    pub unhealthy: &'a [UnhealthyReplica],
}

/// The `Drift` condition from the monitor's latest evaluation (`drift`);
/// none while drift is not watched or not evaluated yet.
pub fn drift_condition(
    md: &ModelDeployment,
    drift: Option<&DriftStatus>,
) -> Option<Wanted<'static>> {
    let drift = drift.filter(|_| md.spec.drift.enabled)?;
    let version = drift.version.unwrap_or_default();
    let (status, reason, message) = if drift.detected {
        let since = drift
            .detected_since
            .as_ref()
            .map_or_else(String::new, |t| format!(" since {}", t.0));
        (
            true,
            reasons::DRIFT_DETECTED,
            format!(
                "version {version} drifts from its training baseline{since}: {}",
                drift.message
            ),
        )
    } else {
        let reason = match drift.level {
            DriftLevel::NoBaseline => reasons::NO_BASELINE,
            DriftLevel::InsufficientData => reasons::INSUFFICIENT_DATA,
            _ => reasons::NO_DRIFT,
        };
        (false, reason, drift.message.clone())
    };
    Some(Wanted {
        type_: types::DRIFT,
        status,
        reason,
        message,
    })
}

/// The `Progressing`, `Ready` and `Degraded` conditions.
pub fn serving_conditions(s: &Serving<'_>) -> [Wanted<'static>; 3] {
    let rollout = s.rollout;
    let desired = s.desired;
    let progressing = (s.deployed.is_some() && !rollout.complete) || s.canary_running;
    let progress = match (s.was_serving, s.deployed) {
        _ if !progressing => "no rollout in progress".to_owned(),
        (Some(from), Some(to)) if from != to => format!(
            "rolling out version {to} to replace {from}: {}/{desired} replicas updated and ready",
            rollout.updated_ready
        ),
        (_, Some(to)) => format!(
            "starting version {to}: {}/{desired} replicas ready",
            rollout.ready
        ),
        _ => "nothing to roll out".to_owned(),
    };
    let (ready, ready_reason, ready_message) = match (s.problem, s.serving) {
        (_, Some(v)) if rollout.complete && rollout.ready >= desired => (
            true,
            reasons::AS_EXPECTED,
            format!("version {v} serves on {}/{desired} replicas", rollout.ready),
        ),
        (Some(p), None) => (false, p.reason, p.message.clone()),
        _ => (
            false,
            reasons::REPLICAS_UNAVAILABLE,
            format!("{}/{desired} replicas ready", rollout.ready),
        ),
    };
    let degraded = match (s.problem, s.unhealthy) {
        (Some(p), _) => Some((p.reason, p.message.clone())),
        (None, []) => None,
        (None, sick) => Some((
            reasons::REPLICA_UNHEALTHY,
            format!(
                "unhealthy: {}",
                sick.iter().map(describe).collect::<Vec<_>>().join("; ")
            ),
        )),
    };
    [
        Wanted {
            type_: types::PROGRESSING,
            status: progressing,
            reason: if progressing {
                reasons::ROLLING_OUT
            } else {
                reasons::AS_EXPECTED
            },
            message: progress,
        },
        Wanted {
            type_: types::READY,
            status: ready,
            reason: ready_reason,
            message: ready_message,
        },
        match degraded {
            Some((reason, message)) => Wanted {
                type_: types::DEGRADED,
                status: true,
                reason,
                message,
            },
            None => Wanted {
                type_: types::DEGRADED,
                status: false,
                reason: reasons::AS_EXPECTED,
                message: "the resolved version can be served".to_owned(),
            },
        },
    ]
}

/// One unhealthy replica, in a sentence.
fn describe(r: &UnhealthyReplica) -> String {
    format!(
        "{} on {} ({} {:.2} > {:.2})",
        r.pod,
        r.node.clone().unwrap_or_default(),
        r.metric,
        r.value,
        r.threshold
    )
}

/// The `Secured` condition: whether callers are checked and every call is
/// recorded, or why not (`Insecure`, a foreign audit key, a broken or
/// failing trail).
pub fn secured(
    md: &ModelDeployment,
    checkpoints: &[AuditCheckpoint],
    foreign_key: Option<&str>,
) -> Wanted<'static> {
    let security = &md.spec.security;
    let enforced = security.mode == SecurityMode::Enforced;
    let broken: Vec<String> = checkpoints
        .iter()
        .filter_map(|c| c.broken.clone())
        .collect();
    let failing: Vec<String> = checkpoints
        .iter()
        .filter(|c| c.write_failures > 0)
        .map(|c| format!("{} on {}", c.write_failures, c.pod))
        .collect();
    let (reason, message) = if !enforced {
        (
            reasons::INSECURE,
            "security.mode is Insecure: anyone who reaches the Service may call the model, and no call is recorded".to_owned(),
        )
    } else if let Some(foreign) = foreign_key {
        (reasons::AUDIT_KEY_FOREIGN, foreign.to_owned())
    } else if !broken.is_empty() {
        (reasons::AUDIT_TRAIL_BROKEN, broken.join("; "))
    } else if !failing.is_empty() {
        (
            reasons::AUDIT_WRITE_FAILING,
            format!(
                "calls could not be recorded ({}): {}; free the trail's volume and replace the pod",
                failing.join(", "),
                match security.audit_failure_policy {
                    AuditFailurePolicy::FailClosed => "they were refused (FailClosed)",
                    AuditFailurePolicy::FailOpen => "they were answered unrecorded (FailOpen)",
                }
            ),
        )
    } else {
        (
            reasons::ENFORCED,
            format!(
                "callers need a token for audience {:?} and RBAC create on models/infer {:?} (group aimass.io); every call is audited",
                security.audience,
                md.served_name()
            ),
        )
    };
    Wanted {
        type_: types::SECURED,
        status: reason == reasons::ENFORCED,
        reason,
        message,
    }
}

/// The `Shadowing` condition: what the shadow scores, or why it does not;
/// `None` without `spec.shadow`.
pub fn shadowing(
    md: &ModelDeployment,
    shadow: &Result<Option<ModelVersion>, Problem>,
) -> Option<Wanted<'static>> {
    let spec = md.spec.shadow.as_ref()?;
    Some(match shadow {
        Ok(Some(version)) => Wanted {
            type_: types::SHADOWING,
            status: true,
            reason: reasons::SHADOWING,
            message: format!(
                "version {} scores {} % of the requests beside the served version; its answers are compared (status.shadow), never returned",
                version.version, spec.percent
            ),
        },
        Ok(None) => Wanted {
            type_: types::SHADOWING,
            status: false,
            reason: reasons::SHADOW_UNAVAILABLE,
            message: "the shadow is the version served: there is nothing to compare".into(),
        },
        Err(problem) => Wanted {
            type_: types::SHADOWING,
            status: false,
            reason: problem.reason,
            message: problem.message.clone(),
        },
    })
}

/// The Events a status change calls for: newly degraded, a foreign audit
/// key, serving without security, and a completed rollout to `desired`
/// replicas.
pub fn announcements(
    old: &ModelDeploymentStatus,
    new: &ModelDeploymentStatus,
    desired: i32,
) -> Vec<Notice> {
    let mut notices = Vec::new();
    let newly = |type_: &str| {
        let condition = new.conditions.iter().find(|c| c.type_ == type_)?;
        let known = old.conditions.iter().any(|c| {
            c.type_ == type_ && c.status == condition.status && c.reason == condition.reason
        });
        (!known).then_some(condition)
    };
    if let Some(c) = newly(types::DEGRADED).filter(|c| c.status == "True") {
        notices.push(Notice::new(Severity::Warning, &c.reason, &c.message));
    }
    match newly(types::SECURED) {
        Some(c) if c.reason == reasons::AUDIT_KEY_FOREIGN => {
            notices.push(Notice::new(Severity::Warning, &c.reason, &c.message));
        }
        Some(c) if c.reason == reasons::INSECURE => {
            let reason = crate::events::reasons::INSECURE_SERVING;
            notices.push(Notice::new(Severity::Warning, reason, &c.message));
        }
        _ => {}
    }
    if new.serving_version != old.serving_version
        && let Some(version) = new.serving_version
    {
        let from = old
            .serving_version
            .map_or_else(|| "nothing".to_owned(), |v| format!("version {v}"));
        notices.push(Notice::new(
            Severity::Normal,
            crate::events::reasons::ROLLED_OUT,
            format!("version {version} serves on all {desired} replicas (replacing {from})"),
        ));
    }
    notices
}

#[cfg(test)]
mod tests;
