//! The inference server's security layer against the real API server: its
//! TokenReviews and SubjectAccessReviews go through the local cluster's RBAC.
//! Two servers (models `a` and `b`) run as pods under a ServiceAccount bound
//! to `system:auth-delegator`; callers are ServiceAccounts with tokens bound
//! to the audience `aimass`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aimass_e2e::{
    TestNamespace, http_get, http_get_as, kubectl, pods, post_as, repo_root, run, wait,
};
use anyhow::{Context, Result, ensure};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::{Value, json};

fn server(model: &str, models: &str, audit: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: model-{model}, labels: {{app: secured}}}}
spec:
  serviceAccountName: scoring
  containers:
  - name: server
    image: aimass/inference-server:dev
    args: [--model-uri, "{models}/gbdt_classifier.onnx", --model-name, "{model}", --auth, kubernetes, --admin-port, "8081", --audit-log, "/audit/calls-{model}.jsonl", --audit-key-file, /audit-key/key, --audit-payload, '[{{"input": "features", "policy": "Bucket", "buckets": [0.0]}}]']
    env:
    - name: POD_NAMESPACE
      valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
    ports: [{{containerPort: 8080, name: http}}, {{containerPort: 8081, name: admin}}]
    readinessProbe: {{httpGet: {{path: /v2/health/ready, port: admin}}, periodSeconds: 1}}
    volumeMounts:
    - {{name: audit, mountPath: /audit}}
    - {{name: audit-key, mountPath: /audit-key, readOnly: true}}
  volumes:
  - {{name: audit, hostPath: {{path: "{audit}", type: DirectoryOrCreate}}}}
  - {{name: audit-key, secret: {{secretName: audit-key}}}}
"#
    )
}

#[tokio::test]
async fn rbac_decides_who_may_call_which_model_through_the_real_api_server() -> Result<()> {
    run("security", |ns: Arc<TestNamespace>| async move {
        let models = repo_root().join("tests/zoo/models");
        let models = models.to_string_lossy();
        let delegator = format!("{}-auth-delegator", ns.name);
        let audit = std::env::temp_dir().join("aimass-e2e").join(&ns.name);
        std::fs::create_dir_all(&audit)?;
        let audit = audit.to_string_lossy().into_owned();
        ns.apply(&format!(
            r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: scoring}}
---
apiVersion: v1
kind: Secret
metadata: {{name: audit-key}}
stringData: {{key: "an audit chain key of at least 32 bytes"}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {delegator}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}}
subjects: [{{kind: ServiceAccount, name: scoring, namespace: {ns}}}]
---
{a}
---
{b}
"#,
            ns = ns.name,
            a = server("a", &models, &audit),
            b = server("b", &models, &audit),
        ))
        .await?;
        // alice may run model a (and only a); bob may read a's metadata.
        ns.grant(
            "alice",
            "invoke-a",
            "[{apiGroups: [aimass.io], resources: [models/infer], resourceNames: [a], verbs: [create]}]",
        )
        .await?;
        ns.grant(
            "bob",
            "view-a",
            "[{apiGroups: [aimass.io], resources: [models], resourceNames: [a], verbs: [get]}]",
        )
        .await?;
        let result = scenario(&ns, std::path::Path::new(&audit)).await;
        let _ = kubectl(&[
            "delete",
            "clusterrolebinding",
            &delegator,
            "--ignore-not-found",
        ]);
        result
    })
    .await
}

