//! Runs everything the operator does on one client until shutdown:
//!
//! - the five controllers, one per kind (`training_job`, `model`,
//!   `model_deployment`, `api_client`, `scoring_job`), each reconciling in
//!   named steps;
//! - the monitor (`monitor`), which every 2 s reads the serving replicas'
//!   metrics, judges their health and migrates sick ones (`health`), and
//!   decides their number (`autoscaler`), over the ModelDeployment
//!   controller's cache;
//! - the sweep of the per-model RBAC objects the ModelDeployment controller
//!   made (`model_deployment::access`).

use std::sync::Arc;
use std::time::Duration;

use aimass_crds::v1alpha1::{
    ApiClient, Model, ModelApproval, ModelDeployment, ScoringJob, TrainingJob,
};
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
use crate::{api_client, model, model_deployment, scoring_job, training_job};

/// Every controller's name in metrics and logs.
pub const NAMES: [&str; 5] = [
    training_job::CONTROLLER,
    model::CONTROLLER,
    model_deployment::CONTROLLER,
    api_client::CONTROLLER,
    scoring_job::CONTROLLER,
];

/// Runs every controller until `shutdown` resolves; flips `ready` once all
/// their caches have synced.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    ready: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (stop_tx, stop) = watch::channel(false);
    let scope = Scope {
        client: ctx.client.clone(),
        namespace,
        stop: stop.clone(),
    };
    let training = scope.training_jobs();
    let serving = scope.model_deployments();
    let models = scope.models();
    let clients = scope.api_clients();
    let scoring = scope.scoring_jobs();
    let serving_cache = serving.store();
    let stores = (
        training.store(),
        models.store(),
        serving.store(),
        clients.store(),
        scoring.store(),
    );
    tokio::spawn(async move {
        synced(&stores.0).await;
        synced(&stores.1).await;
        synced(&stores.2).await;
        synced(&stores.3).await;
        synced(&stores.4).await;
        info!("caches synced; reconciling");
        ready.send_replace(true);
    });
    tokio::spawn(crate::monitor::run(
        ctx.clone(),
        namespace.map(str::to_owned),
        serving_cache,
        stop.clone(),
    ));
    tokio::spawn(model_deployment::access::sweep(
        ctx.clone(),
        namespace.map(str::to_owned),
        stop,
    ));
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let training = training
        .run(
            training_job::reconcile,
            training_job::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move { debug!(?result, "trainingjob reconciled") });
    let models = models
        .run(model::reconcile, model::error_policy, ctx.clone())
        .for_each(|result| async move { debug!(?result, "model reconciled") });
    let clients = clients
        .run(api_client::reconcile, api_client::error_policy, ctx.clone())
        .for_each(|result| async move { debug!(?result, "apiclient reconciled") });
    let serving = serving
        .run(
            model_deployment::reconcile,
            model_deployment::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move { debug!(?result, "modeldeployment reconciled") });
    let scoring = scoring
        .run(
            scoring_job::reconcile,
            scoring_job::error_policy,
            ctx.clone(),
        )
        .for_each(|result| async move { debug!(?result, "scoringjob reconciled") });
    futures::join!(training, models, serving, clients, scoring);
}

/// What the controllers watch, and when they stop.
struct Scope<'a> {
    client: kube::Client,
    /// One namespace, or all.
    namespace: Option<&'a str>,
    stop: watch::Receiver<bool>,
}

