//! Resolves each `ApiClient`'s key Secrets into its status: the id and hash
//! of every key, which the inference servers of the namespace watch. The
//! operator reads only the Secrets an ApiClient names, and reads them again
//! every minute, so a deleted or changed Secret is noticed without a watch
//! on Secrets (which would need `list` on all of them).

use std::sync::Arc;
use std::time::Duration;

use aimass_crds::api_key;
use aimass_crds::v1alpha1::conditions::{reasons, types};
use aimass_crds::v1alpha1::{ApiClient, ApiClientStatus, ResolvedApiKey};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use crate::conditions::{self, Wanted};
use crate::context::Context;
use crate::error::Error;
use crate::events::Severity;
use crate::status::Writer;

/// The controller's name in metrics.
pub const CONTROLLER: &str = "apiclient";
/// The controller's status writer: the only one of an ApiClient's status.
const STATUS: Writer = Writer {
    manager: "aimass-operator/apiclient",
    others: &[],
};
/// How often key Secrets are read again.
const RESYNC: Duration = Duration::from_secs(60);

/// Brings the status of `client` in line with its Secrets and expiry.
pub async fn reconcile(client: Arc<ApiClient>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile.start(CONTROLLER);
    let namespace = client.namespace().unwrap_or_default();
    let secrets = observe(&client, &Api::namespaced(ctx.client.clone(), &namespace)).await?;
    let old = client.status.clone().unwrap_or_default();
    let plan = plan(&client, &secrets, jiff::Timestamp::now());
    let api: Api<ApiClient> = Api::namespaced(ctx.client.clone(), &namespace);
    STATUS
        .write(&api, &client.name_any(), &old, &plan.status)
        .await?;
    if let Some((severity, reason, message)) = plan.event {
        ctx.events
            .publish(
                &client.object_ref(&()),
                severity,
                reason,
                "ResolveKeys",
                message,
            )
            .await;
    }
    Ok(Action::requeue(plan.requeue_after))
}

/// The key Secrets `client` names, by name; `None` for those missing.
async fn observe(
    client: &ApiClient,
    secrets: &Api<Secret>,
) -> Result<Vec<(String, Option<Secret>)>, Error> {
    let mut found = Vec::with_capacity(client.spec.keys.len());
    for reference in &client.spec.keys {
        let name = &reference.secret_ref.name;
        let secret = secrets
            .get_opt(name)
            .await
            .map_err(Error::kube("reading an API key Secret"))?;
        found.push((name.clone(), secret));
    }
    Ok(found)
}

