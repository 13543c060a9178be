//! Drift through the real API server and the node agent: the fraud
//! example's trainer writes its baseline, the server counts 2,000 requests
//! from the training distribution (no drift) and 2,000 with the amount
//! tripled (drift, naming the amount first), the status equals NumPy's
//! computation over the requests sent, the Event and the metrics follow,
//! drift starts one retraining run and a second drift inside the interval
//! starts none; feature rules reject or flag values training never saw.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::{DriftLevel, DriftStatus, Model, ModelDeployment, TrainingJob};
use aimass_e2e::load::Endpoint;
use aimass_e2e::operator::Operator;
use aimass_e2e::{
    TestNamespace, python_script, repo_root, scoring_endpoint, serving, wait, wait_for,
};
use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use kube::api::ListParams;
use serde_json::{Value, json};

/// Requests per phase.
const REQUESTS: usize = 2_000;
/// The drift window, in seconds.
const WINDOW: u64 = 20;

/// Runs tests/e2e/scripts/drift.py with the zoo's Python (NumPy).
fn drift_py(args: &[&str]) -> Result<Value> {
    python_script(&["scripts/zoo-venv.sh"], "drift.py", args)
}

/// `count` rows of the data set drawn with `seed`, `shift` (a feature and
/// its factor) applied.
fn rows(dir: &Path, count: usize, seed: u32, shift: Option<(&str, f64)>) -> Result<Vec<Vec<f64>>> {
    let csv = dir.join("data/transactions.csv").display().to_string();
    let (count, seed) = (count.to_string(), seed.to_string());
    let mut args = vec!["rows", csv.as_str(), count.as_str(), seed.as_str()];
    let factor;
    if let Some((feature, by)) = shift {
        factor = by.to_string();
        args.extend([feature, factor.as_str()]);
    }
    Ok(serde_json::from_value(drift_py(&args)?)?)
}

/// The inference request of one transaction.
fn request(row: &[f64]) -> Value {
    json!({"inputs": [{"name": "transactions", "shape": [1, 8], "datatype": "FP32", "data": row}]})
}

/// Sends each row as its own request (eight at a time) and returns the
/// fraud probabilities answered, in order.
async fn send(endpoint: &Endpoint, rows: &[Vec<f64>]) -> Result<Vec<f64>> {
    let answers: Vec<Result<(u16, Value)>> = futures::stream::iter(rows)
        .map(|row| async move { endpoint.call(&request(row)).await })
        .buffered(8)
        .collect()
        .await;
    answers
        .into_iter()
        .map(|answer| {
            let (status, body) = answer?;
            ensure!(status == 200, "{status}: {body}");
            let outputs = body["outputs"].as_array().context("outputs")?;
            let probabilities = outputs
                .iter()
                .find(|o| o["name"] == "probabilities")
                .context("probabilities")?;
            probabilities["data"][1].as_f64().context("a probability")
        })
        .collect()
}

/// Waits until the latest drift evaluation passes `check`.
async fn drift_where(
    ns: &TestNamespace,
    what: &str,
    timeout: Duration,
    check: impl Fn(&DriftStatus) -> bool + Send + 'static,
) -> Result<ModelDeployment> {
    wait_for(
        &ns.api::<ModelDeployment>(),
        "scoring",
        timeout,
        move |md: Option<&ModelDeployment>| {
            md.and_then(|m| m.status.as_ref()?.drift.as_ref())
                .is_some_and(&check)
        },
    )
    .await
    .with_context(|| format!("waiting for {what}"))
}

/// Waits until the window holds no rows (what was sent before aged out).
async fn drained(ns: &TestNamespace) -> Result<()> {
    drift_where(
        ns,
        "an empty window",
        Duration::from_secs(WINDOW * 3),
        |d| d.rows == 0 && d.level == DriftLevel::InsufficientData,
    )
    .await
    .map(|_| ())
}

/// Checks that the status' PSI and CSI equal NumPy's over `rows` and
/// `scores` and the baseline at `baseline`.
fn matches_numpy(
    drift: &DriftStatus,
    baseline: &Path,
    dir: &Path,
    rows: &[Vec<f64>],
    scores: &[f64],
) -> Result<()> {
    let sent = dir.join("sent.json");
    std::fs::write(&sent, json!({"rows": rows, "scores": scores}).to_string())?;
    let numpy = drift_py(&[
        "stability",
        &baseline.display().to_string(),
        &sent.display().to_string(),
    ])?;
    ensure!(
        numpy["rows"] == json!(drift.rows),
        "rows: {numpy} vs {drift:?}"
    );
    let psi = numpy["psi"].as_f64().context("psi")?;
    let status_psi = drift.psi.context("no PSI in status")?;
    ensure!(
        (psi - status_psi).abs() < 1e-6,
        "PSI {status_psi} in status, {psi} by NumPy"
    );
    for feature in &drift.features {
        let csi = numpy["csi"][&feature.name].as_f64().context("csi")?;
        ensure!(
            (csi - feature.index).abs() < 1e-6,
            "CSI of {} {} in status, {csi} by NumPy",
            feature.name,
            feature.index
        );
    }
    eprintln!(
        "PSI {status_psi:.6} (NumPy {psi:.6}); top feature {:?}",
        drift.features.first()
    );
    Ok(())
}

