//! Training and the model registry through the real API server: the
//! fraud-detection example trains, registers and promotes; failed runs leave
//! readable reasons; a killed operator neither duplicates a run nor a
//! version; a deleted Model recovers its history from storage; a schedule
//! starts runs on its cron tick.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::{Model, TrainingJob, TrainingPhase, VersionPhase};
use aimass_e2e::operator::{Operator, run_with_operator};
use aimass_e2e::{TestNamespace, kubectl, repo_root, run, wait, wait_for};
use anyhow::{Context, Result, ensure};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{DeleteParams, ListParams};

const TRAINING_TIMEOUT: Duration = Duration::from_secs(180);

fn generate_dataset(path: &Path) -> Result<()> {
    let status = std::process::Command::new("python3")
        .arg(repo_root().join("examples/fraud-detection/generate_dataset.py"))
        .arg(path)
        .status()?;
    ensure!(status.success(), "generate_dataset.py failed");
    Ok(())
}

/// The example's Model, with its paths moved into `dir`.
fn example_model(dir: &Path) -> Result<String> {
    let yaml = std::fs::read_to_string(repo_root().join("examples/fraud-detection/model.yaml"))?;
    Ok(yaml.replace("/tmp/aimass-demo", &dir.display().to_string()))
}

fn phase(tj: Option<&TrainingJob>) -> Option<TrainingPhase> {
    tj.and_then(|t| t.status.as_ref()).map(|s| s.phase)
}

fn finished(tj: Option<&TrainingJob>) -> bool {
    matches!(
        phase(tj),
        Some(TrainingPhase::Succeeded | TrainingPhase::Failed)
    )
}

/// Waits for the Model to hold `count` versions and returns it.
async fn versions(ns: &TestNamespace, model: &str, count: usize) -> Result<Model> {
    wait_for(
        &ns.api::<Model>(),
        model,
        TRAINING_TIMEOUT,
        move |m: Option<&Model>| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| s.versions.len() >= count)
        },
    )
    .await
}

/// A TrainingJob of the fraud trainer for `model` with these hyperparameters.
fn fraud_run(name: &str, dir: &Path, n_estimators: u32, max_depth: u32) -> String {
    format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: TrainingJob
metadata: {{name: {name}}}
spec:
  modelRef: {{name: card-fraud}}
  image: aimass/fraud-trainer:0.1
  dataset: {{uri: "file://{dir}/data/transactions.csv"}}
  hyperparameters: {{n_estimators: "{n_estimators}", max_depth: "{max_depth}"}}
  backoffLimit: 0
"#,
        dir = dir.display()
    )
}

