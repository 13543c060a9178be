//! What an `Enforced` ModelDeployment's servers need to check their callers
//! and keep an audit trail: a ServiceAccount of their own, allowed to create
//! TokenReviews and SubjectAccessReviews (a ClusterRoleBinding to the
//! delegated-authentication ClusterRole, `system:auth-delegator` unless the
//! operator is told otherwise), leave to read the namespace's ApiClients (a
//! Role and RoleBinding), and the keys of the audit trail.
//!
//! The keys live in a Secret of the operator's own namespace (the key
//! namespace), never in the ModelDeployment's, whose editors are the people
//! the trail audits; the servers get them from the key service
//! ([`crate::key_service`]). The Secret outlives its ModelDeployment, so
//! its trails can be verified later. ClusterRoleBindings cannot be owned by
//! a namespaced object, so the operator removes those whose
//! ModelDeployment is gone or no longer `Enforced` ([`sweep`]).

use std::collections::BTreeMap;
use std::time::Duration;

use aimass_crds::v1alpha1::{ModelDeployment, SecurityMode};
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio::sync::watch;
use tracing::{info, warn};

use super::workload::deployment_labels;
use crate::context::Context;
use crate::error::{Error, is_not_found};
use crate::labels;

/// Key of the audit chain's key in its Secret.
pub const AUDIT_KEY: &str = "key";
/// Key of the checkpoint signing key (an Ed25519 seed) in the same Secret.
pub const AUDIT_SIGNING_KEY: &str = "signing-key";
/// Annotation of that Secret with the public key that verifies the seals.
const VERIFYING_KEY_ANNOTATION: &str = "aimass.io/audit-verifying-key";
/// Annotation of that Secret naming the ModelDeployment it is for
/// (`<namespace>/<name>`).
const KEY_OF_ANNOTATION: &str = "aimass.io/audit-key-of";
/// Label of a ClusterRoleBinding naming the namespace of its ModelDeployment.
const NAMESPACE_LABEL: &str = "aimass.io/model-deployment-namespace";
/// How often bindings of deleted ModelDeployments are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(300);

/// The ServiceAccount the servers run as: the spec's, or one of their own.
pub fn service_account_name(md: &ModelDeployment) -> String {
    md.spec
        .service_account_name
        .clone()
        .unwrap_or_else(|| labels::fit(&format!("{}-server", md.name_any()), 253))
}

/// The Secret (in the key namespace) holding the audit keys of `md`:
/// `audit-key.<namespace>.<name>` (a namespace has no dots, so distinct
/// ModelDeployments get distinct names).
pub fn audit_key_secret_name(md: &ModelDeployment) -> String {
    labels::fit(
        &format!(
            "audit-key.{}.{}",
            md.namespace().unwrap_or_default(),
            md.name_any()
        ),
        253,
    )
}

/// Whom an audit key Secret is for.
fn key_of(md: &ModelDeployment) -> String {
    format!("{}/{}", md.namespace().unwrap_or_default(), md.name_any())
}

fn binding_name(md: &ModelDeployment) -> String {
    format!(
        "aimass-inference:{}:{}",
        md.namespace().unwrap_or_default(),
        md.name_any()
    )
}

/// The Role (and its RoleBinding) that lets the servers follow ApiClients.
fn api_client_reader_name(md: &ModelDeployment) -> String {
    labels::fit(&format!("{}-apiclient-reader", md.name_any()), 253)
}

/// The servers' ServiceAccount, as a subject of bindings.
fn server_subject(md: &ModelDeployment) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: service_account_name(md),
        namespace: md.namespace(),
        api_group: None,
    }
}

/// Read access to the namespace's ApiClients, whose keys the servers accept.
pub fn api_client_reader(md: &ModelDeployment) -> (Role, RoleBinding) {
    let name = api_client_reader_name(md);
    let role = Role {
        metadata: labels::owned_meta(md, name.clone(), deployment_labels(md)),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["aimass.io".into()]),
            resources: Some(vec!["apiclients".into()]),
            verbs: vec!["get".into(), "list".into(), "watch".into()],
            ..PolicyRule::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: labels::owned_meta(md, name.clone(), deployment_labels(md)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name,
        },
        subjects: Some(vec![server_subject(md)]),
    };
    (role, binding)
}

