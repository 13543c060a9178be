//! Test support for the cluster tests: a cluster brought up once per run (or
//! the one `KUBECONFIG` names), a throwaway namespace per test with its pods'
//! logs and events printed when the test fails, server-side apply of YAML,
//! and waits on conditions with timeouts, never bare sleeps.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, PostParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

pub mod grpc;
pub mod operator;

/// The field manager tests apply with.
pub const FIELD_MANAGER: &str = "aimass-e2e";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// Makes sure a cluster is reachable: `KUBECONFIG` when set, else the local
/// cluster, started (once per process) with `scripts/cluster-up.sh`, which
/// returns at once when it already runs.
fn ensure_cluster() -> Result<()> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            if std::env::var_os("KUBECONFIG").is_some() {
                return Ok(());
            }
            let root = repo_root();
            let status = Command::new("bash")
                .arg(root.join("scripts/cluster-up.sh"))
                .status()
                .map_err(|e| format!("cannot run scripts/cluster-up.sh: {e}"))?;
            if !status.success() {
                return Err("scripts/cluster-up.sh failed".into());
            }
            let dir = std::env::var_os("AIMASS_CLUSTER_DIR")
                .map_or_else(|| root.join(".cluster"), PathBuf::from);
            // Recorded for the clients and kubectl calls this helper makes;
            // the process environment is left alone.
            let _ = KUBECONFIG_OVERRIDE.set(dir.join("admin.kubeconfig"));
            Ok(())
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The local cluster's kubeconfig, when this helper started it.
static KUBECONFIG_OVERRIDE: OnceLock<PathBuf> = OnceLock::new();

/// A client for the test cluster.
pub async fn client() -> Result<Client> {
    Ok(Client::try_from(client_config().await?)?)
}

/// The test cluster's client configuration (as the cluster admin).
pub async fn client_config() -> Result<kube::Config> {
    ensure_cluster()?;
    // object_store brings rustls with aws-lc-rs and kube with ring; with both
    // linked, rustls cannot pick a provider itself, so every binary picks ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match KUBECONFIG_OVERRIDE.get() {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(config)
}

/// The kubeconfig path the tests use, for kubectl.
pub fn kubeconfig() -> Option<PathBuf> {
    KUBECONFIG_OVERRIDE
        .get()
        .cloned()
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
}

/// Runs kubectl (from PATH, or the one cluster-up installed) against the test
/// cluster; returns (success, stdout, stderr).
pub fn kubectl(args: &[&str]) -> Result<(bool, String, String)> {
    run_tool(kubectl_path(), args)
}

/// Applies the CRDs in `dir` server-side (as `field_manager`, forcing
/// conflicts, when given) and waits until the API server serves them.
pub fn apply_crds(dir: &Path, field_manager: Option<&str>) -> Result<()> {
    let dir = dir.to_string_lossy();
    let mut args = vec!["apply", "--server-side"];
    if let Some(manager) = field_manager {
        args.extend(["--force-conflicts", "--field-manager", manager]);
    }
    args.extend(["-f", &dir]);
    let (ok, _, err) = kubectl(&args)?;
    ensure!(ok, "applying the CRDs in {dir}: {err}");
    let (ok, _, err) = kubectl(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout",
        "60s",
        "-f",
        &dir,
    ])?;
    ensure!(ok, "the CRDs in {dir} were not established: {err}");
    Ok(())
}

/// Runs helm (the one installed next to kubectl) against the test cluster;
/// returns (success, stdout, stderr).
pub fn helm(args: &[&str]) -> Result<(bool, String, String)> {
    run_tool(kubectl_path().with_file_name("helm"), args)
}

