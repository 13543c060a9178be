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
/// How often key Secrets are read again.
/// The controller's status writer: the only one of an ApiClient's status.
const STATUS: Writer = Writer {
    manager: "aimass-operator/apiclient",
    others: &[],
};
const RESYNC: Duration = Duration::from_secs(60);

/// Brings the status of `client` in line with its Secrets and expiry.
pub async fn reconcile(client: Arc<ApiClient>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile.start(CONTROLLER);
    let namespace = client.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut keys = Vec::new();
    let mut problems = Vec::new();
    let old = client.status.clone().unwrap_or_default();
    // What an admin approved: the keys resolved under this very spec.
    let approved: &[ResolvedApiKey] = if old.observed_generation == client.meta().generation {
        &old.keys
    } else {
        &[]
    };
    for reference in &client.spec.keys {
        let name = &reference.secret_ref.name;
        match secrets
            .get_opt(name)
            .await
            .map_err(Error::kube("reading an API key Secret"))?
        {
            None => problems.push((
                reasons::REFERENCE_NOT_FOUND,
                format!("Secret {name:?} does not exist in this namespace"),
            )),
            Some(secret) => match resolve(&secret) {
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
            },
        }
    }
    let now = jiff::Timestamp::now();
    let expires = client.spec.expires.as_ref().map(|t| t.0);
    let expired = expires.is_some_and(|e| e <= now);
    let (ready, reason, message) = match (expired, problems.first()) {
        (true, _) => (
            false,
            reasons::EXPIRED,
            format!(
                "expired at {}: no key authenticates",
                expires.unwrap_or(now)
            ),
        ),
        (false, Some((reason, message))) => (
            false,
            *reason,
            format!(
                "{message} ({} of {} keys usable)",
                keys.len(),
                client.spec.keys.len()
            ),
        ),
        (false, None) => (
            true,
            reasons::AS_EXPECTED,
            format!(
                "{} key(s) authenticate as {:?}",
                keys.len(),
                client.spec.principal
            ),
        ),
    };
    let wanted = Wanted {
        type_: types::READY,
        status: ready,
        reason,
        message,
    };
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
    conditions::set(
        &mut status.conditions,
        wanted.clone(),
        client.meta().generation,
        &Time(now),
    );
    let api: Api<ApiClient> = Api::namespaced(ctx.client.clone(), &namespace);
    STATUS
        .write(&api, &client.name_any(), &old, &status)
        .await?;
    if changed_reason {
        let severity = if wanted.status {
            Severity::Normal
        } else {
            Severity::Warning
        };
        ctx.events
            .publish(
                &client.object_ref(&()),
                severity,
                wanted.reason,
                "ResolveKeys",
                wanted.message,
            )
            .await;
    }
    // Wake up when the client expires, to say so.
    let until_expiry = expires
        .filter(|_| !expired)
        .and_then(|e| Duration::try_from(e.duration_since(now)).ok());
    Ok(Action::requeue(
        until_expiry.map_or(RESYNC, |left| left.min(RESYNC)),
    ))
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
}