/// The servers' own ServiceAccount, when the spec names none.
pub fn service_account(md: &ModelDeployment) -> Option<ServiceAccount> {
    md.spec
        .service_account_name
        .is_none()
        .then(|| ServiceAccount {
            metadata: labels::owned_meta(md, service_account_name(md), deployment_labels(md)),
            ..ServiceAccount::default()
        })
}

/// The binding that lets the servers' ServiceAccount ask the API server
/// who a caller is and what it may do.
pub fn binding(md: &ModelDeployment, cluster_role: &str) -> ClusterRoleBinding {
    let mut labels = deployment_labels(md);
    labels.insert(NAMESPACE_LABEL.into(), md.namespace().unwrap_or_default());
    ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(binding_name(md)),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: cluster_role.into(),
        },
        subjects: Some(vec![server_subject(md)]),
    }
}

/// A fresh audit key Secret: the chain's key (32 random bytes) and the
/// seed of the key pair that seals checkpoints, whose public half is an
/// annotation, readable without the Secret's data.
fn audit_key_secret(md: &ModelDeployment) -> Result<Secret, Error> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| Error::Config(format!("no randomness for the audit key: {e}")))?;
    let (seed, verifying_key) = aimass_audit::seal::generate().map_err(Error::Config)?;
    let mut labels = deployment_labels(md);
    labels.insert(
        NAMESPACE_LABEL.into(),
        labels::fit(&md.namespace().unwrap_or_default(), 63),
    );
    let metadata = ObjectMeta {
        name: Some(audit_key_secret_name(md)),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([
            (VERIFYING_KEY_ANNOTATION.into(), verifying_key),
            (KEY_OF_ANNOTATION.into(), key_of(md)),
        ])),
        ..ObjectMeta::default()
    };
    Ok(Secret {
        metadata,
        data: Some(BTreeMap::from([
            (AUDIT_KEY.into(), ByteString(key.to_vec())),
            (AUDIT_SIGNING_KEY.into(), ByteString(seed)),
        ])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    })
}

/// The public key that verifies the seals of `md`'s servers, read from the
/// audit key Secret's metadata; `None` while it is not made.
pub async fn audit_verifying_key(
    ctx: &Context,
    md: &ModelDeployment,
) -> Result<Option<String>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.audit_key_namespace);
    let metadata = secrets
        .get_metadata_opt(&audit_key_secret_name(md))
        .await
        .map_err(Error::kube("reading the audit key Secret's metadata"))?;
    Ok(metadata.and_then(|m| m.metadata.annotations?.remove(VERIFYING_KEY_ANNOTATION)))
}

/// Makes sure the servers of `md` have what its security mode needs; says
/// why the audit key cannot be trusted when its Secret is not the one the
/// operator made for `md`.
pub async fn ensure(ctx: &Context, md: &ModelDeployment) -> Result<Option<String>, Error> {
    let namespace = md.namespace().unwrap_or_default();
    let bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    let roles: Api<Role> = Api::namespaced(ctx.client.clone(), &namespace);
    let role_bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &namespace);
    if md.spec.security.mode == SecurityMode::Insecure {
        let reader = api_client_reader_name(md);
        delete(&role_bindings, &reader).await?;
        delete(&roles, &reader).await?;
        delete(&bindings, &binding_name(md)).await?;
        return Ok(None);
    }
    if let Some(account) = service_account(md) {
        super::server_side_apply(&Api::namespaced(ctx.client.clone(), &namespace), &account)
            .await?;
    }
    super::server_side_apply(&bindings, &binding(md, &ctx.auth_delegator_role)).await?;
    let (role, role_binding) = api_client_reader(md);
    super::server_side_apply(&roles, &role).await?;
    super::server_side_apply(&role_bindings, &role_binding).await?;
    // Created once, never replaced: the keys must outlive the pods (and the
    // ModelDeployment) so the trail can be verified later.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.audit_key_namespace);
    match secrets
        .create(&PostParams::default(), &audit_key_secret(md)?)
        .await
    {
        Ok(_) => {
            info!(secret = %audit_key_secret_name(md), "created the audit key");
            Ok(None)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // It exists: it must be one the operator made for this
            // ModelDeployment (its metadata says so).
            let existing = secrets
                .get_metadata_opt(&audit_key_secret_name(md))
                .await
                .map_err(Error::kube("reading the audit key Secret's metadata"))?;
            Ok(existing.and_then(|s| foreign_key(md, &s.metadata)))
        }
        Err(e) => Err(Error::kube("creating the audit key Secret")(e)),
    }
}

