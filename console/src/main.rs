//! Entry point of `aimass-console`.

use std::net::SocketAddr;
use std::sync::Arc;

use aimass_console::cluster::Cluster;
use aimass_console::config::Config;
use aimass_console::http::{self, App};
use anyhow::Context;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // kube brings rustls with ring; pick it explicitly, as every binary does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = Config::parse();
    config.logging.init().map_err(anyhow::Error::msg)?;
    let kube_config = kube::Config::infer()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let cluster = Cluster::new(kube_config, config.namespaces.clone())?;
    let address = SocketAddr::new(config.address, config.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    tracing::info!(%address, namespaces = ?config.namespaces, "console listening");
    let app = Arc::new(App::new(config, cluster)?);
    tokio::select! {
        () = http::serve(app, listener) => {}
        _ = tokio::signal::ctrl_c() => {}
        () = terminated() => {}
    }
    Ok(())
}

/// SIGTERM.
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
