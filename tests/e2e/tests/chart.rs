//! The Helm chart on the local cluster: `helm install` runs the operator as a
//! pod under its own ServiceAccount and least-privilege RBAC, the
//! fraud-detection example goes from training to scored requests through
//! it, `helm upgrade` changes a value and a CRD, and `helm uninstall` leaves
//! nothing of its own behind.
//!
//! The operator installed here serves every namespace, so this file holds a
//! single cluster-wide test (cargo runs test binaries one after the other,
//! so no other test's operator runs meanwhile).

use std::path::{Path, PathBuf};
use std::time::Duration;

use aimass_crds::v1alpha1::{Model, ModelDeployment};
use aimass_e2e::{
    FIELD_MANAGER, TestNamespace, client_config, helm, kubectl, post_as, repo_root, wait, wait_for,
};
use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};

const TIMEOUT: Duration = Duration::from_secs(240);
const CRDS: [&str; 6] = [
    "models.aimass.io",
    "trainingjobs.aimass.io",
    "modeldeployments.aimass.io",
    "apiclients.aimass.io",
    "modelapprovals.aimass.io",
    "scoringjobs.aimass.io",
];

/// A namespace that enforces the restricted Pod Security Standard, as the
/// operator, trainers and inference servers must pass it.
async fn restricted_namespace(prefix: &str) -> Result<TestNamespace> {
    let ns = TestNamespace::new(prefix).await?;
    let (ok, _, err) = kubectl(&[
        "label",
        "namespace",
        &ns.name,
        "pod-security.kubernetes.io/enforce=restricted",
    ])?;
    ensure!(ok, "labelling {}: {err}", ns.name);
    Ok(ns)
}

/// Runs helm, failing with its output when it fails.
fn helm_ok(args: &[&str]) -> Result<String> {
    let (ok, out, err) = helm(args)?;
    ensure!(ok, "helm {}: {err}{out}", args.join(" "));
    Ok(out)
}

/// Hands CRDs applied by someone else (earlier tests apply crds/ with
/// kubectl) to the release, the way the manual tells users to adopt them.
fn adopt_crds(release: &str, namespace: &str) -> Result<()> {
    for crd in CRDS {
        if !kubectl(&["get", "crd", crd])?.0 {
            continue;
        }
        let release = format!("meta.helm.sh/release-name={release}");
        let namespace = format!("meta.helm.sh/release-namespace={namespace}");
        for args in [
            vec!["annotate", "--overwrite", "crd", crd, &release, &namespace],
            vec![
                "label",
                "--overwrite",
                "crd",
                crd,
                "app.kubernetes.io/managed-by=Helm",
            ],
        ] {
            let (ok, _, err) = kubectl(&args)?;
            ensure!(ok, "adopting {crd}: {err}");
        }
    }
    Ok(())
}

/// The chart copied to `dir` with a new printer column on the Model CRD:
/// the CRD change a release upgrade must carry to the cluster.
fn chart_with_changed_crd(dir: &Path) -> Result<PathBuf> {
    let chart = dir.join("aimass");
    let status = std::process::Command::new("cp")
        .args(["-r"])
        .arg(repo_root().join("charts/aimass"))
        .arg(&chart)
        .status()?;
    ensure!(status.success(), "copying the chart");
    let crd = chart.join("files/crds/aimass.io_models.yaml");
    let text = std::fs::read_to_string(&crd)?;
    let column = "  - additionalPrinterColumns:\n    - description: Where the versions are stored\n      jsonPath: .spec.storage.prefix\n      name: Storage\n      type: string\n";
    ensure!(
        text.contains("  - additionalPrinterColumns:\n"),
        "the Model CRD has no printer columns to extend"
    );
    std::fs::write(
        &crd,
        text.replacen("  - additionalPrinterColumns:\n", column, 1),
    )?;
    Ok(chart)
}

/// The pods of the release's `component` (operator, console), once exactly
/// `count` are Ready.
async fn ready_pods(
    client: &Client,
    ns: &str,
    release: &str,
    component: &str,
    count: usize,
) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector =
        format!("app.kubernetes.io/instance={release},app.kubernetes.io/component={component}");
    let ready = || async {
        let list = pods.list(&ListParams::default().labels(&selector)).await?;
        Ok::<_, anyhow::Error>(
            list.items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .collect::<Vec<_>>(),
        )
    };
    wait(TIMEOUT, &format!("Ready {component} pods"), || async {
        Ok(ready().await?.len() == count)
    })
    .await?;
    ready().await
}