impl Scope<'_> {
    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// Resolves when the controllers are to stop.
    fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }

    /// Objects the operator made, by their managed-by label.
    fn owned() -> watcher::Config {
        watcher::Config::default().labels("app.kubernetes.io/managed-by=aimass-operator")
    }

    /// TrainingJobs, woken by their Jobs.
    fn training_jobs(&self) -> Controller<TrainingJob> {
        Controller::new(self.api::<TrainingJob>(), watcher::Config::default())
            .owns(self.api::<Job>(), Self::owned())
            .graceful_shutdown_on(self.stopped())
    }

    /// ScoringJobs, woken by their Jobs.
    fn scoring_jobs(&self) -> Controller<ScoringJob> {
        Controller::new(self.api::<ScoringJob>(), watcher::Config::default())
            .owns(self.api::<Job>(), Self::owned())
            .graceful_shutdown_on(self.stopped())
    }

    /// ModelDeployments, woken by their Deployments and Services and by the
    /// Model they serve.
    fn model_deployments(&self) -> Controller<ModelDeployment> {
        let serving = Controller::new(self.api::<ModelDeployment>(), watcher::Config::default())
            .owns(self.api::<Deployment>(), Self::owned())
            .owns(self.api::<Service>(), Self::owned());
        let serving_store = serving.store();
        serving
            .watches(
                self.api::<Model>(),
                watcher::Config::default(),
                move |model: Model| {
                    let namespace = model.metadata.namespace.clone();
                    let name = model.metadata.name.clone().unwrap_or_default();
                    serving_store
                        .state()
                        .into_iter()
                        .filter(|md| {
                            md.metadata.namespace == namespace
                                && md.spec.models().any(|m| m.name == name)
                        })
                        .map(|md| ObjectRef::from_obj(&*md))
                        .collect::<Vec<_>>()
                },
            )
            .graceful_shutdown_on(self.stopped())
    }

    /// Models, woken by their TrainingJobs, the Jobs that validate their
    /// imports, the ModelDeployments that serve them (their soaks), their
    /// ModelApprovals, the Models they follow in other namespaces and the
    /// ScoringJobs they made (evaluations, backtests).
    fn models(&self) -> Controller<Model> {
        let models = Controller::new(self.api::<Model>(), watcher::Config::default());
        let followers = models.store();
        models
            .watches(
                self.api::<ModelDeployment>(),
                watcher::Config::default(),
                |md: ModelDeployment| {
                    let namespace = md.metadata.namespace.clone().unwrap_or_default();
                    md.spec
                        .models()
                        .map(|m| ObjectRef::<Model>::new(&m.name).within(&namespace))
                        .collect::<Vec<_>>()
                },
            )
            .watches(
                self.api::<ModelApproval>(),
                watcher::Config::default(),
                |approval: ModelApproval| {
                    Some(
                        ObjectRef::<Model>::new(&approval.spec.model)
                            .within(&approval.metadata.namespace.clone().unwrap_or_default()),
                    )
                },
            )
            .watches(
                self.api::<Model>(),
                watcher::Config::default(),
                move |source: Model| {
                    let namespace = source.metadata.namespace.clone().unwrap_or_default();
                    let name = source.metadata.name.clone().unwrap_or_default();
                    followers
                        .state()
                        .into_iter()
                        .filter(|m| {
                            m.spec
                                .source
                                .promoted_from
                                .as_ref()
                                .is_some_and(|f| f.namespace == namespace && f.model == name)
                        })
                        .map(|m| ObjectRef::from_obj(&*m))
                        .collect::<Vec<_>>()
                },
            )
            .owns(
                self.api::<Job>(),
                watcher::Config::default().labels(&format!(
                    "app.kubernetes.io/managed-by=aimass-operator,app.kubernetes.io/name={}",
                    crate::artifact::COMPONENT
                )),
            )
            .watches(
                self.api::<TrainingJob>(),
                watcher::Config::default(),
                |tj: TrainingJob| {
                    Some(
                        ObjectRef::<Model>::new(&tj.spec.model_ref.name)
                            .within(&tj.metadata.namespace.clone().unwrap_or_default()),
                    )
                },
            )
            .owns(self.api::<ScoringJob>(), Self::owned())
            .graceful_shutdown_on(self.stopped())
    }

    fn api_clients(&self) -> Controller<ApiClient> {
        Controller::new(self.api::<ApiClient>(), watcher::Config::default())
            .graceful_shutdown_on(self.stopped())
    }
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
