//! Who may call the model, enforced in the server itself: every request on
//! the API port passes authenticate → authorise → per-caller rate limit
//! before it reaches a route, and the layer fails closed (an answer the
//! API server cannot give is a 503, never a pass).

mod apikeys;
mod authn;
mod authz;
mod cache;
pub mod mtls;
pub mod stub;

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{Quota, RateLimiter};
use hyper::header::{AUTHORIZATION, HeaderMap};

pub use apikeys::{API_CLIENTS_GROUP, ApiKeys, generate as generate_api_key};
pub use authn::{REJECTED_TTL, REVIEWS_PER_SECOND, TOKEN_TTL, TokenAuthenticator};
pub use authz::{ALLOW_TTL, Action, Authorizer, DENY_TTL};

use crate::http::CallShapes;
use aimass_audit::{Actor, AuditLog, Decision, Record, Target};

/// An authenticated caller, whichever way it authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Kubernetes-style user name (`system:serviceaccount:ns:name`, …).
    pub user: String,
    /// Its uid, when known.
    pub uid: Option<String>,
    /// Its groups.
    pub groups: Vec<String>,
    /// Which credential: a hash prefix, never the secret.
    pub credential_id: String,
    /// How it authenticated.
    pub method: &'static str,
    /// A rate limit of its own (an ApiClient's quota) instead of the
    /// server's per-caller default.
    pub limit: Option<OwnLimit>,
}

/// One caller's own rate limit, shared by all its keys.
#[derive(Clone)]
pub struct OwnLimit(std::sync::Arc<governor::DefaultDirectRateLimiter>);

impl OwnLimit {
    fn check(&self) -> Result<(), Refusal> {
        self.0.check().map_err(rate_limited)
    }
}

impl std::fmt::Debug for OwnLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnLimit")
    }
}

impl PartialEq for OwnLimit {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for OwnLimit {}

impl Principal {
    /// The key of authorisation decisions: every part whole, so `["a,b"]`
    /// and `["a", "b"]` (or a user name holding a newline) never meet.
    fn cache_key(&self) -> String {
        serde_json::json!([self.user, self.uid, self.groups]).to_string()
    }

    /// The principal as the audit trail records it.
    pub fn actor(&self) -> Actor {
        Actor {
            user: self.user.clone(),
            groups: self.groups.clone(),
            credential_id: self.credential_id.clone(),
            method: self.method.into(),
        }
    }
}

/// The refusal of a call over a rate limit, naming how long to wait.
fn rate_limited(not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> Refusal {
    Refusal::RateLimited(not_until.wait_time_from(DefaultClock::default().now()))
}

/// Why a call was refused, and so its status code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 401: no credentials, or a token the API server rejects.
    #[error(
        "authentication required: send a bearer token for audience {audience:?} (one for another audience, expired or revoked is refused), an API key or a client certificate"
    )]
    Unauthenticated {
        /// The audience tokens must be for.
        audience: String,
    },
    /// 401: an API key no Ready ApiClient of this namespace holds.
    #[error(
        "this API key is unknown here: it was revoked, expired, or never issued to an ApiClient of this namespace"
    )]
    UnknownApiKey,
    /// 403: authenticated, not allowed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 429: over the caller's rate limit.
    #[error("rate limit exceeded: retry after {0:?}")]
    RateLimited(Duration),
    /// 503: the decision could not be made (API server down or slow).
    #[error("cannot decide who may call: {0}")]
    Unavailable(String),
}

/// Rate limits per key: per caller (`Limits<String>`, the user name) or per
/// source address (`Limits<IpAddr>`).
pub struct Limits<K = String>
where
    K: std::hash::Hash + Eq + Clone,
{
    limiter: RateLimiter<K, governor::state::keyed::DefaultKeyedStateStore<K>, DefaultClock>,
    checks: std::sync::atomic::AtomicU64,
}

/// Every how many checks the keys that are back to a full burst are
/// forgotten, so a stream of new keys (addresses, user names) cannot grow
/// the map without end.
const PRUNE_EVERY: u64 = 4096;

