//! Ensembles through the real API server: a ModelDeployment of two Models
//! answers their weighted sum, their maximum or their vote, with each
//! member's own answer on request; every combination is recorded; a
//! member's moved champion rolls out under load without a failed request;
//! a member that cannot join leaves the last good combination serving; a
//! stack answers what its logistic meta-model computes by hand.
//! Shadows likewise: a challenger scores half the requests off the answer's
//! path, its agreement with the champion is reported exactly, and a shadow
//! trial promotes the challenger that agrees and refuses the one that does
//! not.

use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::{Combination, Model, ModelDeployment};
use aimass_e2e::load::{Endpoint, Load};
use aimass_e2e::operator::run_with_operator;
use aimass_e2e::{
    TestNamespace, close, endpoint, output_data, python_script, wait, wait_for, zoo, zoo_reference,
};
use anyhow::{Context, Result, ensure};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(150);

/// Model `name` imported from `uri`.
fn model(name: &str, uri: &str) -> String {
    format!(
        "apiVersion: aimass.io/v1alpha1\nkind: Model\nmetadata: {{name: {name}}}\nspec:\n  source: {{uri: \"{uri}\"}}\n---\n"
    )
}

/// ModelDeployment `blend` of `ensemble` (a YAML flow mapping) on two
/// replicas.
fn blend(ensemble: &str) -> String {
    format!(
        r#"
apiVersion: aimass.io/v1alpha1
kind: ModelDeployment
metadata: {{name: blend}}
spec:
  ensemble: {ensemble}
  replicas: {{min: 1, max: 4, count: 2}}
  autoscaling: {{enabled: false}}
  server: {{drainTimeoutSeconds: 5}}
"#
    )
}

/// Models `fraud-gbdt` and `fraud-mlp`, `fraud-forest` (the zoo's GBDT,
/// MLP and random forest) and ModelDeployment `blend`: 0.7 × the GBDT's
/// probabilities + 0.3 × the MLP's.
fn manifests() -> String {
    [
        model("fraud-gbdt", &zoo("gbdt_classifier")),
        model("fraud-mlp", &zoo("mlp_classifier")),
        model("fraud-forest", &zoo("random_forest_classifier")),
        blend(
            "{combine: WeightedSum, output: probabilities, members: [\
             {name: gbdt, model: {name: fraud-gbdt}, weight: 0.7}, \
             {name: mlp, model: {name: fraud-mlp, alias: champion}, weight: 0.3}]}",
        ),
    ]
    .concat()
}

/// Waits until `blend` is Ready serving combination `revision` on every
/// replica, and returns that combination's record.
async fn serving(ns: &TestNamespace, revision: i64) -> Result<Combination> {
    let md = wait_for(
        &ns.api::<ModelDeployment>(),
        "blend",
        TIMEOUT,
        move |md: Option<&ModelDeployment>| {
            md.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                s.serving_version == Some(revision)
                    && s.ready_replicas == 2
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        },
    )
    .await?;
    md.status
        .unwrap_or_default()
        .combinations
        .into_iter()
        .find(|c| c.revision == revision)
        .context("the serving combination is not recorded")
}

