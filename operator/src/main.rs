//! The aimass operator: one process running the controllers for the aimass.io
//! API, with an admin server for probes and metrics.

mod admin;
mod config;
mod crd_install;
mod error;
mod metrics;
mod telemetry;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use tokio::sync::watch;
use tracing::info;

pub use error::Error;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // object_store brings rustls with aws-lc-rs and kube with ring; with both
    // linked, rustls cannot pick a provider itself, so every binary picks ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = config::Config::parse();
    telemetry::init(config.log_format, &config.log_filter)?;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        "starting aimass-operator"
    );

    let metrics = Arc::new(metrics::Metrics::new()?);
    let (ready_tx, ready) = watch::channel(false);
    let listener = admin::bind(config.admin_addr).await?;
    let admin = tokio::spawn(admin::serve(listener, admin::AdminState { ready, metrics }));

    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    crd_install::ensure(client, config.manage_crds).await?;
    ready_tx.send_replace(true);
    info!(admin = %config.admin_addr, "ready");

    shutdown_signal().await;
    info!("shutting down");
    admin.abort();
    Ok(())
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
