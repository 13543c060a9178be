//! Serving a Model through a ModelDeployment on the real API server: replicas
//! spread over nodes and answer with the reference prediction, the scale
//! subresource works, a moved champion rolls out under load without a failed
//! request, and deleting the ModelDeployment removes everything it made.

use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::{Model, ModelDeployment};
use aimass_e2e::grpc::grpc_infer;
use aimass_e2e::load::{Endpoint, Load};
use aimass_e2e::operator::{KEY_NAMESPACE, run_with_operator, target_dir};
use aimass_e2e::{
    TestNamespace, close, http_get, kubectl, pod_processes, pods, post_as, scoring_endpoint,
    scoring_manifests, scoring_pod, serving, wait, wait_for, zoo, zoo_reference,
};
use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Waits until the ModelDeployment reports `Degraded` for `reason`.
async fn degraded(ns: &TestNamespace, reason: &'static str) -> Result<ModelDeployment> {
    aimass_e2e::condition_holds(ns, "scoring", "Degraded", reason).await
}

/// The OIP answer of every serving pod, by pod IP.
async fn answers(
    ns: &TestNamespace,
    request: &Value,
) -> Result<Vec<(String, Option<String>, Value)>> {
    let token = ns.invoker_token().await?;
    let mut out = Vec::new();
    for pod in pods(ns, "aimass.io/model-deployment=scoring").await? {
        let status = pod.status.clone().unwrap_or_default();
        if !status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
        {
            continue;
        }
        let ip = status.pod_ip.context("pod without IP")?;
        let (code, answer) = post_as(
            &format!("http://{ip}:8080/v2/models/card-fraud/infer"),
            request,
            Some(&token),
        )
        .await?;
        ensure!(code == 200, "{ip}: {code} {answer}");
        out.push((ip, pod.spec.and_then(|s| s.node_name), answer));
    }
    Ok(out)
}

fn matches(answer: &Value, expected: &Value) -> bool {
    let probabilities = |v| aimass_e2e::output_data(v, "probabilities");
    probabilities(&answer["outputs"])
        .zip(probabilities(expected))
        .is_some_and(|(a, b)| close(a, b))
}

#[tokio::test]
async fn replicas_spread_answer_scale_and_are_removed_with_the_model_deployment() -> Result<()> {
    run_with_operator("serve", |ns: Arc<TestNamespace>| async move {
        ns.apply(&scoring_manifests(&zoo("gbdt_classifier"), 2))
            .await?;

        let md = serving(&ns, 1, 2).await?;
        let status = md.status.context("status")?;
        ensure!(
            status.resolved_alias.as_deref() == Some("champion"),
            "{status:?}"
        );
        ensure!(
            status.url.as_deref()
                == Some(&*format!(
                    "http://scoring.{}.svc:80/v2/models/card-fraud",
                    ns.name
                )),
            "{:?}",
            status.url
        );
        let (request, expected) = zoo_reference("gbdt_classifier")?;
        let replicas = answers(&ns, &request).await?;
        ensure!(replicas.len() == 2, "two ready replicas: {replicas:?}");
        ensure!(
            replicas[0].1 != replicas[1].1,
            "replicas share a node: {replicas:?}"
        );
        for (ip, _, answer) in &replicas {
            ensure!(matches(answer, &expected), "{ip} answered {answer}");
            ensure!(answer["model_version"] == "1", "{answer}");
        }
        enforced(&ns, &request, &replicas[0].0).await?;
        grpc_through_the_service(&ns, &request, &expected, status.grpc_address.as_deref()).await?;
        let (ok, out, err) = kubectl(&["get", "md", "-n", &ns.name])?;
        ensure!(ok, "{err}");
        let row = out
            .lines()
            .find(|l| l.starts_with("scoring"))
            .context("no row")?;
        let cells: Vec<&str> = row.split_whitespace().collect();
        ensure!(
            cells[1..5] == ["card-fraud", "1", "2", "2"],
            "kubectl get md: {out}"
        );

        // The scale subresource drives replicas when autoscaling is off.
        let (ok, _, err) = kubectl(&[
            "scale",
            "modeldeployment/scoring",
            "--replicas=3",
            "-n",
            &ns.name,
        ])?;
        ensure!(ok, "{err}");
        serving(&ns, 1, 3).await?;
        let deployment = ns.api::<Deployment>().get("scoring").await?;
        ensure!(
            deployment.spec.and_then(|s| s.replicas) == Some(3),
            "the Deployment follows the scale"
        );

        // Deleting the ModelDeployment removes the Deployment, the
        // Service and every server process.
        let pod_names: Vec<String> = pods(&ns, "aimass.io/model-deployment=scoring")
            .await?
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        ns.api::<ModelDeployment>()
            .delete("scoring", &DeleteParams::background())
            .await?;
        wait(
            TIMEOUT,
            "the Deployment, Service and processes to go",
            || {
                let (ns, pod_names) = (ns.clone(), pod_names.clone());
                async move {
                    Ok(ns.api::<Deployment>().get_opt("scoring").await?.is_none()
                        && ns.api::<Service>().get_opt("scoring").await?.is_none()
                        && pod_names
                            .iter()
                            .all(|p| pod_processes(p, "aimass-inference-server").is_empty()))
                }
            },
        )
        .await?;
        // The servers' ServiceAccount goes with it (owned), and the
        // operator removes their ClusterRoleBinding (it cannot be owned).
        let binding = format!("aimass-inference:{}:scoring", ns.name);
        wait(TIMEOUT, "the servers' account and binding to go", || {
            let (ns, binding) = (ns.clone(), binding.clone());
            async move {
                Ok(ns
                    .api::<ServiceAccount>()
                    .get_opt("scoring-server")
                    .await?
                    .is_none()
                    && Api::<ClusterRoleBinding>::all(ns.client.clone())
                        .get_opt(&binding)
                        .await?
                        .is_none())
            }
        })
        .await?;
        Ok(())
    })
    .await
}