impl<K: std::hash::Hash + Eq + Clone> Limits<K> {
    /// `per_second` calls per second per key, with bursts of `burst`.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Keys remembered now.
    pub fn keys(&self) -> usize {
        self.limiter.len()
    }

    fn check(&self, key: &K) -> Result<(), Refusal> {
        let checks = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if checks % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(key).map_err(rate_limited)
    }
}

/// The gates in front of every route.
pub struct Guard {
    /// Validates tokens.
    pub authn: TokenAuthenticator,
    /// Decides what a principal may do.
    pub authz: Authorizer,
    /// Accepts the keys of the namespace's ApiClients, when enabled.
    pub api_keys: Option<std::sync::Arc<ApiKeys>>,
    /// Per-caller rate limits, for callers without a quota of their own.
    pub limits: Option<Limits>,
    /// A coarse limit per source address, checked before anything else so
    /// a flood of bad credentials cannot flood the API server with reviews.
    pub per_address: Option<Limits<std::net::IpAddr>>,
}

impl Guard {
    /// Who is calling: the verified client certificate's subject, or the
    /// holder of the bearer token (an API key, or a token the API server
    /// reviews). Fills in `decision.authentication`.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        certificate: Option<&Principal>,
        decision: &mut Decision,
    ) -> Result<Principal, Refusal> {
        // A verified client certificate authenticates the connection; a
        // bearer token authenticates the request.
        let principal = match (certificate, bearer(headers)) {
            (Some(holder), _) => Ok(holder.clone()),
            (None, Some(key)) if key.starts_with(aimass_crds::api_key::PREFIX) => self
                .api_keys
                .as_ref()
                .map_or(Err(Refusal::UnknownApiKey), |keys| keys.authenticate(key)),
            (None, Some(token)) => self.authn.authenticate(token).await,
            (None, None) => Err(self.authn.unauthenticated()),
        };
        decision.authentication = outcome(&principal, "Allowed").into();
        principal
    }

    /// Whether `principal` may do `action` now: RBAC, then its rate limit.
    /// Fills in the rest of `decision` as the gates decide, so the audit
    /// record says how far the call got.
    pub async fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        decision: &mut Decision,
    ) -> Result<(), Refusal> {
        let allowed = self.authz.authorize(principal, action).await;
        decision.authorization = outcome(&allowed, "Allowed").into();
        if let Err(Refusal::Forbidden(reason) | Refusal::Unavailable(reason)) = &allowed {
            decision.authorization_reason.clone_from(reason);
        }
        allowed?;
        let limited = match (&principal.limit, &self.limits) {
            (Some(own), _) => own.check(),
            (None, Some(limits)) => limits.check(&principal.user),
            (None, None) => return Ok(()),
        };
        decision.rate_limit = outcome(&limited, "Allowed").into();
        limited
    }
}

/// What the gates made of a call.
pub struct Admission {
    /// Who is calling, once authenticated: also when the call is then
    /// refused, so the audit record names who was refused.
    pub principal: Option<Principal>,
    /// Whether the call may go ahead.
    pub verdict: Result<(), Refusal>,
}

impl Admission {
    /// The caller as the audit record names it (`method: None` when no one
    /// was authenticated).
    pub fn actor(&self) -> Actor {
        self.principal.as_ref().map_or_else(
            || Actor {
                method: "None".into(),
                ..Default::default()
            },
            Principal::actor,
        )
    }

    /// Refused before anyone was authenticated.
    fn refused(refusal: Refusal) -> Self {
        Self {
            principal: None,
            verdict: Err(refusal),
        }
    }
}

/// Everything known of a call once it is answered, for its audit record.
pub struct Call {
    /// When it arrived.
    pub received: jiff::Timestamp,
    /// How long it took.
    pub latency: Duration,
    /// Who made it.
    pub actor: Actor,
    /// Peer address.
    pub source: String,
    /// Method and path.
    pub operation: String,
    /// What the gates decided.
    pub decision: Decision,
    /// Status answered.
    pub status: u16,
    /// What it sent and got.
    pub shapes: CallShapes,
}

