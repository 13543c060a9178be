//! Environments, through the real API server: examples/environments applied
//! to risk-test, risk-preview and risk-prod with the chart's admission
//! policies and user roles; a version trained in test by alice is followed
//! by preview, proven there under load, approved for prod by bob (alice's
//! own approval does not count), rolled out in prod under load without a
//! failed request, rolled back by a pin; the refusals (a user without
//! rights in the source namespace, a forged approver or requester, a version
//! without preview's evidence, an artifact changed in storage); and prod
//! serving on after risk-test is deleted.
//!
//! One operator watches every namespace, as the chart installs it; the test
//! is a binary of its own, so no other test's operator runs beside it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aimass_crds::v1alpha1::{
    CanaryPhase, Model, ModelApproval, ModelDeployment, ModelVersion, REQUESTED_BY_ANNOTATION,
};
use aimass_e2e::load::{Endpoint, Load};
use aimass_e2e::operator::Operator;
use aimass_e2e::*;
use anyhow::{Context, Result, bail, ensure};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(240);
/// The admin's user name on the local cluster, which runs the operator.
const ADMIN: &str = "aimass-admin";
/// The chart's release name for the policies and roles installed here.
const RELEASE: &str = "envs";

/// The three environments, each a namespace.
struct Environments {
    test: TestNamespace,
    preview: TestNamespace,
    prod: TestNamespace,
}

#[tokio::test]
async fn a_version_earns_its_way_from_test_through_preview_to_prod() -> Result<()> {
    let home = TestNamespace::new("envs").await?;
    let policies = ChartPolicies::install()?;
    let operator = Operator::start_cluster_wide(&home, "a")?;
    let envs = Environments {
        test: TestNamespace::named("risk-test").await?,
        preview: TestNamespace::named("risk-preview").await?,
        prod: TestNamespace::named("risk-prod").await?,
    };
    let result = promote_through_environments(&home, &envs).await;
    if result.is_err() {
        eprintln!("operator log:\n{}", operator.log_tail(120));
    }
    let failed = result.is_err();
    for ns in [envs.test, envs.preview, envs.prod, home] {
        ns.finish(failed).await;
    }
    drop(policies);
    result
}