/// The TrainingJobs drift started.
async fn drift_runs(ns: &TestNamespace) -> Result<Vec<TrainingJob>> {
    Ok(ns
        .api::<TrainingJob>()
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|tj| {
            tj.spec
                .trigger
                .as_ref()
                .is_some_and(|t| t.reason == "Drift")
        })
        .collect())
}

/// The fraud example's Model (retrained on drift, not on a schedule) and
/// ModelDeployment `scoring` of its champion, watching drift over 20 s
/// windows, rejecting hours past 23 and flagging unknown merchant codes.
fn manifests(dir: &Path) -> Result<String> {
    let model = std::fs::read_to_string(repo_root().join("examples/fraud-detection/model.yaml"))?
        .replace("/tmp/aimass-demo", &dir.display().to_string())
        .replace(
            "schedule: \"0 2 * * *\"",
            "retrainOn: [Drift]\n      minRetrainIntervalSeconds: 3600",
        );
    Ok(format!(
        r#"{model}
---
apiVersion: aimass.io/v1alpha1
kind: ModelDeployment
metadata: {{name: scoring}}
spec:
  model: {{name: card-fraud, alias: champion}}
  replicas: {{min: 1, max: 2, count: 1}}
  autoscaling: {{enabled: false}}
  drift:
    windowSeconds: {WINDOW}
    intervalSeconds: 5
    minRows: 1000
    rules:
      - {{feature: hour, action: Reject}}
      - {{feature: merchant_category, action: Flag}}
"#
    ))
}

#[tokio::test]
async fn drift_is_measured_against_the_training_baseline_alerted_and_retrains_once() -> Result<()> {
    aimass_e2e::run("drift", |ns: Arc<TestNamespace>| async move {
        let operator = Operator::start(&ns, "a")?;
        let result = scenario(&ns, &operator).await;
        if result.is_err() {
            eprintln!("operator log:\n{}", operator.log_tail(60));
        }
        result
    })
    .await
}