/// Waits until only servers of combination `revision` are left (replaced
/// ones keep answering while they drain), then until ten answers in a row
/// come from it.
async fn answering(
    ns: &TestNamespace,
    endpoint: &Endpoint,
    request: &Value,
    revision: i64,
) -> Result<()> {
    let revision = revision.to_string();
    wait(TIMEOUT, "the replaced servers to be gone", || async {
        let pods = aimass_e2e::pods(ns, "aimass.io/model-deployment=blend").await?;
        Ok(pods.iter().all(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("aimass.io/model-version"))
                    == Some(&revision)
        }))
    })
    .await?;
    wait(
        Duration::from_secs(30),
        "every answer to come from the new combination",
        || async {
            for _ in 0..10 {
                if ask(endpoint, request, &[]).await?.version() != revision.as_str() {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await
}

/// `blend`'s answer to `request`, asking for `outputs` by name, as
/// (name → numbers).
async fn ask(endpoint: &Endpoint, request: &Value, outputs: &[&str]) -> Result<Answer> {
    let mut request = request.clone();
    request["outputs"] = outputs.iter().map(|name| json!({"name": name})).collect();
    let (code, answer) = endpoint.call(&request).await?;
    ensure!(code == 200, "{code}: {answer}");
    Ok(Answer(answer))
}

/// An OIP answer.
struct Answer(Value);

impl Answer {
    /// An output's numbers.
    fn numbers(&self, name: &str) -> Result<Vec<f64>> {
        output_data(&self.0["outputs"], name)
            .with_context(|| format!("no output {name} in {}", self.0))?
            .as_array()
            .context("no data")?
            .iter()
            .map(|v| v.as_f64().context("not a number"))
            .collect()
    }

    /// The version that answered.
    fn version(&self) -> &Value {
        &self.0["model_version"]
    }
}

/// A zoo model's reference output `name` (computed by onnxruntime).
fn reference(model: &str, name: &str) -> Result<Value> {
    let (_, outputs) = zoo_reference(model)?;
    output_data(&outputs, name)
        .cloned()
        .with_context(|| format!("{model} has no reference {name}"))
}

/// Whether `combined` is `rule` applied to the members' own answers
/// element by element, to 1e-6.
fn combines(combined: &[f64], members: &[Vec<f64>], rule: impl Fn(&[f64]) -> f64) -> bool {
    combined.len() == members[0].len()
        && combined.iter().enumerate().all(|(i, c)| {
            let parts: Vec<f64> = members.iter().map(|m| m[i]).collect();
            (c - rule(&parts)).abs() <= 1e-6
        })
}

/// Replaces `blend`'s ensemble.
async fn set_ensemble(ns: &TestNamespace, ensemble: Value) -> Result<()> {
    ns.api::<ModelDeployment>()
        .patch(
            "blend",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ensemble": ensemble}})),
        )
        .await?;
    Ok(())
}

/// Sets (or with `None` removes) `blend`'s annotation that lets a
/// combination change the outputs callers read.
async fn allow_signature_change(ns: &TestNamespace, value: Option<&str>) -> Result<()> {
    let patch = json!({"metadata": {"annotations": {"aimass.io/allow-signature-change": value}}});
    ns.api::<ModelDeployment>()
        .patch("blend", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Points Model `name` at zoo model `zoo_name`: its next version, made
/// champion.
async fn retrain(ns: &TestNamespace, name: &str, zoo_name: &str) -> Result<()> {
    let patch = json!({"spec": {"source": {"uri": zoo(zoo_name)}}});
    ns.api::<Model>()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_ensemble_combines_its_members_rolls_out_their_moves_and_keeps_its_last_good_set()
-> Result<()> {
    run_with_operator("ensemble", |ns: Arc<TestNamespace>| async move {
        ns.apply(&manifests()).await?;
        let first = serving(&ns, 1).await?;
        ensure!(
            first.describe() == "gbdt=fraud-gbdt v1, mlp=fraud-mlp v1",
            "{first:?}"
        );
        ensure!(first.members[1].alias.as_deref() == Some("champion"));
        let (request, _) = zoo_reference("gbdt_classifier")?;
        let endpoint = endpoint(&ns, "blend", "blend", &request).await?;

        // Weighted sum: each member answers as onnxruntime does, and the
        // blend is 0.7 and 0.3 of them.
        let outputs = ["probabilities", "gbdt.probabilities", "mlp.probabilities"];
        let answer = ask(&endpoint, &request, &outputs).await?;
        ensure!(answer.version() == "1", "{}", answer.0);
        let (gbdt, mlp) = (
            answer.numbers("gbdt.probabilities")?,
            answer.numbers("mlp.probabilities")?,
        );
        ensure!(close(&json!(gbdt), &reference("gbdt_classifier", "probabilities")?));
        ensure!(close(&json!(mlp), &reference("mlp_classifier", "probabilities")?));
        ensure!(
            combines(&answer.numbers("probabilities")?, &[gbdt.clone(), mlp.clone()], |p| {
                0.7 * p[0] + 0.3 * p[1]
            }),
            "not 0.7 × gbdt + 0.3 × mlp: {}",
            answer.0
        );
        let plain = ask(&endpoint, &request, &[]).await;
        ensure!(
            plain.is_ok_and(|a| a.0["outputs"].as_array().is_some_and(|o| o
                .iter()
                .all(|o| !o["name"].as_str().unwrap_or_default().contains('.')))),
            "members' outputs come only on request"
        );

        // Highest risk wins: a new combination.
        set_ensemble(
            &ns,
            json!({"combine": "Maximum", "output": "probabilities", "members": [
                {"name": "gbdt", "model": {"name": "fraud-gbdt"}, "weight": 0.7},
                {"name": "mlp", "model": {"name": "fraud-mlp", "alias": "champion"}, "weight": 0.3}]}),
        )
        .await?;
        serving(&ns, 2).await?;
        answering(&ns, &endpoint, &request, 2).await?;
        let answer = ask(&endpoint, &request, &outputs).await?;
        ensure!(answer.version() == "2", "{}", answer.0);
        ensure!(
            combines(&answer.numbers("probabilities")?, &[gbdt, mlp], |p| p[0].max(p[1])),
            "not the maximum: {}",
            answer.0
        );

        // A vote of three: the label most members gave. It returns labels,
        // not probabilities: callers must be ready, and say so.
        allow_signature_change(&ns, Some("true")).await?;
        set_ensemble(
            &ns,
            json!({"combine": "Vote", "output": "label", "members": [
                {"name": "gbdt", "model": {"name": "fraud-gbdt"}},
                {"name": "mlp", "model": {"name": "fraud-mlp", "alias": "champion"}},
                {"name": "forest", "model": {"name": "fraud-forest"}}]}),
        )
        .await?;
        serving(&ns, 3).await?;
        answering(&ns, &endpoint, &request, 3).await?;
        let votes = ["label", "gbdt.label", "mlp.label", "forest.label"];
        let answer = ask(&endpoint, &request, &votes).await?;
        let members: Vec<Vec<f64>> = votes[1..]
            .iter()
            .map(|name| answer.numbers(name))
            .collect::<Result<_>>()?;
        ensure!(
            members[0] != members[1] || members[1] != members[2],
            "the members never disagree: the vote would prove nothing"
        );
        ensure!(
            combines(&answer.numbers("label")?, &members, |p| {
                let count = |label: f64| p.iter().filter(|l| **l == label).count();
                // Equal weights: the majority; a tie goes to the earliest.
                p.iter()
                    .copied()
                    .fold(p[0], |best, l| if count(l) > count(best) { l } else { best })
            }),
            "not the majority: {}",
            answer.0
        );

        // Back to the blend: the recorded combination 1, not a new one.
        set_ensemble(
            &ns,
            json!({"combine": "WeightedSum", "output": "probabilities", "members": [
                {"name": "gbdt", "model": {"name": "fraud-gbdt"}, "weight": 0.7},
                {"name": "mlp", "model": {"name": "fraud-mlp", "alias": "champion"}, "weight": 0.3}]}),
        )
        .await?;
        serving(&ns, 1).await?;
        allow_signature_change(&ns, None).await?;

        // The MLP's champion moves under load: combination 4 rolls out
        // and no request fails.
        let load = Load::start(&endpoint, &request, 4);
        retrain(&ns, "fraud-mlp", "random_forest_classifier").await?;
        let rolled = serving(&ns, 4).await;
        // Let the old replicas finish stopping while the load goes on.
        tokio::time::sleep(Duration::from_secs(8)).await;
        let sent = load.finish_without_failures(50).await;
        let moved = rolled?;
        let sent = sent?;
        answering(&ns, &endpoint, &request, 4).await?;
        ensure!(
            moved.describe() == "gbdt=fraud-gbdt v1, mlp=fraud-mlp v2",
            "the record names the new member version: {moved:?}"
        );
        let answer = ask(&endpoint, &request, &outputs).await?;
        ensure!(answer.version() == "4", "{}", answer.0);
        ensure!(close(
            &json!(answer.numbers("mlp.probabilities")?),
            &reference("random_forest_classifier", "probabilities")?
        ));
        eprintln!("member moved under load: {sent} requests, none failed");

        // A regressor has no probabilities: it cannot join. The deployment
        // is Degraded naming it, and combination 4 keeps answering.
        retrain(&ns, "fraud-mlp", "gbdt_regressor").await?;
        let md = aimass_e2e::condition_holds(&ns, "blend", "Degraded", "MemberIncompatible").await?;
        let status = md.status.context("status")?;
        let degraded = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Degraded")
            .context("Degraded")?;
        ensure!(
            degraded.message.contains("member mlp has no output probabilities"),
            "{}",
            degraded.message
        );
        ensure!(status.serving_version == Some(4), "{status:?}");
        ensure!(
            status.combinations.iter().map(|c| c.revision).max() == Some(4),
            "the refused combination is not recorded"
        );
        let answer = ask(&endpoint, &request, &["probabilities"]).await?;
        ensure!(answer.version() == "4", "{}", answer.0);
        Ok(())
    })
    .await
}

/// The positive class's probability of each row, from `[rows, 2]`
/// probabilities.
fn positives(probabilities: &Value) -> Vec<f64> {
    probabilities
        .as_array()
        .map(|p| {
            p.iter()
                .skip(1)
                .step_by(2)
                .filter_map(Value::as_f64)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_shadow_scores_half_the_requests_and_reports_how_it_compares() -> Result<()> {
    run_with_operator("shadow", |ns: Arc<TestNamespace>| async move {
        // Version 1 (the GBDT) serves, pinned; version 2 (the random
        // forest) shadows half the requests.
        ns.apply(
            &aimass_e2e::scoring_manifests(&zoo("gbdt_classifier"), 1).replace(
                "model: {name: card-fraud}",
                "model: {name: card-fraud, version: 1}\n  shadow: {version: 2, percent: 50}",
            ),
        )
        .await?;
        aimass_e2e::serving(&ns, 1, 1).await?;
        retrain(&ns, "card-fraud", "random_forest_classifier").await?;
        let md = wait_for(
            &ns.api::<ModelDeployment>(),
            "scoring",
            TIMEOUT,
            |md: Option<&ModelDeployment>| {
                md.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                    s.ready_replicas == 1
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Shadowing" && c.status == "True")
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            },
        )
        .await?;
        ensure!(md.status.and_then(|s| s.serving_version) == Some(1));
        // Only the replica that shadows is left: the one before it is gone.
        wait(TIMEOUT, "one replica, shadowing version 2", || async {
            let pods = aimass_e2e::pods(&ns, "aimass.io/model-deployment=scoring").await?;
            Ok(pods.len() == 1
                && pods.iter().all(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.status
                            .iter()
                            .flat_map(|s| s.conditions.iter().flatten())
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                        && p.spec.iter().flat_map(|s| &s.containers).any(|c| {
                            c.env.iter().flatten().any(|e| {
                                e.name == "AIMASS_SHADOW_VERSION" && e.value.as_deref() == Some("2")
                            })
                        })
                }))
        })
        .await?;
        let (request, _) = zoo_reference("gbdt_classifier")?;
        // 20 calls until the Service answers steadily, then 1,000 more.
        let endpoint = endpoint(&ns, "scoring", "card-fraud", &request).await?;
        for _ in 0..1000 {
            let (code, answer) = endpoint.call(&request).await?;
            ensure!(
                code == 200 && answer["model_version"] == "1",
                "{code}: {answer}"
            );
        }
        let sent = 1020;

        // What the comparison must say, computed from both versions'
        // answers to the same rows (onnxruntime's).
        let served = (
            reference("gbdt_classifier", "label")?,
            positives(&reference("gbdt_classifier", "probabilities")?),
        );
        let shadow = (
            reference("random_forest_classifier", "label")?,
            positives(&reference("random_forest_classifier", "probabilities")?),
        );
        let rows = served.1.len();
        let agree = served
            .0
            .as_array()
            .zip(shadow.0.as_array())
            .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x == y).count())
            .context("labels")?;
        let mean_difference = served
            .1
            .iter()
            .zip(&shadow.1)
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>()
            / rows as f64;
        ensure!(
            agree < rows,
            "the versions never disagree: the test would prove nothing"
        );

        let md = wait_for(
            &ns.api::<ModelDeployment>(),
            "scoring",
            Duration::from_secs(60),
            |md: Option<&ModelDeployment>| {
                md.and_then(|m| m.status.as_ref())
                    .and_then(|s| s.shadow.as_ref())
                    .is_some_and(|s| s.requests + s.dropped == sent / 2)
            },
        )
        .await?;
        let status = md.status.and_then(|s| s.shadow).context("status.shadow")?;
        eprintln!("shadow after {sent} requests: {status:?}");
        ensure!(status.version == 2, "{status:?}");
        ensure!(status.dropped == 0, "the shadow kept up: {status:?}");
        ensure!(status.rows == status.requests * rows as i64, "{status:?}");
        let agreement = status.label_agreement.context("no label agreement")?;
        ensure!(
            (agreement - agree as f64 / rows as f64).abs() < 1e-9,
            "agreement {agreement}, computed {agree}/{rows}"
        );
        let difference = status.mean_absolute_difference.context("no difference")?;
        ensure!(
            (difference - mean_difference).abs() < 1e-4,
            "mean difference {difference}, computed {mean_difference}"
        );
        ensure!(
            status
                .differences
                .last()
                .is_some_and(|b| b.rows == status.rows),
            "every row is within the last bound: {status:?}"
        );
        Ok(())
    })
    .await
}

/// Waits until Model `card-fraud`'s version `version` satisfies `check`,
/// and returns the Model.
async fn version_where(
    ns: &TestNamespace,
    version: i64,
    check: impl Fn(&Model, &aimass_crds::v1alpha1::ModelVersion) -> bool + Send + 'static,
) -> Result<Model> {
    wait_for(
        &ns.api::<Model>(),
        "card-fraud",
        TIMEOUT,
        move |m: Option<&Model>| {
            m.and_then(|m| {
                let v = m
                    .status
                    .as_ref()?
                    .versions
                    .iter()
                    .find(|v| v.version == version)?;
                Some(check(m, v))
            })
            .unwrap_or(false)
        },
    )
    .await
}

#[tokio::test]
async fn a_shadow_trial_refuses_a_challenger_that_disagrees_and_promotes_one_that_agrees()
-> Result<()> {
    run_with_operator("trial", |ns: Arc<TestNamespace>| async move {
        // The champion serves and shadows the challenger on half the
        // requests; a new version is promoted only if its labels agree with
        // the champion's on 90 % of the rows over 100 shadowed requests.
        ns.apply(
            &aimass_e2e::scoring_manifests(&zoo("gbdt_classifier"), 1)
                .replace(
                    "  source: {uri:",
                    "  promotion: {shadow: {minRequests: 100, minLabelAgreement: 0.9}}\n  source: {uri:",
                )
                .replace(
                    "model: {name: card-fraud}",
                    "model: {name: card-fraud}\n  shadow: {percent: 50}",
                ),
        )
        .await?;
        aimass_e2e::serving(&ns, 1, 1).await?;
        let (request, _) = zoo_reference("gbdt_classifier")?;
        let endpoint = endpoint(&ns, "scoring", "card-fraud", &request).await?;
        let load = Load::start(&endpoint, &request, 2);

        // The random forest agrees on 14 of 16 rows: it stays challenger.
        retrain(&ns, "card-fraud", "random_forest_classifier").await?;
        let lost = version_where(&ns, 2, |_, v| v.reason.as_deref() == Some("ShadowTrialLost"))
            .await;
        let lost = match lost {
            Ok(model) => model,
            Err(e) => {
                load.finish().await?;
                return Err(e);
            }
        };
        let status = lost.status.clone().unwrap_or_default();
        let v2 = status.versions.iter().find(|v| v.version == 2).context("v2")?;
        ensure!(
            v2.message.as_deref().is_some_and(|m| m.starts_with("label agreement 0.8750 < 0.9 over")),
            "{v2:?}"
        );
        ensure!(
            status.aliases.get("champion") == Some(&1) && status.aliases.get("challenger") == Some(&2),
            "{:?}",
            status.aliases
        );

        // Logistic regression agrees on 15 of 16: promoted, and served.
        retrain(&ns, "card-fraud", "logreg_scaler").await?;
        let won = version_where(&ns, 3, |m, v| {
            v.reason.is_none()
                && m.status.as_ref().and_then(|s| s.aliases.get("champion")) == Some(&3)
        })
        .await;
        let served = match won {
            Ok(_) => aimass_e2e::serving(&ns, 3, 1).await.map(|_| ()),
            Err(e) => Err(e),
        };
        tokio::time::sleep(Duration::from_secs(8)).await;
        let sent = load.finish_without_failures(100).await;
        served?;
        let sent = sent?;
        let model = ns.api::<Model>().get("card-fraud").await?;
        let v3 = model
            .status
            .and_then(|s| s.versions.into_iter().find(|v| v.version == 3))
            .context("v3")?;
        ensure!(
            v3.message.as_deref().is_some_and(|m| m.starts_with("label agreement 0.9375 >= 0.9 over")),
            "{v3:?}"
        );
        eprintln!("shadow trials under load: {sent} requests, none failed");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_stack_answers_what_its_logistic_meta_model_computes_from_the_members_scores()
-> Result<()> {
    run_with_operator("stack", |ns: Arc<TestNamespace>| async move {
        // A logistic regression over the GBDT's and the MLP's scores, as
        // ONNX, registered as a Model of its own.
        let path = ns.scratch()?.join("meta.onnx");
        let meta = python_script(
            &["scripts/zoo-venv.sh"],
            "meta_model.py",
            &[path.to_str().context("a path")?],
        )?;
        let weights: Vec<f64> = serde_json::from_value(meta["weights"].clone())?;
        let intercept = meta["intercept"].as_f64().context("an intercept")?;
        ns.apply(
            &[
                model("fraud-gbdt", &zoo("gbdt_classifier")),
                model("fraud-mlp", &zoo("mlp_classifier")),
                model("fraud-meta", &format!("file://{}", path.display())),
                blend(
                    "{combine: Stack, output: probabilities, meta: {name: fraud-meta}, members: [\
                     {name: gbdt, model: {name: fraud-gbdt}}, {name: mlp, model: {name: fraud-mlp}}]}",
                ),
            ]
            .concat(),
        )
        .await?;
        let first = serving(&ns, 1).await?;
        ensure!(
            first.describe() == "gbdt=fraud-gbdt v1, mlp=fraud-mlp v1, meta=fraud-meta v1",
            "{first:?}"
        );
        let (request, _) = zoo_reference("gbdt_classifier")?;
        let endpoint = endpoint(&ns, "blend", "blend", &request).await?;
        let answer = ask(
            &endpoint,
            &request,
            &["label", "probabilities", "gbdt.probabilities", "mlp.probabilities"],
        )
        .await?;
        let (gbdt, mlp) = (
            answer.numbers("gbdt.probabilities")?,
            answer.numbers("mlp.probabilities")?,
        );
        ensure!(close(&json!(gbdt), &reference("gbdt_classifier", "probabilities")?));
        ensure!(close(&json!(mlp), &reference("mlp_classifier", "probabilities")?));
        let (labels, decided) = (answer.numbers("label")?, answer.numbers("probabilities")?);
        ensure!(labels.len() == 16 && decided.len() == 32, "{}", answer.0);
        for row in 0..16 {
            // By hand: σ(w · (the members' positive classes) + b).
            let z = weights[0] * gbdt[2 * row + 1] + weights[1] * mlp[2 * row + 1] + intercept;
            let p = 1.0 / (1.0 + (-z).exp());
            ensure!(
                (decided[2 * row + 1] - p).abs() <= 1e-6 && (decided[2 * row] - (1.0 - p)).abs() <= 1e-6,
                "row {row}: the stack answered {} and {}, by hand {p}",
                decided[2 * row],
                decided[2 * row + 1]
            );
            ensure!(labels[row] == f64::from(u8::from(z > 0.0)), "row {row}: label {}", labels[row]);
        }
        Ok(())
    })
    .await
}