async fn promote_through_environments(home: &TestNamespace, envs: &Environments) -> Result<()> {
    let dir = std::env::temp_dir().join("aimass-e2e").join(&home.name);
    std::fs::create_dir_all(&dir)?;
    let status = std::process::Command::new("python3")
        .arg(repo_root().join("examples/fraud-detection/generate_dataset.py"))
        .arg(dir.join("data/transactions.csv"))
        .status()?;
    ensure!(status.success(), "generate_dataset.py failed");

    // Who is who: alice trains (edit in test and preview, and may approve
    // in prod); carol runs prod (edit there only); bob approves in prod.
    bind(&envs.test, "alice", "ClusterRole", "edit").await?;
    bind(&envs.preview, "alice", "ClusterRole", "edit").await?;
    bind(&envs.prod, "carol", "ClusterRole", "edit").await?;
    let approver = format!("{RELEASE}-aimass-model-approver");
    bind(&envs.prod, "bob", "ClusterRole", &approver).await?;
    bind(&envs.prod, "alice", "ClusterRole", &approver).await?;
    wait(
        Duration::from_secs(60),
        "edit to aggregate aimass.io",
        || async {
            Ok(kubectl(&[
                "auth",
                "can-i",
                "create",
                "models.aimass.io",
                "-n",
                "risk-test",
                "--as",
                "alice",
            ])?
            .0)
        },
    )
    .await?;

    let (alice, bob, carol) = (
        client_as("alice").await?,
        client_as("bob").await?,
        client_as("carol").await?,
    );
    let test = render("test", &dir)?;
    let preview = render("preview", &dir)?
        .replace("soakSeconds: 600", "soakSeconds: 15")
        .replace("minRequests: 1000", "minRequests: 100");
    let prod =
        render("prod", &dir)?.replace("analysisIntervalSeconds: 60", "analysisIntervalSeconds: 10");
    setup(envs, &alice, &carol, [&test, &preview, &prod]).await?;

    // 1. Trained in test at alice's request; preview follows its champion.
    let models = |ns: &TestNamespace| ns.api::<Model>();
    champion(&models(&envs.test), 1)
        .await
        .context("test trains version 1")?;
    champion(&models(&envs.preview), 1)
        .await
        .context("preview follows test")?;
    let preview_endpoint = endpoint(&envs.preview).await?;
    let request = example_request()?;

    // 2. Until preview has proven it, prod refuses it for want of evidence.
    let waiting = follow_reason(&models(&envs.prod), "EvidenceMissing").await?;
    let message = follow_message(&waiting);
    ensure!(
        message.contains("no evidence from risk-preview"),
        "{message}"
    );

    // 3. Proven in preview under load.
    let proven = proven_under_load(&envs.preview, &preview_endpoint, &request, 1).await?;
    let evidence = proven
        .status
        .as_ref()
        .map(|s| s.evidence[0].clone())
        .context("evidence")?;
    ensure!(
        evidence.requests >= 100 && evidence.error_rate == 0.0,
        "{evidence:?}"
    );

    // 4. Prod waits for an approval; alice's own does not count.
    let waiting = follow_reason(&models(&envs.prod), "AwaitingApproval").await?;
    let follow = waiting
        .status
        .as_ref()
        .and_then(|s| s.follow.clone())
        .context("follow")?;
    ensure!(
        follow.source.as_deref() == Some("risk-preview/fraud:1"),
        "{follow:?}"
    );
    let sha256 = follow
        .sha256
        .clone()
        .context("the followed version's sha256")?;
    approve(&alice, "alice-approves-herself", "alice", &sha256).await?;
    let refused = follow_reason(&models(&envs.prod), "SameIdentity").await?;
    let message = follow_message(&refused);
    ensure!(
        message.contains("alice asked for its training"),
        "{message}"
    );
    let own = wait_for(
        &envs.prod.api::<ModelApproval>(),
        "alice-approves-herself",
        TIMEOUT,
        |a: Option<&ModelApproval>| counted(a) == Some(("False", "SameIdentity")),
    )
    .await;
    ensure!(own.is_ok(), "the approval says it was not counted: {own:?}");

    // 5. Nobody signs with another's name.
    let forged = approve(&bob, "bob-signs-as-alice", "alice", &sha256).await;
    let err = format!(
        "{:#}",
        forged.err().context("a forged approver is refused")?
    );
    ensure!(
        err.contains("spec.approvedBy must be your own user name (bob)"),
        "{err}"
    );

    // 6. Bob's approval promotes it; prod serves it.
    approve(&bob, "bob-approves", "bob", &sha256).await?;
    champion(&models(&envs.prod), 1)
        .await
        .context("prod records version 1")?;
    let prod_mds = envs.prod.api::<ModelDeployment>();
    serving_version(&prod_mds, 1).await?;
    let prod_endpoint = endpoint(&envs.prod).await?;

    // 7. A second version, asked for by alice as a TrainingJob, goes the
    //    same way; prod rolls it out under load without a failed request.
    let run = format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: TrainingJob
metadata: {{name: fraud-retrain, annotations: {{"{REQUESTED_BY_ANNOTATION}": alice}}}}
spec:
  modelRef: {{name: fraud}}
  image: aimass/fraud-trainer:0.1
  dataset: {{uri: "file://{}/data/transactions.csv"}}
  hyperparameters: {{n_estimators: "80", max_depth: "3", learning_rate: "0.1"}}
  backoffLimit: 0
"#,
        dir.display()
    );
    apply(&alice, Some("risk-test"), &run).await?;
    champion(&models(&envs.test), 2)
        .await
        .context("test trains version 2")?;
    champion(&models(&envs.preview), 2)
        .await
        .context("preview follows version 2")?;
    proven_under_load(&envs.preview, &preview_endpoint, &request, 2).await?;
    let waiting = follow_reason(&models(&envs.prod), "AwaitingApproval").await?;
    let second = waiting
        .status
        .as_ref()
        .and_then(|s| s.follow.clone())
        .and_then(|f| f.sha256)
        .context("version 2's sha256")?;
    ensure!(second != sha256, "a retrained artifact has its own digest");
    let load = Load::start(&prod_endpoint, &request, 2);
    approve(&bob, "bob-approves-2", "bob", &second).await?;
    champion(&models(&envs.prod), 2)
        .await
        .context("prod records version 2")?;
    let rolled = serving_version(&prod_mds, 2).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let finished = load.finish_without_failures(50).await;
    rolled?;
    finished.context("prod's rollout under load")?;

    // 8. Provenance in prod names test's run, preview's evidence and both
    //    users, in status and in the version.json of prod's storage.
    let prod_model = models(&envs.prod).get("fraud").await?;
    let record = version(&prod_model, 2)?;
    check_provenance(&record, "fraud-retrain")?;
    let stored: ModelVersion = serde_json::from_slice(&std::fs::read(
        dir.join("environments/prod/fraud/2/version.json"),
    )?)?;
    ensure!(
        stored.provenance == record.provenance,
        "version.json holds the same provenance"
    );
    let wide = kubectl(&["get", "mdl", "fraud", "-n", "risk-prod", "-o", "wide"])?.1;
    ensure!(
        wide.contains("CHAMPION-FROM") && wide.contains("risk-preview/fraud:2"),
        "{wide}"
    );

    // 9. Exported for another cluster (here a fresh namespace), the version
    //    comes back with the same digest and its provenance, declared.
    exported_elsewhere(home, &record).await?;

    // 10. Rolling back is a pin in prod, and touches nothing below it. The
    //    pin must say who made it, in the same change, and only as its
    //    maker: unsigned or signed by someone else, it is refused.
    let prod_models = Api::<Model>::namespaced(carol.clone(), "risk-prod");
    //    (Prod's Model carries carol's name from its creation: unsigned
    //    means the annotation removed in the same patch.)
    for (signed, what) in [
        (Value::Null, "an unsigned pin"),
        (json!("bob"), "a pin signed by bob"),
    ] {
        let pin = json!({"metadata": {"annotations": {REQUESTED_BY_ANNOTATION: signed}},
            "spec": {"aliases": {"champion": 1}}});
        let refused = prod_models
            .patch("fraud", &PatchParams::default(), &Patch::Merge(&pin))
            .await;
        match refused {
            Err(kube::Error::Api(e)) if e.code == 403 => ensure!(
                e.message.contains("requested-by") && e.message.contains("carol"),
                "{what}: {}",
                e.message
            ),
            other => anyhow::bail!("{what} by carol was not refused: {other:?}"),
        }
    }
    let pin = json!({"metadata": {"annotations": {REQUESTED_BY_ANNOTATION: "carol"}},
        "spec": {"aliases": {"champion": 1}}});
    prod_models
        .patch("fraud", &PatchParams::default(), &Patch::Merge(&pin))
        .await?;
    serving_version(&prod_mds, 1)
        .await
        .context("prod rolls back to version 1")?;
    let history = models(&envs.prod)
        .get("fraud")
        .await?
        .status
        .context("status")?
        .alias_history;
    let rollback = history
        .iter()
        .rev()
        .find(|m| m.alias == "champion" && m.reason == "Pinned")
        .context("no pin in the alias history")?;
    ensure!(
        rollback.to == 1 && rollback.by.as_deref() == Some("carol"),
        "{rollback:?}"
    );
    for ns in [&envs.test, &envs.preview] {
        let aliases = models(ns)
            .get("fraud")
            .await?
            .status
            .context("status")?
            .aliases;
        ensure!(
            aliases.get("champion") == Some(&2),
            "{}: {aliases:?}",
            ns.name
        );
    }

    refusals(envs, &carol, &bob, &dir).await?;

    // 11. Deleting the test environment leaves prod serving.
    Api::<k8s_openapi::api::core::v1::Namespace>::all(home.client.clone())
        .delete("risk-test", &DeleteParams::default())
        .await?;
    wait(Duration::from_secs(120), "risk-test to go", || async {
        Ok(!kubectl(&["get", "namespace", "risk-test"])?.0)
    })
    .await?;
    for _ in 0..20 {
        let (code, body) = prod_endpoint.call(&request).await?;
        ensure!(code == 200, "prod after risk-test is gone: {code} {body}");
    }
    let model = models(&envs.prod).get("fraud").await?;
    ensure!(
        ready(&model),
        "prod's Model stays Ready: {:?}",
        model.status
    );
    Ok(())
}

