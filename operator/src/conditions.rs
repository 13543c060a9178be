//! Standard `metav1.Condition` bookkeeping shared by every controller:
//! `lastTransitionTime` moves only when a condition's status flips, so a
//! status that did not change is byte-for-byte the same and no patch is sent.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition as a reconcile step wants it to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted<'a> {
    /// Condition type, from `aimass_crds::v1alpha1::conditions::types`.
    pub type_: &'a str,
    /// Whether it holds.
    pub status: bool,
    /// CamelCase reason, from `conditions::reasons`.
    pub reason: &'a str,
    /// A sentence for humans.
    pub message: String,
}

/// Sets `wanted` in `conditions` (a list keyed by type) for `generation`.
pub fn set(
    conditions: &mut Vec<Condition>,
    wanted: Wanted<'_>,
    generation: Option<i64>,
    now: &Time,
) {
    let status = if wanted.status { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c.type_ == wanted.type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = now.clone();
            }
            existing.status = status.to_owned();
            existing.reason = wanted.reason.to_owned();
            existing.message = wanted.message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: wanted.type_.to_owned(),
            status: status.to_owned(),
            reason: wanted.reason.to_owned(),
            message: wanted.message,
            observed_generation: generation,
            last_transition_time: now.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn ready(status: bool, reason: &str) -> Wanted<'_> {
        Wanted {
            type_: "Ready",
            status,
            reason,
            message: format!("{reason} message"),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut conditions = Vec::new();
        set(&mut conditions, ready(false, "Pending"), Some(1), &at(10));
        set(
            &mut conditions,
            ready(false, "StillPending"),
            Some(2),
            &at(20),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, at(10));
        assert_eq!(conditions[0].reason, "StillPending");
        assert_eq!(conditions[0].observed_generation, Some(2));
        set(&mut conditions, ready(true, "AsExpected"), Some(2), &at(30));
        assert_eq!(conditions[0].last_transition_time, at(30));
        assert_eq!(conditions[0].status, "True");
    }
}