fn run_tool(program: PathBuf, args: &[&str]) -> Result<(bool, String, String)> {
    let mut cmd = Command::new(&program);
    if let Some(k) = kubeconfig() {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd
        .args(args)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Where kubectl is: `KUBECTL`, the cached copy from the PyPI package, or PATH.
pub fn kubectl_path() -> PathBuf {
    if let Some(k) = std::env::var_os("KUBECTL") {
        return PathBuf::from(k);
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {}/scripts/lib.sh && echo \"$KUBECTL_BIN_DIR/kubectl\"",
            repo_root().display()
        ))
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let path = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            if path.exists() {
                path
            } else {
                PathBuf::from("kubectl")
            }
        }
        _ => PathBuf::from("kubectl"),
    }
}

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
        let client = client().await?;
        let suffix = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .subsec_nanos()
        );
        let name = format!("e2e-{prefix}-{suffix}");
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        // The namespace is usable once its default ServiceAccount exists.
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

    /// Server-side applies every document of `yaml` in this namespace.
    pub async fn apply(&self, yaml: &str) -> Result<Vec<DynamicObject>> {
        apply(&self.client, Some(&self.name), yaml).await
    }

    /// A token of ServiceAccount `account` bound to `audience`, valid ten
    /// minutes.
    pub async fn token(&self, account: &str, audience: &str) -> Result<String> {
        use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![audience.to_owned()],
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

/// GET `url` with a short timeout: (status, body).
pub async fn http_get(url: &str) -> Result<(u16, String)> {
    http_get_as(url, None).await
}

/// As [`http_get`], trying up to three times when no answer comes (a
/// connection refused or timed out, as while a fresh cluster's network
/// settles); an answer of any status is returned at once.
pub async fn http_get_settled(url: &str) -> Result<(u16, String)> {
    let mut last = None;
    for _ in 0..3 {
        match http_get(url).await {
            Ok(answer) => return Ok(answer),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
}

/// As [`http_get`], with `Authorization: Bearer <token>` when given.
pub async fn http_get_as(url: &str, token: Option<&str>) -> Result<(u16, String)> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let mut request = hyper::Request::get(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(http_body_util::Empty::new())?;
    let response = tokio::time::timeout(Duration::from_secs(3), client.request(request)).await??;
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// POSTs `body` as JSON on a fresh connection (`Connection: close`) with a
/// short timeout, and returns the status and parsed answer.
pub async fn post(url: &str, body: &serde_json::Value) -> Result<(u16, serde_json::Value)> {
    post_as(url, body, None).await
}

/// As [`post`], with `Authorization: Bearer <token>` when given.
pub async fn post_as(
    url: &str,
    body: &serde_json::Value,
    token: Option<&str>,
) -> Result<(u16, serde_json::Value)> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let mut request = hyper::Request::post(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .header("content-type", "application/json")
        .header("connection", "close")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_string(),
        )))?;
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request)).await??;
    let status = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    Ok((status, serde_json::from_slice(&bytes)?))
}

/// Whether two JSON arrays of numbers agree within a relative 1e-5.
pub fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_array(), b.as_array()) {
        (Some(a), Some(b)) => {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    let (x, y) = (
                        x.as_f64().unwrap_or(f64::NAN),
                        y.as_f64().unwrap_or(f64::NAN),
                    );
                    (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1.0)
                })
        }
        _ => false,
    }
}

/// The `file://` URI of a zoo model.
pub fn zoo(model: &str) -> String {
    format!(
        "file://{}",
        repo_root()
            .join(format!("tests/zoo/models/{model}.onnx"))
            .display()
    )
}

/// Model `card-fraud` from `uri` and ModelDeployment `scoring` of it on a
/// fixed `replicas`. The ModelDeployment comes last, so a test can append
/// fields to its spec (`  security: {...}`).
pub fn scoring_manifests(uri: &str, replicas: i32) -> String {
    format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: card-fraud}}
spec:
  source: {{uri: "{uri}"}}
---
apiVersion: aimass.io/v1alpha1
kind: ModelDeployment
metadata: {{name: scoring}}
spec:
  model: {{name: card-fraud}}
  replicas: {{min: 1, max: 4, count: {replicas}}}
  autoscaling: {{enabled: false}}
  server: {{drainTimeoutSeconds: 5}}
"#
    )
}