/// The refusals not yet shown: a user with rights only in prod following
/// preview, a forged requester, a prod Model following test directly, and
/// an artifact changed in storage after it was proven.
async fn refusals(envs: &Environments, carol: &Client, bob: &Client, dir: &Path) -> Result<()> {
    let follower = |name: &str, from: &str, version: i64, requester: &str| {
        format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: {name}, annotations: {{"{REQUESTED_BY_ANNOTATION}": {requester}}}}}
spec:
  source: {{promotedFrom: {{namespace: {from}, model: fraud, version: {version}}}}}
  promotion: {{requires: {{evidenceFrom: [risk-preview], approvals: 1}}}}
"#
        )
    };
    // Carol may promote from preview (the example's setup bound her) but not
    // from test.
    let err = apply(
        carol,
        Some("risk-prod"),
        &follower("from-test", "risk-test", 2, "carol"),
    )
    .await
    .err()
    .context("carol cannot follow risk-test")?;
    let err = format!("{err:#}");
    ensure!(
        err.contains("carol may not promote models from namespace risk-test"),
        "{err}"
    );
    // Nobody asks in someone else's name.
    let err = apply(
        carol,
        Some("risk-prod"),
        &follower("forged", "risk-preview", 2, "alice"),
    )
    .await
    .err()
    .context("a forged requester is refused")?;
    ensure!(
        format!("{err:#}").contains("must be your own user name (carol)"),
        "{err:#}"
    );
    // The admin may follow test directly; the version lacks preview's
    // evidence and is refused with a reason that says so.
    envs.prod
        .apply(&follower("from-test", "risk-test", 2, ADMIN))
        .await?;
    let refused = wait_for(
        &envs.prod.api::<Model>(),
        "from-test",
        TIMEOUT,
        |m: Option<&Model>| reason(m) == Some("EvidenceMissing".into()),
    )
    .await?;
    let message = follow_message(&refused);
    ensure!(
        message.contains("has no evidence from risk-preview"),
        "{message}"
    );

    // Bob approves the digest preview proved for its version 2; then the
    // artifact changes in storage; a Model that follows that version now
    // refuses it.
    let sha256 = version(&envs.preview.api::<Model>().get("fraud").await?, 2)?
        .sha256
        .context("preview's digest of version 2")?;
    approve_for(bob, "bob-approves-tampered", "tampered", "bob", &sha256).await?;
    let artifact = dir.join("environments/test/fraud/2/model.onnx");
    let original = std::fs::read(&artifact)?;
    let restore = Restore(artifact.clone(), original.clone());
    std::fs::copy(dir.join("environments/test/fraud/1/model.onnx"), &artifact)?;
    envs.prod
        .apply(&follower("tampered", "risk-preview", 2, "carol"))
        .await?;
    let refused = wait_for(
        &envs.prod.api::<Model>(),
        "tampered",
        TIMEOUT,
        |m: Option<&Model>| reason(m) == Some("DigestMismatch".into()),
    )
    .await?;
    drop(restore);
    let versions = refused.status.map(|s| s.versions).unwrap_or_default();
    ensure!(
        versions.len() == 1 && versions[0].reason.as_deref() == Some("DigestMismatch"),
        "the changed artifact is recorded as refused, never served: {versions:?}"
    );
    Ok(())
}