/// Fails unless the `Secured` condition has `status` for `reason`.
fn ensure_secured(md: &ModelDeployment, status: &str, reason: &str) -> Result<()> {
    let secured = md
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == "Secured")
        .context("no Secured condition")?;
    ensure!(
        secured.status == status && secured.reason == reason,
        "{secured:?}"
    );
    Ok(())
}

/// The servers of an Enforced ModelDeployment (the default): its condition
/// says so, a call without a token or by a ServiceAccount without the
/// permission is refused, every call is counted in the audit metrics, and
/// the servers run as their own ServiceAccount allowed to review callers.
async fn enforced(ns: &TestNamespace, request: &Value, ip: &str) -> Result<()> {
    let md = ns.api::<ModelDeployment>().get("scoring").await?;
    ensure_secured(&md, "True", "Enforced")?;
    let url = format!("http://{ip}:8080/v2/models/card-fraud/infer");
    let (code, answer) = post_as(&url, request, None).await?;
    ensure!(code == 401, "without a token: {code} {answer}");
    ns.apply("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: stranger}\n")
        .await?;
    let stranger = ns.token("stranger", "aimass").await?;
    let (code, answer) = post_as(&url, request, Some(&stranger)).await?;
    ensure!(code == 403, "without models/infer: {code} {answer}");
    let (code, metrics) = http_get(&format!("http://{ip}:8081/metrics")).await?;
    ensure!(code == 200, "admin port: {code}");
    let audited: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("aimass_audit_records_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    ensure!(
        audited >= 3.0,
        "the three calls above are audited: {audited}"
    );
    let pod = pods(ns, "aimass.io/model-deployment=scoring")
        .await?
        .into_iter()
        .next()
        .context("no pod")?;
    ensure!(
        pod.spec.and_then(|s| s.service_account_name).as_deref() == Some("scoring-server"),
        "the servers run as their own ServiceAccount"
    );
    let binding = Api::<ClusterRoleBinding>::all(ns.client.clone())
        .get(&format!("aimass-inference:{}:scoring", ns.name))
        .await?;
    ensure!(
        binding.role_ref.name == "system:auth-delegator",
        "{binding:?}"
    );
    // The audit keys live in the operator's namespace, not the tenant's.
    ensure!(
        Api::<Secret>::namespaced(ns.client.clone(), KEY_NAMESPACE)
            .get_opt(&format!("audit-key.{}.scoring", ns.name))
            .await?
            .is_some(),
        "the audit key Secret"
    );
    Ok(())
}

/// The gRPC service through the ModelDeployment's Service, whose address
/// the status gives: Triton's gRPC client gets the reference answer with
/// the invoker's token, and UNAUTHENTICATED without one.
async fn grpc_through_the_service(
    ns: &TestNamespace,
    request: &Value,
    expected: &Value,
    address: Option<&str>,
) -> Result<()> {
    ensure!(
        address == Some(&*format!("scoring.{}.svc:8001", ns.name)),
        "status.grpcAddress: {address:?}"
    );
    // The host resolves no cluster names: the same Service by its ClusterIP.
    let svc = ns.api::<Service>().get("scoring").await?;
    let ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no ClusterIP")?;
    let address = format!("{ip}:8001");
    let token = ns.invoker_token().await?;
    // Until kube-proxy routes the new Service, the port refuses.
    wait(Duration::from_secs(30), "the Service's gRPC port", || {
        let (address, request, token) = (address.clone(), request.clone(), token.clone());
        async move {
            let answer = grpc_infer(&address, "card-fraud", &request, Some(&token)).await?;
            Ok(answer["status"] != "UNAVAILABLE")
        }
    })
    .await?;
    let answer = grpc_infer(&address, "card-fraud", request, Some(&token)).await?;
    ensure!(answer["status"] == "OK", "with a token: {answer}");
    let want = expected
        .as_array()
        .and_then(|a| a.iter().find(|o| o["name"] == "probabilities"))
        .context("reference probabilities")?;
    ensure!(
        close(&answer["outputs"]["probabilities"], &want["data"]),
        "gRPC answered {answer}, the reference is {want}"
    );
    let refused = grpc_infer(&address, "card-fraud", request, None).await?;
    ensure!(
        refused["status"] == "UNAUTHENTICATED",
        "without a token: {refused}"
    );
    Ok(())
}

