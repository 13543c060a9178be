//! Authorisation through Kubernetes RBAC, as the kubelet does for
//! `nodes/metrics`: inference needs `create` on the virtual subresource
//! `models/infer` (group `aimass.io`, name = the model), reading metadata
//! needs `get` on `models`. Each decision is a SubjectAccessReview, cached
//! briefly: allows for 10 s, denials for 5 s, failures never.

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use super::{Principal, Refusal, cache};

/// How long an allow is trusted.
pub const ALLOW_TTL: Duration = Duration::from_secs(10);
/// How long a denial is trusted.
pub const DENY_TTL: Duration = Duration::from_secs(5);

/// What a call asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Run the model: `create models/infer`.
    Infer,
    /// Read its metadata or readiness: `get models`.
    Read,
}

impl Action {
    fn attributes(self, namespace: &str, model: &str) -> ResourceAttributes {
        let (verb, subresource) = match self {
            Self::Infer => ("create", Some("infer".to_owned())),
            Self::Read => ("get", None),
        };
        ResourceAttributes {
            group: Some("aimass.io".into()),
            resource: Some("models".into()),
            subresource,
            verb: Some(verb.into()),
            name: Some(model.into()),
            namespace: Some(namespace.into()),
            ..ResourceAttributes::default()
        }
    }
}

/// Asks the API server whether a principal may act on this server's model.
pub struct Authorizer {
    reviews: Api<SubjectAccessReview>,
    namespace: String,
    model: String,
    cache: moka::sync::Cache<(String, Action), cache::Timed<Result<(), String>>>,
    timeout: Duration,
    ttls: (Duration, Duration),
}

impl Authorizer {
    /// Reviews with `client`, for `model` served in `namespace`.
    pub fn new(client: kube::Client, namespace: String, model: String, timeout: Duration) -> Self {
        Self {
            reviews: Api::all(client),
            namespace,
            model,
            cache: cache::timed(100_000),
            timeout,
            ttls: (ALLOW_TTL, DENY_TTL),
        }
    }

    /// Trusts allows for `allow` and denials for `deny` instead of the
    /// defaults (at most those).
    pub fn with_ttls(mut self, allow: Duration, deny: Duration) -> Self {
        self.ttls = (allow.min(ALLOW_TTL), deny.min(DENY_TTL));
        self
    }

    /// Ok when allowed; `Forbidden` with the reason when denied;
    /// `Unavailable` when the API server cannot decide.
    pub async fn authorize(&self, who: &Principal, action: Action) -> Result<(), Refusal> {
        let key = (who.cache_key(), action);
        if let Some(hit) = self.cache.get(&key) {
            return hit.value.map_err(Refusal::Forbidden);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(who.user.clone()),
                uid: who.uid.clone(),
                groups: Some(who.groups.clone()),
                resource_attributes: Some(action.attributes(&self.namespace, &self.model)),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let answer = tokio::time::timeout(
            self.timeout,
            self.reviews.create(&PostParams::default(), &review),
        )
        .await
        .map_err(|_| Refusal::Unavailable("the SubjectAccessReview timed out".into()))?
        .map_err(|e| Refusal::Unavailable(format!("the SubjectAccessReview failed: {e}")))?;
        let status = answer.status.unwrap_or_default();
        let verdict = if status.allowed && status.denied != Some(true) {
            Ok(())
        } else {
            let (verb, resource) = match action {
                Action::Infer => ("create", "models/infer"),
                Action::Read => ("get", "models"),
            };
            Err(format!(
                "{} may not {verb} {resource} {:?} in namespace {:?}{}",
                who.user,
                self.model,
                self.namespace,
                status
                    .reason
                    .filter(|r| !r.is_empty())
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ))
        };
        let ttl = if verdict.is_ok() {
            self.ttls.0
        } else {
            self.ttls.1
        };
        self.cache.insert(
            key,
            cache::Timed {
                value: verdict.clone(),
                ttl,
            },
        );
        verdict.map_err(Refusal::Forbidden)
    }
}
