//! The aimass operator: one process running the controllers for the aimass.io
//! API (Model, TrainingJob, ModelDeployment, ApiClient) and the monitor of
//! the serving replicas, leader-elected through a Lease, with an admin
//! server for probes and metrics and the audit key service.

mod admin;
mod api_client;
mod artifact;
mod autoscaler;
mod conditions;
mod config;
mod context;
mod controllers;
mod crd_install;
mod env_var;
mod error;
mod events;
mod failure;
#[cfg(test)]
mod fixtures;
mod health;
mod key_service;
mod labels;
mod leader;
mod metrics;
mod model;
mod model_deployment;
mod monitor;
mod scoring_job;
mod scrape;
mod security;
mod status;
mod storage;
mod training_job;

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use tokio::sync::watch;
use tracing::{info, warn};

pub use error::Error;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // object_store brings rustls with aws-lc-rs and kube with ring; with both
    // linked, rustls cannot pick a provider itself, so every binary picks ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = config::Config::parse();
    config.logging.init().map_err(Error::Config)?;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        "starting aimass-operator"
    );

    let metrics = Arc::new(metrics::Metrics::new()?);
    let (ready_tx, ready) = watch::channel(false);
    let listener = admin::bind(config.admin_addr).await?;
    if let Ok(address) = listener.local_addr() {
        info!(%address, "admin endpoints listening");
    }
    let admin = tokio::spawn(admin::serve(
        listener,
        admin::AdminState {
            ready,
            metrics: metrics.clone(),
        },
    ));

    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    crd_install::ensure(client.clone(), config.manage_crds).await?;

    let stop = stop_on_signal();

    let identity = config.identity.clone().unwrap_or_else(default_identity);
    let events = events::Events::new(
        client.clone(),
        Some(identity.clone()),
        metrics.events.clone(),
    );
    // Every replica serves keys, so a server starting during a leader
    // change still gets them.
    let key_service = key_service::start(
        client.clone(),
        key_service::Settings {
            namespace: config.audit_key_namespace(),
            addr: config.audit_key_service_addr,
            service: config.audit_key_service_name.clone(),
            server_image: config.inference_server_image.clone(),
        },
        events.clone(),
    )
    .await?;
    let election = if config.leader_election {
        // A standby replica is healthy and ready to take over.
        ready_tx.send_replace(true);
        let election = leader::Election::join(
            client.clone(),
            &config.operator_namespace(),
            &config.lease_name,
            &identity,
        )
        .await?;
        let Some(election) = campaign(election, stop.clone()).await else {
            admin.abort();
            return Ok(());
        };
        ready_tx.send_replace(false);
        Some(election)
    } else {
        None
    };
    let ctx = Arc::new(context(&config, client, events, metrics, key_service));
    let lost_leadership = lead(ctx, &config, ready_tx, stop, election).await;
    admin.abort();
    if lost_leadership {
        // Exit non-zero so the pod restarts and rejoins as a standby.
        anyhow::bail!("lost leadership");
    }
    Ok(())
}

/// What every reconcile shares.
fn context(
    config: &config::Config,
    client: kube::Client,
    events: events::Events,
    metrics: Arc<metrics::Metrics>,
    key_service: key_service::Endpoint,
) -> context::Context {
    context::Context {
        client,
        events,
        metrics,
        followers: Default::default(),
        server_image: config.inference_server_image.clone(),
        storage: storage::Policy {
            file_roots: config.file_storage_roots.clone(),
        },
        validation_memory_limit: config.validation_memory_limit.clone(),
        max_artifact_bytes: config.max_artifact_bytes,
        auth_delegator_role: config.inference_auth_cluster_role.clone(),
        operator_namespace: config.operator_namespace(),
        audit_key_namespace: config.audit_key_namespace(),
        key_service,
        scraper_namespaces: config.metrics_scraper_namespaces.clone(),
        canary_baselines: Default::default(),
        soak_baselines: Default::default(),
    }
}

/// A flag that turns true on SIGTERM or Ctrl-C.
fn stop_on_signal() -> watch::Receiver<bool> {
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        info!("shutting down");
        let _ = stop_tx.send(true);
    });
    stop
}

/// Resolves when `stop` turns true.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Waits for the lease; `None` when asked to stop first.
async fn campaign(
    mut election: leader::Election,
    stop: watch::Receiver<bool>,
) -> Option<leader::Election> {
    tokio::select! {
        () = election.acquired() => Some(election),
        () = stopped(stop) => {
            election.resign().await;
            None
        }
    }
}

/// Runs the controllers until asked to stop or, with an `election`, until
/// leadership is lost; true in the second case. Resigns the lease at the
/// end.
async fn lead(
    ctx: Arc<context::Context>,
    config: &config::Config,
    ready_tx: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
    mut election: Option<leader::Election>,
) -> bool {
    let (lost_tx, lost) = watch::channel(false);
    let shutdown = async move {
        tokio::select! {
            () = stopped(stop) => {},
            () = stopped(lost) => {},
        }
    };
    let controllers = controllers::run(ctx, config.namespace.as_deref(), ready_tx, shutdown);
    let lost_leadership = match election.as_mut() {
        Some(election) => {
            tokio::pin!(controllers);
            tokio::select! {
                () = &mut controllers => false,
                () = election.lost() => {
                    warn!("lost leadership; stopping the controllers");
                    let _ = lost_tx.send(true);
                    controllers.await;
                    true
                }
            }
        }
        None => {
            controllers.await;
            false
        }
    };
    if let Some(election) = election {
        election.resign().await;
    }
    lost_leadership
}

/// The host name, which is the pod name in a cluster.
fn default_identity() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .map_or_else(
            || format!("aimass-operator-{}", std::process::id()),
            |h| format!("{h}-{}", std::process::id()),
        )
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