/// Touches the ModelDeployment so the operator reconciles it now.
fn poke(ns: &TestNamespace, value: &str) -> Result<()> {
    let (ok, _, err) = kubectl(&[
        "annotate",
        "--overwrite",
        "-n",
        &ns.name,
        "modeldeployment/scoring",
        &format!("e2e.aimass.io/poke={value}"),
    ])?;
    ensure!(ok, "{err}");
    Ok(())
}

#[tokio::test]
async fn the_operator_finds_an_audit_trail_that_lost_records() -> Result<()> {
    run_with_operator("audit", |ns: Arc<TestNamespace>| async move {
        // Two replicas: the other one's checkpoint is written while the
        // first is not Ready, so a dropped baseline would show.
        ns.apply(&scoring_manifests(&zoo("gbdt_classifier"), 2))
            .await?;
        serving(&ns, 1, 2).await?;
        let (request, _) = zoo_reference("gbdt_classifier")?;
        let replicas = answers(&ns, &request).await?;
        let (ip, _, _) = &replicas[0];
        let url = format!("http://{ip}:8080/v2/models/card-fraud/infer");
        let token = ns.invoker_token().await?;
        for _ in 0..3 {
            ensure!(post_as(&url, &request, Some(&token)).await?.0 == 200);
        }
        // The operator keeps the replica's checkpoint: four records.
        poke(&ns, "1")?;
        let checkpointed = |at_least: i64| {
            move |md: Option<&ModelDeployment>| {
                md.and_then(|m| m.status.as_ref())
                    .is_some_and(|s| s.audit_checkpoints.iter().any(|c| c.sequence >= at_least))
            }
        };
        let md = wait_for(
            &ns.api::<ModelDeployment>(),
            "scoring",
            TIMEOUT,
            checkpointed(4),
        )
        .await?;
        // The checkpoint is sealed by the server: anyone can check the seal
        // with the public key in status, and a changed one does not verify.
        let status = md.status.context("no status")?;
        let verifying_key = status
            .audit_verifying_key
            .context("no status.auditVerifyingKey")?;
        let kept = serde_json::to_value(&status.audit_checkpoints[0])?;
        ensure!(kept["signature"].is_string(), "unsealed: {kept}");
        let verify_seal = |checkpoint: &Value| -> Result<bool> {
            let ran = aimass_audit()
                .args([
                    "verify-seal",
                    "--namespace",
                    &ns.name,
                    "--model",
                    "card-fraud",
                ])
                .args(["--verifying-key", &verifying_key, "--checkpoint"])
                .arg(checkpoint.to_string())
                .output()?;
            Ok(ran.status.success())
        };
        ensure!(verify_seal(&kept)?, "the kept seal does not verify: {kept}");
        let mut shortened = kept.clone();
        shortened["sequence"] = json!(1);
        ensure!(!verify_seal(&shortened)?, "a changed checkpoint verified");

        // The replica stops answering (frozen) and the operator sees it not
        // Ready: its kept checkpoint must stay the baseline.
        let pod = pods(&ns, "aimass.io/model-deployment=scoring")
            .await?
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()) == Some(ip))
            .and_then(|p| p.metadata.name)
            .context("no pod at the called address")?;
        let pid = *pod_processes(&pod, "aimass-inference-server")
            .first()
            .context("no server process")?;
        let signal = |name: &str| -> Result<()> {
            let sent = std::process::Command::new("kill")
                .args([name, &pid.to_string()])
                .status()?;
            ensure!(sent.success(), "kill {name} {pid}");
            Ok(())
        };
        signal("-STOP")?;
        poke(&ns, "frozen")?;
        wait_for(
            &ns.api::<ModelDeployment>(),
            "scoring",
            TIMEOUT,
            |md: Option<&ModelDeployment>| {
                md.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                    s.ready_replicas == 1 && s.audit_checkpoints.iter().any(|c| c.pod == pod)
                })
            },
        )
        .await
        .context("the operator saw the frozen replica not Ready, keeping its checkpoint")?;
        // Meanwhile someone cuts the trail on the pod back to its first
        // record; the server restarts on it and carries on from there.
        let trail = format!("/proc/{pid}/root/var/log/aimass/calls.jsonl");
        let text = std::fs::read_to_string(&trail)?;
        ensure!(
            text.lines().count() >= 4,
            "the trail holds every call: {text}"
        );
        let first = text.lines().next().context("empty trail")?;
        std::fs::write(&trail, format!("{first}\n"))?;
        signal("-9")?;
        wait(TIMEOUT, "the server to restart on the cut trail", || {
            let (ns, pod) = (ns.clone(), pod.clone());
            async move {
                Ok(pod_processes(&pod, "aimass-inference-server")
                    .first()
                    .is_some_and(|p| *p != pid)
                    && serving_now(&ns).await?)
            }
        })
        .await?;

        // The operator notices: Secured=False, a Warning Event, and the
        // finding stays in status.
        poke(&ns, "2")?;
        let md = wait_for(
            &ns.api::<ModelDeployment>(),
            "scoring",
            TIMEOUT,
            |md: Option<&ModelDeployment>| {
                md.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Secured" && c.reason == "AuditTrailBroken")
                })
            },
        )
        .await?;
        ensure_secured(&md, "False", "AuditTrailBroken")?;
        let broken = md
            .status
            .iter()
            .flat_map(|s| s.audit_checkpoints.iter())
            .find_map(|c| c.broken.clone())
            .context("no broken checkpoint")?;
        ensure!(broken.contains("went back from record 4 to 1"), "{broken}");
        let events = ns.api::<Event>().list(&Default::default()).await?;
        ensure!(
            events
                .items
                .iter()
                .any(|e| e.reason.as_deref() == Some("AuditTrailBroken")),
            "no AuditTrailBroken Event"
        );
        Ok(())
    })
    .await
}

