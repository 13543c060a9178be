//! ScoringJobs through the real API server and the node agent: a backtest
//! of two versions over 100,000 rows in three shards, checked against
//! scikit-learn and SciPy on the very outputs and against the online
//! endpoint; a missing data set, an unknown column and a killed shard.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::{Model, ScoringJob, ScoringPhase, ScoringReport};
use aimass_e2e::console::{Console, Visitor};
use aimass_e2e::operator::run_with_operator;
use aimass_e2e::{
    TestNamespace, kubectl, pod_processes, pods, python_script, scoring_endpoint,
    scoring_manifests, serving, wait, wait_for, zoo,
};
use anyhow::{Context, Result, bail, ensure};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

/// Rows of the backtest's data set.
const ROWS: usize = 100_000;

/// Where a test's files live, outside the clone.
fn workdir(ns: &TestNamespace) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("aimass-e2e").join(&ns.name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs tests/e2e/scripts/backtest.py with the zoo's Python (scikit-learn,
/// SciPy); returns what it printed, as JSON.
fn backtest_py(args: &[&str]) -> Result<Value> {
    python_script(&["scripts/zoo-venv.sh"], "backtest.py", args)
}

/// Runs tests/e2e/scripts/parquet_check.py with pyarrow; returns what it
/// printed, as JSON (null when nothing).
fn parquet_py(args: &[&str]) -> Result<Value> {
    let requirements = "tests/e2e/scripts/parquet-requirements.txt";
    python_script(
        &["scripts/venv.sh", "parquet", requirements],
        "parquet_check.py",
        args,
    )
}

/// A ScoringJob manifest over `dir`'s data set.
fn scoring_job(name: &str, dir: &Path, extra: &str) -> String {
    format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: ScoringJob
metadata: {{name: {name}}}
spec:
  modelRef: {{name: card-fraud}}
  dataset: {{uri: "file://{data}"}}
  output: {{uri: "file://{out}"}}
{extra}"#,
        data = dir.join("data.csv").display(),
        out = dir.join(name).display(),
    )
}

/// Waits (`timeout` at most) until ScoringJob `name` ends; returns it.
async fn finished(ns: &TestNamespace, name: &str, timeout: Duration) -> Result<ScoringJob> {
    wait_for(
        &ns.api::<ScoringJob>(),
        name,
        timeout,
        |sj: Option<&ScoringJob>| {
            sj.and_then(|s| s.status.as_ref())
                .is_some_and(|s| matches!(s.phase, ScoringPhase::Succeeded | ScoringPhase::Failed))
        },
    )
    .await
}

/// An output row, by column name.
type Row = BTreeMap<String, String>;

/// Every output row of a run: how many, and each by its id.
fn outputs(dir: &Path) -> Result<(usize, BTreeMap<String, Row>)> {
    let mut rows = BTreeMap::new();
    let mut total = 0;
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    parts.sort();
    for part in parts {
        let mut reader = csv::Reader::from_path(&part)?;
        let header = reader.headers()?.clone();
        for record in reader.records() {
            let record = record?;
            let row: Row = header
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect();
            total += 1;
            rows.insert(row["id"].clone(), row);
        }
    }
    Ok((total, rows))
}

