//! The console's page time, as a benchmark (ignored: not part of `make
//! test`): 200 Models of 50 versions each (with metrics, lineage and alias
//! history in status, as a busy registry has), read by a user with `list`
//! on models. It prints the time of `/models` and of one Model's page
//! against the time the API server takes to send the list of the same
//! Models to the same user (received, not parsed), measured in the same
//! run: the floor the console cannot go under, since it reads them that way. The goal is under 200 ms for
//! `/models`.
//!
//! `make bench-console` runs it against the release console on the local
//! cluster.

use std::time::{Duration, Instant};

use aimass_crds::v1alpha1::Model;
use aimass_e2e::client_config;
use aimass_e2e::console::{Console, Visitor};
use anyhow::{Result, ensure};
use futures::{StreamExt, TryStreamExt};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const MODELS: usize = 200;
const VERSIONS: i64 = 50;
const ROUNDS: usize = 30;

/// Status of a Model with [`VERSIONS`] versions.
fn status(m: usize) -> serde_json::Value {
    let versions: Vec<_> = (1..=VERSIONS)
        .map(|v| {
            json!({
                "version": v, "phase": "Ready", "uri": format!("file:///models/m{m}/{v}/model.onnx"),
                "sha256": format!("{:064x}", v), "sizeBytes": 17101,
                "created": "2026-01-01T00:00:00Z",
                "metrics": {"auc": 0.8 + (v as f64) / 1000.0, "ks": 0.5, "logloss": 0.3},
                "reason": "NotBetterThanChampion", "message": "auc 0.84 is not 0.01 better than the champion's 0.85",
                "lineage": {"trainingJob": format!("m{m}-run-{v}"), "image": "aimass/fraud-trainer:1",
                            "datasetUri": "s3://bank/fraud/2026-01.csv",
                            "hyperparameters": {"max_depth": "6", "n_estimators": "200"}},
            })
        })
        .collect();
    let history: Vec<_> = (1..=20)
        .map(|v| {
            json!({"alias": "champion", "from": v, "to": v + 1, "reason": "Promoted",
                        "message": "auc 0.86 ≥ 0.85 + 0.01", "time": "2026-01-01T00:00:00Z"})
        })
        .collect();
    json!({"status": {"versions": versions, "latestVersion": VERSIONS, "latestRegisteredVersion": VERSIONS,
                      "aliases": {"champion": VERSIONS, "challenger": VERSIONS - 1}, "aliasHistory": history,
                      "conditions": [{"type": "Ready", "status": "True", "reason": "AsExpected",
                                      "message": "50 versions Ready", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
}

/// p50 and p99 of `samples`, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    (at(0.5), at(0.99))
}

#[tokio::test]
#[ignore = "a benchmark: make bench-console"]
async fn two_hundred_models_of_fifty_versions() -> Result<()> {
    aimass_e2e::run("console-scale", |ns| async move {
        let models: Api<Model> = ns.api();
        futures::stream::iter(0..MODELS)
            .map(|m| {
                let models = models.clone();
                async move {
                    let model: Model = serde_json::from_value(json!({
                        "apiVersion": "aimass.io/v1alpha1", "kind": "Model",
                        "metadata": {"name": format!("model-{m:03}")},
                        "spec": {"source": {"uri": "file:///models/m.onnx"},
                                 "promotion": {"gates": [{"metric": "auc", "minimum": 0.8}]}},
                    }))?;
                    let name = format!("model-{m:03}");
                    models.create(&PostParams::default(), &model).await?;
                    models
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(status(m)))
                        .await?;
                    Ok::<_, anyhow::Error>(())
                }
            })
            .buffer_unordered(16)
            .try_collect::<Vec<_>>()
            .await?;
        ns.grant(
            "reader",
            "read-models",
            "[{apiGroups: [aimass.io], resources: [models, trainingjobs, modeldeployments, modelapprovals], verbs: [get, list, watch]}]",
        )
        .await?;
        let token = ns.api_token("reader").await?;
        let console = Console::start(&ns, &[&ns.name]).await?;
        let mut visitor = Visitor::new(&console.base);
        visitor.sign_in(&token).await?;

        // The floor: the same list, straight from the API server, as the user.
        let mut config = client_config().await?;
        config.auth_info = serde_json::from_value(json!({"token": token}))?;
        let as_user = Client::try_from(config)?;
        let listed = Api::<Model>::namespaced(as_user.clone(), &ns.name)
            .list(&ListParams::default())
            .await?
            .items
            .len();
        ensure!(listed == MODELS, "{listed} Models listed");
        // Its answer received, not parsed (the console parses it too, so
        // this is below what any reader of the list can do).
        let mut floor = Vec::new();
        for _ in 0..ROUNDS {
            let request = hyper::http::Request::get(format!(
                "/apis/aimass.io/v1alpha1/namespaces/{}/models",
                ns.name
            ))
            .body(Vec::new())?;
            let started = Instant::now();
            as_user.request_text(request).await?;
            floor.push(started.elapsed());
        }

        let page = |path: String| {
            let visitor = &visitor;
            async move {
                let mut times = Vec::new();
                let mut size = 0;
                for _ in 0..ROUNDS {
                    let started = Instant::now();
                    let answer = visitor.get(&path).await?;
                    times.push(started.elapsed());
                    ensure!(answer.status == 200, "{path}: {}", answer.status);
                    size = answer.body.len();
                }
                Ok::<_, anyhow::Error>((percentiles(times), size))
            }
        };
        let ((models_p50, models_p99), models_size) = page("/models".into()).await?;
        let ((model_p50, model_p99), model_size) =
            page(format!("/ns/{}/models/model-100", ns.name)).await?;
        let (floor_p50, floor_p99) = percentiles(floor);
        println!(
            "{MODELS} Models × {VERSIONS} versions, {ROUNDS} rounds each, warm:\n\
             API server list as the user (floor): p50 {floor_p50:.1} ms, p99 {floor_p99:.1} ms\n\
             /models ({} KiB): p50 {models_p50:.1} ms ({:.2}× the floor), p99 {models_p99:.1} ms; goal 200 ms\n\
             one Model with {VERSIONS} versions and its chart ({} KiB): p50 {model_p50:.1} ms, p99 {model_p99:.1} ms",
            models_size / 1024,
            models_p50 / floor_p50,
            model_size / 1024,
        );
        Ok(())
    })
    .await
}