/// The `aimass-audit` the scripts build.
fn aimass_audit() -> std::process::Command {
    std::process::Command::new(target_dir().join("debug/aimass-audit"))
}

/// What `aimass-audit verify` says of the trail at `log` (a file or a
/// folder of archived parts) under `key_file`: the number of intact records.
fn verified_records(log: &std::path::Path, key_file: &std::path::Path) -> Result<u64> {
    let ran = aimass_audit()
        .args(["verify", "--log"])
        .arg(log)
        .arg("--key-file")
        .arg(key_file)
        .output()?;
    let out = String::from_utf8_lossy(&ran.stdout);
    ensure!(
        ran.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    out.strip_prefix("intact: ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("unexpected verify output: {out}"))
}

/// A one-replica ModelDeployment, serving, whose servers archive their
/// audit trail into a fresh folder with `settings` (the rest of
/// `auditArchive`).
struct Archived {
    /// Where its pod's parts land.
    parts: std::path::PathBuf,
    /// The trail's key, in a file for `aimass-audit`.
    key_file: std::path::PathBuf,
    /// The serving pod.
    pod: String,
    /// A caller allowed to invoke the model on that pod.
    endpoint: Endpoint,
    /// The zoo model's reference request.
    request: Value,
}

async fn archived(ns: &TestNamespace, settings: &str) -> Result<Archived> {
    let dir = std::env::temp_dir().join("aimass-e2e").join(&ns.name);
    let archive = dir.join("archive");
    std::fs::create_dir_all(&archive)?;
    ns.apply(&format!(
        "{}  security: {{auditArchive: {{prefix: \"file://{}\", {settings}}}}}\n",
        scoring_manifests(&zoo("gbdt_classifier"), 1),
        archive.display()
    ))
    .await?;
    serving(ns, 1, 1).await?;
    let (request, _) = zoo_reference("gbdt_classifier")?;
    let replicas = answers(ns, &request).await?;
    let (ip, _, _) = &replicas[0];
    let endpoint = Endpoint {
        url: format!("http://{ip}:8080/v2/models/card-fraud/infer"),
        token: ns.invoker_token().await?,
    };
    let pod = pods(ns, "aimass.io/model-deployment=scoring")
        .await?
        .into_iter()
        .next()
        .and_then(|p| p.metadata.name)
        .context("no pod")?;
    // The auditor reads the key from the operator's namespace.
    let key = Api::<Secret>::namespaced(ns.client.clone(), KEY_NAMESPACE)
        .get(&format!("audit-key.{}.scoring", ns.name))
        .await?
        .data
        .and_then(|mut d| d.remove("key"))
        .context("no audit key")?;
    let key_file = dir.join("audit.key");
    std::fs::write(&key_file, key.0)?;
    Ok(Archived {
        parts: archive.join(&ns.name).join("card-fraud").join(&pod),
        key_file,
        pod,
        endpoint,
        request,
    })
}

#[tokio::test]
async fn an_archived_audit_trail_outlives_its_pod() -> Result<()> {
    run_with_operator("archive", |ns: Arc<TestNamespace>| async move {
        // Shipped hourly: what reaches the archive below is the shipment
        // the server makes when it stops.
        let Archived {
            parts,
            key_file,
            pod,
            endpoint,
            request,
        } = archived(&ns, "intervalSeconds: 3600").await?;
        for _ in 0..4 {
            ensure!(endpoint.call(&request).await?.0 == 200);
        }
        ns.api::<k8s_openapi::api::core::v1::Pod>()
            .delete(&pod, &DeleteParams::default())
            .await?;
        wait(TIMEOUT, "the pod to be gone", || {
            let (ns, pod) = (ns.clone(), pod.clone());
            async move {
                Ok(pods(&ns, "aimass.io/model-deployment=scoring")
                    .await?
                    .iter()
                    .all(|p| p.metadata.name.as_deref() != Some(pod.as_str())))
            }
        })
        .await?;
        // The pod is gone; every call it answered is in the archive.
        let archived = verified_records(&parts, &key_file)?;
        ensure!(archived >= 5, "{archived} records archived");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_archived_trail_is_rotated_and_pruned_on_the_pod() -> Result<()> {
    run_with_operator("rotate", |ns: Arc<TestNamespace>| async move {
        let Archived {
            parts,
            key_file,
            pod,
            endpoint,
            request,
        } = archived(&ns, "intervalSeconds: 1, segmentMebibytes: 1").await?;
        // About 3 MiB of records: three segments or more.
        const CALLS: usize = 4000;
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (endpoint, request) = (endpoint.clone(), request.clone());
                tokio::spawn(async move {
                    for _ in 0..CALLS / 8 {
                        let (code, answer) = endpoint.call(&request).await?;
                        ensure!(code == 200, "{code} {answer}");
                    }
                    Ok::<_, anyhow::Error>(())
                })
            })
            .collect();
        for call in calls {
            call.await??;
        }
        wait(TIMEOUT, "every call in the archive", || {
            let (parts, key_file) = (parts.clone(), key_file.clone());
            async move {
                Ok(parts.is_dir() && verified_records(&parts, &key_file)? > u64::try_from(CALLS)?)
            }
        })
        .await?;
        // On the pod: the current file and at most the newest segment.
        let pid = *pod_processes(&pod, "aimass-inference-server")
            .first()
            .context("no server process")?;
        let local: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/root/var/log/aimass"))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        let segments = local.iter().filter(|n| *n != "calls.jsonl").count();
        ensure!(
            segments <= 1,
            "archived segments were not removed from the pod: {local:?}"
        );
        let shipped = std::fs::read_dir(&parts)?.count();
        ensure!(shipped >= 2, "one part only: {shipped}");
        Ok(())
    })
    .await
}

/// Whether the ModelDeployment's one replica is Ready.
async fn serving_now(ns: &TestNamespace) -> Result<bool> {
    Ok(pods(ns, "aimass.io/model-deployment=scoring")
        .await?
        .iter()
        .any(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        }))
}

#[tokio::test]
async fn an_insecure_deployment_says_so_and_answers_anyone() -> Result<()> {
    run_with_operator("insecure", |ns: Arc<TestNamespace>| async move {
        let manifests =
            scoring_manifests(&zoo("gbdt_classifier"), 1) + "  security: {mode: Insecure}\n";
        ns.apply(&manifests).await?;
        let md = serving(&ns, 1, 1).await?;
        ensure_secured(&md, "False", "Insecure")?;
        let (request, _) = zoo_reference("gbdt_classifier")?;
        let (_, ip) = scoring_pod(&ns).await?;
        let url = format!("http://{ip}:8080/v2/models/card-fraud/infer");
        let (code, answer) = post_as(&url, &request, None).await?;
        ensure!(
            code == 200,
            "an Insecure server answers anyone: {code} {answer}"
        );
        wait(TIMEOUT, "a Warning Event about it", || {
            let ns = ns.clone();
            async move {
                Ok(ns
                    .api::<Event>()
                    .list(&Default::default())
                    .await?
                    .items
                    .iter()
                    .any(|e| {
                        e.reason.as_deref() == Some("InsecureServing")
                            && e.type_.as_deref() == Some("Warning")
                    }))
            }
        })
        .await?;
        ensure!(
            Api::<ClusterRoleBinding>::all(ns.client.clone())
                .get_opt(&format!("aimass-inference:{}:scoring", ns.name))
                .await?
                .is_none(),
            "an Insecure server is not allowed to review anyone"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_moved_champion_rolls_out_under_load_without_a_failed_request() -> Result<()> {
    run_with_operator("rollout", |ns: Arc<TestNamespace>| async move {
        ns.apply(&scoring_manifests(&zoo("gbdt_classifier"), 2))
            .await?;

        serving(&ns, 1, 2).await?;
        let (request, _) = zoo_reference("gbdt_classifier")?;
        let endpoint = scoring_endpoint(&ns, &request).await?;

        let load = Load::start(&endpoint, &request, 4);

        // A new artifact with the same signature: version 2 becomes champion.
        let patch = json!({"spec": {"source": {"uri": zoo("random_forest_classifier")}}});
        ns.api::<Model>()
            .patch("card-fraud", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let rolled = serving(&ns, 2, 2).await;
        // Let the old replicas finish stopping while the load goes on.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let finished = load.finish_without_failures(50).await;
        rolled?;
        let sent = finished?;

        let (_, expected) = zoo_reference("random_forest_classifier")?;
        let replicas = answers(&ns, &request).await?;
        ensure!(replicas.len() == 2, "{replicas:?}");
        for (ip, _, answer) in &replicas {
            ensure!(
                answer["model_version"] == "2" && matches(answer, &expected),
                "{ip} answered {answer}"
            );
        }
        eprintln!("rollout under load: {sent} requests, none failed");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn an_unservable_version_never_replaces_the_serving_one() -> Result<()> {
    run_with_operator("unservable", |ns: Arc<TestNamespace>| async move {
        ns.apply(&scoring_manifests(&zoo("gbdt_classifier"), 1))
            .await?;

        serving(&ns, 1, 1).await?;
        // A regressor takes the same inputs but drops the outputs
        // callers read: the rollout is refused.
        let patch = json!({"spec": {"source": {"uri": zoo("gbdt_regressor")}}});
        ns.api::<Model>()
            .patch("card-fraud", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let md = degraded(&ns, "SignatureChanged").await?;
        let status = md.status.context("status")?;
        ensure!(
            status.serving_version == Some(1),
            "version 1 keeps serving: {status:?}"
        );
        let deployment = ns.api::<Deployment>().get("scoring").await?;
        let labels = deployment
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.labels)
            .unwrap_or_default();
        ensure!(
            labels.get("aimass.io/model-version").map(String::as_str) == Some("1"),
            "{labels:?}"
        );

        // A Model that disappears leaves the serving replicas alone.
        ns.api::<Model>()
            .delete("card-fraud", &DeleteParams::default())
            .await?;
        degraded(&ns, "ReferenceNotFound").await?;
        let deployment = ns.api::<Deployment>().get("scoring").await?;
        ensure!(
            deployment.status.and_then(|s| s.ready_replicas) == Some(1),
            "the replica still serves"
        );
        Ok(())
    })
    .await
}

/// A Model and a canary ModelDeployment; `fault_every` makes the canary's
/// servers fail every Nth request (the rehearsal annotation).
fn canary_manifests(fault_every: Option<u32>) -> String {
    let annotation = fault_every.map_or_else(String::new, |n| {
        format!("\n  annotations: {{aimass.io/rehearse-canary-fault-every: \"{n}\"}}")
    });
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
metadata:
  name: scoring{annotation}
spec:
  model: {{name: card-fraud}}
  replicas: {{min: 1, max: 4, count: 2}}
  autoscaling: {{enabled: false}}
  server: {{drainTimeoutSeconds: 5}}
  rollout:
    strategy: Canary
    canary: {{steps: [50], analysisIntervalSeconds: 10, maxErrorRateIncrease: 0.05, maxLatencyRatio: 50}}
"#,
        uri = zoo("gbdt_classifier")
    )
}

async fn canary_outcome(fault_every: Option<u32>) -> Result<()> {
    let prefix = if fault_every.is_some() {
        "canarybad"
    } else {
        "canaryok"
    };
    run_with_operator(prefix, |ns: Arc<TestNamespace>| async move {
        ns.apply(&canary_manifests(fault_every)).await?;

        serving(&ns, 1, 2).await?;
        let (request, _) = zoo_reference("gbdt_classifier")?;
        let endpoint = scoring_endpoint(&ns, &request).await?;
        let load = Load::start(&endpoint, &request, 1);
        let patch = json!({"spec": {"source": {"uri": zoo("random_forest_classifier")}}});
        ns.api::<Model>()
            .patch("card-fraud", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let md = wait_for(
            &ns.api::<ModelDeployment>(),
            "scoring",
            TIMEOUT,
            |md: Option<&ModelDeployment>| {
                md.and_then(|m| m.status.as_ref()?.canary.as_ref())
                    .is_some_and(|c| c.phase != aimass_crds::v1alpha1::CanaryPhase::Analysing)
            },
        )
        .await;
        load.finish().await?;
        let status = md?.status.context("status")?;
        let canary = status.canary.clone().context("canary status")?;
        let events = ns
            .api::<k8s_openapi::api::core::v1::Event>()
            .list(&Default::default())
            .await?
            .items;
        let reasons: Vec<String> = events.iter().filter_map(|e| e.reason.clone()).collect();
        if fault_every.is_some() {
            ensure!(
                canary.phase == aimass_crds::v1alpha1::CanaryPhase::RolledBack,
                "{canary:?}"
            );
            ensure!(
                canary
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("error rate")),
                "{canary:?}"
            );
            ensure!(
                reasons.iter().any(|r| r == "CanaryRolledBack"),
                "{reasons:?}"
            );
            let md = degraded(&ns, "CanaryRolledBack").await?;
            ensure!(
                md.status.and_then(|s| s.serving_version) == Some(1),
                "version 1 still serves"
            );
            wait(TIMEOUT, "the canary Deployment to go", || async {
                Ok(ns
                    .api::<Deployment>()
                    .get_opt("scoring-canary")
                    .await?
                    .is_none())
            })
            .await?;
        } else {
            ensure!(
                canary.phase == aimass_crds::v1alpha1::CanaryPhase::Promoted,
                "{canary:?}"
            );
            ensure!(reasons.iter().any(|r| r == "CanaryPromoted"), "{reasons:?}");
            serving(&ns, 2, 2).await?;
            wait(TIMEOUT, "the canary Deployment to go", || async {
                Ok(ns
                    .api::<Deployment>()
                    .get_opt("scoring-canary")
                    .await?
                    .is_none())
            })
            .await?;
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_failing_canary_is_rolled_back_with_its_reason() -> Result<()> {
    canary_outcome(Some(2)).await
}

#[tokio::test]
async fn a_healthy_canary_is_promoted() -> Result<()> {
    canary_outcome(None).await
}

#[tokio::test]
async fn the_autoscaler_follows_a_load_step_and_returns_to_min() -> Result<()> {
    run_with_operator("autoscale", |ns: Arc<TestNamespace>| async move {
        // Every request takes 20 ms, so each client keeps about one request
        // in flight; 1.4 in flight per replica is the target.
        ns.apply(&format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: card-fraud}}
spec:
  source: {{uri: "{uri}"}}
---
apiVersion: aimass.io/v1alpha1
kind: ModelDeployment
metadata:
  name: scoring
  annotations: {{aimass.io/rehearse-latency-millis: "20"}}
spec:
  model: {{name: card-fraud}}
  replicas: {{min: 1, max: 4}}
  autoscaling: {{metric: Concurrency, target: 2, targetUtilization: 0.7, stableWindowSeconds: 12, panicWindowSeconds: 4, scaleDownDelaySeconds: 10}}
  server: {{drainTimeoutSeconds: 5}}
"#,
            uri = zoo("gbdt_classifier")
        ))
        .await?;

            serving(&ns, 1, 1).await?;
            let (request, _) = zoo_reference("gbdt_classifier")?;
            let endpoint = scoring_endpoint(&ns, &request).await?;
            let mds = ns.api::<ModelDeployment>();
            let replicas = |md: Option<&ModelDeployment>| md.and_then(|m| m.status.as_ref()).map_or(0, |s| s.replicas);

            // One client: one replica is enough.
            let mut load = Load::start(&endpoint, &request, 1);
            tokio::time::sleep(Duration::from_secs(8)).await;
            ensure!(replicas(mds.get("scoring").await.ok().as_ref()) == 1, "one client needs one replica");

            // Eight clients: the panic window reacts.
            load.add(&endpoint, &request, 7);
            let md = wait_for(&mds, "scoring", Duration::from_secs(10), move |md: Option<&ModelDeployment>| replicas(md) >= 3).await
                .context("replicas did not rise within 10 s of the step")?;
            let decision = md.status.and_then(|s| s.last_scale_decision).context("a recorded decision")?;
            ensure!(decision.to >= 3 && decision.panic && decision.reason.contains("panic"), "{decision:?}");
            serving(&ns, 1, 4).await?;

            // No load: back to the minimum after the delay, never below.
            load.finish().await?;
            let md = wait_for(&mds, "scoring", Duration::from_secs(90), move |md: Option<&ModelDeployment>| replicas(md) == 1).await?;
            let decision = md.status.as_ref().and_then(|s| s.last_scale_decision.clone()).context("a recorded decision")?;
            ensure!(decision.to == 1 && !decision.panic, "{decision:?}");
            // One writer per field: the decision is the monitor's alone; the
            // controller, which reads it, never writes it back.
            for field in ["lastScaleDecision", "migrationPaused"] {
                ensure!(status_owners(&md, field) == ["aimass-operator/monitor"], "{field} is written by {:?}", status_owners(&md, field));
            }
            for field in ["replicas", "readyReplicas", "conditions"] {
                ensure!(status_owners(&md, field) == ["aimass-operator/modeldeployment"], "{field} is written by {:?}", status_owners(&md, field));
            }
            let events = ns.api::<k8s_openapi::api::core::v1::Event>().list(&Default::default()).await?.items;
            ensure!(events.iter().filter(|e| e.reason.as_deref() == Some("Scaled")).count() >= 2, "scale Events");
            serving(&ns, 1, 1).await?;
            Ok(())
        })
    .await
}

/// The field managers that own `status.<field>` of `md`.
fn status_owners(md: &ModelDeployment, field: &str) -> Vec<String> {
    let key = format!("f:{field}");
    md.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:status"))
                .is_some_and(|s| s.get(&key).is_some())
        })
        .filter_map(|m| m.manager.clone())
        .collect()
}

/// Three replicas under steady load whose servers arm a 300 ms delay that
/// SIGUSR1 switches on; migration enabled (or only a dry run).
fn migration_manifests(dry_run: bool) -> String {
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
metadata:
  name: scoring
  annotations: {{aimass.io/rehearse-signal-latency-millis: "300"}}
spec:
  model: {{name: card-fraud}}
  replicas: {{min: 1, max: 5, count: 3}}
  autoscaling: {{enabled: false}}
  server: {{drainTimeoutSeconds: 5}}
  health: {{p99LatencyMillis: 150, intervalSeconds: 2, unhealthyAfter: 3, healthyAfter: 2}}
  migration: {{enabled: true, dryRun: {dry_run}, cooldownSeconds: 300, replacementTimeoutSeconds: 60}}
"#,
        uri = zoo("gbdt_classifier")
    )
}

/// How the migration test runs: for real, as a dry run, or paused by the
/// operator-wide switch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Real,
    DryRun,
    Paused,
}

async fn migrate(mode: Mode) -> Result<()> {
    let prefix = match mode {
        Mode::Real => "migrate",
        Mode::DryRun => "migratedry",
        Mode::Paused => "migratepause",
    };
    let dry_run = mode == Mode::DryRun;
    run_with_operator(prefix, |ns: Arc<TestNamespace>| async move {
        if mode == Mode::Paused {
            // The operator's namespace is the test's: the incident switch
            // (a ConfigMap that only has to exist) lives there.
            ns.apply(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: aimass-migrations-paused}\n",
            )
            .await?;
        }
        ns.apply(&migration_manifests(dry_run)).await?;

        serving(&ns, 1, 3).await?;
        let (request, _) = zoo_reference("gbdt_classifier")?;
        let endpoint = scoring_endpoint(&ns, &request).await?;
        // Steady load, every failure counted.
        let load = Load::start(&endpoint, &request, 4);
        // Make one replica sick.
        let before = pods(&ns, "aimass.io/model-deployment=scoring").await?;
        let sick = before.first().context("no pod")?;
        let sick_name = sick.metadata.name.clone().context("pod name")?;
        let sick_node = sick.spec.as_ref().and_then(|s| s.node_name.clone());
        let pids = pod_processes(&sick_name, "aimass-inference-server");
        ensure!(!pids.is_empty(), "no server process for {sick_name}");
        for pid in &pids {
            std::process::Command::new("kill")
                .args(["-USR1", &pid.to_string()])
                .status()?;
        }
        let outcome = match mode {
            Mode::Real => "Completed",
            Mode::DryRun => "DryRun",
            Mode::Paused => "Paused",
        };
        let md = wait_for(
            &ns.api::<ModelDeployment>(),
            "scoring",
            Duration::from_secs(120),
            move |md: Option<&ModelDeployment>| {
                md.and_then(|m| m.status.as_ref())
                    .and_then(|s| s.migrations.last())
                    .is_some_and(|r| format!("{:?}", r.outcome) == outcome)
            },
        )
        .await;
        let md = match md {
            Ok(md) => md,
            Err(e) => {
                load.finish().await?;
                return Err(e);
            }
        };
        let record = md
            .status
            .clone()
            .and_then(|s| s.migrations.last().cloned())
            .context("record")?;
        ensure!(
            record.pod == sick_name && record.node == sick_node,
            "{record:?}"
        );
        ensure!(
            record.metric.starts_with("p99Latency") && record.value > record.threshold,
            "{record:?}"
        );
        if mode == Mode::Paused {
            ensure!(
                md.status.as_ref().is_some_and(|s| s.migration_paused),
                "the pause shows in status"
            );
        }
        if mode != Mode::Real {
            tokio::time::sleep(Duration::from_secs(6)).await;
            let now = pods(&ns, "aimass.io/model-deployment=scoring").await?;
            ensure!(
                now.len() == 3
                    && now
                        .iter()
                        .any(|p| p.metadata.name.as_deref() == Some(&sick_name)),
                "a dry run or a pause changes nothing"
            );
        } else {
            ensure!(
                record.replacement_node.is_some() && record.replacement_node != sick_node,
                "{record:?}"
            );
            // The sick replica goes, the count returns to 3, load keeps flowing.
            wait(Duration::from_secs(60), "the sick pod to go", || {
                let (ns, sick_name) = (ns.clone(), sick_name.clone());
                async move {
                    let now = pods(&ns, "aimass.io/model-deployment=scoring").await?;
                    Ok(now.len() == 3
                        && now
                            .iter()
                            .all(|p| p.metadata.name.as_deref() != Some(&sick_name)))
                }
            })
            .await?;
            serving(&ns, 1, 3).await?;
        }
        load.finish_without_failures(50).await?;
        let events = ns
            .api::<k8s_openapi::api::core::v1::Event>()
            .list(&Default::default())
            .await?
            .items;
        let reasons: Vec<String> = events.iter().filter_map(|e| e.reason.clone()).collect();
        ensure!(
            reasons.iter().any(|r| r == "ReplicaUnhealthy")
                && reasons.iter().any(|r| {
                    r == match mode {
                        Mode::Real => "MigrationStarted",
                        Mode::DryRun => "MigrationDryRun",
                        Mode::Paused => "MigrationPaused",
                    }
                }),
            "{reasons:?}"
        );
        if mode == Mode::Real {
            ensure!(
                reasons.iter().any(|r| r == "MigrationCompleted"),
                "{reasons:?}"
            );
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_sick_replica_is_replaced_surge_first_without_a_failed_request() -> Result<()> {
    migrate(Mode::Real).await
}

#[tokio::test]
async fn a_dry_run_only_records_the_migration() -> Result<()> {
    migrate(Mode::DryRun).await
}

#[tokio::test]
async fn a_pause_switch_stops_every_migration_and_shows_in_status() -> Result<()> {
    migrate(Mode::Paused).await
}

#[tokio::test]
async fn replicas_equally_slow_under_load_are_not_migrated() -> Result<()> {
    run_with_operator("migrateload", |ns: Arc<TestNamespace>| async move {
        // Every replica is slow, as under load: all cross the threshold.
        let manifests = migration_manifests(false).replace(
            "aimass.io/rehearse-signal-latency-millis: \"300\"",
            "aimass.io/rehearse-latency-millis: \"300\"",
        );
        ns.apply(&manifests).await?;

        serving(&ns, 1, 3).await?;
        let (request, _) = zoo_reference("gbdt_classifier")?;
        let endpoint = scoring_endpoint(&ns, &request).await?;
        let load = Load::start(&endpoint, &request, 6);
        let md = wait_for(
            &ns.api::<ModelDeployment>(),
            "scoring",
            Duration::from_secs(60),
            |md: Option<&ModelDeployment>| {
                md.and_then(|m| m.status.as_ref())
                    .is_some_and(|s| s.unhealthy_replicas.len() >= 2)
            },
        )
        .await;
        // Give a migration every chance to (wrongly) start.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (_, failures) = load.finish().await?;
        md?;
        let now = ns
            .api::<ModelDeployment>()
            .get("scoring")
            .await?
            .status
            .context("status")?;
        ensure!(
            now.migrations.is_empty(),
            "load is the autoscaler's job, not migration's: {:?}",
            now.migrations
        );
        ensure!(
            now.conditions.iter().any(|c| c.type_ == "Degraded"
                && c.status == "True"
                && c.reason == "ReplicaUnhealthy"),
            "{now:?}"
        );
        ensure!(failures.is_empty(), "{failures:?}");
        Ok(())
    })
    .await
}
