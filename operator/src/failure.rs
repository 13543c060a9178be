//! A reconcile that failed, as users see it: `Ready=False` with the error's
//! category as reason and its causes as message (saying when the operator
//! tries again), a Warning Event when that changes, and a WARN line in the
//! operator's log. A conflict is only a retry and says nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use std::future::Future;
use std::sync::Arc;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::warn;

use crate::conditions::Wanted;
use crate::context::Context;
use crate::error::Error;

/// The error policy of every controller that reports failures: counts the
/// failure, logs it, has `report` say it in status (off the controller's
/// path), and requeues as the error asks.
pub fn policy<K, F, Fut>(
    object: Arc<K>,
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
    if let Some(failure) = Failure::of(error) {
        warn!(
            kind = %K::kind(&()),
            name = %object.name_any(),
            namespace = object.namespace().unwrap_or_default(),
            reason = failure.reason,
            "{}",
            failure.message
        );
        tokio::spawn(report(ctx, object, failure));
    }
    error.retry_after()
}

/// What a failed reconcile tells.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The error's category (`ReferenceNotFound`, `StorageUnavailable`, …).
    pub reason: &'static str,
    /// The error, its causes, and when the next attempt is.
    pub message: String,
}

impl Failure {
    /// What `error` tells users; `None` for a conflict.
    pub fn of(error: &Error) -> Option<Self> {
        if matches!(error, Error::Conflict(_)) {
            return None;
        }
        Some(Self {
            reason: error.category(),
            message: format!(
                "{}; the operator tries again in {} s",
                error.explain(),
                error.retry_delay().as_secs()
            ),
        })
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
        !conditions
            .iter()
            .any(|c| c.status == "False" && c.reason == self.reason && c.message == self.message)
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
            "Secret \"registry-creds\" not found in namespace \"risk\"; the operator tries again in 10 s"
        );
        let condition = failure.condition(types::READY);
        assert!(!condition.status);
        assert_eq!(condition.type_, "Ready");
        assert!(failure.is_news(&[]));
        assert!(Failure::of(&Error::Conflict("Model fraud".into())).is_none());
        let spec = Failure::of(&Error::InvalidSpec("no storage".into())).expect("reported");
        assert!(
            spec.message.ends_with("tries again in 300 s"),
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
}
