//! A throwaway namespace per test, server-side apply of YAML, and waits on
//! conditions with timeouts, never bare sleeps.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use crate::*;

/// A namespace that lives as long as one test. When the test fails, the
/// pods' logs and the namespace's events are printed; the namespace is always
/// deleted.
pub struct TestNamespace {
    /// The client the namespace was made with.
    pub client: Client,
    /// The namespace's name.
    pub name: String,
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<suffix>`.
    pub async fn new(prefix: &str) -> Result<Self> {
        let suffix = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .subsec_nanos()
        );
        Self::create(client().await?, format!("e2e-{prefix}-{suffix}")).await
    }

    /// Creates namespace `name`; usable once its default ServiceAccount
    /// exists.
    async fn create(client: Client, name: String) -> Result<Self> {
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &name);
        wait(
            Duration::from_secs(30),
            "default ServiceAccount",
            || async { Ok(sa.get_opt("default").await?.is_some()) },
        )
        .await?;
        Ok(Self { client, name })
    }

    /// Creates namespace `name` afresh, for examples whose namespaces are
    /// fixed: a leftover of an earlier run is deleted first.
    pub async fn named(name: &str) -> Result<Self> {
        let client = client().await?;
        let namespaces = Api::<Namespace>::all(client.clone());
        if namespaces.get_opt(name).await?.is_some() {
            let _ = namespaces.delete(name, &DeleteParams::default()).await;
            wait(
                Duration::from_secs(120),
                "a leftover namespace to go",
                || {
                    let namespaces = namespaces.clone();
                    async move { Ok(namespaces.get_opt(name).await?.is_none()) }
                },
            )
            .await?;
        }
        Self::create(client, name.to_owned()).await
    }

    /// An API for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// The Events in this namespace with reason `reason`.
    pub async fn events(&self, reason: &str) -> Result<Vec<Event>> {
        Ok(self
            .api::<Event>()
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .collect())
    }

    /// Server-side applies every document of `yaml` in this namespace.
    pub async fn apply(&self, yaml: &str) -> Result<Vec<DynamicObject>> {
        apply(&self.client, Some(&self.name), yaml).await
    }

    /// A token of ServiceAccount `account` bound to `audience`, valid ten
    /// minutes.
    pub async fn token(&self, account: &str, audience: &str) -> Result<String> {
        self.token_for(account, vec![audience.to_owned()]).await
    }

    /// A token of ServiceAccount `account` for the API server itself (its
    /// default audiences), as a user signs in to kubectl or the console
    /// with; valid ten minutes.
    pub async fn api_token(&self, account: &str) -> Result<String> {
        self.token_for(account, Vec::new()).await
    }

    async fn token_for(&self, account: &str, audiences: Vec<String>) -> Result<String> {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences,
                expiration_seconds: Some(600),
                bound_object_ref: None,
            },
            ..TokenRequest::default()
        };
        Ok(self
            .api::<k8s_openapi::api::core::v1::ServiceAccount>()
            .create_token_request(account, &PostParams::default(), &request)
            .await?
            .status
            .context("the TokenRequest has no status")?
            .token)
    }

    /// A directory for this test's data, registry and artifacts, on the
    /// file system the node agent's pods and the operator share.
    pub fn scratch(&self) -> Result<std::path::PathBuf> {
        let dir = std::env::temp_dir().join("aimass-e2e").join(&self.name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Creates ServiceAccount `account` (if missing) and grants it Role
    /// `role` with `rules` (a YAML flow sequence), through a RoleBinding of
    /// the same name as the Role.
    pub async fn grant(&self, account: &str, role: &str, rules: &str) -> Result<()> {
        self.apply(&format!(
            r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {account}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {role}}}
rules: {rules}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {role}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {role}}}
subjects: [{{kind: ServiceAccount, name: {account}, namespace: {ns}}}]
"#,
            ns = self.name
        ))
        .await?;
        Ok(())
    }

    /// A token (audience `aimass`) of ServiceAccount `caller`, which RBAC
    /// allows to call every model of this namespace.
    pub async fn invoker_token(&self) -> Result<String> {
        self.grant(
            "caller",
            "invoke-models",
            "[{apiGroups: [aimass.io], resources: [models/infer], verbs: [create]}]",
        )
        .await?;
        self.token("caller", "aimass").await
    }

    /// Prints what a failed test needs: pods with their status and logs, and
    /// events.
    pub async fn dump(&self) {
        eprintln!("----- diagnostics for namespace {} -----", self.name);
        let pods: Api<Pod> = self.api();
        if let Ok(list) = pods.list(&ListParams::default()).await {
            for pod in list.items {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let status = pod.status.as_ref();
                eprintln!(
                    "pod {name} on {:?}: phase {:?}, ip {:?}",
                    pod.spec.as_ref().and_then(|s| s.node_name.clone()),
                    status.and_then(|s| s.phase.clone()),
                    status.and_then(|s| s.pod_ip.clone())
                );
                let spec = pod.spec.as_ref();
                let init = spec
                    .and_then(|s| s.init_containers.as_deref())
                    .unwrap_or_default();
                for c in init
                    .iter()
                    .chain(spec.map(|s| s.containers.as_slice()).unwrap_or_default())
                {
                    let params = LogParams {
                        container: Some(c.name.clone()),
                        tail_lines: Some(40),
                        ..Default::default()
                    };
                    match pods.logs(&name, &params).await {
                        Ok(logs) => eprintln!("  logs of {name}/{}:\n{logs}", c.name),
                        Err(e) => eprintln!("  no logs of {name}/{}: {e}", c.name),
                    }
                }
            }
        }
        let events: Api<Event> = self.api();
        if let Ok(list) = events.list(&ListParams::default()).await {
            for e in list.items {
                eprintln!(
                    "event {} {}/{}: {} {}",
                    e.type_.unwrap_or_default(),
                    e.involved_object.kind.unwrap_or_default(),
                    e.involved_object.name.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.message.unwrap_or_default()
                );
            }
        }
    }

    /// Deletes the namespace, printing diagnostics first when the test is
    /// failing. Call it at the end of every test, also on the error path, as
    /// [`run`] does.
    pub async fn finish(self, failed: bool) {
        if failed {
            self.dump().await;
        }
        let _ = Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await;
    }
}

/// Runs a test body in a fresh namespace; diagnostics are printed and the
/// namespace removed whether the body succeeds or fails.
pub async fn run<F, Fut>(prefix: &str, body: F) -> Result<()>
where
    F: FnOnce(std::sync::Arc<TestNamespace>) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let ns = std::sync::Arc::new(TestNamespace::new(prefix).await?);
    let result = body(std::sync::Arc::clone(&ns)).await;
    if let Ok(ns) = std::sync::Arc::try_unwrap(ns) {
        ns.finish(result.is_err()).await;
    }
    result
}

/// Server-side applies every document of `yaml` (namespaced kinds go to
/// `namespace`).
pub async fn apply(
    client: &Client,
    namespace: Option<&str>,
    yaml: &str,
) -> Result<Vec<DynamicObject>> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut applied = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_json::from_value(value)?;
        let gvk = obj
            .types
            .as_ref()
            .map(GroupVersionKind::try_from)
            .transpose()?
            .context("document without apiVersion/kind")?;
        let (resource, caps): (ApiResource, ApiCapabilities) = discovery
            .resolve_gvk(&gvk)
            .with_context(|| format!("unknown kind {gvk:?}"))?;
        let api: Api<DynamicObject> = match (caps.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
            (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &resource),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        let name = obj
            .metadata
            .name
            .clone()
            .context("document without a name")?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        applied.push(api.patch(&name, &params, &Patch::Apply(&obj)).await?);
    }
    Ok(applied)
}

/// Waits until `cond` holds for the named object, at most `timeout`.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    cond: impl Condition<K>,
) -> Result<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => bail!("{name} was deleted while waiting"),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => bail!("timed out after {timeout:?} waiting for {name}"),
    }
}

/// Polls `check` until it returns true, at most `timeout`. For state that no
/// single object's watch shows (process tables, HTTP answers).
pub async fn wait<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            match last_err {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
