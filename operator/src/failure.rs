//! A reconcile that failed, as users see it: `Ready=False` with the error's
//! category as reason and its causes as message (saying how the operator
//! retries), a Warning Event when that changes, and a WARN line in the
//! operator's log. A conflict is only a retry and says nothing.
//!
//! Retries back off without state of their own: the longer the same failure
//! has stood in status (its condition's `lastTransitionTime`), the longer
//! the wait, from [`FIRST_RETRY`] to [`LAST_RETRY`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::warn;

use crate::conditions::Wanted;
use crate::context::Context;
use crate::error::Error;

/// The first wait after a failure.
const FIRST_RETRY: Duration = Duration::from_secs(10);
/// The longest wait between attempts while a failure lasts.
const LAST_RETRY: Duration = Duration::from_secs(300);

/// The error policy of every controller that reports failures: counts the
/// failure, logs it, has `report` say it in status (off the controller's
/// path), and requeues later the longer the same failure has lasted
/// (`conditions` are the object's, where a former report would be).
pub fn policy<K, F, Fut>(
    object: Arc<K>,
    conditions: &[Condition],
    error: &Error,
    ctx: Arc<Context>,
    controller: &'static str,
    report: F,
) -> Action
where
    K: Resource<DynamicType = ()>,
    F: FnOnce(Arc<Context>, Arc<K>, Failure) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    ctx.metrics.reconcile.failed(controller, error.category());
    let Some(failure) = Failure::of(error) else {
        return error.retry_after();
    };
    let wait = failure.retry_delay(conditions, jiff::Timestamp::now());
    warn!(
        kind = %K::kind(&()),
        name = %object.name_any(),
        namespace = object.namespace().unwrap_or_default(),
        reason = failure.reason,
        retry_in_seconds = wait.as_secs(),
        "{}",
        failure.message
    );
    tokio::spawn(report(ctx, object, failure));
    Action::requeue(wait)
}

/// Where a run's failed reconcile is said: its status as read, where its
/// conditions are, which condition says it, who writes the status and the
/// Event's action.
pub struct RunStatus<S> {
    /// The status as read.
    pub old: S,
    /// Its conditions.
    pub conditions: fn(&mut S) -> &mut Vec<Condition>,
    /// The condition that says it (`Running`).
    pub type_: &'static str,
    /// The status writer.
    pub writer: crate::status::Writer,
    /// The Event's action (`Train`, `Score`).
    pub action: &'static str,
}

/// Says `failure` in `object`'s status (the condition `False`) and, when
/// it is news, in a Warning Event.
pub async fn say<K, S>(ctx: &Context, object: &K, failure: Failure, run: RunStatus<S>)
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    S: Clone + PartialEq + serde::Serialize,
{
    let RunStatus {
        old,
        conditions,
        type_,
        writer,
        action,
    } = run;
    let mut next = old.clone();
    let news = failure.is_news((conditions)(&mut next));
    crate::conditions::set(
        (conditions)(&mut next),
        failure.condition(type_),
        object.meta().generation,
        &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    );
    let api: kube::Api<K> =
        kube::Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    if let Err(error) = writer.write(&api, &object.name_any(), &old, &next).await {
        warn!(%error, "cannot say in status that the reconcile failed");
    }
    if news {
        ctx.events
            .publish(
                &object.object_ref(&()),
                crate::events::Severity::Warning,
                failure.reason,
                action,
                failure.message,
            )
            .await;
    }
}

/// What a failed reconcile tells.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The error's category (`ReferenceNotFound`, `StorageUnavailable`, …).
    pub reason: &'static str,
    /// The error, its causes, and when the next attempt is.
    pub message: String,
    /// Retries wait longer the longer it lasts; otherwise (a spec that
    /// cannot work) always the longest wait.
    backs_off: bool,
}

impl Failure {
    /// What `error` tells users; `None` for a conflict.
    pub fn of(error: &Error) -> Option<Self> {
        if matches!(error, Error::Conflict(_)) {
            return None;
        }
        let backs_off = !matches!(error, Error::InvalidSpec(_));
        let retries = if !backs_off {
            format!(
                "the operator retries every {} s, or at once when the object changes",
                LAST_RETRY.as_secs()
            )
        } else {
            format!(
                "the operator retries in {} s, then less and less often (at most every {} s)",
                FIRST_RETRY.as_secs(),
                LAST_RETRY.as_secs()
            )
        };
        Some(Self {
            reason: error.category(),
            message: format!("{}; {retries}", error.explain()),
            backs_off,
        })
    }