/// `kubectl aimass export` of prod's version 2, applied to `fresh`: the
/// version recorded there has `record`'s sha256 and provenance, one step
/// longer and marked declared.
async fn exported_elsewhere(fresh: &TestNamespace, record: &ModelVersion) -> Result<()> {
    let plugin = aimass_e2e::operator::target_dir().join("debug/kubectl-aimass");
    let mut command = std::process::Command::new(&plugin);
    command.args([
        "export",
        "fraud",
        "-n",
        "risk-prod",
        "--version",
        "2",
        "--name",
        "fraud-imported",
    ]);
    if let Some(config) = kubeconfig() {
        command.env("KUBECONFIG", config);
    }
    let out = command
        .output()
        .with_context(|| format!("running {}", plugin.display()))?;
    ensure!(
        out.status.success(),
        "export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = String::from_utf8(out.stdout)?;
    fresh.apply(&manifest).await?;
    let imported = wait_for(
        &fresh.api::<Model>(),
        "fraud-imported",
        TIMEOUT,
        |m: Option<&Model>| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| !s.versions.is_empty())
        },
    )
    .await?;
    let version = version(&imported, 1)?;
    ensure!(
        version.sha256 == record.sha256 && version.phase == record.phase,
        "{version:?}"
    );
    let (theirs, ours) = (
        record.provenance.clone().context("prod's provenance")?,
        version
            .provenance
            .clone()
            .context("the imported provenance")?,
    );
    ensure!(
        ours.declared && ours.steps.len() == theirs.steps.len() + 1,
        "{ours:?}"
    );
    ensure!(
        ours.steps[..theirs.steps.len()] == theirs.steps[..],
        "the history is carried as exported"
    );
    let here = ours.steps.last().context("a step here")?;
    ensure!(
        here.namespace == fresh.name && here.version == 1,
        "{here:?}"
    );
    Ok(())
}

