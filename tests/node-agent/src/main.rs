//! The aimass node agent: the local test cluster's stand-in for the kubelet.
//!
//! It registers N nodes, keeps them Ready, and runs the pods the real
//! scheduler puts on them as local processes, each pod in its own network
//! namespace on the cluster bridge, with the kubelet's view of images
//! (through an image map), environment, volumes, probes, restarts, logs and
//! termination. See `tests/README.md` for what it does and does not do.

mod config;
mod env;
mod error;
mod kubelet_api;
mod logs;
mod network;
mod node;
mod pod;
mod probe;
mod process;
mod quantity;
mod sandbox;
mod status;
mod volumes;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::{Config, ImageMap};
use crate::network::Network;
use crate::node::NodeIdentity;
use crate::pod::{Ctx, NodeInfo};

fn main() -> anyhow::Result<()> {
    // The helper mode runs before any thread exists: namespace calls need it.
    if std::env::args().nth(1).as_deref() == Some(sandbox::SUBCOMMAND) {
        let args = sandbox::ExecArgs::parse_from(std::env::args().skip(1));
        let err = sandbox::exec(args);
        eprintln!("aimass-node-agent: {err:#}");
        std::process::exit(127);
    }
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log_filter)?)
        .with_ansi(false)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    // object_store brings rustls with aws-lc-rs and kube with ring; with both
    // linked, rustls cannot pick a provider itself, so every binary picks ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("connecting to the API server")?;
    let images = ImageMap::load(&config.images)?;
    let network = Network::new(config.bridge.clone(), config.gateway, config.pod_prefix_len);
    network.remove_stale().await;
    let tls = kubelet_api::tls(&config.tls_cert, &config.tls_key, &config.client_ca)?;
    let log_registry = logs::LogRegistry::default();

    let mut nodes = HashMap::new();
    let mut recorders = HashMap::new();
    for index in 0..config.nodes {
        let listener = TcpListener::bind(SocketAddr::from((config.gateway, 0)))
            .await
            .context("binding a kubelet endpoint")?;
        let identity = NodeIdentity {
            name: format!("{}{index}", config.node_prefix),
            index,
            address: config.gateway,
            kubelet_port: listener.local_addr()?.port(),
            cpu: config.node_cpu.clone(),
            memory: config.node_memory.clone(),
            max_pods: config.max_pods,
        };
        tokio::spawn(kubelet_api::serve(
            listener,
            tls.clone(),
            log_registry.clone(),
        ));
        node::register(&client, &identity).await?;
        tokio::spawn(node::heartbeat(client.clone(), identity.clone()));
        let cidr = node::pod_cidr(&client, &identity.name).await?;
        info!(node = %identity.name, %cidr.addr, prefix = cidr.len, port = identity.kubelet_port, "node registered");
        nodes.insert(
            identity.name.clone(),
            NodeInfo {
                cidr,
                cpu: quantity::parse(&config.node_cpu).unwrap_or(1.0),
                memory: quantity::parse(&config.node_memory).unwrap_or(1e9),
            },
        );
        recorders.insert(
            identity.name.clone(),
            Recorder::new(
                client.clone(),
                Reporter {
                    controller: "kubelet".into(),
                    instance: Some(identity.name.clone()),
                },
            ),
        );
    }

    let (shutdown_tx, shutdown) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        images,
        network,
        state_dir: config.state_dir.clone(),
        logs: log_registry,
        nodes,
        agent: std::env::current_exe().context("locating the agent's executable")?,
        restart_backoff: Duration::from_secs(10),
        recorders,
        shutdown,
    });
    let pods = tokio::spawn(watch_pods(Arc::clone(&ctx)));
    info!(nodes = config.nodes, "node agent ready");

    shutdown_signal().await;
    info!("stopping every pod process");
    shutdown_tx.send_replace(true);
    match pods.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(e.into()),
    }
}

/// Follows every pod bound to one of the agent's nodes and gives each a
/// supervisor; returns once all supervisors ended after shutdown.
async fn watch_pods(ctx: Arc<Ctx>) -> anyhow::Result<()> {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let mut events = watcher(api, watcher::Config::default()).boxed();
    let mut running: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut seen_in_relist: Option<Vec<String>> = None;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
    let mut shutdown = ctx.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(uid) = done_rx.recv() => { running.remove(&uid); }
            event = events.next() => {
                let Some(event) = event else { break };
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        warn!(error = %e, "pod watch failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                match event {
                    watcher::Event::Init => seen_in_relist = Some(Vec::new()),
                    watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                        if let Some(seen) = seen_in_relist.as_mut() {
                            seen.extend(pod.metadata.uid.clone());
                        }
                        let ours = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some_and(|n| ctx.nodes.contains_key(n));
                        if !ours {
                            continue;
                        }
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        match running.get(&uid) {
                            Some(tx) => { tx.send_replace(Some(pod)); }
                            None => {
                                let (tx, rx) = watch::channel(Some(pod));
                                running.insert(uid.clone(), tx);
                                let ctx = Arc::clone(&ctx);
                                let done = done_tx.clone();
                                tokio::spawn(async move {
                                    pod::supervise(ctx, rx).await;
                                    let _ = done.send(uid);
                                });
                            }
                        }
                    }
                    watcher::Event::Delete(pod) => {
                        if let Some(tx) = pod.metadata.uid.as_ref().and_then(|uid| running.get(uid)) {
                            tx.send_replace(None);
                        }
                    }
                    watcher::Event::InitDone => {
                        if let Some(seen) = seen_in_relist.take() {
                            for (uid, tx) in &running {
                                if !seen.contains(uid) {
                                    tx.send_replace(None);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // Shutdown: supervisors see the flag, stop their processes and report back.
    while !running.is_empty() {
        match tokio::time::timeout(Duration::from_secs(15), done_rx.recv()).await {
            Ok(Some(uid)) => {
                running.remove(&uid);
            }
            _ => break,
        }
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