/// The console shows the backtest as its report says: each version's
/// figures on the run's page, and the two side by side when comparing
/// versions 1 and 2; a user who may read Models but not ScoringJobs gets
/// neither.
async fn console_shows(ns: &TestNamespace, report: &ScoringReport) -> Result<()> {
    let reads = |resources: &str| {
        format!("[{{apiGroups: [aimass.io], resources: [{resources}], verbs: [get, list, watch]}}]")
    };
    ns.grant("analyst", "console-analyst", &reads("models, scoringjobs"))
        .await?;
    ns.grant("modeller", "console-modeller", &reads("models"))
        .await?;
    let console = Console::start(ns, &[&ns.name]).await?;
    let result = async {
        let mut analyst = Visitor::new(&console.base);
        analyst.sign_in(&ns.api_token("analyst").await?).await?;
        let list = analyst.get("/scoringjobs").await?;
        ensure!(
            list.status == 200 && list.body.contains(">backtest</a>"),
            "{}: {}",
            list.status,
            list.body
        );
        let page = analyst
            .get(&format!("/ns/{}/scoringjobs/backtest", ns.name))
            .await?;
        let compare = analyst
            .get(&format!(
                "/ns/{}/models/card-fraud/compare?a=1&b=2",
                ns.name
            ))
            .await?;
        let mut aucs = Vec::new();
        for version in &report.versions {
            let metrics = version.metrics.as_ref().context("metrics")?;
            let auc = format!("{:.4}", metrics.auc.context("auc")?);
            let row = format!(
                "<th>v{}</th><td>{}</td><td>{}</td><td>{:.4}</td><td>{auc}</td>",
                version.version,
                version.scored,
                version.refused,
                version.mean_score.context("mean")?
            );
            ensure!(page.body.contains(&row), "{row} not on {}", page.body);
            aucs.push(auc);
        }
        let side_by_side = format!("<td>{}</td><td>{}</td>", aucs[0], aucs[1]);
        ensure!(
            compare.body.contains(&side_by_side) && compare.body.contains(">backtest</a>"),
            "{side_by_side} not on {}",
            compare.body
        );
        // Without the right to read ScoringJobs: not the run, nor its figures.
        let mut modeller = Visitor::new(&console.base);
        modeller.sign_in(&ns.api_token("modeller").await?).await?;
        let refused = modeller
            .get(&format!("/ns/{}/scoringjobs/backtest", ns.name))
            .await?;
        ensure!(
            refused.status == 403,
            "{}: {}",
            refused.status,
            refused.body
        );
        let compare = modeller
            .get(&format!(
                "/ns/{}/models/card-fraud/compare?a=1&b=2",
                ns.name
            ))
            .await?;
        ensure!(
            compare.status == 200
                && !compare.body.contains(&side_by_side)
                && compare
                    .body
                    .contains("No finished run you may read scored both"),
            "{}: {}",
            compare.status,
            compare.body
        );
        Ok(())
    }
    .await;
    if result.is_err() {
        eprintln!("console log:\n{}", console.log_tail(60));
    }
    result
}