/// A client that authenticates with a fresh token of the ServiceAccount.
async fn client_as(client: &Client, ns: &str, service_account: &str) -> Result<Client> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(600),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    let token = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(service_account, &PostParams::default(), &request)
        .await?
        .status
        .context("no token in the TokenRequest")?
        .token;
    let mut config = client_config().await?;
    config.auth_info = serde_json::from_value(serde_json::json!({ "token": token }))?;
    Ok(Client::try_from(config)?)
}

/// The ServiceAccount may do what the operator needs and nothing more.
async fn assert_least_privilege(
    client: &Client,
    system: &str,
    example: &str,
    sa: &str,
) -> Result<()> {
    let operator = client_as(client, system, sa).await?;
    // Denied: verbs and kinds the chart never grants, through the real API
    // server with the account's own token.
    let nodes: Api<Node> = Api::all(operator.clone());
    let denied = nodes
        .delete(
            "aimass-node-0",
            &DeleteParams {
                dry_run: true,
                ..DeleteParams::default()
            },
        )
        .await;
    ensure!(
        matches!(&denied, Err(kube::Error::Api(e)) if e.code == 403),
        "deleting a Node must be forbidden: {denied:?}"
    );
    let secrets: Api<Secret> = Api::namespaced(operator.clone(), example);
    let listed = secrets.list(&ListParams::default()).await;
    ensure!(
        matches!(&listed, Err(kube::Error::Api(e)) if e.code == 403),
        "listing Secrets must be forbidden (get by name only): {listed:?}"
    );
    let deployments: Api<Deployment> = Api::namespaced(operator.clone(), system);
    let own = deployments
        .delete(
            "aimass-anything",
            &DeleteParams {
                dry_run: true,
                ..DeleteParams::default()
            },
        )
        .await;
    ensure!(
        matches!(&own, Err(kube::Error::Api(e)) if e.code == 404),
        "the operator may manage Deployments (404 for a missing one, not 403): {own:?}"
    );
    // Allowed: what it does every reconcile.
    Api::<ModelDeployment>::namespaced(operator.clone(), example)
        .list(&ListParams::default())
        .await
        .context("listing ModelDeployments as the operator")?;
    Ok(())
}

/// The console runs Ready under its own ServiceAccount, which may review
/// tokens and access but read nothing: every read is the signed-in user's.
async fn assert_console_reads_nothing_itself(
    client: &Client,
    system: &str,
    example: &str,
    release: &str,
) -> Result<()> {
    ready_pods(client, system, release, "console", 1).await?;
    let console = client_as(client, system, &format!("{release}-console")).await?;
    let models = Api::<Model>::namespaced(console.clone(), example)
        .list(&ListParams::default())
        .await;
    ensure!(
        matches!(&models, Err(kube::Error::Api(e)) if e.code == 403),
        "the console's own identity must not list models: {models:?}"
    );
    let review: SubjectAccessReview = serde_json::from_value(serde_json::json!({
        "spec": {"user": "someone", "resourceAttributes": {"group": "aimass.io", "resource": "models", "verb": "list", "namespace": example}}
    }))?;
    Api::<SubjectAccessReview>::all(console)
        .create(&PostParams::default(), &review)
        .await
        .context("the console may review access")?;
    Ok(())
}

/// "Kind name" and the owner references of each `K` that `selector` matches.
async fn owner_refs<K>(
    client: &Client,
    ns: &str,
    selector: &ListParams,
) -> Result<
    Vec<(
        String,
        Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
    )>,
>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .list(selector)
        .await?
        .items
        .into_iter()
        .map(|o| {
            (
                format!("{} {}", K::kind(&()), o.name_any()),
                o.owner_references().to_vec(),
            )
        })
        .collect())
}

/// Every object the operator created in `ns` is owned by a user's aimass.io
/// object, so it goes when the user deletes theirs.
async fn assert_owned_by_user_objects(client: &Client, ns: &str) -> Result<usize> {
    let selector = ListParams::default().labels("app.kubernetes.io/managed-by=aimass-operator");
    let mut owners = owner_refs::<Deployment>(client, ns, &selector).await?;
    owners.extend(owner_refs::<Service>(client, ns, &selector).await?);
    owners.extend(owner_refs::<Job>(client, ns, &selector).await?);
    for (what, refs) in &owners {
        ensure!(
            refs.iter()
                .any(|r| r.api_version == "aimass.io/v1alpha1" && r.controller == Some(true)),
            "{what} has no aimass.io owner: {refs:?}"
        );
    }
    Ok(owners.len())
}