/// What to write and say about a client.
#[derive(Debug)]
struct Plan {
    status: ApiClientStatus,
    /// An Event when the Ready reason changes.
    event: Option<(Severity, &'static str, String)>,
    /// When to look again: at expiry, at most a minute away.
    requeue_after: Duration,
}

/// The status of `client` given its `secrets` at `now`. Pure.
fn plan(client: &ApiClient, secrets: &[(String, Option<Secret>)], now: jiff::Timestamp) -> Plan {
    let old = client.status.clone().unwrap_or_default();
    // What an admin approved: the keys resolved under this very spec.
    let approved: &[ResolvedApiKey] = if old.observed_generation == client.meta().generation {
        &old.keys
    } else {
        &[]
    };
    let (keys, problems) = resolve_all(secrets, approved);
    let expires = client.spec.expires.as_ref().map(|t| t.0);
    let expired = expires.is_some_and(|e| e <= now);
    let wanted = ready(client, &keys, &problems, expires.filter(|_| expired));
    let mut status = ApiClientStatus {
        observed_generation: client.meta().generation,
        conditions: old.conditions.clone(),
        active_keys: if expired {
            0
        } else {
            i32::try_from(keys.len()).unwrap_or(i32::MAX)
        },
        keys,
    };
    let changed_reason = old
        .conditions
        .iter()
        .find(|c| c.type_ == types::READY)
        .is_none_or(|c| c.reason != wanted.reason);
    let event = changed_reason.then(|| {
        let severity = if wanted.status {
            Severity::Normal
        } else {
            Severity::Warning
        };
        (severity, wanted.reason, wanted.message.clone())
    });
    conditions::set(
        &mut status.conditions,
        wanted,
        client.meta().generation,
        &Time(now),
    );
    // Wake up when the client expires, to say so.
    let until_expiry = expires
        .filter(|_| !expired)
        .and_then(|e| Duration::try_from(e.duration_since(now)).ok());
    Plan {
        status,
        event,
        requeue_after: until_expiry.map_or(RESYNC, |left| left.min(RESYNC)),
    }
}

/// A reason and a message for what makes a key unusable.
type Problem = (&'static str, String);

/// The usable keys among `secrets`, and what is wrong with the others. A
/// Secret rewritten since an admin `approved` its key keeps the approved
/// key.
fn resolve_all(
    secrets: &[(String, Option<Secret>)],
    approved: &[ResolvedApiKey],
) -> (Vec<ResolvedApiKey>, Vec<Problem>) {
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    for (name, secret) in secrets {
        let Some(secret) = secret else {
            problems.push((
                reasons::REFERENCE_NOT_FOUND,
                format!("Secret {name:?} does not exist in this namespace"),
            ));
            continue;
        };
        match resolve(secret) {
            Ok((id, sha256)) => match approved.iter().find(|k| &k.secret == name) {
                // Rewritten since it was approved (namespace editors may
                // edit Secrets; only admins may edit ApiClients): the
                // approved key stays, the new one waits.
                Some(known) if known.id != id || known.sha256 != sha256 => {
                    keys.push(known.clone());
                    problems.push((
                        reasons::KEY_SECRET_CHANGED,
                        format!("Secret {name:?} holds another key than the one approved; it is not accepted until an admin changes this ApiClient's spec (for example its expires)"),
                    ));
                }
                _ => keys.push(ResolvedApiKey {
                    secret: name.clone(),
                    id,
                    sha256,
                }),
            },
            Err(why) => problems.push((
                reasons::INVALID_KEY_SECRET,
                format!("Secret {name:?} {why}; make it with `aimass-apikey new`"),
            )),
        }
    }
    (keys, problems)
}

/// The Ready condition: false when the client `expired` (at that time) or
/// a key has a problem.
fn ready(
    client: &ApiClient,
    keys: &[ResolvedApiKey],
    problems: &[Problem],
    expired: Option<jiff::Timestamp>,
) -> Wanted<'static> {
    let (status, reason, message) = match (expired, problems.first()) {
        (Some(at), _) => (
            false,
            reasons::EXPIRED,
            format!("expired at {at}: no key authenticates"),
        ),
        (None, Some((reason, message))) => (
            false,
            *reason,
            format!(
                "{message} ({} of {} keys usable)",
                keys.len(),
                client.spec.keys.len()
            ),
        ),
        (None, None) => (
            true,
            reasons::AS_EXPECTED,
            format!(
                "{} key(s) authenticate as {:?}",
                keys.len(),
                client.spec.principal
            ),
        ),
    };
    Wanted {
        type_: types::READY,
        status,
        reason,
        message,
    }
}

/// Requeues after a failed reconcile.
pub fn error_policy(_client: Arc<ApiClient>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile.failed(CONTROLLER, error.category());
    error.retry_after()
}

/// The (id, sha256) a key Secret holds, or what is wrong with it.
fn resolve(secret: &Secret) -> Result<(String, String), String> {
    let field = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| String::from_utf8_lossy(&v.0).trim().to_owned())
            .ok_or_else(|| format!("has no {key:?}"))
    };
    let id = field(api_key::SECRET_ID)?;
    let sha256 = field(api_key::SECRET_SHA256)?;
    if !api_key::is_valid_id(&id) {
        return Err(format!(
            "has an {:?} that is not 16 lowercase hex digits",
            api_key::SECRET_ID
        ));
    }
    if !api_key::is_valid_sha256(&sha256) {
        return Err(format!(
            "has a {:?} that is not 64 lowercase hex digits",
            api_key::SECRET_SHA256
        ));
    }
    Ok((id, sha256))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    fn secret(pairs: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn a_key_secret_yields_its_id_and_hash_or_says_what_is_wrong() {
        let hash = "ab".repeat(32);
        assert_eq!(
            resolve(&secret(&[("id", "0123456789abcdef\n"), ("sha256", &hash)])),
            Ok(("0123456789abcdef".into(), hash.clone()))
        );
        assert_eq!(
            resolve(&secret(&[("sha256", &hash)])),
            Err("has no \"id\"".into())
        );
        let err = resolve(&secret(&[("id", "0123"), ("sha256", &hash)])).unwrap_err();
        assert!(err.contains("16 lowercase hex"), "{err}");
        // A key pasted where its hash belongs is refused, not stored.
        let err = resolve(&secret(&[
            ("id", "0123456789abcdef"),
            ("sha256", "aimass_0123456789abcdef_c2VjcmV0"),
        ]))
        .unwrap_err();
        assert!(err.contains("64 lowercase hex"), "{err}");
    }

    const ID: &str = "0123456789abcdef";

    fn key_secret(id: &str, hash: &str) -> Option<Secret> {
        Some(secret(&[("id", id), ("sha256", hash)]))
    }

    /// A client of generation 2 with one key, `expires` as given, and the
    /// status `old` (JSON).
    fn client(expires: Option<&str>, old: serde_json::Value) -> ApiClient {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "aimass.io/v1alpha1",
            "kind": "ApiClient",
            "metadata": {"name": "partner", "namespace": "risk", "generation": 2},
            "spec": {
                "principal": "partner-a",
                "expires": expires,
                "keys": [{"secretRef": {"name": "partner-key"}}]
            },
            "status": old,
        }))
        .expect("a valid ApiClient")
    }

    fn at(time: &str) -> jiff::Timestamp {
        time.parse().expect("a timestamp")
    }

    #[test]
    fn the_plan_resolves_keys_expiry_and_approval() {
        let good = "ab".repeat(32);
        let other = "cd".repeat(32);
        let approved = serde_json::json!({
            "observedGeneration": 2,
            "keys": [{"secret": "partner-key", "id": ID, "sha256": good}],
            "conditions": [{"type": "Ready", "status": "True", "reason": "AsExpected",
                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
        });
        let approved_earlier = {
            let mut v = approved.clone();
            v["observedGeneration"] = 1.into();
            v
        };
        let now = "2026-06-01T00:00:00Z";
        // (case, expires, old status, secret, ready, reason, active keys,
        //  key hash kept, event, requeue seconds)
        #[allow(clippy::type_complexity)]
        let cases: [(
            &str,
            Option<&str>,
            serde_json::Value,
            Option<Secret>,
            bool,
            &str,
            i32,
            Option<&str>,
            Option<Severity>,
            u64,
        ); 7] = [
            (
                "a valid key",
                None,
                serde_json::Value::Null,
                key_secret(ID, &good),
                true,
                reasons::AS_EXPECTED,
                1,
                Some(&good),
                Some(Severity::Normal),
                60,
            ),
            (
                "no change, no event",
                None,
                approved.clone(),
                key_secret(ID, &good),
                true,
                reasons::AS_EXPECTED,
                1,
                Some(&good),
                None,
                60,
            ),
            (
                "a missing Secret",
                None,
                serde_json::Value::Null,
                None,
                false,
                reasons::REFERENCE_NOT_FOUND,
                0,
                None,
                Some(Severity::Warning),
                60,
            ),
            (
                "a Secret without a hash",
                None,
                serde_json::Value::Null,
                Some(secret(&[("id", ID)])),
                false,
                reasons::INVALID_KEY_SECRET,
                0,
                None,
                Some(Severity::Warning),
                60,
            ),
            (
                "a Secret rewritten after approval keeps the approved key",
                None,
                approved.clone(),
                key_secret(ID, &other),
                false,
                reasons::KEY_SECRET_CHANGED,
                1,
                Some(&good),
                Some(Severity::Warning),
                60,
            ),
            (
                "a changed spec approves the rewritten key",
                None,
                approved_earlier,
                key_secret(ID, &other),
                true,
                reasons::AS_EXPECTED,
                1,
                Some(&other),
                None,
                60,
            ),
            (
                "expired",
                Some("2026-05-31T00:00:00Z"),
                approved.clone(),
                key_secret(ID, &good),
                false,
                reasons::EXPIRED,
                0,
                Some(&good),
                Some(Severity::Warning),
                60,
            ),
        ];
        for (case, expires, old, found, ready, reason, active, kept, event, requeue) in cases {
            let client = client(expires, old);
            let plan = plan(&client, &[("partner-key".into(), found)], at(now));
            let condition = plan
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == types::READY)
                .expect("a Ready condition");
            assert_eq!(condition.status == "True", ready, "{case}: {condition:?}");
            assert_eq!(condition.reason, reason, "{case}: {}", condition.message);
            assert_eq!(plan.status.active_keys, active, "{case}");
            assert_eq!(
                plan.status.keys.first().map(|k| k.sha256.as_str()),
                kept,
                "{case}"
            );
            assert_eq!(plan.status.observed_generation, Some(2), "{case}");
            assert_eq!(plan.event.as_ref().map(|e| e.0), event, "{case}");
            assert_eq!(plan.requeue_after, Duration::from_secs(requeue), "{case}");
        }
    }

    #[test]
    fn a_client_about_to_expire_is_looked_at_when_it_does() {
        let client = client(Some("2026-06-01T00:00:10Z"), serde_json::Value::Null);
        let found = key_secret(ID, &"ab".repeat(32));
        let plan = plan(
            &client,
            &[("partner-key".into(), found)],
            at("2026-06-01T00:00:00Z"),
        );
        assert_eq!(plan.requeue_after, Duration::from_secs(10));
        assert_eq!(plan.status.active_keys, 1);
    }

    #[test]
    fn a_problem_says_how_many_keys_still_work() {
        let client = client(None, serde_json::Value::Null);
        let plan = plan(
            &client,
            &[("partner-key".into(), None)],
            at("2026-06-01T00:00:00Z"),
        );
        let (_, _, message) = plan.event.expect("an event");
        assert_eq!(
            message,
            "Secret \"partner-key\" does not exist in this namespace (0 of 1 keys usable)"
        );
    }
}