async fn scenario(ns: &TestNamespace, operator: &Operator) -> Result<()> {
    let dir = ns.scratch()?;
    let generated = std::process::Command::new("python3")
        .arg(repo_root().join("examples/fraud-detection/generate_dataset.py"))
        .arg(dir.join("data/transactions.csv"))
        .status()?;
    ensure!(generated.success(), "generate_dataset.py failed");
    ns.apply(&manifests(&dir)?).await?;

    // The trainer's baseline is checked and recorded with version 1.
    let models = ns.api::<Model>();
    let model = wait_for(
        &models,
        "card-fraud",
        Duration::from_secs(240),
        |m: Option<&Model>| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| s.aliases.get("champion") == Some(&1))
        },
    )
    .await?;
    let v1 = model.status.unwrap_or_default().versions.remove(0);
    let recorded = v1.baseline.clone().context("version 1 has no baseline")?;
    ensure!(
        (recorded.features, recorded.scores) == (8, 1),
        "{recorded:?}"
    );
    let baseline = PathBuf::from(recorded.uri.trim_start_matches("file://"));
    serving(ns, 1, 1).await?;
    let in_distribution = rows(&dir, REQUESTS * 2 + 1, 1, None)?;
    let endpoint = scoring_endpoint(ns, &request(&in_distribution[0])).await?;

    // Feature rules: an hour past 23 is refused naming the input, its
    // position and the feature; an unknown merchant code is scored.
    let mut late = in_distribution[0].clone();
    late[1] = 30.0;
    let (status, body) = endpoint.call(&request(&late)).await?;
    let message = body["error"].as_str().unwrap_or_default();
    ensure!(
        status == 400
            && message.contains(
                r#"input "transactions", row 0, position 1 (feature "hour"): 30 is outside"#
            ),
        "{status}: {body}"
    );
    let mut unknown = in_distribution[0].clone();
    unknown[2] = 77.0;
    let (status, body) = endpoint.call(&request(&unknown)).await?;
    ensure!(status == 200, "a flagged value is scored: {status} {body}");
    // Every feature of the eight is in status, with its count of values
    // outside what training saw.
    drift_where(
        ns,
        "the flagged value counted",
        Duration::from_secs(30),
        |d| {
            d.features
                .iter()
                .any(|f| f.name == "merchant_category" && f.out_of_contract >= 1)
        },
    )
    .await?;

    // 2,000 requests from the training distribution: stable, no condition.
    drained(ns).await?;
    let phase_a = &in_distribution[1..=REQUESTS];
    let scores = send(&endpoint, phase_a).await?;
    let md = drift_where(
        ns,
        "the 2,000 in-distribution rows evaluated",
        Duration::from_secs(30),
        |d| d.rows == REQUESTS as i64,
    )
    .await?;
    let status = md.status.unwrap_or_default();
    let drift = status.drift.clone().unwrap_or_default();
    ensure!(
        drift.psi.is_some_and(|p| p < 0.1) && !drift.detected,
        "in-distribution traffic drifts: {drift:?}"
    );
    ensure!(
        !status
            .conditions
            .iter()
            .any(|c| c.type_ == "Drift" && c.status == "True"),
        "{:?}",
        status.conditions
    );
    matches_numpy(&drift, &baseline, &dir, phase_a, &scores)?;

    // 2,000 with the amount tripled: drift within two windows, the amount
    // named first, an Event, the metrics, one retraining run.
    drained(ns).await?;
    let shifted = rows(&dir, REQUESTS, 2, Some(("amount", 3.0)))?;
    let scores = send(&endpoint, &shifted).await?;
    let md = drift_where(ns, "drift detected", Duration::from_secs(2 * WINDOW), |d| {
        d.detected && d.rows == REQUESTS as i64
    })
    .await?;
    let status = md.status.unwrap_or_default();
    let drift = status.drift.clone().unwrap_or_default();
    ensure!(drift.psi.is_some_and(|p| p >= 0.25), "{drift:?}");
    ensure!(
        drift.features.first().is_some_and(|f| f.name == "amount"),
        "{:?}",
        drift.features
    );
    matches_numpy(&drift, &baseline, &dir, &shifted, &scores)?;
    wait(Duration::from_secs(30), "the Drift condition", || async {
        let md = ns.api::<ModelDeployment>().get("scoring").await?;
        Ok(md.status.unwrap_or_default().conditions.iter().any(|c| {
            c.type_ == "Drift"
                && c.status == "True"
                && c.reason == "DriftDetected"
                && c.message.contains("top features by CSI: amount")
        }))
    })
    .await?;
    ensure!(
        !ns.events("DriftDetected").await?.is_empty(),
        "no DriftDetected Event"
    );
    let address = operator
        .admin_address()
        .context("the operator's admin address")?;
    let (_, metrics) = aimass_e2e::http_get(&format!("http://{address}/metrics")).await?;
    for series in [
        format!(
            "aimass_model_psi{{model=\"card-fraud\",model_deployment=\"scoring\",namespace=\"{}\",version=\"1\"}}",
            ns.name
        ),
        format!(
            "aimass_feature_csi{{feature=\"amount\",model=\"card-fraud\",model_deployment=\"scoring\",namespace=\"{}\",version=\"1\"}}",
            ns.name
        ),
        format!(
            "aimass_model_drift_detected{{model=\"card-fraud\",model_deployment=\"scoring\",namespace=\"{}\",version=\"1\"}} 1",
            ns.name
        ),
    ] {
        ensure!(metrics.contains(&series), "no {series} in:\n{metrics}");
    }
    wait(
        Duration::from_secs(30),
        "a run started by drift",
        || async { Ok(!drift_runs(ns).await?.is_empty()) },
    )
    .await?;
    let runs = drift_runs(ns).await?;
    let trigger = runs[0].spec.trigger.clone().unwrap_or_default();
    ensure!(
        runs.len() == 1
            && trigger.deployment.as_deref() == Some("scoring")
            && trigger.version == Some(1)
            && trigger.psi.is_some_and(|p| p >= 0.25)
            && trigger.features.first().map(String::as_str) == Some("amount"),
        "{trigger:?}"
    );
    // Its version records why it was trained.
    let model = wait_for(
        &models,
        "card-fraud",
        Duration::from_secs(240),
        |m: Option<&Model>| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| s.versions.iter().any(|v| v.version == 2))
        },
    )
    .await?;
    let status = model.status.unwrap_or_default();
    let v2 = status
        .versions
        .iter()
        .find(|v| v.version == 2)
        .context("v2")?;
    let lineage = v2.lineage.clone().unwrap_or_default();
    ensure!(
        lineage
            .trigger
            .as_ref()
            .is_some_and(|t| t.reason == "Drift" && t.psi == trigger.psi),
        "{lineage:?}"
    );
    ensure!(status.last_drift_retrain_time.is_some(), "{status:?}");

    // The traffic comes back (drift clears), then drifts again inside the
    // interval: no second run.
    drained(ns).await?;
    send(&endpoint, &in_distribution[REQUESTS + 1..]).await?;
    drift_where(ns, "drift cleared", Duration::from_secs(2 * WINDOW), |d| {
        !d.detected
    })
    .await?;
    ensure!(
        !ns.events("DriftCleared").await?.is_empty(),
        "no DriftCleared Event"
    );
    send(&endpoint, &rows(&dir, REQUESTS, 3, Some(("amount", 3.0)))?).await?;
    drift_where(
        ns,
        "drift detected again",
        Duration::from_secs(2 * WINDOW),
        |d| d.detected,
    )
    .await?;
    // The Model is woken by the deployment's change; give it a few rounds.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let runs = drift_runs(ns).await?;
    ensure!(
        runs.len() == 1,
        "a second drift inside the interval started {:?}",
        runs.iter()
            .map(|r| r.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// A Model whose trainer (a shell copying the zoo's GBDT) writes no
/// baseline, with `spec.baseline` naming `dataset`.
fn computed_model(name: &str, dir: &Path, dataset: &str) -> Result<String> {
    let zoo = repo_root().join("tests/zoo/models/gbdt_classifier.onnx");
    let script = format!(
        r#"p="${{AIMASS_OUTPUT_URI#file://}}"; mkdir -p "$p"; cp {} "$p/model.onnx"; echo '{{"auc": 0.9}}' > "$p/metrics.json""#,
        zoo.display()
    );
    let columns: Vec<String> = (0..8).map(|i| format!("f{i}")).collect();
    Ok(format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: {name}}}
spec:
  storage: {{prefix: "file://{registry}"}}
  source:
    training:
      template:
        image: busybox
        command: [sh, -c, {script}]
        dataset: {{uri: "file:///data/x.csv"}}
  baseline:
    uri: "file://{dataset}"
    rows: 5000
    columns: [{{input: features, columns: {columns:?}}}]
"#,
        registry = dir.join("registry").display(),
        script = serde_json::to_string(&script)?,
    ))
}

