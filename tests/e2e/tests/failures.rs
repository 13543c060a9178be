//! Every failure says why, within one reconcile: a Model whose artifact is
//! missing, a Model whose registry Secret is missing and TrainingJobs whose
//! Model's registry Secret or data set Secret is missing each show a false
//! condition naming what is
//! missing, a Warning Event and a WARN line in the operator's log; the
//! ModelDeployment following such a Model quotes the Model's problem.

use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::{Model, ModelDeployment, TrainingJob};
use aimass_e2e::operator::Operator;
use aimass_e2e::{TestNamespace, wait, wait_for, zoo};
use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::ListParams;

/// The acceptance bound: one reconcile and its retry.
const SOON: Duration = Duration::from_secs(30);

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "False")
}

/// Waits until `name` has a Warning Event whose reason is `reason` and whose
/// note contains `says`.
async fn warning(ns: &TestNamespace, name: &str, reason: &str, says: &str) -> Result<()> {
    wait(
        SOON,
        &format!("a Warning {reason} Event on {name} saying {says:?}"),
        || async {
            let events = ns
                .api::<Event>()
                .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
                .await?;
            Ok(events.items.iter().any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.reason.as_deref() == Some(reason)
                    && e.message.as_deref().is_some_and(|m| m.contains(says))
            }))
        },
    )
    .await
}

/// Waits until Model `name` says Ready=False with `reason`; returns the
/// Model and that condition.
async fn not_ready(models: &Api<Model>, name: &str, reason: &str) -> Result<(Model, Condition)> {
    let model = wait_for(models, name, SOON, |m: Option<&Model>| {
        m.and_then(|m| m.status.as_ref())
            .and_then(|s| condition(&s.conditions, "Ready"))
            .is_some_and(|c| c.reason == reason)
    })
    .await?;
    let ready = condition(
        &model.status.as_ref().context("status")?.conditions,
        "Ready",
    )
    .context("Ready")?
    .clone();
    Ok((model, ready))
}

/// Waits until TrainingJob `name` says Running=False, ReferenceNotFound,
/// naming `secret` and when it retries, in status, an Event and the log,
/// with no Job made.
async fn missing_secret_stops(
    ns: &TestNamespace,
    operator: &Operator,
    name: &str,
    secret: &str,
) -> Result<()> {
    let tj = wait_for(
        &ns.api::<TrainingJob>(),
        name,
        SOON,
        |tj: Option<&TrainingJob>| {
            tj.and_then(|t| t.status.as_ref())
                .and_then(|s| condition(&s.conditions, "Running"))
                .is_some_and(|c| c.reason == "ReferenceNotFound")
        },
    )
    .await?;
    let status = tj.status.context("status")?;
    let running = condition(&status.conditions, "Running").context("Running")?;
    ensure!(
        running.message.contains(secret)
            && running
                .message
                .contains("retries in 10 s, then less and less often"),
        "{name}: {}",
        running.message
    );
    ensure!(
        status.job_name.is_none(),
        "{name} made a Job without its Secret"
    );
    warning(ns, name, "ReferenceNotFound", secret).await?;
    warned(operator, secret).await
}

/// Waits until the operator's log has a WARN line containing `says`.
async fn warned(operator: &Operator, says: &str) -> Result<()> {
    wait(SOON, &format!("a WARN line saying {says:?}"), || async {
        let log = std::fs::read_to_string(&operator.log)?;
        Ok(log
            .lines()
            .any(|l| l.contains(" WARN ") && l.contains(says)))
    })
    .await
}

#[tokio::test]
async fn missing_artifacts_and_secrets_show_in_status_events_and_the_log() -> Result<()> {
    aimass_e2e::run("failures", |ns: Arc<TestNamespace>| async move {
        let operator = Operator::start(&ns, "a")?;
        let missing_file = std::env::temp_dir()
            .join("aimass-e2e")
            .join(&ns.name)
            .join("no-such-model.onnx");
        ns.apply(&format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: missing-file}}
spec:
  source: {{uri: "file://{missing}"}}
---
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: missing-secret}}
spec:
  storage: {{prefix: "s3://registry/desk", secretRef: {{name: no-such-secret}}}}
  source: {{uri: "{zoo}"}}
---
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: missing-source-secret}}
spec:
  source: {{uri: "{zoo}", secretRef: {{name: no-such-source-secret}}}}
---
apiVersion: aimass.io/v1alpha1
kind: ModelDeployment
metadata: {{name: follows-missing-secret}}
spec:
  model: {{name: missing-secret}}
---
apiVersion: aimass.io/v1alpha1
kind: TrainingJob
metadata: {{name: missing-storage-secret}}
spec:
  modelRef: {{name: missing-secret}}
  image: busybox
  dataset: {{uri: "file:///data/x.csv"}}
---
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: trains-here}}
spec:
  storage: {{prefix: "file://{registry}"}}
  source: {{uri: "{zoo}"}}
---
apiVersion: aimass.io/v1alpha1
kind: TrainingJob
metadata: {{name: missing-dataset-secret}}
spec:
  modelRef: {{name: trains-here}}
  image: busybox
  dataset: {{uri: "s3://data/x.csv", secretRef: {{name: no-such-dataset-secret}}}}
