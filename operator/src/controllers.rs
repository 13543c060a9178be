//! Runs the controllers on one client until shutdown.

use std::sync::Arc;

use aimass_crds::v1alpha1::{Model, TrainingJob};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::context::Context;
use crate::{model, training_job};

/// Runs every controller until `shutdown` resolves; flips `ready` once all
/// their caches have synced.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    ready: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let api = |client: kube::Client| match namespace {
        Some(ns) => (
            Api::<TrainingJob>::namespaced(client.clone(), ns),
            Api::<Model>::namespaced(client.clone(), ns),
            Api::<Job>::namespaced(client, ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    let (training_jobs, models, jobs) = api(client);
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
    let model_controller = Controller::new(models, config.clone())
        .watches(training_jobs, config, |tj: TrainingJob| {
            Some(
                ObjectRef::<Model>::new(&tj.spec.model_ref.name)
                    .within(&tj.metadata.namespace.clone().unwrap_or_default()),
            )
        })
        .graceful_shutdown_on(stopped(stop_rx));
    let stores = (training.store(), model_controller.store());

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
    tokio::spawn(async move {
        let _ = stores.0.wait_until_ready().await;
        let _ = stores.1.wait_until_ready().await;
        info!("caches synced; reconciling");
        ready.send_replace(true);
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    futures::join!(training, models);
}