/// Metric names in the chart's alert rules and dashboard that neither the
/// operator nor an inference server exports: each must be a name the scrapes
/// show (a histogram counts with its _bucket, _sum and _count series).
/// `aimass_replica_unhealthy` has series only while a replica is unhealthy,
/// which the migration tests bring about, and
/// `aimass_model_evaluation_below_gate` only for Models evaluated against
/// gates (the evaluation module's tests), and `aimass_model_drift_detected`
/// and `aimass_feature_csi` only for deployments whose drift was evaluated
/// (the drift test reads them); here they are taken as known.
fn unknown_metrics(exported: &std::collections::BTreeSet<String>) -> Result<Vec<String>> {
    let files = ["files/alerts.yaml", "files/dashboard.json"];
    let mut unknown = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(repo_root().join("charts/aimass").join(file))?;
        for (i, _) in text.match_indices("aimass_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let known = exported.contains(&name)
                || name == "aimass_replica_unhealthy"
                || name == "aimass_model_evaluation_below_gate"
                || name == "aimass_model_drift_detected"
                || name == "aimass_feature_csi"
                || ["_bucket", "_sum", "_count"].iter().any(|s| {
                    name.strip_suffix(s).is_some_and(|base| {
                        exported.contains(&format!("{base}_count"))
                            || exported.contains(&format!("{base}{s}"))
                    })
                });
            if !known && !unknown.contains(&name) {
                unknown.push(name);
            }
        }
    }
    Ok(unknown)
}

/// The metric names the /metrics page at `address` exports.
async fn exported_names(address: &str) -> Result<std::collections::BTreeSet<String>> {
    let (code, body) = aimass_e2e::http_get(&format!("http://{address}/metrics")).await?;
    ensure!(code == 200, "GET /metrics on {address}: {code}");
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect())
}