/// Waits (two minutes at most) until ModelDeployment `scoring` is Ready
/// serving `version` on `replicas`.
pub async fn serving(
    ns: &TestNamespace,
    version: i64,
    replicas: i32,
) -> Result<aimass_crds::v1alpha1::ModelDeployment> {
    wait_for(
        &ns.api::<aimass_crds::v1alpha1::ModelDeployment>(),
        "scoring",
        Duration::from_secs(120),
        move |md: Option<&aimass_crds::v1alpha1::ModelDeployment>| {
            md.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                s.serving_version == Some(version)
                    && s.ready_replicas == replicas
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        },
    )
    .await
}

/// Role `score-card-fraud` (`create` on `models/infer` named `card-fraud`)
/// bound, by RoleBinding `binding`, to `subject` (a YAML flow mapping such
/// as `{apiGroup: rbac.authorization.k8s.io, kind: User, name: "x"}`).
pub fn may_score_card_fraud(binding: &str, subject: &str) -> String {
    format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: score-card-fraud}}
rules:
  - apiGroups: [aimass.io]
    resources: [models/infer]
    resourceNames: [card-fraud]
    verbs: [create]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {binding}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: score-card-fraud}}
subjects: [{subject}]
"#
    )
}

/// A zoo model's reference request (its first input) and expected outputs.
pub fn zoo_reference(model: &str) -> Result<(serde_json::Value, serde_json::Value)> {
    let path = repo_root().join(format!("tests/zoo/models/{model}.json"));
    let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let input = &reference["inputs"][0];
    let request = serde_json::json!({"inputs": [{"name": input["name"], "shape": input["shape"], "datatype": input["datatype"], "data": input["data"]}]});
    Ok((request, reference["outputs"].clone()))
}

/// Process ids on this machine whose environment has `HOSTNAME=<pod>` and
/// whose command line contains `program`: the processes of a pod run by the
/// local node agent.
pub fn pod_processes(pod: &str, program: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let needle = format!("HOSTNAME={pod}");
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(program)
                && environ.split(|b| *b == 0).any(|v| v == needle.as_bytes())
        })
        .collect()
}

/// Lists the pods of a namespace matching a label selector.
pub async fn pods(ns: &TestNamespace, selector: &str) -> Result<Vec<Pod>> {
    Ok(ns
        .api::<Pod>()
        .list(&ListParams::default().labels(selector))
        .await?
        .items)
}

/// The name and IP of a server pod of ModelDeployment `scoring`.
pub async fn scoring_pod(ns: &TestNamespace) -> Result<(String, String)> {
    let pod = pods(ns, "aimass.io/model-deployment=scoring")
        .await?
        .into_iter()
        .next()
        .context("no server pod of scoring")?;
    let name = pod.metadata.name.context("a server pod without a name")?;
    let ip = pod
        .status
        .and_then(|s| s.pod_ip)
        .with_context(|| format!("server pod {name} without an IP"))?;
    Ok((name, ip))
}

/// Follows a stream of log lines of a pod until `needle` appears.
pub async fn logs_contain(
    ns: &TestNamespace,
    pod: &str,
    needle: &str,
    timeout: Duration,
) -> Result<()> {
    let pods: Api<Pod> = ns.api();
    let params = LogParams {
        follow: true,
        ..Default::default()
    };
    let stream = pods.log_stream(pod, &params).await?;
    let mut lines = futures::io::AsyncBufReadExt::lines(stream);
    tokio::time::timeout(timeout, async {
        while let Some(line) = lines.next().await {
            if line?.contains(needle) {
                return Ok(());
            }
        }
        bail!("log stream of {pod} ended without {needle:?}")
    })
    .await
    .with_context(|| format!("waiting for {needle:?} in the logs of {pod}"))?
}

/// A condition: the pod reached `Succeeded` or `Failed`.
pub fn pod_finished(pod: Option<&Pod>) -> bool {
    matches!(
        pod.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// What the manual's Argo CD health check says of a live object.
pub fn argocd_health(ns: &str, object: &str, check: &str) -> Result<String> {
    let (ok, json, err) = kubectl(&["-n", ns, "get", object, "-o", "json"])?;
    ensure!(ok, "{err}");
    let mut child = std::process::Command::new(repo_root().join("scripts/argocd-health.sh"))
        .arg(repo_root().join("docs/argocd").join(check))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(&mut child.stdin.take().context("stdin")?, json.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}
