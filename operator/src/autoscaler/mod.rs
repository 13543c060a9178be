//! The built-in autoscaler: from the samples the monitor collects every
//! 2 s (`crate::monitor`), it decides (`decide`, a pure function tested with
//! tables and a traffic simulator) and `plan` says what to record as
//! `status.lastScaleDecision`, which the ModelDeployment controller turns
//! into the owned Deployment's replicas. It never writes the
//! ModelDeployment's spec; with `spec.autoscaling.enabled: false` it
//! records nothing and leaves the replicas to `spec.replicas.count` (and
//! so to HPA, KEDA or `kubectl scale`).

pub mod decide;
#[cfg(test)]
mod simulator;

use aimass_crds::v1alpha1::{ModelDeployment, ScaleDecision};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use decide::{Inputs, Memory, Sample, decide};

/// A decision that changes nothing is still recorded this often.
const RECORD_EVERY_SECONDS: i64 = 30;

/// What one autoscaling round records.
#[derive(Debug, PartialEq)]
pub struct Plan {
    /// `status.lastScaleDecision` from now on.
    pub decision: Option<ScaleDecision>,
    /// The note of a `Scaled` Event, when the replicas change.
    pub scaled: Option<String>,
}

/// How old a decision may be and still stand for the replicas asked for:
/// while the autoscaler is in charge it records one at least every
/// [`RECORD_EVERY_SECONDS`]. An older one was made before it was turned off
/// (someone else set the replicas since).
const IN_CHARGE_SECONDS: i64 = 3 * RECORD_EVERY_SECONDS;

/// The replicas the autoscaler starts from at `now`: its last decision while
/// it has been in charge, else the figure the controller reports, else the
/// minimum; within the bounds.
pub fn current(md: &ModelDeployment, last: Option<&ScaleDecision>, now: jiff::Timestamp) -> i32 {
    let bounds = &md.spec.replicas;
    let reported = md.status.as_ref().map_or(0, |s| s.replicas);
    let in_charge = last.filter(|d| now.as_second() - d.time.0.as_second() < IN_CHARGE_SECONDS);
    let current = match in_charge {
        Some(decision) => decision.to,
        None if reported > 0 => reported,
        None => bounds.min,
    };
    current.clamp(bounds.min, bounds.max.max(bounds.min))
}

/// Decides from `samples` at `now` and says what to record: a new
/// decision when the replicas or the panic mode change, or when the last
/// record is older than 30 s; otherwise `last` stays.
pub fn plan(
    md: &ModelDeployment,
    last: Option<&ScaleDecision>,
    samples: &[Sample],
    memory: &mut Memory,
    now: jiff::Timestamp,
) -> Plan {
    let spec = &md.spec.autoscaling;
    if !spec.enabled {
        return Plan {
            decision: None,
            scaled: None,
        };
    }
    let current = current(md, last, now);
    let seconds = now.as_millisecond() as f64 / 1000.0;
    let decision = decide(
        Inputs {
            spec,
            bounds: &md.spec.replicas,
            current,
            samples,
        },
        memory,
        seconds,
    );
    let stale = last.is_none_or(|p| now.as_second() - p.time.0.as_second() >= RECORD_EVERY_SECONDS);
    let changed = decision.desired != current || last.is_some_and(|p| p.panic != decision.panic);
    if !changed && !stale {
        return Plan {
            decision: last.cloned(),
            scaled: None,
        };
    }
    let scaled = (decision.desired != current).then(|| {
        format!(
            "{current} -> {} replicas: {}",
            decision.desired, decision.reason
        )
    });
    Plan {
        decision: Some(ScaleDecision {
            time: Time(now),
            from: current,
            to: decision.desired,
            panic: decision.panic,
            stable_value: decision.stable_value,
            panic_value: decision.panic_value,
            reason: decision.reason,
        }),
        scaled,
    }
}

#[cfg(test)]
mod tests;
