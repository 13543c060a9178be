//! Scale, as a benchmark (ignored: not part of `make test`): 1,000 Models
//! imported from one small artifact and 1,000 ApiClients (each with its key
//! Secret) in one namespace, watched by one operator. It prints the
//! operator's memory and how long after the last object was created every
//! status was current (written for the object's generation), against the
//! goals of 50 MB and 60 s, and how long the imports took to finish.
//!
//! `make bench-scale` runs it against the release operator on the local
//! cluster.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aimass_crds::v1alpha1::{ApiClient, Model};
use aimass_e2e::operator::Operator;
use aimass_e2e::{TestNamespace, zoo};
use anyhow::{Result, ensure};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PostParams};
use kube::{Api, Resource};

/// Objects of each kind.
const COUNT: usize = 1000;
/// Creates in flight at once.
const CONCURRENCY: usize = 16;
/// How long the benchmark waits for everything to be current before it
/// gives up (a bound, not a goal).
const GIVE_UP: Duration = Duration::from_secs(900);

#[tokio::test]
#[ignore = "a benchmark: make bench-scale"]
async fn a_thousand_models_and_a_thousand_api_clients() -> Result<()> {
    aimass_e2e::run("scale", |ns: Arc<TestNamespace>| async move {
        let operator = Operator::start_with_env(&ns, "scale", &[("RUST_LOG", "info")])?;
        let started = Instant::now();
        create_all(&ns).await?;
        let applied = started.elapsed();
        println!(
            "created {COUNT} Models, {COUNT} ApiClients and {COUNT} Secrets in {:.1} s",
            applied.as_secs_f64()
        );
        let last_apply = Instant::now();
        let mut current_at = None;
        let mut imported_at = None;
        let mut rss_when_current = None;
        while last_apply.elapsed() < GIVE_UP {
            let census = census(&ns).await?;
            if current_at.is_none() && census.current == 2 * COUNT {
                current_at = Some(last_apply.elapsed());
                rss_when_current = operator.rss_bytes();
                println!(
                    "all {} statuses current after {:.1} s",
                    2 * COUNT,
                    last_apply.elapsed().as_secs_f64()
                );
            }
            if census.imported == COUNT {
                imported_at = Some(last_apply.elapsed());
            }
            if current_at.is_some() && imported_at.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let peak = operator.peak_rss_bytes().unwrap_or(0);
        let mb = |bytes: u64| bytes as f64 / 1e6;
        println!(
            "operator peak RSS {:.1} MB ({:.2}x the 50 MB goal); RSS when all current {:.1} MB",
            mb(peak),
            mb(peak) / 50.0,
            mb(rss_when_current.unwrap_or(0))
        );
        let census = census(&ns).await?;
        ensure!(
            current_at.is_some(),
            "after {} s only {} of {} statuses are current",
            GIVE_UP.as_secs(),
            census.current,
            2 * COUNT
        );
        let current = current_at.unwrap_or_default().as_secs_f64();
        println!(
            "every status current {current:.1} s after the last create ({:.2}x the 60 s goal)",
            current / 60.0
        );
        match imported_at {
            Some(t) => println!(
                "every import validated and Ready {:.1} s after the last create",
                t.as_secs_f64()
            ),
            None => println!(
                "{} of {COUNT} imports Ready after {} s",
                census.imported,
                GIVE_UP.as_secs()
            ),
        }
        Ok(())
    })
    .await
}

/// Creates every object, `CONCURRENCY` at a time.
async fn create_all(ns: &TestNamespace) -> Result<()> {
    let uri = zoo("gbdt_classifier");
    let models = ns.api::<Model>();
    let clients = ns.api::<ApiClient>();
    let secrets = ns.api::<Secret>();
    futures::stream::iter(0..COUNT)
        .map(|i| {
            let (models, clients, secrets, uri) = (&models, &clients, &secrets, &uri);
            async move {
                let pp = PostParams::default();
                secrets.create(&pp, &key_secret(i)).await?;
                clients.create(&pp, &api_client(i)?).await?;
                models.create(&pp, &model(i, uri)?).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

fn model(i: usize, uri: &str) -> Result<Model> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "aimass.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": format!("model-{i:04}")},
        "spec": {"source": {"uri": uri}},
    }))?)
}

fn api_client(i: usize) -> Result<ApiClient> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "aimass.io/v1alpha1",
        "kind": "ApiClient",
        "metadata": {"name": format!("partner-{i:04}")},
        "spec": {
            "principal": format!("partner:{i:04}"),
            "keys": [{"secretRef": {"name": format!("partner-{i:04}-key")}}],
        },
    }))?)
}

/// A key Secret as `aimass-apikey new` makes it: an id and the key's hash.
fn key_secret(i: usize) -> Secret {
    let data = BTreeMap::from([
        (
            "id".to_owned(),
            ByteString(format!("{i:016x}").into_bytes()),
        ),
        (
            "sha256".to_owned(),
            ByteString(format!("{i:064x}").into_bytes()),
        ),
    ]);
    let mut secret = Secret {
        data: Some(data),
        ..Secret::default()
    };
    secret.metadata.name = Some(format!("partner-{i:04}-key"));
    secret
}

/// How many objects have a status written for their generation, and how
/// many Models have a Ready version.
struct Census {
    current: usize,
    imported: usize,
}

async fn census(ns: &TestNamespace) -> Result<Census> {
    let models = list(&ns.api::<Model>()).await?;
    let clients = list(&ns.api::<ApiClient>()).await?;
    let current_model = |m: &Model| {
        m.status.as_ref().is_some_and(|s| {
            s.observed_generation == m.meta().generation
                && s.conditions.iter().any(|c| c.type_ == "Ready")
        })
    };
    let current_client = |c: &ApiClient| {
        c.status.as_ref().is_some_and(|s| {
            s.observed_generation == c.meta().generation
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    };
    let imported = models
        .iter()
        .filter(|m| {
            m.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .count();
    Ok(Census {
        current: models.iter().filter(|m| current_model(m)).count()
            + clients.iter().filter(|c| current_client(c)).count(),
        imported,
    })
}

/// Every object of a kind, in pages.
async fn list<K>(api: &Api<K>) -> Result<Vec<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut all = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        all.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(all),
        }
    }
}