/// Puts a file's bytes back when dropped.
struct Restore(PathBuf, Vec<u8>);

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, &self.1);
    }
}

/// The chart's admission policies and user roles, as `helm template`
/// renders them, applied to the cluster and removed when dropped.
struct ChartPolicies(String);

impl ChartPolicies {
    fn install() -> Result<Self> {
        let (ok, yaml, err) = helm(&[
            "template",
            RELEASE,
            &repo_root().join("charts/aimass").display().to_string(),
            "--show-only",
            "templates/admission.yaml",
            "--show-only",
            "templates/user-roles.yaml",
            "--set",
            &format!("admission.operatorUsername={ADMIN}"),
        ])?;
        ensure!(ok, "helm template: {err}");
        let file = std::env::temp_dir().join(format!("aimass-e2e-{RELEASE}-policies.yaml"));
        std::fs::write(&file, &yaml)?;
        let path = file.display().to_string();
        let (ok, _, err) = kubectl(&["apply", "-f", &path])?;
        ensure!(ok, "applying the chart's policies: {err}");
        Ok(Self(path))
    }
}

impl Drop for ChartPolicies {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "--ignore-not-found", "-f", &self.0]);
    }
}

/// An overlay of examples/environments as `kubectl kustomize` renders it,
/// its storage and data moved into `dir`.
fn render(env: &str, dir: &Path) -> Result<String> {
    let overlay = repo_root().join("examples/environments").join(env);
    let (ok, yaml, err) = kubectl(&["kustomize", &overlay.display().to_string()])?;
    ensure!(ok, "kubectl kustomize {env}: {err}");
    Ok(yaml.replace("/tmp/aimass-demo", &dir.display().to_string()))
}

