//! Runs everything the operator does on one client until shutdown:
//!
//! - the four controllers, one per kind (`training_job`, `model`,
//!   `model_deployment`, `api_client`), each reconciling in named steps;
//! - the monitor (`monitor`), which every 2 s reads the serving replicas'
//!   metrics, judges their health and migrates sick ones (`health`), and
//!   decides their number (`autoscaler`), over the ModelDeployment
//!   controller's cache;
//! - the sweep of the per-model RBAC objects the ModelDeployment controller
//!   made (`model_deployment::access`).

use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::{ApiClient, Model, ModelDeployment, TrainingJob};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::context::Context;
use crate::{api_client, model, model_deployment, training_job};

/// Every controller's name in metrics and logs.
pub const NAMES: [&str; 4] = [
    training_job::CONTROLLER,
    model::CONTROLLER,
    model_deployment::CONTROLLER,
    api_client::CONTROLLER,
];

/// Runs every controller until `shutdown` resolves; flips `ready` once all
/// their caches have synced.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    ready: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    fn api<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let training_jobs: Api<TrainingJob> = api(&client, namespace);
    let models: Api<Model> = api(&client, namespace);
    let jobs: Api<Job> = api(&client, namespace);
    let model_deployments: Api<ModelDeployment> = api(&client, namespace);
    let deployments: Api<Deployment> = api(&client, namespace);
    let services: Api<Service> = api(&client, namespace);
    let api_clients: Api<ApiClient> = api(&client, namespace);
    let config = watcher::Config::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let training = Controller::new(training_jobs.clone(), config.clone())
        .owns(
            jobs,
            watcher::Config::default().labels("app.kubernetes.io/managed-by=aimass-operator"),
        )
        .graceful_shutdown_on(stopped(stop_rx.clone()));
    let owned =
        || watcher::Config::default().labels("app.kubernetes.io/managed-by=aimass-operator");
    let serving = Controller::new(model_deployments, config.clone())
        .owns(deployments, owned())
        .owns(services, owned());
    let serving_store = serving.store();
    let serving = serving
        .watches(models.clone(), config.clone(), move |model: Model| {
            let namespace = model.metadata.namespace.clone();
            let name = model.metadata.name.clone().unwrap_or_default();
            serving_store
                .state()
                .into_iter()
                .filter(|md| md.metadata.namespace == namespace && md.spec.model.name == name)
                .map(|md| ObjectRef::from_obj(&*md))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stopped(stop_rx.clone()));
    let model_controller = Controller::new(models, config.clone())
        .watches(training_jobs, config, |tj: TrainingJob| {
            Some(
                ObjectRef::<Model>::new(&tj.spec.model_ref.name)
                    .within(&tj.metadata.namespace.clone().unwrap_or_default()),
            )
        })
        .graceful_shutdown_on(stopped(stop_rx.clone()));
    let clients = Controller::new(api_clients, watcher::Config::default())
        .graceful_shutdown_on(stopped(stop_rx.clone()));
    let serving_cache = serving.store();
    let stores = (
        training.store(),
        model_controller.store(),
        serving.store(),
        clients.store(),
    );

    let training = training
        .run(
            training_job::reconcile,
            training_job::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move { debug!(?result, "trainingjob reconciled") });
    let models = model_controller
        .run(model::reconcile, model::error_policy, ctx.clone())
        .for_each(|result| async move { debug!(?result, "model reconciled") });
    let clients = clients
        .run(api_client::reconcile, api_client::error_policy, ctx.clone())
        .for_each(|result| async move { debug!(?result, "apiclient reconciled") });
    tokio::spawn(async move {
        synced(&stores.0).await;
        synced(&stores.1).await;
        synced(&stores.2).await;
        synced(&stores.3).await;
        info!("caches synced; reconciling");
        ready.send_replace(true);
    });
    tokio::spawn(crate::monitor::run(
        ctx.clone(),
        namespace.map(str::to_owned),
        serving_cache,
        stop_rx.clone(),
    ));
    tokio::spawn(model_deployment::access::sweep(
        ctx.clone(),
        namespace.map(str::to_owned),
        stop_rx.clone(),
    ));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let serving = serving
        .run(
            model_deployment::reconcile,
            model_deployment::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move { debug!(?result, "modeldeployment reconciled") });
    futures::join!(training, models, serving, clients);
}

/// Waits until `store` has its first full list.
///
/// `Store::wait_until_ready` wakes only the last task that polled it (one
/// oneshot receiver behind a lock), and the controller itself waits on the
/// same store, so a single await here could sleep forever: poll again every
/// 200 ms instead.
pub async fn synced<K>(store: &kube::runtime::reflector::Store<K>)
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    while tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready())
        .await
        .is_err()
    {}
}