#[tokio::test]
async fn without_a_trainer_baseline_the_validation_job_computes_one_from_the_model_data_set()
-> Result<()> {
    aimass_e2e::operator::run_with_operator("baseline", |ns: Arc<TestNamespace>| async move {
        let dir = ns.scratch()?;
        let data = dir.join("data/sample.csv").display().to_string();
        python_script(
            &["scripts/zoo-venv.sh"],
            "backtest.py",
            &["generate", &data, "20000"],
        )?;
        ns.apply(&computed_model("computed", &dir, &data)?).await?;
        ns.apply(&computed_model("broken", &dir, "/no/such/sample.csv")?)
            .await?;
        let models = ns.api::<Model>();
        let recorded = |name: &'static str| {
            wait_for(
                &models,
                name,
                Duration::from_secs(180),
                |m: Option<&Model>| {
                    m.and_then(|m| m.status.as_ref())
                        .is_some_and(|s| !s.versions.is_empty())
                },
            )
        };
        // The version records the baseline computed from the first 5,000
        // rows, written beside its artifact, one feature per column.
        let model = recorded("computed").await?;
        let v1 = model.status.unwrap_or_default().versions.remove(0);
        let baseline = v1.baseline.clone().context("no baseline recorded")?;
        ensure!(
            (baseline.features, baseline.scores) == (8, 1)
                && baseline.uri.ends_with("/1/baseline.json"),
            "{baseline:?}"
        );
        let path = baseline.uri.trim_start_matches("file://");
        let written: Value = serde_json::from_slice(&std::fs::read(path)?)?;
        ensure!(
            written["rows"] == json!(5000)
                && written["features"][0]["name"] == "f0"
                && written["features"][0]["edges"]
                    .as_array()
                    .is_some_and(|e| e.len() == 9),
            "{written}"
        );
        // A data set that cannot be read refuses the version, saying why.
        let model = recorded("broken").await?;
        let v1 = model.status.unwrap_or_default().versions.remove(0);
        ensure!(
            v1.phase == aimass_crds::v1alpha1::VersionPhase::Rejected
                && v1.message.as_deref().is_some_and(
                    |m| m.contains("computing the baseline from file:///no/such/sample.csv")
                ),
            "{v1:?}"
        );
        Ok(())
    })
    .await
}