#[tokio::test]
async fn the_fraud_example_trains_registers_and_promotes_only_better_versions() -> Result<()> {
    run_with_operator("train", |ns: Arc<TestNamespace>| async move {
        let dir = ns.scratch()?;
        generate_dataset(&dir.join("data/transactions.csv"))?;
        // Version 1: a deliberately small model, so later runs can beat it.
        let model_yaml = example_model(&dir)?
            .replace("n_estimators: \"60\"", "n_estimators: \"4\"")
            .replace("max_depth: \"3\"", "max_depth: \"2\"");
        ns.apply(&model_yaml).await?;

        let model = versions(&ns, "card-fraud", 1).await?;
        let status = model.status.clone().context("status")?;
        let v1 = &status.versions[0];
        ensure!(
            v1.phase == VersionPhase::Ready,
            "v1 is {:?}: {:?}",
            v1.phase,
            v1.message
        );
        ensure!(
            status.aliases.get("champion") == Some(&1),
            "champion: {:?}",
            status.aliases
        );
        ensure!(
            v1.metrics["auc"] > 0.8 && v1.metrics["ks"] > 0.4,
            "metrics {:?}",
            v1.metrics
        );
        ensure!(
            v1.metrics.contains_key("values_missing"),
            "cleaning counts are metrics: {:?}",
            v1.metrics
        );
        let lineage = v1.lineage.clone().context("lineage")?;
        ensure!(
            lineage.image.as_deref() == Some("aimass/fraud-trainer:0.1"),
            "{lineage:?}"
        );
        ensure!(
            lineage
                .dataset_uri
                .as_deref()
                .is_some_and(|d| d.ends_with("transactions.csv")),
            "{lineage:?}"
        );
        ensure!(
            lineage
                .hyperparameters
                .get("n_estimators")
                .map(String::as_str)
                == Some("4"),
            "{lineage:?}"
        );
        ensure!(
            v1.sha256.as_deref().is_some_and(|s| s.len() == 64),
            "{v1:?}"
        );
        let signature = v1.signature.clone().context("signature")?;
        ensure!(
            signature.inputs[0].name == "transactions" && signature.inputs[0].shape == [-1, 8],
            "{signature:?}"
        );
        let record = dir.join("registry/card-fraud/1/version.json");
        ensure!(record.exists(), "{} is missing", record.display());

        // The run that produced it, with its progress read from the logs.
        let tj_name = lineage.training_job.clone().context("training job name")?;
        let tj = ns.api::<TrainingJob>().get(&tj_name).await?;
        let tj_status = tj.status.clone().context("tj status")?;
        ensure!(tj_status.phase == TrainingPhase::Succeeded, "{tj_status:?}");
        ensure!(
            tj.metadata.uid == lineage.training_job_uid,
            "lineage names the run's uid"
        );
        ensure!(
            tj_status
                .metrics_history
                .iter()
                .any(|s| s.step == Some(4) && s.metrics.contains_key("auc")),
            "the per-stage lines were followed: {:?}",
            tj_status.metrics_history
        );
        ensure!(
            tj_status
                .metrics_summary
                .as_deref()
                .is_some_and(|s| s.contains("auc=")),
            "{tj_status:?}"
        );

        let (ok, out, err) = kubectl(&["get", "trainingjobs,models", "-n", &ns.name])?;
        ensure!(ok, "{err}");
        ensure!(
            out.contains("Succeeded") && out.contains("auc=") && out.contains("CHAMPION"),
            "{out}"
        );

        // Version 2: worse than the gates allow; registered, not promoted.
        ns.apply(&fraud_run("weaker", &dir, 1, 1)).await?;
        let model = versions(&ns, "card-fraud", 2).await?;
        let status = model.status.clone().context("status")?;
        let v2 = &status.versions[1];
        ensure!(
            v2.phase == VersionPhase::Ready && v2.reason.as_deref() == Some("GatesFailed"),
            "{v2:?}"
        );
        ensure!(
            v2.message
                .as_deref()
                .is_some_and(|m| m.contains("auc") && m.contains("< 0.8")),
            "{v2:?}"
        );
        ensure!(
            status.aliases.get("champion") == Some(&1),
            "champion stays: {:?}",
            status.aliases
        );
        ensure!(
            !ns.events("GatesFailed").await?.is_empty(),
            "an Event says why"
        );

        // Version 3: better by more than the margin; promoted.
        ns.apply(&fraud_run("stronger", &dir, 40, 3)).await?;
        let model = versions(&ns, "card-fraud", 3).await?;
        let status = model.status.clone().context("status")?;
        ensure!(
            status.aliases.get("champion") == Some(&3),
            "champion moves: {:?} {:?}",
            status.aliases,
            status.versions[2]
        );
        let last = status.alias_history.last().context("alias history")?;
        ensure!(
            last.alias == "champion"
                && last.from == Some(1)
                && last.to == 3
                && last.reason == "Promoted",
            "{last:?}"
        );
        ensure!(
            last.message.as_deref().is_some_and(|m| m.contains("of v1")),
            "evidence names the champion: {last:?}"
        );
        ensure!(
            !ns.events("AliasMoved").await?.is_empty(),
            "alias moves are Events"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn failed_runs_leave_readable_reasons_and_no_ready_version() -> Result<()> {
    run_with_operator("trainfail", |ns: Arc<TestNamespace>| async move {
        let dir = ns.scratch()?;
        let registry = dir.join("registry");
        ns.apply(&format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: card-fraud}}
spec:
  storage: {{prefix: "file://{registry}"}}
  source: {{uri: "file://{zoo}"}}
---
apiVersion: aimass.io/v1alpha1
kind: TrainingJob
metadata: {{name: exits-1}}
spec:
  modelRef: {{name: card-fraud}}
  image: busybox
  command: [sh, -c, "echo loading data; echo 'ValueError: column amount has strings'; exit 1"]
  dataset: {{uri: "file:///data/x.csv"}}
  backoffLimit: 0
---
apiVersion: aimass.io/v1alpha1
kind: TrainingJob
metadata: {{name: corrupt-artifact}}
spec:
  modelRef: {{name: card-fraud}}
  image: busybox
  command: [sh, -c, 'p="${{AIMASS_OUTPUT_URI#file://}}"; mkdir -p "$p"; echo not-onnx > "$p/model.onnx"; echo "{{\"auc\": 0.99}}" > "$p/metrics.json"']
  dataset: {{uri: "file:///data/x.csv"}}
  backoffLimit: 0
---
apiVersion: aimass.io/v1alpha1
kind: TrainingJob
metadata: {{name: missing-dataset}}
spec:
  modelRef: {{name: card-fraud}}
  image: aimass/fraud-trainer:0.1
  dataset: {{uri: "file://{dir}/no-such-file.csv"}}
  backoffLimit: 0
---
apiVersion: aimass.io/v1alpha1
kind: TrainingJob
metadata: {{name: missing-image}}
spec:
  modelRef: {{name: card-fraud}}
  image: registry.example/no-such-trainer:1.0
  dataset: {{uri: "file:///data/x.csv"}}
  backoffLimit: 0
"#,
            registry = registry.display(),
            dir = dir.display(),
            zoo = repo_root().join("tests/zoo/models/gbdt_classifier.onnx").display(),
        ))
        .await?;

            let jobs = ns.api::<TrainingJob>();
            let mut finals = std::collections::BTreeMap::new();
            for name in ["exits-1", "corrupt-artifact", "missing-dataset", "missing-image"] {
                let tj = wait_for(&jobs, name, TRAINING_TIMEOUT, |t: Option<&TrainingJob>| finished(t)).await?;
                finals.insert(name, tj.status.context("status")?);
            }
            let exits = &finals["exits-1"];
            ensure!(exits.phase == TrainingPhase::Failed && exits.reason.as_deref() == Some("BackoffLimitExceeded"), "{exits:?}");
            let message = exits.message.clone().unwrap_or_default();
            ensure!(message.contains("exited with code 1") && message.contains("ValueError: column amount has strings"), "{message}");
            ensure!(exits.conditions.iter().any(|c| c.type_ == "Failed" && c.status == "True"), "{exits:?}");

            let dataset = &finals["missing-dataset"];
            ensure!(dataset.phase == TrainingPhase::Failed && dataset.reason.as_deref() == Some("DatasetUnavailable"), "{dataset:?}");
            ensure!(dataset.message.as_deref().is_some_and(|m| m.contains("no-such-file.csv") && m.contains("does not exist")), "{dataset:?}");

            let image = &finals["missing-image"];
            ensure!(image.phase == TrainingPhase::Failed && image.reason.as_deref() == Some("ImageUnavailable"), "{image:?}");

            let corrupt = &finals["corrupt-artifact"];
            ensure!(corrupt.phase == TrainingPhase::Failed && corrupt.reason.as_deref() == Some("ArtifactInvalid") && corrupt.start_time.is_some(), "{corrupt:?}");
            let version = corrupt.model_version.context("a version was reserved")?;
            // The Model shows that version Rejected with the reason, and the
            // failed runs produced no version at all.
            let model = wait_for(&ns.api::<Model>(), "card-fraud", TRAINING_TIMEOUT, move |m: Option<&Model>| {
                m.and_then(|m| m.status.as_ref()).is_some_and(|s| s.versions.iter().any(|v| v.version == version))
            })
            .await?;
            let status = model.status.context("model status")?;
            let rejected = status.versions.iter().find(|v| v.version == version).context("rejected version")?;
            ensure!(rejected.phase == VersionPhase::Rejected && rejected.reason.as_deref() == Some("ArtifactInvalid"), "{rejected:?}");
            ensure!(rejected.message.as_deref().is_some_and(|m| m.contains("does not load")), "{rejected:?}");
            // The import is validated by its own Job, so runs may reserve
            // numbers before it is recorded: find it by its lineage.
            let imported = status
                .versions
                .iter()
                .find(|v| v.lineage.as_ref().is_some_and(|l| l.imported_from.is_some()))
                .context("the imported version")?;
            ensure!(status.aliases.get("champion") == Some(&imported.version), "the imported version stays champion: {status:?}");
            for failed in ["exits-1", "missing-dataset", "missing-image"] {
                let reserved = finals[failed].model_version;
                ensure!(!status.versions.iter().any(|v| Some(v.version) == reserved), "{failed} produced no version");
            }
            ensure!(!ns.events("DatasetUnavailable").await?.is_empty(), "failures are Events");
            Ok(())
        })
    .await
}

/// A trainer that takes a few seconds, prints progress and writes a zoo model.
fn slow_trainer(zoo_model: &Path) -> String {
    format!(
        r#"echo '{{"step": 1, "metrics": {{"loss": 0.5}}}}'; sleep 8; echo '{{"step": 2, "metrics": {{"loss": 0.25}}}}'; p="${{AIMASS_OUTPUT_URI#file://}}"; mkdir -p "$p"; cp {} "$p/model.onnx"; echo '{{"auc": 0.91}}' > "$p/metrics.json""#,
        zoo_model.display()
    )
}

#[tokio::test]
async fn a_killed_operator_leaves_one_run_and_one_version_and_a_deleted_model_recovers()
-> Result<()> {
    run("trainkill", |ns: Arc<TestNamespace>| async move {
        let dir = ns.scratch()?;
        let model_yaml = format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: scorer}}
spec:
  storage: {{prefix: "file://{registry}"}}
  source:
    training:
      template:
        image: busybox
        command: [sh, -c, {script}]
        dataset: {{uri: "file:///data/x.csv"}}
"#,
            registry = dir.join("registry").display(),
            script = serde_json::to_string(&slow_trainer(
                &repo_root().join("tests/zoo/models/gbdt_classifier.onnx")
            ))?,
        );
        let first = Operator::start(&ns, "a")?;
        ns.apply(&model_yaml).await?;
        let jobs = ns.api::<TrainingJob>();
        wait(TRAINING_TIMEOUT, "the first run to be Running", || async {
            Ok(jobs
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .any(|t| phase(Some(t)) == Some(TrainingPhase::Running)))
        })
        .await?;
        first.kill();
        let second = Operator::start(&ns, "b")?;
        let result = async {
            let model = versions(&ns, "scorer", 1).await?;
            let runs = jobs.list(&ListParams::default()).await?.items;
            ensure!(
                runs.len() == 1,
                "one TrainingJob: {:?}",
                runs.iter()
                    .map(|r| r.metadata.name.clone())
                    .collect::<Vec<_>>()
            );
            let batch = ns.api::<Job>().list(&ListParams::default()).await?.items;
            ensure!(batch.len() == 1, "one batch Job, got {}", batch.len());
            let status = model.status.clone().context("status")?;
            ensure!(
                status.versions.len() == 1 && status.versions[0].version == 1,
                "{:?}",
                status.versions
            );
            ensure!(
                status.aliases.get("champion") == Some(&1),
                "{:?}",
                status.aliases
            );
            let run = &runs[0];
            wait_for(
                &jobs,
                &run.metadata.name.clone().unwrap_or_default(),
                TRAINING_TIMEOUT,
                |t: Option<&TrainingJob>| finished(t),
            )
            .await?;
            let sha = status.versions[0].sha256.clone();

            // Delete the Model (its runs go with it) and apply it again: the
            // history comes back from storage, and no new run starts.
            ns.api::<Model>()
                .delete("scorer", &DeleteParams::foreground())
                .await?;
            wait(
                TRAINING_TIMEOUT,
                "the Model and its runs to be gone",
                || async {
                    Ok(ns.api::<Model>().get_opt("scorer").await?.is_none()
                        && jobs.list(&ListParams::default()).await?.items.is_empty())
                },
            )
            .await?;
            ns.apply(&model_yaml).await?;
            let model = versions(&ns, "scorer", 1).await?;
            let status = model.status.context("status")?;
            ensure!(
                status.versions.len() == 1 && status.versions[0].sha256 == sha,
                "recovered: {:?}",
                status.versions
            );
            ensure!(
                status.aliases.get("champion") == Some(&1),
                "aliases recovered: {:?}",
                status.aliases
            );
            ensure!(
                !ns.events("VersionsRecovered").await?.is_empty(),
                "recovery is an Event"
            );
            ensure!(
                jobs.list(&ListParams::default()).await?.items.is_empty(),
                "a recovered Model starts no run"
            );
            Ok(())
        }
        .await;
        if result.is_err() {
            eprintln!("operator log:\n{}", second.log_tail(80));
        }
        result
    })
    .await
}