/// Applies the overlays: the platform admin applies everything but the
/// Models; the Models are applied by the users who own them, with their own
/// name as requester. Carol may not follow preview until she is allowed to
/// promote from there.
async fn setup(
    envs: &Environments,
    alice: &Client,
    carol: &Client,
    overlays: [&str; 3],
) -> Result<()> {
    let places = [
        (&envs.test, alice, "alice"),
        (&envs.preview, alice, "alice"),
        (&envs.prod, carol, "carol"),
    ];
    let mut models = Vec::new();
    for ((ns, client, user), yaml) in places.into_iter().zip(overlays) {
        let mut rest = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
            let mut value: Value = serde::Deserialize::deserialize(doc)?;
            if value["kind"] == "Model" {
                value["metadata"]["annotations"] = json!({REQUESTED_BY_ANNOTATION: user});
                models.push((
                    ns.name.clone(),
                    client.clone(),
                    serde_json::to_string(&value)?,
                ));
            } else if value["kind"] != "Namespace" {
                rest.push(serde_json::to_string(&value)?);
            }
        }
        ns.apply(&rest.join("\n---\n")).await?;
    }
    let (prod_ns, prod_client, prod_model) = models.pop().context("prod's Model")?;
    for (ns, client, model) in &models {
        apply(client, Some(ns), model).await?;
    }
    let err = apply(&prod_client, Some(&prod_ns), &prod_model)
        .await
        .err()
        .context("carol cannot follow preview before she may promote from it")?;
    let err = format!("{err:#}");
    ensure!(
        err.contains("carol may not promote models from namespace risk-preview"),
        "{err}"
    );
    bind(
        &envs.preview,
        "carol",
        "ClusterRole",
        &format!("{RELEASE}-aimass-model-promoter"),
    )
    .await?;
    wait(Duration::from_secs(30), "carol's promote right", || async {
        Ok(kubectl(&[
            "auth",
            "can-i",
            "promote",
            "models.aimass.io",
            "-n",
            "risk-preview",
            "--as",
            "carol",
        ])?
        .0)
    })
    .await?;
    apply(&prod_client, Some(&prod_ns), &prod_model).await?;
    Ok(())
}

/// Binds `user` to a role in `ns`.
async fn bind(ns: &TestNamespace, user: &str, kind: &str, role: &str) -> Result<()> {
    ns.apply(&format!(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: "{user}-{role}"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: {kind}, name: "{role}"}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]
"#
    ))
    .await?;
    Ok(())
}

/// Creates, as `client`, ModelApproval `name` of `sha256` for prod's
/// `fraud`, signed `approved_by`.
async fn approve(client: &Client, name: &str, approved_by: &str, sha256: &str) -> Result<()> {
    approve_for(client, name, "fraud", approved_by, sha256).await
}

async fn approve_for(
    client: &Client,
    name: &str,
    model: &str,
    by: &str,
    sha256: &str,
) -> Result<()> {
    let approval: ModelApproval = serde_json::from_value(json!({
        "apiVersion": "aimass.io/v1alpha1", "kind": "ModelApproval",
        "metadata": {"name": name},
        "spec": {"model": model, "sha256": sha256, "approvedBy": by, "comment": "MRM-42 reviewed"}
    }))?;
    Api::<ModelApproval>::namespaced(client.clone(), "risk-prod")
        .create(&Default::default(), &approval)
        .await?;
    Ok(())
}

/// Waits until Model `fraud`'s champion is `version`.
async fn champion(models: &Api<Model>, version: i64) -> Result<Model> {
    wait_for(models, "fraud", TIMEOUT, move |m: Option<&Model>| {
        m.and_then(|m| m.status.as_ref()?.aliases.get("champion").copied()) == Some(version)
    })
    .await
}

/// Waits until ModelDeployment `fraud-scoring` serves `version` and is Ready.
async fn serving_version(mds: &Api<ModelDeployment>, version: i64) -> Result<ModelDeployment> {
    let served = wait_for(
        mds,
        "fraud-scoring",
        TIMEOUT,
        move |md: Option<&ModelDeployment>| {
            md.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                s.serving_version == Some(version)
                    && s.canary
                        .as_ref()
                        .is_none_or(|c| c.phase != CanaryPhase::Analysing)
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        },
    )
    .await;
    match served {
        Ok(md) => Ok(md),
        Err(e) => {
            let now = mds.get("fraud-scoring").await?.status;
            bail!("{e:#}: serving version {version}? {now:?}")
        }
    }
}

fn reason(model: Option<&Model>) -> Option<String> {
    model?.status.as_ref()?.follow.as_ref()?.reason.clone()
}

/// Waits until prod's `fraud` follow status has `wanted` as reason.
async fn follow_reason(models: &Api<Model>, wanted: &str) -> Result<Model> {
    let want = wanted.to_owned();
    wait_for(models, "fraud", TIMEOUT, move |m: Option<&Model>| {
        reason(m).as_deref() == Some(want.as_str())
    })
    .await
    .with_context(|| format!("waiting for {wanted}"))
}