/// The security layer of one server: the gates (none with `--auth none`),
/// the audit trail, and what a failed audit write does.
pub struct Enforcement {
    /// The gates; `None` admits everyone as `system:anonymous`.
    pub guard: Option<Guard>,
    /// Where calls are recorded.
    pub audit: Option<AuditLog>,
    /// The model this server serves, as records name it.
    pub target: Target,
    /// Answer calls whose record could not be written.
    pub fail_open: bool,
    /// Which input values records keep, and how; none when absent.
    pub payload: Option<aimass_audit::payload::PayloadPolicy>,
    /// Counts records and failures.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The audit chain's key, when `POST /warm-up` on the admin port must
    /// carry the operator's proof made with it.
    pub warm_up_key: Option<Vec<u8>>,
}

impl Enforcement {
    /// Runs the gates, or admits as anonymous when there are none.
    pub async fn admit(
        &self,
        headers: &HeaderMap,
        certificate: Option<&Principal>,
        peer: std::net::IpAddr,
        action: Action,
        decision: &mut Decision,
    ) -> Admission {
        let Some(guard) = &self.guard else {
            decision.authentication = "Allowed".into();
            return Admission {
                principal: Some(Principal {
                    user: "system:anonymous".into(),
                    uid: None,
                    groups: vec!["system:unauthenticated".into()],
                    credential_id: String::new(),
                    method: "None",
                    limit: None,
                }),
                verdict: Ok(()),
            };
        };
        if let Some(limits) = &guard.per_address
            && let Err(refusal) = limits.check(&peer)
        {
            decision.rate_limit = "LimitedForAddress".into();
            return Admission::refused(refusal);
        }
        let principal = match guard.authenticate(headers, certificate, decision).await {
            Ok(principal) => principal,
            Err(refusal) => return Admission::refused(refusal),
        };
        if action == Action::Infer {
            self.metrics.called_by(&principal.user);
        }
        let verdict = guard.authorize(&principal, action, decision).await;
        Admission {
            principal: Some(principal),
            verdict,
        }
    }

    /// Records `call`. An error (the trail cannot be written and the policy
    /// is FailClosed) means the call must be refused.
    pub fn record(&self, call: Call) -> Result<(), String> {
        let Some(audit) = &self.audit else {
            return Ok(());
        };
        let completed = call.received
            + jiff::SignedDuration::try_from(call.latency).unwrap_or(jiff::SignedDuration::ZERO);
        let record = Record {
            received: micros(call.received),
            completed: micros(completed),
            actor: call.actor,
            source: call.source,
            target: self.target.clone(),
            operation: call.operation,
            decision: call.decision,
            status: call.status,
            latency_micros: u64::try_from(call.latency.as_micros()).unwrap_or(u64::MAX),
            inputs: call.shapes.inputs,
            outputs: call.shapes.outputs,
            ..Record::default()
        };
        match audit.append(record) {
            Ok(_) => {
                self.metrics.audit_records.inc();
                Ok(())
            }
            Err(e) => {
                self.metrics.audit_failures.inc();
                tracing::error!(error = %e, "cannot write the audit record");
                if self.fail_open {
                    Ok(())
                } else {
                    Err(e.to_string())
                }
            }
        }
    }
}

/// A timestamp in UTC with microseconds, as audit records carry them.
fn micros(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn outcome<T>(result: &Result<T, Refusal>, ok: &'static str) -> &'static str {
    match result {
        Ok(_) => ok,
        Err(Refusal::Unauthenticated { .. } | Refusal::UnknownApiKey) => "Refused",
        Err(Refusal::Forbidden(_)) => "Denied",
        Err(Refusal::RateLimited(_)) => "Limited",
        Err(Refusal::Unavailable(_)) => "Unavailable",
    }
}

/// The bearer token of a request, if it carries one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

#[cfg(test)]
mod tests;