    /// How long to wait before the next attempt at `now`: a quarter of the
    /// time this same failure has stood in `conditions`, within
    /// [`FIRST_RETRY`] and [`LAST_RETRY`]; always the latter for a spec
    /// that cannot work (a change wakes the controller anyway).
    pub fn retry_delay(&self, conditions: &[Condition], now: jiff::Timestamp) -> Duration {
        if !self.backs_off {
            return LAST_RETRY;
        }
        let since = conditions
            .iter()
            .find(|c| self.is_said_by(c))
            .map(|c| c.last_transition_time.0);
        let lasted = since.map_or(0, |t| (now.as_second() - t.as_second()).max(0));
        let quarter = Duration::from_secs(u64::try_from(lasted / 4).unwrap_or(0));
        quarter.clamp(FIRST_RETRY, LAST_RETRY)
    }

    /// The condition of `type_` (Ready; Running for a TrainingJob) saying it.
    pub fn condition(&self, type_: &'static str) -> Wanted<'static> {
        Wanted {
            type_,
            status: false,
            reason: self.reason,
            message: self.message.clone(),
        }
    }

    /// Whether `conditions` do not say it yet (so it deserves an Event).
    pub fn is_news(&self, conditions: &[Condition]) -> bool {
        !conditions.iter().any(|c| self.is_said_by(c))
    }

    /// Whether `condition` says this failure.
    fn is_said_by(&self, condition: &Condition) -> bool {
        condition.status == "False"
            && condition.reason == self.reason
            && condition.message == self.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aimass_crds::v1alpha1::conditions::types;

    #[test]
    fn a_failure_names_the_cause_and_the_next_attempt() {
        let missing = Error::NotFound {
            kind: "Secret",
            name: "registry-creds".into(),
            namespace: "risk".into(),
        };
        let failure = Failure::of(&missing).expect("reported");
        assert_eq!(failure.reason, "ReferenceNotFound");
        assert_eq!(
            failure.message,
            "Secret \"registry-creds\" not found in namespace \"risk\"; the operator retries in 10 s, then less and less often (at most every 300 s)"
        );
        let condition = failure.condition(types::READY);
        assert!(!condition.status);
        assert_eq!(condition.type_, "Ready");
        assert!(failure.is_news(&[]));
        assert!(Failure::of(&Error::Conflict("Model fraud".into())).is_none());
        let spec = Failure::of(&Error::InvalidSpec("no storage".into())).expect("reported");
        assert!(
            spec.message
                .ends_with("retries every 300 s, or at once when the object changes"),
            "{}",
            spec.message
        );
    }

    #[test]
    fn the_same_failure_is_not_news_twice() {
        let failure = Failure::of(&Error::InvalidSpec("no storage".into())).expect("reported");
        let said = Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: failure.reason.into(),
            message: failure.message.clone(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        };
        assert!(!failure.is_news(std::slice::from_ref(&said)));
        let other = Failure::of(&Error::InvalidSpec("no image".into())).expect("reported");
        assert!(other.is_news(&[said]));
    }

    #[test]
    fn retries_back_off_the_longer_a_failure_lasts() {
        let missing = Error::NotFound {
            kind: "Secret",
            name: "creds".into(),
            namespace: "risk".into(),
        };
        let failure = Failure::of(&missing).expect("reported");
        let said_at = |seconds: i64| Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: failure.reason.into(),
            message: failure.message.clone(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::from_second(seconds).expect("a time"),
            ),
            observed_generation: None,
        };
        let now = jiff::Timestamp::from_second(10_000).expect("a time");
        // (the failure has stood since, the wait)
        for (since, wait) in [
            (None, 10),
            (Some(10_000), 10),
            (Some(9_880), 30),
            (Some(8_000), 300),
        ] {
            let conditions: Vec<Condition> = since.map(said_at).into_iter().collect();
            assert_eq!(
                failure.retry_delay(&conditions, now),
                Duration::from_secs(wait),
                "since {since:?}"
            );
        }
        // Another failure standing for long does not count.
        let other = Failure::of(&Error::NotFound {
            kind: "Secret",
            name: "other".into(),
            namespace: "risk".into(),
        })
        .expect("reported");
        assert_eq!(other.retry_delay(&[said_at(0)], now), FIRST_RETRY);
        let spec = Failure::of(&Error::InvalidSpec("no storage".into())).expect("reported");
        assert_eq!(spec.retry_delay(&[], now), LAST_RETRY);
    }
}