/// Why an existing audit key Secret with `metadata` is not `md`'s own: the
/// operator names the ModelDeployment in it and adds the verifying key.
/// (Only those who may write the operator's namespace can make one.)
fn foreign_key(md: &ModelDeployment, metadata: &ObjectMeta) -> Option<String> {
    let annotation = |name: &str| metadata.annotations.as_ref()?.get(name);
    let own = annotation(KEY_OF_ANNOTATION) == Some(&key_of(md))
        && annotation(VERIFYING_KEY_ANNOTATION).is_some();
    (!own).then(|| {
        format!(
            "the audit key Secret {:?} was not made by the operator for this ModelDeployment: whoever made it knows the key, so the trail proves nothing; an administrator of the operator's namespace should delete it, and the operator makes a fresh one",
            audit_key_secret_name(md)
        )
    })
}

/// The audit keys of `md` from the key namespace, for the key service;
/// `None` while they are not made.
pub async fn read_audit_keys(
    client: &kube::Client,
    namespace: &str,
    md: &ModelDeployment,
) -> Result<Option<aimass_audit::key_handover::AuditKeys>, Error> {
    use base64::Engine as _;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(secret) = secrets
        .get_opt(&audit_key_secret_name(md))
        .await
        .map_err(Error::kube("reading the audit keys"))?
    else {
        return Ok(None);
    };
    if let Some(why) = foreign_key(md, &secret.metadata) {
        return Err(Error::InvalidSpec(why));
    }
    let data = secret.data.unwrap_or_default();
    let field = |name: &str| {
        data.get(name)
            .map(|b| base64::engine::general_purpose::STANDARD.encode(&b.0))
            .ok_or_else(|| {
                Error::InvalidSpec(format!(
                    "the audit key Secret {:?} has no {name:?}",
                    audit_key_secret_name(md)
                ))
            })
    };
    Ok(Some(aimass_audit::key_handover::AuditKeys {
        chain_key: field(AUDIT_KEY)?,
        signing_seed: field(AUDIT_SIGNING_KEY)?,
    }))
}

/// Deletes the object `name` of `api` if it exists.
async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::kube(format!("removing {} {name}", K::kind(&())))(e)),
    }
}

/// Removes the binding of each ModelDeployment deleted while the operator
/// watches, and every few minutes (and at start) those of ModelDeployments
/// (in `namespace`, or everywhere) that are gone or no longer `Enforced`,
/// until `stop`.
pub async fn sweep(
    ctx: std::sync::Arc<Context>,
    namespace: Option<String>,
    mut stop: watch::Receiver<bool>,
) {
    let deployments: Api<ModelDeployment> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    let deleted = watcher(deployments, watcher::Config::default()).default_backoff();
    tokio::pin!(deleted);
    let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
    while !*stop.borrow() {
        tokio::select! {
            _ = ticks.tick() => {
                if let Err(e) = sweep_once(&ctx, namespace.as_deref()).await {
                    warn!(error = %e, "could not clean up inference server bindings");
                }
            }
            event = deleted.next() => match event {
                Some(Ok(watcher::Event::Delete(md))) => {
                    if let Err(e) = delete(&bindings, &binding_name(&md)).await {
                        warn!(error = %e, "could not remove the binding of a deleted ModelDeployment");
                    }
                }
                Some(_) => {}
                None => return,
            },
            _ = stop.changed() => return,
        }
    }
}