#[tokio::test]
async fn a_backtest_scores_every_row_once_and_measures_as_scikit_learn_does() -> Result<()> {
    run_with_operator("backtest", |ns: Arc<TestNamespace>| async move {
        let dir = workdir(&ns)?;
        let data = dir.join("data.csv");
        let bad = backtest_py(&["generate", &data.display().to_string(), &ROWS.to_string()])?;

        // Version 1 is the GBDT, version 2 (the champion) a random forest
        // on the same inputs, served online.
        ns.apply(&scoring_manifests(&zoo("gbdt_classifier"), 1))
            .await?;
        serving(&ns, 1, 1).await?;
        let patch = json!({"spec": {"source": {"uri": zoo("random_forest_classifier")}}});
        ns.api::<Model>()
            .patch("card-fraud", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        serving(&ns, 2, 1).await?;

        let extra = r#"  versions: [{version: 1}, {alias: champion}]
  labelColumn: is_fraud
  segmentColumn: channel
  idColumn: id
  thresholds: [0.3, 0.5]
  shards: 3
"#;
        ns.apply(&scoring_job("backtest", &dir, extra)).await?;
        let sj = finished(&ns, "backtest", Duration::from_secs(240)).await?;
        let status = sj.status.context("status")?;
        ensure!(
            status.phase == ScoringPhase::Succeeded,
            "{:?}: {:?}",
            status.reason,
            status.message
        );
        ensure!(
            status.versions_summary.as_deref() == Some("1,2"),
            "{status:?}"
        );
        ensure!(status.shards_succeeded == Some(3), "{status:?}");
        let report = status.report.context("a report")?;
        ensure!(report.rows == ROWS as i64, "{} rows", report.rows);

        // Every row once, across the three parts, with both versions.
        let out = dir.join("backtest");
        let (total, rows) = outputs(&out)?;
        ensure!(
            total == ROWS && rows.len() == ROWS,
            "{total} output rows, {} ids",
            rows.len()
        );
        let checked = backtest_py(&["check", &out.display().to_string(), "1", "2"])?;
        ensure!(
            checked["parts"].as_object().map(|p| p.len()) == Some(3),
            "{checked}"
        );

        // The malformed rows are refused by line and reason; the others scored.
        let refused_lines: BTreeSet<i64> = [&bad["missing"], &bad["word"]]
            .iter()
            .filter_map(|v| v.as_i64())
            .collect();
        for version in &report.versions {
            ensure!(
                version.refused == 2 && version.scored == ROWS as i64 - 2,
                "version {}: {} refused, {} scored",
                version.version,
                version.refused,
                version.scored
            );
            let lines: BTreeSet<i64> = version.refusals.iter().map(|r| r.line).collect();
            ensure!(lines == refused_lines, "{:?}", version.refusals);
            ensure!(
                version
                    .refusals
                    .iter()
                    .any(|r| r.reason == "column \"f3\": missing value")
                    && version
                        .refusals
                        .iter()
                        .any(|r| r.reason == "column \"f5\": \"six\" is not a finite number"),
                "{:?}",
                version.refusals
            );
            // AUC and KS as scikit-learn and SciPy compute them on the outputs.
            let metrics = version.metrics.as_ref().context("metrics")?;
            let expected = &checked["versions"][version.version.to_string()];
            for (name, ours) in [("auc", metrics.auc), ("ks", metrics.ks)] {
                let ours = ours.context(name)?;
                let theirs = expected[name].as_f64().context(name)?;
                ensure!(
                    (ours - theirs).abs() < 1e-6,
                    "version {} {name}: {ours} vs {theirs}",
                    version.version
                );
            }
            ensure!(
                metrics.rows == expected["rows"].as_i64().unwrap_or(-1),
                "{metrics:?}"
            );
            ensure!(metrics.thresholds.len() == 2 && !metrics.deciles.is_empty());
            ensure!(version.segments.len() == 3, "{:?}", version.segments);
        }
        ensure!(
            report.winners.iter().any(|w| w.metric == "auc"),
            "{report:?}"
        );
        let written: Value = serde_json::from_slice(&std::fs::read(out.join("report.json"))?)?;
        ensure!(
            written["rows"] == json!(ROWS),
            "report.json: {}",
            written["rows"]
        );
        console_shows(&ns, &report).await?;

        // The first 1,000 rows through the online endpoint (version 2)
        // answer exactly what the batch wrote.
        let text = std::fs::read_to_string(&data)?;
        let first: Vec<Vec<&str>> = text
            .lines()
            .skip(1)
            .take(1000)
            .map(|l| l.split(',').collect())
            .collect();
        let mut endpoint = None;
        for chunk in first.chunks(100) {
            let features: Vec<f64> = chunk
                .iter()
                .flat_map(|cells| {
                    cells[1..9]
                        .iter()
                        .map(|c| c.parse::<f64>().unwrap_or(f64::NAN))
                })
                .collect();
            let request = json!({"inputs": [{"name": "features", "datatype": "FP32",
                "shape": [chunk.len(), 8], "data": features}]});
            if endpoint.is_none() {
                endpoint = Some(scoring_endpoint(&ns, &request).await?);
            }
            let (code, answer) = endpoint
                .as_ref()
                .context("endpoint")?
                .call(&request)
                .await?;
            ensure!(code == 200, "{code}: {answer}");
            let output = |name: &str| -> Vec<f64> {
                aimass_e2e::output_data(&answer["outputs"], name)
                    .and_then(Value::as_array)
                    .map(|d| d.iter().filter_map(Value::as_f64).collect())
                    .unwrap_or_default()
            };
            let (labels, probabilities) = (output("label"), output("probabilities"));
            ensure!(probabilities.len() == 2 * chunk.len(), "{answer}");
            for (i, cells) in chunk.iter().enumerate() {
                let row = &rows[cells[0]];
                let batch = |column: &str| row[column].parse::<f64>().unwrap_or(f64::NAN);
                ensure!(
                    batch("v2.label") == labels[i]
                        && batch("v2.probabilities[0]") as f32 == probabilities[2 * i] as f32
                        && batch("v2.probabilities[1]") as f32 == probabilities[2 * i + 1] as f32,
                    "row {}: batch {row:?}, online {} {} {}",
                    cells[0],
                    labels[i],
                    probabilities[2 * i],
                    probabilities[2 * i + 1]
                );
            }
        }

        // The same rows as Parquet (typed columns, f5 text because of its
        // word), written as Parquet: the same report, the same outputs.
        let parquet = dir.join("data.parquet");
        parquet_py(&[
            "convert",
            &data.display().to_string(),
            &parquet.display().to_string(),
        ])?;
        ns.apply(&format!(
            r#"
apiVersion: aimass.io/v1alpha1
kind: ScoringJob
metadata: {{name: parquet}}
spec:
  modelRef: {{name: card-fraud}}
  dataset: {{uri: "file://{data}"}}
  output: {{uri: "file://{out}", format: Parquet}}
{extra}"#,
            data = parquet.display(),
            out = dir.join("parquet").display(),
        ))
        .await?;
        let from_parquet = finished(&ns, "parquet", Duration::from_secs(240))
            .await?
            .status
            .context("status")?;
        ensure!(
            from_parquet.phase == ScoringPhase::Succeeded,
            "{:?}: {:?}",
            from_parquet.reason,
            from_parquet.message
        );
        let parquet_report = from_parquet.report.context("a report")?;
        for (a, b) in report.versions.iter().zip(&parquet_report.versions) {
            let (ma, mb) = (a.metrics.as_ref(), b.metrics.as_ref());
            ensure!(
                a.scored == b.scored
                    && a.refused == b.refused
                    && ma.map(|m| m.auc) == mb.map(|m| m.auc)
                    && ma.map(|m| m.ks) == mb.map(|m| m.ks),
                "CSV {a:?}\nParquet {b:?}"
            );
        }
        let compared = parquet_py(&[
            "compare",
            &out.display().to_string(),
            &dir.join("parquet").display().to_string(),
            "v1.probabilities[1]",
            "v2.probabilities[1]",
            "v2.label",
        ])?;
        ensure!(compared["rows"] == json!(ROWS), "{compared}");

        // Users see it with kubectl, and an Event says it is done.
        let (ok, table, err) = kubectl(&["-n", &ns.name, "get", "sj", "backtest"])?;
        ensure!(
            ok && table.contains("Succeeded") && table.contains("AUC"),
            "{table}{err}"
        );
        let (ok, events, err) = kubectl(&[
            "-n",
            &ns.name,
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=ScoringJob,reason=Reported",
            "-o",
            "name",
        ])?;
        ensure!(ok && !events.trim().is_empty(), "no Reported Event: {err}");
        eprintln!("backtest: {}", report.summary);
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_bad_run_says_why_and_a_killed_shard_is_retried() -> Result<()> {
    run_with_operator("scoring-failures", |ns: Arc<TestNamespace>| async move {
        let dir = workdir(&ns)?;
        ns.apply(&scoring_manifests(&zoo("gbdt_classifier"), 1))
            .await?;
        serving(&ns, 1, 1).await?;

        // No data set at all.
        let champion = "  versions: [{alias: champion}]\n";
        ns.apply(&scoring_job("missing", &dir, champion)).await?;
        let status = finished(&ns, "missing", Duration::from_secs(120))
            .await?
            .status
            .context("status")?;
        ensure!(
            status.phase == ScoringPhase::Failed
                && status.reason.as_deref() == Some("DatasetUnavailable")
                && status
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("data.csv")),
            "{status:?}"
        );

        // A version the Model does not have (yet): the run waits, saying so.
        ns.apply(&scoring_job("later", &dir, "  versions: [{version: 9}]\n"))
            .await?;
        let waiting = wait_for(
            &ns.api::<ScoringJob>(),
            "later",
            Duration::from_secs(60),
            |sj: Option<&ScoringJob>| {
                sj.and_then(|s| s.status.as_ref()).is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Running" && c.reason == "ReferenceNotFound")
                })
            },
        )
        .await?
        .status
        .context("status")?;
        ensure!(
            waiting.phase == ScoringPhase::Pending
                && waiting.conditions.iter().any(|c| c.message.contains("no version 9")),
            "{waiting:?}"
        );

        // A large data set for the rest: a shard runs long enough to kill.
        let data = dir.join("data.csv");
        backtest_py(&["generate", &data.display().to_string(), "1000000"])?;

        // A label column the data set does not have, named in the reason.
        let unknown = format!("{champion}  labelColumn: chargeback\n");
        ns.apply(&scoring_job("unknown", &dir, &unknown)).await?;
        let status = finished(&ns, "unknown", Duration::from_secs(120))
            .await?
            .status
            .context("status")?;
        ensure!(
            status.phase == ScoringPhase::Failed
                && status.reason.as_deref() == Some("InvalidSpec")
                && status
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("\"chargeback\"")),
            "{status:?}"
        );

        // A shard killed mid-run is retried; each row is written once.
        let killed = format!(
            "{champion}  idColumn: id\n  labelColumn: is_fraud\n  segmentColumn: channel\n  shards: 2\n"
        );
        ns.apply(&scoring_job("killed", &dir, &killed)).await?;
        let selector = "batch.kubernetes.io/job-name=killed-shards";
        let victim = std::sync::Mutex::new(None);
        wait(Duration::from_secs(120), "a running shard", || {
            let ns = ns.clone();
            let victim = &victim;
            async move {
                for pod in pods(&ns, selector).await? {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let pids = pod_processes(&name, "aimass-inference-server");
                    if !pids.is_empty() {
                        // Let it get into the rows first.
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                        let pids = pod_processes(&name, "aimass-inference-server");
                        if pids.is_empty() {
                            bail!("shard {name} finished before it could be killed");
                        }
                        for pid in pids {
                            let _ = std::process::Command::new("kill")
                                .args(["-9", &pid.to_string()])
                                .status();
                        }
                        *victim.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        })
        .await?;
        let status = finished(&ns, "killed", Duration::from_secs(300))
            .await?
            .status
            .context("status")?;
        ensure!(status.phase == ScoringPhase::Succeeded, "{status:?}");
        let shard_pods = pods(&ns, selector).await?;
        let failed = shard_pods
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
            .count();
        ensure!(
            failed >= 1 && shard_pods.len() >= 3,
            "the killed shard {victim:?} was not retried: {} pods, {failed} failed",
            shard_pods.len()
        );
        let (total, rows) = outputs(&dir.join("killed"))?;
        ensure!(
            total == 1_000_000 && rows.len() == 1_000_000,
            "{total} output rows, {} ids",
            rows.len()
        );
        let report = status.report.context("report")?;
        ensure!(report.rows == 1_000_000, "{report:?}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_challenger_is_promoted_only_by_winning_its_backtest_and_the_champion_is_evaluated_on_schedule()
-> Result<()> {
    aimass_e2e::run("evaluation", |ns: Arc<TestNamespace>| async move {
        let operator = aimass_e2e::operator::Operator::start(&ns, "a")?;
        let result = evaluation_scenario(&ns, &operator).await;
        if result.is_err() {
            eprintln!("operator log:\n{}", operator.log_tail(60));
        }
        result
    })
    .await
}

async fn evaluation_scenario(
    ns: &TestNamespace,
    operator: &aimass_e2e::operator::Operator,
) -> Result<()> {
    let dir = workdir(ns)?;
    let data = dir.join("data.csv");
    backtest_py(&["generate", &data.display().to_string(), "20000"])?;
    let model = format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: Model
metadata: {{name: card-fraud}}
spec:
  source: {{uri: "{uri}"}}
  promotion:
    backtest: {{metric: auc, betterThanChampionBy: 0.005}}
  evaluation:
    schedule: "* * * * *"
    template:
      dataset: {{uri: "file://{data}"}}
      labelColumn: is_fraud
      segmentColumn: channel
      idColumn: id
      output: {{uri: "file://{out}"}}
"#,
        uri = zoo("gbdt_classifier"),
        data = data.display(),
        out = dir.join("evaluations").display(),
    );
    ns.apply(&model).await?;
    let models = ns.api::<Model>();
    let champion = |v: i64| {
        move |m: Option<&Model>| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| s.aliases.get("champion") == Some(&v))
        }
    };
    wait_for(&models, "card-fraud", Duration::from_secs(60), champion(1)).await?;

    // Version 2 (the random forest) passes the gates but waits for its
    // backtest against version 1, which it wins on AUC by more than 0.005.
    let patch = json!({"spec": {"source": {"uri": zoo("random_forest_classifier")}}});
    models
        .patch("card-fraud", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    wait_for(
        &models,
        "card-fraud",
        Duration::from_secs(60),
        |m: Option<&Model>| {
            m.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                s.versions
                    .iter()
                    .any(|v| v.version == 2 && v.reason.as_deref() == Some("Backtesting"))
            })
        },
    )
    .await?;
    ensure!(
        models
            .get("card-fraud")
            .await?
            .status
            .unwrap_or_default()
            .aliases
            .get("champion")
            == Some(&1),
        "version 2 was promoted before its backtest"
    );
    let promoted = wait_for(&models, "card-fraud", Duration::from_secs(120), champion(2)).await?;
    let status = promoted.status.unwrap_or_default();
    let v2 = status
        .versions
        .iter()
        .find(|v| v.version == 2)
        .context("v2")?;
    ensure!(
        v2.reason.is_none()
            && v2.message.as_deref().is_some_and(
                |m| m.contains("backtest card-fraud-backtest-v2") && m.contains("of v1")
            ),
        "{v2:?}"
    );
    let backtest = ns.api::<ScoringJob>().get("card-fraud-backtest-v2").await?;
    let versions: Vec<i64> = backtest
        .status
        .unwrap_or_default()
        .versions
        .iter()
        .map(|v| v.version)
        .collect();
    ensure!(versions == [1, 2], "the backtest scored {versions:?}");

    // The schedule measures the champion on the labelled data each minute;
    // the record, the condition and the metric follow.
    let evaluated = wait_for(
        &models,
        "card-fraud",
        Duration::from_secs(150),
        |m: Option<&Model>| {
            m.and_then(|m| m.status.as_ref())
                .is_some_and(|s| !s.evaluations.is_empty())
        },
    )
    .await?;
    let status = evaluated.status.unwrap_or_default();
    let record = &status.evaluations[0];
    ensure!(
        record.rows > 0 && record.metrics.get("auc").is_some_and(|a| *a > 0.6),
        "{record:?}"
    );
    ensure!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Evaluated" && c.status == "True" && c.reason == "WithinGates"),
        "{:?}",
        status.conditions
    );
    let address = operator
        .admin_address()
        .context("the operator's admin address")?;
    let (code, text) = aimass_e2e::http_get(&format!("http://{address}/metrics")).await?;
    let series = format!(
        "aimass_model_evaluation_metric{{metric=\"auc\",model=\"card-fraud\",namespace=\"{}\",version=\"{}\"}}",
        ns.name, record.version
    );
    ensure!(
        code == 200 && text.contains(&series),
        "no {series} in:\n{text}"
    );
    Ok(())
}