---
apiVersion: aimass.io/v1alpha1
kind: TrainingJob
metadata: {{name: orphan}}
spec:
  modelRef: {{name: no-such-model}}
  image: busybox
  dataset: {{uri: "file:///data/x.csv"}}
"#,
            missing = missing_file.display(),
            zoo = zoo("gbdt_classifier"),
            registry = missing_file.with_file_name("registry").display(),
        ))
        .await?;
        let models = ns.api::<Model>();

        // The artifact that is not there: its version is rejected, and
        // the Model says so, quoting the path.
        let path = missing_file.display().to_string();
        let (model, ready) = not_ready(&models, "missing-file", "VersionsRejected").await?;
        let registered = model
            .status
            .as_ref()
            .and_then(|s| s.latest_registered_version);
        ensure!(
            registered == Some(1),
            "latestRegisteredVersion {registered:?}"
        );
        ensure!(ready.message.contains(&path), "{}", ready.message);
        warning(&ns, "missing-file", "VersionRejected", &path).await?;
        let health = aimass_e2e::argocd_health(&ns.name, "model/missing-file", "health.lua")?;
        ensure!(
            health.starts_with("Degraded: VersionsRejected"),
            "Argo CD health: {health}"
        );
        warned(&operator, &path).await?;

        // The registry Secret that is not there.
        let (_, ready) = not_ready(&models, "missing-secret", "ReferenceNotFound").await?;
        ensure!(
            ready.message.contains("no-such-secret")
                && ready
                    .message
                    .contains("retries in 10 s, then less and less often"),
            "{}",
            ready.message
        );
        warning(&ns, "missing-secret", "ReferenceNotFound", "no-such-secret").await?;
        warned(&operator, "no-such-secret").await?;

        // Its ModelDeployment names the Model's problem, not a missing alias,
        // and has no address, since no Service answers for it.
        let md = wait_for(
            &ns.api::<ModelDeployment>(),
            "follows-missing-secret",
            SOON,
            |md: Option<&ModelDeployment>| {
                md.and_then(|m| m.status.as_ref())
                    .and_then(|s| condition(&s.conditions, "Ready"))
                    .is_some_and(|c| {
                        c.message.contains("no-such-secret") && c.message.contains("missing-secret")
                    })
            },
        )
        .await?;

        let url = md.status.and_then(|s| s.url);
        ensure!(url.is_none(), "status.url without a Service: {url:?}");

        // The TrainingJobs whose Secrets are missing: the registry's (their
        // Model's) and the data set's; neither starts a Job.
        for (name, secret) in [
            ("missing-storage-secret", "no-such-secret"),
            ("missing-dataset-secret", "no-such-dataset-secret"),
        ] {
            missing_secret_stops(&ns, &operator, name, secret).await?;
        }

        // The Secret that reads source.uri: nothing is fetched without it,
        // and nothing is rejected for good.
        wait_for(
            &models,
            "missing-source-secret",
            SOON,
            |m: Option<&Model>| {
                m.and_then(|m| m.status.as_ref())
                    .and_then(|s| condition(&s.conditions, "Ready"))
                    .is_some_and(|c| {
                        c.reason == "ReferenceNotFound"
                            && c.message.contains("no-such-source-secret")
                    })
            },
        )
        .await?;
        warning(
            &ns,
            "missing-source-secret",
            "ReferenceNotFound",
            "no-such-source-secret",
        )
        .await?;
        ns.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: no-such-source-secret}\n")
            .await?;
        wait_for(
            &models,
            "missing-source-secret",
            Duration::from_secs(60),
            |m: Option<&Model>| {
                m.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                    s.versions.len() == 1
                        && s.versions[0].phase == aimass_crds::v1alpha1::VersionPhase::Ready
                })
            },
        )
        .await
        .context("the import once the Secret exists")?;

        // The TrainingJob naming a Model that does not exist.
        warning(&ns, "orphan", "ReferenceNotFound", "no-such-model").await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_validation_pod_that_cannot_start_says_why() -> Result<()> {
    aimass_e2e::run("blocked", |ns: Arc<TestNamespace>| async move {
        // An operator whose validation image no node can pull.
        let operator = Operator::start_with_env(
            &ns,
            "a",
            &[(
                "AIMASS_INFERENCE_SERVER_IMAGE",
                "registry.example.com/nowhere:1",
            )],
        )?;
        ns.apply(&format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: blocked}}
spec:
  source: {{uri: "{zoo}"}}
"#,
            zoo = zoo("gbdt_classifier"),
        ))
        .await?;
        let (_, ready) = not_ready(&ns.api::<Model>(), "blocked", "ValidationBlocked").await?;
        ensure!(
            ready.message.contains("registry.example.com/nowhere:1")
                && (ready.message.contains("ErrImagePull")
                    || ready.message.contains("ImagePullBackOff")),
            "{}",
            ready.message
        );
        warning(&ns, "blocked", "ValidationBlocked", "nowhere").await?;
        warned(&operator, "nowhere").await?;
        Ok(())
    })
    .await
}