/// The operator wrote only status: no field under `spec` of the user's
/// objects belongs to any manager but the one that applied them.
fn assert_spec_untouched(
    managed: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry],
    what: &str,
) -> Result<()> {
    for entry in managed {
        let fields = entry
            .fields_v1
            .as_ref()
            .map(|f| f.0.to_string())
            .unwrap_or_default();
        if entry.manager.as_deref() != Some(FIELD_MANAGER) && entry.subresource.is_none() {
            ensure!(
                !fields.contains("\"f:spec\""),
                "{what}: manager {:?} owns spec fields: {fields}",
                entry.manager
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_chart_installs_upgrades_and_uninstalls_an_operator_that_serves_the_fraud_example()
-> Result<()> {
    let system = restricted_namespace("chart").await?;
    let example = restricted_namespace("chart-fraud").await?;
    let result = scenario(&system, &example).await;
    if result.is_err() {
        let _ = kubectl(&[
            "-n",
            &system.name,
            "logs",
            "-l",
            "app.kubernetes.io/component=operator",
            "--tail=60",
        ])
        .map(|(_, out, err)| eprintln!("operator log:\n{out}{err}"));
    }
    let release = release_name(&system);
    let _ = helm(&["uninstall", &release, "--namespace", &system.name, "--wait"]);
    // Later tests expect the CRDs as crds/ has them.
    let _ = aimass_e2e::apply_crds(&repo_root().join("crds"), Some("aimass-operator"));
    example.finish(result.is_err()).await;
    system.finish(result.is_err()).await;
    result
}

fn release_name(system: &TestNamespace) -> String {
    format!("aimass-{}", system.name.rsplit('-').next().unwrap_or("e2e"))
}

async fn scenario(system: &TestNamespace, example: &TestNamespace) -> Result<()> {
    let client = &system.client;
    let release = release_name(system);
    let chart = repo_root().join("charts/aimass");
    let chart = chart.to_string_lossy();

    // Install: the operator runs as a pod under the release's ServiceAccount.
    adopt_crds(&release, &system.name)?;
    // The adopting install takes over what the earlier appliers set.
    let file_roots = format!(
        "storage.fileRoots={{{}}}",
        std::env::temp_dir().join("aimass-e2e").display()
    );
    helm_ok(&[
        "install",
        &release,
        &chart,
        "--namespace",
        &system.name,
        "--set",
        &file_roots,
        "--force-conflicts",
        "--wait",
        "--timeout",
        "180s",
    ])?;
    let pods = ready_pods(client, &system.name, &release, "operator", 1).await?;
    let pod = &pods[0];
    ensure!(
        pod.spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            == Some(release.as_str()),
        "the operator runs under {:?}",
        pod.spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), &system.name);
    wait_for(&leases, &release, TIMEOUT, |l: Option<&Lease>| {
        l.and_then(|l| l.spec.as_ref()?.holder_identity.as_deref()) == Some(pod.name_any().as_str())
    })
    .await
    .context("the operator pod holds the release's Lease")?;
    assert_least_privilege(client, &system.name, &example.name, &release).await?;
    assert_console_reads_nothing_itself(client, &system.name, &example.name, &release).await?;

    // The fraud-detection example, end to end through the installed operator.
    let dir = std::env::temp_dir().join("aimass-e2e").join(&example.name);
    let status = std::process::Command::new("python3")
        .arg(repo_root().join("examples/fraud-detection/generate_dataset.py"))
        .arg(dir.join("data/transactions.csv"))
        .status()?;
    ensure!(status.success(), "generate_dataset.py failed");
    let examples = repo_root().join("examples/fraud-detection");
    let manifests = format!(
        "{}\n---\n{}\n---\n{}",
        std::fs::read_to_string(examples.join("model.yaml"))?
            .replace("/tmp/aimass-demo", &dir.to_string_lossy()),
        std::fs::read_to_string(examples.join("modeldeployment.yaml"))?,
        std::fs::read_to_string(examples.join("callers.yaml"))?
    );
    example.apply(&manifests).await?;
    wait_for(
        &example.api::<Model>(),
        "card-fraud",
        TIMEOUT,
        |m: Option<&Model>| {
            m.and_then(|m| m.status.as_ref()?.aliases.get("champion").copied()) == Some(1)
        },
    )
    .await
    .context("version 1 becomes champion")?;
    let md = wait_for(
        &example.api::<ModelDeployment>(),
        "card-fraud-scoring",
        TIMEOUT,
        |m: Option<&ModelDeployment>| {
            m.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        },
    )
    .await?;
    let service: Service = example.api().get("card-fraud-scoring").await?;
    let ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no ClusterIP")?;
    let request: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(examples.join("request.json"))?)?;
    let url = format!("http://{ip}/v2/models/card-fraud/infer");
    // The servers are Enforced: callers need the chart's invoker role.
    example
        .apply(&format!(
            r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: analyst}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: analyst-scores}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {release}-model-invoker}}
subjects: [{{kind: ServiceAccount, name: analyst, namespace: {ns}}}]
"#,
            ns = example.name
        ))
        .await?;
    let token = example.token("analyst", "aimass").await?;
    // Ten answers in a row: a ClusterIP an earlier test freed can still
    // lead to its old pods for a moment.
    wait(
        Duration::from_secs(60),
        "the Service to score steadily",
        || async {
            for _ in 0..10 {
                if !post_as(&url, &request, Some(&token))
                    .await
                    .is_ok_and(|(code, _)| code == 200)
                {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    let (code, _) = post_as(&url, &request, None).await?;
    ensure!(code == 401, "a call without a token: {code}");
    // The example's own caller, allowed this one model by resourceNames.
    let analyst = example.token("fraud-analyst", "aimass").await?;
    let (code, answer) = post_as(&url, &request, Some(&analyst)).await?;
    ensure!(code == 200, "the example's fraud-analyst: {code} {answer}");
    let (_, answer) = post_as(&url, &request, Some(&token)).await?;
    let probabilities = answer["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == "probabilities"))
        .and_then(|o| o["data"].as_array())
        .context(format!("no probabilities in {answer}"))?;
    let fraud = |i: usize| probabilities[2 * i + 1].as_f64().unwrap_or(f64::NAN);
    ensure!(
        fraud(0) < 0.5 && fraud(1) > 0.5,
        "the ordinary transaction must score low and the suspicious one high: {answer}"
    );

    // The metrics contract: alerts and dashboard read only exported names.
    // The operator's admin port is 8080; the servers' is 8081.
    let operator_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .context("operator pod IP")?;
    let mut exported = exported_names(&format!("{operator_ip}:8080")).await?;
    let servers =
        aimass_e2e::pods(example, "app.kubernetes.io/name=aimass-inference-server").await?;
    let server_ip = servers
        .iter()
        .find_map(|p| p.status.as_ref()?.pod_ip.clone())
        .context("no inference server pod IP")?;
    exported.extend(exported_names(&format!("{server_ip}:8081")).await?);
    let unknown = unknown_metrics(&exported)?;
    ensure!(
        unknown.is_empty(),
        "alerts or dashboard read metrics nobody exports: {unknown:?}"
    );

    // GitOps: Argo CD's view of the three kinds, through the manual's checks.
    let (ok, tj, err) = kubectl(&["-n", &example.name, "get", "trainingjobs", "-o", "name"])?;
    ensure!(ok && !tj.trim().is_empty(), "no TrainingJob: {err}");
    for (object, check) in [
        ("model/card-fraud", "health.lua"),
        ("modeldeployment/card-fraud-scoring", "health.lua"),
        (tj.trim(), "training-job-health.lua"),
    ] {
        let health = aimass_e2e::argocd_health(&example.name, object, check)?;
        ensure!(
            health.starts_with("Healthy"),
            "Argo CD would call {object} {health}"
        );
    }

    // GitOps: applying the same manifests again changes nothing, and the
    // operator never wrote to the spec of the user's objects.
    let before = md.metadata.generation;
    example.apply(&manifests).await?;
    let md: ModelDeployment = example.api().get("card-fraud-scoring").await?;
    ensure!(
        md.metadata.generation == before,
        "re-applying bumped the generation"
    );
    let model: Model = example.api().get("card-fraud").await?;
    assert_spec_untouched(model.managed_fields(), "Model card-fraud")?;
    assert_spec_untouched(md.managed_fields(), "ModelDeployment card-fraud-scoring")?;

    // Upgrade: a changed value (two operator replicas, one leading) and a
    // changed CRD (a new printer column) in one `helm upgrade`.
    let scratch = std::env::temp_dir().join("aimass-e2e").join(&system.name);
    std::fs::create_dir_all(&scratch)?;
    let changed = chart_with_changed_crd(&scratch)?;
    helm_ok(&[
        "upgrade",
        &release,
        &changed.to_string_lossy(),
        "--namespace",
        &system.name,
        "--set",
        "replicaCount=2",
        "--set",
        &file_roots,
        // The CRDs are co-owned by the earlier kubectl applies (server-side
        // apply keeps both owners of equal values); the manual's upgrade
        // procedure lets Helm's version win.
        "--force-conflicts",
        "--wait",
        "--timeout",
        "180s",
    ])?;
    ready_pods(client, &system.name, &release, "operator", 2).await?;
    let crd: CustomResourceDefinition = Api::all(client.clone()).get("models.aimass.io").await?;
    let columns: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    ensure!(
        columns.contains(&"Storage".to_owned()),
        "the upgraded CRD has columns {columns:?}"
    );
    let (ok, out, err) = kubectl(&["-n", &example.name, "get", "models"])?;
    ensure!(
        ok && out.contains("STORAGE"),
        "kubectl get models after the upgrade: {out}{err}"
    );

    // Uninstall: nothing of the release stays; the user's objects and the
    // CRDs (their data) do, and what the operator made is theirs.
    helm_ok(&["uninstall", &release, "--namespace", &system.name, "--wait"])?;
    let instance = format!("app.kubernetes.io/instance={release}");
    for kind in [
        "deployments,replicasets,pods,services,serviceaccounts,configmaps,roles,rolebindings,leases",
        "clusterroles,clusterrolebindings",
    ] {
        let mut args = vec!["get", kind, "-l", &instance, "-o", "name"];
        let namespaced = ["-n", system.name.as_str()];
        if kind.starts_with("deployments") {
            args.extend(namespaced);
        }
        let left = || -> Result<String> {
            let (ok, out, err) = kubectl(&args)?;
            ensure!(ok, "{err}");
            Ok(out)
        };
        // The roles callers are bound to stay, so served models keep
        // answering them.
        let kept = |name: &str| name.ends_with("-model-invoker") || name.ends_with("-model-viewer");
        let gone = wait(
            Duration::from_secs(60),
            "the release's objects to go",
            || async { Ok(left()?.lines().all(kept)) },
        )
        .await;
        gone.with_context(|| format!("left behind: {}", left().unwrap_or_default()))?;
    }
    let (_, kept_roles, _) = kubectl(&["get", "clusterroles", "-l", &instance, "-o", "name"])?;
    for role in ["-model-invoker", "-model-viewer"] {
        let kept = kept_roles.lines().find(|name| name.ends_with(role));
        let Some(kept) = kept else {
            anyhow::bail!(
                "the ClusterRole *{role} that callers are bound to went with the release"
            );
        };
        kubectl(&["delete", kept])?;
    }
    ensure!(
        leases.get_opt(&release).await?.is_none(),
        "the leader-election Lease outlived the release"
    );
    for crd in CRDS {
        ensure!(
            kubectl(&["get", "crd", crd])?.0,
            "the CRD {crd} was deleted"
        );
    }
    ensure!(
        example
            .api::<Model>()
            .get_opt("card-fraud")
            .await?
            .is_some()
    );
    let owned = assert_owned_by_user_objects(client, &example.name).await?;
    ensure!(
        owned >= 3,
        "expected the Job, Deployment and Service, found {owned}"
    );
    Ok(())
}

/// Renders the chart with `values` and has the API server validate every
/// object (`kubectl apply --dry-run=server`); returns the rendered YAML.
fn validated(ns: &str, values: &[&str], scratch: &Path) -> Result<String> {
    let chart = repo_root().join("charts/aimass");
    let mut args = vec![
        "template",
        "aimass",
        chart.to_str().context("chart path")?,
        "--namespace",
        ns,
    ];
    for v in values {
        args.extend(["--set", v]);
    }
    let rendered = helm_ok(&args)?;
    let file = scratch.join(format!("rendered-{}.yaml", values.len()));
    std::fs::write(&file, &rendered)?;
    let (ok, out, err) = kubectl(&["apply", "--dry-run=server", "-f", &file.to_string_lossy()])?;
    ensure!(
        ok,
        "the API server refused the chart rendered with {values:?}: {err}\n{out}"
    );
    Ok(rendered)
}

#[tokio::test]
async fn the_chart_lints_and_renders_objects_the_api_server_accepts_in_both_modes() -> Result<()> {
    aimass_e2e::run("chart-render", |ns| async move {
        let chart = repo_root().join("charts/aimass");
        let chart = chart.to_string_lossy();
        let everything = [
            "replicaCount=2",
            "metrics.serviceMonitor.enabled=true",
            "metrics.prometheusRule.enabled=true",
            "metrics.grafanaDashboard.enabled=true",
        ];
        helm_ok(&["lint", "--strict", &chart])?;
        let mut all = vec!["lint", "--strict", &chart];
        for v in &everything {
            all.extend(["--set", v]);
        }
        helm_ok(&all)?;

        // The monitoring kinds are validated against the Prometheus
        // Operator's own CRDs, installed for real.
        let out =
            std::process::Command::new(repo_root().join("scripts/monitoring-crds.sh")).output()?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = String::from_utf8(out.stdout)?.trim().to_owned();
        aimass_e2e::apply_crds(Path::new(&dir), None)?;

        let scratch = std::env::temp_dir().join("aimass-e2e").join(&ns.name);
        std::fs::create_dir_all(&scratch)?;
        let cluster_wide = validated(&ns.name, &everything, &scratch)?;
        ensure!(cluster_wide.contains("kind: ClusterRoleBinding"));
        for kind in ["ServiceMonitor", "PodMonitor", "PrometheusRule"] {
            ensure!(
                cluster_wide.contains(&format!("kind: {kind}")),
                "no {kind} rendered"
            );
        }
        let watch = format!("watchNamespace={}", ns.name);
        let mut namespaced_values = vec![watch.as_str()];
        namespaced_values.extend(everything);
        let namespaced = validated(&ns.name, &namespaced_values, &scratch)?;
        // Namespaced mode binds cluster-wide only review rights: the
        // Enforced servers' and the console's (TokenReviews and
        // SubjectAccessReviews, nothing else).
        ensure!(
            namespaced.matches("kind: ClusterRoleBinding").count() == 2
                && namespaced.contains("name: aimass-inference-auth")
                && namespaced.contains("name: aimass-console"),
            "namespaced mode must bind nothing cluster-wide but review rights"
        );
        ensure!(
            namespaced.contains(&format!("--namespaces={}", ns.name)),
            "a namespaced console shows the watched namespace"
        );
        ensure!(namespaced.contains(&format!("--namespace={}", ns.name)));

        // values.schema.json turns a wrong value into a clear error.
        let (ok, _, err) = helm(&["template", "aimass", &chart, "--set", "replicaCount=0"])?;
        ensure!(
            !ok && err.contains("replicaCount"),
            "replicaCount=0 must be refused: {err}"
        );
        let (ok, _, err) = helm(&["template", "aimass", &chart, "--set", "logFormat=xml"])?;
        ensure!(
            !ok && err.contains("logFormat"),
            "logFormat=xml must be refused: {err}"
        );
        Ok(())
    })
    .await
}
