//! What the serving tests share: zoo models and their references, the
//! manifests of a scored Model, and its pods.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};

use crate::*;

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

/// Waits (two and a half minutes at most) until ModelDeployment `name` has
/// condition `type_` True for `reason`.
pub async fn condition_holds(
    ns: &TestNamespace,
    name: &str,
    type_: &'static str,
    reason: &'static str,
) -> Result<aimass_crds::v1alpha1::ModelDeployment> {
    wait_for(
        &ns.api::<aimass_crds::v1alpha1::ModelDeployment>(),
        name,
        Duration::from_secs(150),
        move |md: Option<&aimass_crds::v1alpha1::ModelDeployment>| {
            md.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == type_ && c.status == "True" && c.reason == reason)
            })
        },
    )
    .await
}

/// The inference endpoint of ModelDeployment `scoring`'s Service (model
/// `card-fraud`), as [`endpoint`] finds it.
pub async fn scoring_endpoint(
    ns: &TestNamespace,
    request: &serde_json::Value,
) -> Result<crate::load::Endpoint> {
    endpoint(ns, "scoring", "card-fraud", request).await
}

/// The endpoint of `model` behind ModelDeployment `deployment`'s Service,
/// once kube-proxy routes it: 20 answers in a row (a ClusterIP freed by an
/// earlier test can still point at old pods for a moment), called as a
/// ServiceAccount allowed to invoke models.
pub async fn endpoint(
    ns: &TestNamespace,
    deployment: &str,
    model: &str,
    request: &serde_json::Value,
) -> Result<crate::load::Endpoint> {
    let svc = ns
        .api::<k8s_openapi::api::core::v1::Service>()
        .get(deployment)
        .await?;
    let ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no ClusterIP")?;
    let endpoint = crate::load::Endpoint {
        url: format!("http://{ip}/v2/models/{model}/infer"),
        token: ns.invoker_token().await?,
    };
    endpoint.answers_steadily(request, 20).await?;
    Ok(endpoint)
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

/// Runs `script` of tests/e2e/scripts with the Python of the virtualenv
/// that `venv` (a script and its arguments) prints.
pub fn python_script(venv: &[&str], script: &str, args: &[&str]) -> Result<serde_json::Value> {
    let root = repo_root();
    let made = std::process::Command::new("bash")
        .current_dir(&root)
        .args(venv)
        .output()?;
    ensure!(
        made.status.success(),
        "the Python environment of {script}: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let python = PathBuf::from(String::from_utf8(made.stdout)?.trim()).join("bin/python");
    let out = std::process::Command::new(python)
        .arg(root.join("tests/e2e/scripts").join(script))
        .args(args)
        .output()?;
    ensure!(
        out.status.success(),
        "{script} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("{script}'s output"))
}