async fn scenario(ns: &TestNamespace, audit: &std::path::Path) -> Result<()> {
    let mut ips = std::collections::HashMap::new();
    wait(
        Duration::from_secs(90),
        "both secured servers Ready",
        || async {
            let ready = pods(ns, "app=secured").await?.into_iter().filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            });
            Ok(ready.count() == 2)
        },
    )
    .await?;
    for pod in pods(ns, "app=secured").await? {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ip = pod.status.and_then(|s| s.pod_ip).context("no pod IP")?;
        ips.insert(name.trim_start_matches("model-").to_owned(), ip);
    }
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(
        repo_root().join("tests/zoo/models/gbdt_classifier.json"),
    )?)?;
    let input = &reference["inputs"][0];
    let request = json!({"inputs": [{"name": input["name"], "shape": input["shape"], "datatype": input["datatype"], "data": input["data"]}]});
    let infer = |model: &str| format!("http://{}:8080/v2/models/{model}/infer", ips[model]);

    // Without credentials every route is refused; probes and metrics are
    // on the admin port, open.
    for path in [
        "/v2",
        "/v2/health/ready",
        "/metrics",
        "/v2/models/a",
        "/v2/models/a/ready",
        "/nowhere",
    ] {
        let (status, _) = http_get(&format!("http://{}:8080{path}", ips["a"])).await?;
        ensure!(status == 401, "GET {path} without credentials: {status}");
    }
    ensure!(post_as(&infer("a"), &request, None).await?.0 == 401);
    ensure!(
        http_get(&format!("http://{}:8081/v2/health/ready", ips["a"]))
            .await?
            .0
            == 200
    );
    ensure!(
        http_get(&format!("http://{}:8081/metrics", ips["a"]))
            .await?
            .1
            .contains("aimass_audit_records_total")
    );

    let alice = ns.token("alice", "aimass").await?;
    let bob = ns.token("bob", "aimass").await?;
    let alice_elsewhere = ns.token("alice", "https://kubernetes.default.svc").await?;
    let (status, answer) = post_as(&infer("a"), &request, Some(&alice)).await?;
    ensure!(status == 200, "alice on a: {status} {answer}");
    let (status, answer) = post_as(&infer("b"), &request, Some(&alice)).await?;
    ensure!(status == 403, "alice on b: {status} {answer}");
    ensure!(
        post_as(&infer("a"), &request, Some(&alice_elsewhere))
            .await?
            .0
            == 401,
        "a token for another audience must not authenticate"
    );
    // get models (bob) reads the metadata but does not grant inference.
    ensure!(
        http_get_as(&format!("http://{}:8080/v2/models/a", ips["a"]), Some(&bob))
            .await?
            .0
            == 200
    );
    ensure!(post_as(&infer("a"), &request, Some(&bob)).await?.0 == 403);

    // Revoking alice's binding stops her within the allow cache's 10 s + 1 s.
    ensure!(post_as(&infer("a"), &request, Some(&alice)).await?.0 == 200);
    let revoked = Instant::now();
    Api::<RoleBinding>::namespaced(ns.client.clone(), &ns.name)
        .delete("invoke-a", &DeleteParams::default())
        .await?;
    wait(
        Duration::from_secs(20),
        "the revocation to bite",
        || async { Ok(post_as(&infer("a"), &request, Some(&alice)).await?.0 == 403) },
    )
    .await?;
    let took = revoked.elapsed();
    ensure!(
        took <= Duration::from_secs(11),
        "the revoked binding worked for {took:?}"
    );

    // Every call above is in model a's trail, which verifies; no token is
    // in it.
    let trail = audit.join("calls-a.jsonl");
    let text = std::fs::read_to_string(&trail)?;
    for secret in [&alice, &bob, &alice_elsewhere] {
        ensure!(
            !text.contains(secret.as_str()),
            "a token is in the audit trail"
        );
    }
    let users: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| {
            format!(
                "{} {}",
                r["actor"]["user"].as_str().unwrap_or(""),
                r["status"]
            )
        })
        .collect();
    ensure!(
        users.contains(&format!("system:serviceaccount:{}:alice 200", ns.name)),
        "{users:?}"
    );
    ensure!(
        users.contains(&format!("system:serviceaccount:{}:bob 403", ns.name)),
        "{users:?}"
    );
    // The payload policy keeps the features as buckets, never as sent.
    let served: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| {
            r["status"] == 200
                && r["operation"]
                    .as_str()
                    .is_some_and(|o| o.ends_with("/infer"))
        })
        .collect();
    ensure!(!served.is_empty(), "no served inference in the trail");
    for record in &served {
        let values = record["inputs"][0]["values"]
            .as_array()
            .context("a served call's features are bucketed in its record")?;
        ensure!(values.iter().all(|v| v == "<0" || v == ">=0"), "{values:?}");
    }
    let verify =
        std::process::Command::new(aimass_e2e::operator::target_dir().join("debug/aimass-audit"))
            .args(["verify", "--log"])
            .arg(&trail)
            .args(["--key-file", "/dev/stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
    let mut verify = verify;
    std::io::Write::write_all(
        &mut verify.stdin.take().context("stdin")?,
        b"an audit chain key of at least 32 bytes",
    )?;
    let out = verify.wait_with_output()?;
    ensure!(
        out.status.success(),
        "aimass-audit verify: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}