#[tokio::test]
async fn a_scheduled_model_starts_a_run_on_its_cron_tick() -> Result<()> {
    run_with_operator("trainsched", |ns: Arc<TestNamespace>| async move {
        let dir = ns.scratch()?;
        let script = format!(
            r#"p="${{AIMASS_OUTPUT_URI#file://}}"; mkdir -p "$p"; cp {} "$p/model.onnx""#,
            repo_root()
                .join("tests/zoo/models/gbdt_classifier.onnx")
                .display()
        );
        ns.apply(&format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: nightly}}
spec:
  storage: {{prefix: "file://{registry}"}}
  source:
    training:
      schedule: "* * * * *"
      template:
        image: busybox
        command: [sh, -c, {script}]
        dataset: {{uri: "file:///data/x.csv"}}
"#,
            registry = dir.join("registry").display(),
            script = serde_json::to_string(&script)?,
        ))
        .await?;

        let jobs = ns.api::<TrainingJob>();
        wait(
            Duration::from_secs(150),
            "a run started by the schedule",
            || async {
                Ok(jobs
                    .list(&ListParams::default())
                    .await?
                    .items
                    .iter()
                    .any(|t| {
                        t.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("aimass.io/scheduled-at"))
                            .is_some_and(|at| {
                                let created = t
                                    .metadata
                                    .creation_timestamp
                                    .as_ref()
                                    .map_or(0, |c| c.0.as_second());
                                at.parse::<i64>()
                                    .is_ok_and(|tick| tick % 60 == 0 && tick <= created)
                            })
                    }))
            },
        )
        .await?;
        let model = ns.api::<Model>().get("nightly").await?;
        let status = model.status.context("status")?;
        ensure!(
            status.last_scheduled_time.is_some() && status.next_scheduled_time.is_some(),
            "{status:?}"
        );
        Ok(())
    })
    .await
}