async fn sweep_once(ctx: &Context, namespace: Option<&str>) -> Result<(), Error> {
    let bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    let selector = match namespace {
        Some(ns) => format!("{NAMESPACE_LABEL}={ns}"),
        None => NAMESPACE_LABEL.to_owned(),
    };
    let listed = bindings
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::kube("listing inference server bindings"))?;
    for binding in listed {
        let Some((ns, name)) = binding
            .name_any()
            .strip_prefix("aimass-inference:")
            .and_then(|rest| rest.split_once(':'))
            .map(|(ns, name)| (ns.to_owned(), name.to_owned()))
        else {
            continue;
        };
        let md = Api::<ModelDeployment>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&name)
            .await
            .map_err(Error::kube("reading a ModelDeployment"))?;
        if md.is_none_or(|md| md.spec.security.mode == SecurityMode::Insecure) {
            info!(binding = %binding.name_any(), "removing the binding of a ModelDeployment that is gone or Insecure");
            delete(&bindings, &binding.name_any()).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(extra: &str) -> ModelDeployment {
        serde_yaml_ng::from_str(&format!(
            "apiVersion: aimass.io/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: fraud, namespace: risk, uid: u1}}\nspec:\n  model: {{name: fraud}}\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn the_servers_get_their_own_account_bound_to_delegated_authentication() {
        let md = md("");
        let account = service_account(&md).unwrap();
        assert_eq!(account.metadata.name.as_deref(), Some("fraud-server"));
        assert!(account.metadata.owner_references.is_some());
        let binding = binding(&md, "system:auth-delegator");
        assert_eq!(
            binding.metadata.name.as_deref(),
            Some("aimass-inference:risk:fraud")
        );
        assert_eq!(binding.role_ref.name, "system:auth-delegator");
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!(
            (subject.name.as_str(), subject.namespace.as_deref()),
            ("fraud-server", Some("risk"))
        );
    }

    #[test]
    fn a_named_account_is_used_and_not_created() {
        let md = md("  serviceAccountName: scoring\n");
        assert!(service_account(&md).is_none());
        assert_eq!(service_account_name(&md), "scoring");
    }

    #[test]
    fn each_audit_key_is_fresh() {
        let md = md("");
        let key = |s: Secret| s.data.unwrap()[AUDIT_KEY].0.clone();
        let (a, b) = (
            key(audit_key_secret(&md).unwrap()),
            key(audit_key_secret(&md).unwrap()),
        );
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn audit_keys_live_in_the_key_namespace_named_for_their_deployment() {
        let md = md("");
        let secret = audit_key_secret(&md).unwrap();
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("audit-key.risk.fraud")
        );
        assert!(secret.metadata.namespace.is_none());
        assert!(secret.metadata.owner_references.is_none());
        let long = serde_yaml_ng::from_str::<ModelDeployment>(&format!(
            "apiVersion: aimass.io/v1alpha1\nkind: ModelDeployment\nmetadata: {{name: {}, namespace: risk}}\nspec:\n  model: {{name: fraud}}\n",
            "a".repeat(253)
        ))
        .unwrap();
        assert!(audit_key_secret_name(&long).len() <= 253);
    }

    #[test]
    fn an_audit_key_made_by_someone_else_is_foreign() {
        let md = md("");
        let own = audit_key_secret(&md).unwrap().metadata;
        assert_eq!(foreign_key(&md, &own), None);
        let mut planted = own.clone();
        planted.annotations = None;
        assert!(
            foreign_key(&md, &planted)
                .unwrap()
                .contains("not made by the operator")
        );
        // Another ModelDeployment's key is not this one's.
        let mut other = own;
        other
            .annotations
            .as_mut()
            .unwrap()
            .insert(KEY_OF_ANNOTATION.into(), "risk/other".into());
        assert!(foreign_key(&md, &other).is_some());
    }
}