fn follow_message(model: &Model) -> String {
    model
        .status
        .as_ref()
        .and_then(|s| s.follow.as_ref()?.message.clone())
        .unwrap_or_default()
}

fn counted(approval: Option<&ModelApproval>) -> Option<(&str, &str)> {
    let c = approval?
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Counted")?;
    Some((c.status.as_str(), c.reason.as_str()))
}

fn ready(model: &Model) -> bool {
    model.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn version(model: &Model, number: i64) -> Result<ModelVersion> {
    model
        .status
        .as_ref()
        .and_then(|s| s.versions.iter().find(|v| v.version == number).cloned())
        .with_context(|| format!("version {number} of {:?}", model.status))
}

/// Prod's record of version 2: three steps, test's run asked for by alice,
/// preview's evidence, bob's approval of carol's promotion.
fn check_provenance(record: &ModelVersion, run: &str) -> Result<()> {
    let steps = &record.provenance.as_ref().context("provenance")?.steps;
    let places: Vec<_> = steps.iter().map(|s| s.namespace.as_str()).collect();
    ensure!(
        places == ["risk-test", "risk-preview", "risk-prod"],
        "{steps:?}"
    );
    ensure!(
        steps[0].requested_by.as_deref() == Some("alice")
            && steps[0].training_job.as_deref() == Some(run),
        "{:?}",
        steps[0]
    );
    let evidence = steps[1].evidence.as_ref().context("preview's evidence")?;
    ensure!(
        evidence.namespace == "risk-preview" && evidence.requests >= 100,
        "{evidence:?}"
    );
    ensure!(
        steps[2].requested_by.as_deref() == Some("carol"),
        "{:?}",
        steps[2]
    );
    let approvers: Vec<_> = steps[2]
        .approvals
        .iter()
        .map(|a| a.approved_by.as_str())
        .collect();
    ensure!(approvers == ["bob"], "{:?}", steps[2]);
    ensure!(
        record
            .lineage
            .as_ref()
            .and_then(|l| l.training_job.as_deref())
            == Some(run),
        "{record:?}"
    );
    ensure!(
        record.metrics.contains_key("auc"),
        "the trainer's metrics travel: {record:?}"
    );
    Ok(())
}

/// The environment's scoring endpoint, called as its `fraud-scorer`, once
/// the Service answers.
async fn endpoint(ns: &TestNamespace) -> Result<Endpoint> {
    serving_version(&ns.api::<ModelDeployment>(), current(ns).await?).await?;
    let service = ns
        .api::<k8s_openapi::api::core::v1::Service>()
        .get("fraud-scoring")
        .await?;
    let ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .context("no ClusterIP")?;
    let endpoint = Endpoint {
        url: format!("http://{ip}/v2/models/fraud/infer"),
        token: ns.token("fraud-scorer", "aimass").await?,
    };
    endpoint.answers_steadily(&example_request()?, 10).await?;
    Ok(endpoint)
}

/// Waits, under a load of two callers, until the namespace's `fraud` has
/// proven `version`; no request may fail.
async fn proven_under_load(
    ns: &TestNamespace,
    endpoint: &Endpoint,
    request: &Value,
    version: i64,
) -> Result<Model> {
    let load = Load::start(endpoint, request, 2);
    let proven = wait_for(
        &ns.api::<Model>(),
        "fraud",
        TIMEOUT,
        move |m: Option<&Model>| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| s.evidence.iter().any(|e| e.version == version))
        },
    )
    .await
    .with_context(|| format!("{} proves version {version}", ns.name));
    let finished = load.finish_without_failures(0).await;
    let proven = proven?;
    finished.with_context(|| format!("{} under load", ns.name))?;
    Ok(proven)
}

/// The fraud example's request.
fn example_request() -> Result<Value> {
    let path = repo_root().join("examples/fraud-detection/request.json");
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

/// The champion of the namespace's `fraud`.
async fn current(ns: &TestNamespace) -> Result<i64> {
    let model = ns.api::<Model>().get("fraud").await?;
    match model
        .status
        .and_then(|s| s.aliases.get("champion").copied())
    {
        Some(v) => Ok(v),
        None => bail!("{} has no champion", ns.name),
    }
}
